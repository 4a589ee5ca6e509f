//! The runner of `ferry bench`: the filter, the metrics it keeps, and at the
//! end the ratio table against Ray's figures and the JSON results.

use std::path::PathBuf;

use ferry::{Config, Runtime};

use super::anchors::{ray_anchor, ray_per_second};
use super::timeit::{Stat, Timing, py_round2, say, timeit};
use crate::CliError;

/// The options of `ferry bench`.
#[derive(Debug)]
pub(crate) struct BenchArgs {
    /// Only metrics whose name contains this.
    pub(crate) filter: Option<String>,
    /// Where to write the JSON results.
    pub(crate) json: Option<PathBuf>,
    /// Short trials.
    pub(crate) quick: bool,
    /// Logical CPUs of the runtime.
    pub(crate) num_cpus: Option<f64>,
}

/// Runs the metrics that pass the filter and prints them, then the ratios.
pub(crate) struct Runner<'a> {
    timing: Timing,
    filter: Option<&'a str>,
    stats: Vec<Stat>,
    /// Set when a measurement that prints lines but no `Stat` ran.
    pub(crate) printed: bool,
}

impl Runner<'_> {
    pub(crate) fn wants(&self, name: &str) -> bool {
        self.filter.is_none_or(|f| name.contains(f))
    }

    /// Whether a group of metrics whose names all contain `word` may have
    /// one the filter wants: the filter is part of `word` ("cross") or
    /// names a metric of the group ("cross-rank task round trip").
    pub(crate) fn wants_group(&self, word: &str) -> bool {
        self.filter
            .is_none_or(|f| word.contains(f) || f.contains(word))
    }

    /// Like [`wants`](Self::wants), for a measurement that prints its
    /// figures instead of recording a metric; notes that one ran.
    pub(crate) fn wants_printed(&mut self, name: &str) -> bool {
        let yes = self.wants(name);
        self.printed |= yes;
        yes
    }

    /// Sets up (only when the metric is wanted), then times `f`.
    pub(crate) fn metric<S, F>(
        &mut self,
        name: &str,
        multiplier: f64,
        setup: impl FnOnce() -> ferry::Result<S>,
        f: F,
    ) -> ferry::Result<Option<Stat>>
    where
        F: FnMut(&mut S) -> ferry::Result<()>,
    {
        if !self.wants(name) {
            return Ok(None);
        }
        self.measure(name, multiplier, setup, f).map(Some)
    }

    /// Like [`metric`](Self::metric), without the filter.
    pub(crate) fn measure<S, F>(
        &mut self,
        name: &str,
        multiplier: f64,
        setup: impl FnOnce() -> ferry::Result<S>,
        mut f: F,
    ) -> ferry::Result<Stat>
    where
        F: FnMut(&mut S) -> ferry::Result<()>,
    {
        let mut state = setup()?;
        let stat = timeit(name, self.timing, multiplier, || f(&mut state))?;
        drop(state);
        self.stats.push(stat.clone());
        Ok(stat)
    }
}

/// Starts the runtime `args` asks for, runs `groups` with it and a runner
/// that keeps the metrics passing the filter, and shuts the runtime down;
/// then prints the ratio table and writes the JSON file, if asked for.
pub(crate) fn run(
    args: &BenchArgs,
    groups: impl FnOnce(&Runtime, &mut Runner<'_>) -> ferry::Result<()>,
) -> Result<(), CliError> {
    let mut cfg = Config::from_env()?;
    if let Some(n) = args.num_cpus {
        cfg = cfg.num_cpus(n);
    }
    // Ray's placement-group metric runs on `ray.init(resources={"custom": 100})`.
    let (name, amount) = super::placement::CUSTOM;
    let cfg = cfg.resource(name, amount);
    let rt = ferry::init(cfg)?;
    let timing = if args.quick {
        Timing::QUICK
    } else {
        Timing::RAY
    };
    let mut runner = Runner {
        timing,
        filter: args.filter.as_deref(),
        stats: Vec::new(),
        printed: false,
    };
    let res = groups(&rt, &mut runner);
    let unhandled = rt.unhandled_errors();
    rt.shutdown()?;
    res?;
    if unhandled > 0 {
        return Err(format!("{unhandled} task errors were never retrieved").into());
    }
    if runner.stats.is_empty() && !runner.printed {
        return Err(format!(
            "no metric matches the filter {:?}",
            args.filter.as_deref().unwrap_or("")
        )
        .into());
    }
    print_ratios(&runner.stats);
    if let Some(path) = &args.json {
        let rows: Vec<_> = runner
            .stats
            .iter()
            .map(|s| {
                let ray = ray_per_second(&s.name);
                serde_json::json!({
                    "name": s.name,
                    "per_second": s.mean,
                    "std": s.std,
                    "ray_per_second": ray,
                    "ratio": ray.map(|r| s.mean / r),
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&rows)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn print_ratios(stats: &[Stat]) {
    if stats.is_empty() {
        return;
    }
    let width = stats.iter().map(|s| s.name.len()).max().unwrap_or(0);
    say("");
    say("Ferry vs Ray 2.60.0 on a 2-core machine (anchor: ray-2.60.0-microbenchmark-2core.txt)");
    say(&format!(
        "{:<width$}  {:>14}  {:>22}  {:>9}",
        "metric", "ferry /s", "ray /s", "ferry/ray"
    ));
    for s in stats {
        let (ray, ratio) = match ray_anchor(&s.name) {
            Some((mean, std)) => (
                format!("{} +- {}", py_round2(mean), py_round2(std)),
                format!("{:.1}x", s.mean / mean),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        say(&format!(
            "{:<width$}  {:>14}  {:>22}  {:>9}",
            s.name,
            py_round2(s.mean),
            ray,
            ratio
        ));
    }
}
