//! Placement: which rank a task or actor goes to, from every rank's
//! resource totals (told in `Hello`) and the work this rank has sent to
//! each; and the cluster's view of resources for errors and listings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferry_transport::Rank;

use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::error::Error;
use crate::resources::options::{ActorOptions, TaskOptions};
use crate::sync::lock;

impl<H: ClusterHost> Cluster<H> {
    /// The most of `resource` any live rank has, and which rank (the lowest
    /// on a tie), with the cluster's total.
    fn largest(&self, resource: &str) -> (f64, Rank, f64) {
        let lost = lock(&self.lost);
        let mut best = (0.0, self.rank);
        let mut total = 0.0;
        for (r, t) in lock(&self.totals).iter().enumerate() {
            let Some(t) = t else { continue };
            let have = t.get(resource).copied().unwrap_or(0.0);
            if lost.contains(&(r as Rank)) {
                continue;
            }
            total += have;
            if have > best.0 {
                best = (have, r as Rank);
            }
        }
        (best.0, best.1, total)
    }

    /// Resources of the whole cluster, summed over ranks.
    pub(crate) fn cluster_totals(&self) -> BTreeMap<String, f64> {
        let mut sum = BTreeMap::new();
        for t in lock(&self.totals).iter().flatten() {
            for (k, v) in t {
                *sum.entry(k.clone()).or_insert(0.0) += v;
            }
        }
        sum
    }

    /// What the other ranks have free, as this rank sees it: their totals,
    /// less the CPUs of the tasks this rank has running there (Ray's
    /// `available_resources` is likewise a recent view, not a lock).
    pub(crate) fn others_available(&self) -> BTreeMap<String, f64> {
        let mut sum = BTreeMap::new();
        let lost = lock(&self.lost);
        for (r, t) in lock(&self.totals).iter().enumerate() {
            let Some(t) = t else { continue };
            if r as Rank == self.rank || lost.contains(&(r as Rank)) {
                continue;
            }
            let busy = self.in_flight[r].load(Ordering::Relaxed) as f64;
            for (k, v) in t {
                let v = if k == "CPU" { (v - busy).max(0.0) } else { *v };
                *sum.entry(k.clone()).or_insert(0.0) += v;
            }
        }
        sum
    }

    /// Whether rank `r` could run a task with `opts` and has a CPU free, as
    /// this rank sees it.
    pub(super) fn has_room(&self, r: Rank, opts: &TaskOptions) -> bool {
        if lock(&self.lost).contains(&r) {
            return false;
        }
        let totals = lock(&self.totals);
        let Some(t) = totals.get(r as usize).and_then(Option::as_ref) else {
            return false;
        };
        let cpus = t.get("CPU").copied().unwrap_or(0.0);
        let busy = self.in_flight[r as usize].load(Ordering::Relaxed) as f64;
        opts.ask.fits_in(t) && busy + opts.ask.cpus <= cpus.max(opts.ask.cpus)
    }

    /// Step 2: the rank to send a task to, if not this one.
    pub(crate) fn pick(&self, opts: &TaskOptions, local_can_run: bool) -> Option<Rank> {
        let totals = lock(&self.totals);
        let lost = lock(&self.lost);
        let mut best: Option<(f64, Rank)> = None;
        for (r, t) in totals.iter().enumerate() {
            let r = r as Rank;
            let Some(t) = t else { continue };
            if r == self.rank || lost.contains(&r) || !opts.ask.fits_in(t) {
                continue;
            }
            let cpus = t.get("CPU").copied().unwrap_or(0.0).max(1.0);
            let load = self.in_flight[r as usize].load(Ordering::Relaxed) as f64 / cpus;
            if local_can_run && load >= 1.0 {
                continue; // that rank is full too: queue here instead
            }
            if best.is_none_or(|(b, _)| load < b) {
                best = Some((load, r));
            }
        }
        best.map(|(_, r)| r)
    }
}

/// Among the other live ranks that could ever hold an actor with `opts`:
/// the one with the most CPUs free (after this rank's tasks and actors
/// there) if any has enough, and the first one.
pub(super) fn other_ranks_for<H: ClusterHost>(
    c: &Cluster<H>,
    opts: &ActorOptions,
) -> (Option<Rank>, Option<Rank>) {
    let totals = lock(&c.totals);
    let lost = lock(&c.lost);
    let reserved = lock(&c.actors.reserved);
    let mut free_best: Option<(f64, Rank)> = None;
    let mut any: Option<Rank> = None;
    for (r, t) in totals.iter().enumerate() {
        let rank = r as Rank;
        let Some(t) = t else { continue };
        if rank == c.rank || lost.contains(&rank) || !opts.ask.fits_in(t) {
            continue;
        }
        any.get_or_insert(rank);
        let busy = c.in_flight[r].load(Ordering::Relaxed) as f64 + reserved[r];
        let free = t.get("CPU").copied().unwrap_or(0.0) - busy;
        if free >= opts.ask.cpus && free_best.is_none_or(|(b, _)| free > b) {
            free_best = Some((free, rank));
        }
    }
    (free_best.map(|(_, r)| r), any)
}

/// An [`Error::Infeasible`] from this rank's ledger, told in the cluster's
/// terms: the most any live rank has and the total of all ranks (a task
/// runs on one rank, so a sum that would fit is no help). Other errors pass.
pub(crate) fn explain_infeasible<H: RankHost>(inner: &Arc<H>, e: Error) -> Error {
    match e {
        Error::Infeasible {
            what,
            resource,
            asked,
            largest,
            total,
            hint,
            ..
        } => {
            let (largest, largest_rank, total) = match inner.cluster() {
                Some(c) => c.largest(&resource),
                None => (largest, inner.rank(), total),
            };
            Error::Infeasible {
                what,
                resource,
                asked,
                largest,
                largest_rank,
                total,
                hint,
            }
        }
        other => other,
    }
}
