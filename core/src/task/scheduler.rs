//! The per-rank work-stealing scheduler.
//!
//! Worker threads each own a FIFO deque (crossbeam-deque); tasks submitted
//! from outside the pool go to a shared injector; an idle worker pops its
//! own deque, then takes a batch from the injector, then steals from the
//! others. Only tasks whose resources are granted enter the deques; the rest
//! wait in the pending tasks, one queue per distinct request, which every
//! release looks through for what fits (`task::pending`).
//!
//! # Threads
//!
//! The pool starts with one worker per assigned core (capped by the logical
//! CPU count) and grows only when a task is granted while no worker is idle:
//! a task blocked in `get` gives its CPUs back, and fractional or zero-CPU
//! tasks can run more at once than there are cores. So nested tasks never
//! deadlock, even with one CPU.
//!
//! # Running dependents on the completing thread
//!
//! When a task's completion makes a dependent ready, the first such
//! dependent (of this scheduler) is not queued: it is handed back to the
//! thread that completed the task, which runs it next, as tokio's LIFO slot
//! (`multi_thread/worker.rs`, `lifo_slot`). So a chain of dependent tasks
//! runs on one worker with no queue, no pending list and no wake-up between
//! its steps; only the dependents after the first, which another worker
//! could run at the same time, are queued (and wake one).
//!
//! 1. The completing thread calls [`Scheduler::complete_keeping_next`]
//!    around the completion of the output: it opens this thread's `NEXT`
//!    slot (`task::next`), and the first dependent whose last input that
//!    completes is put there (no grant, no queue, no notify).
//! 2. Once the completed task has given its resources back, the worker
//!    grants the kept dependent (`run_next`): granted, it moves it
//!    `WAITING` → `CLAIMED` and runs it at once; otherwise it
//!    goes the usual way (`make_ready`: the pending list). When the kept
//!    dependent asks for what the completed task held and no task was
//!    waiting for resources before the completion, the grant passes to it
//!    instead (`execute_handing`); when tasks wait and the oldest asks
//!    for the same, the grant passes to that one, which the worker runs
//!    next in the same way (and the kept dependent goes to `make_ready`).
//!    A thread that ran a task inline (a getter) hands the kept dependent
//!    to `make_ready`.
//! 3. A worker runs at most [`NEXT_BUDGET`] kept dependents in a row while
//!    other work waits; then the next one is queued behind that work, so a
//!    long chain cannot starve what is queued on a lone worker.
//! 4. An idle worker that spins for work receives from other ranks with
//!    its slot open too (`poll_idle_keeping`): the first task that what it
//!    received made ready is kept for it and run the same way
//!    (`run_received`), not queued, found and claimed.
//!
//! The slot is opened only around the completion itself and around an
//! idle worker's receive (which handles frames: it submits and completes,
//! and runs no task), never while user code runs: a task that blocks in
//! `get` and completes a producer inline keeps that producer's dependent in
//! the inner slot, which the inline run hands to `make_ready` before `get`
//! goes on, so nothing `get` waits for is ever held back.
//!
//! # Sleeping
//!
//! At most one idle worker at a time spins (the "searcher", as in tokio);
//! the others park. A push wakes a parked worker only when nobody searches.
//! The pusher's push and its read of the sleeper count, and the sleeper's
//! registration and its re-check of the queues, are each separated by a
//! SeqCst fence (Dekker's pattern), so a push is never missed by everybody.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::error::Error;
use crate::resources::ledger::Request;
use crate::resources::placement::{Parked, StartGate};
use crate::sync::lock;
use crate::task::cell::TaskCell;
use crate::task::grace::join_with_grace;
use crate::task::next;
use crate::task::pending::{Asks, Pending};
use crate::task::pool::TaskPool;
use crate::task::receiving::Receiving;
use crate::uncounted::List;

mod kept;
mod worker;

type TaskRef = Arc<TaskCell>;

/// How many requests of pending tasks a release tries, at most, before it
/// gives up (each refused once for all the tasks that ask the same; see
/// `task::pending`).
const PENDING_SCAN: usize = 64;

/// How many kept dependents a worker runs in a row while other work waits
/// (tokio's `MAX_LIFO_POLLS_PER_TICK` plays the same part).
const NEXT_BUDGET: u32 = 32;

