//! "7. Pattern: Pipeline data processing and waiting for results" of the Ray
//! Core advanced tutorial (seed 004): process each result as soon as it is
//! ready with `wait(refs, 1)` instead of `get` on all of them.
//!
//! Run it with `cargo run --example wait_pipeline`.

use std::collections::BTreeSet;
use std::time::Duration;

/// A deterministic stand-in for `np.random.randint`: 10 to 150 ms per input.
fn sleep_ms(x: u64) -> u64 {
    let z = x.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    10 + (z ^ (z >> 29)) % 141
}

#[ferry::remote]
fn expensive_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(sleep_ms(x)));
    x * x
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let expensive_compute: Vec<_> = (0..15)
        .map(|i| expensive_square::remote(&rt, i))
        .collect::<ferry::Result<_>>()?;

    // Process each item as soon as it becomes available.
    let mut results = Vec::new();
    let (mut ready_refs, mut not_ready_refs) = rt.wait(&expensive_compute, 1, None)?;
    assert_eq!(ready_refs.len(), 1);
    while !not_ready_refs.is_empty() {
        let v = rt.get(&ready_refs[0])?.to_native();
        println!("{:?} is ready; result: {v}", ready_refs[0]);
        println!("{} items not ready...", not_ready_refs.len());
        results.push(v);
        (ready_refs, not_ready_refs) = rt.wait(not_ready_refs, 1, None)?;
        assert_eq!(
            ready_refs.len(),
            1,
            "len(ready_refs) should be 1, got {} instead",
            ready_refs.len()
        );
    }
    let last = rt.get(&ready_refs[0])?.to_native();
    println!("I'm the last item: {:?}; result: {last}", ready_refs[0]);
    results.push(last);

    assert_eq!(results.len(), 15);
    let got: BTreeSet<u64> = results.iter().copied().collect();
    let want: BTreeSet<u64> = (0..15).map(|i| i * i).collect();
    assert_eq!(got, want);
    println!("processed in completion order: {results:?}");
    Ok(())
}
