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
use crate::ids::ActorId;
use crate::object::store::ObjectStore;
use crate::task::pool::TaskPool;

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

    /// The rank's object store (results, the by-id table).
    fn store(&self) -> &ObjectStore;

    /// The rank's task pool (resources, pinning, timeline).
    fn pool(&self) -> &Arc<TaskPool>;

    /// How long an idle actor thread spins before it parks.
    fn spin(&self) -> Duration;

    /// The job's checkpoint directory.
    fn checkpoint_dir(&self) -> &Path;

    /// An actor was restored from its checkpoint.
    fn note_restored(&self, restored: Restored);

    /// The last handle to actor `id` on this rank is gone.
    fn last_handle_dropped(&self, id: ActorId);

    /// Actor `id`'s thread has finished: it will run no more calls.
    fn actor_stopped(&self, id: ActorId);
}
