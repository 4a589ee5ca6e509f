//! Borrows made while one call's arguments are decoded go to each owner in
//! one frame (issue 14: fewer frames per dependent task).
//!
//! When a `Submit` or `ActorCall` arrives, every foreign ref among its
//! arguments is borrowed (`AddBorrow`), and each top-level one the call
//! waits for is then fetched (`Fetch`): for a call with two inputs owned by
//! its caller, three frames to the owner and three back. (A `Submit`'s
//! sender lends its own objects with it instead: `lent_args`.) Here the
//! borrows made during the decoding are held back ([`holding`]), a fetch of
//! one of them that would go to its owner rides on its borrow ([`fold_fetch`]),
//! and when the decoding ends each owner gets one `AddBorrows`, answered by
//! one `BorrowAcks`. An ack answers its fetch too when the value is there
//! already; otherwise the value follows as `Value`, as for a `Fetch`.
//!
//! Nothing else changes: each borrow is counted by its owner exactly as an
//! `AddBorrow` would be, in the same order (`releases` saw it when it was
//! made), and work waits for its ack as before.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferry_transport::{Rank, TransportError};

use crate::cluster::owner_answers::{ack_value, reply_when_ready, value_now};
use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::{Cluster, ClusterHost, send_error};
use crate::cluster::wire::{self, Msg, WireAck};
use crate::ids::ObjectId;
use crate::object::cell::{Borrow, Slot, Stored};

/// [`Borrow::add`]: the `AddBorrow` has gone (a new borrow's word).
const ADD_SENT: u8 = 0;
/// Held back until the decoding ends.
const ADD_HELD: u8 = 1;
/// Held back, and its value is wanted: the borrow asks for it.
const ADD_HELD_FETCH: u8 = 2;

thread_local! {
    /// Borrows held back on this thread, while a call is decoded.
    static HELD: RefCell<Option<Vec<Arc<Slot>>>> = const { RefCell::new(None) };
}

/// Sends what a scope held back, also when the decoding unwinds.
struct Flush<'a, H: ClusterHost> {
    c: &'a Cluster<H>,
    outer: Option<Option<Vec<Arc<Slot>>>>,
}

impl<H: ClusterHost> Drop for Flush<'_, H> {
    fn drop(&mut self) {
        let outer = self.outer.take().unwrap_or_default();
        let held = HELD.with(|h| std::mem::replace(&mut *h.borrow_mut(), outer));
        send_held(self.c, held.unwrap_or_default());
    }
}

/// Runs `f` (the decoding of a call's arguments) with the borrows it makes
/// held back, then sends them, one `AddBorrows` per owner.
pub(super) fn holding<H: ClusterHost, R>(c: &Cluster<H>, f: impl FnOnce() -> R) -> R {
    let _flush = Flush {
        c,
        outer: Some(HELD.with(|h| h.borrow_mut().replace(Vec::new()))),
    };
    f()
}

/// A borrow just made (`lookup`): held back when a scope is open on this
/// thread, else the caller sends its `AddBorrow` now.
pub(super) fn hold(slot: &Arc<Slot>) -> bool {
    HELD.with(|h| match (h.borrow_mut().as_mut(), slot.borrow()) {
        (Some(held), Some(b)) => {
            b.add.store(ADD_HELD, Ordering::Release);
            held.push(slot.clone());
            true
        }
        _ => false,
    })
}

/// The value of a borrow is wanted from its owner: when the borrow is still
/// held back, it asks for it too, and true is returned.
pub(super) fn fold_fetch(b: &Borrow) -> bool {
    b.add
        .compare_exchange(
            ADD_HELD,
            ADD_HELD_FETCH,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
}

/// Sends held borrows: one `AddBorrows` per owner, in the order made.
fn send_held<H: ClusterHost>(c: &Cluster<H>, held: Vec<Arc<Slot>>) {
    let mut by_owner: BTreeMap<Rank, Vec<(u64, bool)>> = BTreeMap::new();
    for slot in &held {
        let Some(b) = slot.borrow() else { continue };
        let fetch = b.add.swap(ADD_SENT, Ordering::AcqRel) == ADD_HELD_FETCH;
        if fetch {
            b.asked.store(b.owner, Ordering::Release);
            c.transport.expect_reply(true);
        }
        by_owner
            .entry(b.owner)
            .or_default()
            .push((slot.id.as_u64(), fetch));
    }
    for (owner, objects) in by_owner {
        let fetched: Vec<u64> = objects.iter().filter(|o| o.1).map(|o| o.0).collect();
        match c
            .transport
            .send(owner, wire::encode(&Msg::AddBorrows { objects }))
        {
            Ok(()) => {
                c.borrow_frames.fetch_add(1, Ordering::Relaxed);
                c.fetches_sent
                    .fetch_add(fetched.len() as u64, Ordering::Relaxed);
            }
            // Its `RankLost` is queued: `rank_lost` finds these slots not
            // ready and rebuilds or fails them.
            Err(TransportError::RankLost { .. }) => {
                for _ in &fetched {
                    c.transport.expect_reply(false);
                }
            }
            // Nobody will answer the fetches: their getters hear why now.
            Err(e) => {
                for slot in held.iter().filter(|s| fetched.contains(&s.id.as_u64())) {
                    c.transport.expect_reply(false);
                    slot.complete(Stored::Error(send_error(owner, &e)));
                }
            }
        }
    }
}

/// On the owner: `AddBorrows` from `from`. Each borrow is counted as an
/// `AddBorrow` is; a fetch is answered in its ack when the value is ready
/// here, else by `Value` once it is (after the acks have gone).
pub(super) fn on_add_borrows<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    objects: Vec<(u64, bool)>,
) {
    let mut acks = Vec::with_capacity(objects.len());
    let mut later = Vec::new();
    for (object, fetch) in objects {
        let found = inner.store().exports.object(ObjectId::from_u64(object));
        let Ok(slot) = found else {
            acks.push(WireAck {
                object,
                ok: false,
                value: None,
                answered: fetch,
            });
            continue;
        };
        c.lent.add(object, from, slot.clone());
        let (value, answered) = if !fetch {
            (ack_value(&slot), false)
        } else if let Some(v) = value_now(c, &slot) {
            (Some(v), true)
        } else {
            later.push(slot);
            (None, false)
        };
        acks.push(WireAck {
            object,
            ok: true,
            value,
            answered,
        });
    }
    let _ = c.send(from, &Msg::BorrowAcks { acks });
    for slot in later {
        reply_when_ready(c, from, slot);
    }
}
