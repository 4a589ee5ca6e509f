//! Actors across ranks over the loopback transport: created on another
//! rank by resources or `on_rank`, called from any rank in order, handles
//! passed between ranks in arguments and results, kept alive while any rank
//! holds one, killed, restarted, and lost with their rank.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry::{ActorHandle, Config, Error, ObjectRef, Runtime};

mod common;
use common::eventually;

fn cfg() -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(64 << 20)
}

fn here() -> u32 {
    ferry::current().map_or(u32::MAX, |rt| rt.rank())
}

/// Counts `Ledger`s dropped (ranks are threads of this process).
static LEDGERS_DROPPED: AtomicUsize = AtomicUsize::new(0);

#[ferry::actor]
struct Ledger {
    entries: Vec<u64>,
}

#[ferry::actor]
impl Ledger {
    fn new(first: u64) -> Self {
        Ledger {
            entries: vec![first],
        }
    }

    fn push(&mut self, x: u64) -> Vec<u64> {
        self.entries.push(x);
        self.entries.clone()
    }

    fn rank(&self) -> u32 {
        here()
    }

    fn total(&self) -> u64 {
        self.entries.iter().sum()
    }

    fn explode(&mut self, why: String) -> u64 {
        self.entries.clear();
        panic!("{why}")
    }

    fn refuse(&self) -> Result<u64, String> {
        Err("refused".into())
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        LEDGERS_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn an_actor_on_another_rank_runs_calls_in_order() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, _| -> ferry::Result<()> {
        let a = Ledger::options().on_rank(2).remote(&rt, 7)?;
        assert_eq!(a.actor_rank(), 2);
        assert_eq!(rt.get_value(&a.rank().remote()?)?, 2);
        let refs: Vec<ObjectRef<Vec<u64>>> = (0..200)
            .map(|i| a.push(i).remote())
            .collect::<ferry::Result<_>>()?;
        // Every call saw exactly the calls made before it.
        for (i, r) in refs.iter().enumerate() {
            let seen = rt.get_value(r)?;
            assert_eq!(seen.len(), i + 2);
            assert_eq!(seen[0], 7);
            assert_eq!(seen.last().copied(), Some(i as u64));
        }
        assert_eq!(*rt.get(&a.total().remote()?)?, 7 + (0..200u64).sum::<u64>());
        Ok(())
    })?
}

#[test]
fn actors_go_where_their_resources_are_free() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, _| -> ferry::Result<()> {
        let actors: Vec<ActorHandle<Ledger>> = (0..3)
            .map(|i| Ledger::options().num_cpus(1.0).remote(&rt, i))
            .collect::<ferry::Result<_>>()?;
        let mut ranks: Vec<u32> = actors
            .iter()
            .map(|a| rt.get_value(&a.rank().remote()?))
            .collect::<ferry::Result<_>>()?;
        ranks.sort_unstable();
        assert_eq!(ranks, vec![0, 1, 2], "one actor per rank's CPU");
        let handles: Vec<u32> = actors.iter().map(|a| a.actor_rank()).collect();
        let mut sorted = handles.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2], "handles know where: {handles:?}");
        // An actor no rank could hold fails at once, naming the resource.
        match Ledger::options().resource("TPU", 1.0).remote(&rt, 0) {
            Err(Error::Infeasible { resource, .. }) => assert_eq!(resource, "TPU"),
            other => panic!("expected Infeasible, got {other:?}"),
        }
        Ok(())
    })?
}

#[ferry::remote]
fn make_refs_here(rt: &Runtime, n: u64) -> ferry::Result<(Vec<ObjectRef<u64>>, u32)> {
    let refs = (0..n)
        .map(|i| rt.put(&(i * 3)))
        .collect::<ferry::Result<_>>()?;
    Ok((refs, rt.rank()))
}

#[ferry::actor]
struct Summer {
    sum: u64,
}

#[ferry::actor]
impl Summer {
    fn new() -> Self {
        Summer { sum: 0 }
    }

    fn add(&mut self, x: u64) -> (u64, u32) {
        self.sum += x;
        (self.sum, here())
    }
}

