//! Streams of items crossing ranks (streaming returns, see
//! `object::stream`): a task producing on one rank the items of a stream
//! another rank owns.
//!
//! # Protocol
//!
//! 1. The producer waits for room for item `i` in its [`Window`] on the
//!    stream (`i < consumed + backpressure`, what it last heard), checking
//!    every [`TICK`] that the owner is alive and this rank is not shut:
//!    never an unbounded wait.
//! 2. It sends `StreamItem` with the item's archived bytes (inline,
//!    whatever their size). Frames between two ranks keep their order, so
//!    the items of one attempt arrive in order and before the task's
//!    `Done`.
//! 3. The owner copies the bytes into its store as an object of its own
//!    and pushes it to the stream (a retry's repeat is dropped there), then
//!    answers `StreamConsumed` with how far its caller has read; it sends
//!    `StreamConsumed` again each time the caller takes an item, and with
//!    `cancelled` when the caller drops the stream (an item for a stream
//!    no longer open is answered so too).
//! 4. The producer's window takes the largest `consumed` heard; a
//!    `cancelled` one stops it at its next item.
//!
//! A lost producer rank needs nothing here: the task's own retries (or its
//! typed rank-lost error) end or resume the stream on the owner.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ferry_transport::Rank;

use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::transfer::copy_in;
use crate::cluster::wire::Msg;
use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::object::cell::{Slot, Stored, TypeTag};
use crate::object::stream::{Room, StreamPeer};
use crate::sync::lock;

/// How often a producer waiting for room checks that its owner lives.
pub(crate) const TICK: Duration = Duration::from_millis(50);

/// Step 1: waits until item `index` of `stream` (owned by `owner`) may be
/// produced. An error when the owner is lost or this rank shuts down.
pub(crate) fn wait_room<H: RankHost>(
    inner: &H,
    c: &Cluster<H>,
    owner: Rank,
    stream: u64,
    index: u64,
    backpressure: u64,
) -> Result<Room> {
    c.streams
        .get(stream)
        .wait_room(index, backpressure, TICK, || {
            if lock(&c.lost).contains(&owner) {
                return Err(Error::OwnerLost {
                    object: ObjectId::from_u64(stream),
                    rank: owner,
                    reason: "the stream's caller went with it".into(),
                });
            }
            if inner.is_shut() {
                return Err(Error::Shutdown);
            }
            Ok(())
        })
}

/// Step 2: sends item `index` of `stream` to its owner.
pub(crate) fn send_item<H: ClusterHost>(
    c: &Cluster<H>,
    owner: Rank,
    stream: u64,
    index: u64,
    type_name: &str,
    bytes: Vec<u8>,
) -> Result<()> {
    c.send(
        owner,
        &Msg::StreamItem {
            stream,
            index,
            type_name: type_name.to_string(),
            bytes,
        },
    )
}

/// Step 3 on the owner: item `index` of `stream` arrived from `from`.
pub(super) fn on_item<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    stream: u64,
    index: u64,
    type_name: String,
    bytes: Vec<u8>,
) {
    let Some(s) = inner.streams().find(stream) else {
        tell(c, from, stream, u64::MAX, true);
        return;
    };
    let tag = TypeTag::named(&type_name);
    let stored = copy_in(inner, tag, type_name, bytes.len(), |dst| {
        dst.copy_from_slice(&bytes);
        Ok(())
    });
    let slot = match stored {
        Stored::Value(v) => Slot::ready(inner.store().ids.object(), v),
        Stored::Error(e) => {
            // No room for the item: the caller reads the failure in its
            // place (the stream goes on).
            let slot = inner.store().new_output();
            slot.complete(Stored::Error(e));
            slot
        }
    };
    let peer: Arc<dyn StreamPeer> = Arc::new(Peer {
        rank: Arc::downgrade(inner),
        to: from,
    });
    let consumed = s.push(index, slot, Some((from, peer)));
    tell(c, from, stream, consumed, s.is_cancelled());
}

fn tell<H: ClusterHost>(c: &Cluster<H>, to: Rank, stream: u64, consumed: u64, cancelled: bool) {
    let _ = c.send(
        to,
        &Msg::StreamConsumed {
            stream,
            consumed,
            cancelled,
        },
    );
}

/// Step 4 on the producer.
pub(super) fn on_consumed<H: ClusterHost>(
    c: &Cluster<H>,
    stream: u64,
    consumed: u64,
    cancelled: bool,
) {
    c.streams.consumed(stream, consumed, cancelled);
}

/// The producer of a stream this rank owns, on rank `to`.
struct Peer<H> {
    rank: Weak<H>,
    to: Rank,
}

impl<H: ClusterHost> StreamPeer for Peer<H> {
    fn consumed(&self, stream: u64, consumed: u64, cancelled: bool) {
        if let Some(inner) = self.rank.upgrade()
            && let Some(c) = inner.cluster()
        {
            tell(c, self.to, stream, consumed, cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cluster::wire::{Msg, decode, encode};

    #[test]
    fn stream_frames_cross_the_wire() {
        let item = Msg::StreamItem {
            stream: 7,
            index: 3,
            type_name: "u64".into(),
            bytes: vec![1, 2, 3],
        };
        match decode(&encode(&item)).unwrap() {
            Msg::StreamItem {
                stream,
                index,
                type_name,
                bytes,
            } => assert_eq!(
                (stream, index, type_name.as_str(), bytes),
                (7, 3, "u64", vec![1, 2, 3])
            ),
            other => panic!("{other:?}"),
        }
        let told = Msg::StreamConsumed {
            stream: 7,
            consumed: u64::MAX,
            cancelled: true,
        };
        match decode(&encode(&told)).unwrap() {
            Msg::StreamConsumed {
                stream,
                consumed,
                cancelled,
            } => assert_eq!((stream, consumed, cancelled), (7, u64::MAX, true)),
            other => panic!("{other:?}"),
        }
    }
}
