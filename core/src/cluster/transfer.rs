//! Values crossing ranks: how a sender tells where a value is (inline when
//! small, else its place in the sender's arena), and how a receiver gets it
//! into its own store (a copy, a one-sided read, or a view in place of a
//! same-node neighbour's arena).

use std::sync::Arc;

use ferry_store::ReadOnlySegment;
use ferry_transport::Rank;

use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::Cluster;
use crate::cluster::wire::{WireError, WireResult};
use crate::error::{Error, Result};
use crate::object::cell::{Bytes, Stored, StoredValue, TypeTag};

/// Results up to this size travel inside `Done`.
pub(super) const BY_VALUE_MAX: usize = 64 * 1024;

// Objects kept inline have no place in the arena to be read at: they must
// travel by value.
const _: () = assert!(BY_VALUE_MAX >= ferry_store::INLINE_MAX);

impl WireResult {
    /// Where a receiver finds `v`: in the message when small, else at its
    /// place in this rank's arena (which the sender keeps until it is read,
    /// and never spills from then on). A spilled object is read back first;
    /// when that fails, the failure is what the receiver gets (`what` and
    /// `rank` name it).
    pub(super) fn of(v: &StoredValue, what: &dyn std::fmt::Display, rank: Rank) -> WireResult {
        let len = v.block.len();
        let at = if len > BY_VALUE_MAX {
            v.block.lend()
        } else {
            None
        };
        let found = match at {
            Some(Ok(offset)) => Ok(WireResult::At {
                offset: offset as u64,
                len: len as u64,
            }),
            Some(Err(e)) => Err(e),
            None => v
                .block
                .access()
                .map(|a| WireResult::Inline(a.as_slice().to_vec())),
        };
        found.unwrap_or_else(|e| {
            WireResult::failed(WireError::from_error(&e.into(), &what.to_string(), rank))
        })
    }
}

/// A one-sided read of `dst.len()` bytes at `offset` of rank `from`'s
/// arena, on the timeline as a transfer named by `name`.
pub(super) fn read_recorded<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    offset: u64,
    dst: &mut [u8],
    name: impl FnOnce() -> String,
) -> std::result::Result<(), ferry_transport::TransportError> {
    let t = inner.pool().timeline.start();
    let read = c.transport.read(from, offset as usize, dst);
    if inner.pool().timeline.is_on() {
        let bytes = dst.len() as u64;
        inner
            .pool()
            .timeline
            .record(t, crate::timeline::Kind::Transfer, name(), bytes);
    }
    read
}

/// A new value in this rank's store (inline when small, else in its
/// arena), of `len` bytes `fill` writes.
pub(super) fn copy_in<H: RankHost>(
    inner: &Arc<H>,
    type_tag: TypeTag,
    type_name: impl Into<std::borrow::Cow<'static, str>>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Stored {
    match inner.store().arena.seal_filled(len, fill) {
        // Bytes from another process are checked at the first get.
        Ok(sealed) => Stored::Value(StoredValue::received(
            Bytes::Own(sealed),
            type_tag,
            type_name.into(),
        )),
        Err(e) => Stored::Error(e),
    }
}

/// [`copy_in`] into a block already allocated.
pub(super) fn fill_in<H: RankHost>(
    inner: &Arc<H>,
    type_tag: TypeTag,
    type_name: impl Into<std::borrow::Cow<'static, str>>,
    mut block: ferry_store::BlockMut,
    fill: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Stored {
    if let Err(e) = fill(block.as_mut_slice()) {
        return Stored::Error(e);
    }
    // Bytes from another process are checked at the first get.
    Stored::Value(StoredValue::received(
        Bytes::Own(inner.store().arena.seal(block.freeze())),
        type_tag,
        type_name.into(),
    ))
}

/// The value of `object` at `offset..offset + len` of rank `from`'s arena:
/// viewed in place when `from` is on this node, else read one-sidedly into
/// this rank's arena.
pub(super) fn stored_at<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    object: u64,
    type_name: String,
    offset: u64,
    len: u64,
) -> Stored {
    let tag = TypeTag::named(&type_name);
    let fits = |s: &ReadOnlySegment| {
        (offset as usize)
            .checked_add(len as usize)
            .is_some_and(|end| end <= s.len())
    };
    match c.neighbour(from) {
        // Same node: view the owner's bytes in place (zero copy).
        Some(seg) if fits(&seg) => Stored::Value(StoredValue::received(
            Bytes::Mapped {
                seg,
                offset: offset as usize,
                len: len as usize,
            },
            tag,
            type_name.into(),
        )),
        _ => copy_in(inner, tag, type_name, len as usize, |d| {
            read_recorded(inner, c, from, offset, d, || {
                format!("object {object:016x} from rank {from}")
            })
            .map_err(|source| Error::Transport {
                what: format!("reading object {object:016x} from rank {from}"),
                source,
            })
        }),
    }
}

/// A value from rank `from` for borrowed `object`, stored here.
pub(super) fn stored_from<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    object: u64,
    type_name: String,
    result: WireResult,
) -> Stored {
    match result {
        WireResult::Inline(bytes) => {
            let tag = TypeTag::named(&type_name);
            copy_in(inner, tag, type_name, bytes.len(), |d| {
                d.copy_from_slice(&bytes);
                Ok(())
            })
        }
        WireResult::At { offset, len } => stored_at(inner, c, from, object, type_name, offset, len),
        WireResult::Failed(w) => Stored::Error((*w).into_error()),
    }
}
