//! Real ranks over MPI: a progress thread receives; senders and readers
//! call MPI themselves under one lock. Ranks of one node send through
//! shared-memory rings once attached ([`MpiTransport::attach_rings`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded, unbounded};
use mpi::Threading;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Destination, MatchedReceiveVec, Source};

use crate::node::{Incoming, Outgoing, Route};
use crate::quiet::QuietWatch;
use crate::ring::{Look, Mem, MpiPosts, Nap, SharedBytes, WakeWord};
use crate::rma::{
    MpiLock, PendingSend, ReadRequest, Serving, Window, abort_world, at_exit, serving,
};
use crate::wait::recv_until;
use crate::{Event, Handler, Rank, Region, Transport, TransportError};

/// The MPI tag every transport frame is sent with (on `MPI_COMM_WORLD`).
/// Code run through [`MpiTransport::with_world`] must not use it.
pub const FRAME_TAG: i32 = 0x0FE7;
/// The tag of [`Transport::raw_ping_pong`]'s messages.
const PING_TAG: i32 = 0x0FE8;

/// Longest idle sleep of the progress thread between two polls of MPI.
const MAX_BACKOFF: Duration = Duration::from_millis(1);
/// After this long with nothing to do (no frame, no command, no answer
/// awaited), the rank counts as idle and polls less often.
const DEEP_IDLE: Duration = Duration::from_millis(100);
/// Longest sleep between two polls of an idle rank. Measured on the 2-core
/// VM (2 ranks under mpirun, 5 idle seconds): with the 1 ms cap alone each
/// idle rank used ~3% of a core, all threads counted; with this one, under
/// 1%. The price: the first frame reaching a rank idle for over 100 ms
/// waits up to 5 ms to be noticed (a conversation in progress never does:
/// see `PROGRESS_SPIN`, and the runtime's `expect_reply`).
const DEEP_IDLE_BACKOFF: Duration = Duration::from_millis(5);
/// How long the progress thread keeps polling (yielding the core between
/// polls) after its last piece of work before it starts sleeping: long
/// enough that a rank in a conversation (a request served, then a one-sided
/// read of the answer that may need this rank's progress) never waits on
/// its sleep. Measured on the 2-core VM with 2 ranks: raising it from 200 µs
/// to 2 ms took a cross-rank 1 MiB get from 3 ms to 0.9 ms and async
/// cross-rank tasks from 166k/s to 219k/s, while an idle rank's CPU use went
/// from ~2% to ~3% of a core.
const PROGRESS_SPIN: Duration = Duration::from_millis(2);
/// Longest sleep of the progress thread when another thread held the
/// receiving turn as it looked (see `Direct::wait`): it may have missed a
/// frame, which then waits this long at most (was: up to
/// [`DEEP_IDLE_BACKOFF`]).
const TURN_HELD_NAP: Duration = Duration::from_micros(100);
/// First idle sleep after the spin phase.
const MIN_BACKOFF: Duration = Duration::from_micros(10);

/// Whether MPI is up in this process and not yet closed: a process that
/// exits meanwhile (`exit` in user code, a panic out of `main`) ends the
/// whole job through `MPI_Abort` (see [`abort_if_running_at_exit`]), so no
/// other rank waits for it.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Run by `exit` (`atexit`): if MPI is still up, the process is leaving a
/// running job; end every rank now, saying so.
extern "C" fn abort_if_running_at_exit() {
    if RUNNING.swap(false, Ordering::AcqRel) {
        eprintln!(
            "ferry: this rank exited while the job was running (exit or a panic before \
             the runtime shut down): ending every rank (MPI_Abort)"
        );
        abort_world(1);
    }
}

/// What the MPI library provided, for logs and `ferry info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpiInfo {
    /// The thread level granted (`Funneled`, `Serialized` or `Multiple`).
    pub threading: String,
    /// `MPI_Get_library_version`.
    pub library: String,
}

type WorldJob = Box<dyn FnOnce(&SimpleCommunicator) + Send>;

enum Cmd {
    Send { to: Rank, bytes: Vec<u8> },
    Read(ReadRequest),
    Run(WorldJob),
    Close,
}

/// What the progress thread reports once MPI is up.
struct Started {
    rank: Rank,
    size: u32,
    region_lens: Vec<usize>,
    info: MpiInfo,
}

/// What [`MpiTransport::attach_rings`] takes: this rank's inbox and the
/// inboxes of its node's other ranks that it mapped.
pub struct NodeRings {
    /// This rank's inbox ([`format_inbox`](crate::format_inbox)ed, sized
    /// [`inbox_len`](crate::inbox_len) of the node's rank count), or
    /// `None` when it could not be made (then every rank sends to this one
    /// by MPI).
    pub inbox: Option<Arc<dyn SharedBytes>>,
    /// The node's ranks, this one included, in rank order: a sender's slot
    /// in every inbox is its index here.
    pub node_ranks: Vec<Rank>,
    /// The other ranks' inboxes this rank mapped (read-write, shared).
    pub peers: Vec<(Rank, Arc<dyn SharedBytes>)>,
}

/// What [`MpiTransport::attach_rings`] set up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RingReport {
    /// Ranks this rank now sends to through a ring.
    pub to: Vec<Rank>,
    /// Ranks that now send to this one through a ring.
    pub from: Vec<Rank>,
    /// Mapped inboxes that were refused (not a valid inbox of that rank),
    /// with why: frames to those ranks keep going by MPI.
    pub refused: Vec<(Rank, TransportError)>,
}

