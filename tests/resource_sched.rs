//! Resources: totals and availability, infeasible and invalid requests,
//! fractional and zero-CPU tasks, custom resources.

mod common;
use common::eventually;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry::{Config, Error, Runtime};

fn start(cfg: Config) -> ferry::Result<Runtime> {
    ferry::init(cfg.object_store_memory(64 << 20))
}

#[ferry::remote]
fn square(x: u64) -> u64 {
    x * x
}

static ARRIVED: AtomicUsize = AtomicUsize::new(0);

/// Arrives at a rendezvous and waits (at most 10 s) for a second task.
#[ferry::remote]
fn rendezvous() -> usize {
    ARRIVED.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ARRIVED.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    ARRIVED.load(Ordering::SeqCst)
}

static BLOCKER_STARTED: AtomicBool = AtomicBool::new(false);
static BLOCKER_RELEASE: AtomicBool = AtomicBool::new(false);

/// Holds its CPU (without blocking in `get`) until released, at most 20 s.
#[ferry::remote]
fn blocker() -> bool {
    BLOCKER_STARTED.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !BLOCKER_RELEASE.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    BLOCKER_RELEASE.load(Ordering::SeqCst)
}

/// An actor for resource checks at creation.
#[ferry::actor]
struct Holder {
    n: u32,
}

#[ferry::actor]
impl Holder {
    fn new() -> Self {
        Holder { n: 0 }
    }

    fn n(&self) -> u32 {
        self.n
    }
}

