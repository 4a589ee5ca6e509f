//! Async actors (Ray's async actors): `async fn` methods run on the actor's
//! own executor, on one thread, interleaved at `.await`, up to
//! `max_concurrency` in flight; awaiting a ref or another actor's call does
//! not block the actor; a panic fails its call.

mod common;
use common::{BOUND, Gate, start};

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ferry::{Error, FailureKind, ObjectRef};

/// A serial actor whose call waits at a gate (something to await).
#[ferry::actor]
struct Blocker {}

#[ferry::actor]
impl Blocker {
    fn new() -> Self {
        Blocker {}
    }

    fn hold(&mut self, key: u64, v: u64) -> u64 {
        Gate::pass(key, 0);
        v
    }
}

/// An async actor: a latch its calls meet at, and a sum.
#[ferry::actor]
struct Hub {
    /// Calls that arrived at the latch, and the wakers of those waiting.
    arrived: Cell<u64>,
    waiting: RefCell<Vec<Waker>>,
    in_flight: Cell<u64>,
    most_in_flight: Cell<u64>,
    threads: RefCell<HashSet<std::thread::ThreadId>>,
    sum: u64,
}

/// Pending until `n` calls have arrived at the hub's latch.
struct Latch<'a> {
    hub: &'a Hub,
    n: u64,
}

impl Future for Latch<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.hub.arrived.get() >= self.n {
            for w in self.hub.waiting.borrow_mut().drain(..) {
                w.wake();
            }
            Poll::Ready(())
        } else {
            self.hub.waiting.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[ferry::actor]
impl Hub {
    fn new() -> Self {
        Hub {
            arrived: Cell::new(0),
            waiting: RefCell::new(Vec::new()),
            in_flight: Cell::new(0),
            most_in_flight: Cell::new(0),
            threads: RefCell::new(HashSet::new()),
            sum: 0,
        }
    }

    /// Arrives at the latch and waits until `n` calls have: passes only
    /// when `n` calls are in flight at once.
    async fn meet(&self, n: u64) -> u64 {
        self.threads
            .borrow_mut()
            .insert(std::thread::current().id());
        self.in_flight.set(self.in_flight.get() + 1);
        self.most_in_flight
            .set(self.most_in_flight.get().max(self.in_flight.get()));
        self.arrived.set(self.arrived.get() + 1);
        Latch { hub: self, n }.await;
        self.in_flight.set(self.in_flight.get() - 1);
        n
    }

    /// Awaits a ref passed inside a list (so it arrives as a ref).
    async fn relay(&self, refs: Vec<ObjectRef<u64>>) -> u64 {
        let view = refs[0].clone().await.expect("the awaited object");
        view.deserialize().expect("a u64") + 1
    }

    /// Awaits another actor's call made from here.
    async fn ask(&self, other: ferry::ActorHandle<Blocker>, key: u64) -> u64 {
        let r = other.hold(key, 40).remote().expect("the call is made");
        *r.get_async().await.expect("its value") + 2
    }

    async fn ping(&self) -> u64 {
        7
    }

    async fn boom(&self) -> u64 {
        panic!("boom in an async call")
    }

    /// A sync `&mut self` method: runs alone, once nothing is in flight.
    fn add(&mut self, x: u64) -> u64 {
        self.sum += x;
        self.sum + self.in_flight.get() * 1000
    }

    fn stats(&self) -> (u64, u64) {
        (
            self.most_in_flight.get(),
            self.threads.borrow().len() as u64,
        )
    }
}

#[test]
fn many_async_calls_are_in_flight_at_once_on_one_thread() -> ferry::Result<()> {
    let rt = start(1.0)?;
    // Ray's default for async actors: 1000 in flight.
    let hub = Hub::remote(&rt)?;
    let refs: Vec<_> = (0..50)
        .map(|_| hub.meet(50).remote())
        .collect::<ferry::Result<_>>()?;
    for r in &refs {
        assert_eq!(*rt.get_timeout(r, BOUND)?, 50);
    }
    let stats = rt.get_value(&hub.stats().remote()?)?;
    assert_eq!(stats, (50, 1), "50 in flight at once, all on one thread");
    rt.shutdown()
}

#[test]
fn max_concurrency_bounds_the_calls_in_flight() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let hub = Hub::options().max_concurrency(2).remote(&rt)?;
    // Three must meet, but only two are let in: none finishes.
    let refs: Vec<_> = (0..3)
        .map(|_| hub.meet(3).remote())
        .collect::<ferry::Result<_>>()?;
    let (ready, _) = rt.wait(&refs, 1, Some(Duration::from_millis(300)))?;
    assert!(ready.is_empty(), "a third call was let in beside two");
    hub.kill();
    for r in &refs {
        match rt.get_timeout(r, BOUND) {
            Err(Error::ActorDied { .. }) => {}
            other => panic!("killed: expected ActorDied, got {:?}", other.map(|v| *v)),
        }
    }
    rt.shutdown()
}

