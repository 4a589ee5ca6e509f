//! A task's arguments lent with it (issue 14: no borrow round trip per
//! dependent task).
//!
//! Without this, the rank that runs a task borrows each of the owner's
//! objects among its arguments when the `Submit` arrives (`AddBorrows`,
//! answered by `BorrowAcks`) and asks for the values it waits for: two
//! frames more per task, on both ranks. Here the owner counts the executor
//! as a borrower of each of its own objects among the arguments before it
//! sends `Submit`, and says so in it (`lent`). For a top-level argument the
//! executor does not borrow already, it adds the value when it has it, or
//! promises to send it (`Value`, unasked) once it is made here. The
//! executor's borrow of such an object is acked from the start, and it asks
//! for no value it was given or promised.
//!
//! Each entry is one count in the owner's `lent`, which the executor gives
//! back exactly once: a borrowed slot made for it keeps the count (its
//! `RemoveBorrow` ends it, as for any borrow); one that finds a borrowed
//! slot there already, or that the decoding never looks up, ends it at once
//! (`RemoveBorrow`, in order behind earlier borrows as any release). A
//! `Submit` that does not go gives its counts back on the owner.
//!
//! Nothing is promised for an argument being made on another rank: on the
//! executor it fills there from the task's result (`fill_from_result`), on
//! a third rank it is asked of that rank (`makers`). An `ActorCall` is lent
//! its caller's objects the same way, each with what a `BorrowAck` would
//! tell of it (its value when tiny, else where it lies): the call is not
//! held up by a borrow, and a value not there yet is asked for as before.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferry_transport::Rank;

use crate::cluster::owner_answers::{ack_value, reply_when_ready, value_now};
use crate::cluster::rank_host::RankHost;
use crate::cluster::sent::{Sent, Work};
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::transfer::stored_from;
use crate::cluster::wire::{WireLent, WireResult};
use crate::ids::IdMap;
use crate::object::cell::{KeepAlive, Slot};
use crate::sync::lock;

/// The owner's side of one `Submit`'s lent arguments: the counts it took
/// (given back if the `Submit` does not go) and the values it promised.
#[derive(Default)]
pub(super) struct Lending {
    counted: Vec<Arc<Slot>>,
    promised: Vec<Arc<Slot>>,
}

/// On the owner, before a `Submit` or `ActorCall` to `to`: counts `to` as
/// a borrower of each of this rank's objects among `kept` (the refs in the
/// arguments; `made_elsewhere` tells the results of tasks sent to other
/// ranks). For those `to` does not borrow already: of `deps` (a task's
/// top-level ones) the value, or a promise of it; of the others what a
/// `BorrowAck` tells (the value when tiny, else where it lies).
pub(super) fn lend<H: ClusterHost>(
    c: &Cluster<H>,
    to: Rank,
    deps: &[u64],
    kept: &[KeepAlive],
    made_elsewhere: impl Fn(u64) -> bool,
) -> (Vec<WireLent>, Lending) {
    let mut lent: Vec<WireLent> = Vec::new();
    let mut lending = Lending::default();
    if kept.is_empty() || lock(&c.lost).contains(&to) {
        return (lent, lending);
    }
    for k in kept {
        let Ok(slot) = Arc::downcast::<Slot>(k.clone()) else {
            continue; // an actor handle
        };
        let object = slot.id.as_u64();
        if slot.borrow().is_some()
            || slot.id.rank() != c.rank
            || lent.iter().any(|l| l.object == object)
        {
            continue;
        }
        let first = c.lent.add(object, to, slot.clone());
        let (mut value, mut push) = (None, false);
        if first && deps.contains(&object) {
            value = value_now(c, &slot);
            push = value.is_none() && !made_elsewhere(object);
        } else if first {
            // What a `BorrowAck` tells: tiny values, else where it lies.
            value = ack_value(&slot);
        }
        if push {
            lending.promised.push(slot.clone());
        }
        lending.counted.push(slot);
        lent.push(WireLent {
            object,
            value,
            push,
        });
    }
    (lent, lending)
}