/// A rank's endpoint over MPI (feature `mpi`).
///
/// [`start`](MpiTransport::start) spawns a progress thread that initializes
/// MPI (`MPI_THREAD_SERIALIZED` asked, at least `FUNNELED` required),
/// creates a passive-target RMA window over the rank's [`Region`] (locked
/// once for the whole run, `MPI_Win_lock_all`) and then loops: probes for
/// incoming frames (`MPI_Improbe` + `MPI_Mrecv`) and hands each to the
/// runtime's handler right there, posts frames other threads queued, tests
/// sends for completion, and when idle spins ~2 ms, then sleeps with
/// exponential backoff from 10 µs to 1 ms — ranks share cores with workers,
/// so an idle rank must not burn one.
///
/// With `SERIALIZED` granted, no thread stands between a caller and MPI:
/// whichever thread needs MPI takes one lock and calls it. A sending thread
/// posts its own `MPI_Isend` (when the lock is free and nothing is queued
/// before its frame), and a reading thread issues its own `MPI_Get` +
/// `MPI_Win_flush_local`. With only `FUNNELED`, every call stays on the
/// progress thread.
///
/// MPI can be initialized once per process: start one `MpiTransport` per
/// process, and do not initialize MPI elsewhere.
///
/// A dead rank ends the whole job: MPI's default error handler aborts and
/// `mpirun` kills the other ranks, so this transport never produces
/// [`Event::RankLost`].
pub struct MpiTransport {
    rank: Rank,
    size: u32,
    region: Region,
    region_lens: Vec<usize>,
    info: MpiInfo,
    cmds: Sender<Cmd>,
    /// Frames to self skip MPI.
    self_tx: Sender<Event>,
    events: Receiver<Event>,
    closed: AtomicBool,
    /// Answers the runtime waits for (see `Transport::expect_reply`).
    expecting: Arc<AtomicUsize>,
    /// Where incoming frames go once set (see `Transport::set_handler`).
    handler: Arc<std::sync::OnceLock<Handler>>,
    /// Lets a sending thread post its frame itself.
    direct: Arc<Direct>,
    join: Mutex<Option<JoinHandle<Result<(), TransportError>>>>,
    close_result: Mutex<Option<Result<(), TransportError>>>,
}

impl std::fmt::Debug for MpiTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiTransport")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("info", &self.info)
            .finish()
    }
}

fn level(t: Threading) -> u8 {
    match t {
        Threading::Single => 0,
        Threading::Funneled => 1,
        Threading::Serialized => 2,
        Threading::Multiple => 3,
    }
}

impl MpiTransport {
    /// [`Transport::send`] of a frame owned or borrowed (copied only where
    /// it goes).
    fn send_frame(&self, to: Rank, bytes: Cow<'_, [u8]>) -> Result<(), TransportError> {
        self.check_open()?;
        self.check_rank(to)?;
        if to == self.rank {
            return self.send_self(bytes.into_owned());
        }
        // A rank of this node takes it through its ring when it fits (no
        // MPI, no lock but the ring's); otherwise it goes numbered by MPI.
        let bytes = match self.direct.outgoing.get() {
            Some(out) => match out.route(to, bytes) {
                Route::Ring => return Ok(()),
                Route::Mpi(bytes) => bytes,
            },
            None => bytes.into_owned(),
        };
        self.send_by_mpi(to, bytes)
    }

    /// A frame to this rank itself: straight to its event queue.
    fn send_self(&self, bytes: Vec<u8>) -> Result<(), TransportError> {
        self.self_tx
            .send(Event::Frame {
                from: self.rank,
                bytes,
            })
            .map_err(|_| TransportError::Closed)
    }

    /// A frame to another rank by MPI (numbered already if it is a ring
    /// peer's).
    fn send_by_mpi(&self, to: Rank, bytes: Vec<u8>) -> Result<(), TransportError> {
        if bytes.len() > i32::MAX as usize {
            return Err(TransportError::FrameTooLarge {
                len: bytes.len(),
                max: i32::MAX as usize,
            });
        }
        // Post it from this thread when nothing is queued before it (no
        // thread handoff): whoever holds the MPI lock holds it only for a
        // few calls (never while running a handler), so wait for it.
        if self.direct.allowed.load(Ordering::Acquire) && self.cmds.is_empty() {
            let mpi = self.direct.mpi.lock();
            if self.cmds.is_empty() && !self.closed.load(Ordering::Acquire) {
                let large = bytes.len() > EAGER_FRAME;
                let p = PendingSend::start_on_world(to, FRAME_TAG, bytes)?;
                lock(&self.direct.pending).push_back(p);
                drop(mpi);
                self.direct.posted(to);
                // Whoever receives next tests it for completion; a large
                // frame needs progress on this side to leave, so the
                // progress thread is woken for it.
                if large {
                    self.direct.wake();
                }
                return Ok(());
            }
        }
        self.command(Cmd::Send { to, bytes })
    }

