//! Borrowing: refs to objects of other ranks (see the protocol in the
//! module docs of `cluster`). A rank that first sees a foreign ref makes a
//! borrowed slot for it and tells the owner (`AddBorrow` → `BorrowAck`);
//! work that handed a ref over waits for those acks; a borrowed value is
//! fetched on first need (`Fetch` → `Value`); the last borrowed ref gone
//! sends `RemoveBorrow`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use ferry_transport::Rank;

use crate::cluster::held_adds::{fold_fetch, hold, on_add_borrows};
use crate::cluster::latch::Latch;
use crate::cluster::lent_args::{adopt, take};
use crate::cluster::makers::{answer_fetch, note_maker, on_not_held, send_fetch, whom_to_ask};
use crate::cluster::owner_answers::{ack_value, reply_when_ready};
use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::transfer::{stored_at, stored_from};
use crate::cluster::wire::{Msg, WireError, WireResult, WireValue};
use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::object::cell::{Borrow, Bytes, Slot, Stored};
use crate::object::lender;
use crate::sync::lock;

thread_local! {
    /// Borrows made on this thread whose ack is still to come (see [`collect_borrows`]).
    static NEW_BORROWS: std::cell::RefCell<Option<Vec<u64>>> = const { std::cell::RefCell::new(None) };
}

/// Notes that this thread made a borrow of `id` (an object or actor) whose
/// ack is still to come.
pub(crate) fn note_new_borrow(id: u64) {
    NEW_BORROWS.with(|b| {
        if let Some(v) = b.borrow_mut().as_mut() {
            v.push(id);
        }
    });
}

/// Runs `f` (a decoding) and returns the borrows it made that are not acked yet.
pub(super) fn collect_borrows<R>(f: impl FnOnce() -> R) -> (R, Vec<u64>) {
    let outer = NEW_BORROWS.with(|b| b.borrow_mut().replace(Vec::new()));
    let r = f();
    let mine = NEW_BORROWS.with(|b| std::mem::replace(&mut *b.borrow_mut(), outer));
    (r, mine.unwrap_or_default())
}

