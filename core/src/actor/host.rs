//! [`ActorHost`]: what the actor engine needs of the runtime that hosts it.
//!
//! The engine is generic over its host (as tokio's tasks are over their
//! `Schedule`), so it never names the runtime: the runtime implements this
//! trait, and the calls it queues are closures built above, given the
//! host's [`CallCx`](ActorHost::CallCx) that the actor thread made once at
//! its start (rayon's start handler).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::checkpoint::Restored;
use crate::actor::engine::ActorTable;
use crate::error::Result;
use crate::ids::ActorId;
use crate::object::cell::{Slot, StoredValue};
use crate::object::exports::Exports;
use crate::resources::ledger::Request;
use crate::resources::pinning::Pinning;
use crate::timeline::Recorder;
use crate::values::Object;

/// The runtime an actor lives in, as the actor engine sees it.
pub(crate) trait ActorHost: Send + Sync + Sized + 'static {
    /// What every call on an actor's thread is given (the public runtime,
    /// for the code that resolves a call's arguments).
    type CallCx;

    /// The actor thread's start hook: makes this host the thread's runtime;
    /// the context every call on the thread is given.
    fn actor_thread_started(self: &Arc<Self>) -> Self::CallCx;

    /// The actor thread's exit hook: the thread leaves the runtime.
    fn actor_thread_stopped(&self);

    /// This rank.
    fn rank(&self) -> u32;

    /// Whether the runtime has shut down (calls are refused).
    fn is_shut(&self) -> bool;

    /// The rank's live actors.
    fn actors(&self) -> &ActorTable;

    /// A new pending output for a call.
    fn new_output(&self) -> Arc<Slot>;

    /// Stores a call's value in this rank's store.
    fn store_value<T: Object>(&self, value: &T) -> Result<StoredValue>;

    /// The rank's exports, which encoding an actor's state lists refs in.
    fn exports(&self) -> &Arc<Exports>;

    /// Reserves `req` and picks its GPUs, if all of it is free now.
    fn try_grant(&self, req: &Request) -> Option<Arc<[u32]>>;

    /// Gives back a grant that no actor thread took.
    fn release_grant(&self, req: &Request, gpu_ids: &[u32]);

    /// Gives back an ended actor's grant (so waiting tasks may start).
    fn release_ended_grant(self: &Arc<Self>, req: &Request, gpu_ids: &[u32]);

    /// The rank's CPU and GPU binding.
    fn pinning(&self) -> &Pinning;

    /// How long an idle actor thread spins before it parks.
    fn spin(&self) -> Duration;

    /// The rank's timeline.
    fn timeline(&self) -> &Recorder;

    /// The job's checkpoint directory.
    fn checkpoint_dir(&self) -> &Path;

    /// An actor was restored from its checkpoint.
    fn note_restored(&self, restored: Restored);

    /// The last handle to actor `id` on this rank is gone.
    fn last_handle_dropped(&self, id: ActorId);
}
