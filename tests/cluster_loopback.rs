//! Several ranks in one process over the loopback transport: what only
//! loopback can show (a rank that dies, every rank's store seen from the
//! test) and a few placement cases. The scenarios that need only the
//! driver's runtime are in the multi-rank suite (`tests/multirank`), run
//! over loopback and under real `mpirun`.
//!
//! Tasks that must be running when something happens (a rank is killed, a
//! CPU must stay taken) wait at a gate (`common::Gate`) that the test opens
//! once it is done: they run as long as the test needs, however slowly the
//! machine goes.

mod common;
use common::{Gate, wait_until};

use ferry::{Config, Error, FailureKind, Runtime};

fn here() -> u32 {
    ferry::current().map(|rt| rt.rank()).unwrap_or(u32::MAX)
}

#[ferry::remote]
fn rank_of() -> u32 {
    here()
}

/// Waits at gate `key` (saying where it runs); where it ran.
#[ferry::remote]
fn held(key: u64) -> u32 {
    Gate::pass(key, here());
    here()
}

#[ferry::remote]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn cfg() -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(64 << 20)
}

#[test]
fn resources_add_up_over_ranks() -> ferry::Result<()> {
    let (size, cluster, own) = ferry::loopback::run(3, cfg().resource("TPU", 1.0), |rt, _| {
        (rt.world_size(), rt.cluster_resources(), rt.rank_resources())
    })?;
    assert_eq!(size, 3);
    assert_eq!(cluster["CPU"], 3.0);
    assert_eq!(cluster["TPU"], 3.0);
    assert_eq!(own["CPU"], 1.0);
    Ok(())
}

/// How many numbers `x` holds, and where that was counted.
#[ferry::remote]
fn count_where(x: ferry::View<Vec<u64>>) -> (u64, u32) {
    (x.len() as u64, here())
}

/// Waits until rank 0 knows the size of `id` (the owner's answer to its
/// borrow says where the object lies and how large it is).
fn wait_size_known(rt: &Runtime, id: ferry::ObjectId) {
    let id = id.to_string();
    wait_until(&format!("rank 0 to learn the size of {id}"), || {
        rt.state().ranks[0]
            .objects
            .iter()
            .any(|o| o.id == id && o.size.is_some())
    });
}

#[test]
fn tasks_with_ref_arguments_run_next_to_their_data() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, _| -> ferry::Result<()> {
        let n = 1u64 << 17; // 1 MiB, owned by rank 1
        let made = make_big::options().on_rank(1).remote(&rt, n)?;
        let big = rt.get(&made)?[0].to_ref()?;
        wait_size_known(&rt, big.id());
        // Rank 0 has its CPU free, but the megabyte is on rank 1: run there.
        let r = count_where::remote(&rt, &big)?;
        assert_eq!(rt.get_value(&r)?, (n, 1), "ran next to its data");
        // With rank 1's CPU taken, the task does not wait for it: it runs
        // here and reads the megabyte from there.
        let gate = Gate::new();
        let hold = held::options().on_rank(1).remote(&rt, gate.key())?;
        gate.wait_arrived_on(1, "the task taking rank 1's CPU to start");
        let r = count_where::remote(&rt, &big)?;
        assert_eq!(rt.get_value(&r)?, (n, 0), "ran on the rank with a free CPU");
        gate.open();
        assert_eq!(rt.get_value(&hold)?, 1);
        // A small argument does not pull its task away from a free CPU.
        let small = rt.get(&make_small::options().on_rank(1).remote(&rt)?)?[0].to_ref()?;
        wait_size_known(&rt, small.id());
        let r = add::remote(&rt, &small, 2)?;
        assert_eq!(*rt.get(&r)?, 42);
        assert_eq!(rt.get_value(&rank_of_with::remote(&rt, &small)?)?, 0);
        Ok(())
    })?
}

/// A small object made (and owned) where this runs.
#[ferry::remote]
fn make_small(rt: &Runtime) -> ferry::Result<Vec<ferry::ObjectRef<u64>>> {
    Ok(vec![rt.put(&40u64)?])
}

/// Where a task with `_x` as argument ran.
#[ferry::remote]
fn rank_of_with(_x: u64) -> u32 {
    here()
}

#[test]
fn a_lost_rank_s_tasks_are_retried_elsewhere() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        let gate = Gate::new();
        let refs: Vec<_> = (0..6)
            .map(|_| held::remote(&rt, gate.key()))
            .collect::<ferry::Result<_>>()?;
        // Rank 0 runs one, ranks 1 and 2 one each, the rest wait on rank 0.
        gate.wait_arrived_on(2, "a task to be running on rank 2");
        world.kill(2, "killed by the test")?;
        // The task on rank 2 may end now: its result is never heard.
        gate.open();
        let ranks: Vec<u32> = refs
            .iter()
            .map(|r| rt.get_value(r))
            .collect::<ferry::Result<_>>()?;
        assert_eq!(ranks.len(), 6);
        assert!(!ranks.contains(&2), "rank 2's work was redone: {ranks:?}");
        assert!(ranks.contains(&1), "rank 1 got work too: {ranks:?}");
        let after = rank_of::remote(&rt)?;
        assert_ne!(rt.get_value(&after)?, 2);
        Ok(())
    })?
}

