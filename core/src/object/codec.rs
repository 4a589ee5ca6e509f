//! The call codec: a call's arguments (or an actor's state) as an rkyv
//! archive, with the refs and handles nested in them kept alive, and back.
//!
//! Encoding runs inside [`capture`](crate::object::exports::capture), so a
//! ref serialized among the arguments is listed in the rank's exports and
//! kept alive by the [`EncodedCall`]. Decoding validates the bytes before
//! they are read; refs among them are looked up in the runtime the caller
//! installed on the thread.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::object::cell::KeepAlive;
use crate::object::exports::{self, Exports};
use crate::values::Remotable;

/// The type parameter of a ref whose type is known only to the caller
/// (`cast` it back before `get`).
#[derive(Debug)]
pub enum Untyped {}

/// A call encoded for running later by id: the function's id and its
/// arguments as an rkyv archive. Refs among the arguments are kept alive
/// while the encoded call lives.
pub struct EncodedCall {
    /// The function's stable id.
    pub id: u64,
    /// The archived argument tuple.
    pub args: rkyv::util::AlignedVec<16>,
    _kept: Vec<KeepAlive>,
}

impl EncodedCall {
    /// Whether the arguments hold refs or actor handles.
    pub fn has_refs(&self) -> bool {
        !self._kept.is_empty()
    }

    /// A call of `id` with no arguments (a runtime request, not a method).
    pub(crate) fn without_args(id: u64) -> EncodedCall {
        EncodedCall {
            id,
            args: Default::default(),
            _kept: Vec::new(),
        }
    }

    pub(crate) fn into_parts(self) -> (rkyv::util::AlignedVec<16>, Vec<KeepAlive>) {
        (self.args, self._kept)
    }
}

impl std::fmt::Debug for EncodedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EncodedCall({:016x}, {} bytes)",
            self.id,
            self.args.len()
        )
    }
}

/// Encodes the argument tuple `args` of a call of `id`, listing the refs
/// and handles among them in `exports`.
pub(crate) fn encode<T: ferry_store::Storable>(
    exports: &Arc<Exports>,
    id: u64,
    args: &T,
) -> Result<EncodedCall> {
    // Serialized once (a call's arguments fit the store's scratch buffer,
    // mostly): counting first and then writing ran the serializer twice
    // (Task Bench's 2-rank stencil, `callgrind`: 2,650 instructions a
    // task's arguments, 1,810 in one pass).
    let (bytes, kept) = exports::capture(exports, || ferry_store::to_aligned_vec(args));
    Ok(EncodedCall {
        id,
        args: bytes?,
        _kept: kept,
    })
}

/// Decodes an argument tuple: validated, then deserialized with refs looked
/// up in this thread's runtime. Bytes that are not a valid archive are an
/// error.
pub(crate) fn decode<T: Remotable>(bytes: &[u8]) -> Result<T> {
    // Read in place when aligned as an archive must be (a frame's own
    // buffer is); else from an aligned copy.
    let copy;
    let bytes = if (bytes.as_ptr() as usize).is_multiple_of(16) {
        bytes
    } else {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        copy = aligned;
        &copy[..]
    };
    let corrupt = |e: ferry_store::StoreError| Error::Corrupt {
        object: "encoded call arguments".to_string(),
        reason: e.to_string(),
    };
    let archived = ferry_store::access::<T>(bytes).map_err(corrupt)?;
    ferry_store::deserialize::<T>(archived).map_err(corrupt)
}