    /// Initializes MPI on a new progress thread and exposes `region` to the
    /// other ranks. Collective: every rank of `MPI_COMM_WORLD` must call it.
    ///
    /// # Errors
    ///
    /// [`TransportError::Mpi`] when MPI was already initialized in this
    /// process, offers less than `MPI_THREAD_FUNNELED`, or window creation
    /// fails.
    pub fn start(region: Region) -> Result<Arc<MpiTransport>, TransportError> {
        let (cmd_tx, cmd_rx) = unbounded();
        let (ev_tx, ev_rx) = unbounded();
        let (started_tx, started_rx) = bounded(1);
        let thread_region = region.clone();
        let thread_events = ev_tx.clone();
        let expecting = Arc::new(AtomicUsize::new(0));
        let thread_expecting = expecting.clone();
        let handler = Arc::new(std::sync::OnceLock::new());
        let thread_handler = handler.clone();
        let direct = Arc::new(Direct {
            mpi: MpiLock::new(),
            receiving: Mutex::new(Incoming::none(0)),
            pending: Mutex::new(VecDeque::new()),
            allowed: AtomicBool::new(false),
            outgoing: OnceLock::new(),
            local_wake: WakeWord::local(),
            inbox_wake: OnceLock::new(),
            turns: AtomicU64::new(0),
            quiet: QuietWatch::new(),
            mpi_posts: MpiPosts::default(),
        });
        let thread_direct = direct.clone();
        let handle = std::thread::Builder::new()
            .name("ferry-mpi-progress".into())
            .spawn(move || {
                progress_main(
                    thread_region,
                    cmd_rx,
                    thread_events,
                    started_tx,
                    thread_expecting,
                    thread_handler,
                    thread_direct,
                )
            })
            .map_err(|e| TransportError::Mpi(format!("cannot spawn the progress thread: {e}")))?;
        let started = match started_rx.recv() {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let _ = handle.join();
                return Err(e);
            }
            Err(_) => {
                return Err(match handle.join() {
                    Ok(Err(e)) => e,
                    _ => TransportError::Mpi("the progress thread died while starting".into()),
                });
            }
        };
        RUNNING.store(true, Ordering::Release);
        static AT_EXIT: std::sync::Once = std::sync::Once::new();
        AT_EXIT.call_once(|| {
            if !at_exit(abort_if_running_at_exit) {
                eprintln!("ferry: could not register the exit hook; an exiting rank may leave others waiting");
            }
        });
        Ok(Arc::new(MpiTransport {
            rank: started.rank,
            size: started.size,
            region,
            region_lens: started.region_lens,
            info: started.info,
            cmds: cmd_tx,
            self_tx: ev_tx,
            events: ev_rx,
            closed: AtomicBool::new(false),
            expecting,
            handler,
            direct,
            join: Mutex::new(Some(handle)),
            close_result: Mutex::new(None),
        }))
    }

    /// Thread level and library version.
    pub fn info(&self) -> &MpiInfo {
        &self.info
    }

    /// Length of every rank's exposed region (exchanged at start).
    pub fn region_lens(&self) -> &[usize] {
        &self.region_lens
    }

    /// Runs `f` on the progress thread with `MPI_COMM_WORLD` and returns its
    /// result (benchmarks, collectives). The progress loop pauses meanwhile.
    /// `f` must not use tag [`FRAME_TAG`]; a collective in `f` must be
    /// entered by every rank.
    ///
    /// # Errors
    ///
    /// [`TransportError::Closed`] after [`close`](Transport::close) or when
    /// `f` panicked (which also stops the progress thread).
    pub fn with_world<R: Send + 'static>(
        &self,
        f: impl FnOnce(&SimpleCommunicator) -> R + Send + 'static,
    ) -> Result<R, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        // Called by a frame handler on the progress thread: run it here,
        // under the MPI lock (handlers run outside it).
        let mut f = Some(f);
        if let Some(r) = serving(|_, world| {
            let _mpi = self.direct.mpi.lock();
            f.take().map(|f| f(world))
        }) {
            return r.ok_or(TransportError::Closed);
        }
        let f = f.take().ok_or(TransportError::Closed)?;
        let (tx, rx) = bounded(1);
        let job: WorldJob = Box::new(move |world| {
            let _ = tx.send(f(world));
        });
        self.command(Cmd::Run(job))?;
        rx.recv().map_err(|_| TransportError::Closed)
    }

    /// Gives every rank every rank's `bytes` (index = rank): a collective
    /// that every rank must enter, for the few facts ranks exchange at start
    /// (which node each is on, what its launcher gave it).
    ///
    /// # Errors
    ///
    /// As [`with_world`](Self::with_world).
    pub fn all_gather_bytes(&self, bytes: Vec<u8>) -> Result<Vec<Vec<u8>>, TransportError> {
        self.with_world(move |world| {
            use mpi::datatype::PartitionMut;
            let size = world.size() as usize;
            let mine = bytes.len() as i32;
            let mut counts = vec![0i32; size];
            world.all_gather_into(&mine, &mut counts[..]);
            let displs: Vec<i32> = counts
                .iter()
                .scan(0i32, |at, &c| {
                    let d = *at;
                    *at += c;
                    Some(d)
                })
                .collect();
            let total: i32 = counts.iter().sum();
            let mut all = vec![0u8; total as usize];
            {
                let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
                world.all_gather_varcount_into(&bytes[..], &mut part);
            }
            counts
                .iter()
                .zip(&displs)
                .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
                .collect()
        })
    }

    /// Connects this rank to its node's other ranks through shared-memory
    /// rings: from here on, a frame to one of them goes through its ring
    /// when it fits ([`RING_FRAME_MAX`](crate::RING_FRAME_MAX)) and the
    /// ring has room, else by MPI, and the receiver hands each sender's
    /// frames out in the order they were sent, whichever path each took.
    /// The progress thread then parks on the inbox's wake word, which a
    /// sender on the node rings after a push: a frame reaches an idle rank
    /// at once rather than at its next poll.
    ///
    /// **Collective**: every rank calls it once, before any frame is sent
    /// (the runtime does so at start), with what it could map; a ring is
    /// used only where the sender mapped the receiver's inbox. A rank that
    /// has none passes `inbox: None` and is sent to by MPI alone.
    ///
    /// # Errors
    ///
    /// [`TransportError::Ring`] when called twice, or when some rank could
    /// not take the rings others opened to it (every rank then fails the
    /// same way); [`TransportError::Closed`].
    pub fn attach_rings(&self, node: NodeRings) -> Result<RingReport, TransportError> {
        self.check_open()?;
        if self.direct.outgoing.get().is_some() {
            return Err(TransportError::Ring("rings are attached already".into()));
        }
        let me = self.rank;
        let slot_of = |r: Rank| node.node_ranks.iter().position(|&n| n == r);
        let mut report = RingReport::default();
        let mut outgoing = Outgoing::none(self.size);
        let mut opened = vec![0u8; self.size as usize];
        match slot_of(me) {
            Some(slot) => {
                for (to, mem) in node.peers {
                    if to >= self.size || to == me {
                        continue;
                    }
                    match outgoing.open(to, Mem::new(mem), slot) {
                        Ok(()) => {
                            opened[to as usize] = 1;
                            report.to.push(to);
                        }
                        Err(e) => report.refused.push((to, e)),
                    }
                }
            }
            None => report.refused.extend(node.peers.into_iter().map(|(to, _)| {
                (
                    to,
                    TransportError::Ring(format!("rank {me} is not among its node's ranks")),
                )
            })),
        }
        let all = self.all_gather_bytes(opened)?;
        let mut incoming = Incoming::none(self.size);
        let mut taken = Ok(());
        let wake = node
            .inbox
            .as_ref()
            .map(|inbox| WakeWord::of_inbox(Mem::new(inbox.clone()), me));
        for (from, theirs) in all.iter().enumerate() {
            let from = from as Rank;
            if theirs.get(me as usize) != Some(&1) {
                continue;
            }
            let opened = match (&node.inbox, slot_of(from)) {
                (Some(inbox), Some(slot)) => incoming.open(me, from, Mem::new(inbox.clone()), slot),
                _ => Err(TransportError::Ring(format!(
                    "rank {from} opened a ring to rank {me}, which has no inbox slot for it"
                ))),
            };
            match opened {
                Ok(()) => report.from.push(from),
                Err(e) => taken = Err(e),
            }
        }
        let wake = match wake {
            Some(Ok(w)) => Some(w),
            Some(Err(e)) => {
                taken = taken.and(Err(e));
                None
            }
            None => None,
        };
        // Nobody sends before every rank has taken its rings; and if one
        // could not, every rank says so.
        let verdicts = self.all_gather_bytes(vec![u8::from(taken.is_ok())])?;
        taken?;
        if let Some(bad) = verdicts.iter().position(|v| v.first() != Some(&1)) {
            return Err(TransportError::Ring(format!(
                "rank {bad} could not take the rings its node's ranks opened to it"
            )));
        }
        *lock(&self.direct.receiving) = incoming;
        if let Some(w) = wake {
            let _ = self.direct.inbox_wake.set(w);
        }
        let _ = self.direct.outgoing.set(outgoing);
        // The progress thread may sleep on the old word: let it move over.
        self.direct.local_wake.wake(Nap::Light);
        Ok(report)
    }

    fn command(&self, cmd: Cmd) -> Result<(), TransportError> {
        self.cmds.send(cmd).map_err(|_| TransportError::Closed)?;
        // Cheap when the thread is not parked (a load, no syscall).
        self.direct.wake();
        Ok(())
    }

    fn check_rank(&self, rank: Rank) -> Result<(), TransportError> {
        if rank < self.size {
            Ok(())
        } else {
            Err(TransportError::UnknownRank {
                rank,
                size: self.size,
            })
        }
    }

    fn check_open(&self) -> Result<(), TransportError> {
        if self.closed.load(Ordering::Acquire) {
            Err(TransportError::Closed)
        } else {
            Ok(())
        }
    }
}

