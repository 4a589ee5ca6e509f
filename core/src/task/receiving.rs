//! How a rank's workers receive from other ranks themselves: a worker that
//! spins for work polls the transport at every look (the first task that
//! what arrives makes ready is kept for it and run right there, the others
//! queued on its own deque, with no thread to wake: see
//! `Scheduler::poll_idle_keeping`), and one that goes from task to task
//! offers the transport a receive in between. Both are set once, when the
//! rank has other ranks; a lone rank has none.

use std::sync::OnceLock;
use std::time::Duration;

use crate::signal;

/// A transport poll: whether anything arrived.
pub(crate) type Poll = Box<dyn Fn() -> bool + Send + Sync>;

/// A worker going from task to task offers its rank's transport a receive
/// in between, which the transport takes only when the rank awaits answers
/// and no thread of it has received for this long
/// (`Transport::poll_if_quiet`). A rank whose workers are all busy
/// otherwise leaves what arrives to its progress thread, which waits for
/// the system to give it a core: a worker running a chain of tasks keeps
/// its core for a whole time slice (milliseconds). On the 2-core VM, Task
/// Bench on 2 ranks with 13 µs tasks (`-iter 2048`, 1000 steps, medians of
/// 7, taking turns): no_comm 31.3 → 18.0 µs a step and dom 30.7 → 17.5 µs
/// (MPI: 13–15 µs), rank 1 no longer waiting for the tasks rank 0 held
/// back for it until rank 0 took in its `Done`s; stencil_1d and the
/// cross-rank round trip and async task rates unchanged. Receiving between
/// every two tasks regardless cost the async task rate 20-25%.
pub(crate) const BUSY_POLL_QUIET: Duration = Duration::from_micros(50);

/// The two polls of one scheduler.
#[derive(Default)]
pub(crate) struct Receiving {
    idle: OnceLock<Poll>,
    busy: OnceLock<Poll>,
    last: OnceLock<Poll>,
}

impl Receiving {
    /// Sets what a spinning idle worker (or actor thread) calls at each
    /// look, what a busy worker calls between two tasks, and what a thread
    /// that spun with `idle` calls before it sleeps (the transport's
    /// `poll`, its `poll_if_quiet(BUSY_POLL_QUIET)` and its
    /// `poll_before_sleep`); once, later calls are ignored.
    pub(crate) fn set(&self, idle: Poll, busy: Poll, last: Poll) {
        let _ = self.idle.set(idle);
        let _ = self.busy.set(busy);
        let _ = self.last.set(last);
    }

    /// Whether an idle poll is set (the rank has other ranks).
    pub(crate) fn receives(&self) -> bool {
        self.idle.get().is_some()
    }

    /// Receives on the calling thread, if an idle poll is set.
    pub(crate) fn idle(&self) {
        if let Some(poll) = self.idle.get() {
            poll();
        }
    }

    /// Before a thread that spun with [`idle`](Self::idle) sleeps: the
    /// transport's last, thorough, poll (a spinner's polls may leave the
    /// costlier path for later), if set.
    pub(crate) fn before_sleep(&self) {
        if let Some(poll) = self.last.get() {
            poll();
        }
    }

    /// Between two tasks: offers the busy poll, if set, a receive.
    pub(crate) fn between_tasks(&self) {
        if let Some(poll) = self.busy.get() {
            poll();
        }
    }

    /// How many pause hints a spinner of this rank waits before its first
    /// looks ([`signal::spin_until_paced`]): few where a look also
    /// receives from other ranks (an idle poll is set), else many.
    pub(crate) fn first_pauses(&self) -> u32 {
        if self.receives() {
            1
        } else {
            signal::MAX_PAUSES
        }
    }
}
