//! Tagged objects crossing ranks (`Runtime::send_to` and
//! `Runtime::receive_from`; the matching is `object::mailbox`'s).
//!
//! # Protocol
//!
//! 1. The sender numbers the send (per destination and tag) and waits for
//!    the object, holding it.
//! 2. When the object is complete, the thread that completed it (a worker
//!    that ran its task, or the thread that received it) sends `Sent` with
//!    the number and the object's archived bytes, inline whatever their
//!    size (as a stream's items travel), or its failure. No other frame is
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
use std::sync::{Arc, Mutex, Weak};

use ferry_transport::{Rank, Transport};

use crate::cluster::owner_answers::{Answer, answer_when_ready};
use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::transfer::{copy_in, stored_from};
use crate::cluster::wire::{self, ArchivedMsg, ArchivedWireResult, Msg, WireError, WireResult};
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

    /// Step 2.
    fn send(&self) {
        let Some(transport) = self.transport.upgrade() else {
            return;
        };
        let failed = |e: &Error| {
            WireResult::failed(WireError::from_error(
                e,
                &self.slot.id.to_string(),
                self.rank,
            ))
        };
        // The name's and the bytes' buffers are this thread's, kept from
        // its last send: no allocation (and no free) a send.
        // (Fresh ones while the thread's locals are being destroyed.)
        let (mut name, mut inline) = SPARE
            .try_with(|spare| std::mem::take(&mut *spare.borrow_mut()))
            .unwrap_or_default();
        let (type_name, result) = match self.slot.get() {
            Some(Stored::Value(v)) if !v._contained.is_empty() => {
                (String::new(), failed(&holds_refs(&self.slot)))
            }
            Some(Stored::Value(v)) => match v.block.access() {
                Ok(bytes) => {
                    name.clear();
                    name.push_str(&v.type_name);
                    inline.clear();
                    inline.extend_from_slice(bytes.as_slice());
                    (name, WireResult::Inline(inline))
                }
                Err(e) => (String::new(), failed(&e.into())),
            },
            Some(Stored::Error(e)) => {
                // Handed on: the receiver sees the error.
                self.slot.mark_observed();
                (String::new(), failed(e))
            }
            None => return,
        };
        let msg = Msg::Sent {
            tag: self.tag,
            seq: self.seq,
            type_name,
            result,
        };
        if let Err(e) = wire::send(&*transport, self.to, &msg) {
            tracing::warn!(
                "rank {}: sending {} to rank {} under tag {}: {e}",
                self.rank,
                self.slot.id,
                self.to,
                self.tag
            );
        }
        if let Msg::Sent {
            type_name,
            result: WireResult::Inline(inline),
            ..
        } = msg
            && inline.capacity() <= SPARE_MOST
        {
            let _ = SPARE.try_with(|spare| *spare.borrow_mut() = (type_name, inline));
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

/// The most bytes a thread keeps for its next send's value.
const SPARE_MOST: usize = 64 << 10;

thread_local! {
    /// A type name's and a value's buffers, kept between a thread's sends.
    static SPARE: std::cell::RefCell<(String, Vec<u8>)> =
        const { std::cell::RefCell::new((String::new(), Vec::new())) };
}

/// Step 3 for the usual frame, a value inline, read from the frame as it
/// lies (no owned message, no allocation but the value's own block): true
/// if `msg` was such a `Sent` and is handled.
pub(super) fn on_archived<H: RankHost>(inner: &Arc<H>, from: Rank, msg: &ArchivedMsg) -> bool {
    let ArchivedMsg::Sent {
        tag,
        seq,
        type_name,
        result: ArchivedWireResult::Inline(bytes),
    } = msg
    else {
        return false;
    };
    let name = type_name.as_str();
    let stored = copy_in(
        inner,
        TypeTag::named(name),
        known_name(name),
        bytes.len(),
        |d| {
            d.copy_from_slice(bytes.as_slice());
            Ok(())
        },
    );
    inner
        .store()
        .mailbox
        .deliver(from, tag.to_native(), seq.to_native(), stored);
    true
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

/// Step 3: the `seq`-th object `from` sent this rank under `tag` arrived.
pub(super) fn on_sent<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    tag: u64,
    seq: u64,
    type_name: String,
    result: WireResult,
) {
    let stored = match result {
        // A sender lends nothing: a place in its memory is not an answer.
        WireResult::At { .. } => Stored::Error(Error::Corrupt {
            object: format!("an object rank {from} sent under tag {tag}"),
            reason: "it named a place in the sender's memory instead of carrying its bytes".into(),
        }),
        result => stored_from(inner, c, from, 0, type_name, result),
    };
    inner.store().mailbox.deliver(from, tag, seq, stored);
}

/// Rank `rank` was lost: receives from it fail.
pub(super) fn rank_lost<H: RankHost>(inner: &Arc<H>, rank: Rank, reason: &str) {
    inner.store().mailbox.sender_lost(rank, reason);
}
