//! "5. Resource allocation and management" of the Ray Core advanced tutorial
//! (seed 004): logical resources, `available_resources`, fractional and zero
//! CPU requests, infeasible GPU requests, a custom `TPU` resource, and a head
//! node configured with no CPUs.
//!
//! Run it with `cargo run --example resources`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry::Error;

const CPUS: f64 = 2.0;

#[ferry::remote]
fn remote_add(a: u64, b: u64) -> u64 {
    a + b
}

static STARTED: AtomicUsize = AtomicUsize::new(0);
static RELEASE: AtomicBool = AtomicBool::new(false);

/// Holds its CPU (busy, not blocked in `get`) until released.
#[ferry::remote]
fn hold_cpu() -> u64 {
    STARTED.fetch_add(1, Ordering::SeqCst);
    while !RELEASE.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    1
}

/// An I/O-bound task: sleeps, uses no CPU.
#[ferry::remote]
fn io_task(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    x
}

/// The free amount of `name` as the running task sees it.
#[ferry::remote]
fn available(name: String) -> ferry::Result<f64> {
    let rt = ferry::current()?;
    Ok(rt.available_resources().get(&name).copied().unwrap_or(0.0))
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn is_infeasible(r: ferry::Result<impl std::fmt::Debug>, resource: &str) -> String {
    match r {
        Err(e @ Error::Infeasible { .. }) => {
            if let Error::Infeasible { resource: got, .. } = &e {
                assert_eq!(got, resource);
            }
            e.to_string()
        }
        other => panic!("expected an infeasible {resource} request, got {other:?}"),
    }
}

fn main() -> ferry::Result<()> {
    let rt = ferry::init(ferry::Config::default().num_cpus(CPUS).resource("TPU", 1.0))?;
    let totals = rt.cluster_resources();
    let avail = rt.available_resources();
    let ranks = f64::from(rt.world_size());
    println!("available_resources: {avail:?}");
    assert_eq!(avail["CPU"], CPUS * ranks);
    assert_eq!(totals["CPU"], CPUS * ranks);
    assert_eq!(avail["TPU"], ranks);
    assert!(!avail.contains_key("GPU"));
    assert!(avail["memory"] > 0.0 && avail["object_store_memory"] > 0.0);

    // 5.2 Fractional resources: @ray.remote(num_cpus=0.5)
    let r = remote_add::options().num_cpus(0.5).remote(&rt, 2, 3)?;
    assert_eq!(*rt.get(&r)?, 5);
    println!("remote_add(2, 3) with num_cpus=0.5 = 5");

    if rt.world_size() > 1 {
        // What follows holds every CPU of one rank and starts a second
        // runtime in the same process: a one-rank scenario.
        println!(
            "skipped under {} ranks: the CPU-saturation and head-node parts need one rank",
            rt.world_size()
        );
        return rt.shutdown();
    }

    // 5.3 I/O-bound tasks with num_cpus=0 run even when every CPU is taken.
    let holders: Vec<_> = (0..CPUS as usize)
        .map(|_| hold_cpu::remote(&rt))
        .collect::<ferry::Result<_>>()?;
    wait_until("the CPU holders to start", || {
        STARTED.load(Ordering::SeqCst) == CPUS as usize
    });
    assert_eq!(rt.available_resources()["CPU"], 0.0);
    let waiting = remote_add::remote(&rt, 1, 1)?; // needs a CPU: must wait
    let io: Vec<_> = (0..8)
        .map(|i| io_task::options().num_cpus(0.0).remote(&rt, i))
        .collect::<ferry::Result<_>>()?;
    let (ready, _) = rt.wait(&io, io.len(), Some(Duration::from_secs(10)))?;
    assert_eq!(ready.len(), io.len(), "num_cpus=0 tasks did not run");
    let sum: u64 = rt.get_all(&io)?.iter().map(|v| v.to_native()).sum();
    assert_eq!(sum, 28);
    assert!(
        !waiting.is_ready(),
        "a 1-CPU task ran while all CPUs were held"
    );
    println!("8 num_cpus=0 tasks ran while both CPUs were held; a 1-CPU task waited");
    RELEASE.store(true, Ordering::SeqCst);
    assert_eq!(rt.get_all(&holders)?.len(), 2);
    assert_eq!(*rt.get(&waiting)?, 2);

    // 5.1 A GPU request on a machine without GPUs can never be met.
    let msg = is_infeasible(remote_add::options().num_gpus(1.0).remote(&rt, 1, 2), "GPU");
    println!("num_gpus=1: {msg}");
    let msg = is_infeasible(
        remote_add::options()
            .resource("FPGA", 1.0)
            .remote(&rt, 1, 2),
        "FPGA",
    );
    println!("resources={{FPGA: 1}}: {msg}");

    // A custom resource: the task holds the only TPU while it runs.
    let r = available::options()
        .resource("TPU", 1.0)
        .remote(&rt, "TPU".to_string())?;
    assert_eq!(*rt.get(&r)?, 0.0);
    println!("a TPU task ran and saw 0 TPUs free while it held the one");

    // Everything is given back once the tasks finish.
    wait_until("the resources to come back", || {
        rt.available_resources()
            .iter()
            .filter(|(k, _)| *k != "object_store_memory")
            .all(|(k, v)| totals.get(k) == Some(v))
    });
    println!("available_resources back to the totals");
    rt.shutdown()?;

    // Head-node pattern: resources {"CPU": 0}: nothing that needs a CPU runs here.
    let head = ferry::init(ferry::Config::default().num_cpus(0.0))?;
    // As in Ray, a resource with a total of 0 is not listed.
    assert_eq!(head.cluster_resources().get("CPU"), None);
    let msg = is_infeasible(remote_add::remote(&head, 1, 2), "CPU");
    println!("head node with CPU 0: {msg}");
    let r = remote_add::options().num_cpus(0.0).remote(&head, 1, 2)?;
    assert_eq!(*head.get(&r)?, 3);
    println!("a num_cpus=0 task still runs there");
    head.shutdown()
}
