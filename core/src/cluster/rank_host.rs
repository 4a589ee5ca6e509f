//! What the cluster needs of the rank it runs on, as traits of its own, so
//! that it never names the layers above it: [`RankHost`], the rank's
//! services below the cluster (the arena, the id source, the by-id table,
//! the ledger, ...) and its state listing, implemented by the runtime
//! (`runtime::rank_host`); and [`RunById`], running what another rank sends
//! by the id of its function, actor class or method, implemented by the
//! registry of this binary's remote functions and actors (`private`).
//!
//! The cluster's code is generic over the rank (monomorphized: one rank
//! type, no dynamic calls on the message path).

use std::sync::Arc;

use ferry_transport::Rank;

use crate::actor::engine::ActorTable;
use crate::actor::names::NameBook;
use crate::cluster::shared::ClusterHost;
use crate::error::Result;
use crate::ids::{ActorId, ObjectId};
use crate::object::cell::Slot;
use crate::object::codec::Untyped;
use crate::object::object_ref::ObjectRef;
use crate::object::store::ObjectStore;
use crate::resources::options::{ActorOptions, TaskOptions};
use crate::state::RankState;
use crate::task::pool::TaskPool;

/// What other ranks may ask this one to run, by id.
pub(crate) trait RunById {
    /// An actor method of this binary, found by its id.
    type Method: Copy;

    /// Submits remote function `fn_id` of this binary here, on the encoded
    /// `args` (a `Submit` from another rank).
    fn run_task(
        self: &Arc<Self>,
        fn_id: u64,
        opts: &TaskOptions,
        args: &[u8],
    ) -> Result<ObjectRef<Untyped>>;

    /// Creates actor `id` of class `class` here, from the encoded
    /// constructor arguments (a `CreateActor` from another rank).
    fn create_actor(
        self: &Arc<Self>,
        class: u64,
        id: ActorId,
        opts: &ActorOptions,
        args: &[u8],
    ) -> Result<()>;

    /// Actor method `id` of this binary, with its path (`Class::method`).
    fn actor_method(&self, id: u64) -> Option<(Self::Method, &'static str)>;

    /// Submits a call of `method` on the encoded `args` to actor `actor`,
    /// which lives here (an `ActorCall` from another rank).
    fn call_actor(
        self: &Arc<Self>,
        actor: ActorId,
        method: Self::Method,
        args: &[u8],
    ) -> Result<ObjectRef<Untyped>>;

    /// This build of the program: ranks of different builds cannot run
    /// each other's tasks, so they refuse to start together.
    fn build_id(&self) -> u64;
}

/// The rank the cluster runs on: its state, and the services below the
/// cluster that the cluster works with.
pub(crate) trait RankHost: ClusterHost + RunById {
    /// This rank's state listing (a `StateRequest`).
    fn rank_state(&self) -> RankState;

    /// This rank.
    fn rank(&self) -> Rank;

    /// Whether the rank's runtime is shut down.
    fn is_shut(&self) -> bool;

    /// This rank's object store (arena, ids, the by-id table, where
    /// errors nobody looked at are counted).
    fn store(&self) -> &ObjectStore;

    /// This rank's task pool (resources, timeline, task counts).
    fn pool(&self) -> &Arc<TaskPool>;

    /// The actors that live on this rank.
    fn actors(&self) -> &ActorTable;

    /// This rank's named actors, and the job's name registry (used on rank 0).
    fn names(&self) -> &NameBook;

    /// The streams of items (streaming returns) this rank owns.
    fn streams(&self) -> &crate::object::stream::StreamBook;
    /// The job's placement-group registry (used on rank 0).
    fn groups(&self) -> &crate::cluster::group_registry::GroupRegistry;

    /// A new slot here for `id`, an object another rank owns, which
    /// fetches and releases it through this rank's cluster.
    fn borrowed_slot(self: &Arc<Self>, id: ObjectId) -> Arc<Slot>;
}
