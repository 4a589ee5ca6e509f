//! `taskbench-ferry`: Task Bench on Ferry, one remote task per point (see
//! `ferry_taskbench::ferry_run` for the protocol).
//!
//! Usage: `taskbench-ferry [-steps N] [-width N] [-type NAME] [-kernel NAME]
//! [-iter N] [-output N] [-radix N] [-period N] [-fraction F]` on one rank,
//! or under `mpirun -n N` (built with `--features mpi`); Task Bench's flags,
//! read by `TaskGraph::from_flags`. `FERRY_NUM_CPUS` sets each rank's
//! workers. Rank 0 prints Task Bench's summary lines
//! (`ferry_taskbench::report::summary`). Exit status: 0 on success, 2 on
//! bad flags, 1 when a task fails (a wrong input among them).
//!
//! For tests, `FERRY_TASKBENCH_CORRUPT=T,P` flips the last byte of task
//! `(T, P)`'s output after it runs, so that its readers must catch it (as
//! in `taskbench-mpi`), and `FERRY_TASKBENCH_STOP=R,T` stops rank `R`'s
//! part with an error before it submits step `T` (`ferry_run::Faults`):
//! every rank must stop, and the run exit 1, rather than wait for its
//! sends.

use std::process::ExitCode;

use ferry_taskbench::ferry_run::{self, Faults};
use ferry_taskbench::{Point, TaskGraph, report};

const USAGE: &str = "usage: taskbench-ferry [-steps N] [-width N] [-type NAME] [-kernel NAME] \
                     [-iter N] [-output N] [-radix N] [-period N] [-fraction F]";

/// The two numbers `A,B` the variable `name` holds, if set; an error text
/// when it is set but is not `A,B`.
fn pair_var<A: std::str::FromStr, B: std::str::FromStr>(
    name: &str,
    what: &str,
) -> Result<Option<(A, B)>, String> {
    let Ok(v) = std::env::var(name) else {
        return Ok(None);
    };
    let parsed = v
        .split_once(',')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some(at) => Ok(Some(at)),
        None => Err(format!("{name}={v:?}: expected two numbers, {what}")),
    }
}

/// The faults `FERRY_TASKBENCH_CORRUPT=T,P` and `FERRY_TASKBENCH_STOP=R,T`
/// ask for.
fn faults() -> Result<Faults, String> {
    let damage: Option<Point> = pair_var("FERRY_TASKBENCH_CORRUPT", "T,P")?;
    let stop = pair_var("FERRY_TASKBENCH_STOP", "R,T")?;
    Ok(Faults { damage, stop })
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> Result<ExitCode, ferry_run::RunError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let graph = match TaskGraph::from_flags(&args) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("taskbench-ferry: {e}\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    let faults = match faults() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("taskbench-ferry: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Err(e) = faults.check(rt.world_size(), &graph) {
        eprintln!("taskbench-ferry: FERRY_TASKBENCH_STOP: {e}");
        return Ok(ExitCode::from(2));
    }
    let done = ferry_run::run_with(&rt, &graph, faults)?;
    print!("{}", report::summary(&graph, done.elapsed));
    Ok(ExitCode::SUCCESS)
}
