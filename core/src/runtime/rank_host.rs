//! The runtime as the rank the cluster runs on: [`ClusterHost`] and
//! [`RankHost`] for [`Inner`]. The cluster reaches the rank's services only
//! through these methods. (What other ranks ask to run by id,
//! [`RunById`](crate::cluster::RunById), the registry implements:
//! `private::run_by_id`.)

use std::sync::Arc;

use ferry_store::Arena;
use ferry_transport::Rank;

use crate::actor::engine::ActorTable;
use crate::cluster::{Cluster, ClusterHost, RankHost};
use crate::ids::{IdGen, ObjectId};
use crate::object::cell::{Slot, UnhandledSink};
use crate::object::exports::Exports;
use crate::resources::ledger::Ledger;
use crate::runtime::Inner;
use crate::state::{RankState, TaskBook};
use crate::timeline::Recorder;

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

    fn arena(&self) -> &Arena {
        &self.arena
    }

    fn ids(&self) -> &IdGen {
        &self.ids
    }

    fn exports(&self) -> &Exports {
        &self.exports
    }

    fn unhandled(&self) -> &Arc<UnhandledSink> {
        &self.unhandled
    }

    fn ledger(&self) -> &Ledger {
        &self.pool.ledger
    }

    fn actors(&self) -> &ActorTable {
        &self.actors
    }

    fn timeline(&self) -> &Recorder {
        &self.pool.timeline
    }

    fn tasks(&self) -> &TaskBook {
        &self.pool.tasks
    }

    fn borrowed_slot(self: &Arc<Self>, id: ObjectId) -> Arc<Slot> {
        Slot::borrowed(id, id.rank(), Arc::<Inner>::downgrade(self))
    }
}
