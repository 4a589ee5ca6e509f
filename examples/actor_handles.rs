//! "Passing Around Actor Handles" of the Actors tutorial (seed 002): actor
//! handles passed to tasks and to other actors' methods, returned from tasks
//! (something that Ray tutorial lists as a limitation), and a killed actor.
//!
//! Run it with `cargo run --example actor_handles`.

use ferry::{ActorHandle, Error, Runtime};

/// The tutorial's counter.
#[ferry::actor]
struct Counter {
    counter: u64,
}

#[ferry::actor]
impl Counter {
    fn new(start: u64) -> Self {
        Counter { counter: start }
    }

    fn inc(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn get_counter(&self) -> u64 {
        self.counter
    }
}

/// The tutorial's `f(counter)`, with a bounded loop: increments `times`
/// times through the handle and returns the last value it saw.
#[ferry::remote]
fn f(rt: &Runtime, counter: ActorHandle<Counter>, times: u64) -> ferry::Result<u64> {
    let mut last = None;
    for _ in 0..times {
        last = Some(counter.inc().remote()?);
    }
    match last {
        Some(r) => Ok(rt.get(&r)?.to_native()),
        None => Ok(0),
    }
}

/// A task that creates an actor and returns its handle.
#[ferry::remote]
fn make_counter(rt: &Runtime, start: u64) -> ferry::Result<ActorHandle<Counter>> {
    Counter::remote(rt, start)
}

/// An actor whose method is given a handle to another actor.
#[ferry::actor]
struct Bumper {
    calls: u64,
}

#[ferry::actor]
impl Bumper {
    fn new() -> Self {
        Bumper { calls: 0 }
    }

    fn bump(&mut self, rt: &Runtime, counter: ActorHandle<Counter>) -> ferry::Result<u64> {
        self.calls += 1;
        Ok(rt.get(&counter.inc().remote()?)?.to_native())
    }
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let counter = Counter::remote(&rt, 0)?;

    // Start some tasks that use the actor.
    let tasks: Vec<_> = (0..4)
        .map(|_| f::remote(&rt, counter.clone(), 25))
        .collect::<ferry::Result<_>>()?;
    // Print the counter value while they run: it never goes down.
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(rt.get(&counter.get_counter().remote()?)?.to_native());
    }
    println!("counter while the tasks run: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    let lasts: Vec<u64> = rt.get_all(&tasks)?.iter().map(|v| v.to_native()).collect();
    assert!(lasts.iter().all(|&v| (25..=100).contains(&v)));
    assert!(lasts.contains(&100));
    assert_eq!(*rt.get(&counter.get_counter().remote()?)?, 100);
    println!("4 tasks x 25 increments through passed handles: counter = 100");

    // A handle passed to another actor's method.
    let bumper = Bumper::remote(&rt)?;
    let r = bumper.bump(counter.clone()).remote()?;
    assert_eq!(*rt.get(&r)?, 101);
    println!("Bumper.bump(counter) -> 101");

    // A handle returned from a task.
    let r = make_counter::remote(&rt, 41)?;
    let made: ActorHandle<Counter> = rt.get(&r)?.to_handle()?;
    assert_eq!(*rt.get(&made.inc().remote()?)?, 42);
    let again: ActorHandle<Counter> = rt.get(&r)?.deserialize()?;
    assert_eq!(again.id(), made.id());
    assert_eq!(*rt.get(&again.inc().remote()?)?, 43);
    println!("make_counter(41) returned {made:?}; inc() -> 42, 43");

    // ray.kill: later calls fail with ActorDied.
    made.kill();
    assert!(!made.is_alive() && !again.is_alive());
    match rt.get(&again.inc().remote()?) {
        Err(e @ Error::ActorDied { .. }) => println!("after kill: {e}"),
        other => panic!("expected ActorDied, got {other:?}"),
    }
    // The other counter is unaffected.
    assert_eq!(*rt.get(&counter.inc().remote()?)?, 102);
    Ok(())
}