pub(crate) struct Scheduler {
    injector: Injector<TaskRef>,
    stealers: Box<[OnceLock<Stealer<TaskRef>>]>,
    threads: AtomicUsize,
    /// Workers not running a task (including ones still starting).
    idle: AtomicUsize,
    searching: AtomicUsize,
    sleepers: Mutex<Vec<Arc<Parked>>>,
    sleeping: AtomicUsize,
    pending: Mutex<Pending<TaskRef>>,
    pending_len: AtomicUsize,
    /// The pending tasks' [`Pending::oldest`] and [`Pending::next_number`],
    /// as of the last change, for [`waits_from_before`](Self::waits_from_before).
    pending_oldest: AtomicU64,
    pending_next: AtomicU64,
    handles: Mutex<Vec<JoinHandle<()>>>,
    shutdown: AtomicBool,
    base_threads: usize,
    /// The rank's cores (its binding's CPUs).
    cores: usize,
    /// See [`warms`](Self::warms).
    warms: bool,
    spin: Duration,
    /// How workers receive from other ranks themselves (see `receiving`).
    pub(crate) receiving: Receiving,
    /// The longest last timed run of a task function whose ready tasks a
    /// submitting thread runs itself (see [`help`](Self::help)).
    help_max: Duration,
}

thread_local! {
    /// This thread's deque, if it is a worker (see [`Local`]).
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };

    /// The tasks a `drain_pending` on this thread granted, kept for reuse.
    static GRANTED: RefCell<Vec<(TaskRef, List<u32>)>> = const { RefCell::new(Vec::new()) };
}

/// A worker thread's deque, with whose scheduler it serves (its
/// [`key`](Scheduler::key)) and its index among the scheduler's stealers.
struct Local {
    key: usize,
    index: usize,
    deque: Worker<TaskRef>,
}

impl Asks for TaskRef {
    fn asks(&self) -> &Request {
        &self.request
    }
}

