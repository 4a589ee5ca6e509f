//! The runtime as the actor engine's host: [`ActorHost`] for [`Inner`].
//! An actor thread's start hook makes the runtime the thread's own and
//! gives its calls the public [`Runtime`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::checkpoint::Restored;
use crate::actor::engine::ActorTable;
use crate::actor::host::ActorHost;
use crate::ids::ActorId;
use crate::object::store::ObjectStore;
use crate::runtime::{Inner, Runtime};
use crate::task::pool::TaskPool;

impl ActorHost for Inner {
    type CallCx = Runtime;

    fn actor_thread_started(self: &Arc<Self>) -> Runtime {
        crate::runtime::current::set_runtime(Some(self.clone()));
        Runtime::from_inner(self.clone())
    }

    fn actor_thread_stopped(&self) {
        crate::runtime::current::set_runtime(None);
    }

    fn rank(&self) -> u32 {
        self.rank
    }

    fn is_shut(&self) -> bool {
        Inner::is_shut(self)
    }

    fn actors(&self) -> &ActorTable {
        &self.actors
    }

    fn store(&self) -> &ObjectStore {
        &self.store
    }

    fn pool(&self) -> &Arc<TaskPool> {
        &self.pool
    }

    fn spin(&self) -> Duration {
        self.spin
    }

    fn checkpoint_dir(&self) -> &Path {
        &self.checkpoint_dir
    }

    fn note_restored(&self, restored: Restored) {
        Inner::note_restored(self, restored);
    }

    fn actor_stopped(&self, id: ActorId) {
        crate::runtime::named::stopped(self, id);
    }

    fn last_handle_dropped(&self, id: ActorId) {
        self.store.exports.forget_actor(id);
        // It will stop: its name is free now.
        crate::runtime::named::stopped(self, id);
        crate::cluster::remote_actor::no_more_handles(self, id);
    }
}