/// Whether `object` is the result of a task this rank sent to another
/// (`sent` is `Cluster::sent`, for `lend`'s `made_elsewhere`).
pub(super) fn made_elsewhere(sent: &IdMap<u64, Box<Sent>>, object: u64) -> bool {
    sent.get(&object)
        .is_some_and(|s| matches!(s.work, Work::Task(_)))
}

/// On the owner, once the `Submit` to `to` went (`sent`) or failed: the
/// promised values go when ready, or else the counts are given back.
pub(super) fn after_submit<H: ClusterHost>(c: &Cluster<H>, to: Rank, lending: Lending, sent: bool) {
    if sent {
        // Only now: a `Value` must not overtake its `Submit`.
        c.values_pushed
            .fetch_add(lending.promised.len() as u64, Ordering::Relaxed);
        for slot in lending.promised {
            reply_when_ready(c, to, slot);
        }
        return;
    }
    for slot in lending.counted {
        let gone = c.lent.remove(slot.id.as_u64(), to);
        if let Some(s) = &gone {
            s.unlend();
        }
        drop(gone); // outside the lock: this may free the object
    }
}

thread_local! {
    /// The lent arguments of the `Submit` being handled on this thread,
    /// with its sender, not yet looked up.
    static GIVEN: RefCell<Option<(Rank, Vec<WireLent>)>> = const { RefCell::new(None) };
}

/// Gives back, when a `Submit`'s handling ends, the counts it did not use.
struct GiveBack<'a, H: ClusterHost> {
    c: &'a Cluster<H>,
    outer: Option<Option<(Rank, Vec<WireLent>)>>,
}

impl<H: ClusterHost> Drop for GiveBack<'_, H> {
    fn drop(&mut self) {
        let outer = self.outer.take().flatten();
        let left = GIVEN.with(|g| std::mem::replace(&mut *g.borrow_mut(), outer));
        if let Some((owner, left)) = left {
            for l in left {
                self.c.end_borrow(owner, l.object);
            }
        }
    }
}

/// On the executor: runs `f` (the handling of a `Submit` from `from`) with
/// its `lent` arguments known to the borrows it makes ([`take`]).
pub(crate) fn with_lent<H: ClusterHost, R>(
    c: &Cluster<H>,
    from: Rank,
    lent: Vec<WireLent>,
    f: impl FnOnce() -> R,
) -> R {
    if lent.is_empty() {
        return f();
    }
    for _ in lent.iter().filter(|l| l.push) {
        // Its `Value` comes, whatever becomes of the borrow here.
        c.transport.expect_reply(true);
    }
    let _give_back = GiveBack {
        c,
        outer: Some(GIVEN.with(|g| g.borrow_mut().replace((from, lent)))),
    };
    f()
}

/// What the `Submit` being handled here lent of `object`, taken (once).
pub(super) fn take(object: u64, owner: Rank) -> Option<WireLent> {
    GIVEN.with(|g| {
        let mut g = g.borrow_mut();
        let (from, lent) = g.as_mut()?;
        if *from != owner {
            return None;
        }
        let i = lent.iter().position(|l| l.object == object)?;
        Some(lent.swap_remove(i))
    })
}

/// A lent argument met while decoding: a new borrowed slot (`fresh`) keeps
/// its count and is acked at once; an older one gives it back. A value
/// given is stored (or, when large, where it lies is noted); a promised one
/// is not asked for.
pub(super) fn adopt<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    slot: &Slot,
    fresh: bool,
    given: WireLent,
) {
    let Some(b) = slot.borrow() else {
        c.end_borrow(slot.id.rank(), given.object);
        return;
    };
    if fresh {
        b.acked.store(true, Ordering::Release);
    } else {
        c.end_borrow(b.owner, given.object);
    }
    if given.push {
        b.promised(b.owner);
    }
    if let Some(v) = given.value
        && !slot.is_ready()
    {
        match v.result {
            // Read where it lies when the task needs it.
            WireResult::At { offset, len } => {
                let _ = b.at.set((offset, len, v.type_name));
            }
            result => slot.complete(stored_from(
                inner,
                c,
                b.owner,
                given.object,
                v.type_name,
                result,
            )),
        }
    }
}
