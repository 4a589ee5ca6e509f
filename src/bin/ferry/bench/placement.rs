//! Ray's `placement group create/removal` metric (ray_perf.py): 100
//! placement groups of one bundle `{"custom": 0.001}` created, waited for
//! (`pg.wait(timeout_seconds=30)`) and removed per round, on a runtime
//! with `custom = 100` (Ray's `ray.init(resources={"custom": 100})`; the
//! runner gives the bench's runtime that resource).

use std::time::Duration;

use ferry::{Bundle, PlacementStrategy, Runtime};

use super::runner::Runner;

/// ray_perf.py's `NUM_PGS` and `NUM_BUNDLES`.
const NUM_PGS: usize = 100;
const NUM_BUNDLES: usize = 1;

/// The custom resource the metric's bundles ask for, and how much of it
/// the bench's runtime has.
pub(crate) const CUSTOM: (&str, f64) = ("custom", 100.0);

pub(crate) fn run(rt: &Runtime, r: &mut Runner<'_>) -> ferry::Result<()> {
    r.metric(
        "placement group create/removal",
        NUM_PGS as f64,
        || Ok(()),
        |_| {
            let pgs = (0..NUM_PGS)
                .map(|_| {
                    let bundles = (0..NUM_BUNDLES)
                        .map(|_| Bundle::from([(CUSTOM.0, 0.001)]))
                        .collect();
                    rt.placement_group(bundles, PlacementStrategy::Pack)
                })
                .collect::<ferry::Result<Vec<_>>>()?;
            for pg in &pgs {
                if !pg.wait(Duration::from_secs(30))? {
                    return Err(ferry::Error::InvalidArgument(format!(
                        "placement group {} was not placed in 30 s",
                        pg.id()
                    )));
                }
            }
            for pg in &pgs {
                rt.remove_placement_group(pg)?;
            }
            Ok(())
        },
    )?;
    Ok(())
}
