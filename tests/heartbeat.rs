//! A rank that stops answering (stopped by a signal, hung) is declared lost
//! within the heartbeat timeout, and its work goes on elsewhere; without
//! heartbeats nothing would ever tell the others.

use std::time::Duration;

use ferry::{Config, Error};

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

#[test]
fn a_stopped_rank_is_declared_lost_and_its_task_runs_elsewhere() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(Duration::from_millis(500)), |rt, world| {
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
    ferry::loopback::run(2, cfg(Duration::from_millis(500)), |rt, world| {
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