fn without_store(m: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    m.iter()
        .filter(|(k, _)| k.as_str() != "object_store_memory")
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[test]
fn cluster_resources_lists_builtin_and_custom_resources() -> ferry::Result<()> {
    let rt = start(
        Config::default()
            .num_cpus(2.0)
            .resource("TPU", 2.0)
            .memory(4e9),
    )?;
    let res = rt.cluster_resources();
    assert_eq!(res.get("CPU"), Some(&2.0), "{res:?}");
    assert_eq!(res.get("TPU"), Some(&2.0), "{res:?}");
    assert_eq!(res.get("memory"), Some(&4e9), "{res:?}");
    assert_eq!(
        res.get("object_store_memory"),
        Some(&((64 << 20) as f64)),
        "{res:?}"
    );
    assert!(!res.contains_key("GPU"), "no GPUs configured: {res:?}");
    let avail = rt.available_resources();
    assert_eq!(without_store(&avail), without_store(&res));
    rt.shutdown()?;

    let gpu = start(Config::default().num_cpus(1.0).num_gpus(2.0))?;
    assert_eq!(gpu.cluster_resources().get("GPU"), Some(&2.0));
    assert!(gpu.cluster_resources()["memory"] > 0.0);
    gpu.shutdown()
}

#[test]
fn infeasible_requests_fail_at_submission() -> ferry::Result<()> {
    let rt = start(Config::default().num_cpus(2.0).resource("TPU", 2.0))?;
    match square::options().num_gpus(1.0).remote(&rt, 1) {
        Err(Error::Infeasible {
            resource,
            asked,
            total,
            ..
        }) => {
            assert_eq!(resource, "GPU");
            assert_eq!(asked, 1.0);
            assert_eq!(total, 0.0);
        }
        other => panic!("expected Infeasible, got {other:?}"),
    }
    match square::options().resource("FPGA", 1.0).remote(&rt, 1) {
        Err(Error::Infeasible { resource, .. }) => assert_eq!(resource, "FPGA"),
        other => panic!("expected Infeasible, got {other:?}"),
    }
    assert!(matches!(
        square::options().num_cpus(3.0).remote(&rt, 1),
        Err(Error::Infeasible { .. })
    ));
    assert!(matches!(
        square::options().resource("TPU", 3.0).remote(&rt, 1),
        Err(Error::Infeasible { .. })
    ));
    assert!(matches!(
        Holder::options().num_gpus(1.0).remote(&rt),
        Err(Error::Infeasible { .. })
    ));
    let h = Holder::options()
        .num_cpus(2.0)
        .resource("TPU", 1.0)
        .remote(&rt)?;
    assert_eq!(*rt.get(&h.n().remote()?)?, 0);
    h.kill();
    // Feasible custom requests run.
    let ok = square::options().resource("TPU", 2.0).remote(&rt, 3)?;
    assert_eq!(*rt.get(&ok)?, 9);
    // Nothing was reserved by the refused requests.
    assert!(eventually(5, || rt.available_resources()["CPU"] == 2.0));
    rt.shutdown()
}

#[test]
fn invalid_amounts_are_invalid_arguments() -> ferry::Result<()> {
    let rt = start(Config::default().num_cpus(2.0).resource("TPU", 2.0))?;
    let cases = [
        square::options().num_cpus(-1.0).remote(&rt, 1),
        square::options().num_cpus(1.5).remote(&rt, 1),
        square::options().num_cpus(f64::NAN).remote(&rt, 1),
        square::options().num_cpus(f64::INFINITY).remote(&rt, 1),
        square::options().num_gpus(-0.5).remote(&rt, 1),
        square::options().resource("TPU", -1.0).remote(&rt, 1),
        square::options().resource("TPU", 1.5).remote(&rt, 1),
    ];
    for (i, c) in cases.into_iter().enumerate() {
        assert!(
            matches!(c, Err(Error::InvalidArgument(_))),
            "case {i}: expected InvalidArgument, got {c:?}"
        );
    }
    assert!(matches!(
        Holder::options().num_cpus(-2.0).remote(&rt),
        Err(Error::InvalidArgument(_))
    ));
    // Config values are checked at init.
    assert!(matches!(
        ferry::init(
            Config::default()
                .num_cpus(-1.0)
                .object_store_memory(8 << 20)
        ),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        ferry::init(
            Config::default()
                .num_cpus(1.0)
                .resource("TPU", -1.0)
                .object_store_memory(8 << 20)
        ),
        Err(Error::InvalidArgument(_))
    ));
    rt.shutdown()
}

#[test]
fn fractional_cpu_tasks_share_one_cpu() -> ferry::Result<()> {
    let rt = start(Config::default().num_cpus(1.0))?;
    let a = rendezvous::options().num_cpus(0.5).remote(&rt)?;
    let b = rendezvous::options().num_cpus(0.5).remote(&rt)?;
    let (va, vb) = (rt.get_value(&a)?, rt.get_value(&b)?);
    assert!(
        va >= 2 && vb >= 2,
        "two 0.5-CPU tasks did not run at once on 1 CPU ({va}, {vb})"
    );
    rt.shutdown()
}

#[test]
fn zero_cpu_tasks_run_while_cpus_are_busy() -> ferry::Result<()> {
    let rt = start(Config::default().num_cpus(1.0))?;
    let b = blocker::remote(&rt)?;
    assert!(
        eventually(10, || BLOCKER_STARTED.load(Ordering::SeqCst)),
        "blocker never started"
    );
    let z = square::options().num_cpus(0.0).remote(&rt, 12);
    let one = square::remote(&rt, 3)?;
    let zv = z.and_then(|z| rt.get_timeout(&z, Duration::from_secs(10)).map(|v| *v));
    // A 1-CPU task must wait for the blocker.
    let waited = rt.get_timeout(&one, Duration::from_millis(200));
    let one_ran_early = match waited {
        Ok(_) => true,
        Err(Error::Timeout(_)) => false,
        Err(e) => panic!("the 1-CPU task failed: {e}"),
    };
    BLOCKER_RELEASE.store(true, Ordering::SeqCst);
    assert_eq!(
        zv?, 144,
        "a zero-CPU task did not run while the CPU was busy"
    );
    assert!(
        !one_ran_early,
        "a 1-CPU task ran while the only CPU was held"
    );
    assert_eq!(*rt.get(&one)?, 9);
    assert!(rt.get_value(&b)?);
    rt.shutdown()
}

#[test]
fn available_resources_return_to_totals() -> ferry::Result<()> {
    let rt = start(Config::default().num_cpus(2.0).resource("TPU", 2.0))?;
    let totals = rt.cluster_resources();
    let refs: Vec<_> = (0..50u64)
        .map(|i| {
            square::options()
                .num_cpus(0.5)
                .resource("TPU", 1.0)
                .memory(1e6)
                .remote(&rt, i)
        })
        .collect::<ferry::Result<_>>()?;
    let sum: u64 = rt.get_all(&refs)?.iter().map(|v| v.to_native()).sum();
    assert_eq!(sum, (0..50u64).map(|i| i * i).sum::<u64>());
    drop(refs);
    let back = eventually(5, || {
        without_store(&rt.available_resources()) == without_store(&totals)
    });
    assert!(back, "{:?} vs {:?}", rt.available_resources(), totals);
    // Objects are freed by whichever thread drops their last ref, so the
    // two readings agree once the freeing has settled.
    let consistent = eventually(5, || {
        let store_free = rt.available_resources()["object_store_memory"];
        store_free == (totals["object_store_memory"] as usize - rt.store_used()) as f64
    });
    assert!(consistent, "object_store_memory free != capacity - used");
    rt.shutdown()
}

static CHAIN_STARTED: AtomicBool = AtomicBool::new(false);
static CHAIN_OPEN: AtomicBool = AtomicBool::new(false);
static RAN: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

fn ran(what: u64) -> u64 {
    RAN.lock().unwrap_or_else(|p| p.into_inner()).push(what);
    what
}

/// A chain's first link: holds the only CPU until told (at most 20 s).
#[ferry::remote]
fn first_link() -> u64 {
    CHAIN_STARTED.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !CHAIN_OPEN.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    ran(0)
}

#[ferry::remote]
fn next_link(prev: u64) -> u64 {
    ran(prev + 1)
}

#[ferry::remote]
fn beside_the_chain() -> u64 {
    ran(1000)
}

/// A worker running a chain of dependent tasks hands each one's CPU to the
/// next only while no task that was waiting before the link ended still
/// waits: a task that does gets it (the worker runs it next) when the link
/// running now ends, not after the whole chain.
#[test]
fn a_task_waiting_for_a_cpu_is_not_kept_out_by_a_chain_holding_it() -> ferry::Result<()> {
    let rt = start(Config::default().num_cpus(1.0))?;
    let first = first_link::remote(&rt)?;
    assert!(
        eventually(10, || CHAIN_STARTED.load(Ordering::SeqCst)),
        "the chain never started"
    );
    let mut last = first;
    for _ in 0..20 {
        last = next_link::remote(&rt, &last)?;
    }
    // The only CPU is held: this one waits for it.
    let beside = beside_the_chain::remote(&rt)?;
    CHAIN_OPEN.store(true, Ordering::SeqCst);
    assert_eq!(rt.get_value(&last)?, 20);
    assert_eq!(rt.get_value(&beside)?, 1000);
    let order = RAN.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let at = order.iter().position(|&w| w == 1000);
    assert_eq!(at, Some(1), "it ran after the first link only: {order:?}");
    rt.shutdown()
}

static FAN_STARTED: AtomicBool = AtomicBool::new(false);
static FAN_OPEN: AtomicBool = AtomicBool::new(false);
static FAN_RAN: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

/// Holds the only CPU until told (at most 20 s).
#[ferry::remote]
fn fan_source() -> u64 {
    FAN_STARTED.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !FAN_OPEN.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    0
}

#[ferry::remote]
fn fan_out(_source: u64, which: u64) -> u64 {
    FAN_RAN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(which);
    which
}

/// On one CPU, the dependents one completion makes ready run in the order
/// they were submitted: the first is kept by the worker and takes the
/// finished task's CPU, the others (which found no CPU free) wait behind
/// it, not before it.
#[test]
fn dependents_made_ready_together_run_in_their_order_on_one_cpu() -> ferry::Result<()> {
    let rt = start(Config::default().num_cpus(1.0))?;
    let source = fan_source::remote(&rt)?;
    assert!(
        eventually(10, || FAN_STARTED.load(Ordering::SeqCst)),
        "the source never started"
    );
    let outs = (0..4)
        .map(|w| fan_out::remote(&rt, &source, w))
        .collect::<ferry::Result<Vec<_>>>()?;
    FAN_OPEN.store(true, Ordering::SeqCst);
    for (w, o) in outs.iter().enumerate() {
        assert_eq!(rt.get_value(o)?, w as u64);
    }
    let order = FAN_RAN.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(order, [0, 1, 2, 3]);
    rt.shutdown()
}

static WOKEN_STARTED: AtomicBool = AtomicBool::new(false);
static WOKEN_GATE: AtomicBool = AtomicBool::new(false);
static BESIDE_RUNNING: AtomicBool = AtomicBool::new(false);
static BESIDE_RELEASE: AtomicBool = AtomicBool::new(false);

/// Waits (holding no CPU) until the gate opens, at most 20 s.
#[ferry::remote]
fn gate() -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !WOKEN_GATE.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    1
}