/// Where a task that reads `_x` (a top-level ref) ran.
#[ferry::remote]
fn rank_after(_x: ferry::View<u32>) -> u32 {
    here()
}

#[test]
fn tasks_held_back_for_a_lost_rank_run_elsewhere() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        let gate = Gate::new();
        // Made on rank 0 once the gate opens; until then every task below
        // waits for it, and only so many go ahead to rank 1: the rest are
        // held back by rank 0.
        let first = held::options().on_rank(0).remote(&rt, gate.key())?;
        gate.wait_arrived_on(0, "the gate's task to start on rank 0");
        let refs: Vec<_> = (0..100)
            .map(|_| rank_after::options().on_rank(1).remote(&rt, &first))
            .collect::<ferry::Result<_>>()?;
        let held_back = |rt: &Runtime| {
            rt.state()
                .ranks
                .iter()
                .find(|r| r.rank == 0)
                .map_or(0, |r| r.tasks_held_back)
        };
        assert!(held_back(&rt) > 0, "no task was held back");
        world.kill(1, "killed by the test")?;
        wait_until("rank 0 to hear that rank 1 is lost", || {
            rt.state().lost.contains(&1)
        });
        gate.open();
        // Those sent ahead and those held back alike run elsewhere, once.
        let ranks: Vec<u32> = refs
            .iter()
            .map(|r| rt.get_value(r))
            .collect::<ferry::Result<_>>()?;
        assert_eq!(ranks.len(), 100);
        assert!(
            !ranks.contains(&1),
            "a task ran on the lost rank: {ranks:?}"
        );
        Ok(())
    })?
}

#[test]
fn without_retries_a_lost_rank_is_a_system_error() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, world| -> ferry::Result<()> {
        let gate = Gate::new();
        // Rank 0's CPU is taken, so the next task goes to rank 1.
        let hold = held::remote(&rt, gate.key())?;
        gate.wait_arrived_on(0, "the task taking rank 0's CPU to start");
        let r = held::options().max_retries(0).remote(&rt, gate.key())?;
        gate.wait_arrived_on(1, "the task to be running on rank 1");
        world.kill(1, "killed by the test")?;
        // Its failure does not wait for any task to end.
        match rt.get(&r) {
            Err(Error::Task(t)) => {
                assert_eq!((t.kind, t.rank), (FailureKind::System, 1), "{t:?}");
                assert_eq!(t.attempts, 1, "not retried: {t:?}");
                assert!(t.message.contains("rank 1"), "{}", t.message);
            }
            other => panic!("expected a system error naming rank 1, got {other:?}"),
        }
        gate.open();
        assert_eq!(rt.get_value(&hold)?, 0);
        Ok(())
    })?
}

/// A counter actor.
#[ferry::actor]
struct Tally {
    n: u64,
}

#[ferry::actor]
impl Tally {
    fn new() -> Self {
        Tally { n: 0 }
    }

    fn add(&mut self, k: u64) -> u64 {
        self.n += k;
        self.n
    }
}

/// Adds 1 through the handle it was given: (the total, where it ran).
#[ferry::remote]
fn bump(rt: &ferry::Runtime, t: ferry::ActorHandle<Tally>) -> ferry::Result<(u64, u32)> {
    Ok((rt.get_value(&t.add(1).remote()?)?, rt.rank()))
}

#[test]
fn tasks_holding_actor_handles_reach_the_actor_from_any_rank() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, _| -> ferry::Result<()> {
        let t = Tally::options().on_rank(1).remote(&rt)?;
        // From the actor's rank, from the driver's, and from a third one.
        let on = [0, 1, 2, 0, 1, 2];
        let mut got = Vec::new();
        for rank in on {
            let r = bump::options().on_rank(rank).remote(&rt, t.clone())?;
            got.push(rt.get_value(&r)?);
        }
        let want: Vec<(u64, u32)> = on.iter().zip(1..).map(|(r, n)| (n, *r)).collect();
        assert_eq!(got, want, "(the total each saw, where it ran)");
        Ok(())
    })?
}

#[ferry::remote]
fn make_big(rt: &ferry::Runtime, n: u64) -> ferry::Result<Vec<ferry::ObjectRef<Vec<u64>>>> {
    Ok(vec![rt.put_vec_with::<u64>(n as usize, |xs| {
        for (i, x) in xs.iter_mut().enumerate() {
            *x = i as u64;
        }
    })?])
}

