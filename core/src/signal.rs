//! Waking a waiting thread, and waiting with a spin before parking.
//!
//! A futex round trip costs 12–60 µs on the virtual machines Ferry runs on,
//! a cache-line handoff 0.1–0.2 µs. So every latency-critical wait first
//! spins on its condition for a short budget (yielding now and then so a
//! spinner never starves the thread it waits for on a small machine), and
//! only then registers a [`Signal`] and parks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// A one-shot wake-up for one thread.
#[derive(Debug)]
pub(crate) struct Signal {
    thread: Thread,
    set: AtomicBool,
}

impl Signal {
    /// A signal that wakes the calling thread.
    pub(crate) fn for_current() -> Arc<Signal> {
        Arc::new(Signal {
            thread: thread::current(),
            set: AtomicBool::new(false),
        })
    }

    /// Sets the signal and wakes its thread.
    pub(crate) fn notify(&self) {
        // Release: the waiter that sees `set` sees what the notifier wrote before.
        self.set.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Spins on `ready` for up to `budget`; true as soon as it holds.
pub(crate) fn spin_until(budget: Duration, mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    if budget.is_zero() {
        return false;
    }
    let start = Instant::now();
    let mut round: u32 = 0;
    loop {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
        if ready() {
            return true;
        }
        round = round.wrapping_add(1);
        if round.is_multiple_of(8) {
            if start.elapsed() >= budget {
                return false;
            }
            // Let the thread we wait for run if it shares our core.
            thread::yield_now();
        }
    }
}

/// Parks until `ready` holds or `deadline` passes; true if it holds.
///
/// The caller must already have registered a [`Signal`] for this thread with
/// whatever will make `ready` true, so that no wake-up is lost.
pub(crate) fn park_until(deadline: Option<Instant>, mut ready: impl FnMut() -> bool) -> bool {
    loop {
        if ready() {
            return true;
        }
        match deadline {
            None => thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return ready();
                }
                thread::park_timeout(d - now);
            }
        }
    }
}

/// The longest an idle thread sleeps before it looks again by itself (a
/// bound, in case a wake-up went to a thread that has since left).
pub(crate) const NAP: Duration = Duration::from_millis(500);

/// How every idle Ferry thread waits for work (workers, actor threads):
/// spins on `ready` for `budget`, then parks, unless `ready` held meanwhile.
/// True if `ready` held before parking; false after a nap (the caller looks
/// again).
///
/// `register` must make the thread findable by whoever makes `ready` true
/// (a sleeper list, a `parked` flag) and `unregister` undo it. Between
/// `register` and the last check of `ready` stands a SeqCst fence; the waker
/// needs one between its write and its look at the registration (Dekker's
/// pattern), so that a wake-up is never missed by both.
pub(crate) fn spin_then_park(
    budget: Duration,
    mut ready: impl FnMut() -> bool,
    register: impl FnOnce(),
    unregister: impl FnOnce(),
) -> bool {
    if spin_until(budget, &mut ready) {
        return true;
    }
    nap_unless(ready, register, unregister);
    false
}

/// The parking half of [`spin_then_park`], for a caller that spins its own
/// way (the scheduler lets one searcher at a time spin).
pub(crate) fn nap_unless(
    mut ready: impl FnMut() -> bool,
    register: impl FnOnce(),
    unregister: impl FnOnce(),
) {
    register();
    fence(Ordering::SeqCst);
    if !ready() {
        thread::park_timeout(NAP);
    }
    unregister();
}
