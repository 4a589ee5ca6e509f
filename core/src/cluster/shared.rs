//! The state every part of the cluster protocol shares: [`Cluster`], one per
//! rank (kept by the rank's runtime), and [`ClusterHost`], how whoever holds
//! only a weak handle to the rank finds it again.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use ferry_store::ReadOnlySegment;
use ferry_transport::{Rank, Transport, TransportError};

use crate::cluster::actor_book::ActorBook;
use crate::cluster::heartbeat::Heartbeat;
use crate::cluster::latch::Latch;
use crate::cluster::lent::Lent;
use crate::cluster::lineage::KeptTasks;
use crate::cluster::releases::{Ready, Releases};
use crate::cluster::sent::Sent;
use crate::cluster::wire::{self, Msg};
use crate::error::{Error, Result};
use crate::ids::IdMap;
use crate::object::cell::Slot;
use crate::object::codec::Untyped;
use crate::object::object_ref::ObjectRef;
use crate::sync::lock;

/// Where a rank keeps its [`Cluster`]: what the cluster's threads and
/// records, which hold the rank only weakly, upgrade and ask. The rest of
/// what the cluster needs of its rank is [`RankHost`].
///
/// [`RankHost`]: crate::cluster::rank_host::RankHost
pub(crate) trait ClusterHost: Sized + Send + Sync + 'static {
    /// The rank's cluster (`None` for a runtime of one rank).
    fn cluster(&self) -> Option<&Cluster<Self>>;
}

/// One rank's view of the cluster, `H` the rank it runs on.
pub(crate) struct Cluster<H: ClusterHost> {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) rank: Rank,
    pub(super) size: u32,
    /// Every rank's resource totals, from `Hello` (this rank's own included).
    pub(crate) totals: Mutex<Vec<Option<BTreeMap<String, f64>>>>,
    /// Every rank's host and arena file, from `Hello`.
    pub(super) places: Mutex<Vec<Option<(String, PathBuf)>>>,
    /// Same-node neighbours' arenas, mapped read-only at start, before
    /// their files' names were removed (see `runtime`'s start-up).
    pub(super) neighbours: Mutex<HashMap<Rank, Arc<ReadOnlySegment>>>,
    pub(super) force_rma: bool,
    pub(super) heard: Condvar,
    pub(crate) sent: Mutex<IdMap<u64, Box<Sent>>>,
    pub(crate) in_flight: Box<[AtomicUsize]>,
    /// Tasks sent ahead of their arguments, and those held back.
    pub(crate) ahead: crate::cluster::send_ahead::SendAhead,
    pub(super) held: Mutex<IdMap<u64, ObjectRef<Untyped>>>,
    /// Objects of this rank that others borrow, and which ranks do.
    pub(super) lent: Lent<Arc<Slot>>,
    /// Foreign objects this rank borrows.
    pub(super) borrowed: Mutex<IdMap<u64, Weak<Slot>>>,
    /// Borrowed objects filled from a task this rank ran for their owner,
    /// without waiting for the owner (`borrowing::fill_from_result`).
    pub(crate) filled_here: AtomicU64,
    /// Borrowed values answered by the rank that made them rather than
    /// their owner (`makers`).
    pub(crate) values_from_makers: AtomicU64,
    /// `Fetch`es this rank took as the maker of the value, to answer when
    /// the value exists (`makers`).
    pub(crate) asked_as_maker: AtomicU64,
    /// `Fetch`es this rank sent, to owners and to makers.
    pub(crate) fetches_sent: AtomicU64,
    /// Frames this rank sent to count its borrows: `AddBorrow`, or
    /// several borrows in one `AddBorrows`.
    pub(crate) borrow_frames: AtomicU64,
    /// Borrows this rank ended in a task's `Done` (see `ends_riding_along`).
    pub(crate) ends_with_done: AtomicU64,
    /// Values of its own this rank promised, with a task, to push to the
    /// task's rank (`lent_args`).
    pub(crate) values_pushed: AtomicU64,
    /// Ends of borrows, held back behind earlier unacked borrows.
    pub(crate) releases: Releases,
    /// Work waiting for a `BorrowAck`, by object or actor.
    pub(super) awaiting: Mutex<IdMap<u64, Vec<Arc<Latch>>>>,
    /// Actors across ranks: those lent to others, handles to others'.
    pub(crate) actors: ActorBook<H>,
    pub(crate) lost: Mutex<Vec<Rank>>,
    /// Tasks whose results hold refs, kept to rebuild what a lost rank
    /// owned (see `lineage`).
    pub(crate) lineage: KeptTasks,
    /// The outputs of tasks this rank runs for other ranks, by the owner's
    /// object id (for `Cancel`).
    pub(crate) executing: Mutex<IdMap<u64, Weak<Slot>>>,
    /// Timeline events other ranks sent (rank 0, while it gathers).
    pub(crate) timelines: crate::timeline::Replies,
    /// State listings other ranks sent (while this rank gathers).
    pub(crate) states: crate::timeline::Replies<crate::state::RankState>,
    /// Requests to the name registry waiting for its answer.
    pub(crate) names: crate::cluster::name_requests::NameRequests,
    /// Requests to the placement-group registry waiting for its answer.
    pub(crate) groups: crate::cluster::group_requests::GroupRequests,
    pub(crate) stop: AtomicBool,
    /// Set when rank 0 told this rank to stop (`serve` returns).
    pub(super) ended: (Mutex<Option<Result<()>>>, Condvar),
    pub(super) net: Mutex<Option<JoinHandle<()>>>,
    /// Why another rank cannot work with this one (its `Hello` said another
    /// protocol or build); start fails with it.
    pub(super) incompatible: Mutex<Option<String>>,
    /// When each rank was last heard from; declares silent ones lost.
    pub(crate) heartbeat: Heartbeat,
    /// What this rank's producers know of the streams they feed on other
    /// ranks (see `streams`).
    pub(crate) streams: crate::cluster::stream_windows::Windows,
}

