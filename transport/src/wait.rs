//! Spin-then-park waiting on an event channel.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

/// How long a waiter spins (polling) before it parks. A futex wake-up costs
/// 12–60 µs on the virtual machines Ferry targets, so an event arriving
/// within this window is picked up without paying for one.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// How often a parked waiter wakes to check whether its endpoint was closed
/// (or lost) by another thread meanwhile.
const SLICE: Duration = Duration::from_millis(20);

/// Takes the next item from `rx`, waiting at most `timeout` (`None`:
/// forever): spins up to [`SPIN`], then parks, waking every [`SLICE`] to run
/// `still_open`, whose error ends the wait. `Ok(None)`: the timeout passed.
/// A disconnected channel is reported through `still_open` (which must fail
/// then) or, if it does not, as `Ok(None)`.
pub(crate) fn recv_until<T, E>(
    rx: &Receiver<T>,
    timeout: Option<Duration>,
    still_open: impl Fn() -> Result<(), E>,
) -> Result<Option<T>, E> {
    let start = Instant::now();
    // A timeout too large to represent is the same as none.
    let deadline = timeout.and_then(|t| start.checked_add(t));
    let spin_until = deadline.map_or(start + SPIN, |d| d.min(start + SPIN));
    let mut polls = 0u32;
    loop {
        match rx.try_recv() {
            Ok(v) => return Ok(Some(v)),
            Err(TryRecvError::Disconnected) => {
                still_open()?;
                return Ok(None);
            }
            Err(TryRecvError::Empty) => {}
        }
        polls = polls.wrapping_add(1);
        // Read the clock every 16 polls only (`Instant::now` costs 20-40 ns).
        if polls.is_multiple_of(16) {
            if Instant::now() >= spin_until {
                break;
            }
            // On an oversubscribed core the thread we wait for may be the
            // one we keep off the CPU: give it the core now and then.
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    loop {
        let now = Instant::now();
        let wake = match deadline {
            Some(d) if d <= now => return Ok(None),
            Some(d) => d.min(now + SLICE),
            None => now + SLICE,
        };
        match rx.recv_deadline(wake) {
            Ok(v) => return Ok(Some(v)),
            Err(RecvTimeoutError::Timeout) => still_open()?,
            Err(RecvTimeoutError::Disconnected) => {
                still_open()?;
                return Ok(None);
            }
        }
    }
}