impl Transport for MpiTransport {
    fn declare_lost(&self, rank: Rank, reason: &str) -> Result<(), TransportError> {
        if rank >= self.size {
            return Err(TransportError::UnknownRank {
                rank,
                size: self.size,
            });
        }
        self.abort(&format!(
            "rank {}: {reason}; an MPI job cannot go on without a rank: ending every rank",
            self.rank
        ))
    }

    fn abort(&self, message: &str) -> ! {
        RUNNING.store(false, Ordering::Release);
        eprintln!("ferry: {message}");
        abort_world(1)
    }

    fn expect_reply(&self, awaiting: bool) {
        if awaiting {
            self.expecting.fetch_add(1, Ordering::Relaxed);
        } else {
            // Saturating: a stray answer never wraps the count.
            let _ = self
                .expecting
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    fn rank(&self) -> Rank {
        self.rank
    }

    fn poll(&self) -> bool {
        // Callers poll again and again (a spinner at every look): a turn
        // probes MPI now and then where the rings cover every peer (see
        // `Incoming::needs_mpi`); the caller's last turn before it sleeps
        // (`poll_before_sleep`) probes it.
        self.poll_turn(false)
    }

    fn poll_before_sleep(&self) -> bool {
        self.poll_turn(true)
    }

    fn poll_if_quiet(&self, quiet: Duration) -> bool {
        // Only a rank that awaits answers (see `expect_reply`): what else
        // arrives is new work, which a busy rank has no core for anyway.
        self.expecting.load(Ordering::Relaxed) > 0
            && self.direct.quiet_for(quiet)
            && self.poll_turn(true)
    }

    fn frame_paths(&self) -> (u64, u64) {
        self.direct.outgoing.get().map_or((0, 0), Outgoing::counts)
    }

    fn set_handler(&self, handler: Handler) -> Result<(), Handler> {
        self.handler.set(handler)?;
        // The progress thread may be asleep: let it see the handler soon.
        self.direct.wake();
        Ok(())
    }

    fn raw_ping_pong(
        &self,
        peer: Rank,
        iters: usize,
        lead: bool,
    ) -> Result<Option<Vec<Duration>>, TransportError> {
        self.check_rank(peer)?;
        if peer == self.rank {
            return Err(TransportError::UnknownRank {
                rank: peer,
                size: self.size,
            });
        }
        let rtts = self.with_world(move |w| {
            let other = w.process_at_rank(peer as i32);
            let mut buf = [0u8; 8];
            let warmup = iters / 10;
            let mut rtts = Vec::with_capacity(if lead { iters } else { 0 });
            for i in 0..warmup + iters {
                if lead {
                    let start = Instant::now();
                    other.send_with_tag(&buf[..], PING_TAG);
                    other.receive_into_with_tag(&mut buf[..], PING_TAG);
                    if i >= warmup {
                        rtts.push(start.elapsed());
                    }
                } else {
                    other.receive_into_with_tag(&mut buf[..], PING_TAG);
                    other.send_with_tag(&buf[..], PING_TAG);
                }
            }
            rtts
        })?;
        Ok(Some(rtts))
    }

    fn size(&self) -> u32 {
        self.size
    }

    fn send(&self, to: Rank, bytes: Vec<u8>) -> Result<(), TransportError> {
        self.send_frame(to, Cow::Owned(bytes))
    }

    fn send_from(&self, to: Rank, bytes: &[u8]) -> Result<(), TransportError> {
        self.send_frame(to, Cow::Borrowed(bytes))
    }

    fn recv(&self, timeout: Option<Duration>) -> Result<Option<Event>, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return match self.events.try_recv() {
                Ok(ev) => Ok(Some(ev)),
                Err(_) => Err(TransportError::Closed),
            };
        }
        recv_until(&self.events, timeout, || self.check_open())
    }

