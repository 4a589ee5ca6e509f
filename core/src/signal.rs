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

/// A quick spinner looks at the clock (for its budget and its next yield)
/// once every this many looks at its condition.
const CLOCK_EVERY: u32 = 4;

/// A patient one, every this many (and yields each time).
const PATIENT_CLOCK_EVERY: u32 = 8;

/// How long a spinner holds its core before it yields it once (so that a
/// thread it waits for on the same core runs).
const YIELD_EVERY: Duration = Duration::from_micros(8);

/// The most `pause` hints between two looks.
pub(crate) const MAX_PAUSES: u32 = 32;

/// How many `pause` hints a spinner that starts at `first` waits before its
/// look number `round`: `first` for the first eight looks, then twice as
/// many every eight looks, up to [`MAX_PAUSES`] (exponential backoff, as
/// crossbeam's `Backoff`). From 1, an answer that comes within a few
/// microseconds (a round trip to another rank, a call on another core) is
/// seen within a fraction of a microsecond, and a long wait looks at the
/// shared state, and so at its writers' cache lines, rarely.
///
/// Measured on the 2-core VM (AMD EPYC, where a `pause` takes 25 ns): with
/// 32 hints before every look (before) a spinner looked every ~0.8 µs,
/// which cost each hop of a cross-rank round trip ~0.4 µs on average.
fn paced(first: u32, round: u32) -> u32 {
    (first.max(1) << (round / 8).min(5)).min(MAX_PAUSES)
}

/// Spins on `ready` for up to `budget`, with `first` pause hints before
/// each of the first looks (doubling every eight looks, up to
/// [`MAX_PAUSES`]); true as soon as `ready` holds.
///
/// Callers pass their scheduler's `first_pauses`: quick (1) where each
/// look also receives from other ranks (a look then takes ~0.2 µs, which
/// paces the looks by itself), patient ([`MAX_PAUSES`]) on one rank, where a look is a few
/// loads of cache lines other threads keep writing: there, looking every
/// 30 ns slowed a thread submitting many tasks by 10–40% (`ferry bench`,
/// 2-core VM).
pub(crate) fn spin_until_paced(
    budget: Duration,
    first: u32,
    mut ready: impl FnMut() -> bool,
) -> bool {
    if ready() {
        return true;
    }
    if budget.is_zero() {
        return false;
    }
    let start = Instant::now();
    let mut last_yield = start;
    let patient = first >= MAX_PAUSES;
    let mut round: u32 = 0;
    loop {
        for _ in 0..paced(first, round) {
            std::hint::spin_loop();
        }
        if ready() {
            return true;
        }
        round = round.wrapping_add(1);
        // A patient spinner looks at the clock, and yields, every eight
        // looks (~6 µs); a quick one every four looks, yielding every
        // `YIELD_EVERY`.
        if round.is_multiple_of(if patient {
            PATIENT_CLOCK_EVERY
        } else {
            CLOCK_EVERY
        }) {
            let now = Instant::now();
            if now.duration_since(start) >= budget {
                return false;
            }
            if patient || now.duration_since(last_yield) >= YIELD_EVERY {
                last_yield = now;
                // Let the thread we wait for run if it shares our core.
                thread::yield_now();
            }
        }
    }
}

/// Spins on `ready` as [`spin_until_paced`] does for `budget`, then on, up
/// to `most` in all, while `busy` holds (looked at once every
/// [`BUSY_EVERY`] looks: it reads lines other threads keep writing; the
/// spin ends when it fails twice in a row, as a worker between two tasks
/// is idle for a moment); true as soon as `ready` holds.
///
/// For a thread waiting on work its rank is doing now, with a core of its
/// own to spin on: parking would cost it a wake-up (12–60 µs here) once
/// the work is done, and the thread finishing it a system call.
pub(crate) fn spin_while_busy(
    budget: Duration,
    most: Duration,
    first: u32,
    busy: impl Fn() -> bool,
    mut ready: impl FnMut() -> bool,
) -> bool {
    if spin_until_paced(budget, first, &mut ready) {
        return true;
    }
    if most <= budget || !busy() {
        return false;
    }
    let mut looks = 0u32;
    let mut done = false;
    let mut idle = 0u32;
    spin_until_paced(most - budget, first, || {
        done = ready();
        looks = looks.wrapping_add(1);
        if !done && looks.is_multiple_of(BUSY_EVERY) {
            idle = if busy() { 0 } else { idle + 1 };
        }
        done || idle >= 2
    });
    // A last look when the budget ran out or the rank went idle.
    done || ready()
}

