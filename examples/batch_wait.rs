//! "7.1 Batch Processing Pattern" of the Ray Core advanced tutorial (seed
//! 004): wait for `BATCH_SIZE` results at a time with `wait(refs, 3)`.
//!
//! Run it with `cargo run --example batch_wait`.

use std::collections::BTreeSet;
use std::time::Duration;

const BATCH_SIZE: usize = 3;

/// A deterministic stand-in for `np.random.randint`: 10 to 150 ms per input.
fn sleep_ms(x: u64) -> u64 {
    let z = x.wrapping_add(7).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    10 + (z ^ (z >> 29)) % 141
}

#[ferry::remote]
fn expensive_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(sleep_ms(x)));
    x * x
}

fn values(rt: &ferry::Runtime, refs: &[ferry::ObjectRef<u64>]) -> ferry::Result<Vec<u64>> {
    Ok(rt.get_all(refs)?.iter().map(|v| v.to_native()).collect())
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let expensive_compute: Vec<_> = (0..15)
        .map(|i| expensive_square::remote(&rt, i))
        .collect::<ferry::Result<_>>()?;

    let mut results = Vec::new();
    let mut batches = 0;
    // Wait for BATCH_SIZE object refs at a time.
    let (mut ready_refs, mut not_ready_refs) = rt.wait(&expensive_compute, BATCH_SIZE, None)?;
    while !not_ready_refs.is_empty() {
        assert_eq!(ready_refs.len(), BATCH_SIZE);
        let batch = values(&rt, &ready_refs)?;
        println!("{ready_refs:?} are ready; results: {batch:?}");
        println!("{} items not ready...", not_ready_refs.len());
        results.extend(batch);
        batches += 1;
        (ready_refs, not_ready_refs) = rt.wait(not_ready_refs, BATCH_SIZE, None)?;
    }
    // 15 is a multiple of 3, so the last batch is full too.
    assert_eq!(ready_refs.len(), BATCH_SIZE);
    let last = values(&rt, &ready_refs)?;
    println!("Last batch {ready_refs:?}; result: {last:?}");
    results.extend(last);
    batches += 1;

    assert_eq!(batches, 5);
    let got: BTreeSet<u64> = results.iter().copied().collect();
    let want: BTreeSet<u64> = (0..15).map(|i| i * i).collect();
    assert_eq!((results.len(), got), (15, want));
    println!("{batches} batches of {BATCH_SIZE}, all 15 results collected");
    Ok(())
}
