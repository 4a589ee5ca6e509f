//! One submitted task: its cell, its execution, its retries.
//!
//! # Life of a task
//!
//! 1. `submit` makes a [`TaskCell`] in state `WAITING` and a pending output
//!    slot, and registers the cell as a waiter on every top-level argument
//!    that is not ready yet (`deps_left` counts them, plus one held by
//!    `submit` itself so that readiness cannot fire half-way through).
//! 2. When the count reaches zero the task asks the ledger for its resources;
//!    granted, it becomes `QUEUED` in the scheduler's deques, otherwise it
//!    waits in the scheduler's pending list until a release grants it.
//! 3. Exactly one thread moves it `QUEUED` → `CLAIMED` with a compare-and-swap:
//!    a worker that popped it, or a thread blocked in `get` on its output that
//!    runs it inline instead of sleeping (as rayon's `join` does). A
//!    dependent kept by the thread that completed its last input is never
//!    queued: that thread moves it `WAITING` → `CLAIMED` itself; so does a
//!    worker for the waiting task a finished task's grant passed to.
//! 4. The claimer runs the job (catching panics), retries it as its options
//!    allow, completes the output slot, then gives the resources back. The
//!    first dependent that the completion makes ready is not queued but
//!    handed back to the claimer, which runs it next (a worker) or queues it
//!    (a thread that ran the task inline); see the scheduler's "Running
//!    dependents on the completing thread".

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use crate::cache;
use crate::error::{Error, FailureKind, PlacementGroupError, TaskError};
use crate::ids::ObjectId;
use crate::object::cell::{DepWaiter, Producer, Slot, Stored, StoredValue, UnhandledSink, Waiter};
use crate::resources::bundles::BundleMember;
use crate::resources::ledger::Request;
use crate::resources::options::RetryOn;
use crate::sync::lock;
use crate::task::context::{self, TaskCtx};
use crate::task::leftovers::{LIGHT, thread_token};
use crate::task::pool::TaskPool;
use crate::task::spent::Spent;
use crate::uncounted::{List, Name};

const WAITING: u8 = 0;
const QUEUED: u8 = 1;
const CLAIMED: u8 = 2;

/// What one attempt of a job produced.
pub(crate) enum Outcome {
    /// A value, sealed in the store.
    Value(StoredValue),
    /// The user's code failed.
    Failed { kind: FailureKind, message: String },
    /// The runtime could not run it (a failed argument, a full store).
    Error(Error),
}

/// The body of a task: resolves its arguments, runs the function, stores the result.
///
/// Built by the layer that submits it, which captures what the body needs
/// (the task layer knows nothing of the runtime).
pub(crate) type Job = Box<dyn FnMut(&TaskCtx) -> Outcome + Send>;

/// How a task retries.
pub(crate) struct RetryPolicy {
    pub(crate) max_retries: i32,
    pub(crate) retry_on: RetryOn,
}

impl RetryPolicy {
    fn allows(&self, attempts: u32) -> bool {
        self.max_retries < 0 || attempts <= self.max_retries as u32
    }

    fn may_retry_errors(&self, attempts: u32) -> bool {
        !matches!(self.retry_on, RetryOn::Never) && self.allows(attempts)
    }

    fn retries(&self, err: &TaskError, attempts: u32) -> bool {
        self.allows(attempts)
            && match &self.retry_on {
                RetryOn::Never => false,
                RetryOn::All => true,
                RetryOn::When(pred) => pred(err),
            }
    }
}

pub(crate) struct TaskCell {
    state: AtomicU8,
    deps_left: AtomicUsize,
    pub(crate) name: Name,
    /// The function's name, for listings of running tasks.
    pub(crate) label: &'static str,
    pub(crate) request: Request,
    env: List<(String, String)>,
    retry: RetryPolicy,
    /// Its body, and its top-level arguments' slots, from submission until
    /// it runs (then, once it finished, handed to the pool's leftovers):
    /// taken together, under one lock.
    body: Mutex<Body>,
    /// The GPUs granted with the resources (a task is granted once); unset
    /// for the many tasks that hold none, so that reading it is one load.
    gpu_ids: OnceLock<List<u32>>,
    /// The output, weakly: the refs the user holds keep it. A finished cell
    /// may sit in a queue until a worker skips it, and must not keep the
    /// result alive meanwhile; a result nobody holds is simply dropped.
    output: Weak<Slot>,
    pool: Weak<TaskPool>,
    /// Its scheduler's key (see `Scheduler::key`).
    sched_key: usize,
    /// The thread that submitted it ([`thread_token`]): remains left on
    /// that thread are dropped at once.
    submitter: usize,
    /// Its cancellation; its body's context reaches it through the cell.
    pub(crate) cancel: crate::task::cancel::Cancel,
}

