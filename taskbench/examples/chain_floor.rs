//! What a minimal two-thread pipeline costs a chain of tasks: Task Bench's
//! 1-wide stencil (each point reads the one before it) through two
//! single-producer single-consumer rings, with no runtime in between. The
//! submitting thread fills a task's record (its step and its input's
//! record) and pushes its index; the running thread pops it, runs
//! `TaskGraph::execute_point` on it as both Task Bench implementations do
//! (the input's check, the kernel, the output) and hands the input's record
//! back, which the submitter reuses. No lock and no locked instruction:
//! stores, and loads that acquire what the other thread released. It paces
//! as `taskbench-ferry` does: with 256 steps pending it waits until all but
//! a quarter are done.
//!
//! What it measures is the pipeline's throughput with a few hundred tasks
//! in flight: the cache-line round trips between the two cores overlap
//! the work rather than add to it. One design's cost, so an upper bound on
//! the least such a pipeline can cost on the machine; the performance log's
//! fifteenth session compares it with `taskbench-mpi` and
//! `taskbench-ferry` on one rank.
//!
//! ```sh
//! cargo run --release -p ferry-taskbench --example chain_floor -- 1000000 0
//! ```
//!
//! Arguments: the number of steps (default 200,000, at least 1) and
//! `-iter` (default 0). Prints the microseconds a task took.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use ferry_taskbench::TaskGraph;

/// Slots of each ring (a power of two).
const RING: usize = 1024;
/// Steps submitted and not known done, at most (`ferry_run::MAX_STEPS_AHEAD`).
const AHEAD: u64 = 256;
/// Records: more than can be pending or waiting to come back at once.
const RECORDS: usize = 4 * RING;
/// A point's output: `-output`'s default and least, checked at start.
const OUT: usize = 16;

/// One task's record: its step, its input's record (`usize::MAX`: none)
/// and its output, as words (written by one thread, then read by the other
/// after a ring's release and acquire). On lines of its own: the record the
/// submitter reuses must not share one with the record the worker is at.
#[repr(align(128))]
struct Record {
    step: AtomicU64,
    input: AtomicUsize,
    out: [AtomicU64; OUT / 8],
}

/// A counter on a cache line of its own.
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A ring of record indices from one thread to the other.
struct Ring {
    head: Padded,
    tail: Padded,
    slots: Box<[AtomicUsize]>,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            head: Default::default(),
            tail: Default::default(),
            slots: (0..RING).map(|_| AtomicUsize::new(0)).collect(),
        }
    }
}

/// One end of a ring, with its own position and the last it saw of the
/// other's (read again only when that one is used up).
struct End<'a> {
    ring: &'a Ring,
    mine: u64,
    seen: u64,
}

impl<'a> End<'a> {
    fn of(ring: &'a Ring) -> End<'a> {
        End {
            ring,
            mine: 0,
            seen: 0,
        }
    }

    fn push(&mut self, index: usize) {
        while self.mine - self.seen >= RING as u64 {
            self.seen = self.ring.head.0.load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        self.ring.slots[self.mine as usize % RING].store(index, Ordering::Relaxed);
        self.mine += 1;
        self.ring.tail.0.store(self.mine, Ordering::Release);
    }

    fn pop(&mut self) -> Option<usize> {
        if self.mine == self.seen {
            self.seen = self.ring.tail.0.load(Ordering::Acquire);
            if self.mine == self.seen {
                return None;
            }
        }
        let index = self.ring.slots[self.mine as usize % RING].load(Ordering::Relaxed);
        self.mine += 1;
        self.ring.head.0.store(self.mine, Ordering::Release);
        Some(index)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let steps: u64 = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let iter = args.next().unwrap_or_else(|| "0".into());
    if steps == 0 || args.next().is_some() {
        return Err("usage: chain_floor [STEPS >= 1] [ITER]".into());
    }
    let graph = TaskGraph::from_flags([
        "-steps",
        &steps.to_string(),
        "-width",
        "1",
        "-type",
        "stencil_1d",
        "-kernel",
        "compute_bound",
        "-iter",
        &iter,
    ])?;
    if graph.output_bytes != OUT {
        return Err(format!(
            "a point's output is {} bytes, not {OUT}",
            graph.output_bytes
        )
        .into());
    }
    let records: Arc<[Record]> = (0..RECORDS)
        .map(|_| Record {
            step: AtomicU64::new(0),
            input: AtomicUsize::new(usize::MAX),
            out: [AtomicU64::new(0), AtomicU64::new(0)],
        })
        .collect();
    let (to_worker, to_driver) = (Arc::new(Ring::new()), Arc::new(Ring::new()));
    let done = Arc::new(Padded::default());

    let worker = {
        let (records, to_worker, to_driver, done) = (
            records.clone(),
            to_worker.clone(),
            to_driver.clone(),
            done.clone(),
        );
        let graph = graph.clone();
        std::thread::spawn(move || -> Result<(), String> {
            let (mut tasks, mut back) = (End::of(&to_worker), End::of(&to_driver));
            for n in 0..steps {
                let index = loop {
                    match tasks.pop() {
                        Some(i) => break i,
                        None => std::hint::spin_loop(),
                    }
                };
                let r = &records[index];
                let t = r.step.load(Ordering::Relaxed) as usize;
                let input = r.input.load(Ordering::Relaxed);
                let mut read = [0u8; OUT];
                if input != usize::MAX {
                    for (w, word) in records[input].out.iter().enumerate() {
                        read[w * 8..w * 8 + 8]
                            .copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
                    }
                }
                let inputs: &[&[u8]] = if input == usize::MAX { &[] } else { &[&read] };
                let mut out = [0u8; OUT];
                graph
                    .execute_point(t, 0, inputs, &mut out, &mut [])
                    .map_err(|e| e.to_string())?;
                for (w, word) in r.out.iter().enumerate() {
                    let bytes: [u8; 8] = out[w * 8..w * 8 + 8].try_into().expect("8 bytes");
                    word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
                }
                done.0.store(n + 1, Ordering::Release);
                if input != usize::MAX {
                    back.push(input);
                }
            }
            Ok(())
        })
    };
    // A worker that stopped early (a failed check) ends the run: its error
    // is the result.
    let stopped = |worker: &std::thread::JoinHandle<Result<(), String>>| worker.is_finished();

    let (mut tasks, mut back) = (End::of(&to_worker), End::of(&to_driver));
    let mut free: Vec<usize> = (0..RECORDS).rev().collect();
    let mut prev = usize::MAX;
    let mut known_done = 0;
    let start = Instant::now();
    for t in 0..steps {
        while let Some(i) = back.pop() {
            free.push(i);
        }
        if t - known_done >= AHEAD {
            // All but a quarter done, then on (as `taskbench-ferry` paces).
            while known_done + AHEAD / 4 < t && !stopped(&worker) {
                known_done = done.0.load(Ordering::Acquire);
                std::hint::spin_loop();
            }
        }
        let index = free.pop().ok_or("every record is in use")?;
        let r = &records[index];
        r.step.store(t, Ordering::Relaxed);
        r.input.store(prev, Ordering::Relaxed);
        tasks.push(index);
        prev = index;
        if stopped(&worker) {
            break;
        }
    }
    while done.0.load(Ordering::Acquire) < steps && !stopped(&worker) {
        std::hint::spin_loop();
    }
    let elapsed = start.elapsed();
    worker.join().map_err(|_| "the worker panicked")??;
    println!("{:.4}", elapsed.as_secs_f64() / steps as f64 * 1e6);
    Ok(())
}
