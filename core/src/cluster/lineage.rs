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
//!    in order, while any object of another rank that the result refers to
//!    (only those can be lost with a rank) is held here by more than the
//!    kept task itself (an argument the task returned is both). A result
//!    that refers to none is kept without the refs among its arguments,
//!    until the next sweep: only its list of refs is read (a re-run of
//!    step 2 finds the new objects there).
//! 2. When a rank is lost, every ref this rank holds to an object that
//!    rank owned and that is not here yet is rebuilt: the task whose result
//!    holds it runs again (on a live rank, as a retry: within
//!    `max_retries`), which makes everything it made again, nested tasks
//!    and puts included; the object at the same place in the new result is
//!    fetched and copied into the lost one. Refs no kept task accounts for
//!    (an object `put` on the lost rank and handed over some other way, or
//!    a task out of retries) fail with an error that says why.
//!
//! This file keeps the tasks of step 1 ([`KeptTasks`]); `rebuild` does
//! step 2.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::cluster::sent::{Sent, TaskSpec, Work};
use crate::cluster::wire::WireRef;
use crate::ids::IdMap;
use crate::object::cell::{KeepAlive, Slot, TypeTag};
use crate::sync::lock;

/// A task whose result holds refs (step 1).
pub(super) struct Entry {
    /// The objects of other ranks the result refers to, here: the entry is
    /// kept while any of them lives (the result itself may be long gone),
    /// held by more than this entry's own `kept`.
    pub(super) refs: Vec<Weak<Slot>>,
    /// The task, to run again.
    pub(super) task: TaskSpec,
    pub(super) type_tag: TypeTag,
    pub(super) type_name: &'static str,
    /// The refs among the arguments, kept for a re-run.
    pub(super) kept: Vec<KeepAlive>,
    /// The refs the result holds, in order.
    pub(super) contained: Vec<WireRef>,
}

impl Entry {
    /// Some object its result refers to is still held here, other than by
    /// this entry (an argument the task returned is both: counting it would
    /// keep the entry, and so the object, for ever).
    pub(super) fn alive(&self) -> bool {
        self.refs.iter().any(|w| {
            let own = self
                .kept
                .iter()
                .filter(|k| std::ptr::addr_eq(Arc::as_ptr(k), w.as_ptr()))
                .count();
            w.strong_count() > own
        })
    }
}

/// One rank's kept tasks, by result object id.
#[derive(Default)]
pub(crate) struct KeptTasks {
    pub(super) entries: Mutex<IdMap<u64, Entry>>,
    inserts: AtomicUsize,
}

impl KeptTasks {
    /// Step 1: `sent`'s task (for result `object`) is done and its result,
    /// now in `sent.slot`, holds the refs `contained`, of which `refs` are
    /// the objects other ranks own (only those can be lost with a rank;
    /// without any, the arguments' refs are not kept).
    pub(crate) fn record(
        &self,
        object: u64,
        sent: Sent,
        contained: &[WireRef],
        refs: Vec<Weak<Slot>>,
    ) {
        let Work::Task(task) = sent.work else {
            return;
        };
        if !contained.iter().any(|r| matches!(r, WireRef::Object(_))) {
            return;
        }
        // Dropped outside the lock when not kept: this may free objects.
        let (kept, _unkept) = if refs.is_empty() {
            (Vec::new(), sent._kept)
        } else {
            (sent._kept, Vec::new())
        };
        let mut entries = lock(&self.entries);
        // Forget the tasks whose results are gone, now and then.
        if self.inserts.fetch_add(1, Ordering::Relaxed) % 64 == 63 {
            entries.retain(|_, e| e.alive());
        }
        entries.insert(
            object,
            Entry {
                refs,
                task,
                type_tag: sent.type_tag,
                type_name: sent.type_name,
                kept,
                contained: contained.to_vec(),
            },
        );
    }

    /// The refs the result of kept task `object` holds.
    pub(super) fn contained(&self, object: u64) -> Option<Vec<WireRef>> {
        lock(&self.entries)
            .get(&object)
            .map(|e| e.contained.clone())
    }

    /// How many tasks are kept whose results still live (for listings).
    pub(crate) fn len(&self) -> usize {
        lock(&self.entries).values().filter(|e| e.alive()).count()
    }
}
