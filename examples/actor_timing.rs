//! Exercise 7, "Introducing Actors" (seed 001): two `Foo` actors whose
//! `increment` sleeps 0.5 s run in parallel, so five rounds of calls on both
//! take about 2.5 s, not 5 s.
//!
//! Run it with `cargo run --example actor_timing`.

use std::time::{Duration, Instant};

/// The exercise's `Foo` class as an actor.
#[ferry::actor]
struct Foo {
    counter: u64,
}

#[ferry::actor]
impl Foo {
    fn new() -> Self {
        Foo { counter: 0 }
    }

    fn reset(&mut self) {
        self.counter = 0;
    }

    fn increment(&mut self) -> u64 {
        std::thread::sleep(Duration::from_millis(500));
        self.counter += 1;
        self.counter
    }
}

fn main() -> ferry::Result<()> {
    // ray.init(num_cpus=4)
    let rt = ferry::init(ferry::Config::default().num_cpus(4.0))?;

    // Create two Foo actors.
    let f1 = Foo::remote(&rt)?;
    let f2 = Foo::remote(&rt)?;

    // Sleep a little to improve the accuracy of the timing measurements below.
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();

    // Reset the actor state; calls on one actor run in the order they are made.
    let _ = f1.reset().remote()?;
    let _ = f2.reset().remote()?;

    let mut refs = Vec::new();
    for _ in 0..5 {
        refs.push(f1.increment().remote()?);
        refs.push(f2.increment().remote()?);
    }
    let results: Vec<u64> = rt.get_all(&refs)?.iter().map(|v| v.to_native()).collect();
    let duration = start.elapsed().as_secs_f64();

    // VERIFY, as in the exercise.
    assert_eq!(results, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    assert!(
        duration < 3.0,
        "The experiments ran in {duration} seconds. This is too slow."
    );
    assert!(
        duration > 2.5,
        "The experiments ran in {duration} seconds. This is too fast."
    );
    println!("Success! The example took {duration:.3} seconds: {results:?}");
    rt.shutdown()
}
