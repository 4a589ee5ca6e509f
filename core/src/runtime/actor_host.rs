//! The runtime as the actor engine's host: [`ActorHost`] for [`Inner`].
//! An actor thread's start hook makes the runtime the thread's own and
//! gives its calls the public [`Runtime`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::checkpoint::Restored;
use crate::actor::engine::ActorTable;
use crate::actor::host::ActorHost;
use crate::error::Result;
use crate::ids::ActorId;
use crate::object::cell::{Slot, StoredValue};
use crate::object::exports::Exports;
use crate::resources::ledger::Request;
use crate::resources::pinning::Pinning;
use crate::runtime::{Inner, Runtime};
use crate::timeline::Recorder;
use crate::values::Object;

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

    fn new_output(&self) -> Arc<Slot> {
        Slot::pending(self.ids.object(), None, self.unhandled.clone())
    }

    fn store_value<T: Object>(&self, value: &T) -> Result<StoredValue> {
        Inner::store_value(self, value)
    }

    fn exports(&self) -> &Arc<Exports> {
        &self.exports
    }

    fn try_grant(&self, req: &Request) -> Option<Arc<[u32]>> {
        self.pool.try_grant(req)
    }

    fn release_grant(&self, req: &Request, gpu_ids: &[u32]) {
        self.pool.release_grant(req, gpu_ids);
    }

    fn release_ended_grant(self: &Arc<Self>, req: &Request, gpu_ids: &[u32]) {
        self.pool.release(req, gpu_ids);
    }

    fn pinning(&self) -> &Pinning {
        &self.pool.pinning
    }

    fn spin(&self) -> Duration {
        self.spin
    }

    fn timeline(&self) -> &Recorder {
        &self.pool.timeline
    }

    fn checkpoint_dir(&self) -> &Path {
        &self.checkpoint_dir
    }

    fn note_restored(&self, restored: Restored) {
        Inner::note_restored(self, restored);
    }

    fn last_handle_dropped(&self, id: ActorId) {
        self.exports.forget_actor(id);
        crate::cluster::remote_actor::no_more_handles(self, id);
    }
}
