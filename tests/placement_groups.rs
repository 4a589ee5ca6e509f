//! Placement groups on one rank (Ray's `ray.util.placement_group`): each
//! strategy, `ready`, tasks and actors in bundles holding the bundle's
//! resources, errors for what cannot fit, removal, and the listings.

mod common;
use common::{BOUND, Gate, start, wait_until};

use ferry::{Bundle, Error, PlacementGroupError, PlacementGroupState, PlacementStrategy, Runtime};

#[ferry::remote]
fn free_cpus() -> f64 {
    let rt = ferry::current().expect("a runtime");
    rt.available_resources()["CPU"]
}

#[ferry::remote]
fn wait_at(key: u64) -> u64 {
    Gate::pass(key, 0);
    key
}

#[ferry::remote]
fn until_cancelled(key: u64) -> u64 {
    Gate::arrive(key, 0);
    let deadline = std::time::Instant::now() + BOUND;
    while !ferry::is_cancelled() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    key
}

#[ferry::actor]
struct Worker {
    calls: u64,
}

#[ferry::actor]
impl Worker {
    fn new() -> Self {
        Worker { calls: 0 }
    }

    fn call(&mut self) -> u64 {
        self.calls += 1;
        self.calls
    }
}

fn cpus(n: usize, each: f64) -> Vec<Bundle> {
    (0..n).map(|_| Bundle::from([("CPU", each)])).collect()
}

fn pg_error(e: Error) -> PlacementGroupError {
    match e {
        Error::PlacementGroup(p) => p,
        other => panic!("expected a placement group error, got {other:?}"),
    }
}

fn free(rt: &Runtime) -> f64 {
    rt.available_resources()["CPU"]
}

/// `r`'s value, waiting at most [`BOUND`] for it (a bug fails, never hangs).
fn value<T: ferry::Remotable>(rt: &Runtime, r: &ferry::ObjectRef<T>) -> ferry::Result<T> {
    rt.get_timeout(r, BOUND)?;
    rt.get_value(r)
}

#[test]
fn every_strategy_places_its_bundles_on_the_one_rank() -> ferry::Result<()> {
    let rt = start(4.0)?;
    for strategy in [
        PlacementStrategy::Pack,
        PlacementStrategy::Spread,
        PlacementStrategy::StrictPack,
    ] {
        let pg = rt.placement_group(cpus(2, 1.0), strategy)?;
        assert_eq!(*rt.get_timeout(&pg.ready()?, BOUND)?, [0, 0], "{strategy}");
        assert!(pg.wait(BOUND)?);
        assert_eq!(free(&rt), 2.0, "{strategy}: the bundles hold 2 CPUs");
        rt.remove_placement_group(&pg)?;
        assert_eq!(free(&rt), 4.0, "{strategy}: removal gives them back");
    }
    let one = rt.placement_group(cpus(1, 1.0), PlacementStrategy::StrictSpread)?;
    assert_eq!(*rt.get_timeout(&one.ready()?, BOUND)?, [0]);
    let two = rt.placement_group(cpus(2, 1.0), PlacementStrategy::StrictSpread);
    assert!(
        matches!(
            pg_error(two.unwrap_err()),
            PlacementGroupError::Infeasible { .. }
        ),
        "strict spread needs a rank per bundle"
    );
    Ok(())
}

