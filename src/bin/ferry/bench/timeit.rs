//! Ray's `timeit` (python/ray/_private/ray_microbenchmark_helpers.py), in Rust.

use std::io::Write;
use std::time::{Duration, Instant};

/// How long to warm up and measure.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// Calls run (and counted) before the trials.
    pub(crate) warmup: Duration,
    /// Minimum length of one trial.
    pub(crate) trial: Duration,
    /// Number of trials.
    pub(crate) trials: usize,
}

impl Timing {
    /// Ray's settings: 1 s warm-up, then 4 trials of at least 2 s. (Ray also
    /// sleeps 10 s before each metric "to avoid noisy neighbours"; that idle
    /// time changes nothing measured, so it is left out.)
    pub(crate) const RAY: Timing = Timing {
        warmup: Duration::from_secs(1),
        trial: Duration::from_secs(2),
        trials: 4,
    };

    /// Short trials for smoke runs (`--quick`).
    pub(crate) const QUICK: Timing = Timing {
        warmup: Duration::from_millis(100),
        trial: Duration::from_millis(200),
        trials: 2,
    };
}

/// One metric's result.
#[derive(Clone, Debug)]
pub(crate) struct Stat {
    /// The metric's name (Ray's name where Ray has the metric).
    pub(crate) name: String,
    /// Mean of the trial rates.
    pub(crate) mean: f64,
    /// Population standard deviation (numpy's `np.std`, ddof = 0) of the trial rates.
    pub(crate) std: f64,
}

/// Python's `str(round(x, 2))`: at most two decimals, and always a decimal
/// point (`12996.0`, `1334.6`, `2.21`).
pub(crate) fn py_round2(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    let s = format!("{r}");
    if s.contains(['.', 'e', 'E']) || !r.is_finite() {
        s
    } else {
        format!("{s}.0")
    }
}

/// Ray's result line: `<name> per second <mean> +- <std>`.
pub(crate) fn line(s: &Stat) -> String {
    format!(
        "{} per second {} +- {}",
        s.name,
        py_round2(s.mean),
        py_round2(s.std)
    )
}

/// Measures `f` as Ray's `timeit` does and prints the result line.
///
/// Warm-up: call `f` for `timing.warmup`, counting calls; the chunk size is
/// `count / 10 + 1`. Each trial then runs chunks of calls until at least
/// `timing.trial` has passed (the clock is read only between chunks) and
/// records `multiplier * calls / seconds`. The result is the mean and the
/// population std of the trial rates.
pub(crate) fn timeit<E>(
    name: &str,
    timing: Timing,
    multiplier: f64,
    mut f: impl FnMut() -> Result<(), E>,
) -> Result<Stat, E> {
    let progress = super::progress::Progress::start(name, 1 + timing.trials as u64);
    let start = Instant::now();
    let mut count: u64 = 0;
    while start.elapsed() < timing.warmup {
        f()?;
        count += 1;
    }
    progress.step();
    let step = count / 10 + 1;
    let mut rates = Vec::with_capacity(timing.trials);
    for _ in 0..timing.trials {
        let start = Instant::now();
        let mut count: u64 = 0;
        while start.elapsed() < timing.trial {
            for _ in 0..step {
                f()?;
            }
            count += step;
        }
        let secs = start.elapsed().as_secs_f64();
        rates.push(multiplier * count as f64 / secs);
        progress.step();
    }
    drop(progress);
    let stat = summarize(name, &rates);
    say(&line(&stat));
    Ok(stat)
}

/// Prints a line and flushes; a closed stdout (`| head`) is not an error.
pub(crate) fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Mean and population std of `rates`.
pub(crate) fn summarize(name: &str, rates: &[f64]) -> Stat {
    let n = rates.len().max(1) as f64;
    let mean = rates.iter().sum::<f64>() / n;
    let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    Stat {
        name: name.to_string(),
        mean,
        std: var.sqrt(),
    }
}

/// The median of `xs` (the upper middle for an even count); `xs` must not
/// be empty.
pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_like_python() {
        assert_eq!(py_round2(12996.0), "12996.0");
        assert_eq!(py_round2(1334.6), "1334.6");
        assert_eq!(py_round2(2.2149), "2.21");
        assert_eq!(py_round2(0.0), "0.0");
    }

    #[test]
    fn population_std() {
        let s = summarize("x", &[1.0, 3.0]);
        assert_eq!(s.mean, 2.0);
        assert_eq!(s.std, 1.0);
        assert_eq!(line(&s), "x per second 2.0 +- 1.0");
    }
}
