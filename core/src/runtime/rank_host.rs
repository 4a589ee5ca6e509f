//! The runtime as the rank the cluster runs on: [`ClusterHost`] and
//! [`RankHost`] for [`Inner`]. The cluster reaches the rank's services only
//! through these methods. (What other ranks ask to run by id,
//! [`RunById`](crate::cluster::RunById), the registry implements:
//! `private::run_by_id`.)

use std::sync::Arc;

use ferry_transport::Rank;

use crate::actor::engine::ActorTable;
use crate::cluster::{Cluster, ClusterHost, RankHost};
use crate::ids::ObjectId;
use crate::object::cell::Slot;
use crate::object::store::ObjectStore;
use crate::runtime::Inner;
use crate::state::RankState;
use crate::task::pool::TaskPool;

impl ClusterHost for Inner {
    fn cluster(&self) -> Option<&Cluster<Inner>> {
        self.cluster.as_ref()
    }
}

impl RankHost for Inner {
    fn rank_state(&self) -> RankState {
        crate::runtime::rank_state(self)
    }

    fn rank(&self) -> Rank {
        self.rank
    }

    fn is_shut(&self) -> bool {
        Inner::is_shut(self)
    }

    fn store(&self) -> &ObjectStore {
        &self.store
    }

    fn pool(&self) -> &Arc<TaskPool> {
        &self.pool
    }

    fn actors(&self) -> &ActorTable {
        &self.actors
    }

    fn names(&self) -> &crate::actor::names::NameBook {
        &self.names
    }

    fn streams(&self) -> &crate::object::stream::StreamBook {
        &self.streams
    }

    fn groups(&self) -> &crate::cluster::group_registry::GroupRegistry {
        &self.groups
    }

    fn borrowed_slot(self: &Arc<Self>, id: ObjectId) -> Arc<Slot> {
        Slot::borrowed(id, id.rank(), Arc::<Inner>::downgrade(self))
    }
}
