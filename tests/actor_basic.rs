//! Actors: call ordering, persistent state, parallelism between actors,
//! handles passed into and returned from tasks, and ref arguments.

mod common;
use common::{Gate, start};

use std::sync::atomic::{AtomicUsize, Ordering};

use ferry::{ActorHandle, ObjectRef, Runtime};

/// A counter.
#[ferry::actor]
struct Counter {
    value: u64,
}

#[ferry::actor]
impl Counter {
    fn new(start: u64) -> Self {
        Counter { value: start }
    }

    fn increment(&mut self) -> u64 {
        self.value += 1;
        self.value
    }

    fn add(&mut self, x: u64) -> u64 {
        self.value += x;
        self.value
    }

    fn add_all(&mut self, xs: Vec<u64>) -> u64 {
        self.value += xs.iter().sum::<u64>();
        self.value
    }

    fn get(&self) -> u64 {
        self.value
    }
}

/// Counts how many of its calls are running at the same moment, across actors.
static IN_CALL: AtomicUsize = AtomicUsize::new(0);
static MAX_IN_CALL: AtomicUsize = AtomicUsize::new(0);

/// An actor whose calls sleep.
#[ferry::actor]
struct Sleeper {
    calls: u32,
}

#[ferry::actor]
impl Sleeper {
    fn new() -> Self {
        Sleeper { calls: 0 }
    }

    /// Meets one other call at gate `key` (when there is one), counting
    /// the calls running at once.
    fn nap(&mut self, key: Option<u64>) -> u32 {
        let now = IN_CALL.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_IN_CALL.fetch_max(now, Ordering::SeqCst);
        if let Some(key) = key {
            Gate::meet(key, 0, 2);
        }
        IN_CALL.fetch_sub(1, Ordering::SeqCst);
        self.calls += 1;
        self.calls
    }
}

#[ferry::remote]
fn bump_in_task(c: ActorHandle<Counter>, times: u64) -> ferry::Result<u64> {
    let rt = ferry::current()?;
    let mut last = 0;
    for _ in 0..times {
        last = rt.get(&c.increment().remote()?)?.to_native();
    }
    Ok(last)
}

#[ferry::remote]
fn make_counter(rt: &Runtime, start: u64) -> ferry::Result<ActorHandle<Counter>> {
    let c = Counter::remote(rt, start)?;
    c.increment().remote()?;
    Ok(c)
}

/// 10, once gate `key` opens.
#[ferry::remote]
fn ten_after(key: u64) -> u64 {
    Gate::pass(key, 0);
    10
}

#[test]
fn calls_from_one_caller_run_in_order() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Counter::remote(&rt, 0)?;
    let refs: Vec<ObjectRef<u64>> = (0..100)
        .map(|_| c.increment().remote())
        .collect::<ferry::Result<_>>()?;
    let got: Vec<u64> = rt.get_all(&refs)?.iter().map(|v| v.to_native()).collect();
    assert_eq!(got, (1..=100).collect::<Vec<u64>>());
    rt.shutdown()
}

#[test]
fn actor_state_persists_between_calls() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Counter::remote(&rt, 10)?;
    assert_eq!(*rt.get(&c.add(5).remote()?)?, 15);
    assert_eq!(*rt.get(&c.get().remote()?)?, 15);
    assert_eq!(*rt.get(&c.add_all(vec![1, 2, 3]).remote()?)?, 21);
    // A clone of the handle reaches the same actor.
    let c2 = c.clone();
    assert_eq!(c2.id(), c.id());
    assert_eq!(*rt.get(&c2.increment().remote()?)?, 22);
    assert_eq!(*rt.get(&c.get().remote()?)?, 22);
    // Two actors have separate state.
    let other = Counter::remote(&rt, 0)?;
    assert_ne!(other.id(), c.id());
    assert_eq!(*rt.get(&other.get().remote()?)?, 0);
    assert!(c.is_alive() && other.is_alive());
    rt.shutdown()
}

