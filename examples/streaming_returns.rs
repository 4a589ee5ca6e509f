//! Ray Generators, as in Ray's documentation ("Ray Generators"): a task
//! marked `num_returns="streaming"` that yields its results gives an
//! `ObjectRefGenerator`; the caller reads each result as soon as the task
//! has produced it, while the task goes on producing the next.
//!
//! Run it with `cargo run --example streaming_returns`.

use std::time::{Duration, Instant};

use ferry::GeneratorNext;

// `yield i` every 200 ms, five times: an iterator in Rust.
#[ferry::remote(num_returns = "streaming")]
fn task() -> impl Iterator<Item = u64> {
    (0..5).inspect(|_| std::thread::sleep(Duration::from_millis(200)))
}

// Error handling: an error raised mid-stream (here an `Err` item) comes
// after the items before it, when the caller reads that far.
#[ferry::remote(num_returns = "streaming")]
fn failing_task() -> impl Iterator<Item = Result<u64, String>> {
    (0..5).map(|i| {
        std::thread::sleep(Duration::from_millis(20));
        if i == 1 {
            Err("ValueError".to_string())
        } else {
            Ok(i)
        }
    })
}

// Backpressure: with `generator_backpressure_num_objects(2)` the task
// pauses after 2 results the caller has not read yet.
#[ferry::remote(num_returns = "streaming")]
fn many() -> impl Iterator<Item = u64> {
    0..1_000_000
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let start = Instant::now();
    let mut generator = task::remote(&rt)?;
    // Blocks for 200 ms: the first result, not all five.
    let r = generator.next().expect("a first result")?;
    assert_eq!(*rt.get(&r)?, 0);
    let first = start.elapsed();
    // Blocks for 200 ms.
    let r = generator.next().expect("a second result")?;
    assert_eq!(*rt.get(&r)?, 1);
    // Returns 2~4 every 200 ms.
    let mut rest = Vec::new();
    for r in generator.by_ref() {
        let v = *rt.get(&r?)?;
        println!("{v}");
        rest.push(v);
    }
    assert_eq!(rest, [2, 3, 4]);
    println!(
        "first result after {first:?}, all five after {:?}",
        start.elapsed()
    );
    // The task's own ref: ready when it ended, worth its number of results.
    assert_eq!(rt.get_value(generator.completed())?, 5);

    // Errors.
    let mut generator = failing_task::remote(&rt)?;
    let r = generator.next().expect("a first result")?;
    assert_eq!(*rt.get(&r)?, 0); // it's okay
    match generator.next() {
        Some(Err(e)) => println!("Exception is raised when i == 1 as expected {e}"),
        other => panic!("expected the task's error, got {other:?}"),
    }
    assert!(
        generator.next().is_none(),
        "the stream ends after its error"
    );

    // Waiting with a timeout (Ray's `ray.wait([gen], timeout=…)`).
    let mut generator = task::remote(&rt)?;
    let mut r = generator.try_next(); // does not wait: most likely `Pending` here
    if matches!(r, GeneratorNext::Pending) {
        r = generator.next_timeout(Duration::from_secs(30));
    }
    match r {
        GeneratorNext::Item(r) => assert_eq!(*rt.get(&r)?, 0),
        other => panic!("{other:?}"),
    }
    drop(generator); // cancels the task: it stops at its next result

    // Backpressure, then cancellation.
    let generator = many::options()
        .generator_backpressure_num_objects(2)
        .remote(&rt)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while generator.num_ready() < 2 {
        assert!(Instant::now() < deadline, "the task made no results");
        std::thread::sleep(Duration::from_millis(5));
    }
    let done = generator.completed().clone();
    drop(generator);
    let made = rt.get_value(&done)?;
    assert_eq!(made, 2);
    println!("with nothing read, the task made {made} results and stopped");
    Ok(())
}