/// On some rank: calls `s` (an actor elsewhere) with `x` (a ref owned by a
/// third rank) and says where it ran.
#[ferry::remote]
fn call_with_ref(
    rt: &Runtime,
    s: ActorHandle<Summer>,
    x: Vec<ObjectRef<u64>>,
) -> ferry::Result<(u64, u32, u32)> {
    let mut last = (0, u32::MAX);
    for r in &x {
        last = rt.get_value(&s.add(r).remote()?)?;
    }
    Ok((last.0, last.1, rt.rank()))
}

#[test]
fn a_task_on_rank_3_calls_an_actor_on_rank_1_with_a_ref_owned_by_rank_2() -> ferry::Result<()> {
    ferry::loopback::run(4, cfg(), |rt, _| -> ferry::Result<()> {
        let s = Summer::options().on_rank(1).remote(&rt)?;
        let made = make_refs_here::options().on_rank(2).remote(&rt, 10)?;
        let (refs, owner) = rt.get_value(&made)?;
        assert_eq!(owner, 2);
        assert!(refs.iter().all(|r| r.id().rank() == 2));
        let out = call_with_ref::options()
            .on_rank(3)
            .remote(&rt, s.clone(), refs)?;
        let (sum, actor_rank, task_rank) = rt.get_value(&out)?;
        assert_eq!(sum, (0..10u64).map(|i| i * 3).sum::<u64>());
        assert_eq!(actor_rank, 1);
        assert_eq!(task_rank, 3);
        // Rank 0's handle still works after rank 3 let go of its own.
        assert_eq!(rt.get_value(&s.add(1).remote()?)?.0, sum + 1);
        Ok(())
    })?
}

/// Creates a `Ledger` on the rank it runs on and returns the handle.
#[ferry::remote]
fn make_ledger(rt: &Runtime, first: u64) -> ferry::Result<ActorHandle<Ledger>> {
    Ledger::remote(rt, first)
}

#[test]
fn a_handle_returned_from_another_rank_reaches_its_actor() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, _| -> ferry::Result<()> {
        let made = make_ledger::options().on_rank(2).remote(&rt, 5)?;
        let a: ActorHandle<Ledger> = rt.get_value(&made)?;
        drop(made); // rank 0's handle alone keeps the actor now
        assert_eq!(a.actor_rank(), 2);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(rt.get_value(&a.push(6).remote()?)?, vec![5, 6]);
        assert_eq!(rt.get_value(&a.rank().remote()?)?, 2);
        Ok(())
    })?
}

#[test]
fn an_actor_stops_when_no_rank_holds_a_handle() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, _| -> ferry::Result<()> {
        let before = LEDGERS_DROPPED.load(Ordering::SeqCst);
        let a = Ledger::options().on_rank(1).remote(&rt, 1)?;
        // A copy inside an object on rank 0, and a call through a task on rank 2.
        let boxed = rt.put(&vec![a.clone()])?;
        #[ferry::remote]
        fn total_via(h: ActorHandle<Ledger>) -> ferry::Result<u64> {
            let rt = ferry::current()?;
            rt.get_value(&h.total().remote()?)
        }
        let t = total_via::options().on_rank(2).remote(&rt, a.clone())?;
        assert_eq!(rt.get_value(&t)?, 1);
        drop(a);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            LEDGERS_DROPPED.load(Ordering::SeqCst),
            before,
            "the handle inside the object keeps the actor"
        );
        let inner: Vec<ActorHandle<Ledger>> = rt.get_value(&boxed)?;
        assert_eq!(rt.get_value(&inner[0].push(2).remote()?)?, vec![1, 2]);
        drop(inner);
        drop(boxed);
        assert!(
            eventually(10, || LEDGERS_DROPPED.load(Ordering::SeqCst) > before),
            "the actor on rank 1 did not stop after every handle was dropped"
        );
        Ok(())
    })?
}

#[test]
fn killing_through_a_remote_handle_fails_later_calls() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, _| -> ferry::Result<()> {
        let a = Ledger::options().on_rank(1).remote(&rt, 1)?;
        assert_eq!(rt.get_value(&a.total().remote()?)?, 1);
        a.kill();
        assert!(!a.is_alive());
        match rt.get_value(&a.total().remote()?) {
            Err(Error::ActorDied { .. }) => {}
            other => panic!("expected ActorDied, got {other:?}"),
        }
        // A second handle on rank 0 to the same actor learns it from the host.
        #[ferry::remote]
        fn ask(h: ActorHandle<Ledger>) -> ferry::Result<String> {
            let rt = ferry::current()?;
            Ok(match rt.get_value(&h.total().remote()?) {
                Err(Error::ActorDied { .. }) => "died".to_string(),
                other => format!("{other:?}"),
            })
        }
        let r = ask::options().on_rank(0).remote(&rt, a.clone())?;
        assert_eq!(rt.get_value(&r)?, "died");
        Ok(())
    })?
}

