//! Actor lifecycle: kill, panics and restarts, `Err` returns, constructor
//! panics, stopping when the last handle drops, the resources an actor
//! holds, and calls after shutdown.

mod common;
use common::{Gate, eventually, start};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ferry::{Error, FailureKind};

fn assert_died(e: &Error) {
    assert!(
        matches!(e, Error::ActorDied { .. }),
        "expected ActorDied, got {e:?}"
    );
}

/// A counter that can panic or fail on request.
#[ferry::actor]
struct Fragile {
    value: u64,
}

#[ferry::actor]
impl Fragile {
    fn new(start: u64) -> Self {
        Fragile { value: start }
    }

    fn increment(&mut self) -> u64 {
        self.value += 1;
        self.value
    }

    fn get(&self) -> u64 {
        self.value
    }

    fn boom(&mut self) -> u64 {
        panic!("fragile went boom at {}", self.value);
    }

    fn checked_add(&mut self, x: u64) -> Result<u64, String> {
        if x > 100 {
            return Err(format!("{x} is too much"));
        }
        self.value += x;
        Ok(self.value)
    }

    /// Waits at gate `key` until the test opens it.
    fn hold(&self, key: u64) -> u64 {
        Gate::pass(key, 0);
        key
    }
}

static DROPPED: AtomicBool = AtomicBool::new(false);

/// Sets [`DROPPED`] when its state is dropped.
#[ferry::actor]
struct Tracked {
    hits: u32,
}

#[ferry::actor]
impl Tracked {
    fn new() -> Self {
        Tracked { hits: 0 }
    }

    fn hit(&mut self) -> u32 {
        self.hits += 1;
        self.hits
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.store(true, Ordering::SeqCst);
    }
}

static MANY_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Counts its drops in [`MANY_DROPPED`].
#[ferry::actor]
struct Counted {
    hits: u32,
}

#[ferry::actor]
impl Counted {
    fn new() -> Self {
        Counted { hits: 0 }
    }

    fn hit(&mut self) -> u32 {
        self.hits += 1;
        self.hits
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        MANY_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

static KILLED_DROPPED: AtomicBool = AtomicBool::new(false);

/// Sets [`KILLED_DROPPED`] when its state is dropped.
#[ferry::actor]
struct Doomed {
    hits: u32,
}

#[ferry::actor]
impl Doomed {
    fn new() -> Self {
        Doomed { hits: 0 }
    }

    fn hit(&mut self) -> u32 {
        self.hits += 1;
        self.hits
    }
}

impl Drop for Doomed {
    fn drop(&mut self) {
        KILLED_DROPPED.store(true, Ordering::SeqCst);
    }
}

/// An actor whose constructor panics.
#[ferry::actor]
struct Broken {
    value: u64,
}

#[ferry::actor]
impl Broken {
    fn new(value: u64) -> Self {
        if value > 0 {
            panic!("cannot build with {value}");
        }
        Broken { value }
    }

    fn get(&self) -> u64 {
        self.value
    }
}

#[test]
fn killed_actor_fails_later_calls_with_actor_died() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Doomed::remote(&rt)?;
    assert_eq!(*rt.get(&c.hit().remote()?)?, 1);
    c.kill();
    assert!(!c.is_alive());
    let r = c.hit().remote()?;
    let e = rt.get(&r).expect_err("a killed actor answered");
    assert_died(&e);
    if let Error::ActorDied { actor, reason } = &e {
        assert!(actor.contains("Doomed"), "{actor}");
        assert!(reason.contains("kill"), "{reason}");
    }
    // A clone sees the death too.
    let c2 = c.clone();
    assert_died(&rt.get(&c2.hit().remote()?).unwrap_err());
    assert!(
        eventually(5, || KILLED_DROPPED.load(Ordering::SeqCst)),
        "the killed actor's state was never dropped"
    );
    rt.shutdown()
}

#[test]
fn kill_fails_queued_calls() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Fragile::remote(&rt, 0)?;
    rt.get(&c.get().remote()?)?;
    let gate = Gate::new();
    let running = c.hold(gate.key()).remote()?;
    let queued: Vec<_> = (0..5)
        .map(|_| c.increment().remote())
        .collect::<ferry::Result<_>>()?;
    // Kill while one call runs and the rest wait behind it.
    gate.wait_arrived(1, "the first call to be running");
    c.kill();
    for r in &queued {
        match rt.get_timeout(r, Duration::from_secs(10)) {
            Err(e) => assert_died(&e),
            Ok(v) => panic!("a queued call ran after kill: {}", *v),
        }
    }
    // The running call finishes (as `kill` documents).
    gate.open();
    assert_eq!(
        *rt.get_timeout(&running, Duration::from_secs(30))?,
        gate.key()
    );
    rt.shutdown()
}

