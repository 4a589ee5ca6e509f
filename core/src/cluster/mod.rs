//! Several ranks: placing tasks on other ranks, and the messages that carry
//! them (over any [`Transport`]: loopback threads in tests, MPI for real).
//!
//! # Protocol
//!
//! 1. At start every rank sends `Hello` with its resource totals to every
//!    other rank and waits until it has heard from all of them.
//! 2. A task with no top-level ref arguments and no refs inside its
//!    arguments runs where it was submitted while that rank has room; when it
//!    has none (or cannot ever run it), the task goes to the least loaded
//!    rank that can run it and has room: the owner sends `Submit` with the
//!    function's stable id and its encoded arguments, and keeps the pending
//!    output slot. (Tasks with ref arguments stay with their data until
//!    objects can be borrowed across ranks.)
//! 3. The executor runs the function by id, pinned there. When the result is
//!    sealed it sends `Done`: small results inline, larger ones as an
//!    (offset, length) in its arena, which it keeps until the owner has read
//!    them one-sidedly (`Transport::read`) and sent `Free`.
//! 4. A rank lost while running a task fails it with a system error, and
//!    the owner resubmits it (to itself if need be) while `max_retries` allows.
//! 5. Rank 0's shutdown sends `Shutdown` to every rank; each shuts down its
//!    runtime and closes its endpoint.
//!
//! # Borrowing (refs that cross ranks)
//!
//! The rank that made an object owns it (its id carries the rank). A rank
//! that receives a ref to a foreign object makes a *borrowed* slot for it
//! (one per object per rank) and sends `AddBorrow` to the owner, which keeps
//! the object while any rank borrows it and answers `BorrowAck`. Whoever
//! handed the ref over keeps its own ref until the receiver has that ack:
//! a submitter keeps a task's arguments until `Done`, and an executor sends
//! `Done` only once the borrows made while decoding the arguments are acked
//! (and, for refs inside a result, the owner of the result borrows them
//! before it sends `Free`). So an object is never freed while a ref to it is
//! in flight. A borrowed value is fetched on first need (`Fetch` →
//! `Value`, read one-sidedly when large); dropping the last borrowed ref
//! sends `RemoveBorrow`.

pub(crate) mod arena_region;
pub(crate) mod heartbeat;
pub(crate) mod lent;
pub(crate) mod lineage;
pub(crate) mod node_hello;
pub(crate) mod releases;
pub(crate) mod remote_actor;
pub(crate) mod wire;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferry_store::ReadOnlySegment;
use ferry_transport::{Event, Rank, Transport, TransportError};

use crate::cluster::lent::Lent;
use crate::cluster::wire::{Msg, WireError, WireOptions, WireRef, WireResult, WireValue};
use crate::error::{Error, FailureKind, Result, TaskError};
use crate::ids::ObjectId;
use crate::object::cell::{
    Bytes, DepWaiter, KeepAlive, Slot, Stored, StoredValue, TypeTag, Waiter,
};
use crate::object::object_ref::ObjectRef;
use crate::private::{EncodedCall, Untyped};
use crate::resources::options::{RetryOn, TaskOptions};
use crate::runtime::{Inner, Runtime};
use crate::values::Object;

/// Results up to this size travel inside `Done`.
const INLINE_MAX: usize = 64 * 1024;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WireResult {
    /// Where a receiver finds `v`: in the message when small, else at its
    /// place in this rank's arena (which the sender keeps until it is read,
    /// and never spills from then on). A spilled object is read back first;
    /// when that fails, the failure is what the receiver gets (`what` and
    /// `rank` name it).
    fn of(v: &StoredValue, what: &str, rank: Rank) -> WireResult {
        let len = v.block.len();
        let at = if len > INLINE_MAX {
            v.block.lend()
        } else {
            None
        };
        let found = match at {
            Some(Ok(offset)) => Ok(WireResult::At {
                offset: offset as u64,
                len: len as u64,
            }),
            Some(Err(e)) => Err(e),
            None => v
                .block
                .access()
                .map(|a| WireResult::Inline(a.as_slice().to_vec())),
        };
        found.unwrap_or_else(|e| WireResult::Failed(WireError::from_error(&e.into(), what, rank)))
    }
}

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
    Task {
        fn_id: u64,
        args: Vec<u8>,
        opts: WireOptions,
        max_retries: i32,
        attempts: u32,
    },
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

pub(crate) struct Cluster {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) rank: Rank,
    size: u32,
    /// Every rank's resource totals, from `Hello` (this rank's own included).
    pub(crate) totals: Mutex<Vec<Option<BTreeMap<String, f64>>>>,
    /// Every rank's host and arena file, from `Hello`.
    places: Mutex<Vec<Option<(String, PathBuf)>>>,
    /// Same-node neighbours' arenas, mapped read-only at start, before
    /// their files' names were removed (see `runtime`'s start-up).
    neighbours: Mutex<HashMap<Rank, Arc<ReadOnlySegment>>>,
    force_rma: bool,
    heard: Condvar,
    pub(crate) sent: Mutex<HashMap<u64, Sent>>,
    pub(crate) in_flight: Box<[AtomicUsize]>,
    held: Mutex<HashMap<u64, ObjectRef<Untyped>>>,
    /// Objects of this rank that others borrow, and which ranks do.
    lent: Lent<Arc<Slot>>,
    /// Foreign objects this rank borrows.
    borrowed: Mutex<HashMap<u64, Weak<Slot>>>,
    /// Ends of borrows, held back behind earlier unacked borrows.
    pub(crate) releases: crate::cluster::releases::Releases,
    /// Work waiting for a `BorrowAck`, by object or actor.
    awaiting: Mutex<HashMap<u64, Vec<Arc<Latch>>>>,
    /// Actors across ranks: those lent to others, handles to others'.
    pub(crate) actors: crate::cluster::remote_actor::Book,
    pub(crate) lost: Mutex<Vec<Rank>>,
    /// Tasks whose results hold refs, kept to rebuild what a lost rank
    /// owned (see `lineage`).
    pub(crate) lineage: crate::cluster::lineage::Book,
    /// The outputs of tasks this rank runs for other ranks, by the owner's
    /// object id (for `Cancel`).
    pub(crate) executing: Mutex<HashMap<u64, Weak<Slot>>>,
    /// Timeline events other ranks sent (rank 0, while it gathers).
    pub(crate) timelines: crate::timeline::Replies,
    /// State listings other ranks sent (while this rank gathers).
    pub(crate) states: crate::timeline::Replies<crate::state::RankState>,
    pub(crate) stop: AtomicBool,
    /// Set when rank 0 told this rank to stop (`serve` returns).
    ended: (Mutex<Option<Result<()>>>, Condvar),
    net: Mutex<Option<JoinHandle<()>>>,
    /// Why another rank cannot work with this one (its `Hello` said another
    /// protocol or build); start fails with it.
    incompatible: Mutex<Option<String>>,
    /// When each rank was last heard from; declares silent ones lost.
    pub(crate) heartbeat: crate::cluster::heartbeat::Heartbeat,
}

