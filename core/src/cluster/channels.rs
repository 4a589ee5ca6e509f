//! Tagged objects crossing ranks (`Runtime::send_to` and
//! `Runtime::receive_from`; the matching is `object::mailbox`'s).
//!
//! # Protocol
//!
//! 1. The sender numbers the send (per destination and tag) and waits for
//!    the object, holding it.
//! 2. When the object is complete, the thread that completed it (a worker
//!    that ran its task, or the thread that received it) sends a value
//!    frame (`frame::Value`) with the number, the type's name and the
//!    object's archived bytes, whatever their size (as a stream's items
//!    travel), or its failure as a `SendFailed` message. No other frame is
//!    needed: nothing is borrowed, and nothing is asked for.
//! 3. The receiver copies the bytes into its own store (its object from
//!    then on) and hands them to its mailbox, which completes the matching
//!    receive or keeps them for it.
//!
//! Frames between two ranks keep their order, but objects complete in any
//! order: the number, not the arrival, matches a send to its receive. A
//! lost sender fails the receives from it ([`rank_lost`]); a send to a
//! lost rank goes nowhere.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::{Arc, Mutex, Weak};

use ferry_transport::{Rank, Transport};

use crate::cluster::frame;
use crate::cluster::owner_answers::{Answer, answer_when_ready};
use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::transfer::copy_in;
use crate::cluster::wire::{self, Msg, WireError};
use crate::error::Error;
use crate::object::cell::{Slot, Stored, TypeTag};
use crate::sync::lock;

/// Step 1: sends `slot`'s object (this rank's own, or a borrowed one being
/// fetched) to `to` as its `seq`-th under `tag`, once it is complete.
pub(crate) fn send_when_ready<H: ClusterHost>(
    c: &Cluster<H>,
    to: Rank,
    tag: u64,
    seq: u64,
    slot: Arc<Slot>,
) {
    answer_when_ready(Sending {
        transport: Arc::downgrade(&c.transport),
        rank: c.rank,
        to,
        tag,
        seq,
        slot,
    });
}

/// A send waiting for its object.
struct Sending {
    /// Weak: a waiter on a slot keeps no transport alive.
    transport: Weak<dyn Transport>,
    rank: Rank,
    to: Rank,
    tag: u64,
    seq: u64,
    slot: Arc<Slot>,
}

impl Answer for Sending {
    fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    /// Step 2: the value as a value frame (see `frame`), written straight
    /// from the object's bytes into this thread's frame buffer; a failure
    /// as a `SendFailed` message.
    fn send(&self) {
        let Some(transport) = self.transport.upgrade() else {
            return;
        };
        let failed = |e: &Error| WireError::from_error(e, &self.slot.id.to_string(), self.rank);
        let error = match self.slot.get() {
            Some(Stored::Value(v)) if !v._contained.is_empty() => failed(&holds_refs(&self.slot)),
            Some(Stored::Value(v)) => match v.block.access() {
                Ok(bytes) => {
                    let value = frame::Value {
                        tag: self.tag,
                        seq: self.seq,
                        type_name: &v.type_name,
                        bytes: bytes.as_slice(),
                    };
                    return self.sent(wire::send_value(&*transport, self.to, &value));
                }
                Err(e) => failed(&e.into()),
            },
            Some(Stored::Error(e)) => {
                // Handed on: the receiver sees the error.
                self.slot.mark_observed();
                failed(e)
            }
            None => return,
        };
        let msg = Msg::SendFailed {
            tag: self.tag,
            seq: self.seq,
            error: Box::new(error),
        };
        self.sent(wire::send(&*transport, self.to, &msg));
    }
}

impl Sending {
    /// Logs a send that failed (a lost destination fails its receives on
    /// its own).
    fn sent(&self, outcome: Result<(), ferry_transport::TransportError>) {
        if let Err(e) = outcome {
            tracing::warn!(
                "rank {}: sending {} to rank {} under tag {}: {e}",
                self.rank,
                self.slot.id,
                self.to,
                self.tag
            );
        }
    }
}

/// Why an object that holds refs (nested `ObjectRef`s or actor handles)
/// is not sent: its copy would hold them without keeping them alive.
pub(crate) fn holds_refs(slot: &Slot) -> Error {
    Error::InvalidArgument(format!(
        "send_to: {} holds refs to other objects or actors, which a copy \
         sent to another rank would not keep alive; pass it to a task there instead",
        slot.id
    ))
}

/// Step 3 for a value frame, read as it lies in the frame (no owned
/// message, no allocation but the value's own block).
pub(super) fn on_value<H: RankHost>(inner: &Arc<H>, from: Rank, value: &frame::Value<'_>) {
    let (tag, name) = received_type(value.type_name);
    let stored = copy_in(inner, tag, name, value.bytes.len(), |d| {
        d.copy_from_slice(value.bytes);
        Ok(())
    });
    inner
        .store()
        .mailbox
        .deliver(from, value.tag, value.seq, stored);
}

/// A received value's type: its tag, and its name kept once (see
/// [`known_name`]). Each thread remembers the last name it was given with
/// its tag: a run of values of one type (a stencil's every step) is named
/// without a lock or a hash.
fn received_type(name: &str) -> (TypeTag, Cow<'static, str>) {
    thread_local! {
        static LAST: Cell<Option<(&'static str, TypeTag)>> = const { Cell::new(None) };
    }
    if let Some((kept, tag)) = LAST.get()
        && kept == name
    {
        return (tag, Cow::Borrowed(kept));
    }
    let tag = TypeTag::named(name);
    let kept = known_name(name);
    if let Cow::Borrowed(k) = kept {
        LAST.set(Some((k, tag)));
    }
    (tag, kept)
}

/// The names of the types received, kept once each (a program sends few
/// types): a received value names its type without an allocation.
fn known_name(name: &str) -> Cow<'static, str> {
    /// More names than this (frames of a broken peer) are not kept.
    const MOST: usize = 256;
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = lock(&NAMES);
    if let Some(known) = names.iter().find(|n| **n == name) {
        return Cow::Borrowed(known);
    }
    if names.len() >= MOST {
        return Cow::Owned(name.to_string());
    }
    // Leaked once per type: the list lives as long as the process.
    let kept: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(kept);
    Cow::Borrowed(kept)
}

/// Step 3 for a failure: the `seq`-th object `from` sent this rank under
/// `tag` failed there.
pub(super) fn on_send_failed<H: RankHost>(
    inner: &Arc<H>,
    from: Rank,
    tag: u64,
    seq: u64,
    error: WireError,
) {
    let stored = Stored::Error(error.into_error());
    inner.store().mailbox.deliver(from, tag, seq, stored);
}

/// Rank `rank` was lost: receives from it fail.
pub(super) fn rank_lost<H: RankHost>(inner: &Arc<H>, rank: Rank, reason: &str) {
    inner.store().mailbox.sender_lost(rank, reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_value_is_named_by_its_own_type_whatever_came_before() {
        // The same name twice (the remembered one), another, a longer one
        // that starts with the remembered one, and back.
        for name in ["a::A", "a::A", "b::B", "b::Bc", "a::A", ""] {
            let (tag, kept) = received_type(name);
            assert_eq!(tag, TypeTag::named(name), "{name}");
            assert_eq!(kept, name);
            assert!(matches!(kept, Cow::Borrowed(_)), "kept once: {name}");
        }
    }
}