    fn read(&self, from: Rank, offset: usize, dst: &mut [u8]) -> Result<(), TransportError> {
        self.check_open()?;
        self.check_rank(from)?;
        if from == self.rank {
            return self.region.read_local(from, offset, dst);
        }
        let region_len = self.region_lens[from as usize];
        match offset.checked_add(dst.len()) {
            Some(end) if end <= region_len => {}
            _ => {
                return Err(TransportError::OutOfBounds {
                    rank: from,
                    offset,
                    len: dst.len(),
                    region_len,
                });
            }
        }
        if dst.is_empty() {
            return Ok(());
        }
        // Any thread issues its own MPI_Get under the MPI lock, with no
        // thread in between (frame handlers run outside the lock, so this
        // holds for them too).
        if self.direct.allowed.load(Ordering::Acquire) {
            return self.direct.mpi.lock().get(from, offset, dst);
        }
        // Only the progress thread may call MPI (FUNNELED): a frame handler
        // running there reads right there; others ask it.
        let mut dst = Some(dst);
        if let Some(r) = serving(|window, _| {
            dst.take()
                .map(|d| window.get(from, offset, d))
                .unwrap_or(Err(TransportError::Closed))
        }) {
            return r;
        }
        let dst = dst.take().ok_or(TransportError::Closed)?;
        ReadRequest::run(from, offset, dst, |req| self.command(Cmd::Read(req)))
    }

    /// Stops the progress thread and shuts MPI down: posts every frame
    /// queued before, waits until they have left, frees the RMA window and
    /// finalizes MPI.
    ///
    /// **Collective**: every rank must call it (`MPI_Win_free` and
    /// `MPI_Finalize` synchronize the ranks); the runtime's shutdown
    /// protocol (rank 0 tells every rank to stop) guarantees that. Frames
    /// sent to a rank after it closed are lost. Idempotent: later calls
    /// return the first call's result. Events received before remain
    /// available to [`recv`](Transport::recv).
    fn close(&self) -> Result<(), TransportError> {
        let mut join = self.join.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = join.take() {
            RUNNING.store(false, Ordering::Release);
            self.closed.store(true, Ordering::Release);
            let _ = self.cmds.send(Cmd::Close);
            self.direct.wake();
            let result = handle.join().unwrap_or_else(|_| {
                Err(TransportError::Mpi("the progress thread panicked".into()))
            });
            *self.close_result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        }
        drop(join);
        self.close_result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or(Ok(()))
    }
}