#[test]
fn bad_bundles_are_typed_errors() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let e = rt
        .placement_group(vec![], PlacementStrategy::Pack)
        .unwrap_err();
    assert_eq!(pg_error(e), PlacementGroupError::NoBundles);
    for bad in [
        Bundle::default(),
        Bundle::from([("CPU", 0.0)]),
        Bundle::from([("CPU", -1.0)]),
        Bundle::from([("CPU", f64::NAN)]),
    ] {
        let e = rt.placement_group(
            vec![Bundle::from([("CPU", 1.0)]), bad.clone()],
            PlacementStrategy::Pack,
        );
        match pg_error(e.unwrap_err()) {
            PlacementGroupError::BadBundle { bundle: 1, .. } => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    for too_big in [
        vec![Bundle::from([("CPU", 3.0)])],
        vec![Bundle::from([("TPU", 1.0)])],
        cpus(3, 1.0),
    ] {
        let e = rt.placement_group(too_big.clone(), PlacementStrategy::Pack);
        match pg_error(e.unwrap_err()) {
            PlacementGroupError::Infeasible { .. } => {}
            other => panic!("{too_big:?}: {other:?}"),
        }
    }
    assert!(
        rt.placement_group_table()?.is_empty(),
        "nothing was created"
    );
    Ok(())
}

#[test]
fn tasks_in_a_bundle_hold_the_bundles_resources_not_the_ranks() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let pg = rt.placement_group(vec![Bundle::from([("CPU", 2.0)])], PlacementStrategy::Pack)?;
    rt.get_timeout(&pg.ready()?, BOUND)?;
    assert_eq!(free(&rt), 0.0);
    // The rank has no CPU free, yet a task in the bundle runs.
    let inside = free_cpus::options().placement_group(&pg, 0).remote(&rt)?;
    assert_eq!(*rt.get_timeout(&inside, BOUND)?, 0.0);
    // One task of 2 CPUs fills the bundle: a second waits for it.
    let gate = Gate::new();
    let first = wait_at::options()
        .num_cpus(2.0)
        .placement_group(&pg, 0)
        .remote(&rt, gate.key())?;
    gate.wait_arrived(1, "the first task in the bundle");
    let second = free_cpus::options().placement_group(&pg, 0).remote(&rt)?;
    let running = rt.state().ranks[0].tasks.running();
    assert_eq!(running, 1, "the second task waits for the bundle's CPUs");
    assert!(!second.is_ready());
    gate.open();
    assert_eq!(*rt.get_timeout(&first, BOUND)?, gate.key());
    assert_eq!(*rt.get_timeout(&second, BOUND)?, 0.0);
    Ok(())
}

#[test]
fn asks_that_cannot_fit_the_bundle_fail_at_once() -> ferry::Result<()> {
    let rt = start(4.0)?;
    let pg = rt.placement_group(vec![Bundle::from([("CPU", 1.0)])], PlacementStrategy::Pack)?;
    let e = free_cpus::options()
        .num_cpus(2.0)
        .placement_group(&pg, 0)
        .remote(&rt);
    match pg_error(e.unwrap_err()) {
        PlacementGroupError::DoesNotFit {
            resource,
            asked,
            has,
            ..
        } => assert_eq!((resource.as_str(), asked, has), ("CPU", 2.0, 1.0)),
        other => panic!("{other:?}"),
    }
    let e = free_cpus::options().placement_group(&pg, 1).remote(&rt);
    assert_eq!(
        pg_error(e.unwrap_err()),
        PlacementGroupError::BundleIndex {
            group: pg.id(),
            index: 1,
            bundles: 1
        }
    );
    let e = free_cpus::options()
        .resource("GPU", 1.0)
        .placement_group(&pg, 0)
        .remote(&rt);
    assert!(matches!(
        pg_error(e.unwrap_err()),
        PlacementGroupError::DoesNotFit { .. }
    ));
    let e = Worker::options()
        .num_cpus(2.0)
        .placement_group(&pg, 0)
        .remote(&rt);
    assert!(matches!(
        pg_error(match e {
            Err(e) => e,
            Ok(_) => panic!("an actor that cannot fit its bundle was created"),
        }),
        PlacementGroupError::DoesNotFit { .. }
    ));
    Ok(())
}

#[test]
fn an_actor_in_a_bundle_holds_the_bundles_cpu() -> ferry::Result<()> {
    let rt = start(3.0)?;
    let pg = rt.placement_group(vec![Bundle::from([("CPU", 1.0)])], PlacementStrategy::Pack)?;
    rt.get_timeout(&pg.ready()?, BOUND)?;
    let w = Worker::options()
        .num_cpus(1.0)
        .placement_group(&pg, 0)
        .remote(&rt)?;
    assert_eq!(value(&rt, &w.call().remote()?)?, 1);
    assert_eq!(free(&rt), 2.0, "the actor's CPU is the bundle's");
    // The bundle is full: a task asking for its CPU waits behind the actor.
    let blocked = free_cpus::options().placement_group(&pg, 0).remote(&rt)?;
    assert!(!blocked.is_ready());
    rt.remove_placement_group(&pg)?;
    assert!(
        matches!(
            rt.get_timeout(&blocked, BOUND),
            Err(Error::Cancelled { .. })
        ),
        "cancelled with its group"
    );
    Ok(())
}