#[test]
fn two_actors_run_in_parallel() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let a = Sleeper::remote(&rt)?;
    let b = Sleeper::remote(&rt)?;
    rt.get(&a.nap(None).remote()?)?;
    rt.get(&b.nap(None).remote()?)?;
    // In each round a call of `a` and one of `b` meet at a gate: they can
    // only pass it running at the same time (run one after the other, the
    // first would wait alone and fail).
    let gates: Vec<Gate> = (0..4).map(|_| Gate::new()).collect();
    let mut refs = Vec::new();
    for g in &gates {
        refs.push(a.nap(Some(g.key())).remote()?);
        refs.push(b.nap(Some(g.key())).remote()?);
    }
    let done: Vec<u32> = rt.get_all(&refs)?.iter().map(|v| v.to_native()).collect();
    assert_eq!(done, vec![2, 2, 3, 3, 4, 4, 5, 5]);
    assert!(
        MAX_IN_CALL.load(Ordering::SeqCst) >= 2,
        "the two actors never ran a call at the same time"
    );
    rt.shutdown()
}

#[test]
fn handles_can_be_passed_into_tasks() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Counter::remote(&rt, 0)?;
    let t1 = bump_in_task::remote(&rt, c.clone(), 5)?;
    assert_eq!(*rt.get(&t1)?, 5);
    // Through the store too: a handle put as an object and passed by ref.
    let stored = rt.put(&c)?;
    let t2 = bump_in_task::remote(&rt, &stored, 3)?;
    assert_eq!(*rt.get(&t2)?, 8);
    assert_eq!(*rt.get(&c.get().remote()?)?, 8);
    rt.shutdown()
}

#[test]
fn a_task_can_return_an_actor_handle() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = make_counter::remote(&rt, 40)?;
    let c: ActorHandle<Counter> = rt.get(&r)?.to_handle()?;
    assert_eq!(*rt.get(&c.increment().remote()?)?, 42);
    // The handle outlives the object it came in.
    drop(r);
    assert_eq!(*rt.get(&c.increment().remote()?)?, 43);
    assert!(c.is_alive());
    rt.shutdown()
}

#[test]
fn method_ref_arguments_are_resolved() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Counter::remote(&rt, 1)?;
    let p = rt.put(&4u64)?;
    assert_eq!(*rt.get(&c.add(&p).remote()?)?, 5);
    // A ref from a task that is still running (until both calls are made).
    let gate = Gate::new();
    let slow = ten_after::remote(&rt, gate.key())?;
    gate.wait_arrived(1, "the task making the argument to be running");
    let r = c.add(slow).remote()?;
    let after = c.get().remote()?;
    gate.open();
    assert_eq!(*rt.get(&r)?, 15);
    assert_eq!(*rt.get(&after)?, 15, "a later call ran before the ref arg");
    let list = rt.put(&vec![1u64, 2])?;
    assert_eq!(*rt.get(&c.add_all(&list).remote()?)?, 18);
    rt.shutdown()
}

#[test]
fn many_callers_reach_one_actor() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Counter::remote(&rt, 0)?;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            let rt = rt.clone();
            std::thread::spawn(move || -> ferry::Result<Vec<u64>> {
                let refs: Vec<_> = (0..50)
                    .map(|_| c.increment().remote())
                    .collect::<ferry::Result<_>>()?;
                Ok(rt.get_all(&refs)?.iter().map(|v| v.to_native()).collect())
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        let got = t.join().expect("caller thread panicked")?;
        // Each caller's own calls run in its order.
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        all.extend(got);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<u64>>());
    assert_eq!(*rt.get(&c.get().remote()?)?, 200);
    rt.shutdown()
}

#[test]
fn on_rank_past_the_job_is_an_error_even_on_one_rank() -> ferry::Result<()> {
    let rt = start(1.0)?;
    match Counter::options().on_rank(1).remote(&rt, 0) {
        Err(ferry::Error::InvalidArgument(m)) => assert!(m.contains("on_rank(1)"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let here = Counter::options().on_rank(0).remote(&rt, 5)?;
    assert_eq!(here.actor_rank(), 0);
    assert_eq!(*rt.get(&here.increment().remote()?)?, 6);
    rt.shutdown()
}
