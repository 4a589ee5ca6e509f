//! Threaded actors (Ray's `max_concurrency` on a sync actor): `&self`
//! calls run at once on the actor's threads, `&mut self` calls alone and in
//! order, a class that is not `Sync` is refused, a panic fails its call.

mod common;
use common::{Gate, start};

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry::{Error, FailureKind};

/// A log whose `&self` methods may run at once.
#[ferry::actor]
struct Log {
    /// The threads that ran `meet`.
    threads: Mutex<HashSet<String>>,
    /// `&self` calls running now.
    running: AtomicUsize,
    entries: Vec<u64>,
}

#[ferry::actor]
impl Log {
    fn new() -> Self {
        Log {
            threads: Mutex::new(HashSet::new()),
            running: AtomicUsize::new(0),
            entries: Vec::new(),
        }
    }

    /// Meets `n - 1` other calls at gate `key`: passes only when `n` calls
    /// run at the same time (a call that waits alone fails).
    fn meet(&self, key: u64, n: u64) -> u64 {
        self.running.fetch_add(1, Ordering::SeqCst);
        let name = std::thread::current().name().unwrap_or("?").to_string();
        self.threads.lock().unwrap().insert(name);
        Gate::meet(key, 0, n as usize);
        self.running.fetch_sub(1, Ordering::SeqCst);
        n
    }

    /// Waits at gate `key` until the test opens it.
    fn hold(&self, key: u64) -> u64 {
        self.running.fetch_add(1, Ordering::SeqCst);
        Gate::pass(key, 0);
        self.running.fetch_sub(1, Ordering::SeqCst);
        0
    }

    /// Appends `x`; what was running beside it (always 0: it runs alone).
    fn push(&mut self, x: u64) -> u64 {
        self.entries.push(x);
        self.running.load(Ordering::SeqCst) as u64
    }

    fn entries(&self) -> Vec<u64> {
        self.entries.clone()
    }

    fn threads(&self) -> u64 {
        self.threads.lock().unwrap().len() as u64
    }

    fn boom(&self) -> u64 {
        panic!("boom in a shared call")
    }
}

/// Not `Sync` (a `Cell`): its calls cannot run on several threads.
#[ferry::actor]
struct Tally {
    n: Cell<u64>,
}

#[ferry::actor]
impl Tally {
    fn new() -> Self {
        Tally { n: Cell::new(0) }
    }

    fn bump(&self) -> u64 {
        self.n.set(self.n.get() + 1);
        self.n.get()
    }
}

#[test]
fn n_shared_calls_run_at_once_on_n_threads() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let log = Log::options().max_concurrency(4).remote(&rt)?;
    let gate = Gate::new();
    let refs: Vec<_> = (0..4)
        .map(|_| log.meet(gate.key(), 4).remote())
        .collect::<ferry::Result<_>>()?;
    for r in &refs {
        assert_eq!(*rt.get(r)?, 4, "4 calls met: they ran at the same time");
    }
    assert_eq!(*rt.get(&log.threads().remote()?)?, 4);
    rt.shutdown()
}

#[test]
fn a_mut_call_waits_for_the_shared_calls_and_runs_alone_in_order() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let log = Log::options().max_concurrency(3).remote(&rt)?;
    let gate = Gate::new();
    let held = log.hold(gate.key()).remote()?;
    gate.wait_arrived(1, "the shared call to run");
    let pushed = log.push(1).remote()?;
    // Behind it in the mailbox: a shared call that does not start before it.
    let after = log.entries().remote()?;
    let (ready, _) = rt.wait(vec![pushed.clone()], 1, Some(Duration::from_millis(300)))?;
    assert!(ready.is_empty(), "a &mut self call ran beside a &self call");
    gate.open();
    assert_eq!(*rt.get(&held)?, 0);
    assert_eq!(
        *rt.get(&pushed)?,
        0,
        "nothing ran beside the &mut self call"
    );
    assert_eq!(rt.get(&after)?.as_slice(), &[1]);
    let refs: Vec<_> = (2..50)
        .map(|i| log.push(i).remote())
        .collect::<ferry::Result<_>>()?;
    for r in &refs {
        assert_eq!(*rt.get(r)?, 0);
    }
    let all: Vec<u64> = (1..50).collect();
    assert_eq!(rt.get(&log.entries().remote()?)?.as_slice(), all.as_slice());
    rt.shutdown()
}

#[test]
fn a_class_that_is_not_sync_is_refused_with_a_typed_error() -> ferry::Result<()> {
    let rt = start(1.0)?;
    match Tally::options().max_concurrency(2).remote(&rt) {
        Err(Error::NotSync { class }) => assert_eq!(class, "Tally"),
        other => panic!("expected NotSync, got {other:?}"),
    }
    // One at a time it is fine.
    let t = Tally::options().max_concurrency(1).remote(&rt)?;
    assert_eq!(*rt.get(&t.bump().remote()?)?, 1);
    rt.shutdown()
}

#[test]
fn a_panic_in_a_shared_call_fails_it_and_restarts_the_actor() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let log = Log::options()
        .max_concurrency(2)
        .max_restarts(1)
        .remote(&rt)?;
    rt.get(&log.push(5).remote()?)?;
    match rt.get(&log.boom().remote()?) {
        Err(Error::Task(e)) => {
            assert_eq!(e.kind, FailureKind::Panic);
            assert!(e.message.contains("boom in a shared call"), "{e}");
        }
        other => panic!("expected the panic, got {:?}", other.map(|v| *v)),
    }
    // Restarted: the constructor ran again.
    assert!(rt.get(&log.entries().remote()?)?.is_empty());
    match rt.get(&log.boom().remote()?) {
        Err(Error::Task(e)) => assert_eq!(e.kind, FailureKind::Panic),
        other => panic!("expected the panic, got {:?}", other.map(|v| *v)),
    }
    match rt.get(&log.entries().remote()?) {
        Err(Error::ActorDied { .. }) => {}
        other => panic!(
            "no restarts left: expected ActorDied, got {:?}",
            other.is_ok()
        ),
    }
    rt.shutdown()
}
