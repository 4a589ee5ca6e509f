//! A worker thread's life: it runs what it finds (and the dependents its
//! completions keep), spins as the searcher when it finds nothing, and
//! parks when another searches or its spin ran out (see the parent's
//! "Sleeping").

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_deque::Worker;

use super::{LOCAL, Local, TaskRef};
use crate::error::Error;
use crate::resources::placement::Parked;
use crate::signal;
use crate::sync::lock;
use crate::task::cell::Kept;
use crate::task::pool::{Hold, TaskPool};

/// Runs the dependents that a finished task's completion kept (`next`),
/// one after another, then those their completions kept, and so on, the
/// first of them the `streak + 1`-th kept task in a row; receiving in
/// between when nobody else has lately.
fn run_kept_chain(pool: &Arc<TaskPool>, mut next: Option<Kept>, mut streak: u32) {
    let sched = &pool.sched;
    while let Some(n) = next {
        sched.receiving.between_tasks();
        streak += 1;
        next = sched.run_next(pool, n, streak);
    }
    sched.receiving.between_tasks();
}

/// Worker `index`'s thread, with its deque, until the scheduler shuts down.
pub(super) fn worker_main(pool: Arc<TaskPool>, worker: Worker<TaskRef>, index: usize) {
    pool.pinning.bind_worker(index);
    pool.on_thread_start();
    let sched = &pool.sched;
    let key = sched.key();
    LOCAL.with(|l| {
        *l.borrow_mut() = Some(Local {
            key,
            index,
            deque: worker,
        })
    });
    // How a waker sees this worker when it parks (see `placement`).
    let parked = Arc::new(Parked::current());
    let mut hold = Hold::default();
    loop {
        let task = LOCAL.with(|l| {
            let l = l.borrow();
            let m = l.as_ref().expect("worker deque set above");
            sched.find_work(&m.deque)
        });
        if let Some(cell) = task {
            if sched.is_shutdown() {
                cell.abandon(Error::Shutdown);
                continue;
            }
            if cell.claim() {
                hold.reset();
                // SeqCst: before the look at the queues just below (see
                // `Scheduler::run_kept`).
                sched.idle.fetch_sub(1, Ordering::SeqCst);
                // A push may have counted on this worker being idle: if work
                // is left, make sure somebody else takes it (or a thread starts).
                if sched.has_work_here() {
                    sched.notify(&pool);
                }
                // Idle again before the release, so that a task granted by the
                // release does not start a needless thread.
                let next = cell.execute_handing(&pool, || {
                    sched.idle.fetch_add(1, Ordering::AcqRel);
                });
                run_kept_chain(&pool, next, 0);
            }
            continue;
        }
        if sched.is_shutdown() {
            break;
        }
        // The remains it holds wait for their submitter a while (see `Hold`).
        // One searcher at a time spins; the others park at once.
        if sched.searching.fetch_add(1, Ordering::SeqCst) == 0 {
            // A task that what the spinner received made ready is kept for
            // it (see `Scheduler::poll_idle_keeping`).
            let mut received = None;
            let found = signal::spin_until_paced(sched.spin, sched.first_pauses(), || {
                received = sched.poll_idle_keeping();
                received.is_some() || sched.has_work_here() || sched.is_shutdown()
            });
            sched.searching.fetch_sub(1, Ordering::SeqCst);
            if let Some(cell) = received {
                hold.reset();
                let next = sched.run_received(&pool, cell);
                run_kept_chain(&pool, next, 1);
                continue;
            }
            if found {
                continue;
            }
            sched.poll_before_sleep();
        } else {
            sched.searching.fetch_sub(1, Ordering::SeqCst);
        }
        let nap = hold.nap(&pool);
        signal::nap_unless(
            nap,
            || sched.has_work() || sched.is_shutdown(),
            || {
                parked.arm(!pool.pinning.binds());
                lock(&sched.sleepers).push(parked.clone());
                sched.sleeping.fetch_add(1, Ordering::SeqCst);
            },
            || {
                let mut sleepers = lock(&sched.sleepers);
                if let Some(pos) = sleepers.iter().position(|p| Arc::ptr_eq(p, &parked)) {
                    sleepers.swap_remove(pos);
                    sched.sleeping.fetch_sub(1, Ordering::SeqCst);
                }
            },
        );
        parked.woke();
        hold.after_nap(&pool, sched.has_work());
    }
    sched.idle.fetch_sub(1, Ordering::AcqRel);
    pool.on_thread_stop();
    LOCAL.with(|l| {
        if let Some(m) = l.borrow_mut().take() {
            while let Some(t) = m.deque.pop() {
                t.abandon(Error::Shutdown);
            }
        }
    });
}
