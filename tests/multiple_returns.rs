//! Multiple returns (Ray's `num_returns`): `#[ferry::remote(num_returns =
//! N)]` on a function returning an N-tuple gives N refs, each its own
//! object with its own lifetime; a failure of the task fails every one.
//! One rank, then loopback ranks where a rank is lost: the task is retried,
//! and elements a lost rank owned are rebuilt from lineage.

mod common;
use common::{Gate, start, wait_until};

use std::sync::atomic::{AtomicU32, Ordering};

use ferry::{Config, Error, FailureKind, ObjectRef, Runtime, View};

#[ferry::remote(num_returns = 2)]
fn split(x: u64) -> (u64, String) {
    (x * 2, format!("x={x}"))
}

#[ferry::remote(num_returns = 3)]
fn stats(xs: Vec<f64>) -> (f64, u32, Vec<f64>) {
    let sum = xs.iter().sum();
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    (sum, xs.len() as u32, sorted)
}

#[ferry::remote]
fn plus_one(x: u64) -> u64 {
    x + 1
}

#[ferry::remote]
fn shout(s: String) -> String {
    s.to_uppercase()
}

#[ferry::remote]
fn total(v: View<Vec<f64>>) -> f64 {
    v.as_slice().iter().sum()
}

/// A small value and a large one (`mib` MiB).
#[ferry::remote(num_returns = 2)]
fn small_and_large(mib: usize) -> (u64, Vec<u8>) {
    (7, vec![1u8; mib << 20])
}

#[ferry::remote(num_returns = 2)]
fn halves(x: u64) -> Result<(u64, u64), String> {
    if x.is_multiple_of(2) {
        Ok((x / 2, x / 2))
    } else {
        Err(format!("{x} is odd"))
    }
}

#[ferry::remote(num_returns = 3)]
fn panics(x: u64) -> (u64, u64, u64) {
    if x > 0 {
        panic!("panics refuses {x}");
    }
    (0, 0, 0)
}

static FLAKY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Fails its first attempt, then gives (attempt, attempt * 10).
#[ferry::remote(num_returns = 2)]
fn flaky() -> Result<(u32, u32), String> {
    let n = FLAKY_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        Err("transient".to_string())
    } else {
        Ok((n, n * 10))
    }
}

fn task_error(e: &Error) -> &ferry::TaskError {
    match e {
        Error::Task(t) => t,
        other => panic!("expected Error::Task, got {other:?}"),
    }
}

#[test]
fn two_returns_of_different_types_are_two_objects() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let (a, b): (ObjectRef<u64>, ObjectRef<String>) = split::remote(&rt, 21)?;
    assert_ne!(a.id(), b.id());
    assert_eq!(*rt.get(&a)?, 42);
    assert_eq!(rt.get(&b)?.as_str(), "x=21");
    // With options, and from a ref argument.
    let x = rt.put(&5u64)?;
    let (a, b) = split::options().num_cpus(0.5).remote(&rt, &x)?;
    assert_eq!((rt.get(&a)?.to_native(), rt.get(&b)?.as_str()), (10, "x=5"));
    rt.shutdown()
}

#[test]
fn three_returns_of_different_types() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let (sum, n, sorted) = stats::remote(&rt, vec![3.0, 1.0, 2.0])?;
    assert_eq!(*rt.get(&sum)?, 6.0);
    assert_eq!(*rt.get(&n)?, 3);
    assert_eq!(rt.get(&sorted)?.as_slice(), &[1.0, 2.0, 3.0]);
    rt.shutdown()
}

#[test]
fn each_element_feeds_its_own_consumer_tasks() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let (a, b) = split::remote(&rt, 4)?;
    let a1 = plus_one::remote(&rt, &a)?;
    let a2 = plus_one::remote(&rt, &a1)?;
    let b1 = shout::remote(&rt, &b)?;
    drop((a, b));
    assert_eq!(*rt.get(&a2)?, 10);
    assert_eq!(rt.get(&b1)?.as_str(), "X=4");
    // A zero-copy view of an element.
    let (_, _, sorted) = stats::remote(&rt, vec![0.5, 0.25])?;
    assert_eq!(*rt.get(&total::remote(&rt, &sorted)?)?, 0.75);
    rt.shutdown()
}

#[test]
fn dropping_one_element_frees_it_while_the_other_lives() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let base = rt.store_used();
    let (small, large) = small_and_large::remote(&rt, 8)?;
    assert_eq!(rt.get(&large)?.len(), 8 << 20);
    assert_eq!(*rt.get(&small)?, 7);
    // The whole tuple is freed once its elements are out: one copy of the
    // large element is left, not two.
    wait_until("the tuple to be freed", || {
        rt.store_used() < base + (12 << 20)
    });
    assert!(rt.store_used() >= base + (8 << 20));
    drop(large);
    wait_until("the large element to be freed", || {
        rt.store_used() < base + (1 << 20)
    });
    assert_eq!(*rt.get(&small)?, 7);
    rt.shutdown()
}