impl Cluster {
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        own: BTreeMap<String, f64>,
        store: PathBuf,
        force_rma: bool,
        heartbeat: Option<Duration>,
        neighbours: HashMap<Rank, Arc<ReadOnlySegment>>,
    ) -> Cluster {
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
            sent: Mutex::new(HashMap::new()),
            in_flight: (0..size).map(|_| AtomicUsize::new(0)).collect(),
            held: Mutex::new(HashMap::new()),
            lent: Lent::new(),
            borrowed: Mutex::new(HashMap::new()),
            awaiting: Mutex::new(HashMap::new()),
            releases: Default::default(),
            actors: crate::cluster::remote_actor::Book::new(size),
            lost: Mutex::new(Vec::new()),
            lineage: Default::default(),
            timelines: crate::timeline::Replies::default(),
            states: crate::timeline::Replies::default(),
            executing: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            ended: (Mutex::new(None), Condvar::new()),
            net: Mutex::new(None),
            incompatible: Mutex::new(None),
            heartbeat: crate::cluster::heartbeat::Heartbeat::new(size, heartbeat),
        }
    }

    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Step 1: starts the receive thread, says hello, waits to hear from all.
    pub(crate) fn start(inner: &Arc<Inner>, timeout: Duration) -> Result<()> {
        let c = inner
            .cluster()
            .expect("start is called on a cluster runtime");
        let weak = Arc::downgrade(inner);
        let transport = c.transport.clone();
        let handle = std::thread::Builder::new()
            .name(format!("ferry-r{}-net", c.rank))
            .spawn(move || {
                let rank = transport.rank();
                crate::log::set_thread_rank(rank);
                let fatal = transport.clone();
                let run = std::panic::AssertUnwindSafe(|| net_main(weak, transport));
                if let Err(p) = std::panic::catch_unwind(run) {
                    // The rank can no longer take part in the job: end it, so
                    // that the launcher stops every rank and names this one.
                    fatal.abort(&format!(
                        "rank {rank}: internal error in the receive thread: {}",
                        crate::task::cell::panic_message(p.as_ref())
                    ));
                }
            })
            .map_err(|e| Error::Init(format!("could not start the receive thread: {e}")))?;
        *lock(&c.net) = Some(handle);
        // Where the transport can, frames are handled on the thread that
        // receives them (MPI: the progress thread), one handoff less each.
        let _ = c
            .transport
            .set_handler(event_handler(Arc::downgrade(inner)));
        let own: Vec<(String, f64)> = lock(&c.totals)[c.rank as usize]
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let (host, store) = lock(&c.places)[c.rank as usize].clone().unwrap_or_default();
        let hello = wire::encode(&Msg::Hello {
            protocol: wire::PROTOCOL,
            build: crate::private::build_id(),
            totals: own,
            host,
            store: store.to_string_lossy().into_owned(),
        });
        for r in (0..c.size).filter(|r| *r != c.rank) {
            c.transport
                .send(r, hello.clone())
                .map_err(|e| Error::Init(format!("could not greet rank {r}: {e}")))?;
        }
        let deadline = Instant::now() + timeout;
        let mut totals = lock(&c.totals);
        while totals.iter().any(Option::is_none) {
            if let Some(why) = lock(&c.incompatible).clone() {
                return Err(Error::Init(why));
            }
            let now = Instant::now();
            if now >= deadline {
                let missing: Vec<usize> =
                    (0..totals.len()).filter(|i| totals[*i].is_none()).collect();
                return Err(Error::Init(format!(
                    "ranks {missing:?} did not answer within {timeout:?}"
                )));
            }
            totals = c
                .heard
                .wait_timeout(totals, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(totals);
        c.heartbeat.start(inner, c)
    }

    /// The most of `resource` any live rank has, and which rank (the lowest
    /// on a tie), with the cluster's total.
    fn largest(&self, resource: &str) -> (f64, Rank, f64) {
        let lost = lock(&self.lost);
        let mut best = (0.0, self.rank);
        let mut total = 0.0;
        for (r, t) in lock(&self.totals).iter().enumerate() {
            let Some(t) = t else { continue };
            let have = t.get(resource).copied().unwrap_or(0.0);
            if lost.contains(&(r as Rank)) {
                continue;
            }
            total += have;
            if have > best.0 {
                best = (have, r as Rank);
            }
        }
        (best.0, best.1, total)
    }

    /// Resources of the whole cluster, summed over ranks.
    pub(crate) fn cluster_totals(&self) -> BTreeMap<String, f64> {
        let mut sum = BTreeMap::new();
        for t in lock(&self.totals).iter().flatten() {
            for (k, v) in t {
                *sum.entry(k.clone()).or_insert(0.0) += v;
            }
        }
        sum
    }

    /// What the other ranks have free, as this rank sees it: their totals,
    /// less the CPUs of the tasks this rank has running there (Ray's
    /// `available_resources` is likewise a recent view, not a lock).
    pub(crate) fn others_available(&self) -> BTreeMap<String, f64> {
        let mut sum = BTreeMap::new();
        let lost = lock(&self.lost);
        for (r, t) in lock(&self.totals).iter().enumerate() {
            let Some(t) = t else { continue };
            if r as Rank == self.rank || lost.contains(&(r as Rank)) {
                continue;
            }
            let busy = self.in_flight[r].load(Ordering::Relaxed) as f64;
            for (k, v) in t {
                let v = if k == "CPU" { (v - busy).max(0.0) } else { *v };
                *sum.entry(k.clone()).or_insert(0.0) += v;
            }
        }
        sum
    }

    fn rank_can_run(totals: &BTreeMap<String, f64>, opts: &TaskOptions) -> bool {
        rank_has(
            totals,
            [opts.num_cpus, opts.num_gpus, opts.memory],
            &opts.resources,
        )
    }

    /// Whether rank `r` could run a task with `opts` and has a CPU free, as
    /// this rank sees it.
    fn has_room(&self, r: Rank, opts: &TaskOptions) -> bool {
        if lock(&self.lost).contains(&r) {
            return false;
        }
        let totals = lock(&self.totals);
        let Some(t) = totals.get(r as usize).and_then(Option::as_ref) else {
            return false;
        };
        let cpus = t.get("CPU").copied().unwrap_or(0.0);
        let busy = self.in_flight[r as usize].load(Ordering::Relaxed) as f64;
        Self::rank_can_run(t, opts) && busy + opts.num_cpus <= cpus.max(opts.num_cpus)
    }

    /// Step 2: the rank to send a task to, if not this one.
    pub(crate) fn pick(&self, opts: &TaskOptions, local_can_run: bool) -> Option<Rank> {
        let totals = lock(&self.totals);
        let lost = lock(&self.lost);
        let mut best: Option<(f64, Rank)> = None;
        for (r, t) in totals.iter().enumerate() {
            let r = r as Rank;
            let Some(t) = t else { continue };
            if r == self.rank || lost.contains(&r) || !Self::rank_can_run(t, opts) {
                continue;
            }
            let cpus = t.get("CPU").copied().unwrap_or(0.0).max(1.0);
            let load = self.in_flight[r as usize].load(Ordering::Relaxed) as f64 / cpus;
            if local_can_run && load >= 1.0 {
                continue; // that rank is full too: queue here instead
            }
            if best.is_none_or(|(b, _)| load < b) {
                best = Some((load, r));
            }
        }
        best.map(|(_, r)| r)
    }

    /// `rank`'s arena mapped read-only, if it is on this node (and the RMA
    /// path is not forced). Mapped at start or never: the file has no name
    /// any more.
    fn neighbour(&self, rank: Rank) -> Option<Arc<ReadOnlySegment>> {
        if self.force_rma || rank == self.rank {
            return None;
        }
        lock(&self.neighbours).get(&rank).cloned()
    }

    pub(crate) fn send(&self, to: Rank, msg: &Msg) -> Result<()> {
        self.transport
            .send(to, wire::encode(msg))
            .map_err(|e| send_error(to, &e))
    }

    /// Sends the ends of borrows that may go now (see `releases`).
    pub(crate) fn send_releases(&self, ready: Vec<(Rank, Msg)>) {
        for (to, msg) in ready {
            let _ = self.send(to, &msg);
        }
    }

    /// Step 5 on rank 0: tells every other rank to stop.
    pub(crate) fn broadcast_shutdown(&self) {
        // Ranks leave from here on: nobody is lost for it.
        self.heartbeat.finish();
        let bye = wire::encode(&Msg::Shutdown);
        for r in (0..self.size).filter(|r| *r != self.rank) {
            let _ = self.transport.send(r, bye.clone());
        }
    }

    /// Stops the receive thread and closes the endpoint.
    pub(crate) fn close(&self) {
        self.stop.store(true, Ordering::Release);
        self.heartbeat.finish();
        let handle = lock(&self.net).take();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
        lock(&self.held).clear();
        drop(self.lent.clear());
        lock(&self.awaiting).clear();
        self.actors.clear();
        let sent: Vec<Sent> = lock(&self.sent).drain().map(|(_, s)| s).collect();
        for s in sent {
            s.slot.complete(Stored::Error(Error::Shutdown));
        }
        if let Err(e) = self.transport.close() {
            tracing::warn!("closing the transport: {e}");
        }
    }

    fn end(&self, outcome: Result<()>) {
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
}

/// Whether a rank with `totals` could ever hold `[cpus, gpus, memory]` and
/// the custom resources.
pub(crate) fn rank_has(
    totals: &BTreeMap<String, f64>,
    [cpus, gpus, memory]: [f64; 3],
    custom: &[(String, f64)],
) -> bool {
    let has =
        |name: &str, amount: f64| amount <= 0.0 || totals.get(name).is_some_and(|t| *t >= amount);
    has("CPU", cpus)
        && has("GPU", gpus)
        && has("memory", memory)
        && custom.iter().all(|(n, a)| has(n, *a))
}

/// Arguments at least this large pull their task to the rank that holds
/// them (smaller ones travel as cheaply as the task).
const LOCALITY_MIN: usize = 64 * 1024;

/// The rank holding the largest of a task's top-level ref arguments whose
/// size is known here, and that size: this rank for its own objects and
/// for borrowed ones already copied or mapped here, the owner for borrowed
/// ones whose place its `BorrowAck` told.
fn largest_arg(c: &Cluster, deps: &[Arc<Slot>]) -> Option<(Rank, usize)> {
    deps.iter()
        .filter_map(|s| match (s.get(), s.borrow()) {
            (Some(Stored::Value(v)), _) => Some((c.rank, v.block.len())),
            (None, Some(b)) => b.at.get().map(|(_, len, _)| (b.owner, *len as usize)),
            _ => None,
        })
        .max_by_key(|(_, len)| *len)
}

/// Step 2 for generated code: sends the task to another rank when it should
/// run there; `None` means "run it here".
pub(crate) fn try_remote<R: Object>(
    rt: &Runtime,
    fn_name: &str,
    opts: &TaskOptions,
    deps: &[Arc<Slot>],
    fn_id: u64,
    encode: impl FnOnce() -> Result<EncodedCall>,
) -> Option<Result<ObjectRef<R>>> {
    let inner = &rt.inner;
    if let Some(r) = opts.rank {
        let size = inner.cluster().map_or(1, Cluster::size);
        if r >= size {
            return Some(Err(Error::InvalidArgument(format!(
                "{fn_name}: on_rank({r}), but the job has {size} rank(s)"
            ))));
        }
    }
    let c = inner.cluster()?;
    if opts.pinned_here || matches!(opts.retry_on, RetryOn::When(_)) {
        return None;
    }
    // A large argument on another rank that has room: run it there.
    let near_data = largest_arg(c, deps)
        .filter(|&(r, len)| r != c.rank && len >= LOCALITY_MIN)
        .map(|(r, _)| r)
        .filter(|&r| c.has_room(r, opts));
    let rank = match (opts.rank, near_data) {
        (Some(r), _) if r == c.rank => return None,
        (Some(r), _) | (None, Some(r)) => r,
        (None, None) => {
            let local = opts.request(fn_name, &inner.pool.ledger);
            let local_can_run = local.is_ok();
            if let Ok(req) = &local
                && inner.pool.ledger.fits_now(req)
            {
                return None;
            }
            c.pick(opts, local_can_run)?
        }
    };
    let call = match encode() {
        Ok(call) => call,
        Err(e) => return Some(Err(e)),
    };
    let (args, kept) = call.into_parts();
    let slot = Slot::pending(inner.ids.object(), None, inner.unhandled.clone());
    let sent = Sent {
        slot: slot.clone(),
        rank,
        type_tag: TypeTag::of::<R>(),
        type_name: std::any::type_name::<R>(),
        work: Work::Task {
            fn_id,
            args: args.to_vec(),
            opts: WireOptions::from_options(opts),
            max_retries: opts.max_retries,
            attempts: 1,
        },
        _kept: kept,
    };
    inner.pool.tasks.submitted();
    dispatch(c, slot.id.as_u64(), sent);
    Some(Ok(ObjectRef::from_slot(slot)))
}

/// Sends (or re-sends) a task to `sent.rank`.
pub(crate) fn dispatch(c: &Cluster, object: u64, sent: Sent) {
    let Work::Task {
        fn_id, args, opts, ..
    } = &sent.work
    else {
        return;
    };
    let msg = Msg::Submit {
        object,
        fn_id: *fn_id,
        args: args.clone(),
        opts: opts.clone(),
    };
    send_awaiting_done(c, object, sent, &msg);
}

/// Sends `msg` (a `Submit` or `ActorCall`) for `sent`, which then waits
/// for its `Done`.
pub(crate) fn send_awaiting_done(c: &Cluster, object: u64, sent: Sent, msg: &Msg) {
    let rank = sent.rank;
    let task = matches!(sent.work, Work::Task { .. });
    if task {
        c.in_flight[rank as usize].fetch_add(1, Ordering::Relaxed);
    }
    lock(&c.sent).insert(object, sent);
    c.transport.expect_reply(true);
    match c.transport.send(rank, wire::encode(msg)) {
        Ok(()) => {}
        // Lost before this rank heard: `rank_lost` handles it as in flight
        // (or has run already: then it is handled here).
        Err(TransportError::RankLost { reason, .. }) => {
            // An actor call that never got there may always go again.
            if let Msg::ActorCall { args: a, .. } = msg
                && let Some(Sent {
                    work: Work::ActorCall { args, attempts, .. },
                    ..
                }) = lock(&c.sent).get_mut(&object)
            {
                *args = Some(a.clone());
                *attempts = 0;
            }
            let known = lock(&c.lost).contains(&rank);
            let taken = known.then(|| lock(&c.sent).remove(&object)).flatten();
            if let Some(s) = taken {
                orphan(c, object, s, rank, &reason);
            }
        }
        Err(e) => {
            let taken = lock(&c.sent).remove(&object);
            if let Some(s) = taken {
                if task {
                    c.in_flight[rank as usize].fetch_sub(1, Ordering::Relaxed);
                }
                c.transport.expect_reply(false);
                s.slot.complete(Stored::Error(send_error(rank, &e)));
            }
        }
    }
}

/// Handles one event from the transport (on the receive thread, or on the
/// transport's own thread through [`event_handler`]).
fn on_event(inner: &Arc<Inner>, c: &Cluster, ev: Event) {
    match ev {
        Event::Frame { from, bytes } => {
            c.heartbeat.heard(from);
            match wire::decode(&bytes) {
                Ok(msg) => handle(inner, c, from, msg),
                Err(e) => {
                    tracing::error!("rank {}: undecodable frame from rank {from}: {e}", c.rank);
                    // Before its `Hello`: most likely another build.
                    if lock(&c.totals)[from as usize].is_none() {
                        lock(&c.incompatible).get_or_insert(format!(
                            "rank {from} sent a frame this rank cannot read before its Hello \
                             ({e}): the ranks run different builds or versions of Ferry"
                        ));
                        c.heard.notify_all();
                    } else {
                        // Whoever waits for that frame would wait forever:
                        // the rank is lost (MPI: the job ends naming it).
                        let why = format!("rank {from} sent a frame this rank cannot decode: {e}");
                        if let Err(e) = c.transport.declare_lost(from, &why) {
                            tracing::error!("could not declare rank {from} lost: {e}");
                        }
                    }
                }
            }
        }
        Event::RankLost { rank, reason } => rank_lost(inner, c, rank, &reason),
    }
}

/// The handler the transport calls with each event it receives. A panic
/// in it ends the rank, as one in the receive thread does.
fn event_handler(weak: Weak<Inner>) -> ferry_transport::Handler {
    Box::new(move |ev| {
        // Frees arrive as messages on this thread: it must not wait for space.
        ferry_store::never_wait_on_this_thread();
        let run = std::panic::AssertUnwindSafe(|| {
            let Some(inner) = weak.upgrade() else { return };
            crate::log::set_thread_rank(inner.rank);
            let Some(c) = inner.cluster() else { return };
            if !c.stop.load(Ordering::Acquire) {
                on_event(&inner, c, ev);
            }
        });
        if let Err(p) = std::panic::catch_unwind(run) {
            let message = format!(
                "internal error handling a message: {}",
                crate::task::cell::panic_message(p.as_ref())
            );
            match weak.upgrade() {
                Some(inner) => match inner.cluster() {
                    Some(c) => c
                        .transport
                        .abort(&format!("rank {}: {message}", inner.rank)),
                    None => {
                        eprintln!("ferry: rank {}: {message}", inner.rank);
                        std::process::exit(70);
                    }
                },
                None => {
                    eprintln!("ferry: {message}");
                    std::process::exit(70);
                }
            }
        }
    })
}

fn net_main(inner: Weak<Inner>, transport: Arc<dyn Transport>) {
    // Frees arrive as messages on this thread: it must not wait for space.
    ferry_store::never_wait_on_this_thread();
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let Some(c) = inner.cluster() else { return };
        if c.stop.load(Ordering::Acquire) {
            return;
        }
        match transport.recv(Some(Duration::from_millis(50))) {
            Ok(Some(ev)) => on_event(&inner, c, ev),
            Ok(None) => {}
            Err(e) => {
                c.end(Err(Error::Init(format!("transport closed: {e}"))));
                return;
            }
        }
    }
}

fn handle(inner: &Arc<Inner>, c: &Cluster, from: Rank, msg: Msg) {
    match msg {
        Msg::Hello {
            protocol,
            build,
            totals,
            host,
            store,
        } => {
            if let Some(why) = wire::incompatible(from, protocol, build, crate::private::build_id())
            {
                tracing::error!("{why}");
                lock(&c.incompatible).get_or_insert(why);
                c.heard.notify_all();
                return;
            }
            lock(&c.places)[from as usize] = Some((host, PathBuf::from(store)));
            lock(&c.totals)[from as usize] = Some(totals.into_iter().collect());
            c.heard.notify_all();
        }
        Msg::Submit {
            object,
            fn_id,
            args,
            opts,
        } => {
            let opts = opts.into_options();
            let task = opts
                .name
                .clone()
                .unwrap_or_else(|| format!("function {fn_id:016x}"));
            execute(inner, c, from, object, task, |rt| {
                crate::private::invoke_with(rt, fn_id, &opts, &args)
            })
        }
        Msg::Done {
            object,
            result,
            contained,
        } => done(inner, c, from, object, result, contained),
        Msg::Free { object } => {
            let freed = lock(&c.held).remove(&object);
            if let Some(r) = &freed {
                r.slot.unlend();
            }
            drop(freed); // outside the lock: this may free the result
        }
        Msg::Shutdown => {
            c.heartbeat.finish();
            c.end(Ok(()))
        }
        Msg::Heartbeat => {} // counted as a sign of life in `on_event`
        Msg::PingPong { iters } => {
            if let Err(e) = c.transport.raw_ping_pong(from, iters as usize, false) {
                tracing::warn!("rank {}: raw ping-pong with rank {from}: {e}", c.rank);
            }
        }
        Msg::Cancel { object, recursive } => {
            let slot = lock(&c.executing).get(&object).and_then(Weak::upgrade);
            if let Some(p) = slot.and_then(|s| s.producer()) {
                p.cancel(recursive);
            }
        }
        Msg::TimelineRequest => {
            let events = inner.pool.timeline.snapshot();
            let _ = c.send(from, &Msg::TimelineReply { events });
        }
        Msg::TimelineReply { events } => {
            c.transport.expect_reply(false);
            c.timelines.deposit(events);
        }
        Msg::StateRequest => {
            let state = crate::runtime::rank_state(inner);
            let _ = c.send(from, &Msg::StateReply { state });
        }
        Msg::StateReply { state } => {
            c.transport.expect_reply(false);
            c.states.deposit(state);
        }
        msg @ (Msg::CreateActor { .. }
        | Msg::ActorCall { .. }
        | Msg::AddActorBorrow { .. }
        | Msg::RemoveActorBorrow { .. }
        | Msg::KillActor { .. }
        | Msg::ActorRestarted { .. }
        | Msg::ActorGone { .. }) => crate::cluster::remote_actor::handle(inner, c, from, msg),
        other => borrow_handlers(inner, c, from, other),
    }
}

/// Step 3 on the executor: `invoke` decodes the call and submits it here
/// (a task, or a call of an actor that lives here); `Done` goes back to
/// `from` when its result is ready.
pub(crate) fn execute(
    inner: &Arc<Inner>,
    c: &Cluster,
    from: Rank,
    object: u64,
    task: String,
    invoke: impl FnOnce(&Runtime) -> Result<ObjectRef<Untyped>>,
) {
    let rt = Runtime::from_inner(inner.clone());
    let (invoked, borrows) = collect_borrows(|| invoke(&rt));
    match invoked {
        Ok(out) => {
            lock(&c.executing).insert(object, Arc::downgrade(&out.slot));
            let reply = Arc::new(Reply {
                rt: Arc::downgrade(inner),
                to: from,
                object,
                task,
                out: out.clone(),
                latch: OnceLock::new(),
            });
            // `Done` goes out when the result is ready and every borrow made
            // while decoding the arguments is acked.
            let r2 = reply.clone();
            let latch = Latch::new(2, move || r2.send_done());
            let _ = reply.latch.set(latch.clone());
            after_acks(c, &borrows, move || latch.hit());
            if !out.slot.add_waiter(Waiter::Task(reply.clone())) {
                reply.dep_ready();
            }
        }
        Err(e) => fail_call(c, from, object, WireError::from_error(&e, &task, c.rank)),
    }
}

/// Answers a `Submit` or `ActorCall` that could not even start.
pub(crate) fn fail_call(c: &Cluster, to: Rank, object: u64, error: WireError) {
    let _ = c.send(
        to,
        &Msg::Done {
            object,
            result: WireResult::Failed(error),
            contained: Vec::new(),
        },
    );
}

/// Sends `Done` when a task run for another rank completes.
struct Reply {
    rt: Weak<Inner>,
    to: Rank,
    object: u64,
    task: String,
    out: ObjectRef<Untyped>,
    latch: OnceLock<Arc<Latch>>,
}

impl DepWaiter for Reply {
    fn dep_ready(self: Arc<Self>) {
        if let Some(l) = self.latch.get() {
            l.hit();
        }
    }
}

impl Reply {
    fn send_done(&self) {
        let Some(inner) = self.rt.upgrade() else {
            return;
        };
        let Some(c) = inner.cluster() else { return };
        lock(&c.executing).remove(&self.object);
        let mut contained = Vec::new();
        let result = match self.out.slot.get() {
            Some(Stored::Value(v)) => {
                contained = v._contained.iter().filter_map(wire_ref).collect();
                let result = WireResult::of(v, &self.task, c.rank);
                if matches!(result, WireResult::At { .. }) || !contained.is_empty() {
                    // Kept (with the refs it holds) until the owner's `Free`.
                    lock(&c.held).insert(self.object, self.out.clone());
                }
                result
            }
            Some(Stored::Error(e)) => {
                WireResult::Failed(WireError::from_error(e, &self.task, c.rank))
            }
            None => return,
        };
        self.out.slot.mark_observed();
        let _ = c.send(
            self.to,
            &Msg::Done {
                object: self.object,
                result,
                contained,
            },
        );
    }
}

/// Step 3 on the owner: the result arrives.
fn done(
    inner: &Arc<Inner>,
    c: &Cluster,
    from: Rank,
    object: u64,
    result: WireResult,
    contained: Vec<WireRef>,
) {
    let Some(sent) = lock(&c.sent).remove(&object) else {
        return;
    };
    match &sent.work {
        Work::Task { .. } => {
            c.in_flight[sent.rank as usize].fetch_sub(1, Ordering::Relaxed);
        }
        Work::ActorCall { actor, .. } => {
            if let WireResult::Failed(e) = &result {
                crate::cluster::remote_actor::note_call_failed(c, *actor, e);
            }
        }
    }
    c.transport.expect_reply(false);
    finish_done(inner, c, from, object, sent, result, contained, false);
}

/// The rest of [`done`]: the result copied into this rank's store, the
/// slot completed, the executor told it may free its copy. This (message)
/// thread never waits for space: when the store has no room now, the copy
/// is finished on a thread of its own that may spill and wait
/// (`may_wait`), and the executor keeps its copy until then, so a result is
/// never dropped because the owner's store was full for a moment.
#[allow(clippy::too_many_arguments)]
fn finish_done(
    inner: &Arc<Inner>,
    c: &Cluster,
    from: Rank,
    object: u64,
    sent: Sent,
    result: WireResult,
    contained: Vec<WireRef>,
    may_wait: bool,
) {
    let needs_free = matches!(result, WireResult::At { .. }) || !contained.is_empty();
    let tag = sent.type_tag;
    let len = match &result {
        WireResult::Inline(bytes) => Some(bytes.len()),
        WireResult::At { len, .. } => Some(*len as usize),
        WireResult::Failed(_) => None,
    };
    let block = match len.map(|len| inner.arena.alloc(len)) {
        Some(Err(
            ferry_store::StoreError::Full { .. }
            | ferry_store::StoreError::Held { .. }
            | ferry_store::StoreError::ShmTooSmall { .. },
        )) if !may_wait => {
            let weak = Arc::downgrade(inner);
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-r{}-result", c.rank))
                .spawn(move || {
                    let Some(inner) = weak.upgrade() else { return };
                    crate::log::set_thread_rank(inner.rank);
                    if let Some(c) = inner.cluster() {
                        finish_done(&inner, c, from, object, sent, result, contained, true);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a thread to wait for room for a result: {e}");
            }
            return;
        }
        other => other,
    };
    let mut stored = match (result, block) {
        (WireResult::Failed(w), _) => Stored::Error(w.into_error()),
        (_, Some(Err(e))) => Stored::Error(e.into()),
        (WireResult::Inline(bytes), Some(Ok(block))) => {
            fill_in(inner, tag, sent.type_name, block, |dst| {
                dst.copy_from_slice(&bytes);
                Ok(())
            })
        }
        (WireResult::At { offset, .. }, Some(Ok(block))) => {
            fill_in(inner, tag, sent.type_name, block, |dst| {
                read_recorded(inner, c, from, offset, dst, || {
                    format!("result {object:016x} from rank {from}")
                })
                .map_err(|e| Error::Store(format!("reading the result from rank {from}: {e}")))
            })
        }
        (_, None) => Stored::Error(Error::Store("a result without bytes".into())),
    };
    // Borrow the objects the result refers to before the executor lets go.
    let (kept, pending) = collect_borrows(|| {
        contained
            .iter()
            .filter_map(|r| match *r {
                WireRef::Object(id) => lookup(inner, ObjectId::from_u64(id))
                    .ok()
                    .map(|s| s as KeepAlive),
                WireRef::Actor { id, host } => crate::cluster::remote_actor::keep(inner, id, host),
            })
            .collect::<Vec<_>>()
    });
    let slot = sent.slot.clone();
    if let Stored::Value(v) = &mut stored {
        let refs = kept
            .iter()
            .filter_map(|k| k.clone().downcast::<Slot>().ok())
            .map(|s| Arc::downgrade(&s))
            .collect();
        v._contained = kept;
        // Kept to rebuild what the result refers to if its owner is lost.
        c.lineage.record(object, sent, &contained, refs);
    }
    slot.complete(stored);
    if needs_free {
        let t = c.transport.clone();
        after_acks(c, &pending, move || {
            let _ = t.send(from, wire::encode(&Msg::Free { object }));
        });
    }
}

/// A one-sided read of `dst.len()` bytes at `offset` of rank `from`'s
/// arena, on the timeline as a transfer named by `name`.
fn read_recorded(
    inner: &Inner,
    c: &Cluster,
    from: Rank,
    offset: u64,
    dst: &mut [u8],
    name: impl FnOnce() -> String,
) -> std::result::Result<(), ferry_transport::TransportError> {
    let t = inner.pool.timeline.start();
    let read = c.transport.read(from, offset as usize, dst);
    if inner.pool.timeline.is_on() {
        let bytes = dst.len() as u64;
        inner
            .pool
            .timeline
            .record(t, crate::timeline::Kind::Transfer, name(), bytes);
    }
    read
}

fn copy_in(
    inner: &Inner,
    type_tag: TypeTag,
    type_name: impl Into<std::borrow::Cow<'static, str>>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Stored {
    match inner.arena.alloc(len) {
        Ok(block) => fill_in(inner, type_tag, type_name, block, fill),
        Err(e) => Stored::Error(e.into()),
    }
}

/// [`copy_in`] into a block already allocated.
fn fill_in(
    inner: &Inner,
    type_tag: TypeTag,
    type_name: impl Into<std::borrow::Cow<'static, str>>,
    mut block: ferry_store::BlockMut,
    fill: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Stored {
    if let Err(e) = fill(block.as_mut_slice()) {
        return Stored::Error(e);
    }
    // Bytes from another process are checked at the first get.
    Stored::Value(StoredValue::received(
        Bytes::Own(inner.arena.seal(block.freeze())),
        type_tag,
        type_name.into(),
    ))
}

/// Step 4: a rank is gone.
fn rank_lost(inner: &Arc<Inner>, c: &Cluster, rank: Rank, reason: &str) {
    tracing::error!("rank {}: rank {rank} was lost: {reason}", c.rank);
    lock(&c.lost).push(rank);
    // Objects it owned: their borrows end here (work waiting for their
    // acks goes on), and those not here yet are rebuilt or fail.
    let orphaned: Vec<Arc<Slot>> = lock(&c.borrowed)
        .values()
        .filter_map(Weak::upgrade)
        .filter(|s| s.borrow().is_some_and(|b| b.owner == rank))
        .collect();
    let latches: Vec<Arc<Latch>> = {
        let mut awaiting = lock(&c.awaiting);
        orphaned
            .iter()
            .flat_map(|s| {
                if let Some(b) = s.borrow() {
                    b.acked.store(true, Ordering::Release);
                }
                awaiting.remove(&s.id.as_u64()).unwrap_or_default()
            })
            .collect()
    };
    for l in latches {
        l.hit();
    }
    let missing: Vec<Arc<Slot>> = orphaned.into_iter().filter(|s| !s.is_ready()).collect();
    if !missing.is_empty() {
        crate::cluster::lineage::rebuild(inner, c, rank, reason, missing);
    }
    c.send_releases(c.releases.rank_lost(rank));
    crate::cluster::remote_actor::rank_lost(c, rank, reason);
    // Its borrows end: what only it held is freed (outside the locks).
    for slot in c.lent.drop_rank(rank) {
        slot.unlend();
    }
    if rank == 0 && c.rank != 0 {
        c.end(Err(Error::Init(format!(
            "rank 0 (the driver) was lost: {reason}"
        ))));
        return;
    }
    let orphans: Vec<(u64, Sent)> = {
        let mut sent = lock(&c.sent);
        let ids: Vec<u64> = sent
            .iter()
            .filter(|(_, s)| s.rank == rank)
            .map(|(k, _)| *k)
            .collect();
        // In the order they were made (ids grow per rank): resent calls to
        // one actor must keep their caller's order (HashMap order does not).
        let mut ids = ids;
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|k| sent.remove(&k).map(|s| (k, s)))
            .collect()
    };
    for (object, s) in orphans {
        orphan(c, object, s, rank, reason);
    }
    let _ = inner;
}

/// A frame that could not be sent to `to`.
fn send_error(to: Rank, e: &TransportError) -> Error {
    Error::Task(Box::new(TaskError {
        task: "send".into(),
        rank: to,
        kind: FailureKind::System,
        message: e.to_string(),
        attempts: 1,
    }))
}

/// Work that was in flight to `rank` when it was lost (taken out of
/// `sent`): a task is sent again while its retries allow, an actor call
/// goes to `remote_actor`.
fn orphan(c: &Cluster, object: u64, mut s: Sent, rank: Rank, reason: &str) {
    c.transport.expect_reply(false);
    {
        let (fn_id, opts, max_retries, attempts) = match &mut s.work {
            Work::Task {
                fn_id,
                opts,
                max_retries,
                attempts,
                ..
            } => (*fn_id, opts.clone(), *max_retries, attempts),
            Work::ActorCall { .. } => {
                crate::cluster::remote_actor::orphaned_call(c, object, s, rank, reason);
                return;
            }
        };
        c.in_flight[rank as usize].fetch_sub(1, Ordering::Relaxed);
        let allowed = max_retries < 0 || *attempts <= max_retries as u32;
        if allowed {
            *attempts += 1;
            let tries = *attempts;
            s.rank = c.pick(&opts.into_options(), true).unwrap_or(c.rank);
            tracing::warn!(
                "resubmitting task {object:016x} to rank {} (attempt {tries})",
                s.rank
            );
            dispatch(c, object, s);
        } else {
            s.slot
                .complete(Stored::Error(Error::Task(Box::new(TaskError {
                    task: format!("function {fn_id:016x}"),
                    rank,
                    kind: FailureKind::System,
                    message: format!("rank {rank} was lost: {reason}"),
                    attempts: *attempts,
                }))));
        }
    }
}

/// The ref or handle a kept value stands for, if it names one.
fn wire_ref(k: &KeepAlive) -> Option<WireRef> {
    if let Some(s) = k.downcast_ref::<Slot>() {
        return Some(WireRef::Object(s.id.as_u64()));
    }
    k.downcast_ref::<crate::actor::engine::HeldHandle>()
        .map(|h| WireRef::Actor {
            id: h.id.as_u64(),
            host: h.host,
        })
}

/// Counts down to running a closure once: used to send `Done` or `Free`
/// only after every borrow it depends on is acked.
pub(crate) struct Latch {
    remaining: AtomicUsize,
    then: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Latch {
    fn new(count: usize, then: impl FnOnce() + Send + 'static) -> Arc<Latch> {
        Arc::new(Latch {
            remaining: AtomicUsize::new(count),
            then: Mutex::new(Some(Box::new(then))),
        })
    }

    fn hit(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(f) = lock(&self.then).take()
        {
            f();
        }
    }
}

thread_local! {
    /// Borrows made on this thread whose ack is still to come (see [`collect_borrows`]).
    static NEW_BORROWS: std::cell::RefCell<Option<Vec<u64>>> = const { std::cell::RefCell::new(None) };
}

/// Notes that this thread made a borrow of `id` (an object or actor) whose
/// ack is still to come.
pub(crate) fn note_new_borrow(id: u64) {
    NEW_BORROWS.with(|b| {
        if let Some(v) = b.borrow_mut().as_mut() {
            v.push(id);
        }
    });
}

/// Runs `f` (a decoding) and returns the borrows it made that are not acked yet.
fn collect_borrows<R>(f: impl FnOnce() -> R) -> (R, Vec<u64>) {
    let outer = NEW_BORROWS.with(|b| b.borrow_mut().replace(Vec::new()));
    let r = f();
    let mine = NEW_BORROWS.with(|b| std::mem::replace(&mut *b.borrow_mut(), outer));
    (r, mine.unwrap_or_default())
}

/// The live slot for `id` on this rank: its own object, or a borrow of a
/// foreign one (made on first sight, with `AddBorrow` to the owner).
pub(crate) fn lookup(inner: &Arc<Inner>, id: ObjectId) -> Result<Arc<Slot>> {
    let local = inner.exports.object(id);
    let Some(c) = inner.cluster() else {
        return local;
    };
    if local.is_ok() || id.rank() == c.rank {
        return local;
    }
    let (slot, fresh) = {
        let mut map = lock(&c.borrowed);
        match map.get(&id.as_u64()).and_then(Weak::upgrade) {
            Some(s) => (s, false),
            None => {
                let s = Slot::borrowed(id, id.rank(), Arc::<Inner>::downgrade(inner));
                map.insert(id.as_u64(), Arc::downgrade(&s));
                (s, true)
            }
        }
    };
    if fresh && lock(&c.lost).contains(&id.rank()) {
        if let Some(b) = slot.borrow() {
            b.acked.store(true, Ordering::Release);
        }
        slot.complete(Stored::Error(Error::Unknown(format!(
            "{id} (its owner, rank {}, was lost)",
            id.rank()
        ))));
        return Ok(slot);
    }
    if fresh {
        c.releases.borrowing(id.as_u64(), id.rank());
        let _ = c.send(
            id.rank(),
            &Msg::AddBorrow {
                object: id.as_u64(),
            },
        );
    }
    let acked = slot
        .borrow()
        .is_some_and(|b| b.acked.load(Ordering::Acquire));
    if !acked {
        note_new_borrow(id.as_u64());
    }
    Ok(slot)
}

/// Runs `then` once every object in `ids` has its borrow acked.
fn after_acks(c: &Cluster, ids: &[u64], then: impl FnOnce() + Send + 'static) {
    let latch = Latch::new(ids.len() + 1, then);
    {
        let mut awaiting = lock(&c.awaiting);
        let borrowed = lock(&c.borrowed);
        for id in ids {
            let acked = borrowed
                .get(id)
                .and_then(Weak::upgrade)
                .is_none_or(|s| s.borrow().is_none_or(|b| b.acked.load(Ordering::Acquire)))
                && c.actors.acked(*id);
            if acked {
                latch.hit();
            } else {
                awaiting.entry(*id).or_default().push(latch.clone());
            }
        }
    }
    latch.hit();
}

/// A borrowed slot needs its value: read straight from where the owner's
/// `BorrowAck` said it is, or else ask the owner (`Fetch`).
pub(crate) fn fetch(inner: &Arc<Inner>, slot: &Slot, borrow: &crate::object::cell::Borrow) {
    let Some(c) = inner.cluster() else { return };
    // A lost owner's memory is never read once its loss is known: here
    // (`lost`, after `rank_lost` ran) or at the transport (before its
    // `RankLost` event is handled, which then finds this slot not ready and
    // rebuilds or fails it). Same-node arenas stay mapped after their rank
    // dies, so without the second check a read in place would race the event.
    if lock(&c.lost).contains(&borrow.owner) || c.transport.is_lost(borrow.owner) {
        return; // being rebuilt, or failed, by `rank_lost`
    }
    if let Some((offset, len, type_name)) = borrow.at.get() {
        let stored = stored_at(
            inner,
            c,
            borrow.owner,
            slot.id.as_u64(),
            type_name.clone(),
            *offset,
            *len,
        );
        slot.complete(stored);
        return;
    }
    c.transport.expect_reply(true);
    let fetch = Msg::Fetch {
        object: slot.id.as_u64(),
    };
    match c.transport.send(borrow.owner, wire::encode(&fetch)) {
        Ok(()) => {}
        // Its `RankLost` is queued: `rank_lost` finds this slot not ready
        // and rebuilds or fails it.
        Err(TransportError::RankLost { .. }) => c.transport.expect_reply(false),
        // Nobody will answer: the getter hears why now.
        Err(e) => {
            c.transport.expect_reply(false);
            slot.complete(Stored::Error(send_error(borrow.owner, &e)));
        }
    }
}

/// Objects up to this size travel inside the `BorrowAck` itself.
const EAGER_MAX: usize = 256;

/// What a `BorrowAck` tells of a sealed object: its bytes when tiny, else
/// where it lies in this rank's arena.
fn ack_value(slot: &Slot) -> Option<WireValue> {
    let Some(Stored::Value(v)) = slot.get() else {
        return None;
    };
    // A spilled object is not read back on this (message) thread: the
    // borrower's `Fetch` gets it.
    if v.block.is_spilled() {
        return None;
    }
    let len = v.block.len();
    let result = if len <= EAGER_MAX {
        WireResult::Inline(v.block.access().ok()?.as_slice().to_vec())
    } else {
        WireResult::At {
            offset: v.block.lend()?.ok()? as u64,
            len: len as u64,
        }
    };
    Some(WireValue {
        type_name: v.type_name.to_string(),
        result,
    })
}

/// The value of `object` at `offset..offset + len` of rank `from`'s arena:
/// viewed in place when `from` is on this node, else read one-sidedly into
/// this rank's arena.
fn stored_at(
    inner: &Inner,
    c: &Cluster,
    from: Rank,
    object: u64,
    type_name: String,
    offset: u64,
    len: u64,
) -> Stored {
    let tag = TypeTag::named(&type_name);
    let fits = |s: &ReadOnlySegment| {
        (offset as usize)
            .checked_add(len as usize)
            .is_some_and(|end| end <= s.len())
    };
    match c.neighbour(from) {
        // Same node: view the owner's bytes in place (zero copy).
        Some(seg) if fits(&seg) => Stored::Value(StoredValue::received(
            Bytes::Mapped {
                seg,
                offset: offset as usize,
                len: len as usize,
            },
            tag,
            type_name.into(),
        )),
        _ => copy_in(inner, tag, type_name, len as usize, |d| {
            read_recorded(inner, c, from, offset, d, || {
                format!("object {object:016x} from rank {from}")
            })
            .map_err(|e| {
                Error::Store(format!(
                    "reading object {object:016x} from rank {from}: {e}"
                ))
            })
        }),
    }
}

/// The last borrowed ref of `id` on this rank is gone.
pub(crate) fn unborrow(inner: &Arc<Inner>, id: ObjectId, owner: Rank) {
    let Some(c) = inner.cluster() else { return };
    {
        let mut map = lock(&c.borrowed);
        if map.get(&id.as_u64()).is_some_and(|w| w.strong_count() == 0) {
            map.remove(&id.as_u64());
        }
    }
    if !c.stop.load(Ordering::Acquire) {
        let msg = Msg::RemoveBorrow {
            object: id.as_u64(),
        };
        c.send_releases(c.releases.release(owner, msg));
    }
}

/// The owner's answer to a `Fetch`: sent when the object is ready.
struct ValueReply {
    rt: Weak<Inner>,
    to: Rank,
    slot: Arc<Slot>,
}

impl DepWaiter for ValueReply {
    fn dep_ready(self: Arc<Self>) {
        // Reading a spilled object back may wait for space, which must not
        // happen on the message thread that will bring the frees.
        if let Some(Stored::Value(v)) = self.slot.get()
            && v.block.is_spilled()
        {
            let spawned = std::thread::Builder::new()
                .name("ferry-restore".into())
                .spawn({
                    let me = Arc::clone(&self);
                    move || me.reply()
                });
            if spawned.is_ok() {
                return;
            }
        }
        self.reply();
    }
}

impl ValueReply {
    fn reply(&self) {
        let Some(inner) = self.rt.upgrade() else {
            return;
        };
        let Some(c) = inner.cluster() else { return };
        let (type_name, result) = match self.slot.get() {
            Some(Stored::Value(v)) => {
                // The borrower's borrow keeps the object here while it reads.
                let what = self.slot.id.to_string();
                (v.type_name.to_string(), WireResult::of(v, &what, c.rank))
            }
            Some(Stored::Error(e)) => (
                String::new(),
                WireResult::Failed(WireError::from_error(e, &self.slot.id.to_string(), c.rank)),
            ),
            None => return,
        };
        let _ = c.send(
            self.to,
            &Msg::Value {
                object: self.slot.id.as_u64(),
                type_name,
                result,
            },
        );
    }
}

fn borrow_handlers(inner: &Arc<Inner>, c: &Cluster, from: Rank, msg: Msg) {
    match msg {
        Msg::AddBorrow { object } => {
            let found = inner.exports.object(ObjectId::from_u64(object));
            let ok = found.is_ok();
            let value = found.as_ref().ok().and_then(|s| ack_value(s));
            if let Ok(slot) = found {
                c.lent.add(object, from, slot);
            }
            let _ = c.send(from, &Msg::BorrowAck { object, ok, value });
        }
        Msg::RemoveBorrow { object } => {
            let gone = c.lent.remove(object, from);
            if let Some(slot) = &gone {
                // Its last borrower is done with it: it may be spilled again.
                slot.unlend();
            }
            drop(gone); // outside the lock: this may free the object
        }
        Msg::BorrowAck { object, ok, value } => {
            c.send_releases(c.releases.acked(object));
            let (slot, latches) = {
                let mut awaiting = lock(&c.awaiting);
                let slot = lock(&c.borrowed).get(&object).and_then(Weak::upgrade);
                if let Some(b) = slot.as_ref().and_then(|s| s.borrow()) {
                    b.acked.store(true, Ordering::Release);
                }
                c.actors.ack(object, ok, from);
                (slot, awaiting.remove(&object).unwrap_or_default())
            };
            if let (Some(slot), false) = (&slot, ok) {
                slot.complete(Stored::Error(Error::Unknown(format!(
                    "{} (freed by its owner, rank {from}, before it could be borrowed)",
                    slot.id
                ))));
            }
            if let (Some(slot), Some(v)) = (&slot, value) {
                match v.result {
                    WireResult::Inline(bytes) => {
                        let tag = TypeTag::named(&v.type_name);
                        slot.complete(copy_in(inner, tag, v.type_name, bytes.len(), |d| {
                            d.copy_from_slice(&bytes);
                            Ok(())
                        }));
                    }
                    WireResult::At { offset, len } => {
                        if let Some(b) = slot.borrow() {
                            let _ = b.at.set((offset, len, v.type_name));
                        }
                    }
                    WireResult::Failed(_) => {}
                }
            }
            drop(slot);
            for l in latches {
                l.hit();
            }
        }
        Msg::Fetch { object } => {
            let id = ObjectId::from_u64(object);
            let slot = inner
                .exports
                .object(id)
                .or_else(|e| c.lent.get(object).ok_or(e));
            match slot {
                Ok(slot) => {
                    let reply = Arc::new(ValueReply {
                        rt: Arc::downgrade(inner),
                        to: from,
                        slot: slot.clone(),
                    });
                    if !slot.add_waiter(Waiter::Task(reply.clone())) {
                        reply.dep_ready();
                    }
                }
                Err(e) => {
                    let result =
                        WireResult::Failed(WireError::from_error(&e, &id.to_string(), c.rank));
                    let _ = c.send(
                        from,
                        &Msg::Value {
                            object,
                            type_name: String::new(),
                            result,
                        },
                    );
                }
            }
        }
        Msg::Value {
            object,
            type_name,
            result,
        } => {
            c.transport.expect_reply(false);
            let Some(slot) = lock(&c.borrowed).get(&object).and_then(Weak::upgrade) else {
                return;
            };
            let stored = match result {
                WireResult::Inline(bytes) => {
                    let tag = TypeTag::named(&type_name);
                    copy_in(inner, tag, type_name, bytes.len(), |d| {
                        d.copy_from_slice(&bytes);
                        Ok(())
                    })
                }
                WireResult::At { offset, len } => {
                    stored_at(inner, c, from, object, type_name, offset, len)
                }
                WireResult::Failed(w) => Stored::Error(w.into_error()),
            };
            slot.complete(stored);
        }
        _ => {}
    }
}

/// Every other live rank's timeline events, asked for now (rank 0's
/// `timeline`); ranks that do not answer by `deadline` are left out, with a
/// warning.
pub(crate) fn gather_timelines(c: &Cluster, deadline: Instant) -> Vec<crate::timeline::RankEvents> {
    gather(c, &c.timelines, &Msg::TimelineRequest, "timeline", deadline)
}

/// Every other live rank's state listing (see `state`).
pub(crate) fn gather_states(c: &Cluster, deadline: Instant) -> Vec<crate::state::RankState> {
    gather(c, &c.states, &Msg::StateRequest, "state", deadline)
}

/// Sends `request` to every other live rank and collects their replies in
/// `replies` until all are in or `deadline` passes.
fn gather<T>(
    c: &Cluster,
    replies: &crate::timeline::Replies<T>,
    request: &Msg,
    what: &str,
    deadline: Instant,
) -> Vec<T> {
    let _one = lock(&replies.one);
    replies.clear();
    let lost = lock(&c.lost).clone();
    let mut asked = 0;
    for r in (0..c.size).filter(|r| *r != c.rank && !lost.contains(r)) {
        c.transport.expect_reply(true);
        if c.send(r, request).is_ok() {
            asked += 1;
        } else {
            c.transport.expect_reply(false);
        }
    }
    let got = replies.wait_for(asked, deadline);
    if got.len() < asked {
        tracing::warn!(
            "{what}: {} of {asked} ranks did not answer in time",
            asked - got.len()
        );
    }
    got
}

impl Cluster {
    /// Objects that cross ranks, as this rank sees them (for `state`):
    /// its own that others borrow, and others' that it borrows.
    pub(crate) fn object_states(&self) -> Vec<crate::state::ObjectState> {
        let describe = |s: &Slot, owner: Rank, borrowers: Vec<Rank>| {
            let value = match s.get() {
                Some(Stored::Value(v)) => Some(v),
                _ => None,
            };
            crate::state::ObjectState {
                id: s.id.to_string(),
                size: value
                    .map(|v| v.block.len() as u64)
                    .or_else(|| s.borrow().and_then(|b| b.at.get().map(|(_, len, _)| *len))),
                owner,
                borrowers,
                here: value.is_some(),
                spilled: value.is_some_and(|v| v.block.is_spilled()),
            }
        };
        let mut out: Vec<_> = self
            .lent
            .entries()
            .into_iter()
            .map(|(_, slot, by)| describe(&slot, self.rank, by))
            .collect();
        let borrowed: Vec<Arc<Slot>> = lock(&self.borrowed)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for s in borrowed {
            let owner = s.borrow().map_or(s.id.rank(), |b| b.owner);
            out.push(describe(&s, owner, vec![self.rank]));
        }
        out
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

/// Asks the rank running the task behind `object` (sent from here) to
/// cancel it; false when no task of this rank's is out there for it.
pub(crate) fn cancel_remote(c: &Cluster, object: u64, recursive: bool) -> bool {
    let to = match lock(&c.sent).get(&object) {
        Some(Sent {
            rank,
            work: Work::Task { .. },
            ..
        }) => *rank,
        _ => return false,
    };
    let _ = c.send(to, &Msg::Cancel { object, recursive });
    true
}

/// An [`Error::Infeasible`] from this rank's ledger, told in the cluster's
/// terms: the most any live rank has and the total of all ranks (a task
/// runs on one rank, so a sum that would fit is no help). Other errors pass.
pub(crate) fn explain_infeasible(inner: &Inner, e: Error) -> Error {
    match e {
        Error::Infeasible {
            what,
            resource,
            asked,
            largest,
            total,
            hint,
            ..
        } => {
            let (largest, largest_rank, total) = match inner.cluster() {
                Some(c) => c.largest(&resource),
                None => (largest, inner.rank, total),
            };
            Error::Infeasible {
                what,
                resource,
                asked,
                largest,
                largest_rank,
                total,
                hint,
            }
        }
        other => other,
    }
}
