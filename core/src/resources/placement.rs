//! Where a thread the rank starts or wakes begins to run.
//!
//! On the 2-core VM (and, by its documentation, on any kernel that prefers
//! the waker's CPU for a wakee that shares its cache) a thread that was
//! just started or woken is queued on the CPU of the thread that started
//! or woke it. When that thread goes on running (the driver submitting
//! more tasks), the new one waits for its time slice, 1–5 ms, while
//! another CPU idles. So:
//!
//! - a new worker or actor thread is moved by its starter to another CPU
//!   at once, then given back every CPU it had ([`first_cpu`],
//!   [`StartGate`], `Pinning::place_new_thread`);
//! - a parked worker is woken off its waker's CPU: the waker confines it
//!   to the other CPUs it may use, wakes it, and the worker gives itself
//!   its own CPUs back before it runs anything ([`Parked`]).
//!
//! A thread with one CPU is left alone: there is nowhere else to go.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread::Thread;

use ferry_launcher::affinity;

/// Holds a new thread back until its starter has placed it
/// ([`Pinning::place_new_thread`](crate::resources::pinning::Pinning::place_new_thread)), so that the starter's last change to
/// its mask cannot undo one the thread makes itself.
#[derive(Clone, Default)]
pub(crate) struct StartGate(Arc<AtomicBool>);

impl StartGate {
    /// Called first by the new thread: returns once its starter has placed
    /// it. The wait ends: the starter opens the gate right after `spawn`
    /// returns, placed or not, on every path (see [`OpenOnDrop`]). It is
    /// also what keeps the thread from exiting before its starter has
    /// changed its mask (the starter names it by its kernel id, which the
    /// C library clears when the thread exits).
    pub(crate) fn wait(&self) {
        while !self.0.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
    }
}

/// Opens its gate when dropped (however its holder returns).
pub(crate) struct OpenOnDrop<'a>(pub(crate) &'a StartGate);

impl Drop for OpenOnDrop<'_> {
    fn drop(&mut self) {
        self.0.0.store(true, Ordering::Release);
    }
}

/// The CPU the `n`-th new thread starts on: the `n + 1`-th of `cpus` after
/// its starter's CPU `here`, wrapping, so that a rank's first threads
/// start on the CPUs their starter is not using (`None` with fewer than
/// two CPUs: there is nowhere else to go).
pub(crate) fn first_cpu(cpus: &[usize], here: Option<usize>, index: usize) -> Option<usize> {
    if cpus.len() < 2 {
        return None;
    }
    let at = here
        .and_then(|h| cpus.iter().position(|&c| c == h))
        .unwrap_or(0);
    Some(cpus[(at + 1 + index) % cpus.len()])
}

/// A worker about to park, as the thread that wakes it sees it.
pub(crate) struct Parked {
    thread: Thread,
    pthread: libc::pthread_t,
    /// Its CPUs when it parked (empty: not to be steered).
    cpus: std::sync::Mutex<Vec<usize>>,
    state: AtomicU8,
}

/// [`Parked`]'s states: parked (armed), being steered by its waker,
/// steered (its mask to be given back), awake. A worker always passes
/// through `woke` after it arms, before it parks again or exits.
const PARKED: u8 = 0;
const STEERING: u8 = 1;
const STEERED: u8 = 2;
const AWAKE: u8 = 3;

impl Parked {
    /// The calling thread, to park later.
    pub(crate) fn current() -> Parked {
        Parked {
            thread: std::thread::current(),
            pthread: affinity::current_pthread(),
            cpus: std::sync::Mutex::new(Vec::new()),
            state: AtomicU8::new(AWAKE),
        }
    }

    /// Called by the thread before it announces that it parks: notes its
    /// CPUs now (a task it ran may have changed them), if its waker may
    /// steer it (`steer`: it is not bound to its CPUs by the rank).
    pub(crate) fn arm(&self, steer: bool) {
        let cpus = if steer {
            affinity::current_thread_cpus().unwrap_or_default()
        } else {
            Vec::new()
        };
        *crate::sync::lock(&self.cpus) = cpus;
        self.state.store(PARKED, Ordering::Release);
    }

