//! Ray actors, getting started (seed 000 "Getting Started with Ray Actors" and
//! seed 002 "Actors: defining and creating an actor / using an actor").
//!
//! Two counters updated from a loop, then ten counters incremented in
//! parallel and the first one five more times, serially.
//!
//! Run it with `cargo run --example counters`.

/// A counter actor (Ray's `Counter` class).
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

    fn get_value(&self) -> u64 {
        self.value
    }
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    // Seed 000: a1 = Counter.remote(); a2 = Counter.remote()
    let a1 = Counter::remote(&rt)?;
    let a2 = Counter::remote(&rt)?;

    // a1.increment.remote(); ray.get(a1.get_value.remote()) == 1
    let _ = a1.increment().remote()?;
    assert_eq!(*rt.get(&a1.get_value().remote()?)?, 1);

    // for x in range(35): a1 on even x, a2 always.
    for x in 0..35 {
        if x % 2 == 0 {
            let _ = a1.increment().remote()?;
        }
        let _ = a2.increment().remote()?;
    }
    let v1 = rt.get(&a1.get_value().remote()?)?.to_native();
    let v2 = rt.get(&a2.get_value().remote()?)?.to_native();
    assert_eq!((v1, v2), (19, 35));
    println!("a1 = {v1}, a2 = {v2}");

    // Seed 002: ten counters, each incremented once, in parallel.
    let counters: Vec<_> = (0..10)
        .map(|_| Counter::remote(&rt))
        .collect::<ferry::Result<_>>()?;
    let refs: Vec<_> = counters
        .iter()
        .map(|c| c.increment().remote())
        .collect::<ferry::Result<_>>()?;
    let results: Vec<u64> = rt.get_all(&refs)?.iter().map(|v| v.to_native()).collect();
    assert_eq!(results, vec![1; 10]);
    println!("ten counters once: {results:?}");

    // The first counter five more times: serial, sharing state.
    let refs: Vec<_> = (0..5)
        .map(|_| counters[0].increment().remote())
        .collect::<ferry::Result<_>>()?;
    let results: Vec<u64> = rt.get_all(&refs)?.iter().map(|v| v.to_native()).collect();
    assert_eq!(results, vec![2, 3, 4, 5, 6]);
    println!("first counter five times: {results:?}");
    Ok(())
}