impl Scheduler {
    pub(crate) fn new(
        base_threads: usize,
        max_threads: usize,
        cores: usize,
        warms: bool,
        spin: Duration,
        help_max: Duration,
    ) -> Scheduler {
        Scheduler {
            injector: Injector::new(),
            stealers: (0..max_threads.max(1)).map(|_| OnceLock::new()).collect(),
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            searching: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::new()),
            sleeping: AtomicUsize::new(0),
            pending: Mutex::new(Pending::default()),
            pending_len: AtomicUsize::new(0),
            pending_oldest: AtomicU64::new(u64::MAX),
            pending_next: AtomicU64::new(0),
            handles: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
            base_threads: base_threads.max(1),
            cores: cores.max(1),
            warms,
            spin,
            receiving: Receiving::default(),
            help_max,
        }
    }

    /// Whether workers are running tasks now and leave a core of the rank
    /// free: a thread waiting for their work may spin on it rather than
    /// park (see `signal::spin_while_busy`).
    pub(crate) fn busy_with_a_core_free(&self) -> bool {
        let running = self
            .threads
            .load(Ordering::Relaxed)
            .saturating_sub(self.idle.load(Ordering::Relaxed));
        running > 0 && running < self.cores
    }

    /// Whether a task brings its dependents into its core's cache as it
    /// starts (see `Slot::warm_dependents`): unless every thread of the
    /// rank runs on one CPU (the process's mask at start, which its threads
    /// inherit: a rank `mpirun` bound to one core), where the thread that
    /// submitted them ran on this CPU too and the prefetches are only work
    /// (~250 instructions a step of Task Bench's 2-rank stencil, the two
    /// ranks together).
    pub(crate) fn warms(&self) -> bool {
        self.warms
    }

    /// How many pause hints a spinner of this rank waits before its first
    /// looks (see [`Receiving::first_pauses`]).
    pub(crate) fn first_pauses(&self) -> u32 {
        self.receiving.first_pauses()
    }

    /// Receives incoming work on the calling thread, if the rank has other
    /// ranks (an idle actor thread calls it while it spins; an idle worker
    /// calls [`poll_idle_keeping`](Self::poll_idle_keeping)).
    pub(crate) fn poll_idle(&self) {
        self.receiving.idle();
    }

    /// The last receive of a thread that spun with [`poll_idle`](Self::poll_idle)
    /// (or [`poll_idle_keeping`](Self::poll_idle_keeping)) and is about to
    /// park.
    pub(crate) fn poll_before_sleep(&self) {
        self.receiving.before_sleep();
    }

    /// Whether submitting threads may run ready tasks ([`help`](Self::help)).
    pub(crate) fn helps(&self) -> bool {
        !self.help_max.is_zero()
    }

    /// A thread that is not a worker (one that submits work) runs up to
    /// `max` ready tasks that no worker has taken yet, each only if its
    /// function's last timed run took at most `help_max`
    /// ([`Config::submitter_help`](crate::Config::submitter_help)); how
    /// many it ran. A worker that shares this thread's CPU cannot run while
    /// it does, and one that sleeps takes a wake-up (12-60 µs on the VMs
    /// Ferry targets) to start: a short task runs sooner here. A task not
    /// known to be short goes back to the queue for a worker; one never
    /// timed here also gets this CPU given up for a moment, so that a
    /// worker sharing it runs one and times its function.
    pub(crate) fn help(&self, pool: &Arc<TaskPool>, max: usize) -> usize {
        if self.help_max.is_zero()
            || self.injector.is_empty()
            || self.is_shutdown()
            || self.on_worker()
        {
            return 0;
        }
        let mut ran = 0;
        while ran < max {
            let cell = match self.injector.steal() {
                Steal::Success(t) => t,
                Steal::Retry => continue,
                Steal::Empty => break,
            };
            let last = pool.durations.last(cell.label);
            if last.is_none_or(|t| t > self.help_max) {
                self.injector.push(cell);
                self.notify(pool);
                if last.is_none() {
                    // Never timed here: a worker that shares this CPU gets
                    // it now, runs the task and so times its function.
                    thread::yield_now();
                }
                break;
            }
            if cell.claim() {
                // What the completion kept is queued, as after a getter's run.
                if let Some(next) = cell.execute(pool, || {}) {
                    self.make_ready(pool, next);
                }
                ran += 1;
            }
        }
        ran
    }

    /// What names this scheduler to a thread's `NEXT` slot (`task::next`)
    /// and to its worker deque: its address.
    ///
    /// A cell keeps it to be kept as its producer's next without a
    /// reference to its pool, a count every submitting and completing
    /// thread would otherwise update once per task.
    pub(crate) fn key(&self) -> usize {
        self as *const Scheduler as usize
    }

    /// Whether the calling thread is one of this scheduler's workers.
    fn on_worker(&self) -> bool {
        let key = self.key();
        LOCAL.with(|l| matches!(&*l.borrow(), Some(m) if m.key == key))
    }

    /// Starts the base pool.
    pub(crate) fn start(&self, pool: &Arc<TaskPool>) -> std::io::Result<()> {
        for _ in 0..self.base_threads {
            self.spawn_worker(pool)?;
        }
        Ok(())
    }

    /// Number of worker threads started so far.
    pub(crate) fn thread_count(&self) -> usize {
        self.threads.load(Ordering::Relaxed)
    }

    fn spawn_worker(&self, pool: &Arc<TaskPool>) -> std::io::Result<bool> {
        let index = self.threads.fetch_add(1, Ordering::AcqRel);
        if index >= self.stealers.len() {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            return Ok(false);
        }
        self.idle.fetch_add(1, Ordering::AcqRel);
        let worker = Worker::new_fifo();
        let _ = self.stealers[index].set(worker.stealer());
        let pool2 = pool.clone();
        let gate = StartGate::default();
        let gate2 = gate.clone();
        let spawned = thread::Builder::new()
            .name(format!("ferry-r{}-w{index}", pool.rank))
            .spawn(move || {
                gate2.wait();
                worker::worker_main(pool2, worker, index)
            });
        match spawned {
            Ok(h) => {
                pool.pinning.place_new_thread(&h, &gate, false);
                lock(&self.handles).push(h);
                Ok(true)
            }
            Err(e) => {
                self.idle.fetch_sub(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    /// Step 2 of a task's life: its arguments are ready.
    pub(crate) fn make_ready(&self, pool: &Arc<TaskPool>, cell: TaskRef) {
        if self.shutdown.load(Ordering::Acquire) {
            cell.abandon(Error::Shutdown);
            return;
        }
        let Some(cell) = next::keep(self.key(), cell) else {
            return;
        };
        if let Some(gpus) = pool.try_grant(&cell.request) {
            cell.set_grant(gpus);
            self.enqueue(pool, cell);
        } else {
            // Resources may have been released between the failed acquire
            // and the push: the same hold of the lock looks again, so the
            // task is not stranded.
            self.grant_pending(pool, Some(cell));
        }
    }

    /// Whether tasks wait for resources (a finished task's grant then goes
    /// to the oldest of them, or back to the ledger: see
    /// [`TaskCell::execute_handing`]).
    pub(crate) fn has_pending(&self) -> bool {
        self.pending_len.load(Ordering::SeqCst) != 0
    }

    /// Takes the oldest task waiting for resources if it asks for exactly
    /// `req`, for a grant of `req` handed on to it (see
    /// `TaskCell::execute_handing`): the task a release of `req` would
    /// grant first, taken without the release, the search of the pending
    /// tasks and the queue.
    pub(crate) fn take_pending_for(&self, req: &Request) -> Option<TaskRef> {
        if !self.has_pending() {
            return None;
        }
        let mut pending = lock(&self.pending);
        let taken = pending.take_oldest_if(req);
        self.pending_len.store(pending.len(), Ordering::Release);
        self.published(&pending);
        taken
    }

    /// A mark of the tasks waiting for resources now, for
    /// [`waits_from_before`](Self::waits_from_before).
    pub(crate) fn pending_mark(&self) -> u64 {
        self.pending_next.load(Ordering::Acquire)
    }

    /// Whether a task that was waiting for resources at `mark`
    /// ([`pending_mark`](Self::pending_mark)) still waits: one that came
    /// later (a completion's second dependent, found no CPU) does not
    /// stand before the dependent that completion kept.
    pub(crate) fn waits_from_before(&self, mark: u64) -> bool {
        self.has_pending() && self.pending_oldest.load(Ordering::Acquire) < mark
    }

    /// Publishes the pending tasks' oldest and next numbers (under their lock).
    fn published(&self, pending: &Pending<TaskRef>) {
        self.pending_oldest
            .store(pending.oldest(), Ordering::Release);
        self.pending_next
            .store(pending.next_number(), Ordering::Release);
    }

    /// Puts a granted task where a worker will find it, and wakes one.
    fn enqueue(&self, pool: &Arc<TaskPool>, cell: TaskRef) {
        if !cell.set_queued() {
            // Cancelled after it was granted: give the grant back (to a
            // waiting task).
            self.release(pool, &cell.request, &cell.granted_gpus());
            return;
        }
        if self.is_shutdown() {
            cell.abandon(Error::Shutdown);
            return;
        }
        let key = self.key();
        let leftover = LOCAL.with(|l| match &*l.borrow() {
            Some(m) if m.key == key => {
                m.deque.push(cell);
                None
            }
            _ => Some(cell),
        });
        if let Some(cell) = leftover {
            self.injector.push(cell);
        }
        self.notify(pool);
    }

    fn notify(&self, pool: &Arc<TaskPool>) {
        fence(Ordering::SeqCst);
        if self.searching.load(Ordering::SeqCst) > 0 {
            return;
        }
        if self.sleeping.load(Ordering::SeqCst) > 0 {
            let t = lock(&self.sleepers).pop();
            if let Some(t) = t {
                self.sleeping.fetch_sub(1, Ordering::SeqCst);
                t.wake();
                return;
            }
        }
        // No worker is idle: a thread starts for the work, unless a worker
        // has taken it meanwhile (one that had just given its CPU back
        // took the task granted that CPU; a second thread on one CPU then
        // only spun beside the submitter).
        if self.idle.load(Ordering::SeqCst) == 0
            && self.has_work()
            && !self.shutdown.load(Ordering::Acquire)
            && let Err(e) = self.spawn_worker(pool)
        {
            tracing::warn!("could not start another worker thread: {e}");
        }
    }

    /// Gives a task's or actor's resources back and grants waiting tasks.
    pub(crate) fn release(&self, pool: &Arc<TaskPool>, req: &Request, gpu_ids: &[u32]) {
        if !req.is_empty() {
            pool.release_grant(req, gpu_ids);
        }
        self.drain_pending(pool);
    }

    /// Grants and enqueues pending tasks that fit now.
    pub(crate) fn drain_pending(&self, pool: &Arc<TaskPool>) {
        if self.pending_len.load(Ordering::SeqCst) == 0 {
            return;
        }
        self.grant_pending(pool, None);
    }

    /// Adds `new` to the pending tasks, then grants and enqueues those
    /// that fit now.
    fn grant_pending(&self, pool: &Arc<TaskPool>, new: Option<TaskRef>) {
        // This thread's list, emptied and put back: a release grants a task
        // or two, and a fresh list would be an allocation each time.
        let mut granted = GRANTED.with(|g| std::mem::take(&mut *g.borrow_mut()));
        {
            let mut pending = lock(&self.pending);
            if let Some(cell) = new {
                pending.push(cell);
                // The count is raised before the search: a release that
                // comes after the search was refused reads it and searches
                // again (its `drain_pending`), or came before it and left
                // the resources this search finds. Set after, a release
                // in between read no waiting task and left this one waiting
                // for the next (none, on an otherwise idle rank).
                self.pending_len.swap(pending.len(), Ordering::SeqCst);
            }
            pending.grant(PENDING_SCAN, |req| pool.try_grant(req), &mut granted);
            self.pending_len.store(pending.len(), Ordering::Release);
            self.published(&pending);
        }
        for (cell, gpus) in granted.drain(..) {
            cell.set_grant(gpus);
            self.enqueue(pool, cell);
        }
        let _ = GRANTED.try_with(|g| *g.borrow_mut() = granted);
    }

    fn find_work(&self, local: &Worker<TaskRef>) -> Option<TaskRef> {
        if let Some(t) = local.pop() {
            return Some(t);
        }
        loop {
            match self.injector.steal_batch_and_pop(local) {
                Steal::Success(t) => return Some(t),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
        let n = self
            .threads
            .load(Ordering::Acquire)
            .min(self.stealers.len());
        let mut retry = true;
        while retry {
            retry = false;
            for s in self.stealers[..n].iter().filter_map(OnceLock::get) {
                match s.steal() {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
        }
        None
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.deques_have_work(None)
    }

    /// [`has_work`](Self::has_work) as one of this scheduler's workers
    /// sees it: its own deque read as its owner reads it (only this thread
    /// pushes to it, so no fence is needed to see its pushes), the others'
    /// through their stealers. A stealer's look is a SeqCst fence
    /// (crossbeam's `Stealer::is_empty`): this saves a lone worker one or
    /// two a task.
    fn has_work_here(&self) -> bool {
        if !self.injector.is_empty() {
            return true;
        }
        let key = self.key();
        let own = LOCAL.with(|l| match &*l.borrow() {
            Some(m) if m.key == key => Some((m.index, !m.deque.is_empty())),
            _ => None,
        });
        match own {
            Some((_, true)) => true,
            Some((me, false)) => self.deques_have_work(Some(me)),
            None => self.deques_have_work(None),
        }
    }

    /// Whether a worker deque holds a task (`skip`'s not looked at).
    fn deques_have_work(&self, skip: Option<usize>) -> bool {
        let n = self
            .threads
            .load(Ordering::Acquire)
            .min(self.stealers.len());
        self.stealers[..n]
            .iter()
            .enumerate()
            .filter(|&(i, _)| Some(i) != skip)
            .filter_map(|(_, s)| s.get())
            .any(|s| !s.is_empty())
    }

    /// Called by a task about to sleep in `get`/`wait`: its CPUs go back to
    /// the pool (Ray's "yielding resources while blocked").
    pub(crate) fn block_begin(&self, pool: &Arc<TaskPool>, cpus: &Request) {
        if !cpus.is_empty() {
            pool.ledger.release(cpus);
            self.drain_pending(pool);
        }
    }

    /// The blocked task woke up: it takes its CPUs back, even if that overdraws.
    pub(crate) fn block_end(&self, pool: &Arc<TaskPool>, cpus: &Request) {
        if !cpus.is_empty() {
            pool.ledger.force_acquire(cpus);
        }
    }

    /// Stops the workers: tasks that have not started fail with
    /// [`Error::Shutdown`] (waking whoever waits on them), running ones finish.
    pub(crate) fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.abandon_queued();
        for t in lock(&self.sleepers).drain(..) {
            t.unpark();
        }
        let handles: Vec<_> = lock(&self.handles).drain(..).collect();
        join_with_grace(handles);
        self.abandon_queued();
    }

    fn abandon_queued(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(t) => t.abandon(Error::Shutdown),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
        for s in self.stealers.iter().filter_map(OnceLock::get) {
            loop {
                match s.steal() {
                    Steal::Success(t) => t.abandon(Error::Shutdown),
                    Steal::Retry => continue,
                    Steal::Empty => break,
                }
            }
        }
        let pending = {
            let mut p = lock(&self.pending);
            let all = p.take_all();
            self.published(&p);
            all
        };
        self.pending_len.store(0, Ordering::Release);
        for t in pending {
            t.abandon(Error::Shutdown);
        }
    }

    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}
