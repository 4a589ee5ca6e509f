//! Task Bench on Ferry: `taskbench-ferry` on one rank for every dependence
//! type reports the graph's task and dependency counts; a bad flag exits 2
//! with its message; a damaged output exits 1 naming the task that caught
//! it. The same graph code (`ferry_run`) on 2 and 3 loopback ranks, and,
//! with `--features mpi`, `taskbench-ferry` under `mpirun -n 2`. A rank's
//! part that stops early (`Faults::stop`, `FERRY_TASKBENCH_STOP`) ends the
//! run on every rank. Each run of the binary is killed, failing the test,
//! after two minutes; a loopback world of the early-stop tests that has
//! not returned by then fails its test too (the protocol they test fails
//! by hanging).

mod common;

use common::{Run, flags, run as run_bin};
use ferry_taskbench::ferry_run::{self, Faults, RunError};
use ferry_taskbench::{DependenceType, TaskGraph, report};

const BIN: &str = env!("CARGO_BIN_EXE_taskbench-ferry");

/// Runs `taskbench-ferry args` (see [`common::run`]), two CPUs per rank.
fn run(ranks: usize, args: &[String], env: &[(&str, &str)]) -> Run {
    let mut env = env.to_vec();
    env.insert(0, ("FERRY_NUM_CPUS", "2"));
    run_bin(BIN, ranks, args, &env)
}

fn graph(d: DependenceType, width: usize) -> TaskGraph {
    TaskGraph::from_flags(flags(d, width)).unwrap_or_else(|e| panic!("{d}: {e}"))
}

/// Runs every type under `mpirun -n ranks` (0: without mpirun) and checks
/// the counts each prints.
fn every_type_reports_its_counts(ranks: usize) {
    for d in DependenceType::ALL {
        let (f, g) = (flags(d, 8), graph(d, 8));
        let r = run(ranks, &f, &[]);
        assert_eq!(
            r.code,
            Some(0),
            "{d} on {ranks} ranks: stdout:\n{}\nstderr:\n{}",
            r.stdout,
            r.stderr
        );
        let s = report::Summary::parse(&r.stdout)
            .unwrap_or_else(|| panic!("{d}: no summary in:\n{}", r.stdout));
        assert_eq!(s.total_tasks, g.total_tasks(), "{d}");
        assert_eq!(s.total_dependencies, g.total_dependencies(), "{d}");
        assert_eq!(s.total_flops, g.total_flops(), "{d}");
    }
}

#[test]
fn every_type_on_one_rank() {
    every_type_reports_its_counts(0);
}

