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
//! in `taskbench-mpi`).

use std::process::ExitCode;

use ferry_taskbench::{Point, TaskGraph, ferry_run, report};

const USAGE: &str = "usage: taskbench-ferry [-steps N] [-width N] [-type NAME] [-kernel NAME] \
                     [-iter N] [-output N] [-radix N] [-period N] [-fraction F]";

/// The point `FERRY_TASKBENCH_CORRUPT=T,P` names, if set; an error text
/// when it is set but is not `T,P`.
fn damaged_point() -> Result<Option<Point>, String> {
    let Ok(v) = std::env::var("FERRY_TASKBENCH_CORRUPT") else {
        return Ok(None);
    };
    let parsed = v
        .split_once(',')
        .and_then(|(t, p)| Some((t.trim().parse().ok()?, p.trim().parse().ok()?)));
    match parsed {
        Some(at) => Ok(Some(at)),
        None => Err(format!(
            "FERRY_TASKBENCH_CORRUPT={v:?}: expected two numbers, T,P"
        )),
    }
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
    let damage = match damaged_point() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("taskbench-ferry: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let done = ferry_run::run(&rt, &graph, damage)?;
    print!("{}", report::summary(&graph, done.elapsed));
    Ok(ExitCode::SUCCESS)
}
