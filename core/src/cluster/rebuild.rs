//! Lineage, step 2: rebuilding the objects a lost rank owned by running
//! again the kept tasks (see `lineage`) whose results hold refs to them,
//! then copying each rebuilt object into the lost one's slot.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use ferry_transport::Rank;

use crate::cluster::borrowing::lookup;
use crate::cluster::rank_host::RankHost;
use crate::cluster::remote_task::dispatch;
use crate::cluster::sent::{Sent, Work};
use crate::cluster::shared::Cluster;
use crate::cluster::wire::WireRef;
use crate::error::Error;
use crate::object::cell::{DepWaiter, KeepAlive, Slot, Stored, StoredValue, Waiter};
use crate::sync::lock;

/// Lost objects a re-run stands for: (position among the refs of the
/// task's result, the lost object's slot here).
type Targets = Vec<(usize, Arc<Slot>)>;

/// Step 2: rank `lost` is gone and `orphans` (refs here to objects it
/// owned, not here yet) with it. Starts rebuilding those a kept task
/// accounts for and fails the others; returns how many are being rebuilt.
pub(super) fn rebuild<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    lost: Rank,
    reason: &str,
    orphans: Vec<Arc<Slot>>,
) -> usize {
    let by_id: HashMap<u64, Arc<Slot>> =
        orphans.iter().map(|s| (s.id.as_u64(), s.clone())).collect();
    let mut taken: HashSet<u64> = HashSet::new();
    let mut out_of_retries: HashSet<u64> = HashSet::new();
    let mut plans: Vec<(Targets, Sent)> = Vec::new();
    {
        let mut entries = lock(&c.lineage.entries);
        entries.retain(|_, e| e.alive());
        for e in entries.values_mut() {
            let targets: Targets = e
                .contained
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match r {
                    WireRef::Object(id) if !taken.contains(id) => {
                        by_id.get(id).map(|s| (i, s.clone()))
                    }
                    _ => None,
                })
                .collect();
            if targets.is_empty() {
                continue;
            }
            if !e.task.may_run_again() {
                out_of_retries.extend(targets.iter().map(|(_, s)| s.id.as_u64()));
                continue;
            }
            e.task.attempts += 1;
            taken.extend(targets.iter().map(|(_, s)| s.id.as_u64()));
            let rank = c
                .pick(&e.task.opts.clone().into_options(), true)
                .unwrap_or(c.rank);
            let slot = inner.store().new_output();
            let sent = Sent {
                slot,
                rank,
                type_tag: e.type_tag,
                type_name: e.type_name,
                work: Work::Task(e.task.clone()),
                _kept: e.kept.clone(),
            };
            plans.push((targets, sent));
        }
    }
    for s in &orphans {
        let id = s.id.as_u64();
        if taken.contains(&id) {
            continue;
        }
        let why = if out_of_retries.contains(&id) {
            "the task that returned it has no retries left"
        } else {
            "no task run from this rank returned a ref to it (objects made by put are never rebuilt)"
        };
        s.complete(Stored::Error(Error::OwnerLost {
            object: s.id,
            rank: lost,
            reason: format!("{reason}; it cannot be rebuilt: {why}"),
        }));
    }
    let rebuilding = taken.len();
    for (targets, sent) in plans {
        let rerun = sent.slot.clone();
        tracing::warn!(
            "rank {}: rebuilding {} object(s) of lost rank {lost} by re-running {} on rank {}",
            c.rank,
            targets.len(),
            sent.type_name,
            sent.rank
        );
        let waiter = Arc::new(Rebuild {
            rt: Arc::downgrade(inner),
            rerun: rerun.clone(),
            targets,
        });
        let object = rerun.id.as_u64();
        dispatch(c, object, sent, Vec::new());
        if !rerun.add_waiter(Waiter::Task(waiter.clone())) {
            waiter.dep_ready();
        }
    }
    rebuilding
}

/// Waits for a re-run task, then for the objects in its result that stand
/// for lost ones.
struct Rebuild<H> {
    rt: Weak<H>,
    rerun: Arc<Slot>,
    targets: Targets,
}

impl<H: RankHost> DepWaiter for Rebuild<H> {
    fn dep_ready(self: Arc<Self>) {
        self.rerun.mark_observed();
        let Some(inner) = self.rt.upgrade() else {
            return;
        };
        let fail = |old: &Slot, why: String| {
            old.complete(Stored::Error(Error::RebuildFailed {
                object: old.id,
                reason: format!("re-running the task that returned it failed: {why}"),
            }));
        };
        match self.rerun.get() {
            Some(Stored::Value(_)) => {}
            Some(Stored::Error(e)) => {
                for (_, old) in &self.targets {
                    fail(old, e.to_string());
                }
                return;
            }
            None => return,
        }
        let contained = inner
            .cluster()
            .and_then(|c| c.lineage.contained(self.rerun.id.as_u64()))
            .unwrap_or_default();
        for (i, old) in &self.targets {
            let new = match contained.get(*i) {
                Some(WireRef::Object(id)) => lookup(&inner, crate::ids::ObjectId::from_u64(*id)),
                _ => {
                    fail(old, "its result holds different refs this time".into());
                    continue;
                }
            };
            let new = match new {
                Ok(s) => s,
                Err(e) => {
                    fail(old, e.to_string());
                    continue;
                }
            };
            let copy = Arc::new(CopyInto {
                rt: self.rt.clone(),
                old: old.clone(),
                new: new.clone(),
                done: AtomicBool::new(false),
            });
            new.start_fetch();
            if !new.add_waiter(Waiter::Task(copy.clone())) {
                copy.dep_ready();
            }
        }
    }
}

/// Copies a rebuilt object into the lost one's slot.
struct CopyInto<H> {
    rt: Weak<H>,
    old: Arc<Slot>,
    new: Arc<Slot>,
    done: AtomicBool,
}

impl<H: RankHost> DepWaiter for CopyInto<H> {
    fn dep_ready(self: Arc<Self>) {
        if self.done.swap(true, Ordering::AcqRel) {
            return;
        }
        self.new.mark_observed();
        let Some(inner) = self.rt.upgrade() else {
            return;
        };
        let stored = match self.new.get() {
            Some(Stored::Value(v)) => copy_value(&inner, v, self.new.clone()),
            Some(Stored::Error(e)) => Stored::Error(Error::RebuildFailed {
                object: self.old.id,
                reason: format!("its rebuilt copy failed: {e}"),
            }),
            None => return,
        };
        self.old.complete(stored);
    }
}

/// A copy of `v` in this rank's store, keeping `source` (and so the refs
/// the value holds) alive with it.
fn copy_value<H: RankHost>(inner: &Arc<H>, v: &StoredValue, source: Arc<Slot>) -> Stored {
    let access = match v.block.access() {
        Ok(a) => a,
        Err(e) => return Stored::Error(e.into()),
    };
    match inner.store().arena.seal_copy(access.as_slice()) {
        Ok(sealed) => Stored::Value(v.copied_to(
            crate::object::cell::Bytes::Own(sealed),
            vec![source as KeepAlive],
        )),
        Err(e) => Stored::Error(e.into()),
    }
}
