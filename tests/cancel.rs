//! Cancellation (Ray's `ray.cancel`): a queued task never runs, a running
//! one sees the flag and its result is `Cancelled`, children go with their
//! parent when asked, finished tasks and non-tasks are left alone, and a
//! task on another rank is cancelled there.
//!
//! Tasks say when they start and end (`common::Gate` arrivals), so each
//! test cancels a task it knows is running, or knows is still queued.

mod common;
use common::Gate;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ferry::{Config, Error};

/// How long a task waits for its cancel before it gives up.
const NEVER: Duration = Duration::from_secs(60);

fn here() -> u32 {
    ferry::current().map_or(u32::MAX, |rt| rt.rank())
}

/// Says it started (an arrival at `key`), spins until cancelled (at most
/// [`NEVER`]), says it ended (a second arrival); how long it ran, in ms.
#[ferry::remote]
fn until_cancelled(key: u64) -> u64 {
    Gate::arrive(key, here());
    let start = Instant::now();
    while start.elapsed() < NEVER && !ferry::is_cancelled() {
        std::thread::sleep(Duration::from_millis(2));
    }
    Gate::arrive(key, here());
    start.elapsed().as_millis() as u64
}

/// Like `until_cancelled`, but fails once it sees the flag: an error
/// `retry_exceptions` would retry.
#[ferry::remote]
fn fails_when_cancelled(key: u64) -> Result<u64, String> {
    Gate::arrive(key, here());
    let start = Instant::now();
    while start.elapsed() < NEVER && !ferry::is_cancelled() {
        std::thread::sleep(Duration::from_millis(2));
    }
    Err("stopped by the cancel".into())
}

#[ferry::remote]
fn one() -> u64 {
    1
}

static RAN: AtomicBool = AtomicBool::new(false);

#[ferry::remote]
fn marks_that_it_ran() -> u64 {
    RAN.store(true, Ordering::SeqCst);
    1
}

static CHILDREN_STARTED: AtomicU32 = AtomicU32::new(0);
static CHILDREN_DONE: AtomicU32 = AtomicU32::new(0);

/// Submits two children that run until cancelled, and waits for them.
#[ferry::remote]
fn parent(ms: u64) -> u64 {
    let rt = ferry::current().expect("in a task");
    let kids: Vec<_> = (0..2)
        .map(|_| child::remote(&rt, ms).expect("submit"))
        .collect();
    kids.iter().filter_map(|k| rt.get(k).ok()).count() as u64
}

#[ferry::remote]
fn child(ms: u64) -> u64 {
    CHILDREN_STARTED.fetch_add(1, Ordering::SeqCst);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(ms) && !ferry::is_cancelled() {
        std::thread::sleep(Duration::from_millis(2));
    }
    CHILDREN_DONE.fetch_add(1, Ordering::SeqCst);
    start.elapsed().as_millis() as u64
}

fn start(cpus: f64) -> ferry::Result<ferry::Runtime> {
    ferry::init(
        Config::default()
            .num_cpus(cpus)
            .object_store_memory(16 << 20),
    )
}

fn is_cancelled<T: std::fmt::Debug>(r: ferry::Result<T>) -> bool {
    matches!(r, Err(Error::Cancelled { .. }))
}

#[test]
fn a_running_task_sees_the_flag_and_a_queued_one_never_runs() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let gate = Gate::new();
    let running = until_cancelled::remote(&rt, gate.key())?;
    gate.wait_arrived(1, "until_cancelled to be running");
    // One CPU: this one waits behind the first.
    let queued = marks_that_it_ran::remote(&rt)?;
    let t = Instant::now();
    rt.cancel(&queued)?;
    rt.cancel(&running)?;
    let e = rt.get(&running).unwrap_err();
    assert!(
        matches!(&e, Error::Cancelled { task } if task.contains("until_cancelled")),
        "{e}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the running task stopped early"
    );
    assert!(is_cancelled(rt.get(&queued)));
    // The CPU came back: new tasks run. The one queued before it would
    // have run first.
    let after = one::remote(&rt)?;
    assert_eq!(*rt.get_timeout(&after, Duration::from_secs(20))?, 1);
    assert!(!RAN.load(Ordering::SeqCst), "a cancelled queued task ran");
    let started = rt.state().ranks[0].tasks.started;
    assert_eq!(started, 2, "until_cancelled and one started, nothing else");
    rt.shutdown()
}

#[test]
fn a_recursive_cancel_takes_the_children_along() -> ferry::Result<()> {
    let rt = start(4.0)?;
    let p = parent::remote(&rt, 60_000)?;
    // Both children running (a child submitted after the cancel would
    // never start at all).
    let deadline = Instant::now() + Duration::from_secs(20);
    while CHILDREN_STARTED.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(CHILDREN_STARTED.load(Ordering::SeqCst), 2);
    let t = Instant::now();
    rt.cancel(&p)?;
    assert!(is_cancelled(rt.get(&p)));
    assert!(t.elapsed() < Duration::from_secs(20));
    // Both children saw the flag and ended.
    let deadline = Instant::now() + Duration::from_secs(20);
    while CHILDREN_DONE.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(CHILDREN_DONE.load(Ordering::SeqCst), 2);
    rt.shutdown()
}

#[test]
fn finished_tasks_and_puts_are_left_alone() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let done = one::remote(&rt)?;
    assert_eq!(*rt.get(&done)?, 1);
    rt.cancel(&done)?;
    assert_eq!(*rt.get(&done)?, 1, "a finished result stays");
    let put = rt.put(&7u64)?;
    match rt.cancel(&put) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("nothing to cancel"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    rt.shutdown()
}

#[test]
fn a_cancelled_task_is_not_retried() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let gate = Gate::new();
    let r = fails_when_cancelled::options()
        .max_retries(5)
        .retry_exceptions(true)
        .remote(&rt, gate.key())?;
    gate.wait_arrived(1, "fails_when_cancelled to be running");
    rt.cancel(&r)?;
    match rt.get(&r) {
        Err(Error::Cancelled { .. }) => {}
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert_eq!(
        gate.arrivals().len(),
        1,
        "it ran once: no retry after the cancel"
    );
    rt.shutdown()
}

#[test]
fn a_task_on_another_rank_is_cancelled_there() -> ferry::Result<()> {
    let cfg = Config::default()
        .num_cpus(1.0)
        .object_store_memory(16 << 20);
    let took = ferry::loopback::run(2, cfg, |rt, _| {
        let gate = Gate::new();
        let r = until_cancelled::options()
            .on_rank(1)
            .remote(&rt, gate.key())?;
        gate.wait_arrived_on(1, "until_cancelled to be running on rank 1");
        let t = Instant::now();
        rt.cancel(&r)?;
        assert!(is_cancelled(rt.get(&r)), "the owner sees Cancelled");
        // The task on rank 1 saw the flag and ended (its second arrival).
        gate.wait_arrived(2, "the task on rank 1 to see the flag and end");
        Ok::<_, Error>(t.elapsed())
    })??;
    assert!(took < Duration::from_secs(20), "{took:?}");
    Ok(())
}
