//! "7.2 Note on fetching too many objects at once with ray.get causes
//! failure" of the Ray Core advanced tutorial (seed 004), done the
//! recommended way: 100 000 tasks, fetched and processed one batch at a time.
//!
//! Run it with `cargo run --release --example many_results`.

use std::time::Instant;

const TASKS: u64 = 100_000;
const BATCH: u64 = 1_000;

#[ferry::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let start = Instant::now();
    let mut total = 0u64;
    let mut batches = 0;
    for first in (0..TASKS).step_by(BATCH as usize) {
        let refs: Vec<_> = (first..first + BATCH)
            .map(|i| square::remote(&rt, i))
            .collect::<ferry::Result<_>>()?;
        let (ready, not_ready) = rt.wait(&refs, refs.len(), None)?;
        assert!(not_ready.is_empty());
        total += rt
            .get_all(&ready)?
            .iter()
            .map(|v| v.to_native())
            .sum::<u64>();
        batches += 1;
        // `refs` and `ready` drop here: the batch's objects are freed.
    }
    let elapsed = start.elapsed();
    let n = TASKS;
    assert_eq!(total, (n - 1) * n * (2 * n - 1) / 6);
    assert_eq!(batches, TASKS / BATCH);
    println!(
        "{TASKS} tasks in {batches} batches of {BATCH}: sum of squares = {total}, {:.3} s ({:.1} us/task), store used at the end: {} bytes",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / TASKS as f64,
        rt.store_used()
    );
    Ok(())
}
