//! "Actor Pool" of Ray's actor utilities
//! (<https://docs.ray.io/en/latest/ray-core/actors/actor-utils.html>): a
//! pool of two actors that `map` spreads values over, then the same with
//! `map_unordered`, and `submit` with `get_next`.
//!
//! Run it with `cargo run --example actor_pool`.

use ferry::ActorPool;

/// The documentation's actor.
#[ferry::actor]
struct Actor {
    calls: u64,
}

#[ferry::actor]
impl Actor {
    fn new() -> Self {
        Actor { calls: 0 }
    }

    fn double(&mut self, n: u64) -> u64 {
        self.calls += 1;
        n * 2
    }

    fn calls(&self) -> u64 {
        self.calls
    }
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let (a1, a2) = (Actor::remote(&rt)?, Actor::remote(&rt)?);
    let mut pool = ActorPool::new([a1.clone(), a2.clone()]);

    // pool.map(..) returns an iterator, as Ray's returns a generator.
    let doubling = pool.map(|a, v| a.double(v).remote(), [1, 2, 3, 4]);
    let doubled: Vec<u64> = doubling
        .map(|r| r.map(|v| v.to_native()))
        .collect::<ferry::Result<_>>()?;
    println!("{doubled:?}");
    assert_eq!(doubled, [2, 4, 6, 8]);

    // map_unordered: the same results, as each call finishes.
    let mut unordered: Vec<u64> = pool
        .map_unordered(|a, v| a.double(v).remote(), [5, 6, 7, 8])
        .map(|r| r.map(|v| v.to_native()))
        .collect::<ferry::Result<_>>()?;
    println!("map_unordered: {unordered:?}");
    unordered.sort_unstable();
    assert_eq!(unordered, [10, 12, 14, 16]);

    // submit / get_next: values wait in the pool while both actors are busy.
    for v in [9, 10, 11] {
        pool.submit(|a, v| a.double(v).remote(), v);
    }
    let mut results = Vec::new();
    while pool.has_next() {
        results.push(pool.get_next()?.to_native());
    }
    println!("submit/get_next: {results:?}");
    assert_eq!(results, [18, 20, 22]);

    // Both actors took calls.
    let calls = (
        rt.get(&a1.calls().remote()?)?.to_native(),
        rt.get(&a2.calls().remote()?)?.to_native(),
    );
    println!("calls per actor: {calls:?}");
    assert!(calls.0 > 0 && calls.1 > 0);
    assert_eq!(calls.0 + calls.1, 11);
    Ok(())
}
