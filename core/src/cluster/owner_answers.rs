//! The owner's answers about its own objects to ranks that borrow them:
//! what an ack tells of the value, the value itself when it can be given
//! at once, and a `Value` sent when the object becomes ready.

use std::sync::{Arc, Weak};

use ferry_transport::{Rank, Transport};

use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::wire::{self, Msg, WireError, WireResult, WireValue};
use crate::object::cell::{DepWaiter, Slot, Stored, Waiter};

/// Objects up to this size travel inside the `BorrowAck` itself.
const EAGER_MAX: usize = 256;

// Objects kept inline have no place in the arena to be lent: they must
// travel in the ack.
const _: () = assert!(EAGER_MAX >= ferry_store::INLINE_MAX);

/// What a `BorrowAck` tells of a sealed object: its bytes when tiny, else
/// where it lies in this rank's arena.
pub(super) fn ack_value(slot: &Slot) -> Option<WireValue> {
    let Some(Stored::Value(v)) = slot.get() else {
        return None;
    };
    // A spilled object is not read back on this (message) thread: the
    // borrower's `Fetch` gets it.
    if v.block.is_spilled() {
        return None;
    }
    let len = v.block.len();
    let result = if len <= EAGER_MAX {
        WireResult::Inline(v.block.access().ok()?.as_slice().to_vec())
    } else {
        WireResult::At {
            offset: v.block.lend()?.ok()? as u64,
            len: len as u64,
        }
    };
    Some(WireValue {
        type_name: v.type_name.to_string(),
        result,
    })
}

/// The answer to a fetch of `slot` (this rank's own) if it can be given
/// now from this (message) thread: the object is ready and not spilled.
pub(super) fn value_now<H: ClusterHost>(c: &Cluster<H>, slot: &Slot) -> Option<WireValue> {
    Some(match slot.get()? {
        Stored::Value(v) if v.block.is_spilled() => return None,
        Stored::Value(v) => WireValue {
            type_name: v.type_name.to_string(),
            result: WireResult::of(v, &slot.id, c.rank),
        },
        Stored::Error(e) => WireValue {
            type_name: String::new(),
            result: WireResult::failed(WireError::from_error(e, &slot.id.to_string(), c.rank)),
        },
    })
}

/// Sends `slot`'s value (this rank's own) to `to` as `Value` when it is
/// ready.
pub(super) fn reply_when_ready<H: ClusterHost>(c: &Cluster<H>, to: Rank, slot: Arc<Slot>) {
    answer_when_ready(ValueReply {
        transport: Arc::downgrade(&c.transport),
        rank: c.rank,
        to,
        slot,
    });
}

/// A frame about an object (its value, or its failure), sent once the
/// object is complete.
pub(crate) trait Answer: Send + Sync + 'static {
    /// The object.
    fn slot(&self) -> &Arc<Slot>;
    /// Sends the frame (the object is complete).
    fn send(&self);
}

/// Sends `answer` once its object is complete: now if it is, else from the
/// thread that completes it.
pub(crate) fn answer_when_ready<A: Answer>(answer: A) {
    let slot = answer.slot().clone();
    let waiter = Arc::new(WhenReady(answer));
    if !slot.add_waiter(Waiter::Task(waiter.clone())) {
        waiter.dep_ready();
    }
}

/// An [`Answer`] waiting on its object.
struct WhenReady<A>(A);

impl<A: Answer> DepWaiter for WhenReady<A> {
    fn dep_ready(self: Arc<Self>) {
        // Reading a spilled object back may wait for space, which must not
        // happen on the message thread that will bring the frees.
        if let Some(Stored::Value(v)) = self.0.slot().get()
            && v.block.is_spilled()
        {
            let spawned = std::thread::Builder::new()
                .name("ferry-restore".into())
                .spawn({
                    let me = Arc::clone(&self);
                    move || me.0.send()
                });
            if spawned.is_ok() {
                return;
            }
        }
        self.0.send();
    }
}

/// The owner's answer to a `Fetch`: sent when the object is ready.
struct ValueReply {
    /// Weak: a waiter on a slot keeps no transport alive.
    transport: Weak<dyn Transport>,
    rank: Rank,
    to: Rank,
    slot: Arc<Slot>,
}

impl Answer for ValueReply {
    fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    fn send(&self) {
        let Some(transport) = self.transport.upgrade() else {
            return;
        };
        let (type_name, result) = match self.slot.get() {
            Some(Stored::Value(v)) => {
                // The borrower's borrow keeps the object here while it reads.
                (
                    v.type_name.to_string(),
                    WireResult::of(v, &self.slot.id, self.rank),
                )
            }
            Some(Stored::Error(e)) => (
                String::new(),
                WireResult::failed(WireError::from_error(
                    e,
                    &self.slot.id.to_string(),
                    self.rank,
                )),
            ),
            None => return,
        };
        let msg = Msg::Value {
            object: self.slot.id.as_u64(),
            type_name,
            result,
        };
        let _ = wire::send(&*transport, self.to, &msg);
    }
}
