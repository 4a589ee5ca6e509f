//! The worker pool grows when more tasks are granted than there are worker
//! threads (logical CPUs above the core count, blocked or busy workers), so
//! granted tasks never wait for a thread that will not come.

mod common;
use common::Gate;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry::Config;

static ARRIVED: AtomicUsize = AtomicUsize::new(0);

/// Waits until `n` tasks are running at once (or gives up after 10 s).
#[ferry::remote]
fn rendezvous(n: u64) -> bool {
    ARRIVED.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ARRIVED.load(Ordering::SeqCst) < n as usize {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn granted_tasks_all_get_a_thread() -> ferry::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = (cores * 2 + 2) as u64; // more logical CPUs than cores
    let rt = ferry::init(
        Config::default()
            .num_cpus(n as f64)
            .object_store_memory(16 << 20),
    )?;
    let refs: Vec<_> = (0..n)
        .map(|_| rendezvous::remote(&rt, n))
        .collect::<ferry::Result<_>>()?;
    for r in &refs {
        assert!(*rt.get(r)?, "not all {n} tasks ran at once");
    }
    // The driver may run one of them itself while it waits in `get`.
    assert!(rt.worker_threads() >= n as usize - 1);
    rt.shutdown()
}

#[ferry::remote]
fn forever() -> u64 {
    loop {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn shutdown_does_not_hang_on_a_task_that_never_returns() -> ferry::Result<()> {
    let rt = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(16 << 20),
    )?;
    let r = forever::remote(&rt)?;
    let early = rt.get_timeout(&r, Duration::from_millis(100));
    assert!(
        matches!(early, Err(ferry::Error::Timeout(_))),
        "a task that never returns: {early:?}"
    );
    drop(early);
    let path = rt.store_path().to_path_buf();
    let start = Instant::now();
    rt.shutdown()?;
    assert!(start.elapsed() < Duration::from_secs(30), "shutdown hung");
    assert!(!path.exists(), "the store file is removed");
    Ok(())
}

/// Keeps its worker until gate `key` opens.
#[ferry::remote]
fn blocker(key: u64) -> u64 {
    Gate::pass(key, 0);
    1
}

#[ferry::remote]
fn megabyte() -> Vec<u8> {
    vec![7u8; 1 << 20]
}

#[test]
fn a_result_run_inline_is_freed_with_its_ref_while_its_queue_entry_waits() -> ferry::Result<()> {
    // One worker thread, kept busy: the task below is run by the driver's
    // `get`, and its queue entry stays behind until the worker is free.
    let rt = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .max_threads(1)
            .object_store_memory(16 << 20),
    )?;
    let gate = Gate::new();
    let b = blocker::remote(&rt, gate.key())?;
    gate.wait_arrived(1, "the blocker to take the only worker");
    let before = rt.store_used();
    let r = megabyte::options().num_cpus(0.0).remote(&rt)?;
    assert_eq!(rt.get(&r)?.len(), 1 << 20);
    assert!(rt.store_used() > before);
    drop(r);
    assert_eq!(
        rt.store_used(),
        before,
        "the result was freed with its last ref"
    );
    gate.open();
    assert_eq!(*rt.get(&b)?, 1);
    rt.shutdown()
}

#[ferry::remote]
fn plus_one(x: u64) -> u64 {
    x + 1
}

/// On one CPU, a run of small independent tasks submitted faster than they
/// run stays on the one worker. A task granted the CPU its worker had just
/// given back was often taken by that worker before the submitter looked
/// whether a worker was idle; the submitter, seeing none, started a second
/// thread, which then only spun beside it.
#[test]
fn one_cpu_runs_a_flood_of_small_tasks_on_one_worker() -> ferry::Result<()> {
    let rt = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(64 << 20),
    )?;
    for round in 0..4u64 {
        let refs: Vec<_> = (0..5000)
            .map(|i| plus_one::remote(&rt, round * 5000 + i))
            .collect::<ferry::Result<_>>()?;
        let (ready, _) = rt.wait(&refs, refs.len(), None)?;
        assert_eq!(ready.len(), refs.len());
        assert_eq!(*rt.get(&refs[4999])?, round * 5000 + 5000);
    }
    assert_eq!(rt.worker_threads(), 1);
    rt.shutdown()
}

/// Busy for `ns` nanoseconds.
#[ferry::remote]
fn spin(ns: u64) -> u64 {
    let start = Instant::now();
    while start.elapsed() < Duration::from_nanos(ns) {
        std::hint::spin_loop();
    }
    ns
}

/// A task refused the only CPU just as its holder gives it back still
/// runs. The count of waiting tasks was once raised after the search that
/// refused the task: a release between the two read no waiting task, and
/// the task waited for a next release, which an otherwise idle rank never
/// makes (a soak run hung on it).
#[test]
fn a_task_refused_as_the_cpu_comes_back_still_runs() -> ferry::Result<()> {
    let rt = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(16 << 20),
    )?;
    for round in 0..4000u64 {
        // The first task's end sweeps across the second's submission.
        let first = spin::remote(&rt, (round % 200) * 25)?;
        let second = plus_one::remote(&rt, round)?;
        // A bound, not a timing: each task takes microseconds.
        let (ready, _) = rt.wait(
            &[first.clone(), second.clone()],
            2,
            Some(Duration::from_secs(30)),
        )?;
        assert_eq!(
            ready.len(),
            2,
            "round {round}: a task never got the free CPU"
        );
    }
    rt.shutdown()
}
