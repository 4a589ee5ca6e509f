//! Results arriving on the owner (protocol step 3): the `Done` of a task or
//! actor call this rank sent. The value is copied into this rank's store
//! (inline, or read one-sidedly from the executor's arena), the refs it
//! holds are borrowed, and the executor is told it may free its copy.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferry_transport::Rank;

use crate::cluster::borrowing::{after_acks, collect_borrows, lookup};
use crate::cluster::rank_host::RankHost;
use crate::cluster::remote_actor;
use crate::cluster::sent::{Sent, Work};
use crate::cluster::shared::Cluster;
use crate::cluster::transfer::{fill_in, read_recorded};
use crate::cluster::wire::{self, Msg, WireRef, WireResult};
use crate::error::Error;
use crate::ids::ObjectId;
use crate::object::cell::{Bytes, KeepAlive, Slot, Stored, StoredValue};
use crate::sync::lock;

/// Step 3 on the owner: the result arrives.
pub(super) fn done<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    object: u64,
    result: WireResult,
    contained: Vec<WireRef>,
) {
    let Some(sent) = lock(&c.sent).remove(&object) else {
        return;
    };
    match &sent.work {
        Work::Task { .. } => {
            c.in_flight[sent.rank as usize].fetch_sub(1, Ordering::Relaxed);
            crate::cluster::remote_task::on_done(c, sent.rank, object);
        }
        Work::ActorCall { actor, .. } => {
            if let WireResult::Failed(e) = &result {
                c.actors.call_failed(*actor, e);
            }
        }
    }
    c.transport.expect_reply(false);
    finish_done(inner, c, from, object, *sent, result, contained, false);
}

/// The rest of [`done`]: the result copied into this rank's store, the
/// slot completed, the executor told it may free its copy. This (message)
/// thread never waits for space: when the store has no room now, the copy
/// is finished on a thread of its own that may spill and wait
/// (`may_wait`), and the executor keeps its copy until then, so a result is
/// never dropped because the owner's store was full for a moment.
#[allow(clippy::too_many_arguments)]
fn finish_done<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    object: u64,
    sent: Sent,
    result: WireResult,
    contained: Vec<WireRef>,
    may_wait: bool,
) {
    let needs_free = matches!(result, WireResult::At { .. }) || !contained.is_empty();
    let tag = sent.type_tag;
    // A small result is kept in its slot (see `ferry_store::INLINE_MAX`):
    // no arena block, so nothing to wait for either.
    let small = match &result {
        WireResult::Inline(bytes) => ferry_store::Sealed::inline(bytes),
        _ => None,
    };
    let len = match &result {
        _ if small.is_some() => None,
        WireResult::Inline(bytes) => Some(bytes.len()),
        WireResult::At { len, .. } => Some(*len as usize),
        WireResult::Failed(_) => None,
    };
    let block = match len.map(|len| inner.store().arena.alloc(len)) {
        Some(Err(
            ferry_store::StoreError::Full { .. }
            | ferry_store::StoreError::Held { .. }
            | ferry_store::StoreError::ShmTooSmall { .. },
        )) if !may_wait => {
            let weak = Arc::downgrade(inner);
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-r{}-result", c.rank))
                .spawn(move || {
                    let Some(inner) = weak.upgrade() else { return };
                    crate::log::set_thread_rank(inner.rank());
                    if let Some(c) = inner.cluster() {
                        finish_done(&inner, c, from, object, sent, result, contained, true);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a thread to wait for room for a result: {e}");
            }
            return;
        }
        other => other,
    };
    let mut stored = match (result, block) {
        // Bytes from another process are checked at the first get.
        (WireResult::Inline(_), None) if let Some(sealed) = small => Stored::Value(
            StoredValue::received(Bytes::Own(sealed), tag, sent.type_name.into()),
        ),
        (WireResult::Failed(w), _) => Stored::Error((*w).into_error()),
        (_, Some(Err(e))) => Stored::Error(e.into()),
        (WireResult::Inline(bytes), Some(Ok(block))) => {
            fill_in(inner, tag, sent.type_name, block, |dst| {
                dst.copy_from_slice(&bytes);
                Ok(())
            })
        }
        (WireResult::At { offset, .. }, Some(Ok(block))) => {
            fill_in(inner, tag, sent.type_name, block, |dst| {
                read_recorded(inner, c, from, offset, dst, || {
                    format!("result {object:016x} from rank {from}")
                })
                .map_err(|source| Error::Transport {
                    what: format!("reading the result of {object:016x} from rank {from}"),
                    source,
                })
            })
        }
        // Only a failed result has no length, and so no block.
        (WireResult::Inline(_) | WireResult::At { .. }, None) => {
            unreachable!("a result with bytes has a length")
        }
    };
    // Borrow the objects the result refers to before the executor lets go.
    let (kept, pending) = collect_borrows(|| {
        contained
            .iter()
            .filter_map(|r| match *r {
                WireRef::Object(id) => lookup(inner, ObjectId::from_u64(id))
                    .ok()
                    .map(|s| s as KeepAlive),
                WireRef::Actor { id, host } => remote_actor::keep(inner, id, host),
            })
            .collect::<Vec<_>>()
    });
    let slot = sent.slot.clone();
    if let Stored::Value(v) = &mut stored {
        let refs = kept
            .iter()
            .filter_map(|k| k.clone().downcast::<Slot>().ok())
            .filter(|s| s.id.rank() != c.rank)
            .map(|s| Arc::downgrade(&s))
            .collect();
        v._contained = kept;
        // Kept to rebuild what the result refers to if its owner is lost.
        c.lineage.record(object, sent, &contained, refs);
    }
    slot.complete(stored);
    if needs_free {
        let t = c.transport.clone();
        after_acks(c, &pending, move || {
            let _ = t.send(from, wire::encode(&Msg::Free { object }));
        });
    }
}
