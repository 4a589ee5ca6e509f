//! "Placement Groups" of Ray's documentation
//! (<https://docs.ray.io/en/latest/ray-core/scheduling/placement-group.html>):
//! reserve bundles of resources, wait for them with `ready()`, schedule an
//! actor and a task into a bundle, see a group that cannot be placed yet
//! stay pending, list the groups, and remove them.
//!
//! Run it with `cargo run --example placement_groups` (or under `mpirun`).

use std::time::Duration;

use ferry::{Bundle, PlacementGroupState, PlacementStrategy};

/// The documentation's actor (`@ray.remote(num_cpus=1)`).
#[ferry::actor]
struct Actor {}

#[ferry::actor]
impl Actor {
    fn new() -> Self {
        Actor {}
    }

    fn ready(&self) -> u32 {
        ferry::current().map_or(u32::MAX, |rt| rt.rank())
    }
}

/// A task that says where it ran.
#[ferry::remote]
fn where_am_i() -> u32 {
    ferry::current().map_or(u32::MAX, |rt| rt.rank())
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let ranks = rt.world_size();
    let per_rank = rt.rank_resources()["CPU"];

    // Reserve a placement group of 1 bundle that reserves 1 CPU.
    let pg = rt.placement_group(vec![Bundle::from([("CPU", 1.0)])], PlacementStrategy::Pack)?;
    // Wait until placement group is created.
    let placed = rt.get_value(&pg.ready()?)?;
    println!("placement group {} placed on ranks {placed:?}", pg.id());
    // You can also use wait.
    assert!(pg.wait(Duration::from_secs(10))?);
    // You can look at placement group states using this API.
    for g in rt.placement_group_table()? {
        println!("{g}");
    }

    // No rank has this many CPUs: Ferry refuses at once (Ray leaves it pending).
    let too_big = rt.placement_group(
        vec![Bundle::from([("CPU", per_rank + 1.0)])],
        PlacementStrategy::Pack,
    );
    println!("infeasible: {}", too_big.as_ref().unwrap_err());
    assert!(matches!(too_big, Err(ferry::Error::PlacementGroup(_))));

    // One bundle of a whole rank's CPUs on every rank: it fits the cluster,
    // but not while `pg` holds a CPU, so it is pending.
    let whole: Vec<Bundle> = (0..ranks)
        .map(|_| Bundle::from([("CPU", per_rank)]))
        .collect();
    let pending_pg = rt.placement_group(whole, PlacementStrategy::StrictSpread)?;
    assert!(!pending_pg.wait(Duration::from_millis(200))?);
    println!("the placement group cannot be scheduled yet");

    // Schedule an actor and a task into the reserved bundle.
    let actor = Actor::options()
        .num_cpus(1.0)
        .placement_group(&pg, 0)
        .remote(&rt)?;
    let actor_rank = rt.get_value(&actor.ready().remote()?)?;
    assert_eq!(actor_rank, placed[0]);
    println!("the actor runs in bundle 0, on rank {actor_rank}");
    // The actor holds the bundle's CPU: a task asking for a CPU there waits
    // for it; one asking for none runs.
    let task = where_am_i::options()
        .num_cpus(0.0)
        .placement_group(&pg, 0)
        .remote(&rt)?;
    assert_eq!(rt.get_value(&task)?, placed[0]);

    // Removing the group kills its actor and frees its CPU: the pending
    // group is placed.
    rt.remove_placement_group(&pg)?;
    assert!(pending_pg.wait(Duration::from_secs(30))?);
    let spread = rt.get_value(&pending_pg.ready()?)?;
    println!("the pending group was placed on ranks {spread:?}");
    let mut sorted = spread.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..ranks).collect::<Vec<_>>());
    rt.remove_placement_group(&pending_pg)?;
    let table = rt.placement_group_table()?;
    assert!(
        table
            .iter()
            .all(|g| g.state == PlacementGroupState::Removed)
    );
    println!("{} placement groups, all removed", table.len());
    Ok(())
}