/// A task's inputs' slots: up to four inline (a stencil's three, a
/// chain's one), so that a task with few inputs allocates no list for them.
pub(crate) type Inputs = smallvec::SmallVec<[Arc<Slot>; 4]>;

/// A task's body and its inputs' slots (see `TaskCell::body`).
struct Body {
    job: Option<Job>,
    inputs: Inputs,
    /// Where a list argument the job holds keeps its refs (address,
    /// bytes), for [`DepWaiter::warm`]; `(0, 0)` when none.
    list: (usize, usize),
}

/// What a finished task leaves: its body (with what it captured), its
/// inputs' slots, a reference to its cell (so that the cell, too, is freed
/// by the thread that allocated it, when it holds the last one) and memory
/// of its arguments it emptied (see `task::spent`), dropped later by a
/// thread that submits tasks (see `task::leftovers`).
pub(crate) type Remains = (Job, Inputs, Arc<TaskCell>, Option<Spent>);

/// A run's records: its start on the timeline, its entry among the running
/// tasks, and when it started if its duration is sampled.
struct Run {
    started: Option<Instant>,
    running: crate::state::Running,
    sampled: Option<Instant>,
}

pub(crate) struct NewTask {
    pub(crate) name: Name,
    pub(crate) label: &'static str,
    pub(crate) request: Request,
    pub(crate) env: List<(String, String)>,
    pub(crate) retry: RetryPolicy,
    pub(crate) job: Job,
}

impl crate::task::cancel::Cancellable for TaskCell {
    fn cancel_state(&self) -> &crate::task::cancel::Cancel {
        &self.cancel
    }
}

/// The dependent a task's completion kept for the thread that ran it, or
/// the waiting task its grant passed to (see [`TaskCell::execute_handing`]).
pub(crate) struct Kept {
    pub(crate) cell: Arc<TaskCell>,
    /// It holds the finished task's grant, passed on: the caller does not
    /// grant it again; it runs it, queues it (a queued task is a granted
    /// one) or gives the grant back.
    pub(crate) granted: bool,
}

impl TaskCell {
    /// Makes the cell and its pending output slot `id`.
    pub(crate) fn new(
        pool: &Arc<TaskPool>,
        id: ObjectId,
        unhandled: &Arc<UnhandledSink>,
        task: NewTask,
    ) -> (Arc<TaskCell>, Arc<Slot>) {
        let mut output = None;
        let cell = Arc::new_cyclic(|me: &Weak<TaskCell>| {
            let producer: Weak<dyn Producer> = me.clone();
            TaskCell {
                state: AtomicU8::new(WAITING),
                deps_left: AtomicUsize::new(1),
                name: task.name,
                label: task.label,
                request: task.request,
                env: task.env,
                retry: task.retry,
                body: Mutex::new(Body {
                    job: Some(task.job),
                    inputs: Inputs::new(),
                    list: (0, 0),
                }),
                gpu_ids: OnceLock::new(),
                output: {
                    let slot = Slot::pending(id, Some(producer), unhandled.clone());
                    let weak = Arc::downgrade(&slot);
                    output = Some(slot);
                    weak
                },
                pool: Arc::downgrade(pool),
                sched_key: pool.sched.key(),
                submitter: thread_token(),
                cancel: Default::default(),
            }
        });
        (cell, output.expect("set by new_cyclic"))
    }

    /// Step 1: waits for `deps`, then schedules.
    pub(crate) fn submit(self: &Arc<Self>, deps: Inputs, list: (usize, usize)) {
        if let Some(b) = self.request.bundle() {
            let me: Weak<dyn BundleMember> = Arc::downgrade(self) as Weak<dyn BundleMember>;
            if !b.enlist(me) {
                self.abandon(Error::PlacementGroup(PlacementGroupError::Removed {
                    group: b.group,
                    reason: format!("task {} was submitted into it after", self.name),
                }));
                return;
            }
        }
        self.deps_left.fetch_add(deps.len(), Ordering::Relaxed);
        for dep in &deps {
            if !dep.add_waiter(Waiter::Task(self.clone())) {
                self.deps_left.fetch_sub(1, Ordering::AcqRel);
            }
        }
        // Kept before the last count below: the task cannot run before it.
        {
            let mut body = lock(&self.body);
            body.inputs = deps;
            body.list = list;
        }
        self.clone().dep_ready();
    }

