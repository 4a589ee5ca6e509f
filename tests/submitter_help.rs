//! With `Config::submitter_help`, a thread that submits work runs a ready
//! task no worker has taken, itself, when its function is known to be
//! short, and never one it knows nothing of; without it (the default), it
//! never does.
//!
//! Each test runs on one CPU (a rank per core; but the last, which keeps
//! several) and holds the runtime's only worker thread (`max_threads(1)`)
//! in a task that takes no CPU, so that the next task (one CPU, free) is
//! queued and no worker can take it: whether it is done when `remote`
//! returns says whether the submitting thread ran it.

mod common;
use common::Gate;

use std::time::Duration;

use ferry::{ObjectRef, Runtime};

/// Holds its worker until the gate opens.
#[ferry::remote]
fn hold(gate: u64) {
    Gate::pass(gate, 0);
}

/// The name of the thread it ran on.
#[ferry::remote]
fn where_run() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

/// Like `where_run`, but never run before its test submits it.
#[ferry::remote]
fn where_run_fresh() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

fn runtime(help: Option<Duration>) -> Runtime {
    // One CPU for this thread and the workers it starts: a rank per core.
    let cpus = ferry::parts::launcher::affinity::current_thread_cpus().expect("affinity");
    ferry::parts::launcher::affinity::bind_current_thread(&cpus[..1]).expect("bind");
    runtime_here(help)
}

/// A runtime on the CPUs this thread has.
fn runtime_here(help: Option<Duration>) -> Runtime {
    let cfg = ferry::Config::default()
        .num_cpus(1.0)
        .max_threads(1)
        .object_store_memory(64 << 20);
    let cfg = match help {
        Some(d) => cfg.submitter_help(d),
        None => cfg,
    };
    ferry::init(cfg).expect("runtime starts")
}

/// Occupies the only worker; the gate that lets it go.
fn occupy_the_worker(rt: &Runtime) -> (Gate, ObjectRef<()>) {
    let gate = Gate::new();
    let held = hold::options()
        .num_cpus(0.0)
        .remote(rt, gate.key())
        .expect("submitted");
    gate.wait_arrived(1, "the holding task to start");
    (gate, held)
}

/// With the worker held, what `submit` submits is still queued when it
/// returns; it runs once the worker is free.
fn left_to_the_worker(rt: &Runtime, submit: impl Fn(&Runtime) -> ObjectRef<String>) {
    let (gate, held) = occupy_the_worker(rt);
    let r = submit(rt);
    assert!(!is_done(rt, &r), "left queued for the busy worker");
    gate.open();
    rt.get(&held).unwrap();
    rt.get(&r).unwrap();
}

fn is_done<T>(rt: &Runtime, r: &ObjectRef<T>) -> bool {
    let (ready, _) = rt
        .wait(std::slice::from_ref(r), 1, Some(Duration::ZERO))
        .expect("wait");
    ready.len() == 1
}

#[test]
fn a_submitting_thread_runs_a_short_ready_task_no_worker_took() {
    // Any function timed before counts as short (see `submitter_help`).
    let rt = runtime(Some(Duration::from_secs(1)));
    // Timed wherever it runs (a thread's first runs always are).
    rt.get(&where_run::remote(&rt).unwrap()).unwrap();
    let (gate, held) = occupy_the_worker(&rt);
    let me = std::thread::current().name().unwrap_or("").to_string();
    let r = where_run::remote(&rt).unwrap();
    assert!(is_done(&rt, &r), "the submitting thread ran the task");
    assert_eq!(rt.get(&r).unwrap().deserialize().unwrap(), me);
    gate.open();
    rt.get(&held).unwrap();
    rt.shutdown().unwrap();
}

#[test]
fn a_function_never_timed_is_left_to_the_workers() {
    let rt = runtime(Some(Duration::from_secs(1)));
    left_to_the_worker(&rt, |rt| where_run_fresh::remote(rt).unwrap());
    rt.shutdown().unwrap();
}

#[test]
fn no_help_by_default() {
    let rt = runtime(None);
    rt.get(&where_run::remote(&rt).unwrap()).unwrap();
    left_to_the_worker(&rt, |rt| where_run::remote(rt).unwrap());
    rt.shutdown().unwrap();
}

#[test]
fn a_thread_with_cpus_of_its_own_leaves_tasks_to_the_workers() {
    let cpus = ferry::parts::launcher::affinity::current_thread_cpus().expect("affinity");
    if cpus.len() < 2 {
        eprintln!("skipped: this thread may use one CPU only ({cpus:?})");
        return;
    }
    let rt = runtime_here(Some(Duration::from_secs(1)));
    rt.get(&where_run::remote(&rt).unwrap()).unwrap();
    left_to_the_worker(&rt, |rt| where_run::remote(rt).unwrap());
    rt.shutdown().unwrap();
}
