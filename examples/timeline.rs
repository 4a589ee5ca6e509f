//! The execution timeline of "7. Pattern: Pipeline data processing and
//! waiting for results" (Ray Core advanced tutorial, seed 004), which the
//! tutorial draws: fifteen `expensive_square` tasks of different lengths,
//! each result processed as soon as `wait` hands it over. The run is
//! recorded and written as Chrome trace JSON (open it in
//! <https://ui.perfetto.dev>); the README's picture is this file drawn by
//! `scripts/timeline_svg.py`.
//!
//! Run it with `cargo run --example timeline [-- out.json]` (default
//! `ferry-timeline.json` in the temporary directory), or on several ranks with
//! `mpirun -n 2 target/debug/examples/timeline out.json` (mpi feature).

use std::time::Duration;

use ferry::Config;

/// 10 to 150 ms per input, as the seed's `np.random.randint` but repeatable.
fn sleep_ms(x: u64) -> u64 {
    let z = x.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    10 + (z ^ (z >> 29)) % 141
}

#[ferry::remote]
fn expensive_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(sleep_ms(x)));
    x * x
}

#[ferry::remote]
fn process_result(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(5));
    x + 1
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ferry-timeline.json"));
    let rt = ferry::init(Config::from_env()?.timeline(true))?;
    let compute: Vec<_> = (0..15)
        .map(|i| expensive_square::remote(&rt, i))
        .collect::<ferry::Result<_>>()?;
    let mut processed = Vec::new();
    let (mut ready, mut not_ready) = rt.wait(&compute, 1, None)?;
    loop {
        for r in &ready {
            processed.push(process_result::remote(&rt, r)?);
        }
        if not_ready.is_empty() {
            break;
        }
        (ready, not_ready) = rt.wait(&not_ready, 1, None)?;
    }
    let mut results: Vec<u64> = processed
        .iter()
        .map(|r| rt.get(r).map(|v| v.to_native()))
        .collect::<ferry::Result<_>>()?;
    results.sort_unstable();
    let mut expected: Vec<u64> = (0..15).map(|i| i * i + 1).collect();
    expected.sort_unstable();
    assert_eq!(results, expected);

    rt.timeline(&path)?;
    let trace: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let spans = trace["traceEvents"]
        .as_array()
        .ok_or("no traceEvents")?
        .iter()
        .filter(|e| e["ph"] == "X")
        .collect::<Vec<_>>();
    let count = |name: &str| {
        spans
            .iter()
            .filter(|e| e["name"].as_str().is_some_and(|n| n.contains(name)))
            .count()
    };
    assert_eq!(count("expensive_square"), 15);
    assert_eq!(count("process_result"), 15);
    let ranks: std::collections::BTreeSet<u64> =
        spans.iter().filter_map(|e| e["pid"].as_u64()).collect();
    println!(
        "15 squares processed as they came; timeline of {} tasks on rank(s) {ranks:?} written to {}",
        spans.len(),
        path.display()
    );
    rt.shutdown()?;
    Ok(())
}
