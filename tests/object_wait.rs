//! `wait`: readiness in submission order, `num_returns`, timeouts and the
//! argument checks (too many asked for, duplicates).

mod common;
use common::{Gate, start};

use std::time::{Duration, Instant};

use ferry::Error;

#[ferry::remote]
fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Not ready until gate `key` opens.
#[ferry::remote]
fn held(key: u64) -> u64 {
    Gate::pass(key, 0);
    key
}

#[ferry::remote]
fn boom() -> Result<u64, String> {
    Err("boom".into())
}

#[test]
fn wait_keeps_the_order_of_the_refs() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let refs: Vec<_> = (0..10u64)
        .map(|i| rt.put(&i))
        .collect::<ferry::Result<_>>()?;
    let (ready, not_ready) = rt.wait(&refs, 10, None)?;
    assert_eq!(ready, refs);
    assert!(not_ready.is_empty());
    let (ready, not_ready) = rt.wait(&refs, 3, None)?;
    assert_eq!(ready, refs[..3]);
    assert_eq!(not_ready, refs[3..]);
    rt.shutdown()
}

#[test]
fn wait_splits_ready_and_pending_in_order() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let gate = Gate::new();
    let slow = held::remote(&rt, gate.key())?;
    let a = rt.put(&1u64)?;
    let b = rt.put(&2u64)?;
    let refs = vec![a.clone(), slow.clone(), b.clone()];
    let (ready, not_ready) = rt.wait(&refs, 2, Some(Duration::from_secs(10)))?;
    assert_eq!(ready, vec![a.clone(), b.clone()]);
    assert_eq!(not_ready, vec![slow.clone()]);
    gate.open();
    rt.shutdown()
}

#[test]
fn wait_returns_all_finished_tasks() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let refs: Vec<_> = (0..20u64)
        .map(|i| sleepy::remote(&rt, i % 3))
        .collect::<ferry::Result<_>>()?;
    let (ready, not_ready) = rt.wait(&refs, refs.len(), Some(Duration::from_secs(30)))?;
    assert_eq!(ready, refs, "not all finished within 30 s");
    assert!(not_ready.is_empty());
    rt.shutdown()
}

#[test]
fn wait_rejects_more_returns_than_refs() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let refs = vec![rt.put(&1u8)?, rt.put(&2u8)?];
    match rt.wait(&refs, 3, None) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("num_returns"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let none: Vec<ferry::ObjectRef<u8>> = Vec::new();
    assert!(matches!(
        rt.wait(&none, 1, None),
        Err(Error::InvalidArgument(_))
    ));
    rt.shutdown()
}

#[test]
fn wait_rejects_duplicate_refs() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let a = rt.put(&1u8)?;
    let b = rt.put(&2u8)?;
    let refs = vec![a.clone(), b, a];
    assert!(matches!(
        rt.wait(&refs, 1, None),
        Err(Error::InvalidArgument(_))
    ));
    rt.shutdown()
}

#[test]
fn wait_timeout_returns_fewer_ready() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let quick = rt.put(&0u64)?;
    let gate = Gate::new();
    let slow = held::remote(&rt, gate.key())?;
    let refs = vec![slow.clone(), quick.clone()];
    let t0 = Instant::now();
    let (ready, not_ready) = rt.wait(&refs, 2, Some(Duration::from_millis(100)))?;
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert_eq!(ready, vec![quick]);
    assert_eq!(not_ready, vec![slow]);
    // A zero timeout polls.
    let (ready, not_ready) = rt.wait(&refs, 2, Some(Duration::ZERO))?;
    assert_eq!((ready.len(), not_ready.len()), (1, 1));
    gate.open();
    rt.shutdown()
}

#[test]
fn wait_for_zero_returns_at_once_with_nothing_ready() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let gate = Gate::new();
    let slow = held::remote(&rt, gate.key())?;
    let done = rt.put(&1u64)?;
    let refs = vec![slow, done];
    let t0 = Instant::now();
    let (ready, not_ready) = rt.wait(&refs, 0, None)?;
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert!(ready.is_empty());
    assert_eq!(not_ready, refs);
    let empty: Vec<ferry::ObjectRef<u64>> = Vec::new();
    let (ready, not_ready) = rt.wait(&empty, 0, None)?;
    assert!(ready.is_empty() && not_ready.is_empty());
    gate.open();
    rt.shutdown()
}

#[test]
fn failed_tasks_count_as_ready() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = boom::remote(&rt)?;
    let (ready, _) = rt.wait(std::slice::from_ref(&r), 1, Some(Duration::from_secs(10)))?;
    assert_eq!(ready, vec![r.clone()]);
    match rt.get(&r) {
        Err(ferry::Error::Task(t)) => {
            assert_eq!(t.kind, ferry::FailureKind::Application, "{t:?}");
            assert_eq!(t.message, "boom");
        }
        other => panic!("expected boom's own error, got {other:?}"),
    }
    rt.shutdown()
}