#[test]
fn a_panic_fails_every_ref_with_the_task_s_error() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let refs = panics::remote(&rt, 3)?;
    let errs = [
        rt.get(&refs.0).unwrap_err(),
        rt.get(&refs.1).unwrap_err(),
        rt.get(&refs.2).unwrap_err(),
    ];
    for e in &errs {
        let t = task_error(e);
        assert_eq!((t.task.as_str(), t.kind), ("panics", FailureKind::Panic));
        assert!(t.message.contains("panics refuses 3"), "{t:?}");
    }
    // A consumer of an element fails with it too.
    let after = plus_one::remote(&rt, &refs.1)?;
    assert!(rt.get(&after).is_err());
    rt.shutdown()
}

#[test]
fn an_err_fails_every_ref_and_an_ok_fills_them() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let (a, b) = halves::remote(&rt, 8)?;
    assert_eq!((rt.get(&a)?.to_native(), rt.get(&b)?.to_native()), (4, 4));
    let (a, b) = halves::remote(&rt, 7)?;
    for e in [rt.get(&a).unwrap_err(), rt.get(&b).unwrap_err()] {
        let t = task_error(&e);
        assert_eq!(
            (t.task.as_str(), t.kind, t.message.as_str()),
            ("halves", FailureKind::Application, "7 is odd")
        );
    }
    rt.shutdown()
}

#[test]
fn a_retried_task_fills_every_ref_from_its_last_attempt() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let (a, b) = flaky::options()
        .max_retries(2)
        .retry_exceptions(true)
        .remote(&rt)?;
    assert_eq!((rt.get(&a)?.to_native(), rt.get(&b)?.to_native()), (2, 20));
    assert_eq!(FLAKY_ATTEMPTS.load(Ordering::SeqCst), 2);
    rt.shutdown()
}

fn here() -> u32 {
    ferry::current().map_or(u32::MAX, |rt| rt.rank())
}

fn cluster_cfg() -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(32 << 20)
}

/// Waits at gate `key`; where it ran, as a number and as text.
#[ferry::remote(num_returns = 2)]
fn held_pair(key: u64) -> (u32, String) {
    Gate::pass(key, here());
    (here(), format!("ran on {}", here()))
}

#[test]
fn a_task_lost_with_its_rank_runs_again_and_fills_every_ref() -> ferry::Result<()> {
    ferry::loopback::run(3, cluster_cfg(), |rt, world| -> ferry::Result<()> {
        let gate = Gate::new();
        let pairs: Vec<_> = (0..6)
            .map(|_| held_pair::remote(&rt, gate.key()))
            .collect::<ferry::Result<_>>()?;
        gate.wait_arrived_on(2, "a task to be running on rank 2");
        world.kill(2, "killed by the test")?;
        gate.open();
        for (rank, text) in &pairs {
            let rank = rt.get_value(rank)?;
            assert_ne!(rank, 2, "rank 2's work was redone");
            assert_eq!(rt.get(text)?.as_str(), format!("ran on {rank}"));
        }
        Ok(())
    })?
}

/// 16 KB, more than travels inside a borrow's ack: read only on `get`.
fn block(seed: u64) -> Vec<u64> {
    (0..2000).map(|i| i * seed + 7).collect()
}

#[ferry::remote(num_returns = 2)]
fn two_blocks(seed: u64) -> (Vec<u64>, Vec<u64>) {
    (block(seed), block(seed + 1))
}

static SPLIT_HERE_RUNS: AtomicU32 = AtomicU32::new(0);

/// Refs to the two elements of `two_blocks`.
type TwoBlocks = (ObjectRef<Vec<u64>>, ObjectRef<Vec<u64>>);

/// Runs `two_blocks` on its own rank (which owns both elements) and
/// returns their refs.
#[ferry::remote]
fn split_here(rt: &Runtime, seed: u64) -> ferry::Result<TwoBlocks> {
    SPLIT_HERE_RUNS.fetch_add(1, Ordering::SeqCst);
    two_blocks::options().on_rank(rt.rank()).remote(rt, seed)
}

#[test]
fn elements_a_lost_rank_owned_are_rebuilt_from_lineage() -> ferry::Result<()> {
    ferry::loopback::run(3, cluster_cfg(), |rt, world| -> ferry::Result<()> {
        let outer = split_here::options().on_rank(2).remote(&rt, 3)?;
        let (a, b) = rt.get_value(&outer)?;
        drop(outer);
        let runs = SPLIT_HERE_RUNS.load(Ordering::SeqCst);
        // Nothing read yet: the only copies are on rank 2.
        world.kill(2, "killed by the test")?;
        assert_eq!(rt.get(&b)?.as_slice(), block(4).as_slice());
        assert_eq!(rt.get(&a)?.as_slice(), block(3).as_slice());
        assert_eq!(
            SPLIT_HERE_RUNS.load(Ordering::SeqCst),
            runs + 1,
            "the task ran once more"
        );
        Ok(())
    })?
}