/// Blocks in `get` on the gate: its CPU goes to another task meanwhile,
/// and it takes it back when it wakes (the ledger then overdrawn).
#[ferry::remote]
fn wakes_over_another(rt: &Runtime) -> ferry::Result<u64> {
    WOKEN_STARTED.store(true, Ordering::SeqCst);
    let g = gate::options().num_cpus(0.0).remote(rt)?;
    Ok(rt.get_timeout(&g, Duration::from_secs(30))?.to_native())
}

/// Holds the CPU it was granted until released, at most 20 s.
#[ferry::remote]
fn holds_the_cpu() -> bool {
    BESIDE_RUNNING.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !BESIDE_RELEASE.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    BESIDE_RUNNING.store(false, Ordering::SeqCst);
    true
}

/// Whether the CPU's other holder was running when this one started.
#[ferry::remote]
fn started_beside(_prev: u64) -> bool {
    BESIDE_RUNNING.load(Ordering::SeqCst)
}

/// A task that took its CPU back over another's grant (woken from a
/// blocking `get`) gives it back when it ends rather than passing it to
/// its dependent: the dependent waits for the other task.
#[test]
fn an_overdrawn_cpu_is_not_handed_to_the_next_task() -> ferry::Result<()> {
    let rt = start(Config::default().num_cpus(1.0))?;
    let woken = wakes_over_another::remote(&rt)?;
    let after = started_beside::remote(&rt, &woken)?;
    assert!(
        eventually(10, || WOKEN_STARTED.load(Ordering::SeqCst)),
        "the first task never started"
    );
    // Granted once the first blocks in its `get`.
    let beside = holds_the_cpu::remote(&rt)?;
    assert!(
        eventually(10, || BESIDE_RUNNING.load(Ordering::SeqCst)),
        "the CPU was not lent while its holder blocked"
    );
    WOKEN_GATE.store(true, Ordering::SeqCst);
    assert_eq!(rt.get_value(&woken)?, 1);
    BESIDE_RELEASE.store(true, Ordering::SeqCst);
    assert!(rt.get_value(&beside)?);
    assert!(
        !rt.get_value(&after)?,
        "the dependent ran beside the task holding the only CPU"
    );
    rt.shutdown()
}