#[test]
fn a_bad_flag_exits_2_with_its_message() {
    let r = run(0, &["-steps".into(), "six".into()], &[]);
    assert_eq!(r.code, Some(2), "stderr:\n{}", r.stderr);
    let expected = TaskGraph::from_flags(["-steps", "six"])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(!expected.is_empty());
    assert!(r.stderr.contains(&expected), "{}", r.stderr);
    assert!(r.stderr.contains("usage: taskbench-ferry"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let r = run(0, &["-wobble".into()], &[]);
    assert_eq!(r.code, Some(2), "stderr:\n{}", r.stderr);
    assert!(r.stderr.contains("-wobble"), "{}", r.stderr);
}

#[test]
fn a_damaged_output_exits_1_naming_the_reader() {
    let f = flags(DependenceType::Stencil1d, 8);
    // (2, 3) is read by (3, 2), (3, 3) and (3, 4).
    let r = run(0, &f, &[("FERRY_TASKBENCH_CORRUPT", "2,3")]);
    assert_eq!(r.code, Some(1), "stderr:\n{}", r.stderr);
    // A reader of (2, 3) names it (the damage is past the first 16 bytes).
    assert!(
        r.stderr.contains("the output of (2, 3) differs"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("task (3, "), "{}", r.stderr);
    assert!(!r.stdout.contains("Total Tasks"), "{}", r.stdout);
    // An output of the last step is checked by the driver.
    let r = run(0, &f, &[("FERRY_TASKBENCH_CORRUPT", "5,0")]);
    assert_eq!(r.code, Some(1), "stderr:\n{}", r.stderr);
    assert!(
        r.stderr.contains("the output of (5, 0) differs"),
        "{}",
        r.stderr
    );
    let r = run(0, &f, &[("FERRY_TASKBENCH_CORRUPT", "five")]);
    assert_eq!(r.code, Some(2), "stderr:\n{}", r.stderr);
}

fn world_cfg() -> ferry::Config {
    ferry::Config::default()
        .num_cpus(2.0)
        .object_store_memory(64 << 20)
}

/// Every type on `ranks` loopback ranks: every task runs, every input is
/// passed; a damaged output fails the run naming the reader, also when only
/// another rank than the driver's reads it.
fn every_type_on_loopback(ranks: u32) {
    let failures = ferry::loopback::run(ranks, world_cfg(), |rt, _| {
        let mut failures = Vec::new();
        for d in DependenceType::ALL {
            // A width that does not divide evenly among the ranks, too.
            for width in [8, 5] {
                let g = graph(d, width);
                match ferry_run::run(&rt, &g, None) {
                    Ok(done) => {
                        let want = (g.total_tasks(), g.total_dependencies());
                        if (done.tasks, done.dependencies) != want {
                            failures.push(format!(
                                "{d} width {width}: ran {} tasks, {} dependencies; the graph has {want:?}",
                                done.tasks, done.dependencies
                            ));
                        }
                    }
                    Err(e) => failures.push(format!("{d} width {width}: {e}")),
                }
            }
        }
        let g = graph(DependenceType::AllToAll, 8);
        match ferry_run::run(&rt, &g, Some((1, 7))) {
            Err(RunError::Task(e)) => {
                let t = e.task_error().map(|t| t.message.clone()).unwrap_or_default();
                if !(t.contains("the output of (1, 7) differs") && t.contains("task (2, ")) {
                    failures.push(format!("damaged (1, 7): {e}"));
                }
            }
            other => failures.push(format!("damaged (1, 7): expected a task error, got {other:?}")),
        }
        // Without communication only the rank that owns the point sees the
        // damage: the driver reports it from there.
        let g = graph(DependenceType::NoComm, 8);
        let owner = ferry_run::rank_of(7, 8, ranks);
        match ferry_run::run(&rt, &g, Some((1, 7))) {
            Err(RunError::Rank { rank, message })
                if rank == owner && message.contains("the output of (1, 7) differs") => {}
            other => failures.push(format!(
                "no_comm damaged (1, 7): expected rank {owner}'s failure, got {other:?}"
            )),
        }
        failures
    })
    .unwrap_or_else(|e| vec![format!("the loopback world failed: {e}")]);
    assert!(
        failures.is_empty(),
        "on {ranks} ranks:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_type_on_two_loopback_ranks() {
    every_type_on_loopback(2);
}

#[test]
fn every_type_on_three_loopback_ranks() {
    every_type_on_loopback(3);
}

/// A run with more steps than the driver lets be pending at once waits for
/// earlier steps on the way (see `ferry_run`'s pacing), and still runs
/// every task and reports a damaged output made before its first wait.
#[test]
fn a_run_longer_than_the_pacing_window_runs_every_task() {
    let g = TaskGraph::new(
        2 * ferry_run::MAX_STEPS_AHEAD + 37,
        3,
        DependenceType::Stencil1d,
    );
    assert_eq!(ferry_run::steps_ahead(&g), ferry_run::MAX_STEPS_AHEAD);
    let failures = ferry::loopback::run(2, world_cfg(), |rt, _| {
        let mut failures = Vec::new();
        match ferry_run::run(&rt, &g, None) {
            Ok(done)
                if (done.tasks, done.dependencies) == (g.total_tasks(), g.total_dependencies()) => {
            }
            Ok(done) => failures.push(format!(
                "ran {done:?}; the graph has {} tasks",
                g.total_tasks()
            )),
            Err(e) => failures.push(format!("{e}")),
        }
        match ferry_run::run(&rt, &g, Some((1, 2))) {
            // The damage (the last byte of 16) falls on the point's number.
            Err(RunError::Task(e)) if e.to_string().contains("expected the output of (1, 2)") => {}
            other => failures.push(format!(
                "damaged (1, 2): expected a task error, got {other:?}"
            )),
        }
        failures
    })
    .unwrap_or_else(|e| vec![format!("the loopback world failed: {e}")]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `f` on a thread of its own: its result, or its panic passed on;
/// fails the test if it has not returned after [`common::LIMIT`] (the
/// thread is then left behind, to end with the test process).
fn within_limit<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(common::LIMIT) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("{what}: ended without a result"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: no end after {:?}", common::LIMIT)
        }
    }
}

/// A rank's part that stops early (as a refused submission would stop it)
/// stops the run instead of leaving the others waiting for its sends: the
/// run returns, naming that rank. Stopped in a graph shorter than the
/// pacing window (the driver finds out in its sinks' checks or in its
/// wait for the other parts) and past the first pacing wait (in its
/// pacing waits); another rank learns of it from the driver's end of the
/// run.
fn a_part_that_stops_early_stops_the_run(ranks: u32) {
    let short = graph(DependenceType::Stencil1d, 8);
    let long = TaskGraph::new(
        2 * ferry_run::MAX_STEPS_AHEAD + 37,
        8,
        DependenceType::Stencil1d,
    );
    assert_eq!(ferry_run::steps_ahead(&long), ferry_run::MAX_STEPS_AHEAD);
    let what = format!("the early stops on {ranks} loopback ranks");
    let failures = within_limit(&what, move || {
        ferry::loopback::run(ranks, world_cfg(), |rt, _| {
            let mut failures = Vec::new();
            for rank in 0..ranks {
                for (g, step) in [(&short, 2), (&long, ferry_run::MAX_STEPS_AHEAD + 10)] {
                    let faults = Faults {
                        stop: Some((rank, step)),
                        ..Faults::default()
                    };
                    let said = format!("rank {rank} stopped before step {step}");
                    match ferry_run::run_with(&rt, g, faults) {
                        Err(RunError::Stopped { rank: 0, step: s }) if rank == 0 && s == step => {}
                        Err(RunError::Rank { rank: r, message })
                            if r == rank && rank != 0 && message.contains(&said) => {}
                        other => failures.push(format!("{said}: got {other:?}")),
                    }
                }
            }
            // The world still runs whole graphs afterwards, and refuses a stop
            // it has no rank or step for.
            match ferry_run::run(&rt, &short, None) {
                Ok(done) if done.tasks == short.total_tasks() => {}
                other => failures.push(format!("a run after the stops: {other:?}")),
            }
            for stop in [(ranks, 2), (0, short.steps)] {
                let faults = Faults {
                    stop: Some(stop),
                    ..Faults::default()
                };
                match ferry_run::run_with(&rt, &short, faults) {
                    Err(RunError::Ferry(ferry::Error::InvalidArgument(m)))
                        if m.contains("Faults::stop") => {}
                    other => failures.push(format!("stop {stop:?}: got {other:?}")),
                }
            }
            failures
        })
        .unwrap_or_else(|e| vec![format!("the loopback world failed: {e}")])
    });
    assert!(
        failures.is_empty(),
        "on {ranks} ranks:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_part_that_stops_early_stops_the_run_on_two_loopback_ranks() {
    a_part_that_stops_early_stops_the_run(2);
}

#[test]
fn a_part_that_stops_early_stops_the_run_on_three_loopback_ranks() {
    a_part_that_stops_early_stops_the_run(3);
}

/// Under `mpirun`, a rank whose part stops early (`FERRY_TASKBENCH_STOP`)
/// ends the run: exit status 1, the rank named, no summary.
#[test]
fn a_rank_that_stops_early_ends_the_run_under_mpirun() {
    let f = flags(DependenceType::Stencil1d, 8);
    let r = run(0, &f, &[("FERRY_TASKBENCH_STOP", "one")]);
    assert_eq!(r.code, Some(2), "stderr:\n{}", r.stderr);
    assert!(r.stderr.contains("FERRY_TASKBENCH_STOP"), "{}", r.stderr);
    let r = run(0, &f, &[("FERRY_TASKBENCH_STOP", "1,2")]);
    assert_eq!(r.code, Some(2), "a rank the job lacks: {}", r.stderr);
    assert!(r.stderr.contains("FERRY_TASKBENCH_STOP"), "{}", r.stderr);
    let r = run(0, &f, &[("FERRY_TASKBENCH_STOP", "0,6")]);
    assert_eq!(r.code, Some(2), "a step the graph lacks: {}", r.stderr);
    let r = run(0, &f, &[("FERRY_TASKBENCH_STOP", "0,2")]);
    assert_eq!(r.code, Some(1), "stderr:\n{}", r.stderr);
    assert!(
        r.stderr.contains("rank 0 stopped before step 2"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("Total Tasks"), "{}", r.stdout);
    if !cfg!(feature = "mpi") {
        eprintln!(
            "skipped a_rank_that_stops_early_ends_the_run_under_mpirun: taskbench-ferry runs \
             under mpirun only when built with --features mpi"
        );
        return;
    }
    if !common::have_mpirun("a_rank_that_stops_early_ends_the_run_under_mpirun") {
        return;
    }
    for rank in [1, 0] {
        let stop = format!("{rank},2");
        let r = run(2, &f, &[("FERRY_TASKBENCH_STOP", &stop)]);
        assert_eq!(r.code, Some(1), "stop {stop}: stderr:\n{}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("rank {rank} stopped before step 2")),
            "stop {stop}: {}",
            r.stderr
        );
        assert!(!r.stdout.contains("Total Tasks"), "{}", r.stdout);
    }
}

#[test]
fn a_malformed_graph_is_an_error() {
    let rt = ferry::init(ferry::Config::default().num_cpus(1.0)).expect("a runtime");
    let mut g = TaskGraph::new(3, 4, DependenceType::Stencil1d);
    g.width = 0;
    assert!(matches!(
        ferry_run::run(&rt, &g, None),
        Err(RunError::Graph(_))
    ));
    rt.shutdown().expect("shutdown");
}

#[test]
fn every_type_under_mpirun() {
    if !cfg!(feature = "mpi") {
        eprintln!(
            "skipped every_type_under_mpirun: taskbench-ferry runs under mpirun only when \
             built with --features mpi"
        );
        return;
    }
    if !common::have_mpirun("every_type_under_mpirun") {
        return;
    }
    every_type_reports_its_counts(2);
}
