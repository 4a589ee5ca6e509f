//! Running a task kept for the thread that made it ready, with no queue
//! in between: a completion's first dependent, on the worker that
//! completed its producer (see the parent's "Running dependents on the
//! completing thread"), and the first task an idle worker's receive made
//! ready.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{NEXT_BUDGET, Scheduler, TaskRef};
use crate::error::Error;
use crate::task::cell::Kept;
use crate::task::next;
use crate::task::pool::TaskPool;

impl Scheduler {
    /// [`poll_idle`](Self::poll_idle) with this thread's `NEXT` slot open,
    /// for a worker that spins for work: the first task of this scheduler
    /// that what it received made ready is kept for it (neither granted nor
    /// queued), and it runs that task next ([`run_received`](Self::run_received)),
    /// as a chain's next step: no push onto a queue, no notify for it, no
    /// pop (the others it readied are queued as before). A rank with no
    /// other ranks receives nothing: no slot is opened. On
    /// the 2-core VM, Task Bench's 2-rank stencil, whose every step waits
    /// for the other rank's output, a step went without a push onto the
    /// worker's queue, a notify and a pop (`callgrind`: ~5 of the worker's
    /// ~61 locked read-modify-writes a step fewer).
    pub(super) fn poll_idle_keeping(&self) -> Option<TaskRef> {
        if !self.receiving.receives() {
            return None;
        }
        next::complete_keeping(self.key(), || self.receiving.idle())
    }

    /// Runs a task kept by [`poll_idle_keeping`](Self::poll_idle_keeping)
    /// on the idle worker that received what made it ready, as
    /// [`run_next`](Self::run_next) runs a completion's dependent (not
    /// counted as started by a producer); the dependent its own completion
    /// kept.
    pub(super) fn run_received(&self, pool: &Arc<TaskPool>, cell: TaskRef) -> Option<Kept> {
        self.run_kept(
            pool,
            Kept {
                cell,
                granted: false,
            },
            0,
            false,
        )
    }

    /// Runs `complete` (the completion of a task's output) with this
    /// thread's `NEXT` slot open, and returns the dependent it kept: the
    /// first task of this scheduler that the completion made ready, neither
    /// granted nor queued. The caller runs it ([`run_next`](Self::run_next))
    /// or hands it to [`make_ready`](Self::make_ready), after it has given
    /// the completed task's resources back (or passed them to it: see
    /// `TaskCell::execute_handing`).
    pub(crate) fn complete_keeping_next(&self, complete: impl FnOnce()) -> Option<TaskRef> {
        next::complete_keeping(self.key(), complete)
    }

    /// Step 2 for a dependent kept by
    /// [`complete_keeping_next`](Self::complete_keeping_next), on the worker
    /// that completed its producer, or for the waiting task that producer's
    /// grant passed to: grants it (unless it holds the grant its producer
    /// passed on) and runs it here, with no queue and no wake-up.
    /// Returns the dependent its own completion kept. One that cannot be
    /// granted now goes to the pending list; after [`NEXT_BUDGET`] in a row
    /// with other work waiting, it is queued behind that work.
    pub(super) fn run_next(&self, pool: &Arc<TaskPool>, kept: Kept, streak: u32) -> Option<Kept> {
        self.run_kept(pool, kept, streak, true)
    }

    /// [`run_next`](Self::run_next), counting the task as started by its
    /// producer when `by_producer`.
    fn run_kept(
        &self,
        pool: &Arc<TaskPool>,
        kept: Kept,
        streak: u32,
        by_producer: bool,
    ) -> Option<Kept> {
        let Kept { cell, granted } = kept;
        if self.is_shutdown() {
            if granted {
                pool.release_grant(&cell.request, &[]);
            }
            cell.abandon(Error::Shutdown);
            return None;
        }
        if !granted {
            let Some(gpus) = pool.try_grant(&cell.request) else {
                self.make_ready(pool, cell);
                return None;
            };
            cell.set_grant(gpus);
        }
        if streak >= NEXT_BUDGET && self.has_work_here() {
            self.enqueue(pool, cell);
            return None;
        }
        // Never queued, so no getter could claim it first; only a
        // cancellation can come first.
        if !cell.claim_unqueued() {
            // Cancelled meanwhile: give the grant back (to a waiting task).
            self.release(pool, &cell.request, &cell.granted_gpus());
            return None;
        }
        // SeqCst: ordered before the look at the queues below, which a
        // pusher that read this worker idle (and started no thread) relies on.
        self.idle.fetch_sub(1, Ordering::SeqCst);
        if by_producer {
            pool.tasks.started_by_producer();
        }
        // As in `worker_main`: a push may have counted on this worker being
        // idle since its last task gave its resources back.
        if self.has_work_here() {
            self.notify(pool);
        }
        cell.execute_handing(pool, || {
            self.idle.fetch_add(1, Ordering::AcqRel);
        })
    }
}
