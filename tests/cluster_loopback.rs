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
        std::thread::sleep(Duration::from_millis(100));
        assert!(STARTED_ON[2].load(Ordering::SeqCst), "rank 2 got work");
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