#[test]
fn panicking_method_restarts_then_dies() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Fragile::options().max_restarts(1).remote(&rt, 5)?;
    assert_eq!(*rt.get(&c.increment().remote()?)?, 6);
    assert_eq!(*rt.get(&c.increment().remote()?)?, 7);

    let e = rt.get(&c.boom().remote()?).expect_err("boom must fail");
    let t = e.task_error().expect("a task error");
    assert_eq!(t.kind, FailureKind::Panic);
    assert!(t.task.contains("boom"), "{}", t.task);
    assert!(
        t.message.contains("fragile went boom at 7"),
        "{}",
        t.message
    );

    // Restarted: the constructor ran again.
    assert_eq!(
        *rt.get(&c.get().remote()?)?,
        5,
        "state not re-initialised by new"
    );
    assert_eq!(*rt.get(&c.increment().remote()?)?, 6);
    assert!(c.is_alive());

    // Out of restarts: the second panic kills it.
    let e2 = rt.get(&c.boom().remote()?).expect_err("boom must fail");
    assert_eq!(e2.task_error().map(|t| t.kind), Some(FailureKind::Panic));
    let e3 = rt.get(&c.get().remote()?).expect_err("dead actor answered");
    assert_died(&e3);
    assert!(!c.is_alive());
    rt.shutdown()
}

#[test]
fn panicking_method_without_restarts_kills_the_actor() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Fragile::remote(&rt, 0)?;
    let e = rt.get(&c.boom().remote()?).unwrap_err();
    assert_eq!(e.task_error().map(|t| t.kind), Some(FailureKind::Panic));
    let e2 = rt.get(&c.increment().remote()?).unwrap_err();
    assert_died(&e2);
    if let Error::ActorDied { reason, .. } = &e2 {
        assert!(reason.contains("panicked"), "{reason}");
    }
    rt.shutdown()
}

#[test]
fn err_from_a_method_fails_only_that_call() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Fragile::remote(&rt, 0)?;
    assert_eq!(*rt.get(&c.checked_add(10).remote()?)?, 10);
    let e = rt.get(&c.checked_add(1000).remote()?).unwrap_err();
    let t = e.task_error().expect("a task error");
    assert_eq!(t.kind, FailureKind::Application);
    assert_eq!(t.message, "1000 is too much");
    assert!(t.task.contains("checked_add"), "{}", t.task);
    // State kept, actor alive.
    assert_eq!(*rt.get(&c.checked_add(5).remote()?)?, 15);
    assert_eq!(*rt.get(&c.get().remote()?)?, 15);
    assert!(c.is_alive());
    rt.shutdown()
}

#[test]
fn dropping_the_last_handle_stops_the_actor() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Tracked::remote(&rt)?;
    let c2 = c.clone();
    assert_eq!(*rt.get(&c.hit().remote()?)?, 1);
    drop(c);
    // One handle is left: the actor keeps going.
    assert_eq!(*rt.get(&c2.hit().remote()?)?, 2);
    assert!(!DROPPED.load(Ordering::SeqCst));
    drop(c2);
    assert!(
        eventually(5, || DROPPED.load(Ordering::SeqCst)),
        "the actor did not stop within 5 s of its last handle being dropped"
    );
    rt.shutdown()
}

#[test]
fn every_actor_stops_when_its_last_handle_drops() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let n = 50;
    for _ in 0..n {
        let c = Counted::remote(&rt)?;
        let r = c.hit().remote()?;
        assert_eq!(*rt.get(&r)?, 1);
        drop(c);
    }
    let stopped = eventually(10, || MANY_DROPPED.load(Ordering::SeqCst) == n);
    assert!(
        stopped,
        "only {} of {n} actors stopped after their last handle was dropped",
        MANY_DROPPED.load(Ordering::SeqCst)
    );
    rt.shutdown()
}