/// The live slot for `id` on this rank: its own object, or a borrow of a
/// foreign one (made on first sight, with `AddBorrow` to the owner).
pub(crate) fn lookup<H: RankHost>(inner: &Arc<H>, id: ObjectId) -> Result<Arc<Slot>> {
    let local = inner.store().exports.object(id);
    let Some(c) = inner.cluster() else {
        return local;
    };
    if local.is_ok() || id.rank() == c.rank {
        return local;
    }
    let (slot, fresh) = {
        let mut map = lock(&c.borrowed);
        match map.get(&id.as_u64()).and_then(Weak::upgrade) {
            Some(s) => (s, false),
            None => {
                let s = inner.borrowed_slot(id);
                map.insert(id.as_u64(), Arc::downgrade(&s));
                (s, true)
            }
        }
    };
    if fresh && lock(&c.lost).contains(&id.rank()) {
        if let Some(b) = slot.borrow() {
            b.acked.store(true, Ordering::Release);
        }
        slot.complete(Stored::Error(Error::OwnerLost {
            object: id,
            rank: id.rank(),
            reason: "the rank was lost before this one borrowed the object".into(),
        }));
        return Ok(slot);
    }
    if let Some(given) = take(id.as_u64(), id.rank()) {
        // Counted by the owner before it sent the task (`lent_args`).
        adopt(inner, c, &slot, fresh, given);
    } else if fresh {
        c.releases.borrowing(id.as_u64(), id.rank());
        if !hold(&slot) {
            let sent = c.send(
                id.rank(),
                &Msg::AddBorrow {
                    object: id.as_u64(),
                },
            );
            if sent.is_ok() {
                c.borrow_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    note_maker(&slot);
    let acked = slot
        .borrow()
        .is_some_and(|b| b.acked.load(Ordering::Acquire));
    if !acked {
        note_new_borrow(id.as_u64());
    }
    Ok(slot)
}

/// Runs `then` once every object in `ids` has its borrow acked.
pub(super) fn after_acks<H: ClusterHost>(
    c: &Cluster<H>,
    ids: &[u64],
    then: impl FnOnce() + Send + 'static,
) {
    if ids.is_empty() {
        // Most calls: nothing to wait for, no latch and no locks.
        then();
        return;
    }
    let latch = Latch::new(ids.len() + 1, then);
    {
        let mut awaiting = lock(&c.awaiting);
        let borrowed = lock(&c.borrowed);
        for id in ids {
            let acked = borrowed
                .get(id)
                .and_then(Weak::upgrade)
                .is_none_or(|s| s.borrow().is_none_or(|b| b.acked.load(Ordering::Acquire)))
                && c.actors.acked(*id);
            if acked {
                latch.hit();
            } else {
                awaiting.entry(*id).or_default().push(latch.clone());
            }
        }
    }
    latch.hit();
}

/// A borrowed slot needs its value: read straight from where the owner's
/// `BorrowAck` said it is, or else ask the owner (`Fetch`).
pub(crate) fn fetch<H: RankHost>(inner: &Arc<H>, slot: &Slot, borrow: &Borrow) {
    let Some(c) = inner.cluster() else { return };
    // A lost owner's memory is never read once its loss is known: here
    // (`lost`, after `rank_lost` ran) or at the transport (before its
    // `RankLost` event is handled, which then finds this slot not ready and
    // rebuilds or fails it). Same-node arenas stay mapped after their rank
    // dies, so without the second check a read in place would race the event.
    if lock(&c.lost).contains(&borrow.owner) || c.transport.is_lost(borrow.owner) {
        return; // being rebuilt, or failed, by `rank_lost`
    }
    if let Some((offset, len, type_name)) = borrow.at.get() {
        let stored = stored_at(
            inner,
            c,
            borrow.owner,
            slot.id.as_u64(),
            type_name.clone(),
            *offset,
            *len,
        );
        slot.complete(stored);
        return;
    }
    if made_here(c, slot, borrow) {
        return;
    }
    if whom_to_ask(c, borrow) == borrow.owner && fold_fetch(borrow) {
        return; // asked with the borrow (`held_adds`)
    }
    ask_for(c, slot, borrow);
}

/// Asks the owner, or the rank making it, for a borrowed value.
fn ask_for<H: ClusterHost>(c: &Cluster<H>, slot: &Slot, borrow: &Borrow) {
    c.transport.expect_reply(true);
    let to = whom_to_ask(c, borrow);
    borrow.asked.store(to, Ordering::Release);
    send_fetch(c, slot, to);
}

/// Whether a task running on this rank for the owner is still making the
/// borrowed value: then nothing is asked now, and that task's end fills the
/// slot or asks for it ([`fill_from_result`]), which saves a `Fetch` and a
/// `Value` thrown away. Both sides decide under `executing`'s lock, so that
/// exactly one of them asks when asking is needed: here the task's result
/// is seen not yet made, or there the deferral is seen.
fn made_here<H: ClusterHost>(c: &Cluster<H>, slot: &Slot, borrow: &Borrow) -> bool {
    let executing = lock(&c.executing);
    let Some(out) = executing.get(&slot.id.as_u64()).and_then(Weak::upgrade) else {
        return false;
    };
    if out.is_ready() {
        return false; // its fill has run already, or is running: it may not fill
    }
    borrow.deferred.store(true, Ordering::Relaxed);
    true
}

/// On the paths where [`fill_from_result`] does not fill a borrowed slot
/// whose fetch was deferred to it: asks for the value now.
fn ask_if_deferred<H: ClusterHost>(c: &Cluster<H>, slot: &Slot) {
    let Some(b) = slot.borrow() else { return };
    let deferred = {
        let _executing = lock(&c.executing);
        b.deferred.swap(false, Ordering::Relaxed)
    };
    if deferred && !slot.is_ready() {
        ask_for(c, slot, b);
    }
}

/// Values up to this size are copied for a waiting borrow on the rank that
/// made them (the size that travels inside `Done` anyway).
const FILL_MAX: usize = 64 * 1024;

/// A task this rank ran for `object`'s owner has just ended with `out`
/// (issue 14): a borrowed slot of `object` here that still waits for its
/// value (a task here depends on it) takes it now, instead of after the
/// owner has heard `Done` and answered. Everything else goes on as before:
/// `Done` still goes out, the borrow stays counted, and the owner's answer,
/// when it comes, finds the slot complete and is dropped. A value is copied
/// (a sealed block has one holder) into space free now: one larger than
/// [`FILL_MAX`], one that does not fit without spilling or waiting, or one
/// spilled, comes from the owner as before.
pub(super) fn fill_from_result<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    object: u64,
    task: &dyn std::fmt::Display,
    out: &Slot,
) {
    let Some(slot) = lock(&c.borrowed).get(&object).and_then(Weak::upgrade) else {
        return;
    };
    if slot.is_ready() {
        return;
    }
    match copy_result(inner, c, task, out) {
        Some(stored) => {
            if slot.complete_first(stored) {
                c.filled_here.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => ask_if_deferred(c, &slot),
    }
}

/// A copy of a task's result for a borrowed slot here, if it is small and
/// fits now (see [`fill_from_result`]).
fn copy_result<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    task: &dyn std::fmt::Display,
    out: &Slot,
) -> Option<Stored> {
    match out.get()? {
        Stored::Value(v) => {
            // A large value stays single: the owner's answer lets a
            // same-node reader view it in place (or read it one-sidedly).
            if v.block.is_spilled() || v.block.len() > FILL_MAX {
                return None;
            }
            let bytes = v.block.access().ok()?;
            let sealed = match ferry_store::Sealed::inline(bytes.as_slice()) {
                Some(inline) => inline,
                None => {
                    let arena = &inner.store().arena;
                    let mut block = arena.alloc_now(bytes.as_slice().len()).ok()?;
                    block.as_mut_slice().copy_from_slice(bytes.as_slice());
                    arena.seal(block.freeze())
                }
            };
            let sealed = Bytes::Own(sealed);
            Some(Stored::Value(v.copied_to(sealed, v._contained.clone())))
        }
        // The error the owner would store, and then hand on, from `Done`.
        Stored::Error(e) => Some(Stored::Error(
            WireError::from_error(e, &task.to_string(), c.rank).into_error(),
        )),
    }
}

/// The last borrowed ref of `id` on this rank is gone.
pub(crate) fn unborrow<H: ClusterHost>(inner: &Arc<H>, id: ObjectId, owner: Rank) {
    let Some(c) = inner.cluster() else { return };
    forget_borrowed(c, id.as_u64());
    c.end_borrow(owner, id.as_u64());
}

/// Drops the entry of borrowed object `id` once its slot is gone.
fn forget_borrowed<H: ClusterHost>(c: &Cluster<H>, id: u64) {
    let mut map = lock(&c.borrowed);
    if map.get(&id).is_some_and(|w| w.strong_count() == 0) {
        map.remove(&id);
    }
}

/// For a `Done` to `owner` (its `ended`): the borrows from `owner` that
/// this thread ended while finishing the task (`object::lender::batching`)
/// and that may end now. None may while a borrow started before them is
/// unacked (see `releases`): then they end the usual way, behind it.
pub(super) fn ends_riding_along<H: ClusterHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    owner: Rank,
) -> Vec<u64> {
    let held = lender::take_held(Arc::as_ptr(inner).cast::<()>(), owner);
    if held.is_empty() {
        return Vec::new();
    }
    if !c.releases.none_unacked() || c.stop.load(Ordering::Acquire) {
        for end in held {
            unborrow(inner, end.id, end.owner);
        }
        return Vec::new();
    }
    c.ends_with_done
        .fetch_add(held.len() as u64, Ordering::Relaxed);
    held.into_iter()
        .map(|end| {
            forget_borrowed(c, end.id.as_u64());
            end.id.as_u64()
        })
        .collect()
}

/// Rank `from` no longer borrows this rank's `object` (`RemoveBorrow`, or
/// in a `Done`'s `ended`).
pub(super) fn borrow_ended<H: ClusterHost>(c: &Cluster<H>, from: Rank, object: u64) {
    let gone = c.lent.remove(object, from);
    if let Some(slot) = &gone {
        // Its last borrower is done with it: it may be spilled again.
        slot.unlend();
    }
    drop(gone); // outside the lock: this may free the object
}

pub(super) fn on_borrow_message<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, from: Rank, msg: Msg) {
    match msg {
        Msg::AddBorrow { object } => {
            let found = inner.store().exports.object(ObjectId::from_u64(object));
            let ok = found.is_ok();
            let value = found.as_ref().ok().and_then(|s| ack_value(s));
            if let Ok(slot) = found {
                c.lent.add(object, from, slot);
            }
            let _ = c.send(from, &Msg::BorrowAck { object, ok, value });
        }
        Msg::RemoveBorrow { object } => borrow_ended(c, from, object),
        Msg::BorrowAck { object, ok, value } => on_ack(inner, c, from, object, ok, value, false),
        Msg::AddBorrows { objects } => on_add_borrows(inner, c, from, objects),
        Msg::BorrowAcks { acks } => {
            for a in acks {
                on_ack(inner, c, from, a.object, a.ok, a.value, a.answered);
            }
        }
        Msg::Fetch { object } => {
            let id = ObjectId::from_u64(object);
            if id.rank() != c.rank {
                // Asked as the rank making it (see `makers`).
                answer_fetch(inner, c, from, object);
                return;
            }
            let slot = inner
                .store()
                .exports
                .object(id)
                .or_else(|e| c.lent.get(object).ok_or(e));
            match slot {
                Ok(slot) => reply_when_ready(c, from, slot),
                Err(e) => {
                    let result =
                        WireResult::failed(WireError::from_error(&e, &id.to_string(), c.rank));
                    let _ = c.send(
                        from,
                        &Msg::Value {
                            object,
                            type_name: String::new(),
                            result,
                        },
                    );
                }
            }
        }
        Msg::NotHeld { object } => on_not_held(c, object),
        Msg::Value {
            object,
            type_name,
            result,
        } => {
            c.transport.expect_reply(false);
            if from != ObjectId::from_u64(object).rank() {
                c.values_from_makers.fetch_add(1, Ordering::Relaxed);
            }
            let Some(slot) = lock(&c.borrowed).get(&object).and_then(Weak::upgrade) else {
                return;
            };
            if slot.is_ready() {
                // Filled here already (`fill_from_result`): nothing to read.
                return;
            }
            slot.complete(stored_from(inner, c, from, object, type_name, result));
        }
        _ => {}
    }
}

/// The owner's answer to a borrow of `object` (`BorrowAck`, or one of
/// `BorrowAcks`): the borrow is counted (`ok`), or the object was gone; an
/// `answered` one also answers the fetch asked with it, with `value`.
fn on_ack<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    object: u64,
    ok: bool,
    value: Option<WireValue>,
    answered: bool,
) {
    c.send_releases(c.releases.acked(object));
    let (slot, latches) = {
        let mut awaiting = lock(&c.awaiting);
        let slot = lock(&c.borrowed).get(&object).and_then(Weak::upgrade);
        if let Some(b) = slot.as_ref().and_then(|s| s.borrow()) {
            b.acked.store(true, Ordering::Release);
        }
        c.actors.ack(object, ok, from);
        (slot, awaiting.remove(&object).unwrap_or_default())
    };
    if let (Some(slot), false) = (&slot, ok) {
        slot.complete(Stored::Error(Error::ObjectFreed { object: slot.id }));
    }
    if answered {
        c.transport.expect_reply(false);
    }
    if let (Some(slot), Some(v)) = (&slot, value)
        && !slot.is_ready()
    {
        match (answered, v.result) {
            // Where it lies, for the fetch to come to read it.
            (false, WireResult::At { offset, len }) => {
                if let Some(b) = slot.borrow() {
                    let _ = b.at.set((offset, len, v.type_name));
                }
            }
            (false, WireResult::Failed(_)) => {}
            (_, result) => slot.complete(stored_from(inner, c, from, object, v.type_name, result)),
        }
    }
    drop(slot);
    for l in latches {
        l.hit();
    }
}

impl<H: ClusterHost> Cluster<H> {
    /// Objects that cross ranks, as this rank sees them (for `state`):
    /// its own that others borrow, and others' that it borrows.
    pub(crate) fn object_states(&self) -> Vec<crate::state::ObjectState> {
        let describe = |s: &Slot, owner: Rank, borrowers: Vec<Rank>| {
            let value = match s.get() {
                Some(Stored::Value(v)) => Some(v),
                _ => None,
            };
            crate::state::ObjectState {
                id: s.id.to_string(),
                size: value
                    .map(|v| v.block.len() as u64)
                    .or_else(|| s.borrow().and_then(|b| b.at.get().map(|(_, len, _)| *len))),
                owner,
                borrowers,
                here: value.is_some(),
                spilled: value.is_some_and(|v| v.block.is_spilled()),
            }
        };
        let mut out: Vec<_> = self
            .lent
            .entries()
            .into_iter()
            .map(|(_, slot, by)| describe(&slot, self.rank, by))
            .collect();
        let borrowed: Vec<Arc<Slot>> = lock(&self.borrowed)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for s in borrowed {
            let owner = s.borrow().map_or(s.id.rank(), |b| b.owner);
            out.push(describe(&s, owner, vec![self.rank]));
        }
        out
    }
}