impl<H: ClusterHost> Cluster<H> {
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        own: BTreeMap<String, f64>,
        store: PathBuf,
        force_rma: bool,
        heartbeat: Option<Duration>,
        neighbours: HashMap<Rank, Arc<ReadOnlySegment>>,
    ) -> Cluster<H> {
        let rank = transport.rank();
        let size = transport.size();
        let mut totals = vec![None; size as usize];
        totals[rank as usize] = Some(own);
        let mut places = vec![None; size as usize];
        places[rank as usize] = Some((crate::host::name(), store));
        Cluster {
            transport,
            rank,
            size,
            totals: Mutex::new(totals),
            places: Mutex::new(places),
            neighbours: Mutex::new(neighbours),
            force_rma,
            heard: Condvar::new(),
            sent: Mutex::new(IdMap::default()),
            in_flight: (0..size).map(|_| AtomicUsize::new(0)).collect(),
            ahead: Default::default(),
            held: Mutex::new(IdMap::default()),
            lent: Lent::new(),
            borrowed: Mutex::new(IdMap::default()),
            filled_here: AtomicU64::new(0),
            values_from_makers: AtomicU64::new(0),
            asked_as_maker: AtomicU64::new(0),
            fetches_sent: AtomicU64::new(0),
            borrow_frames: AtomicU64::new(0),
            ends_with_done: AtomicU64::new(0),
            values_pushed: AtomicU64::new(0),
            awaiting: Mutex::new(IdMap::default()),
            releases: Default::default(),
            actors: ActorBook::new(size),
            lost: Mutex::new(Vec::new()),
            lineage: Default::default(),
            timelines: crate::timeline::Replies::default(),
            states: crate::timeline::Replies::default(),
            names: Default::default(),
            groups: Default::default(),
            executing: Mutex::new(IdMap::default()),
            stop: AtomicBool::new(false),
            ended: (Mutex::new(None), Condvar::new()),
            net: Mutex::new(None),
            incompatible: Mutex::new(None),
            heartbeat: Heartbeat::new(size, heartbeat),
            streams: Default::default(),
        }
    }

    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// `rank`'s arena mapped read-only, if it is on this node (and the RMA
    /// path is not forced). Mapped at start or never: the file has no name
    /// any more.
    pub(super) fn neighbour(&self, rank: Rank) -> Option<Arc<ReadOnlySegment>> {
        if self.force_rma || rank == self.rank {
            return None;
        }
        lock(&self.neighbours).get(&rank).cloned()
    }

    pub(crate) fn send(&self, to: Rank, msg: &Msg) -> Result<()> {
        wire::send(&*self.transport, to, msg).map_err(|e| send_error(to, &e))
    }

    /// Ends this rank's borrow of `object` from `owner` (`RemoveBorrow`,
    /// in order behind earlier borrows: see `releases`), unless the rank is
    /// stopping.
    pub(crate) fn end_borrow(&self, owner: Rank, object: u64) {
        if !self.stop.load(Ordering::Acquire) {
            self.send_releases(self.releases.release(owner, Msg::RemoveBorrow { object }));
        }
    }

    /// Sends the ends of borrows that may go now (see `releases`).
    pub(crate) fn send_releases(&self, ready: Ready) {
        for (to, msg) in ready {
            let _ = self.send(to, &msg);
        }
    }

    /// The job ended for this rank: `wait_end` returns `outcome`.
    pub(super) fn end(&self, outcome: Result<()>) {
        let (m, cv) = &self.ended;
        let mut e = lock(m);
        if e.is_none() {
            *e = Some(outcome);
        }
        cv.notify_all();
    }

    /// Waits until rank 0 ends the job (or the job is lost).
    pub(crate) fn wait_end(&self) -> Result<()> {
        let (m, cv) = &self.ended;
        let mut e = lock(m);
        loop {
            if let Some(r) = e.take() {
                return r;
            }
            e = cv.wait(e).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Tasks sent to each other rank and not done yet: (rank, count).
    pub(crate) fn sent_counts(&self) -> Vec<(Rank, u64)> {
        self.in_flight
            .iter()
            .enumerate()
            .map(|(r, n)| (r as Rank, n.load(Ordering::Relaxed) as u64))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Ranks lost so far.
    pub(crate) fn lost_ranks(&self) -> Vec<Rank> {
        lock(&self.lost).clone()
    }

    /// This rank's host name, as it told the others.
    pub(crate) fn host(&self) -> String {
        lock(&self.places)[self.rank as usize]
            .as_ref()
            .map(|(h, _)| h.clone())
            .unwrap_or_default()
    }
}

/// A frame that could not be sent to `to`.
pub(super) fn send_error(to: Rank, e: &TransportError) -> Error {
    Error::Transport {
        what: format!("sending a message to rank {to}"),
        source: e.clone(),
    }
}
