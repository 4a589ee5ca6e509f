//! Work this rank sent to another and that waits for its `Done`: the
//! record ([`Sent`]) the owner keeps, to complete the result, or to send
//! the work again if that rank is lost.

use std::sync::Arc;

use ferry_transport::Rank;

use crate::cluster::wire::WireOptions;
use crate::object::cell::{KeepAlive, Slot, TypeTag};

/// A task or actor call this rank sent to another, waiting for `Done`.
pub(crate) struct Sent {
    pub(crate) slot: Arc<Slot>,
    pub(crate) rank: Rank,
    pub(crate) type_tag: TypeTag,
    pub(crate) type_name: &'static str,
    pub(crate) work: Work,
    /// Refs among the arguments, kept until `Done` (see Borrowing).
    pub(crate) _kept: Vec<KeepAlive>,
}

/// What a [`Sent`] was.
pub(crate) enum Work {
    /// A task, kept so that it can be sent again if its rank is lost.
    Task(TaskSpec),
    /// A call of actor `actor`: method id, the encoded arguments when it
    /// may be sent again (after its host is lost and the actor restarted),
    /// and how often it was sent (0: held back, not sent yet).
    ActorCall {
        actor: u64,
        name: Arc<str>,
        method: u64,
        args: Option<Vec<u8>>,
        attempts: u32,
    },
}

/// A task as it crosses ranks and is kept to run again: what the remote-task
/// record ([`Work::Task`]) and lineage's kept tasks both hold.
#[derive(Clone)]
pub(crate) struct TaskSpec {
    pub(crate) fn_id: u64,
    /// The encoded arguments.
    pub(crate) args: Vec<u8>,
    /// The ids of its top-level ref arguments.
    pub(crate) deps: Vec<u64>,
    pub(crate) opts: WireOptions,
    pub(crate) max_retries: i32,
    /// How often it was sent so far.
    pub(crate) attempts: u32,
}

impl TaskSpec {
    /// Whether `max_retries` allows another run after `attempts`.
    pub(crate) fn may_run_again(&self) -> bool {
        self.max_retries < 0 || self.attempts <= self.max_retries as u32
    }
}