/// The progress thread: initialize, serve, shut down.
fn progress_main(
    region: Region,
    cmds: Receiver<Cmd>,
    events: Sender<Event>,
    started: Sender<Result<Started, TransportError>>,
    expecting: Arc<AtomicUsize>,
    handler: Arc<std::sync::OnceLock<Handler>>,
    direct: Arc<Direct>,
) -> Result<(), TransportError> {
    // A start that fails lets go of the region's names first (see
    // `Exposed::start_failed`), then says so.
    let fail = |e: TransportError| {
        region.start_failed();
        let _ = started.send(Err(e.clone()));
        Err(e)
    };
    let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Serialized) else {
        return fail(TransportError::Mpi(
            "MPI is already initialized in this process".into(),
        ));
    };
    if level(threading) < level(Threading::Funneled) {
        return fail(TransportError::Mpi(format!(
            "MPI offers thread level {threading:?}; FUNNELED or better is needed"
        )));
    }
    // Other threads may post sends themselves only where MPI allows calls
    // from any thread, one at a time.
    direct.allowed.store(
        level(threading) >= level(Threading::Serialized),
        Ordering::Release,
    );
    let world = universe.world();
    let rank = world.rank() as Rank;
    let size = world.size() as u32;
    let mine = region.len() as u64;
    let mut lens = vec![0u64; size as usize];
    world.all_gather_into(&mine, &mut lens[..]);
    let window = match Window::create(&world, region.clone()) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    // The window holds the region from here on.
    drop(region);
    if direct.allowed.load(Ordering::Acquire) {
        // Readers on any thread get from the window themselves.
        direct.mpi.lock().share(&window);
    }
    let info = MpiInfo {
        threading: format!("{threading:?}"),
        library: mpi::environment::library_version()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    let _ = started.send(Ok(Started {
        rank,
        size,
        region_lens: lens.iter().map(|&l| l as usize).collect(),
        info,
    }));

    let sink = Sink {
        events: &events,
        handler: &handler,
    };
    let served = {
        let _serving = Serving::new(&window, &world);
        serve(&world, &window, &cmds, &sink, &expecting, &direct)
    };
    // From here on no thread but this one calls MPI. The receiving turn
    // first, as everywhere (a poller's handler holds it while it sends).
    let mut incoming = lock(&direct.receiving);
    let mut mpi = direct.mpi.lock();
    let freed = window.free(&mut mpi).map(drop);
    // Frames that arrived before every rank freed the window are still
    // handed out (to the queue: the runtime has stopped handling them).
    let _ = poll_frames(
        &world,
        &direct,
        &mut incoming,
        &Sink {
            events: &events,
            handler: &std::sync::OnceLock::new(),
        },
    );
    drop(world);
    // Dropping the universe calls MPI_Finalize.
    drop(universe);
    served.and(freed)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What lets a thread other than the progress thread call MPI itself: the
/// lock that serializes MPI calls (the library runs at
/// `MPI_THREAD_SERIALIZED`) and carries the RMA window, and the sends in
/// flight, which the progress thread tests for completion. A reader takes
/// the lock and issues its own `MPI_Get`. A sender that finds the lock
/// taken, or frames still queued for the progress thread (whose order must
/// be kept), queues its frame instead.
struct Direct {
    mpi: MpiLock,
    /// Held by the one thread at a time that receives and handles frames
    /// (the progress thread, or a waiting thread polling for itself), so
    /// that frames from one sender are handled in the order they were sent;
    /// it guards the rings this rank receives through.
    receiving: Mutex<Incoming>,
    pending: Mutex<VecDeque<PendingSend>>,
    /// False when MPI granted less than `SERIALIZED`: every call stays on
    /// the progress thread.
    allowed: AtomicBool,
    /// The rings to this node's other ranks, once attached.
    outgoing: OnceLock<Outgoing>,
    /// What the progress thread parks on before the rings are attached (or
    /// without them).
    local_wake: WakeWord,
    /// Once attached: the word in this rank's inbox, which the node's other
    /// ranks wake after a push.
    inbox_wake: OnceLock<WakeWord>,
    /// Receiving turns taken so far (counted under `receiving`).
    turns: AtomicU64,
    /// How long `turns` has stood still, as busy threads saw it.
    quiet: QuietWatch,
    /// The count of frames ring peers sent by MPI (in this rank's inbox)
    /// that the last finished probe of MPI covered.
    mpi_posts: MpiPosts,
}

impl Direct {
    /// Whether no thread has taken a receiving turn for `quiet` or more
    /// (as far as the callers' looks tell).
    fn quiet_for(&self, quiet: Duration) -> bool {
        self.quiet
            .still_for(self.turns.load(Ordering::Relaxed), quiet)
    }

    /// A frame was posted by MPI to `to`: counted in a ring peer's inbox,
    /// whose progress thread is woken to receive it (as a push into its
    /// ring would), or probes MPI before it sleeps (`WakeWord::post`).
    fn posted(&self, to: Rank) {
        if let Some(out) = self.outgoing.get() {
            out.post(to);
        }
    }

    /// Wakes the progress thread if it parks (a command was queued).
    fn wake(&self) {
        self.local_wake.wake(Nap::Light);
        if let Some(w) = self.inbox_wake.get() {
            w.wake(Nap::Light);
        }
    }

    /// Parks the progress thread up to `timeout`, unless a command is
    /// queued (`cmds`), a ring holds a frame, or a wake comes; for a short
    /// nap only when a ring peer's frame sent by MPI is owed a probe
    /// ([`sleep_look`]). Senders on
    /// this node wake it only from the longer sleeps of an idle rank
    /// ([`MAX_BACKOFF`] and up): in a conversation the waiting threads
    /// receive for themselves, and a `futex` wake per frame would cost each
    /// sender a system call and hand the core to this thread.
    fn wait(&self, timeout: Duration, cmds: &Receiver<Cmd>) {
        let word = self.inbox_wake.get().unwrap_or(&self.local_wake);
        let nap = if timeout >= MAX_BACKOFF {
            Nap::Deep
        } else {
            Nap::Light
        };
        // Checked after the sleep is announced, so a command queued (or a
        // frame pushed) before it is seen here, and one after it wakes us.
        word.wait(timeout, nap, || {
            let rings = match self.receiving.try_lock() {
                Ok(incoming) => Some(incoming.is_pending()),
                Err(_) => None,
            };
            let owed = self
                .inbox_wake
                .get()
                .is_some_and(|inbox| self.mpi_posts.owed(inbox));
            sleep_look(!cmds.is_empty(), rings, owed)
        });
    }
}

/// What the progress thread finds after announcing a sleep: whether a
/// command is queued, whether the rings hold a frame (`None`: another
/// thread holds the receiving turn and looks at them), and whether a ring
/// peer's frame sent by MPI came after the last probe began (`owed`).
///
/// Someone else holding the receiving turn takes what came before its
/// look, but not a frame pushed after its look and before this sleep was
/// announced (that push woke nobody): a short sleep then. An owed frame
/// whose wake came before the announcement gets a shorter nap and then a
/// turn that probes; a nap, not a spin, as that turn's probe may find the
/// MPI lock held and be put off.
fn sleep_look(cmds: bool, rings: Option<bool>, owed: bool) -> Look {
    match (cmds, rings) {
        (true, _) | (_, Some(true)) => Look::Work,
        (false, None) => Look::Unsure(TURN_HELD_NAP),
        (false, Some(false)) if owed => Look::Unsure(MIN_BACKOFF),
        (false, Some(false)) => Look::Nothing,
    }
}

/// Where the progress thread puts incoming events: the handler once the
/// runtime has set one, else the queue `recv` reads.
struct Sink<'a> {
    events: &'a Sender<Event>,
    handler: &'a std::sync::OnceLock<Handler>,
}

