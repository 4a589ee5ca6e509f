//! A rank's requests to the placement-group registry that wait for rank
//! 0's answer (see `groups`), kept in the rank's [`Cluster`](super::Cluster).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex};

use crate::cluster::wire_groups::WirePgAnswer;

/// This rank's requests to the registry that wait for an answer, by
/// request number (`None` until it comes).
#[derive(Default)]
pub(crate) struct GroupRequests {
    pub(super) next: AtomicU64,
    pub(super) replies: Mutex<HashMap<u64, Option<WirePgAnswer>>>,
    pub(super) arrived: Condvar,
}