/// How many looks at its condition a [`spin_while_busy`] spinner takes
/// between two looks at whether its rank is still busy.
const BUSY_EVERY: u32 = 16;

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
/// spins on `ready` for `budget` (starting at `first` pause hints a look,
/// see [`spin_until_paced`]), then parks, unless `ready` held meanwhile.
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
    first: u32,
    mut ready: impl FnMut() -> bool,
    register: impl FnOnce(),
    unregister: impl FnOnce(),
) -> bool {
    if spin_until_paced(budget, first, &mut ready) {
        return true;
    }
    nap_unless(NAP, ready, register, unregister);
    false
}

/// The parking half of [`spin_then_park`], for a caller that spins its own
/// way (the scheduler lets one searcher at a time spin).
pub(crate) fn nap_unless(
    nap: Duration,
    mut ready: impl FnMut() -> bool,
    register: impl FnOnce(),
    unregister: impl FnOnce(),
) {
    register();
    fence(Ordering::SeqCst);
    if !ready() {
        thread::park_timeout(nap);
    }
    unregister();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_busy_rank_keeps_a_waiter_spinning_past_its_budget() {
        // Ready at the 200th look, long after a zero budget ran out.
        let looks = Cell::new(0u32);
        let ready = || {
            looks.set(looks.get() + 1);
            looks.get() >= 200
        };
        assert!(spin_while_busy(
            Duration::ZERO,
            Duration::from_secs(600),
            1,
            || true,
            ready
        ));
        assert_eq!(looks.get(), 200, "no look after the one that saw it ready");
    }

    #[test]
    fn a_waiter_stops_spinning_once_its_rank_is_idle() {
        // Never ready: the spin ends when `busy` fails twice in a row, not
        // after 600 s (once is a worker between two tasks).
        let asked = Cell::new(0u32);
        let busy = || {
            asked.set(asked.get() + 1);
            asked.get() < 3 || asked.get() == 4
        };
        assert!(!spin_while_busy(
            Duration::ZERO,
            Duration::from_secs(600),
            1,
            busy,
            || false
        ));
        assert_eq!(asked.get(), 6);
        // An idle rank from the start: no spin past the budget at all.
        let looks = Cell::new(0u32);
        assert!(!spin_while_busy(
            Duration::ZERO,
            Duration::from_secs(600),
            1,
            || false,
            || {
                looks.set(looks.get() + 1);
                false
            }
        ));
        assert_eq!(looks.get(), 1);
    }

    #[test]
    fn a_spinner_looks_often_at_first_then_backs_off_to_32_pauses() {
        assert_eq!(paced(1, 0), 1);
        assert_eq!(paced(1, 7), 1);
        assert_eq!(paced(1, 8), 2);
        assert_eq!(paced(1, 39), 16);
        assert_eq!(paced(1, 40), 32);
        assert_eq!(paced(1, u32::MAX), 32);
        assert_eq!(
            paced(MAX_PAUSES, 0),
            MAX_PAUSES,
            "a patient spinner starts slow"
        );
        assert_eq!(paced(0, 0), 1);
        let mut last = 0;
        for round in 0..100 {
            assert!(paced(1, round) >= last, "never shorter later");
            last = paced(1, round);
        }
    }

    #[test]
    fn spinning_ends_when_the_condition_holds_or_the_budget_is_spent() {
        let mut looks = 0;
        assert!(spin_until_paced(Duration::from_secs(60), 1, || {
            looks += 1;
            looks == 50
        }));
        assert_eq!(looks, 50, "looked until it held, no further");
        let mut looks = 0;
        assert!(!spin_until_paced(
            Duration::from_micros(1),
            MAX_PAUSES,
            || {
                looks += 1;
                false
            }
        ));
        assert!(looks > 1, "looked again after the first look");
        assert!(
            !spin_until_paced(Duration::ZERO, 1, || false),
            "no budget: one look"
        );
    }
}
