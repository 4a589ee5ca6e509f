//! A rank's requests to the name registry that wait for rank 0's answer
//! (see `names`), kept in the rank's [`Cluster`](super::Cluster).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex};

use crate::cluster::wire::WireNamed;

/// An answer: whether the name was given, and its holder.
pub(super) type Reply = (bool, Option<WireNamed>);

/// This rank's requests to the registry that wait for an answer, by
/// request number (`None` until it comes).
#[derive(Default)]
pub(crate) struct NameRequests {
    pub(super) next: AtomicU64,
    pub(super) replies: Mutex<HashMap<u64, Option<Reply>>>,
    pub(super) arrived: Condvar,
}
