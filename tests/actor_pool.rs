//! `ActorPool`: `map` and `map_unordered`, `submit` with `get_next` and
//! `get_next_unordered`, the timeouts, an empty pool, failed calls, and
//! `push` / `pop_idle`.
//!
//! A call that must still be running when the test looks (for a timeout,
//! or to let another finish first) waits at a gate (`common::Gate`) that
//! the test opens afterwards: nothing depends on how fast the machine is.

mod common;
use common::{Gate, start};

use std::collections::BTreeSet;
use std::time::Duration;

use ferry::{ActorHandle, ActorPool, ActorPoolError, Error, FailureKind, Runtime};

/// A worker that says which one it is.
#[ferry::actor]
struct Worker {
    number: u32,
}

#[ferry::actor]
impl Worker {
    fn new(number: u32) -> Self {
        Worker { number }
    }

    fn double(&mut self, x: u64) -> u64 {
        x * 2
    }

    /// `2 x` and which worker computed it.
    fn tagged(&mut self, x: u64) -> (u32, u64) {
        (self.number, x * 2)
    }

    /// `2 x`, or an error for `bad`.
    fn unless(&mut self, x: u64, bad: u64) -> Result<u64, String> {
        if x == bad {
            Err(format!("{x} is bad"))
        } else {
            Ok(x * 2)
        }
    }

    /// `2 x` once gate `key` opens.
    fn held(&mut self, key: u64, x: u64) -> u64 {
        Gate::pass(key, self.number);
        x * 2
    }
}

fn workers(rt: &Runtime, n: u32) -> ferry::Result<Vec<ActorHandle<Worker>>> {
    (0..n).map(|i| Worker::remote(rt, i)).collect()
}

type Pool = ActorPool<Worker, u64>;

#[test]
fn map_keeps_the_order_of_the_values_with_more_values_than_actors() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let mut pool = ActorPool::new(workers(&rt, 3)?);
    let got: Vec<(u32, u64)> = pool
        .map(|a, v| a.tagged(v).remote(), 0..20u64)
        .map(|r| r?.deserialize())
        .collect::<ferry::Result<_>>()?;
    let values: Vec<u64> = got.iter().map(|&(_, v)| v).collect();
    assert_eq!(values, (0..20).map(|x| x * 2).collect::<Vec<_>>());
    let used: BTreeSet<u32> = got.iter().map(|&(id, _)| id).collect();
    assert_eq!(used, BTreeSet::from([0, 1, 2]), "every actor took calls");
    assert!(!pool.has_next());
    assert!(pool.has_free());
    rt.shutdown()
}

#[test]
fn map_unordered_returns_every_result_once() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let mut pool = ActorPool::new(workers(&rt, 3)?);
    let mut got: Vec<u64> = pool
        .map_unordered(|a, v| a.double(v).remote(), 0..25u64)
        .map(|r| r.map(|v| v.to_native()))
        .collect::<ferry::Result<_>>()?;
    got.sort_unstable();
    assert_eq!(got, (0..25).map(|x| x * 2).collect::<Vec<_>>());
    assert!(!pool.has_next());
    rt.shutdown()
}

#[test]
fn get_next_returns_results_in_submission_order() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let mut pool: Pool = ActorPool::new(workers(&rt, 2)?);
    for v in 0..10u64 {
        pool.submit(|a, v| a.double(v).remote(), v);
    }
    assert!(pool.has_next());
    assert!(!pool.has_free(), "two actors busy, eight values queued");
    for v in 0..10u64 {
        assert_eq!(*pool.get_next()?, v * 2);
    }
    assert!(!pool.has_next());
    rt.shutdown()
}

#[test]
fn get_next_unordered_returns_what_is_done_and_get_next_the_earliest_left() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let mut pool: Pool = ActorPool::new(workers(&rt, 2)?);
    let gate = Gate::new();
    let key = gate.key();
    pool.submit(move |a, v| a.held(key, v).remote(), 0); // blocked at the gate
    pool.submit(|a, v| a.double(v).remote(), 1);
    pool.submit(|a, v| a.double(v).remote(), 2); // queued
    // The first call is blocked, so the second one is done first; its actor
    // then takes the queued value.
    assert_eq!(*pool.get_next_unordered()?, 2);
    gate.open();
    assert_eq!(*pool.get_next()?, 0);
    assert_eq!(*pool.get_next()?, 4);
    assert!(matches!(pool.get_next(), Err(ActorPoolError::Empty)));
    rt.shutdown()
}

#[test]
fn map_leaves_earlier_submissions_for_get_next() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let mut pool: Pool = ActorPool::new(workers(&rt, 1)?);
    pool.submit(|a, v| a.double(v).remote(), 50); // the actor's call
    pool.submit(|a, v| a.double(v).remote(), 60); // queued
    // The map's values wait for the actor behind both; their results stay.
    let got: Vec<u64> = pool
        .map(|a, v| a.double(v).remote(), 0..3u64)
        .map(|r| r.map(|v| v.to_native()))
        .collect::<ferry::Result<_>>()?;
    assert_eq!(got, [0, 2, 4]);
    assert_eq!(*pool.get_next()?, 100);
    assert_eq!(*pool.get_next()?, 120);
    assert!(!pool.has_next());
    // A map over a pool without actors says so, once.
    let idle = pool.pop_idle().expect("the actor is idle");
    let mut m = pool.map(|a, v| a.double(v).remote(), 0..3u64);
    assert!(matches!(m.next(), Some(Err(Error::InvalidArgument(_)))));
    assert!(m.next().is_none());
    drop(m);
    pool.push(idle).expect("not in the pool");
    rt.shutdown()
}

