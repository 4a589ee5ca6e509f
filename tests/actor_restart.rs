//! Actor fault tolerance across ranks (over loopback, where a rank can be
//! killed): an actor whose rank is lost is re-created elsewhere by its
//! creator while `max_restarts` allows, re-running its constructor; calls
//! in flight are sent again while `max_task_retries` allows, else they fail
//! with `ActorDied`; handles on other ranks follow the actor.

use std::time::Duration;

use ferry::{ActorHandle, Config, Error};

fn cfg() -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(32 << 20)
}

#[ferry::actor]
struct Tally {
    total: u64,
}

#[ferry::actor]
impl Tally {
    fn new(start: u64) -> Self {
        Tally { total: start }
    }

    fn add(&mut self, k: u64) -> u64 {
        self.total += k;
        self.total
    }

    /// Sleeps, then says where it ran and the total.
    fn nap(&self, ms: u64) -> (u32, u64) {
        std::thread::sleep(Duration::from_millis(ms));
        (
            ferry::current().map_or(u32::MAX, |rt| rt.rank()),
            self.total,
        )
    }
}

/// A task that calls the actor through a handle it was given.
#[ferry::remote]
fn add_through(rt: &ferry::Runtime, t: ActorHandle<Tally>, k: u64) -> ferry::Result<u64> {
    rt.get_value(&t.add(k).remote()?)
}

/// A task that naps through a handle it was given: (rank, total).
#[ferry::remote]
fn nap_through(rt: &ferry::Runtime, t: ActorHandle<Tally>, ms: u64) -> ferry::Result<(u32, u64)> {
    rt.get_value(&t.nap(ms).remote()?)
}

/// Keeps a handle to a `Tally` on its rank and calls it.
#[ferry::actor]
struct Holder {
    t: Option<ActorHandle<Tally>>,
}

#[ferry::actor]
impl Holder {
    fn new() -> Self {
        Holder { t: None }
    }

    fn keep(&mut self, t: ActorHandle<Tally>) {
        self.t = Some(t);
    }

    fn add(&self, rt: &ferry::Runtime, k: u64) -> ferry::Result<u64> {
        let t = self
            .t
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("no handle".into()))?;
        rt.get_value(&t.add(k).remote()?)
    }
}

#[test]
fn a_lost_rank_s_actor_is_re_created_and_its_call_in_flight_sent_again() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        let t = Tally::options()
            .on_rank(2)
            .max_restarts(1)
            .max_task_retries(1)
            .remote(&rt, 100)?;
        assert_eq!(rt.get_value(&t.add(5).remote()?)?, 105);
        let in_flight = t.nap(1_500).remote()?;
        std::thread::sleep(Duration::from_millis(200));
        world.kill(2, "killed by the test")?;
        // Sent again to the re-created actor: its constructor ran again.
        let (rank, total) = rt.get_value(&in_flight)?;
        assert_ne!(rank, 2, "it ran on a live rank");
        assert_eq!(total, 100, "state comes from the constructor again");
        assert_eq!(t.actor_rank(), rank);
        assert!(t.is_alive());
        assert_eq!(rt.get_value(&t.add(1).remote()?)?, 101);
        // Its new rank lost too: no restarts are left.
        let host = t.actor_rank();
        if host != 0 {
            world.kill(host, "killed by the test again")?;
            match rt.get_value(&t.add(1).remote()?) {
                Err(Error::ActorDied { reason, .. }) => {
                    assert!(reason.contains("no restarts left"), "{reason}")
                }
                other => panic!("expected ActorDied, got {other:?}"),
            }
            assert!(!t.is_alive());
        }
        Ok(())
    })?
}

#[test]
fn without_task_retries_the_call_in_flight_fails_and_later_ones_reach_the_new_actor()
-> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        let t = Tally::options().on_rank(2).max_restarts(1).remote(&rt, 7)?;
        assert_eq!(rt.get_value(&t.add(1).remote()?)?, 8);
        let in_flight = t.nap(1_500).remote()?;
        std::thread::sleep(Duration::from_millis(200));
        world.kill(2, "killed by the test")?;
        match rt.get_value(&in_flight) {
            Err(Error::ActorDied { reason, .. }) => {
                assert!(reason.contains("max_task_retries"), "{reason}")
            }
            other => panic!("expected ActorDied, got {other:?}"),
        }
        assert_eq!(rt.get_value(&t.add(1).remote()?)?, 8, "a fresh actor");
        Ok(())
    })?
}

#[test]
fn other_ranks_handles_follow_the_re_created_actor() -> ferry::Result<()> {
    ferry::loopback::run(4, cfg(), |rt, world| -> ferry::Result<()> {
        let t = Tally::options().on_rank(3).max_restarts(2).remote(&rt, 0)?;
        // Rank 1 holds a handle (through a task's argument) before the loss.
        let first = add_through::options()
            .on_rank(1)
            .remote(&rt, t.clone(), 1)?;
        assert_eq!(rt.get_value(&first)?, 1);
        world.kill(3, "killed by the test")?;
        // Wait until the creator (this rank) has re-created it.
        assert_eq!(rt.get_value(&t.add(10).remote()?)?, 10);
        assert_ne!(t.actor_rank(), 3);
        // A task on another rank reaches it through a handle made before.
        let later = add_through::options()
            .on_rank(1)
            .remote(&rt, t.clone(), 5)?;
        assert_eq!(rt.get_value(&later)?, 15);
        Ok(())
    })?
}

#[test]
fn a_call_in_flight_from_another_rank_is_sent_again_too() -> ferry::Result<()> {
    ferry::loopback::run(4, cfg(), |rt, world| -> ferry::Result<()> {
        let t = Tally::options()
            .on_rank(3)
            .max_restarts(1)
            .max_task_retries(1)
            .remote(&rt, 50)?;
        // Rank 1 calls the actor through a handle it was given (and so
        // learns its max_task_retries from the handle).
        let through = nap_through::options()
            .on_rank(1)
            .remote(&rt, t.clone(), 1_500)?;
        std::thread::sleep(Duration::from_millis(300));
        world.kill(3, "killed by the test")?;
        let (rank, total) = rt.get_value(&through)?;
        assert_ne!(rank, 3);
        assert_eq!(total, 50, "the re-created actor ran the call");
        Ok(())
    })?
}

#[test]
fn an_actor_its_creator_let_go_of_is_gone_with_its_rank_for_every_holder() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        let t = Tally::options().on_rank(2).max_restarts(3).remote(&rt, 1)?;
        let holder = Holder::options().on_rank(1).remote(&rt)?;
        rt.get(&holder.keep(t.clone()).remote()?)?;
        assert_eq!(rt.get_value(&holder.add(1).remote()?)?, 2);
        drop(t); // only rank 1 holds it now: its creator cannot re-create it
        world.kill(2, "killed by the test")?;
        match rt.get_value(&holder.add(1).remote()?) {
            Err(Error::Task(e)) => assert!(e.message.contains("dead"), "{e:?}"),
            Err(Error::ActorDied { .. }) => {}
            other => panic!("expected the call to fail, got {other:?}"),
        }
        Ok(())
    })?
}
