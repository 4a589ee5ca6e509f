//! "AsyncIO for Actors" of Ray's documentation
//! (<https://docs.ray.io/en/latest/ray-core/actors/async_api.html>): an
//! actor with `async fn` methods runs them on its own event loop (one
//! thread), and they interleave where they `.await`: awaiting an object
//! (`ObjectRef` is awaitable) or another actor's call does not block the
//! actor. `max_concurrency` bounds the calls in flight (default 1000).
//!
//! Ray's example awaits `asyncio.sleep`; here the awaited workload is
//! another actor's call, on a `SignalActor` as Ray's own tests use, so
//! what is printed does not depend on timing.
//!
//! Run it with `cargo run --example async_actors` (or under `mpirun`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Ray's `SignalActor`: `wait` returns once `send` was called.
#[ferry::actor]
struct SignalActor {
    set: Cell<bool>,
    waiting: RefCell<Vec<Waker>>,
}

/// Pending until the signal is set.
struct Event<'a>(&'a SignalActor);

impl Future for Event<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.set.get() {
            Poll::Ready(())
        } else {
            self.0.waiting.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[ferry::actor]
impl SignalActor {
    fn new() -> Self {
        SignalActor {
            set: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
        }
    }

    async fn wait(&self) -> bool {
        Event(self).await;
        true
    }

    fn send(&self) -> bool {
        self.set.set(true);
        self.waiting.borrow_mut().drain(..).for_each(Waker::wake);
        true
    }
}

/// The documentation's async actor.
#[ferry::actor]
struct AsyncActor {
    log: RefCell<Vec<String>>,
    in_flight: Cell<u32>,
    most_in_flight: Cell<u32>,
}

#[ferry::actor]
impl AsyncActor {
    fn new() -> Self {
        AsyncActor {
            log: RefCell::new(Vec::new()),
            in_flight: Cell::new(0),
            most_in_flight: Cell::new(0),
        }
    }

    async fn run_concurrent(&self, signal: ferry::ActorHandle<SignalActor>) -> bool {
        println!("started");
        self.log.borrow_mut().push("started".into());
        self.in_flight.set(self.in_flight.get() + 1);
        self.most_in_flight
            .set(self.most_in_flight.get().max(self.in_flight.get()));
        // The concurrent workload here: another actor's call, awaited.
        let ok = signal.wait().remote().expect("the call is made").await;
        println!("finished");
        self.log.borrow_mut().push("finished".into());
        self.in_flight.set(self.in_flight.get() - 1);
        *ok.expect("the signal")
    }

    fn started(&self) -> u64 {
        self.log.borrow().iter().filter(|l| *l == "started").count() as u64
    }

    fn log(&self) -> Vec<String> {
        self.log.borrow().clone()
    }

    fn most_in_flight(&self) -> u32 {
        self.most_in_flight.get()
    }
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let signal = SignalActor::remote(&rt)?;
    let actor = AsyncActor::remote(&rt)?;
    // All four start and wait together on the actor's one thread.
    let refs = (0..4)
        .map(|_| actor.run_concurrent(signal.clone()).remote())
        .collect::<ferry::Result<Vec<_>>>()?;
    assert_eq!(rt.get_value(&actor.started().remote()?)?, 4);
    rt.get(&signal.send().remote()?)?;
    for r in &refs {
        assert!(*rt.get(r)?);
    }
    let log = rt.get_value(&actor.log().remote()?)?;
    assert_eq!(
        log,
        ["started"; 4]
            .into_iter()
            .chain(["finished"; 4])
            .collect::<Vec<_>>()
    );
    assert_eq!(rt.get_value(&actor.most_in_flight().remote()?)?, 4);

    // Only 2 in flight at once (the signal is set: each call's await ends
    // when its own call to the signal returns).
    let limited = AsyncActor::options().max_concurrency(2).remote(&rt)?;
    let refs = (0..8)
        .map(|_| limited.run_concurrent(signal.clone()).remote())
        .collect::<ferry::Result<Vec<_>>>()?;
    for r in &refs {
        assert!(*rt.get(r)?);
    }
    let most = rt.get_value(&limited.most_in_flight().remote()?)?;
    println!("at most {most} calls in flight with max_concurrency(2)");
    assert!(most <= 2);
    Ok(())
}