    /// Records the GPUs granted with the task's resources.
    pub(crate) fn set_grant(&self, gpus: List<u32>) {
        if !gpus.is_empty() {
            let first = self.gpu_ids.set(gpus).is_ok();
            debug_assert!(first, "task {} granted twice", self.name);
        }
    }

    pub(crate) fn granted_gpus(&self) -> List<u32> {
        self.gpu_ids.get().cloned().unwrap_or_default()
    }

    /// `WAITING` → `QUEUED`; false when the task was abandoned meanwhile
    /// (cancelled after its arguments came in).
    pub(crate) fn set_queued(&self) -> bool {
        self.state
            .compare_exchange(WAITING, QUEUED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// `WAITING` → `CLAIMED`, for a granted task its thread runs at once
    /// without queueing it (a kept dependent); false when it was abandoned.
    pub(crate) fn claim_unqueued(&self) -> bool {
        self.state
            .compare_exchange(WAITING, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Step 3: true for the one thread that gets to run the task.
    pub(crate) fn claim(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Completes the output with `err` without running it (shutdown), unless
    /// somebody already claimed it; a granted task gives its resources back.
    pub(crate) fn abandon(&self, err: Error) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state == CLAIMED {
                return;
            }
            match self
                .state
                .compare_exchange(state, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        let body = std::mem::replace(
            &mut *lock(&self.body),
            Body {
                job: None,
                inputs: Inputs::new(),
                list: (0, 0),
            },
        );
        drop(body);
        if let Some(out) = self.output.upgrade() {
            out.complete(Stored::Error(err));
        }
        if state == QUEUED
            && let Some(pool) = self.pool.upgrade()
        {
            pool.release_grant(&self.request, &self.granted_gpus());
        }
    }

    /// Step 4: runs the claimed task on this thread; `before_release` runs
    /// between completing the output and giving the resources back. Returns
    /// the dependent the completion kept for this thread (see
    /// [`Scheduler::complete_keeping_next`](crate::task::scheduler::Scheduler::complete_keeping_next)):
    /// the caller runs it or hands it to `make_ready`.
    #[must_use = "a kept dependent must be run or handed to make_ready"]
    pub(crate) fn execute(
        self: &Arc<Self>,
        pool: &Arc<TaskPool>,
        before_release: impl FnOnce(),
    ) -> Option<Arc<TaskCell>> {
        self.run(pool, before_release, false).map(|k| k.cell)
    }

    /// [`execute`](Self::execute) for a caller that runs the kept dependent
    /// itself: when that one asks for the same resources as this task (no
    /// GPU), no task waited for resources before the completion made it
    /// ready, and the ledger allows it (`Ledger::may_hand_on`), this task's
    /// grant passes to it instead of going back to the ledger and being
    /// taken again ([`Kept::granted`]; ~250 instructions a task of a
    /// chain). Otherwise, when tasks wait and the oldest asks for the same,
    /// that one takes the grant and is the one returned (the kept
    /// dependent, if any, is made ready as any other): the task a release would
    /// have granted first, run here with no release, no search of the
    /// waiting tasks and no queue. On one CPU a stencil's two points of a
    /// step go so: the first kept, the second waiting, then handed the
    /// grant (~600 instructions fewer a task than a release and a queue,
    /// `callgrind`, on the worker).
    #[must_use = "a kept dependent must be run, or its grant given back"]
    pub(crate) fn execute_handing(
        self: &Arc<Self>,
        pool: &Arc<TaskPool>,
        before_release: impl FnOnce(),
    ) -> Option<Kept> {
        self.run(pool, before_release, true)
    }

    fn run(
        self: &Arc<Self>,
        pool: &Arc<TaskPool>,
        before_release: impl FnOnce(),
        hand_over: bool,
    ) -> Option<Kept> {
        let (job, inputs) = {
            let mut body = lock(&self.body);
            (body.job.take(), std::mem::take(&mut body.inputs))
        };
        let Some(mut job) = job else {
            before_release();
            return None;
        };
        // The output, held from here to its completion; what its dependents
        // will touch is fetched now, while the task runs (where they may
        // have been written on another core).
        let output = self.output.upgrade();
        if let Some(out) = &output
            && pool.sched.warms()
        {
            out.warm_dependents();
        }
        let gpu_ids = self.granted_gpus();
        let ctx = context::boxed(TaskCtx {
            name: self.name.clone(),
            env: crate::task::context::env_with_gpus(&self.env, &gpu_ids, &pool.pinning),
            gpu_ids: gpu_ids.clone(),
            held: self.request.clone(),
            is_task: true,
            may_retry: std::cell::Cell::new(false),
            cancel: Some(self.clone()),
            spent: Default::default(),
        });
        let mut attempts = 0u32;
        let run = Run {
            started: pool.timeline.start(),
            running: pool.tasks.start(self.label),
            // Timed only where submitters may run tasks (see `Scheduler::help`).
            sampled: (pool.sched.helps() && sample_this_run()).then(Instant::now),
        };
        let stored = loop {
            attempts += 1;
            ctx.may_retry.set(self.retry.may_retry_errors(attempts));
            let outcome = context::with_task(ctx.clone(), || {
                panic::catch_unwind(AssertUnwindSafe(|| job(&ctx)))
            });
            let (kind, message) = match outcome {
                Ok(Outcome::Value(v)) => break Stored::Value(v),
                Ok(Outcome::Error(e)) => break Stored::Error(e),
                Ok(Outcome::Failed { kind, message }) => (kind, message),
                Err(payload) => (FailureKind::Panic, panic_message(payload.as_ref())),
            };
            let err = TaskError {
                task: self.name.to_string(),
                rank: pool.rank,
                kind,
                message,
                attempts,
            };
            if !self.cancel.is_set() && self.retry.retries(&err, attempts) {
                tracing::debug!(task = %self.name, attempts, "retrying after: {err}");
                continue;
            }
            break Stored::Error(Error::Task(Box::new(err)));
        };
        // The ends of the borrows its inputs held wait for the output's
        // completion: a `Done` it sends carries them (see
        // `object::lender::batching`).
        // Which tasks wait for resources before the completion makes
        // others ready (see below).
        let mark = if hand_over {
            pool.sched.pending_mark()
        } else {
            0
        };
        let next = crate::object::lender::batching(|| {
            let remains = (job, inputs, self.clone(), ctx.spent.take());
            context::recycle(ctx);
            self.finish(pool, output, remains, stored, run)
        });
        before_release();
        let may_hand = hand_over
            && gpu_ids.is_empty()
            && self.request.gpus() == 0
            && pool.ledger.may_hand_on(&self.request);
        // The kept dependent takes the grant when it asks the same and no
        // task waited for resources before the completion (those that wait
        // now came during it: most from the same completion, younger than
        // the kept dependent; one another thread made ready meanwhile is
        // passed over this once at most).
        if may_hand
            && next.as_ref().is_some_and(|n| n.request == self.request)
            && !pool.sched.waits_from_before(mark)
        {
            return next.map(|cell| Kept {
                cell,
                granted: true,
            });
        }
        if may_hand {
            // Tasks wait for resources: the oldest, when it asks for what
            // this one held, takes the grant (a release would grant it
            // first), and the kept dependent goes the usual way.
            if let Some(waiting) = pool.sched.take_pending_for(&self.request) {
                if let Some(n) = next {
                    pool.sched.make_ready(pool, n);
                }
                return Some(Kept {
                    cell: waiting,
                    granted: true,
                });
            }
        }
        pool.release(&self.request, &gpu_ids);
        next.map(|cell| Kept {
            cell,
            granted: false,
        })
    }

    /// The end of [`TaskCell::execute`]: the inputs let go of, the output
    /// completed (unless nothing refers to it any more).
    fn finish(
        &self,
        pool: &Arc<TaskPool>,
        output: Option<Arc<Slot>>,
        remains: Remains,
        stored: Stored,
        run: Run,
    ) -> Option<Arc<TaskCell>> {
        self.leave(pool, remains);
        let stored = if self.cancel.is_set() {
            Stored::Error(Error::Cancelled {
                task: self.name.to_string(),
            })
        } else {
            stored
        };
        if pool.timeline.is_on() {
            pool.timeline.record(
                run.started,
                crate::timeline::Kind::Task,
                self.name.to_string(),
                0,
            );
        }
        if let Some(t0) = run.sampled {
            pool.durations.record(self.label, t0.elapsed());
        }
        pool.tasks.end(run.running, &self.name, stored.error());
        let out = output?;
        pool.sched.complete_keeping_next(|| out.complete(stored))
    }

    /// Hands the finished task's body and inputs to the pool's leftovers
    /// when they are light: a body that gave its arguments to its only
    /// attempt (no retries) and inputs holding at most `LIGHT` bytes and no
    /// nested refs. Anything else, and what the submitting thread itself
    /// ran (a getter running it inline), is dropped now.
    fn leave(&self, pool: &TaskPool, (job, inputs, cell, spent): Remains) {
        let mut bytes = 0usize;
        let light = thread_token() != self.submitter
            && !self.retry.may_retry_errors(1)
            // A borrowed input's end goes to its owner now (with the
            // task's `Done`, when it goes to that owner).
            && inputs.iter().all(|s| s.borrow().is_none())
            && inputs.iter().all(|s| match s.get() {
                Some(Stored::Value(v)) => {
                    bytes += v.block.len();
                    v._contained.is_empty() && bytes <= LIGHT
                }
                _ => true,
            });
        if light {
            pool.leave_remains((job, inputs, cell, spent));
        }
    }
}

impl DepWaiter for TaskCell {
    /// The cell, its output's slot and, unless its lock is taken, its
    /// body's closure and inputs: all written by the submitting thread.
    fn warm(&self) {
        cache::prefetch_arc(self as *const TaskCell);
        cache::prefetch_arc(self.output.as_ptr());
        if let Ok(body) = self.body.try_lock() {
            if let Some(job) = &body.job {
                let job: &(dyn FnMut(&TaskCtx) -> Outcome + Send) = &**job;
                cache::prefetch(std::ptr::from_ref(job).cast(), std::mem::size_of_val(job));
            }
            let inputs = body.inputs.as_slice();
            cache::prefetch(inputs.as_ptr().cast(), std::mem::size_of_val(inputs));
            cache::prefetch(body.list.0 as *const u8, body.list.1);
        }
    }

    fn dep_ready(self: Arc<Self>) {
        if self.deps_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Kept by the thread completing its last input: run there next
            // (which looks at shutdown first), with no pool reference taken.
            let Some(me) = crate::task::next::keep(self.sched_key, self) else {
                return;
            };
            match me.pool.upgrade() {
                Some(pool) => pool.sched.make_ready(&pool, me),
                None => me.abandon(Error::Shutdown),
            }
        }
    }
}

impl TaskCell {
    /// Cancels the task: one that has not started never runs (its output
    /// fails with `Cancelled` now); a running one sees `is_cancelled()` and
    /// its output fails with `Cancelled` when it returns; with `recursive`,
    /// the tasks it submitted are cancelled too.
    pub(crate) fn cancel(self: &Arc<Self>, recursive: bool) {
        let children = self.cancel.set(recursive);
        self.abandon(Error::Cancelled {
            task: self.name.to_string(),
        });
        for child in children {
            Producer::cancel(child, true);
        }
    }
}

impl BundleMember for TaskCell {
    fn evict(self: Arc<Self>, _reason: &str) {
        TaskCell::cancel(&self, true);
    }
}

impl Producer for TaskCell {
    fn cancel(self: Arc<Self>, recursive: bool) {
        TaskCell::cancel(&self, recursive);
    }

    fn run_inline(self: Arc<Self>) -> bool {
        let Some(pool) = self.pool.upgrade() else {
            return false;
        };
        if !self.claim() {
            return false;
        }
        // A getter goes back to its caller: what the completion kept is queued.
        if let Some(next) = self.execute(&pool, || {}) {
            pool.sched.make_ready(&pool, next);
        }
        true
    }
}

/// How often a thread times the tasks it runs (one in this many, after
/// its first [`SAMPLE_FIRST`] always), for `TaskPool::durations`: two clock
/// reads on every task would cost a short task several percent.
const SAMPLE_EVERY: u32 = 8;
/// A thread's first runs are all timed: a function's first run is often
/// slow (pages touched for the first time), and its next ones tell.
const SAMPLE_FIRST: u32 = 16;

thread_local! {
    static RUNS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether this thread times the task it is about to run.
fn sample_this_run() -> bool {
    RUNS.with(|r| {
        let n = r.get();
        r.set(n.wrapping_add(1));
        n < SAMPLE_FIRST || n.is_multiple_of(SAMPLE_EVERY)
    })
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