#[test]
fn awaiting_a_ref_or_a_call_does_not_block_the_actor() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let hub = Hub::remote(&rt)?;
    let blocker = Blocker::remote(&rt)?;
    let gate = Gate::new();
    let pending = blocker.hold(gate.key(), 10).remote()?;
    let relayed = hub.relay(vec![pending]).remote()?;
    let other = Blocker::remote(&rt)?;
    let asked = hub.ask(other, gate.key()).remote()?;
    // Both wait; the actor still answers.
    assert_eq!(*rt.get_timeout(&hub.ping().remote()?, BOUND)?, 7);
    assert!(!relayed.is_ready() && !asked.is_ready());
    gate.open();
    assert_eq!(*rt.get_timeout(&relayed, BOUND)?, 11);
    assert_eq!(*rt.get_timeout(&asked, BOUND)?, 42);
    rt.shutdown()
}

#[test]
fn a_mut_call_waits_for_the_calls_in_flight() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let hub = Hub::remote(&rt)?;
    let a = hub.meet(2).remote()?;
    let added = hub.add(5).remote()?;
    let b = hub.meet(2).remote()?;
    // `b` is behind `add`, which waits for `a`, which waits for `b`: with
    // `add` held, nothing moves.
    let (ready, _) = rt.wait(
        vec![a.clone(), added.clone()],
        1,
        Some(Duration::from_millis(300)),
    )?;
    assert!(ready.is_empty(), "the &mut self call did not wait its turn");
    hub.kill();
    assert!(matches!(
        rt.get_timeout(&b, BOUND),
        Err(Error::ActorDied { .. })
    ));
    // In order, with nothing in flight meanwhile.
    let hub = Hub::remote(&rt)?;
    let ping = hub.ping().remote()?;
    assert_eq!(*rt.get_timeout(&hub.add(5).remote()?, BOUND)?, 5);
    assert_eq!(*rt.get_timeout(&hub.add(6).remote()?, BOUND)?, 11);
    assert_eq!(*rt.get(&ping)?, 7);
    rt.shutdown()
}

#[test]
fn a_panic_in_an_async_method_is_the_calls_typed_error() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let hub = Hub::options().max_restarts(1).remote(&rt)?;
    rt.get(&hub.add(3).remote()?)?;
    match rt.get_timeout(&hub.boom().remote()?, BOUND) {
        Err(Error::Task(e)) => {
            assert_eq!(e.kind, FailureKind::Panic);
            assert!(e.message.contains("boom in an async call"), "{e}");
            assert_eq!(e.task, "Hub.boom");
        }
        other => panic!("expected the panic, got {:?}", other.map(|v| *v)),
    }
    // Restarted from its constructor.
    assert_eq!(*rt.get_timeout(&hub.add(1).remote()?, BOUND)?, 1);
    assert!(rt.get_timeout(&hub.boom().remote()?, BOUND).is_err());
    match rt.get_timeout(&hub.ping().remote()?, BOUND) {
        Err(Error::ActorDied { .. }) => {}
        other => panic!(
            "no restarts left: expected ActorDied, got {:?}",
            other.map(|v| *v)
        ),
    }
    rt.shutdown()
}