#[test]
fn get_next_with_nothing_pending_is_an_error() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let mut pool: Pool = ActorPool::new(workers(&rt, 2)?);
    assert!(!pool.has_next());
    assert!(matches!(pool.get_next(), Err(ActorPoolError::Empty)));
    assert!(matches!(
        pool.get_next_unordered(),
        Err(ActorPoolError::Empty)
    ));
    let t = Duration::from_secs(5);
    assert!(matches!(
        pool.get_next_timeout(t),
        Err(ActorPoolError::Empty)
    ));
    assert!(matches!(
        pool.get_next_unordered_timeout(t),
        Err(ActorPoolError::Empty)
    ));
    // As a ferry::Error, for `?`.
    assert!(matches!(
        Error::from(ActorPoolError::Empty),
        Error::InvalidArgument(_)
    ));
    // The pool works after it.
    pool.submit(|a, v| a.double(v).remote(), 21);
    assert_eq!(*pool.get_next()?, 42);
    rt.shutdown()
}

#[test]
fn the_timeout_variants_time_out_while_a_call_is_blocked() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let mut pool: Pool = ActorPool::new(workers(&rt, 1)?);
    let gate = Gate::new();
    let key = gate.key();
    pool.submit(move |a, v| a.held(key, v).remote(), 5);
    gate.wait_arrived(1, "the call to reach the gate");
    let t = Duration::from_millis(20);
    match pool.get_next_timeout(t) {
        Err(ActorPoolError::Timeout(d)) => assert_eq!(d, t),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(matches!(
        pool.get_next_unordered_timeout(Duration::ZERO),
        Err(ActorPoolError::Timeout(_))
    ));
    assert!(matches!(
        Error::from(ActorPoolError::Timeout(t)),
        Error::Timeout(d) if d == t
    ));
    // The call stays pending and comes back once it is done.
    assert!(pool.has_next());
    assert!(!pool.has_free());
    gate.open();
    assert_eq!(*pool.get_next_timeout(Duration::from_secs(30))?, 10);
    assert!(!pool.has_next());
    rt.shutdown()
}

#[test]
fn a_failed_call_is_its_result_and_the_pool_keeps_working() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let mut pool = ActorPool::new(workers(&rt, 2)?);
    let got: Vec<ferry::Result<u64>> = pool
        .map(|a, v| a.unless(v, 3).remote(), 0..8u64)
        .map(|r| r.map(|v| v.to_native()))
        .collect();
    assert_eq!(got.len(), 8);
    for (v, r) in got.iter().enumerate() {
        match r {
            Err(Error::Task(e)) if v == 3 => {
                assert_eq!(e.kind, FailureKind::Application);
                assert!(e.message.contains("3 is bad"), "{e}");
            }
            Ok(x) if v != 3 => assert_eq!(*x, v as u64 * 2),
            other => panic!("value {v}: got {other:?}"),
        }
    }
    // The same through submit / get_next: the error, then the next result.
    pool.submit(|a, v| a.unless(v, 3).remote(), 3);
    pool.submit(|a, v| a.unless(v, 3).remote(), 4);
    assert!(matches!(
        pool.get_next(),
        Err(ActorPoolError::Call(Error::Task(_)))
    ));
    assert_eq!(*pool.get_next()?, 8);
    assert!(pool.has_free(), "the actor of the failed call is back");
    rt.shutdown()
}

#[test]
fn calls_to_a_dead_actor_fail_and_the_others_succeed() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let actors = workers(&rt, 2)?;
    actors[0].kill();
    let mut pool = ActorPool::new(actors);
    let mut failed = 0;
    for (v, r) in pool.map(|a, v| a.double(v).remote(), 0..6u64).enumerate() {
        match r {
            Ok(x) => assert_eq!(*x, v as u64 * 2),
            Err(Error::ActorDied { .. }) => failed += 1,
            Err(e) => panic!("value {v}: {e}"),
        }
    }
    assert!((1..6).contains(&failed), "{failed} of 6 failed");
    rt.shutdown()
}

#[test]
fn push_and_pop_idle() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let actors = workers(&rt, 2)?;
    let mut pool: Pool = ActorPool::new(actors.clone());
    assert!(pool.has_free());
    let first = pool.pop_idle().expect("an idle actor");
    let second = pool.pop_idle().expect("another idle actor");
    assert_ne!(first.id(), second.id());
    assert!(pool.pop_idle().is_none());
    assert!(!pool.has_free());

    // With no actor, a submission waits in the queue, and asking for it
    // says why nothing can come.
    pool.submit(|a, v| a.double(v).remote(), 7);
    assert!(pool.has_next());
    assert!(matches!(
        pool.get_next(),
        Err(ActorPoolError::NoActor { queued: 1 })
    ));
    // A pushed actor takes it at once.
    pool.push(first.clone()).expect("not in the pool yet");
    assert!(!pool.has_free());
    let again = pool.push(first.clone()).expect_err("busy in the pool");
    assert_eq!(again.into_inner().id(), first.id());
    assert_eq!(*pool.get_next()?, 14);
    assert!(pool.has_free());
    let again = pool.push(first.clone()).expect_err("idle in the pool");
    assert_eq!(again.0.id(), first.id());
    pool.push(second).expect("not in the pool yet");

    // Both actors are in use again.
    let gate = Gate::new();
    let key = gate.key();
    pool.submit(move |a, v| a.held(key, v).remote(), 1);
    pool.submit(move |a, v| a.held(key, v).remote(), 2);
    gate.wait_arrived(2, "both actors to take a call");
    assert!(pool.pop_idle().is_none(), "both actors are busy");
    let mut ids: Vec<u32> = gate.arrivals();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1]);
    gate.open();
    assert_eq!(*pool.get_next()?, 2);
    assert_eq!(*pool.get_next()?, 4);
    rt.shutdown()
}