impl Sink<'_> {
    /// Hands out the frames of a turn: to the handler, which only borrows
    /// each (its buffer goes back to `incoming` for a later frame), else to
    /// the queue `recv` reads (the receiver lives in the transport: if it
    /// is gone nobody listens).
    fn put_frames(&self, frames: &mut Vec<(Rank, Vec<u8>)>, incoming: &mut Incoming) {
        for (from, bytes) in frames.drain(..) {
            match self.handler.get() {
                Some(h) => {
                    let ev = Event::Frame { from, bytes };
                    h(&ev);
                    if let Event::Frame { bytes, .. } = ev {
                        incoming.reuse(bytes);
                    }
                }
                None => {
                    let _ = self.events.send(Event::Frame { from, bytes });
                }
            }
        }
    }
}

/// The most frames one turn at receiving takes before handing them out.
const RECEIVE_BATCH: usize = 64;

impl MpiTransport {
    /// A receiving turn on the calling thread (see [`receive_turn`]).
    fn poll_turn(&self, thorough: bool) -> bool {
        if !self.direct.allowed.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
            return false;
        }
        let sink = Sink {
            events: &self.self_tx,
            handler: &self.handler,
        };
        // An MPI error here is the progress thread's to report (it meets
        // the same error at its next turn).
        receive_turn(&self.direct, &sink, thorough).unwrap_or(false)
    }
}

/// Frames up to this size leave at once (MPI's eager protocol on shared
/// memory and TCP starts above 4 KiB); a larger one needs the sender's
/// progress, so its sender wakes the progress thread.
const EAGER_FRAME: usize = 4096;

/// Receives what has arrived and hands it to `sink`, on the calling thread,
/// unless another thread is receiving or in MPI right now (it will see the
/// frames); whether there was anything. The MPI lock is held only while
/// receiving: handlers run without it, so they may send and read (each
/// taking the lock), and the receiving turn keeps their order. A turn that
/// finds nothing in the rings probes MPI at once when `thorough` (the
/// progress thread's turns, which are few once it sleeps), else now and
/// then (a spinner's, whose last turn before it sleeps is thorough; see
/// `Incoming::needs_mpi`).
fn receive_turn(direct: &Direct, sink: &Sink<'_>, thorough: bool) -> Result<bool, TransportError> {
    let Ok(mut incoming) = direct.receiving.try_lock() else {
        return Ok(false);
    };
    // Under the receiving lock: a plain increment, no read-modify-write.
    let turns = direct.turns.load(Ordering::Relaxed);
    direct.turns.store(turns.wrapping_add(1), Ordering::Relaxed);
    let mut frames = incoming.lend_batch();
    // The rings first: a frame there is handled without waiting for a
    // probe of MPI, which the turn makes only when it must (see
    // `Incoming::needs_mpi`); the numbers keep each sender's order.
    incoming.drain(&mut frames, RECEIVE_BATCH)?;
    // Someone else in MPI: the rings need no MPI lock, take theirs alone.
    if incoming.needs_mpi(!frames.is_empty(), thorough)
        && let Some(mpi) = direct.mpi.try_lock()
    {
        let posts = direct.inbox_wake.get().map(MpiPosts::before_probe);
        for _ in 0..RECEIVE_BATCH {
            match mpi.receive(FRAME_TAG)? {
                Some((from, bytes)) => incoming.take_mpi(from, bytes, &mut frames)?,
                None => {
                    if let Some(seen) = posts {
                        direct.mpi_posts.probed(seen);
                    }
                    break;
                }
            }
        }
        test_sends(direct)?;
        drop(mpi);
        let room = RECEIVE_BATCH.saturating_sub(frames.len());
        if room > 0 {
            incoming.drain(&mut frames, room)?;
        }
    }
    let any = !frames.is_empty();
    sink.put_frames(&mut frames, &mut incoming);
    incoming.return_batch(frames);
    Ok(any)
}