#[test]
fn remote_actor_errors_and_restarts() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, _| -> ferry::Result<()> {
        let a = Ledger::options()
            .on_rank(1)
            .max_restarts(1)
            .remote(&rt, 10)?;
        assert_eq!(rt.get_value(&a.push(1).remote()?)?, vec![10, 1]);
        match rt.get_value(&a.refuse().remote()?) {
            Err(Error::Task(t)) => {
                assert_eq!(t.kind, ferry::FailureKind::Application);
                assert_eq!(t.rank, 1);
                assert!(t.message.contains("refused"), "{t:?}");
            }
            other => panic!("expected an application error, got {other:?}"),
        }
        match rt.get_value(&a.explode("boom".to_string()).remote()?) {
            Err(Error::Task(t)) => {
                assert_eq!(t.kind, ferry::FailureKind::Panic);
                assert!(t.message.contains("boom"), "{t:?}");
                assert!(t.task.contains("explode"), "{t:?}");
            }
            other => panic!("expected a panic error, got {other:?}"),
        }
        // Restarted: the constructor ran again on rank 1.
        assert_eq!(rt.get_value(&a.push(2).remote()?)?, vec![10, 2]);
        assert_eq!(rt.get_value(&a.rank().remote()?)?, 1);
        // Out of restarts: the actor dies and says why.
        let _ = rt.get_value(&a.explode("again".to_string()).remote()?);
        match rt.get_value(&a.total().remote()?) {
            Err(Error::ActorDied { reason, .. }) => assert!(reason.contains("again"), "{reason}"),
            other => panic!("expected ActorDied, got {other:?}"),
        }
        Ok(())
    })?
}

#[ferry::actor]
struct Sleeper;

#[ferry::actor]
impl Sleeper {
    fn new() -> Self {
        Sleeper
    }

    fn nap(&self, ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }
}

#[test]
fn calls_to_an_actor_on_a_lost_rank_fail_typed() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        let s = Sleeper::options().on_rank(2).remote(&rt)?;
        assert_eq!(rt.get_value(&s.nap(1).remote()?)?, 1);
        let pending = s.nap(2_000).remote()?;
        std::thread::sleep(Duration::from_millis(100));
        world.kill(2, "killed by the test")?;
        match rt.get_timeout(&pending, Duration::from_secs(10)) {
            Err(Error::ActorDied { reason, .. }) => assert!(reason.contains("2"), "{reason}"),
            other => panic!("expected ActorDied, got {:?}", other.map(|v| *v)),
        }
        assert!(!s.is_alive());
        match rt.get_value(&s.nap(1).remote()?) {
            Err(Error::ActorDied { .. }) => {}
            other => panic!("expected ActorDied, got {other:?}"),
        }
        Ok(())
    })?
}

/// An actor whose constructor takes a value that cannot be archived: it
/// works on its own rank, and says clearly why it cannot go to another.
struct Opaque(std::sync::Arc<AtomicUsize>);

impl Clone for Opaque {
    fn clone(&self) -> Self {
        Opaque(self.0.clone())
    }
}

#[ferry::actor]
struct Local {
    hits: std::sync::Arc<AtomicUsize>,
}

#[ferry::actor]
impl Local {
    fn new(o: Opaque) -> Self {
        Local { hits: o.0 }
    }

    fn hit(&self) -> usize {
        self.hits.fetch_add(1, Ordering::SeqCst) + 1
    }
}

#[test]
fn actors_with_unarchivable_arguments_stay_on_their_rank() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, _| -> ferry::Result<()> {
        let o = Opaque(Default::default());
        let here = Local::remote(&rt, o.clone())?;
        assert_eq!(rt.get_value(&here.hit().remote()?)?, 1);
        match Local::options().on_rank(1).remote(&rt, o) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("archivable"), "{m}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        Ok(())
    })?
}
