//! Several ranks in one process over the loopback transport: tasks placed
//! on other ranks, results moved back, resources of the whole cluster, a
//! rank that dies, and shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry::{Config, Error};

#[ferry::remote]
fn rank_of() -> u32 {
    ferry::current().map(|rt| rt.rank()).unwrap_or(u32::MAX)
}

#[ferry::remote]
fn busy_rank(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    ferry::current().map(|rt| rt.rank()).unwrap_or(u32::MAX)
}

/// Ranks that started a `slow_on` task (ranks are threads of this process).
static STARTED_ON: [AtomicBool; 3] = [const { AtomicBool::new(false) }; 3];

#[ferry::remote]
fn slow_on(ms: u64) -> u32 {
    let rank = ferry::current().map(|rt| rt.rank()).unwrap_or(u32::MAX);
    if let Some(flag) = STARTED_ON.get(rank as usize) {
        flag.store(true, Ordering::SeqCst);
    }
    std::thread::sleep(Duration::from_millis(ms));
    rank
}

#[ferry::remote]
fn big(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[ferry::remote]
fn fails(msg: String) -> Result<u64, String> {
    Err(msg)
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

#[test]
fn a_saturated_rank_sends_work_to_the_others() -> ferry::Result<()> {
    let ranks = ferry::loopback::run(3, cfg(), |rt, _| {
        let refs: Vec<_> = (0..9)
            .map(|_| busy_rank::remote(&rt, 100))
            .collect::<ferry::Result<_>>()?;
        refs.iter()
            .map(|r| rt.get_value(r))
            .collect::<ferry::Result<Vec<u32>>>()
    })??;
    assert!(ranks.iter().all(|r| *r < 3), "{ranks:?}");
    for r in 1..3 {
        assert!(ranks.contains(&r), "rank {r} got no work: {ranks:?}");
    }
    Ok(())
}

#[test]
fn large_results_come_back_by_one_sided_reads() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, _| -> ferry::Result<()> {
        // Keep rank 0 busy so the next task goes to rank 1.
        let hold = busy_rank::remote(&rt, 300)?;
        let r = big::remote(&rt, 100_000)?; // 800 KB: more than travels inline
        let v = rt.get(&r)?;
        assert_eq!(v.len(), 100_000);
        assert!(v.iter().enumerate().all(|(i, x)| *x == i as u64));
        rt.get(&hold)?;
        Ok(())
    })?
}

#[test]
fn remote_errors_come_back_typed() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, _| -> ferry::Result<()> {
        let hold = busy_rank::remote(&rt, 300)?;
        let r = fails::remote(&rt, "boom on another rank".to_string())?;
        let err = rt.get(&r).unwrap_err();
        let t = err.task_error().expect("a task error");
        assert_eq!(t.kind, ferry::FailureKind::Application);
        assert_eq!(t.message, "boom on another rank");
        assert_eq!(t.rank, 1);
        rt.get(&hold)?;
        Ok(())
    })?
}

#[test]
fn tasks_with_ref_arguments_run_next_to_their_data() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, _| -> ferry::Result<()> {
        let a = rt.put(&40u64)?;
        let hold = busy_rank::remote(&rt, 200)?;
        let r = add::remote(&rt, &a, 2)?;
        assert_eq!(*rt.get(&r)?, 42);
        rt.get(&hold)?;
        Ok(())
    })?
}

#[test]
fn a_lost_rank_s_tasks_are_retried_elsewhere() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        let refs: Vec<_> = (0..6)
            .map(|_| slow_on::remote(&rt, 300))
            .collect::<ferry::Result<_>>()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !STARTED_ON[2].load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "rank 2 got no work");
            std::thread::sleep(Duration::from_millis(1));
        }
        world.kill(2, "killed by the test")?;
        let ranks: Vec<u32> = refs
            .iter()
            .map(|r| rt.get_value(r))
            .collect::<ferry::Result<_>>()?;
        assert_eq!(ranks.len(), 6);
        assert!(!ranks.contains(&2), "rank 2's work was redone: {ranks:?}");
        let after = rank_of::remote(&rt)?;
        assert_ne!(rt.get_value(&after)?, 2);
        Ok(())
    })?
}

