//! "Deterministic reconstruction of lost actors" of the Ray actors tutorial
//! (seed 002) and Ray's task fault tolerance: a node (here a rank, over the
//! loopback transport, where one can be killed) is lost mid-job, and the
//! job finishes with the right results:
//!
//! - the tasks running there are retried on another rank;
//! - the objects it made, whose refs a task's result handed back, are
//!   rebuilt by re-running that task (lineage);
//! - the actor that lived there is re-created on another rank by re-running
//!   its constructor, and the call in flight is sent to it again
//!   (`max_task_retries`).
//!
//! Run it with `cargo run --example lost_rank`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry::{Config, ObjectRef, Runtime};

/// Set once rank 2 has been pulled: until then the "slow" work below waits,
/// so none of it can finish on rank 2 first, however loaded the machine.
static PULLED: AtomicBool = AtomicBool::new(false);

/// Long work: waits until rank 2 is gone (at most a minute).
fn long_work() {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !PULLED.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The square, and the rank that computed it.
#[ferry::remote]
fn slow_square(rt: &Runtime, x: u64) -> (u64, u32) {
    long_work();
    (x * x, rt.rank())
}

#[ferry::remote]
fn chunk(seed: u64) -> Vec<u64> {
    (0..4096).map(|i| i * seed).collect()
}

/// Makes three chunks on its own rank and hands back refs to them.
#[ferry::remote]
fn make_chunks(rt: &Runtime) -> ferry::Result<Vec<ObjectRef<Vec<u64>>>> {
    (1..=3)
        .map(|s| chunk::options().on_rank(rt.rank()).remote(rt, s))
        .collect()
}

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

    fn slow_read(&self) -> u64 {
        long_work();
        self.value
    }
}

fn main() -> ferry::Result<()> {
    let cfg = Config::default()
        .num_cpus(2.0)
        .object_store_memory(32 << 20);
    ferry::loopback::run(3, cfg, |rt, world| -> ferry::Result<()> {
        // Work on rank 2, which is about to be lost.
        let chunks: Vec<ObjectRef<Vec<u64>>> = rt
            .get(&make_chunks::options().on_rank(2).remote(&rt)?)?
            .iter()
            .map(|r| r.to_ref())
            .collect::<ferry::Result<_>>()?;
        let counter = Counter::options()
            .on_rank(2)
            .max_restarts(1)
            .max_task_retries(1)
            .remote(&rt)?;
        for _ in 0..3 {
            rt.get_value(&counter.increment().remote()?)?;
        }
        let squares: Vec<_> = (0..4)
            .map(|x| slow_square::options().on_rank(2).remote(&rt, x))
            .collect::<ferry::Result<_>>()?;
        let in_flight = counter.slow_read().remote()?;

        world.kill(2, "the example pulls the plug")?;
        PULLED.store(true, Ordering::SeqCst);
        println!("rank 2 was lost");

        let squares: Vec<(u64, u32)> = squares
            .iter()
            .map(|r| rt.get_value(r))
            .collect::<ferry::Result<_>>()?;
        println!("squares and their ranks, retried elsewhere: {squares:?}");
        assert_eq!(
            squares.iter().map(|s| s.0).collect::<Vec<_>>(),
            [0, 1, 4, 9]
        );
        assert!(squares.iter().all(|s| s.1 != 2));

        for (i, r) in chunks.iter().enumerate() {
            let v = rt.get(r)?;
            let seed = i as u64 + 1;
            assert!(
                v.as_slice()
                    .iter()
                    .enumerate()
                    .all(|(j, x)| *x == j as u64 * seed)
            );
        }
        println!("3 chunks rank 2 made, rebuilt from lineage");

        // The re-created actor ran its constructor again: the value is 0.
        let read = rt.get_value(&in_flight)?;
        println!(
            "Counter re-created on rank {}; the call in flight read {read}",
            counter.actor_rank()
        );
        assert_eq!(read, 0);
        assert_ne!(counter.actor_rank(), 2);
        assert_eq!(rt.get_value(&counter.increment().remote()?)?, 1);
        let s = rt.state();
        assert_eq!(s.lost, [2]);
        println!("{s}");
        Ok(())
    })?
}