    /// Wakes the thread, off the calling thread's CPU when it may run
    /// elsewhere.
    pub(crate) fn wake(&self) {
        if let Some(away) = self.away_from_here()
            && self
                .state
                .compare_exchange(PARKED, STEERING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // SAFETY: the thread is alive: it armed this state before it
            // parked, and it cannot go past `woke` (nor exit) until the
            // state leaves STEERING below.
            if let Err(e) = unsafe { affinity::bind_thread(self.pthread, &away) } {
                tracing::debug!("could not wake a worker off this CPU: {e}");
            }
            self.state.store(STEERED, Ordering::Release);
        }
        self.thread.unpark();
    }

    /// The thread's CPUs but the caller's, when there are others.
    fn away_from_here(&self) -> Option<Vec<usize>> {
        let here = affinity::current_cpu()?;
        let cpus = crate::sync::lock(&self.cpus);
        if cpus.len() < 2 || !cpus.contains(&here) {
            return None;
        }
        Some(cpus.iter().copied().filter(|&c| c != here).collect())
    }

    /// Called by the thread when it is back from parking, before it runs
    /// anything: takes its own CPUs back if its waker steered it, waiting
    /// for a waker that is steering it right now. That wait ends: the
    /// waker is between two stores around one `pthread_setaffinity_np`,
    /// which does not block. It is also what keeps the thread alive (and
    /// its handle valid) while the waker changes its mask.
    pub(crate) fn woke(&self) {
        if self
            .state
            .compare_exchange(PARKED, AWAKE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
        while self.state.load(Ordering::Acquire) == STEERING {
            std::thread::yield_now();
        }
        let cpus = std::mem::take(&mut *crate::sync::lock(&self.cpus));
        if !cpus.is_empty()
            && let Err(e) = affinity::bind_current_thread(&cpus)
        {
            tracing::debug!("a woken worker could not take its CPUs {cpus:?} back: {e}");
        }
        self.state.store(AWAKE, Ordering::Release);
    }

    /// Wakes the thread where it is (shutdown).
    pub(crate) fn unpark(&self) {
        self.thread.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::{OpenOnDrop, Parked, StartGate, first_cpu};
    use ferry_launcher::affinity;

    #[test]
    fn a_gate_lets_its_thread_go_when_opened() {
        let gate = StartGate::default();
        let g2 = gate.clone();
        let h = std::thread::spawn(move || g2.wait());
        drop(OpenOnDrop(&gate));
        h.join().unwrap();
        // An open gate holds nobody.
        gate.wait();
    }

    #[test]
    fn workers_start_on_the_cpus_after_their_starters_wrapping() {
        assert_eq!(first_cpu(&[0, 1], Some(0), 0), Some(1));
        assert_eq!(
            first_cpu(&[0, 1], Some(0), 1),
            Some(0),
            "back on the starter's"
        );
        assert_eq!(first_cpu(&[0, 1], Some(1), 0), Some(0));
        assert_eq!(first_cpu(&[2, 5, 7], Some(5), 0), Some(7));
        assert_eq!(first_cpu(&[2, 5, 7], Some(5), 1), Some(2));
        assert_eq!(first_cpu(&[2, 5, 7], Some(5), 2), Some(5), "the starter's");
        assert_eq!(
            first_cpu(&[2, 5, 7], Some(5), 3),
            Some(7),
            "and round again"
        );
        // A starter on a CPU outside the list (or unknown) counts from the first.
        assert_eq!(first_cpu(&[2, 5, 7], Some(3), 0), Some(5));
        assert_eq!(first_cpu(&[2, 5, 7], None, 0), Some(5));
        assert_eq!(first_cpu(&[4], Some(4), 0), None, "one CPU: nowhere else");
        assert_eq!(first_cpu(&[], None, 0), None);
    }

    #[test]
    fn a_woken_worker_has_its_own_cpus_back_before_it_runs_on() {
        let cpus = affinity::current_thread_cpus().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let me = std::sync::Arc::new(Parked::current());
            me.arm(true);
            tx.send(me.clone()).unwrap();
            // Parked until woken (a spurious return parks again).
            while me.state.load(std::sync::atomic::Ordering::Acquire) == super::PARKED {
                std::thread::park();
            }
            me.woke();
            affinity::current_thread_cpus().unwrap()
        });
        let parked = rx.recv().unwrap();
        parked.wake();
        assert_eq!(
            h.join().unwrap(),
            cpus,
            "steered or not, it may run where it could"
        );
        // Not armed to steer: woken where it is, its CPUs untouched.
        let p = Parked::current();
        p.arm(false);
        p.wake();
        p.woke();
        assert_eq!(affinity::current_thread_cpus().unwrap(), cpus);
    }
}
