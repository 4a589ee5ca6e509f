//! Helpers shared by the integration tests (each test file uses some).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use ferry::{Config, Runtime};

/// How long a test waits for an event before it fails naming the event: far
/// above anything a loaded 2-core machine needs, far below a CI timeout.
pub(crate) const BOUND: Duration = Duration::from_secs(30);

/// A runtime with `cpus` logical CPUs and a small (64 MiB) store.
pub(crate) fn start(cpus: f64) -> ferry::Result<Runtime> {
    ferry::init(
        Config::default()
            .num_cpus(cpus)
            .object_store_memory(64 << 20),
    )
}

/// Polls `cond` every 10 ms for up to `secs` seconds.
pub(crate) fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` until it holds; panics naming `what` after [`BOUND`].
pub(crate) fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        eventually(BOUND.as_secs(), cond),
        "gave up after {BOUND:?} waiting for {what}"
    );
}

/// Gates: rendezvous between a test and the tasks or actor calls it starts
/// (loopback ranks are threads of this process, so they all see them).
/// A task calls [`Gate::pass`] with the gate's key: it says it arrived (and
/// where), then waits until the test opens the gate. The test waits for the
/// arrivals it needs ([`Gate::wait_arrived`]), does what must happen while
/// the tasks run (kill a rank, cancel, read the state), then opens it.
/// Keys are unique per gate, so tests running at once never share one.
#[derive(Debug)]
pub(crate) struct Gate {
    key: u64,
}

#[derive(Default)]
struct GateState {
    /// The ranks the arrivals came from, in order.
    arrived: Vec<u32>,
    open: bool,
}

static GATES: Mutex<Option<HashMap<u64, GateState>>> = Mutex::new(None);
static GATES_MOVED: Condvar = Condvar::new();

fn with_gates<R>(f: impl FnOnce(&mut HashMap<u64, GateState>) -> R) -> R {
    let mut g = GATES.lock().unwrap_or_else(|e| e.into_inner());
    let r = f(g.get_or_insert_with(HashMap::new));
    GATES_MOVED.notify_all();
    r
}

/// Waits (at most [`BOUND`]) until `cond` holds for the gate `key`.
fn wait_gate(key: u64, what: &str, mut cond: impl FnMut(&GateState) -> bool) {
    let deadline = Instant::now() + BOUND;
    let mut g = GATES.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let gates = g.get_or_insert_with(HashMap::new);
        if cond(gates.entry(key).or_default()) {
            return;
        }
        let now = Instant::now();
        assert!(now < deadline, "gave up after {BOUND:?} waiting for {what}");
        g = GATES_MOVED
            .wait_timeout(g, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

impl Gate {
    /// A new, closed gate.
    pub(crate) fn new() -> Gate {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let key = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        with_gates(|g| g.insert(key, GateState::default()));
        Gate { key }
    }

    /// The key tasks pass to [`Gate::pass`].
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// In a task: says it arrived on `rank`, then waits until the gate is
    /// open (a gate never opened fails the task after [`BOUND`]).
    pub(crate) fn pass(key: u64, rank: u32) {
        Gate::arrive(key, rank);
        wait_gate(key, &format!("gate {key} to open"), |s| s.open);
    }

    /// In a task: says it arrived on `rank`, and goes on.
    pub(crate) fn arrive(key: u64, rank: u32) {
        with_gates(|g| g.entry(key).or_default().arrived.push(rank));
    }

    /// In a task: arrives, then waits (at most [`BOUND`]) until `n` have
    /// arrived in all: a rendezvous that only tasks running at the same time
    /// can pass (one that waits alone fails naming the gate).
    pub(crate) fn meet(key: u64, rank: u32, n: usize) {
        Gate::arrive(key, rank);
        wait_gate(key, &format!("{n} to meet at gate {key}"), |s| {
            s.arrived.len() >= n
        });
    }

    /// In the test: waits until `n` tasks have arrived; panics naming `what`.
    pub(crate) fn wait_arrived(&self, n: usize, what: &str) {
        wait_gate(self.key, what, |s| s.arrived.len() >= n);
    }

    /// In the test: waits until a task has arrived on `rank`.
    pub(crate) fn wait_arrived_on(&self, rank: u32, what: &str) {
        wait_gate(self.key, what, |s| s.arrived.contains(&rank));
    }

    /// The ranks arrivals came from so far, in order.
    pub(crate) fn arrivals(&self) -> Vec<u32> {
        with_gates(|g| g.entry(self.key).or_default().arrived.clone())
    }

    /// Lets every task waiting at the gate, and every later one, through.
    pub(crate) fn open(&self) {
        with_gates(|g| g.entry(self.key).or_default().open = true);
    }
}

impl Drop for Gate {
    /// Opens the gate, so no task stays behind a test that failed (the
    /// entry stays: a task resent after a rank's loss may pass it later).
    fn drop(&mut self) {
        self.open();
    }
}

/// One rank of a job started by `mpirun` (the harness-less MPI tests): the
/// runtime on rank 0; every other rank serves until rank 0 ends the job,
/// and gets the exit code to end with (`Err`). `who` names the program in
/// messages.
pub(crate) fn start_mpi_rank(who: &str) -> Result<Runtime, std::process::ExitCode> {
    use std::process::ExitCode;
    let rt = match ferry::Config::from_env().and_then(ferry::init) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{who}: could not start: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    if rt.rank() == 0 {
        return Ok(rt);
    }
    Err(match rt.serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{who}: rank {}: {e}", rt.rank());
            ExitCode::FAILURE
        }
    })
}
