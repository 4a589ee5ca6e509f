//! Placement groups across ranks: the registry on rank 0 places bundles
//! over every rank's totals, tasks and actors run on their bundle's rank,
//! other ranks create, list and remove groups through it, and removal
//! kills what runs in a group on another rank.

use ferry::{Bundle, Error, PlacementGroupError, PlacementGroupState, PlacementStrategy, Runtime};

use super::{BOUND, eventually, here, last};

/// Says where it runs.
#[ferry::remote]
fn where_am_i() -> u32 {
    here()
}

/// Holds a bundle's CPU and says where it lives.
#[ferry::actor]
struct Resident {
    calls: u64,
}

#[ferry::actor]
impl Resident {
    fn new() -> Self {
        Resident { calls: 0 }
    }

    fn rank(&mut self) -> u32 {
        self.calls += 1;
        here()
    }
}

/// From the rank this runs on: creates a strict-pack group of two small
/// bundles, waits for it, runs a task in its bundle 1, reads the table,
/// and removes it. The bundles' ranks, where the task ran, and the state
/// the table showed before and after the removal.
#[ferry::remote]
fn a_group_from_here() -> ferry::Result<(u32, Vec<u32>, u32, String, String)> {
    let rt = ferry::current()?;
    let pg = rt.placement_group(
        vec![Bundle::from([("CPU", 0.25)]), Bundle::from([("CPU", 0.25)])],
        PlacementStrategy::StrictPack,
    )?;
    let ranks = rt.get_value(&pg.ready()?)?;
    let ran = rt.get_value(
        &where_am_i::options()
            .num_cpus(0.25)
            .placement_group(&pg, 1)
            .remote(&rt)?,
    )?;
    let state_of = |rt: &Runtime| -> ferry::Result<String> {
        let t = rt.placement_group_table()?;
        let g = t.iter().find(|g| g.id == pg.id());
        Ok(format!("{:?}", g.map(|g| g.state)))
    };
    let before = state_of(&rt)?;
    rt.remove_placement_group(&pg)?;
    let after = state_of(&rt)?;
    Ok((rt.rank(), ranks, ran, before, after))
}

/// Strict spread puts one bundle on each rank; tasks and actors run on
/// their bundle's rank; strict pack puts all on one; a group is made,
/// used and removed from another rank; removal kills a remote actor.
pub(crate) fn placement_groups_reserve_bundles_over_ranks(rt: &Runtime) -> ferry::Result<()> {
    let n = rt.world_size() as usize;
    let spread: Vec<Bundle> = (0..n).map(|_| Bundle::from([("CPU", 0.5)])).collect();
    let pg = rt.placement_group(spread, PlacementStrategy::StrictSpread)?;
    let mut ranks = rt.get_value(&pg.ready()?)?;
    for (i, r) in ranks.iter().enumerate() {
        let ran = rt.get_value(
            &where_am_i::options()
                .num_cpus(0.5)
                .placement_group(&pg, i as u32)
                .remote(rt)?,
        )?;
        assert_eq!(ran, *r, "the task in bundle {i} runs on its rank");
    }
    ranks.sort_unstable();
    assert_eq!(
        ranks,
        (0..n as u32).collect::<Vec<_>>(),
        "one bundle per rank"
    );

    // An actor in the bundle on the last rank lives there, and dies with the group.
    let on_last = ranks_of(rt, pg.id())?
        .iter()
        .position(|r| *r == last(rt))
        .expect("a bundle on the last rank") as u32;
    let a = Resident::options()
        .num_cpus(0.5)
        .placement_group(&pg, on_last)
        .remote(rt)?;
    assert_eq!(rt.get_value(&a.rank().remote()?)?, last(rt));

    let too_many: Vec<Bundle> = (0..=n).map(|_| Bundle::from([("CPU", 0.1)])).collect();
    match rt.placement_group(too_many, PlacementStrategy::StrictSpread) {
        Err(Error::PlacementGroup(PlacementGroupError::Infeasible { .. })) => {}
        other => panic!("{} bundles on {n} ranks: {other:?}", n + 1),
    }

    // From another rank, through the registry.
    let (from, packed, ran, before, after) = rt.get_value(
        &a_group_from_here::options()
            .num_cpus(0.0)
            .on_rank(last(rt))
            .remote(rt)?,
    )?;
    assert_eq!(from, last(rt));
    assert_eq!(packed.len(), 2);
    assert_eq!(packed[0], packed[1], "strict pack: one rank");
    assert_eq!(ran, packed[1]);
    assert_eq!(before, "Some(Created)");
    assert_eq!(after, "Some(Removed)");

    rt.remove_placement_group(&pg)?;
    assert!(
        eventually(BOUND, || Ok(a
            .rank()
            .remote()
            .and_then(|r| rt.get_value(&r))
            .is_err()))?,
        "the actor in the removed group's bundle on rank {} died",
        last(rt)
    );
    let e = where_am_i::options().placement_group(&pg, 0).remote(rt);
    assert!(matches!(
        e,
        Err(Error::PlacementGroup(PlacementGroupError::Removed { .. }))
    ));
    let table = rt.placement_group_table()?;
    assert!(
        table
            .iter()
            .all(|g| g.state == PlacementGroupState::Removed),
        "{table:?}"
    );
    // Every rank has its CPU back.
    assert!(eventually(BOUND, || Ok(
        rt.cluster_resources()["CPU"] == rt.available_resources()["CPU"]
    ))?);
    Ok(())
}

fn ranks_of(rt: &Runtime, id: u64) -> ferry::Result<Vec<u32>> {
    let t = rt.placement_group_table()?;
    let g = t.iter().find(|g| g.id == id).expect("listed");
    Ok(g.ranks.iter().map(|r| r.expect("placed")).collect())
}
