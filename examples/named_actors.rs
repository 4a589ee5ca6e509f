//! "Named Actors" of Ray's actor documentation
//! (<https://docs.ray.io/en/latest/ray-core/actors/named-actors.html>): an
//! actor created with a name is found again with `get_actor` from anywhere
//! in the job (here from a task, which may run on another rank);
//! `get_if_exists` gives the existing actor instead of a second one; a
//! detached actor lives on without handles until it is killed.
//!
//! Run it with `cargo run --example named_actors` (or under `mpirun`).

/// The documentation's counter.
#[ferry::actor]
struct Counter {
    value: u64,
}

#[ferry::actor]
impl Counter {
    fn new() -> Self {
        Counter { value: 0 }
    }

    fn increment(&mut self) -> u64 {
        self.value += 1;
        self.value
    }
}

/// The documentation's greeter.
#[ferry::actor]
struct Greeter {
    value: String,
}

#[ferry::actor]
impl Greeter {
    fn new(value: String) -> Self {
        Greeter { value }
    }

    fn say_hello(&self) -> String {
        self.value.clone()
    }
}

/// Retrieves the actor "somewhere else": in a task, on whichever rank.
#[ferry::remote]
fn increment_by_name(name: String) -> ferry::Result<u64> {
    let rt = ferry::current()?;
    let counter = ferry::get_actor::<Counter>(&rt, &name)?;
    rt.get_value(&counter.increment().remote()?)
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    // Create an actor with a name.
    let counter = Counter::options().name("some_name").remote(&rt)?;
    // Retrieve the actor later somewhere.
    let n = rt.get_value(&increment_by_name::remote(&rt, "some_name".to_string())?)?;
    println!("incremented through its name: {n}");
    assert_eq!(n, 1);
    let same = ferry::get_actor::<Counter>(&rt, "some_name")?;
    assert_eq!(same.id(), counter.id());
    assert!(matches!(
        ferry::get_actor::<Counter>(&rt, "no_such_name"),
        Err(ferry::Error::ActorNameNotFound { .. })
    ));

    // Actor `g1` doesn't yet exist, so it is created with the given args.
    let a = Greeter::options()
        .name("g1")
        .get_if_exists()
        .remote(&rt, "Old Greeting".to_string())?;
    assert_eq!(rt.get_value(&a.say_hello().remote()?)?, "Old Greeting");
    // Actor `g1` already exists, so it is returned (new args are ignored).
    let b = Greeter::options()
        .name("g1")
        .get_if_exists()
        .remote(&rt, "New Greeting".to_string())?;
    let greeting = rt.get_value(&b.say_hello().remote()?)?;
    println!("g1 says: {greeting}");
    assert_eq!(greeting, "Old Greeting");

    // A detached actor outlives its handles (within the job: Ferry's jobs
    // end with the runtime).
    drop(
        Counter::options()
            .name("CounterActor")
            .lifetime_detached()
            .remote(&rt)?,
    );
    let detached = ferry::get_actor::<Counter>(&rt, "CounterActor")?;
    assert_eq!(rt.get_value(&detached.increment().remote()?)?, 1);
    detached.kill();
    assert!(matches!(
        ferry::get_actor::<Counter>(&rt, "CounterActor"),
        Err(ferry::Error::ActorNameNotFound { .. })
    ));
    println!("CounterActor killed, its name is free");
    Ok(())
}
