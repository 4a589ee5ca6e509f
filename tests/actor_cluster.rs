//! Actors across ranks that only the loopback transport can show: an
//! actor's rank lost under it, and an actor whose arguments cannot cross
//! ranks. The rest of the multi-rank actor behaviour (placement, ordering,
//! handles passed around, lifetime, kill, restarts) is in the multi-rank
//! suite (`tests/multirank`), run over loopback and real `mpirun`.

mod common;
use common::Gate;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry::{Config, Error};

fn cfg() -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(64 << 20)
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

    /// Waits at gate `key` until the test opens it.
    fn hold(&self, key: u64) -> u64 {
        Gate::pass(key, ferry::current().map_or(u32::MAX, |rt| rt.rank()));
        key
    }
}

#[test]
fn calls_to_an_actor_on_a_lost_rank_fail_typed() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        let s = Sleeper::options().on_rank(2).remote(&rt)?;
        assert_eq!(rt.get_value(&s.nap(1).remote()?)?, 1);
        let gate = Gate::new();
        let pending = s.hold(gate.key()).remote()?;
        gate.wait_arrived_on(2, "the call to be running on rank 2");
        world.kill(2, "killed by the test")?;
        gate.open();
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
