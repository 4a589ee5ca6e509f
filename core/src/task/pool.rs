//! The task pool: one rank's scheduler together with the resources it
//! grants (the ledger, the GPU ids, the pinning of its workers) and the
//! records every task leaves (the timeline, the task counts).
//!
//! The runtime owns one and shares it (`Arc<TaskPool>`) with every task
//! cell, so the task layer never names the runtime. What a worker thread
//! must have from the layers above (the thread's current runtime) comes in
//! as [`ThreadHooks`], run when a worker starts and when it stops, as
//! rayon's start and exit handlers.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::resources::gpu_pool::GpuPool;
use crate::resources::ledger::{Ledger, Request};
use crate::resources::pinning::Pinning;
use crate::signal;
use crate::state::TaskBook;
use crate::task::cell::Remains;
use crate::task::leftovers::{BATCH, HELD, Leftovers};
use crate::task::scheduler::Scheduler;
use crate::timeline::Recorder;
use crate::uncounted::List;

/// How long a worker that ran dry keeps finished tasks' remains for their
/// submitter (see `task::leftovers`), napping, before it drops them
/// itself. Far longer than a step of a chain of dependent tasks waits for
/// its input (tens of microseconds), short enough that an idle rank holds
/// nothing for long: remains that reach the queue while every worker naps
/// wait up to [`signal::NAP`], a spin and this.
pub(crate) const HOLD: Duration = Duration::from_millis(2);

/// A worker's hold on the remains it and the queue keep while it finds no
/// work. They stay for their submitter while work may still come: a worker
/// that ran dry for a moment (its submitter about to submit the next task,
/// or an input on its way from another rank) and dropped them freed the
/// submitter's blocks against the submitter's own allocations (on the
/// 2-core VM, a chain of empty tasks made ~32,000 futex calls per 200,000
/// tasks: glibc's arena lock), and left the submitter's next blocks to
/// malloc's slow path (Task Bench's stencil on 2 ranks: a fifth of a step's
/// instructions went to malloc and free). Only a worker that has found no
/// work for [`HOLD`] drops them: a nap cut short (a wake-up whose work
/// another thread took, an old unpark) does not count.
#[derive(Default)]
pub(crate) struct Hold {
    /// Since when the worker has found no work while holding remains.
    since: Option<Instant>,
}

impl Hold {
    /// The worker ran a task: work came.
    pub(crate) fn reset(&mut self) {
        self.since = None;
    }

    /// How long the worker may nap now: what is left of [`HOLD`] while
    /// remains wait, else [`signal::NAP`].
    pub(crate) fn nap(&mut self, pool: &TaskPool) -> Duration {
        if !pool.holds_remains() {
            self.since = None;
            return signal::NAP;
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        HOLD.saturating_sub(since.elapsed())
    }

    /// After a nap with no work come (`has_work` false): the remains are
    /// dropped once [`HOLD`] has passed.
    pub(crate) fn after_nap(&mut self, pool: &TaskPool, has_work: bool) {
        if !has_work && self.since.is_some_and(|since| since.elapsed() >= HOLD) {
            pool.drop_remains_when_idle();
            self.since = None;
        }
    }
}

/// What runs on each worker thread as it starts and as it stops.
pub(crate) struct ThreadHooks {
    pub(crate) start: Box<dyn Fn() + Send + Sync>,
    pub(crate) stop: Box<dyn Fn() + Send + Sync>,
}

thread_local! {
    /// On a worker: the light remains of the tasks it ran, collected for
    /// its pool's leftovers (whose pool: its address) and handed over
    /// [`BATCH`] at a time (see `task::leftovers`).
    static COLLECTED: RefCell<Option<(usize, Vec<Remains>)>> = const { RefCell::new(None) };
}

/// One rank's tasks: the scheduler, the resources it grants, the records.
pub(crate) struct TaskPool {
    pub(crate) rank: u32,
    pub(crate) ledger: Ledger,
    pub(crate) gpus: GpuPool,
    pub(crate) pinning: Pinning,
    pub(crate) sched: Scheduler,
    pub(crate) timeline: Recorder,
    /// Task counts for state listings.
    pub(crate) tasks: TaskBook,
    /// Finished tasks' remains, dropped by a submitting thread.
    pub(crate) leftovers: Leftovers<Remains>,
    /// Sampled run times per task function (see `Scheduler::help`).
    pub(crate) durations: crate::task::durations::Durations,
    hooks: OnceLock<ThreadHooks>,
}

impl TaskPool {
    pub(crate) fn new(
        rank: u32,
        ledger: Ledger,
        gpus: GpuPool,
        pinning: Pinning,
        sched: Scheduler,
        timeline: Recorder,
    ) -> TaskPool {
        // Remains held back where the rank's threads run on several CPUs
        // (where its tasks warm their dependents too).
        let leftovers = Leftovers::holding(if sched.warms() { HELD } else { 0 });
        TaskPool {
            rank,
            ledger,
            gpus,
            pinning,
            sched,
            timeline,
            tasks: TaskBook::default(),
            leftovers,
            durations: Default::default(),
            hooks: OnceLock::new(),
        }
    }

