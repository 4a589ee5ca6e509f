//! Placement groups on the [`Runtime`] (Ray's `ray.util.placement_group`):
//! creating, waiting for, listing and removing them. The registry and its
//! protocol are `cluster::groups`; what a rank holds is
//! `resources::bundles`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::error::{Error, PlacementGroupError, Result};
use crate::object::object_ref::ObjectRef;
use crate::resources::bundles::{Bundle, PlacementGroup};
use crate::runtime::{Inner, Runtime};
use crate::state::{PlacementGroupInfo, PlacementStrategy};

impl Runtime {
    /// Reserves `bundles` of resources over the job's ranks, all or none,
    /// spread as `strategy` says (Ray's `placement_group(bundles,
    /// strategy)`). It returns at once; [`PlacementGroup::ready`] resolves
    /// when every bundle is held. Tasks and actors run in a bundle with
    /// `.placement_group(&pg, index)` on their options.
    ///
    /// Errors: [`PlacementGroupError::NoBundles`], `BadBundle` (an empty
    /// bundle, an amount not finite and above zero) and `Infeasible` (no
    /// placement fits the ranks' totals) at once. A group that fits the
    /// totals but not what other groups leave is `Pending` until they are
    /// removed.
    ///
    /// ```
    /// use ferry_core::{Bundle, PlacementStrategy};
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(2.0))?;
    /// let pg = rt.placement_group(
    ///     vec![Bundle::from([("CPU", 1.0)]), Bundle::from([("CPU", 1.0)])],
    ///     PlacementStrategy::StrictPack,
    /// )?;
    /// assert_eq!(*rt.get(&pg.ready()?)?, [0, 0]);
    /// rt.remove_placement_group(&pg)?;
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn placement_group(
        &self,
        bundles: Vec<Bundle>,
        strategy: PlacementStrategy,
    ) -> Result<PlacementGroup> {
        if self.inner.is_shut() {
            return Err(Error::Shutdown);
        }
        check(&bundles)?;
        let id = crate::cluster::groups::create(&self.inner, bundles.clone(), strategy)?;
        Ok(PlacementGroup {
            id,
            strategy,
            bundles: bundles.into(),
            home: Some(Arc::new(Arc::downgrade(&self.inner))),
        })
    }

    /// Frees the group's bundles (Ray's `remove_placement_group`): tasks
    /// running or queued in them are cancelled, actors in them killed, and
    /// later submissions into the group fail with
    /// [`PlacementGroupError::Removed`]. Removing twice is no error.
    pub fn remove_placement_group(&self, pg: &PlacementGroup) -> Result<()> {
        match crate::cluster::groups::remove(&self.inner, pg.id) {
            // Every handle's group existed: one the registry no longer
            // lists was removed long ago (it keeps the last 1000 removed).
            Err(Error::PlacementGroup(PlacementGroupError::NotFound { .. })) => Ok(()),
            other => other,
        }
    }

    /// Every placement group of the job, oldest first (Ray's
    /// `placement_group_table()`).
    pub fn placement_group_table(&self) -> Result<Vec<PlacementGroupInfo>> {
        crate::cluster::groups::table(&self.inner)
    }
}

/// Refuses what no registry should see: no bundles, empty bundles, bad amounts.
fn check(bundles: &[Bundle]) -> Result<()> {
    if bundles.is_empty() {
        return Err(PlacementGroupError::NoBundles.into());
    }
    for (i, b) in bundles.iter().enumerate() {
        let bad = |reason: String| {
            Err(Error::from(PlacementGroupError::BadBundle {
                bundle: i,
                reason,
            }))
        };
        if b.is_empty() {
            return bad("it holds no resource".into());
        }
        for (name, amount) in b.iter() {
            if !(amount.is_finite() && amount > 0.0) {
                return bad(format!(
                    "{name} = {amount}: amounts must be finite and above 0"
                ));
            }
        }
    }
    Ok(())
}

impl PlacementGroup {
    /// The runtime that made it, or this thread's.
    fn runtime(&self) -> Result<Runtime> {
        let home = self
            .home
            .as_ref()
            .and_then(|h| h.downcast_ref::<Weak<Inner>>());
        match home {
            Some(w) => w.upgrade().map(Runtime::from_inner).ok_or(Error::Shutdown),
            None => crate::runtime::current::current(),
        }
    }

    /// A ref that resolves, once every bundle is held, to the rank of each
    /// bundle (Ray's `pg.ready()`); it fails with
    /// [`PlacementGroupError::Removed`] if the group is removed first (or
    /// fails after the loss of a rank).
    pub fn ready(&self) -> Result<ObjectRef<Vec<u32>>> {
        let rt = self.runtime()?;
        let slot = crate::cluster::groups::ready(&rt.inner, self.id)?;
        Ok(ObjectRef::from_slot(slot))
    }

    /// Waits up to `timeout` for the group to be placed (Ray's
    /// `pg.wait(timeout_seconds)`): `true` once it is, `false` if the time
    /// ran out; an error if it was removed.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        let rt = self.runtime()?;
        match rt.get_timeout(&self.ready()?, timeout) {
            Ok(_) => Ok(true),
            Err(Error::Timeout(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
