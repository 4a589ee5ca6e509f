//! Several ranks in one process over the loopback transport: what only
//! loopback can show (a rank that dies, every rank's store seen from the
//! test) and a few placement cases. The scenarios that need only the
//! driver's runtime are in the multi-rank suite (`tests/multirank`), run
//! over loopback and under real `mpirun`.

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

#[test]
fn a_panicking_body_after_a_rank_is_lost_still_removes_every_file() {
    let paths = std::sync::Mutex::new(Vec::new());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ferry::loopback::run(3, cfg(), |rt, world| {
            for r in 0..3 {
                let rt = world.runtime(r).expect("rank is up");
                paths.lock().unwrap().push(rt.store_path().to_path_buf());
            }
            let on_2 = slow_on::options().on_rank(2).remote(&rt, 2_000).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            world.kill(2, "killed by the test").unwrap();
            let _ = rt.get(&on_2);
            panic!("a failed assertion after the loss");
        })
    }));
    assert!(outcome.is_err(), "the panic comes back out of run");
    let paths = paths.into_inner().unwrap();
    assert_eq!(paths.len(), 3);
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}