#[test]
fn queued_calls_finish_after_the_last_handle_drops() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Fragile::remote(&rt, 0)?;
    let refs: Vec<_> = (0..20)
        .map(|_| c.increment().remote())
        .collect::<ferry::Result<_>>()?;
    drop(c);
    let got: Vec<u64> = rt.get_all(&refs)?.iter().map(|v| v.to_native()).collect();
    assert_eq!(got, (1..=20).collect::<Vec<u64>>());
    rt.shutdown()
}

#[test]
fn actor_holds_its_cpu_while_alive() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let cpus = || rt.available_resources()["CPU"];
    assert_eq!(cpus(), 2.0);
    let c = Fragile::options().num_cpus(1.0).remote(&rt, 0)?;
    assert_eq!(*rt.get(&c.increment().remote()?)?, 1);
    assert!(eventually(5, || cpus() == 1.0), "CPU = {}", cpus());
    c.kill();
    assert!(eventually(5, || cpus() == 2.0), "CPU = {}", cpus());

    // Dropping the last handle gives it back too.
    let d = Fragile::options().num_cpus(1.0).remote(&rt, 0)?;
    rt.get(&d.get().remote()?)?;
    assert!(eventually(5, || cpus() == 1.0), "CPU = {}", cpus());
    drop(d);
    assert!(eventually(5, || cpus() == 2.0), "CPU = {}", cpus());

    // Default actors hold no CPU.
    let e = Fragile::remote(&rt, 0)?;
    rt.get(&e.get().remote()?)?;
    assert_eq!(cpus(), 2.0);
    rt.shutdown()
}

#[test]
fn constructor_panic_fails_calls_with_actor_died() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let b = Broken::remote(&rt, 3)?;
    let e = rt
        .get_timeout(&b.get().remote()?, Duration::from_secs(10))
        .expect_err("a broken actor answered");
    match &e {
        Error::ActorDied { actor, reason } => {
            assert!(actor.contains("Broken"), "{actor}");
            assert!(reason.contains("constructor"), "{reason}");
            assert!(reason.contains("cannot build with 3"), "{reason}");
        }
        other => panic!("expected ActorDied, got {other:?}"),
    }
    assert!(eventually(5, || !b.is_alive()));
    // Later calls fail the same way.
    assert_died(&rt.get(&b.get().remote()?).unwrap_err());
    // A good one of the same class works.
    let ok = Broken::remote(&rt, 0)?;
    assert_eq!(*rt.get(&ok.get().remote()?)?, 0);
    rt.shutdown()
}

#[test]
fn actor_waits_for_resources_held_by_another() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let a = Fragile::options().num_cpus(2.0).remote(&rt, 0)?;
    assert_eq!(*rt.get(&a.increment().remote()?)?, 1);
    let b = Fragile::options().num_cpus(2.0).remote(&rt, 100)?;
    let r = b.increment().remote()?;
    assert!(
        matches!(
            rt.get_timeout(&r, Duration::from_millis(300)),
            Err(Error::Timeout(_))
        ),
        "an actor started without its CPUs"
    );
    a.kill();
    assert_eq!(*rt.get_timeout(&r, Duration::from_secs(10))?, 101);
    // Killing an actor still waiting for resources does not hang or leak.
    let c = Fragile::options().num_cpus(1.0).remote(&rt, 0)?;
    let rc = c.get().remote()?;
    c.kill();
    assert_died(&rt.get_timeout(&rc, Duration::from_secs(10)).unwrap_err());
    b.kill();
    assert!(eventually(5, || rt.available_resources()["CPU"] == 2.0));
    rt.shutdown()
}

#[test]
fn failed_ref_argument_fails_only_that_call() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Fragile::remote(&rt, 1)?;
    let bad = rt.put_archive::<u64>(&[1, 2, 3])?;
    let e = rt.get(&c.checked_add(&bad).remote()?).unwrap_err();
    assert!(matches!(e, Error::Dependency { .. }), "{e:?}");
    assert_eq!(*rt.get(&c.checked_add(2).remote()?)?, 3);
    assert!(c.is_alive());
    rt.shutdown()
}

#[test]
fn actor_calls_after_shutdown_are_refused() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Fragile::remote(&rt, 0)?;
    assert_eq!(*rt.get(&c.increment().remote()?)?, 1);
    rt.shutdown()?;
    assert!(matches!(c.increment().remote(), Err(Error::Shutdown)));
    assert!(matches!(Fragile::remote(&rt, 0), Err(Error::Shutdown)));
    Ok(())
}
