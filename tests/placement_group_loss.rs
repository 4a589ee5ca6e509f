//! Placement groups when a rank is lost (loopback ranks): the registry on
//! rank 0 places the lost rank's bundles again where the strategy allows
//! (`Rescheduling`, then `Created`), or fails the group (`Removed`, with
//! the reason) when no placement could ever fit the ranks left.

mod common;
use common::{BOUND, wait_until};

use ferry::{
    Bundle, Config, Error, PlacementGroupError, PlacementGroupInfo, PlacementGroupState,
    PlacementStrategy, Runtime,
};

#[ferry::remote]
fn rank_here() -> u32 {
    ferry::current().map_or(u32::MAX, |rt| rt.rank())
}

fn cfg() -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(64 << 20)
}

fn info(rt: &Runtime, id: u64) -> PlacementGroupInfo {
    rt.placement_group_table()
        .expect("a table")
        .into_iter()
        .find(|g| g.id == id)
        .expect("the group is listed")
}

fn cpu_bundles(n: usize) -> Vec<Bundle> {
    (0..n).map(|_| Bundle::from([("CPU", 1.0)])).collect()
}

/// `r`'s value, waiting at most [`BOUND`] for it (a bug fails, never hangs).
fn value<T: ferry::Remotable>(rt: &Runtime, r: &ferry::ObjectRef<T>) -> ferry::Result<T> {
    rt.get_timeout(r, BOUND)?;
    rt.get_value(r)
}

#[test]
fn a_lost_rank_s_bundle_is_placed_again_once_there_is_room() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        // Two bundles, one per rank, on ranks 0 and 1; rank 2 is full.
        let pg = rt.placement_group(cpu_bundles(2), PlacementStrategy::StrictSpread)?;
        assert_eq!(value(&rt, &pg.ready()?)?, vec![0, 1]);
        let filler = rt.placement_group(cpu_bundles(1), PlacementStrategy::Pack)?;
        assert_eq!(value(&rt, &filler.ready()?)?, vec![2]);

        world.kill(1, "killed by the test")?;
        // Bundle 1 cannot go beside bundle 0, and rank 2 is full: it waits.
        wait_until("the group to be rescheduling", || {
            info(&rt, pg.id()).state == PlacementGroupState::Rescheduling
        });
        assert_eq!(info(&rt, pg.id()).ranks, vec![Some(0), None]);
        let ready = pg.ready()?;
        assert!(!ready.is_ready());

        rt.remove_placement_group(&filler)?;
        assert_eq!(value(&rt, &ready)?, vec![0, 2], "re-placed on rank 2");
        let g = info(&rt, pg.id());
        assert_eq!(g.state, PlacementGroupState::Created);
        let ran = rank_here::options().placement_group(&pg, 1).remote(&rt)?;
        assert_eq!(value(&rt, &ran)?, 2, "its tasks run on the new rank");
        Ok(())
    })?
}

#[test]
fn a_group_that_cannot_be_placed_again_fails() -> ferry::Result<()> {
    let cfg = cfg().resource("slot", 1.0);
    ferry::loopback::run(3, cfg, |rt, world| -> ferry::Result<()> {
        let pg = rt.placement_group(cpu_bundles(3), PlacementStrategy::StrictSpread)?;
        assert_eq!(value(&rt, &pg.ready()?)?, vec![0, 1, 2]);
        let packed = rt.placement_group(
            vec![Bundle::from([("slot", 0.5)]), Bundle::from([("slot", 0.5)])],
            PlacementStrategy::StrictPack,
        )?;
        let packed_on = value(&rt, &packed.ready()?)?;
        world.kill(2, "killed by the test")?;
        wait_until("the strict-spread group to fail", || {
            info(&rt, pg.id()).state == PlacementGroupState::Removed
        });
        let g = info(&rt, pg.id());
        assert!(
            g.reason.as_deref().is_some_and(|r| r.contains("rank 2")),
            "{g:?}"
        );
        match rt.get_timeout(&pg.ready()?, BOUND) {
            Err(Error::PlacementGroup(PlacementGroupError::Removed { .. })) => {}
            other => panic!("expected Removed, got {other:?}"),
        }
        // A group with nothing on the lost rank is untouched.
        let p = info(&rt, packed.id());
        assert_eq!(p.state, PlacementGroupState::Created);
        assert_eq!(p.ranks, vec![Some(0), Some(0)], "{packed_on:?}");
        Ok(())
    })?
}
