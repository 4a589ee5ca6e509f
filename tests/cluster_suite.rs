//! The multi-rank suite (`tests/multirank`) over the loopback transport, on
//! 2, 3 and 4 ranks, and on 2 ranks with one-sided reads forced.
//! `mpi_suite.rs` runs the same scenarios under `mpirun`.
//!
//! Every scenario runs, whatever the others do: a scenario that returns an
//! error or panics (a failed assertion) is recorded by name and the next one
//! starts; the test fails at the end listing them all. A scenario that hangs
//! is named by a watchdog, which ends the test process after [`LIMIT`].
//! `FERRY_SUITE_ONLY=part` runs only the scenarios whose name contains
//! `part` (while working on one).

mod multirank;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry::Config;

/// How long one scenario may run before the watchdog names it and ends the
/// process (a hang would otherwise stall the whole run). The longest one (a
/// million refs, in a debug build, four worlds at once on a loaded 2-core
/// machine) takes a few minutes.
const LIMIT: Duration = Duration::from_secs(600);

fn cfg() -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(256 << 20)
        .timeline(true)
}

/// Runs every scenario on rank 0 of an `n`-rank loopback world, one-sided
/// reads forced or not; the names and reasons of those that failed.
fn run_scenarios(n: u32, one_sided: bool) -> Vec<String> {
    let label = if one_sided {
        " with one-sided reads forced"
    } else {
        ""
    };
    // Without `force_rma` in the config, the ranks follow FERRY_FORCE_RMA.
    let env_forces = std::env::var("FERRY_FORCE_RMA").is_ok_and(|v| v == "1");
    multirank::set_one_sided_forced(one_sided || env_forces);
    let cfg = if one_sided {
        cfg().force_rma(true)
    } else {
        cfg()
    };
    // The watchdog hears of each scenario as it starts, and of the end.
    let (tx, rx) = mpsc::channel::<Option<&'static str>>();
    let what = format!("{n} loopback ranks{label}");
    let watchdog = {
        let what = what.clone();
        std::thread::spawn(move || {
            let mut current = None;
            loop {
                match rx.recv_timeout(LIMIT) {
                    Ok(Some(name)) => current = Some(name),
                    Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        eprintln!(
                            "cluster_suite: scenario {} on {what} still running after \
                             {LIMIT:?}: ending the test process",
                            current.unwrap_or("(start-up)")
                        );
                        std::process::exit(101);
                    }
                }
            }
        })
    };
    let started = ferry::loopback::run(n, cfg, |rt, _| {
        let mut failures = Vec::new();
        let only = std::env::var("FERRY_SUITE_ONLY").unwrap_or_default();
        for (name, scenario) in multirank::SCENARIOS {
            if !name.contains(only.as_str()) {
                eprintln!("skipped {name}: FERRY_SUITE_ONLY={only} leaves it out");
                continue;
            }
            let _ = tx.send(Some(name));
            let start = Instant::now();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&rt)));
            match outcome {
                Ok(Ok(())) => eprintln!("ok {name} on {what} ({:?})", start.elapsed()),
                Ok(Err(e)) => failures.push(format!("{name}: returned {e}")),
                Err(p) => failures.push(format!("{name}: panicked: {}", panic_text(&*p))),
            }
        }
        failures
    });
    let _ = tx.send(None);
    let _ = watchdog.join();
    match started {
        Ok(failures) => failures,
        Err(e) => vec![format!("the loopback world on {what} failed: {e}")],
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_string())
}

fn run_suite(n: u32, one_sided: bool) {
    let failures = run_scenarios(n, one_sided);
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed on {n} loopback ranks (one-sided reads forced: \
         {one_sided}):\n{}",
        failures.len(),
        multirank::SCENARIOS.len(),
        failures.join("\n")
    );
}

#[test]
fn suite_on_2_loopback_ranks() {
    run_suite(2, false);
}

#[test]
fn suite_on_3_loopback_ranks() {
    run_suite(3, false);
}

#[test]
fn suite_on_4_loopback_ranks() {
    run_suite(4, false);
}

/// The one-sided read path (what ranks on different nodes use) on one node.
#[test]
fn suite_on_2_loopback_ranks_with_one_sided_reads() {
    run_suite(2, true);
}