#[test]
fn without_retries_a_lost_rank_is_a_system_error() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, world| -> ferry::Result<()> {
        let hold = busy_rank::remote(&rt, 400)?;
        let r = busy_rank::options().max_retries(0).remote(&rt, 400)?;
        std::thread::sleep(Duration::from_millis(50));
        world.kill(1, "killed by the test")?;
        match rt.get(&r) {
            Err(Error::Task(t)) => {
                assert_eq!(t.kind, ferry::FailureKind::System);
                assert!(t.message.contains("rank 1"), "{}", t.message);
            }
            Ok(v) => assert_eq!(*v, 0, "ran on rank 0 before the kill"),
            Err(e) => panic!("unexpected {e}"),
        }
        rt.get(&hold)?;
        Ok(())
    })?
}

#[ferry::remote]
fn sum_on_rank(xs: ferry::View<Vec<u64>>, _pad: u64) -> (u64, u32) {
    let rank = ferry::current().map(|rt| rt.rank()).unwrap_or(u32::MAX);
    (xs.iter().map(|x| x.to_native()).sum(), rank)
}

#[ferry::remote]
fn make_refs(rt: &ferry::Runtime, n: u64) -> ferry::Result<(Vec<ferry::ObjectRef<u64>>, u32)> {
    let refs = (0..n)
        .map(|i| rt.put(&(i * 10)))
        .collect::<ferry::Result<_>>()?;
    Ok((refs, rt.rank()))
}

#[test]
fn ref_arguments_are_borrowed_by_the_rank_that_runs_the_task() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, world| -> ferry::Result<()> {
        let data = rt.put(&(1..=1000u64).collect::<Vec<_>>())?;
        // Fill rank 0 so the next task, despite its local argument, goes to rank 1.
        let hold = busy_rank::remote(&rt, 400)?;
        let r = sum_on_rank::remote(&rt, &data, 0)?;
        let v = rt.get(&r)?;
        assert_eq!(v.0, 500_500);
        assert_eq!(v.1, 1, "ran on the other rank");
        rt.get(&hold)?;
        // The borrow ends with the task: rank 1 lets go, and the object is
        // freed when rank 0 drops its last ref.
        drop(v);
        drop(r);
        let before = rt.store_used();
        drop(data);
        assert!(rt.store_used() < before, "the object was freed");
        let r1 = world.runtime(1).expect("rank 1 is up");
        assert!(r1.store_used() < 64 << 20);
        Ok(())
    })?
}

#[test]
fn refs_returned_from_another_rank_stay_alive_and_resolve() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, world| -> ferry::Result<()> {
        let hold = busy_rank::remote(&rt, 400)?;
        let r = make_refs::remote(&rt, 5)?;
        let view = rt.get(&r)?;
        assert_eq!(view.1, 1, "made on rank 1");
        let refs: Vec<ferry::ObjectRef<u64>> = view
            .0
            .iter()
            .map(|a| a.to_ref())
            .collect::<ferry::Result<_>>()?;
        drop(view);
        drop(r); // rank 1 has freed its copy of the result by now or soon
        std::thread::sleep(Duration::from_millis(100));
        let values: Vec<u64> = refs
            .iter()
            .map(|x| rt.get_value(x))
            .collect::<ferry::Result<_>>()?;
        assert_eq!(values, vec![0, 10, 20, 30, 40]);
        rt.get(&hold)?;
        // Once rank 0 drops them, rank 1 frees the five objects.
        let r1 = world.runtime(1).expect("rank 1 is up");
        let with_refs = r1.store_used();
        drop(refs);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while r1.store_used() >= with_refs {
            assert!(
                std::time::Instant::now() < deadline,
                "rank 1 kept the objects"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })?
}