/// Gets an 8 MiB object owned by rank 1 on rank 0; returns how much rank
/// 0's store grew while it held the view (negative: it shrank).
fn neighbour_get_growth(force_rma: bool) -> ferry::Result<i64> {
    ferry::loopback::run(
        2,
        cfg().force_rma(force_rma),
        |rt, _| -> ferry::Result<i64> {
            let n = 1u64 << 20;
            let made = make_big::options().on_rank(1).remote(&rt, n)?;
            let r = rt.get(&made)?[0].to_ref()?;
            let before = rt.store_used();
            let v = rt.get(&r)?;
            assert_eq!(v.as_slice().len() as u64, n);
            assert!(v.as_slice().iter().enumerate().all(|(i, x)| *x == i as u64));
            Ok(rt.store_used() as i64 - before as i64)
        },
    )?
}

#[test]
fn a_same_node_neighbour_s_object_is_read_in_place() -> ferry::Result<()> {
    assert_eq!(
        neighbour_get_growth(false)?,
        0,
        "zero copy: nothing stored here"
    );
    Ok(())
}

#[test]
fn forcing_rma_copies_the_object_here() -> ferry::Result<()> {
    let grown = neighbour_get_growth(true)?;
    assert!(
        grown >= 8 << 20,
        "one copy in this rank's store: it grew by {grown} bytes"
    );
    Ok(())
}

#[test]
fn a_panicking_body_still_stops_every_rank_and_removes_their_files() {
    let paths = std::sync::Mutex::new(Vec::new());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ferry::loopback::run(3, cfg(), |_rt, world| {
            for r in 0..3 {
                let rt = world.runtime(r).expect("rank is up");
                paths.lock().unwrap().push(rt.store_path().to_path_buf());
            }
            panic!("a failed assertion in a test");
        })
    }));
    let payload = outcome.expect_err("the panic comes back out of run");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"a failed assertion in a test"),
        "the body's own panic, not another"
    );
    let paths = paths.into_inner().unwrap();
    assert_eq!(paths.len(), 3);
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

/// Holds its argument until gate `key` opens.
#[ferry::remote]
fn hold_for(x: ferry::View<Vec<u64>>, key: u64) -> u64 {
    Gate::pass(key, here());
    x.len() as u64
}

#[test]
fn a_lost_rank_s_borrows_end_with_it() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, world| -> ferry::Result<()> {
        let base = rt.store_used();
        let data = rt.put(&vec![7u64; 1 << 17])?; // 1 MiB, owned by rank 0
        // Rank 1 borrows it for a task that outlives the rank.
        let gate = Gate::new();
        let r = hold_for::options()
            .on_rank(1)
            .max_retries(0)
            .remote(&rt, &data, gate.key())?;
        gate.wait_arrived_on(1, "rank 1's task to be running with its borrow");
        world.kill(1, "killed by the test")?;
        match rt.get(&r) {
            Err(Error::Task(t)) => assert_eq!(t.kind, FailureKind::System, "{t:?}"),
            other => panic!("expected the task to die with its rank, got {other:?}"),
        }
        drop(r);
        drop(data);
        // Rank 1 never says it is done with the object: its loss ends the borrow.
        wait_until("rank 0 to free the object the lost rank borrowed", || {
            rt.store_used() <= base
        });
        gate.open();
        Ok(())
    })?
}

#[test]
fn a_panicking_body_after_a_rank_is_lost_still_removes_every_file() {
    let paths = std::sync::Mutex::new(Vec::new());
    let retried = std::sync::Mutex::new(None);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ferry::loopback::run(3, cfg(), |rt, world| {
            for r in 0..3 {
                let rt = world.runtime(r).expect("rank is up");
                paths.lock().unwrap().push(rt.store_path().to_path_buf());
            }
            let gate = Gate::new();
            let on_2 = held::options().on_rank(2).remote(&rt, gate.key()).unwrap();
            gate.wait_arrived_on(2, "the task to be running on rank 2");
            world.kill(2, "killed by the test").unwrap();
            // Its retry elsewhere passes at once.
            gate.open();
            *retried.lock().unwrap() = Some(rt.get_value(&on_2));
            panic!("a failed assertion after the loss");
        })
    }));
    let payload = outcome.expect_err("the panic comes back out of run");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"a failed assertion after the loss"),
        "the body's own panic, not another"
    );
    let retried = retried.into_inner().unwrap();
    assert!(
        matches!(retried, Some(Ok(r)) if r != 2),
        "the lost rank's task ran again on a live rank: {retried:?}"
    );
    let paths = paths.into_inner().unwrap();
    assert_eq!(paths.len(), 3);
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}
