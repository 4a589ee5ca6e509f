//! Lineage: rebuilding objects whose only copy was on a lost rank.
//!
//! # Protocol
//!
//! Ferry copies a task's result to its owner when the task is done, so a
//! lost executor takes no finished result with it. What a lost rank does
//! take is what it *owned*: objects made there (by `put` or by tasks it
//! submitted) that other ranks hold refs to and have not read yet. Those
//! refs reached the other ranks inside results of tasks that ran on the
//! lost rank, and the owner of such a result knows how to make it again.
//!
//! 1. When a task sent to another rank returns a result that holds object
//!    refs, its owner keeps the task (function id, encoded arguments and
//!    the refs among them, options, attempts) and the refs in the result,
//!    in order, while any object the result refers to is held here.
//! 2. When a rank is lost, every ref this rank holds to an object that
//!    rank owned and that is not here yet is rebuilt: the task whose result
//!    holds it runs again (on a live rank, as a retry: within
//!    `max_retries`), which makes everything it made again, nested tasks
//!    and puts included; the object at the same place in the new result is
//!    fetched and copied into the lost one. Refs no kept task accounts for
//!    (an object `put` on the lost rank and handed over some other way, or
//!    a task out of retries) fail with an error that says why.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ferry_transport::Rank;

use crate::cluster::wire::{WireOptions, WireRef};
use crate::cluster::{self, Cluster, Sent, Work};
use crate::error::Error;
use crate::object::cell::{DepWaiter, KeepAlive, Slot, Stored, StoredValue, TypeTag, Waiter};
use crate::runtime::Inner;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A task whose result holds refs (step 1).
struct Entry {
    /// The objects the result refers to, here: the entry is kept while
    /// any of them lives (the result itself may be long gone).
    refs: Vec<Weak<Slot>>,
    fn_id: u64,
    args: Vec<u8>,
    opts: WireOptions,
    max_retries: i32,
    attempts: u32,
    type_tag: TypeTag,
    type_name: &'static str,
    /// The refs among the arguments, kept for a re-run.
    kept: Vec<KeepAlive>,
    /// The refs the result holds, in order.
    contained: Vec<WireRef>,
}

impl Entry {
    /// Some object its result refers to is still held here.
    fn alive(&self) -> bool {
        self.refs.iter().any(|w| w.strong_count() > 0)
    }
}

/// One rank's kept tasks, by result object id.
#[derive(Default)]
pub(crate) struct Book {
    entries: Mutex<HashMap<u64, Entry>>,
    inserts: AtomicUsize,
}

impl Book {
    /// Step 1: `sent`'s task (for result `object`) is done and its result,
    /// now in `sent.slot`, holds the refs `contained`.
    pub(crate) fn record(
        &self,
        object: u64,
        sent: Sent,
        contained: &[WireRef],
        refs: Vec<Weak<Slot>>,
    ) {
        let Work::Task {
            fn_id,
            args,
            opts,
            max_retries,
            attempts,
        } = sent.work
        else {
            return;
        };
        if !contained.iter().any(|r| matches!(r, WireRef::Object(_))) {
            return;
        }
        let mut entries = lock(&self.entries);
        // Forget the tasks whose results are gone, now and then.
        if self.inserts.fetch_add(1, Ordering::Relaxed) % 64 == 63 {
            entries.retain(|_, e| e.alive());
        }
        entries.insert(
            object,
            Entry {
                refs,
                fn_id,
                args,
                opts,
                max_retries,
                attempts,
                type_tag: sent.type_tag,
                type_name: sent.type_name,
                kept: sent._kept,
                contained: contained.to_vec(),
            },
        );
    }

    /// The refs the result of kept task `object` holds.
    fn contained(&self, object: u64) -> Option<Vec<WireRef>> {
        lock(&self.entries)
            .get(&object)
            .map(|e| e.contained.clone())
    }

    /// How many tasks are kept whose results still live (for listings).
    pub(crate) fn len(&self) -> usize {
        lock(&self.entries).values().filter(|e| e.alive()).count()
    }
}

/// Lost objects a re-run stands for: (position among the refs of the
/// task's result, the lost object's slot here).
type Targets = Vec<(usize, Arc<Slot>)>;

/// Step 2: rank `lost` is gone and `orphans` (refs here to objects it
/// owned, not here yet) with it. Starts rebuilding those a kept task
/// accounts for and fails the others; returns how many are being rebuilt.
pub(crate) fn rebuild(
    inner: &Arc<Inner>,
    c: &Cluster,
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
            if !(e.max_retries < 0 || e.attempts <= e.max_retries as u32) {
                out_of_retries.extend(targets.iter().map(|(_, s)| s.id.as_u64()));
                continue;
            }
            e.attempts += 1;
            taken.extend(targets.iter().map(|(_, s)| s.id.as_u64()));
            let opts = e.opts.clone();
            let rank = c.pick(&opts.clone().into_options(), true).unwrap_or(c.rank);
            let slot = Slot::pending(inner.ids.object(), None, inner.unhandled.clone());
            let sent = Sent {
                slot,
                rank,
                type_tag: e.type_tag,
                type_name: e.type_name,
                work: Work::Task {
                    fn_id: e.fn_id,
                    args: e.args.clone(),
                    opts,
                    max_retries: e.max_retries,
                    attempts: e.attempts,
                },
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
        s.complete(Stored::Error(Error::Unknown(format!(
            "{} (its owner, rank {lost}, was lost: {reason}; it cannot be rebuilt: {why})",
            s.id
        ))));
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
        cluster::dispatch(c, object, sent);
        if !rerun.add_waiter(Waiter::Task(waiter.clone())) {
            waiter.dep_ready();
        }
    }
    rebuilding
}

/// Waits for a re-run task, then for the objects in its result that stand
/// for lost ones.
struct Rebuild {
    rt: Weak<Inner>,
    rerun: Arc<Slot>,
    targets: Targets,
}

impl DepWaiter for Rebuild {
    fn dep_ready(self: Arc<Self>) {
        self.rerun.mark_observed();
        let Some(inner) = self.rt.upgrade() else {
            return;
        };
        let fail = |old: &Slot, why: String| {
            old.complete(Stored::Error(Error::Unknown(format!(
                "{} (rebuilding it by re-running the task that returned it failed: {why})",
                old.id
            ))));
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
                Some(WireRef::Object(id)) => {
                    cluster::lookup(&inner, crate::ids::ObjectId::from_u64(*id))
                }
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
struct CopyInto {
    rt: Weak<Inner>,
    old: Arc<Slot>,
    new: Arc<Slot>,
    done: AtomicBool,
}

impl DepWaiter for CopyInto {
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
            Some(Stored::Error(e)) => Stored::Error(Error::Unknown(format!(
                "{} (its rebuilt copy failed: {e})",
                self.old.id
            ))),
            None => return,
        };
        self.old.complete(stored);
    }
}

/// A copy of `v` in this rank's store, keeping `source` (and so the refs
/// the value holds) alive with it.
fn copy_value(inner: &Inner, v: &StoredValue, source: Arc<Slot>) -> Stored {
    let access = match v.block.access() {
        Ok(a) => a,
        Err(e) => return Stored::Error(e.into()),
    };
    let bytes = access.as_slice();
    let mut block = match inner.arena.alloc(bytes.len()) {
        Ok(b) => b,
        Err(e) => return Stored::Error(e.into()),
    };
    block.as_mut_slice().copy_from_slice(bytes);
    Stored::Value(v.copied_to(
        crate::object::cell::Bytes::Own(inner.arena.seal(block.freeze())),
        vec![source as KeepAlive],
    ))
}
