//! A rank that stops answering (stopped by a signal, hung) is declared lost
//! within the heartbeat timeout, and its work goes on elsewhere; without
//! heartbeats nothing would ever tell the others.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry::{Config, Error, Runtime};

#[ferry::remote]
fn double(x: u64) -> u64 {
    2 * x
}

fn cfg(timeout: Duration) -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(16 << 20)
        .heartbeat_timeout(timeout)
}

/// Far more than the heartbeat needs: reaching it means it never came.
const BOUND: Duration = Duration::from_secs(60);

/// The heartbeat timeout of these tests: short enough to keep them quick,
/// long enough that no live rank of a loaded 2-core machine goes unheard
/// that long (a watcher kept off the CPU starts its windows again anyway).
const TIMEOUT: Duration = Duration::from_secs(3);

#[test]
fn a_stopped_rank_is_declared_lost_and_its_task_runs_elsewhere() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(TIMEOUT), |rt, world| {
        // Answers before the stop.
        let before = double::options().on_rank(2).remote(&rt, 1)?;
        assert_eq!(*rt.get_timeout(&before, BOUND)?, 2);
        world.stop(2)?;
        // Sent into the void: only the heartbeat can tell it will never come.
        let r = double::options()
            .on_rank(2)
            .max_retries(2)
            .remote(&rt, 21)?;
        assert_eq!(*rt.get_timeout(&r, BOUND)?, 42);
        let state = rt.state();
        assert_eq!(state.lost, vec![2], "{state}");
        // The others go on.
        let after = double::options().on_rank(1).remote(&rt, 5)?;
        assert_eq!(*rt.get_timeout(&after, BOUND)?, 10);
        Ok(())
    })?
}

#[test]
fn a_stopped_rank_without_retries_fails_its_task_naming_the_silence() -> ferry::Result<()> {
    ferry::loopback::run(2, cfg(TIMEOUT), |rt, world| {
        world.stop(1)?;
        let r = double::options().on_rank(1).max_retries(0).remote(&rt, 1)?;
        match rt.get_timeout(&r, BOUND) {
            Err(Error::Task(e)) => {
                assert!(e.message.contains("stopped answering"), "{e}");
                assert!(e.message.contains("heartbeat"), "{e}");
            }
            other => panic!("expected the task to fail, got {:?}", other.map(|v| *v)),
        }
        Ok(())
    })?
}

/// Set when the blocked copy on rank 2 may end.
static RELEASE: AtomicBool = AtomicBool::new(false);

/// Doubles `x`; on rank 2 only after [`RELEASE`] (at most 60 s).
#[ferry::remote]
fn double_late_on_two(rt: &Runtime, x: u64) -> u64 {
    if rt.rank() == 2 {
        let deadline = Instant::now() + BOUND;
        while !RELEASE.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    2 * x
}

#[test]
fn a_rank_sending_an_undecodable_frame_is_lost_and_nobody_waits_for_it() -> ferry::Result<()> {
    // No heartbeat here: the garbage alone must end the wait.
    let cfg = Config::default()
        .num_cpus(1.0)
        .object_store_memory(16 << 20);
    let out = ferry::loopback::run(3, cfg, |rt, world| {
        // Held on rank 2, which then says something nobody can read.
        let r = double_late_on_two::options()
            .on_rank(2)
            .max_retries(2)
            .remote(&rt, 4)?;
        world.send_raw(2, 0, vec![0xff; 24])?;
        assert_eq!(*rt.get_timeout(&r, BOUND)?, 8);
        let state = rt.state();
        assert_eq!(state.lost, vec![2], "{state}");
        Ok(())
    });
    RELEASE.store(true, Ordering::SeqCst);
    out?
}
