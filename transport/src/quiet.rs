//! How long a count has not moved, as seen by threads that look at it now
//! and then: the MPI transport's count of receiving turns, looked at by
//! workers between two tasks (`Transport::poll_if_quiet`). It costs the
//! threads that take turns one increment under their lock and no clock
//! read; the lookers read the clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The count at the last look that saw it move, and when that look was.
#[derive(Debug)]
pub(crate) struct QuietWatch {
    epoch: Instant,
    seen: AtomicU64,
    seen_at_ns: AtomicU64,
}

impl QuietWatch {
    pub(crate) fn new() -> QuietWatch {
        QuietWatch {
            epoch: Instant::now(),
            seen: AtomicU64::new(0),
            seen_at_ns: AtomicU64::new(0),
        }
    }

    /// Whether `count` has stood still for `quiet` or more, counting from
    /// the first look that saw its present value (a look that sees it
    /// moved says no).
    pub(crate) fn still_for(&self, count: u64, quiet: Duration) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if self.seen.swap(count, Ordering::Relaxed) != count {
            self.seen_at_ns.store(now, Ordering::Relaxed);
            return false;
        }
        let quiet = u64::try_from(quiet.as_nanos()).unwrap_or(u64::MAX);
        now.saturating_sub(self.seen_at_ns.load(Ordering::Relaxed)) >= quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_that_moved_since_the_last_look_is_not_still() {
        let w = QuietWatch::new();
        assert!(!w.still_for(1, Duration::ZERO));
        assert!(w.still_for(1, Duration::ZERO));
        assert!(!w.still_for(2, Duration::ZERO));
        assert!(w.still_for(2, Duration::ZERO));
    }

    #[test]
    fn a_count_is_still_only_once_the_quiet_time_has_passed() {
        let w = QuietWatch::new();
        assert!(!w.still_for(7, Duration::MAX));
        assert!(!w.still_for(7, Duration::MAX));
        // The same watch, asked about a shorter time: it has passed.
        assert!(w.still_for(7, Duration::ZERO));
    }
}