#[test]
fn removal_cancels_tasks_kills_actors_and_refuses_new_work() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let pg = rt.placement_group(cpus(2, 1.0), PlacementStrategy::Pack)?;
    rt.get_timeout(&pg.ready()?, BOUND)?;
    let gate = Gate::new();
    let running = until_cancelled::options()
        .placement_group(&pg, 0)
        .remote(&rt, gate.key())?;
    let w = Worker::options()
        .num_cpus(1.0)
        .placement_group(&pg, 1)
        .remote(&rt)?;
    assert_eq!(value(&rt, &w.call().remote()?)?, 1);
    gate.wait_arrived(1, "the task in the group to start");
    rt.remove_placement_group(&pg)?;
    assert!(
        matches!(
            rt.get_timeout(&running, BOUND).unwrap_err(),
            Error::Cancelled { .. }
        ),
        "the running task is cancelled"
    );
    wait_until("the actor in the group to die", || {
        w.call().remote().and_then(|r| value(&rt, &r)).is_err()
    });
    assert_eq!(free(&rt), 2.0);
    let e = free_cpus::options().placement_group(&pg, 0).remote(&rt);
    assert!(matches!(
        pg_error(e.unwrap_err()),
        PlacementGroupError::Removed { .. }
    ));
    let e = rt.get_timeout(&pg.ready()?, BOUND).unwrap_err();
    assert!(matches!(
        e,
        Error::PlacementGroup(PlacementGroupError::Removed { .. })
    ));
    assert!(!pg.wait(BOUND).is_ok_and(|placed| placed));
    rt.remove_placement_group(&pg)?; // twice: no error
    Ok(())
}

#[test]
fn a_group_that_does_not_fit_now_waits_until_room_is_freed() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let big = rt.placement_group(vec![Bundle::from([("CPU", 2.0)])], PlacementStrategy::Pack)?;
    let small = rt.placement_group(cpus(1, 1.0), PlacementStrategy::Pack)?;
    let ready = small.ready()?;
    let state = |id| {
        rt.placement_group_table()
            .expect("a table")
            .into_iter()
            .find(|g| g.id == id)
            .map(|g| g.state)
    };
    assert_eq!(state(big.id()), Some(PlacementGroupState::Created));
    assert_eq!(state(small.id()), Some(PlacementGroupState::Pending));
    assert!(!ready.is_ready());
    rt.remove_placement_group(&big)?;
    assert_eq!(*rt.get_timeout(&ready, BOUND)?, [0]);
    assert_eq!(state(small.id()), Some(PlacementGroupState::Created));
    assert_eq!(state(big.id()), Some(PlacementGroupState::Removed));
    Ok(())
}

#[test]
fn the_table_and_the_state_list_every_group() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let a = rt.placement_group(
        vec![Bundle::from([("CPU", 1.0)]), Bundle::from([("CPU", 0.5)])],
        PlacementStrategy::StrictPack,
    )?;
    rt.get_timeout(&a.ready()?, BOUND)?;
    let table = rt.placement_group_table()?;
    assert_eq!(table.len(), 1);
    let g = &table[0];
    assert_eq!(g.id, a.id());
    assert_eq!(g.strategy, PlacementStrategy::StrictPack);
    assert_eq!(g.ranks, vec![Some(0), Some(0)]);
    assert_eq!(g.bundles[1]["CPU"], 0.5);
    assert_eq!(g.state, PlacementGroupState::Created);
    rt.remove_placement_group(&a)?;
    let state = rt.state();
    let listed = state.placement_groups();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, PlacementGroupState::Removed);
    assert!(state.to_string().contains("STRICT_PACK"), "{state}");
    Ok(())
}