#[test]
fn many_cross_rank_refs_leak_nothing() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, world| -> ferry::Result<()> {
        let r1 = world.runtime(1).expect("rank 1 is up");
        let base0 = rt.store_used();
        let base1 = r1.store_used();
        for _ in 0..20 {
            let hold = busy_rank::remote(&rt, 20)?;
            let r = make_refs::remote(&rt, 500)?;
            let refs: Vec<ferry::ObjectRef<u64>> = rt
                .get(&r)?
                .0
                .iter()
                .map(|a| a.to_ref())
                .collect::<ferry::Result<_>>()?;
            let sum: u64 = refs
                .iter()
                .map(|x| rt.get_value(x))
                .sum::<ferry::Result<u64>>()?;
            assert_eq!(sum, (0..500u64).map(|i| i * 10).sum::<u64>());
            rt.get(&hold)?;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rt.store_used() != base0 || r1.store_used() != base1 {
            assert!(
                std::time::Instant::now() < deadline,
                "leaked: rank 0 {} -> {}, rank 1 {} -> {}",
                base0,
                rt.store_used(),
                base1,
                r1.store_used()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
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

#[ferry::remote]
fn bump(rt: &ferry::Runtime, t: ferry::ActorHandle<Tally>) -> ferry::Result<u64> {
    rt.get_value(&t.add(1).remote()?)
}

#[test]
fn tasks_holding_actor_handles_reach_the_actor_from_any_rank() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, _| -> ferry::Result<()> {
        let t = Tally::remote(&rt)?;
        let hold = busy_rank::remote(&rt, 300)?;
        let refs: Vec<_> = (0..3)
            .map(|_| bump::remote(&rt, t.clone()))
            .collect::<ferry::Result<_>>()?;
        let mut got: Vec<u64> = refs
            .iter()
            .map(|r| rt.get_value(r))
            .collect::<ferry::Result<_>>()?;
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 3]);
        rt.get(&hold)?;
        Ok(())
    })?
}

#[test]
fn on_rank_places_a_task_exactly() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, _| -> ferry::Result<()> {
        for r in [2, 0, 1, 2] {
            let x = rank_of::options().on_rank(r).remote(&rt)?;
            assert_eq!(rt.get_value(&x)?, r);
        }
        assert!(matches!(
            rank_of::options().on_rank(3).remote(&rt),
            Err(Error::InvalidArgument(_))
        ));
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
/// 0's store grew while it held the view.
fn neighbour_get_growth(force_rma: bool) -> ferry::Result<usize> {
    ferry::loopback::run(
        2,
        cfg().force_rma(force_rma),
        |rt, _| -> ferry::Result<usize> {
            let n = 1u64 << 20;
            let made = make_big::options().on_rank(1).remote(&rt, n)?;
            let r = rt.get(&made)?[0].to_ref()?;
            let before = rt.store_used();
            let v = rt.get(&r)?;
            assert_eq!(v.as_slice().len() as u64, n);
            assert!(v.as_slice().iter().enumerate().all(|(i, x)| *x == i as u64));
            Ok(rt.store_used() - before)
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
    assert!(
        neighbour_get_growth(true)? >= 8 << 20,
        "one copy in this rank's store"
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
    assert!(outcome.is_err(), "the panic comes back out of run");
    let paths = paths.into_inner().unwrap();
    assert_eq!(paths.len(), 3);
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[ferry::remote]
fn hold_for(x: ferry::View<Vec<u64>>, ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    x.len() as u64
}

#[test]
fn a_lost_rank_s_borrows_end_with_it() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(), |rt, world| -> ferry::Result<()> {
        let base = rt.store_used();
        let data = rt.put(&vec![7u64; 1 << 17])?; // 1 MiB, owned by rank 0
        // Rank 1 borrows it for a task that outlives the rank.
        let r = hold_for::options()
            .on_rank(1)
            .max_retries(0)
            .remote(&rt, &data, 3_000)?;
        std::thread::sleep(Duration::from_millis(200));
        world.kill(1, "killed by the test")?;
        assert!(rt.get(&r).is_err(), "the task died with its rank");
        drop(r);
        drop(data);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rt.store_used() > base {
            assert!(
                std::time::Instant::now() < deadline,
                "rank 0 still holds the object rank 1 borrowed: {} > {base}",
                rt.store_used()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })?
}
