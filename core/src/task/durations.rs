//! How long a task function's runs took lately, sampled: what a thread
//! that submits work reads before it runs a queued task itself (see
//! `Scheduler::help`), so that it only ever takes on short ones.
//!
//! A fixed table of words, one per function (by its name, hashed): the function's tag and its last sampled run time in
//! nanoseconds. Two functions that meet in one word overwrite each other;
//! a reader that finds the other's tag knows nothing, which is the safe
//! answer (nothing is run inline).
//!
//! ```text
//!   word: | tag (40 bits) | nanoseconds, saturated (24 bits) |
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SLOTS: usize = 256;
const NANOS_BITS: u32 = 24;
const NANOS_MAX: u64 = (1 << NANOS_BITS) - 1;

/// Sampled run times per task function.
pub(crate) struct Durations {
    slots: [AtomicU64; SLOTS],
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            slots: [const { AtomicU64::new(0) }; SLOTS],
        }
    }
}

/// The word index and the (never zero) tag of `label`, from its text (one
/// function's name may stand at several addresses).
fn place(label: &str) -> (usize, u64) {
    // FNV-1a, then a multiply to spread the bits.
    let h = label
        .bytes()
        .fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
        })
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 56) as usize % SLOTS, (h >> NANOS_BITS) | 1)
}

impl Durations {
    /// A run of function `label` took `took`.
    pub(crate) fn record(&self, label: &'static str, took: Duration) {
        let (i, tag) = place(label);
        let nanos = (took.as_nanos() as u64).min(NANOS_MAX);
        self.slots[i].store(tag << NANOS_BITS | nanos, Ordering::Relaxed);
    }

    /// How long the last sampled run of `label` took, if one is known
    /// (saturated at about 16 ms).
    pub(crate) fn last(&self, label: &'static str) -> Option<Duration> {
        let (i, tag) = place(label);
        let word = self.slots[i].load(Ordering::Relaxed);
        (word >> NANOS_BITS == tag).then(|| Duration::from_nanos(word & NANOS_MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_s_last_sampled_run_is_known_by_its_name() {
        let d = Durations::default();
        let small = Duration::from_micros(20);
        assert_eq!(d.last("never ran"), None);
        d.record("quick", Duration::from_micros(3));
        assert!(d.last("quick").is_some_and(|t| t <= small));
        d.record("quick", Duration::from_millis(5));
        assert!(
            d.last("quick").is_some_and(|t| t > small),
            "the last run counts"
        );
        // Longer than the word holds: saturated, still long.
        d.record("slow", Duration::from_secs(10));
        assert!(
            d.last("slow")
                .is_some_and(|t| t > Duration::from_millis(10))
        );
        // A name at another address is the same function.
        let again = String::from("quick").leak();
        assert_eq!(d.last(again), d.last("quick"));
    }
}