    /// Starts the base pool of workers; each runs `hooks` as it starts and stops.
    pub(crate) fn start(self: &Arc<Self>, hooks: ThreadHooks) -> std::io::Result<()> {
        let _ = self.hooks.set(hooks);
        self.sched.start(self)
    }

    /// Runs as a worker starts: the hooks, and the worker collects the
    /// remains of the tasks it runs in batches.
    pub(crate) fn on_thread_start(&self) {
        if let Some(h) = self.hooks.get() {
            (h.start)();
        }
        COLLECTED.with(|c| *c.borrow_mut() = Some((self.key(), Vec::new())));
    }

    /// Runs as a worker stops: what it collected is handed over, the hooks run.
    pub(crate) fn on_thread_stop(&self) {
        self.hand_over_remains();
        let _ = COLLECTED.try_with(|c| c.borrow_mut().take());
        if let Some(h) = self.hooks.get() {
            (h.stop)();
        }
    }

    fn key(&self) -> usize {
        self as *const TaskPool as usize
    }

    /// Hands a finished task's light remains to the leftovers: collected
    /// into this worker's batch, or alone from any other thread.
    ///
    /// A full batch is handed over when the next remains come, not with its
    /// last: the worker still holds the task whose remains those are (its
    /// cell, until the task's run returns), and a submitter that dropped
    /// them first would leave the cell's last reference, and the free of
    /// its memory, to the worker.
    pub(crate) fn leave_remains(&self, remains: Remains) {
        let key = self.key();
        // What goes to the queue goes after the borrow: a full queue drops
        // its oldest batch here, and a drop may run any code.
        let full = COLLECTED.with(|c| match &mut *c.borrow_mut() {
            Some((k, items)) if *k == key => {
                let full = (items.len() >= BATCH)
                    .then(|| Err(std::mem::replace(items, self.leftovers.spare())));
                items.push(remains);
                full
            }
            _ => Some(Ok(remains)),
        });
        match full {
            None => {}
            Some(Ok(alone)) => self.leftovers.defer(alone),
            Some(Err(batch)) => self.leftovers.defer_batch(batch),
        }
    }

    /// Hands over the batch this worker was collecting (to be dropped by
    /// the next submission, or at once by
    /// [`drop_remains_when_idle`](Self::drop_remains_when_idle)); nothing
    /// on a thread that is not one of this pool's workers.
    pub(crate) fn hand_over_remains(&self) {
        let key = self.key();
        let batch = COLLECTED
            .try_with(|c| match &mut *c.borrow_mut() {
                // A list given back by a dropping thread to collect in next,
                // not a new one: a worker runs dry often, and each list it
                // allocated would be freed by another thread.
                Some((k, items)) if *k == key && !items.is_empty() => {
                    Some(std::mem::replace(items, self.leftovers.spare()))
                }
                _ => None,
            })
            .ok()
            .flatten();
        if let Some(batch) = batch {
            self.leftovers.defer_batch(batch);
        }
    }

    /// Whether remains wait to be dropped: this worker's batch, or the queue.
    pub(crate) fn holds_remains(&self) -> bool {
        let key = self.key();
        COLLECTED
            .try_with(
                |c| matches!(&*c.borrow(), Some((k, items)) if *k == key && !items.is_empty()),
            )
            .unwrap_or(false)
            || self.leftovers.waiting()
    }

    /// A worker that found no work for [`HOLD`] drops every remains held
    /// back, its own batch's first: an idle rank holds nothing for long.
    pub(crate) fn drop_remains_when_idle(&self) {
        self.hand_over_remains();
        self.leftovers.drain_all();
    }

    /// Reserves `req` and picks its GPUs, if all of it is free now.
    pub(crate) fn try_grant(&self, req: &Request) -> Option<List<u32>> {
        if !self.ledger.try_acquire(req) {
            return None;
        }
        match self.gpus.assign(req.gpus()) {
            // Most tasks hold no GPU: their grant allocates nothing.
            Some(ids) => Some(ids.into()),
            None => {
                self.ledger.release(req);
                None
            }
        }
    }

    /// Gives back what [`try_grant`](Self::try_grant) reserved.
    pub(crate) fn release_grant(&self, req: &Request, gpu_ids: &[u32]) {
        self.gpus.release(gpu_ids, req.gpus());
        self.ledger.release(req);
    }

    /// Gives a task's or actor's resources back and grants waiting tasks.
    pub(crate) fn release(self: &Arc<Self>, req: &Request, gpu_ids: &[u32]) {
        self.sched.release(self, req, gpu_ids);
    }

    /// A task about to sleep in `get`/`wait` gives its CPUs back.
    pub(crate) fn block_begin(self: &Arc<Self>, cpus: &Request) {
        self.sched.block_begin(self, cpus);
    }

    /// The blocked task woke up and takes its CPUs back.
    pub(crate) fn block_end(self: &Arc<Self>, cpus: &Request) {
        self.sched.block_end(self, cpus);
    }
}
