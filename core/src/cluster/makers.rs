//! Asking the rank that makes a value (issue 14: "dependencies resolved
//! where the task runs"). When the owner sends a task ahead to rank `p`
//! while one of its arguments is still being made by another task on rank
//! `q`, its `Submit` names `q` (`makers`). `p` asks `q` for the value
//! (`Fetch`), and `q` answers as soon as the value exists: one hop, where
//! asking the owner takes two (`q`'s `Done` to the owner, then the owner's
//! `Value` to `p`).
//!
//! `q` answers only with a value it still has and that travels inline; in
//! every other case (its result has already gone to the owner, is large,
//! spilled or an error, which the owner may retry) it says `NotHeld`, and
//! `p` asks the owner as it would have without a maker. The borrow itself
//! (`AddBorrow`, the owner's count) is unchanged, and so is `Done`. If `q`
//! is lost before it answers, `p` asks the owner.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use ferry_transport::{Rank, TransportError};

use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::{Cluster, ClusterHost, send_error};
use crate::cluster::transfer::BY_VALUE_MAX;
use crate::cluster::wire::{self, Msg, WireResult};
use crate::object::cell::{Borrow, DepWaiter, NO_RANK, Slot, Stored, Waiter};
use crate::sync::lock;

thread_local! {
    /// The makers named by the `Submit` being handled on this thread.
    static MAKERS: RefCell<Vec<(u64, u32)>> = const { RefCell::new(Vec::new()) };
}

/// Puts the previous makers back, also when the handler unwinds.
struct Restore(Vec<(u64, u32)>);

impl Drop for Restore {
    fn drop(&mut self) {
        let outer = std::mem::take(&mut self.0);
        MAKERS.with(|m| *m.borrow_mut() = outer);
    }
}

/// Runs `f` (the handling of a `Submit`) with its `makers` known to the
/// borrows it makes ([`note_maker`]).
pub(crate) fn with_makers<R>(makers: Vec<(u64, u32)>, f: impl FnOnce() -> R) -> R {
    if makers.is_empty() {
        return f();
    }
    let _restore = Restore(MAKERS.with(|m| m.replace(makers)));
    f()
}

/// A borrowed slot met while handling a `Submit`: remembers its maker, if
/// the `Submit` named one and it has none yet.
pub(crate) fn note_maker(slot: &Slot) {
    let Some(b) = slot.borrow() else { return };
    let id = slot.id.as_u64();
    MAKERS.with(|m| {
        if let Some(&(_, rank)) = m.borrow().iter().find(|(o, _)| *o == id) {
            let _ = b
                .maker
                .compare_exchange(NO_RANK, rank, Ordering::AcqRel, Ordering::Acquire);
        }
    });
}

/// The rank to ask for a borrowed value: its maker while that is another
/// live rank, else its owner.
pub(crate) fn whom_to_ask<H: ClusterHost>(c: &Cluster<H>, b: &Borrow) -> Rank {
    let maker = b.maker.load(Ordering::Acquire);
    let usable = maker != NO_RANK
        && maker != b.owner
        && maker != c.rank
        && !lock(&c.lost).contains(&maker)
        && !c.transport.is_lost(maker);
    if usable { maker } else { b.owner }
}

/// On the maker: `from` asks for `object`, owned elsewhere, that a task
/// here makes. Answered when the value exists, or at once with `NotHeld`.
pub(crate) fn answer_fetch<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, from: Rank, object: u64) {
    let making = lock(&c.executing).get(&object).and_then(Weak::upgrade);
    match making {
        Some(slot) => {
            c.asked_as_maker.fetch_add(1, Ordering::Relaxed);
            let reply = Arc::new(MakerReply {
                rt: Arc::downgrade(inner),
                to: from,
                object,
                slot: slot.clone(),
            });
            if !slot.add_waiter(Waiter::Task(reply.clone())) {
                reply.dep_ready();
            }
        }
        None => {
            let _ = c.send(from, &Msg::NotHeld { object });
        }
    }
}

/// Sends a made value to the rank that asked for it.
struct MakerReply<H> {
    rt: Weak<H>,
    to: Rank,
    /// The owner's id of the value (the slot here is the task's own output).
    object: u64,
    slot: Arc<Slot>,
}

impl<H: RankHost> DepWaiter for MakerReply<H> {
    fn dep_ready(self: Arc<Self>) {
        let Some(inner) = self.rt.upgrade() else {
            return;
        };
        let Some(c) = inner.cluster() else { return };
        let object = self.object;
        let msg = match self.slot.get() {
            Some(Stored::Value(v)) if !v.block.is_spilled() && v.block.len() <= BY_VALUE_MAX => {
                match v.block.access() {
                    Ok(bytes) => Msg::Value {
                        object,
                        type_name: v.type_name.to_string(),
                        result: WireResult::Inline(bytes.as_slice().to_vec()),
                    },
                    Err(_) => Msg::NotHeld { object },
                }
            }
            _ => Msg::NotHeld { object },
        };
        let _ = c.send(self.to, &msg);
    }
}

/// On the asker: the maker cannot give `object`: ask its owner.
pub(crate) fn on_not_held<H: ClusterHost>(c: &Cluster<H>, object: u64) {
    let slot = lock(&c.borrowed).get(&object).and_then(Weak::upgrade);
    if let Some(slot) = slot
        && let Some(b) = slot.borrow()
        && !slot.is_ready()
    {
        b.asked.store(b.owner, Ordering::Release);
        send_fetch(c, &slot, b.owner);
    }
}

/// Rank `lost` is gone: values asked of it as their maker are asked of
/// their owners (those it owned are rebuilt or failed by `rank_lost`).
pub(crate) fn maker_lost<H: ClusterHost>(c: &Cluster<H>, lost: Rank) {
    let waiting: Vec<Arc<Slot>> = lock(&c.borrowed)
        .values()
        .filter_map(Weak::upgrade)
        .filter(|s| {
            !s.is_ready()
                && s.borrow()
                    .is_some_and(|b| b.owner != lost && b.asked.load(Ordering::Acquire) == lost)
        })
        .collect();
    for slot in waiting {
        if let Some(b) = slot.borrow() {
            b.asked.store(b.owner, Ordering::Release);
            send_fetch(c, &slot, b.owner);
        }
    }
}

/// Asks rank `to` (the owner, or the rank making the value) for borrowed
/// `slot`'s value; the caller has counted the answer as expected.
pub(crate) fn send_fetch<H: ClusterHost>(c: &Cluster<H>, slot: &Slot, to: Rank) {
    let owner = slot.borrow().map_or(slot.id.rank(), |b| b.owner);
    let fetch = Msg::Fetch {
        object: slot.id.as_u64(),
    };
    match wire::send(&*c.transport, to, &fetch) {
        Ok(()) => {
            c.fetches_sent.fetch_add(1, Ordering::Relaxed);
        }
        // The maker is gone: its owner has the value, or will.
        Err(TransportError::RankLost { .. }) if to != owner => {
            if let Some(b) = slot.borrow() {
                b.asked.store(owner, Ordering::Release);
            }
            send_fetch(c, slot, owner);
        }
        // Its `RankLost` is queued: `rank_lost` finds this slot not ready
        // and rebuilds or fails it.
        Err(TransportError::RankLost { .. }) => c.transport.expect_reply(false),
        // Nobody will answer: the getter hears why now.
        Err(e) => {
            c.transport.expect_reply(false);
            slot.complete(Stored::Error(send_error(to, &e)));
        }
    }
}