/// Tests the sends in flight (the caller holds the MPI lock) and forgets
/// the finished ones: how many are still in flight, and whether any
/// finished.
fn test_sends(direct: &Direct) -> Result<(usize, bool), TransportError> {
    let mut pending = lock(&direct.pending);
    let before = pending.len();
    let mut failed = Ok(());
    pending.retain_mut(|p| match p.test() {
        Ok(done) => !done,
        Err(e) => {
            failed = Err(e);
            true
        }
    });
    failed?;
    Ok((pending.len(), pending.len() != before))
}

/// Receives every frame that has arrived, by MPI on this thread (the only
/// one allowed to call it) and through the rings; whether there was any.
fn poll_frames(
    world: &SimpleCommunicator,
    direct: &Direct,
    incoming: &mut Incoming,
    sink: &Sink<'_>,
) -> Result<bool, TransportError> {
    let mut frames = incoming.lend_batch();
    let posts = direct.inbox_wake.get().map(MpiPosts::before_probe);
    while let Some(probed) = world
        .any_process()
        .immediate_matched_probe_with_tag(FRAME_TAG)
    {
        let (bytes, status) = probed.matched_receive_vec::<u8>();
        incoming.take_mpi(status.source_rank() as Rank, bytes, &mut frames)?;
    }
    if let Some(seen) = posts {
        direct.mpi_posts.probed(seen);
    }
    incoming.drain(&mut frames, usize::MAX)?;
    let any = !frames.is_empty();
    sink.put_frames(&mut frames, incoming);
    incoming.return_batch(frames);
    Ok(any)
}

/// The progress loop, until `Cmd::Close` (or the transport is dropped) and
/// every posted send has completed.
fn serve(
    world: &SimpleCommunicator,
    window: &Window,
    cmds: &Receiver<Cmd>,
    sink: &Sink<'_>,
    expecting: &AtomicUsize,
    direct: &Direct,
) -> Result<(), TransportError> {
    let mut closing = false;
    let mut idle_since: Option<Instant> = None;
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut busy = false;
        // Every MPI call below happens under the MPI lock, which other
        // threads take to post their sends themselves (see `Direct`).
        let mpi = direct.mpi.lock();
        while !closing {
            match cmds.try_recv() {
                Ok(Cmd::Send { to, bytes }) => {
                    let p = PendingSend::start(world, to, FRAME_TAG, bytes)?;
                    lock(&direct.pending).push_back(p);
                    direct.posted(to);
                }
                Ok(Cmd::Read(req)) => req.serve(window),
                Ok(Cmd::Run(job)) => job(world),
                Ok(Cmd::Close) | Err(TryRecvError::Disconnected) => closing = true,
                Err(TryRecvError::Empty) => break,
            }
            busy = true;
        }
        if !direct.allowed.load(Ordering::Acquire) {
            // FUNNELED: this thread alone calls MPI, and handles frames.
            // No other thread takes the receiving turn under FUNNELED.
            busy |= poll_frames(world, direct, &mut lock(&direct.receiving), sink)?;
        }
        let (in_flight, finished) = test_sends(direct)?;
        busy |= finished;
        drop(mpi);
        if direct.allowed.load(Ordering::Acquire) {
            busy |= receive_turn(direct, sink, true)?;
        }
        if closing && in_flight == 0 {
            return Ok(());
        }
        if busy {
            idle_since = None;
            backoff = MIN_BACKOFF;
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < PROGRESS_SPIN {
            // Let a runnable thread on this core (a worker, or the rank's own
            // thread waiting to hand us a frame) go first.
            std::thread::yield_now();
            continue;
        }
        if in_flight > 0 || expecting.load(Ordering::Relaxed) > 0 {
            // A send is in flight, or the runtime waits for an answer: keep
            // polling at the shortest interval so the exchange does not wait
            // on our sleep (large messages need both sides to progress).
            direct.wait(MIN_BACKOFF, cmds);
            continue;
        }
        // Sleep until woken by a new command (or, once idle, a frame from
        // this node) or the backoff passes; incoming frames and remote RMA
        // need no action from us when MPI progresses them in the
        // background, and are picked up at the next poll.
        direct.wait(backoff, cmds);
        let cap = if since.elapsed() > DEEP_IDLE {
            DEEP_IDLE_BACKOFF
        } else {
            MAX_BACKOFF
        };
        backoff = (backoff * 2).min(cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_thread_sleeps_only_when_nothing_is_owed() {
        // A queued command or a ring frame: no sleep, whatever else.
        for owed in [false, true] {
            assert_eq!(sleep_look(true, Some(false), owed), Look::Work);
            assert_eq!(sleep_look(true, None, owed), Look::Work);
            assert_eq!(sleep_look(false, Some(true), owed), Look::Work);
        }
        // The rings out of sight: a short sleep, owed or not.
        assert_eq!(sleep_look(false, None, false), Look::Unsure(TURN_HELD_NAP));
        assert_eq!(sleep_look(false, None, true), Look::Unsure(TURN_HELD_NAP));
        // A frame sent by MPI since the last probe began: a nap, then a turn.
        assert_eq!(
            sleep_look(false, Some(false), true),
            Look::Unsure(MIN_BACKOFF)
        );
        assert!(MIN_BACKOFF < MAX_BACKOFF);
        // Nothing at all: the whole sleep.
        assert_eq!(sleep_look(false, Some(false), false), Look::Nothing);
    }
}
