//! rkyv helpers: serialize values straight into the arena (one copy), access
//! them in place with validation, and build `Vec` archives of primitives with
//! no copy at all.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::primitive::{FixedIsize, FixedUsize};
use rkyv::rancor::{self, Source};
use rkyv::ser::allocator::ArenaHandle;
use rkyv::ser::sharing::Share;
use rkyv::ser::{Positional, Serializer, Writer, WriterExt};
use rkyv::util::{AlignedVec, with_arena};
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::{Archive, Deserialize, Place, Serialize};

use crate::arena::{Arena, Block};
use crate::error::StoreError;
use crate::sealed::Sealed;

/// An rkyv writer over a caller-provided byte slice, or a pure counter.
///
/// In counting mode ([`SliceWriter::counting`]) it only advances its position,
/// which yields the exact archived length; in writing mode
/// ([`SliceWriter::new`]) it copies into the slice and fails instead of
/// overrunning it.
///
/// ```
/// use ferry_store::SliceWriter;
/// use rkyv::ser::{Positional, Writer};
///
/// let mut buf = [0u8; 4];
/// let mut w = SliceWriter::new(&mut buf);
/// Writer::<rkyv::rancor::Error>::write(&mut w, b"abc").unwrap();
/// assert_eq!(w.pos(), 3);
/// assert!(Writer::<rkyv::rancor::Error>::write(&mut w, b"de").is_err());
/// assert_eq!(&buf[..3], b"abc");
/// ```
#[derive(Debug)]
pub struct SliceWriter<'a> {
    buf: Option<&'a mut [u8]>,
    pos: usize,
}

impl<'a> SliceWriter<'a> {
    /// A writer that counts bytes without storing them.
    pub fn counting() -> Self {
        SliceWriter { buf: None, pos: 0 }
    }

    /// A writer that fills `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter {
            buf: Some(buf),
            pos: 0,
        }
    }

    /// A writer into `buf` whose next byte goes to `buf[pos]`.
    fn at(buf: &'a mut [u8], pos: usize) -> Self {
        SliceWriter {
            buf: Some(buf),
            pos,
        }
    }

    /// Bytes written (or counted) so far.
    pub fn pos(&self) -> usize {
        self.pos
    }
}

impl Positional for SliceWriter<'_> {
    fn pos(&self) -> usize {
        self.pos
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "serialized object overruns its buffer: needs at least {needed} bytes, buffer has {capacity}"
)]
struct Overrun {
    needed: usize,
    capacity: usize,
}

impl<E: Source> Writer<E> for SliceWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        let capacity = self.buf.as_ref().map_or(usize::MAX, |b| b.len());
        let end = match self.pos.checked_add(bytes.len()) {
            Some(end) if end <= capacity => end,
            _ => {
                return Err(E::new(Overrun {
                    needed: self.pos.saturating_add(bytes.len()),
                    capacity,
                }));
            }
        };
        if let Some(buf) = self.buf.as_deref_mut() {
            buf[self.pos..end].copy_from_slice(bytes);
        }
        self.pos = end;
        Ok(())
    }
}

/// The error type of every rkyv operation here: unlike `rancor::Error`, it
/// keeps its message in release builds, so a corrupt archive says why.
pub type ArchiveError = rancor::BoxedError;

/// The serializer that writes objects into the arena.
pub type StoreSerializer<'a> = HighSerializer<SliceWriter<'a>, ArenaHandle<'a>, ArchiveError>;

/// The validator used by [`access`].
pub type StoreValidator<'a> = HighValidator<'a, ArchiveError>;

/// Anything that can be stored: every `T` with an rkyv `Archive` +
/// `Serialize` implementation (derive both) that is `Send + 'static`.
/// Blanket-implemented; never implement it by hand.
pub trait Storable: Archive + for<'a> Serialize<StoreSerializer<'a>> + Send + 'static {}

impl<T> Storable for T where T: Archive + for<'a> Serialize<StoreSerializer<'a>> + Send + 'static {}

fn ser_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Serialize(e.to_string())
}

fn serialize_with<T: Storable>(v: &T, writer: SliceWriter<'_>) -> Result<usize, StoreError> {
    with_arena(|arena| {
        let mut ser = Serializer::new(writer, arena.acquire(), Share::new());
        rkyv::api::serialize_using::<_, ArchiveError>(v, &mut ser).map_err(ser_err)?;
        Ok(ser.into_writer().pos)
    })
}

/// The exact number of bytes `v` archives to (a counting serialization pass).
///
/// ```
/// assert_eq!(ferry_store::archived_len(&7u64).unwrap(), 8);
/// ```
///
/// # Errors
///
/// [`StoreError::Serialize`] if the value's `Serialize` impl fails.
///
/// # Panics
///
/// Like rkyv itself, if the archive would exceed the range of rkyv's relative
/// pointers (Ferry builds rkyv with 64-bit relative pointers, so objects over
/// 2 GiB are fine).
pub fn archived_len<T: Storable>(v: &T) -> Result<usize, StoreError> {
    serialize_with(v, SliceWriter::counting())
}

/// Serializes `v` into the start of `buf` and returns the bytes written.
///
/// `buf` must start on a 16-byte boundary (as arena blocks do), because rkyv
/// aligns archived data relative to the start of the buffer. The archive's
/// root is at the end of the written bytes, so access `&buf[..written]`.
///
/// ```
/// let mut buf = rkyv::util::AlignedVec::<16>::new();
/// buf.resize(64, 0);
/// let n = ferry_store::serialize_into(&String::from("hi"), &mut buf).unwrap();
/// let s = ferry_store::access::<String>(&buf[..n]).unwrap();
/// assert_eq!(s.as_str(), "hi");
/// ```
///
/// # Errors
///
/// [`StoreError::Serialize`] when `buf` is misaligned or too small, or the
/// value's `Serialize` impl fails.
///
/// # Panics
///
/// As [`archived_len`].
pub fn serialize_into<T: Storable>(v: &T, buf: &mut [u8]) -> Result<usize, StoreError> {
    if !(buf.as_ptr() as usize).is_multiple_of(16) {
        return Err(StoreError::Serialize(
            "destination buffer is not 16-byte aligned".into(),
        ));
    }
    serialize_with(v, SliceWriter::new(buf))
}

/// Archives `v` into a fresh block of `arena` and freezes it. An archive of
/// up to 1 KiB is serialized once into a per-thread buffer and copied in;
/// a bigger one is counted first, then serialized in place (its data is
/// copied once).
///
/// ```
/// use ferry_store::{Arena, StoreConfig, access, put};
///
/// let mut cfg = StoreConfig::new(format!("doc-put-{}", std::process::id()), 0, 1 << 20);
/// cfg.dir = std::env::temp_dir();
/// let arena = Arena::create(&cfg).unwrap();
/// let block = put(&arena, &vec![1.0f64, 2.0, 3.0]).unwrap();
/// let v = access::<Vec<f64>>(&block).unwrap();
/// assert_eq!(v.len(), 3);
/// assert_eq!(v[2], 3.0);
/// ```
///
/// # Errors
///
/// [`StoreError::Full`] when the arena cannot hold the archive,
/// [`StoreError::Serialize`] when serialization fails.
///
/// # Panics
///
/// As [`archived_len`].
pub fn put<T: Storable>(arena: &Arena, v: &T) -> Result<Block, StoreError> {
    #[cfg(target_endian = "little")]
    if let Some(put) = put_pod_vec(arena, v) {
        return put;
    }
    if let Some(block) = put_small(arena, v)? {
        return Ok(block);
    }
    let len = archived_len(v)?;
    let mut block = arena.alloc(len)?;
    serialize_counted(v, block.as_mut_slice())?;
    Ok(block.freeze())
}

/// [`put`], sealed: an archive of at most [`INLINE_MAX`](crate::INLINE_MAX) bytes (a task's
/// few numbers) is kept in the [`Sealed`] handle itself, not in the arena
/// (see `inline`); a bigger one is [`put`] and sealed.
///
/// ```
/// use ferry_store::{Arena, StoreConfig, access, put_sealed};
///
/// let mut cfg = StoreConfig::new(format!("doc-put-sealed-{}", std::process::id()), 0, 1 << 20);
/// cfg.dir = std::env::temp_dir();
/// let arena = Arena::create(&cfg)?;
/// let small = put_sealed(&arena, &vec![1u8; 16])?;
/// let big = put_sealed(&arena, &vec![1u8; 100])?;
/// assert!(small.is_inline() && !big.is_inline());
/// assert_eq!(access::<Vec<u8>>(&small.pin()?)?.len(), 16);
/// assert_eq!(arena.used(), big.pin()?.len().next_multiple_of(16));
/// # Ok::<(), ferry_store::StoreError>(())
/// ```
///
/// # Errors
///
/// As [`put`].
///
/// # Panics
///
/// As [`archived_len`].
pub fn put_sealed<T: Storable>(arena: &Arena, v: &T) -> Result<Sealed, StoreError> {
    #[cfg(target_endian = "little")]
    if let Some(sealed) = put_pod_vec_sealed(arena, v) {
        return sealed;
    }
    if let Some(sealed) = with_scratch_archive(v, |bytes| arena.seal_copy(bytes)) {
        return sealed;
    }
    // Counted first (the scratch buffer was too small, or in use).
    arena.seal_filled(archived_len(v)?, |buf| serialize_counted(v, buf))
}

/// [`put_sealed`] of a `Vec` of a [`PodElement`]: written without the
/// serializer (as [`put_pod_vec`] does), inline when it fits. `None` for
/// any other type.
#[cfg(target_endian = "little")]
fn put_pod_vec_sealed<T: Storable>(arena: &Arena, v: &T) -> Option<Result<Sealed, StoreError>> {
    fn sealed<P: PodElement>(arena: &Arena, xs: &[P]) -> Result<Sealed, StoreError> {
        let (element_bytes, root_pos, total) = pod_vec_layout::<P>(xs.len())?;
        let write = |buf: &mut [u8]| {
            write_pod_vec::<P>(buf, xs.len(), (element_bytes, root_pos), |out| {
                out.copy_from_slice(xs);
                Ok(())
            })
        };
        arena.seal_filled(total, write)
    }
    let v = v as &dyn std::any::Any;
    macro_rules! each {
        ($($p:ty),*) => {$(
            if let Some(xs) = v.downcast_ref::<Vec<$p>>() {
                return Some(sealed::<$p>(arena, xs));
            }
        )*};
    }
    each!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);
    None
}

/// Serializes `v` into `buf`, which [`archived_len`] sized for it: an error
/// if the second pass wrote another length than the first counted.
fn serialize_counted<T: Storable>(v: &T, buf: &mut [u8]) -> Result<(), StoreError> {
    let (len, written) = (buf.len(), serialize_into(v, buf)?);
    if written != len {
        return Err(StoreError::Serialize(format!(
            "serialization is not deterministic: counted {len} bytes, wrote {written}"
        )));
    }
    Ok(())
}

/// [`put`] of a `Vec` of a [`PodElement`] (bytes, integers, floats, the
/// usual payload of a numeric task): its elements copied once into the
/// arena and the root written after them ([`try_put_pod_slice_with`], the
/// same bytes rkyv writes), with no serializer. On the 2-core VM rkyv took
/// ~40 ns to archive a 16-byte `Vec<u8>` through the scratch buffer, as much
/// as the arena's allocation. `None` for any other type.
/// Whether `T` is a `Vec` of a [`PodElement`], which [`put`] writes
/// without the serializer and which can hold no ref or handle.
///
/// ```
/// assert!(ferry_store::is_plain_vec::<Vec<f64>>());
/// assert!(!ferry_store::is_plain_vec::<Vec<String>>());
/// ```
pub fn is_plain_vec<T: 'static>() -> bool {
    use std::any::TypeId;
    macro_rules! any_of {
        ($($p:ty),*) => { false $(|| TypeId::of::<T>() == TypeId::of::<Vec<$p>>())* };
    }
    any_of!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64)
}

#[cfg(target_endian = "little")]
fn put_pod_vec<T: Storable>(arena: &Arena, v: &T) -> Option<Result<Block, StoreError>> {
    let v = v as &dyn std::any::Any;
    macro_rules! each {
        ($($p:ty),*) => {$(
            if let Some(xs) = v.downcast_ref::<Vec<$p>>() {
                return Some(put_pod_slice_with::<$p>(arena, xs.len(), |out| {
                    out.copy_from_slice(xs)
                }));
            }
        )*};
    }
    each!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);
    None
}

/// Archives of at most this many bytes are written once, into the calling
/// thread's scratch buffer, and copied into the arena: for a small value
/// the counting pass costs more than the copy (the serializer's setup is
/// most of a small value's serialization).
const SCRATCH_BYTES: usize = 1024;

thread_local! {
    static SCRATCH: RefCell<AlignedVec<16>> = RefCell::new(AlignedVec::new());
}

/// Serializes `v` once into the calling thread's scratch buffer and hands
/// the archive to `f`: `None` when it does not fit [`SCRATCH_BYTES`] (or
/// the serialization failed there: the two-pass path then says why) or the
/// buffer is in use (a `Serialize` impl that puts or encodes).
fn with_scratch_archive<T: Storable, R>(v: &T, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.try_borrow_mut().ok()?;
        if buf.len() < SCRATCH_BYTES {
            buf.resize(SCRATCH_BYTES, 0);
        }
        // An AlignedVec<16> starts on a 16-byte boundary, as arena blocks
        // and the vectors `to_aligned_vec` makes do, so the archive's
        // layout is the same once copied.
        let len = serialize_with(v, SliceWriter::new(&mut buf[..])).ok()?;
        Some(f(&buf[..len]))
    })
}

/// [`put`] in one serialization pass, for an archive that fits
/// [`SCRATCH_BYTES`]; `Ok(None)` when it does not (see
/// [`with_scratch_archive`]).
fn put_small<T: Storable>(arena: &Arena, v: &T) -> Result<Option<Block>, StoreError> {
    with_scratch_archive(v, |bytes| {
        let mut block = arena.alloc(bytes.len())?;
        block.as_mut_slice().copy_from_slice(bytes);
        Ok(block.freeze())
    })
    .transpose()
}

/// `v`'s archive in a vector of its own, aligned as an archive must be:
/// serialized once when it fits [`SCRATCH_BYTES`] (a call's arguments,
/// mostly), else counted first, then serialized in place.
///
/// ```
/// let bytes = ferry_store::to_aligned_vec(&(7u32, String::from("hi"))).unwrap();
/// let back = ferry_store::access::<(u32, String)>(&bytes).unwrap();
/// assert_eq!((back.0.to_native(), back.1.as_str()), (7, "hi"));
/// let big = ferry_store::to_aligned_vec(&vec![1u64; 1000]).unwrap();
/// assert_eq!(ferry_store::access::<Vec<u64>>(&big).unwrap().len(), 1000);
/// ```
///
/// # Errors
///
/// [`StoreError::Serialize`] if the value's `Serialize` impl fails.
///
/// # Panics
///
/// As [`archived_len`].
pub fn to_aligned_vec<T: Storable>(v: &T) -> Result<AlignedVec<16>, StoreError> {
    let copy = |bytes: &[u8]| {
        let mut out = AlignedVec::<16>::with_capacity(bytes.len());
        out.extend_from_slice(bytes);
        out
    };
    if let Some(out) = with_scratch_archive(v, copy) {
        return Ok(out);
    }
    let len = archived_len(v)?;
    let mut out = AlignedVec::<16>::with_capacity(len);
    out.resize(len, 0);
    if len > 0 {
        serialize_counted(v, &mut out)?;
    }
    Ok(out)
}

/// Validates `bytes` as an archived `T` (root at the end) and returns it.
///
/// ```
/// let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&42u32).unwrap();
/// assert_eq!(*ferry_store::access::<u32>(&bytes).unwrap(), 42);
/// assert!(ferry_store::access::<u64>(&bytes).is_err());
/// ```
///
/// # Errors
///
/// [`StoreError::Corrupt`] when the bytes are not a valid archive of `T`.
pub fn access<T>(bytes: &[u8]) -> Result<&T::Archived, StoreError>
where
    T: Archive,
    T::Archived: for<'a> CheckBytes<StoreValidator<'a>>,
{
    rkyv::access::<T::Archived, ArchiveError>(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Returns the archived `T` at the end of `bytes` without validation.
///
/// # Safety
///
/// `bytes` must be exactly the bytes of an archive of `T` produced by this
/// crate (or rkyv with the same settings), e.g. a [`Block`] returned by
/// [`put`] for a `T`, or bytes that [`access`] accepted before, and must be
/// aligned as they were when written (16 bytes suffices).
///
/// ```
/// let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&42u32).unwrap();
/// // SAFETY: `bytes` was just produced by rkyv for a `u32`.
/// let v = unsafe { ferry_store::access_unchecked::<u32>(&bytes) };
/// assert_eq!(*v, 42);
/// ```
pub unsafe fn access_unchecked<T: Archive>(bytes: &[u8]) -> &T::Archived {
    // SAFETY: the caller guarantees `bytes` holds a valid archived `T` at the
    // default root position.
    unsafe { rkyv::access_unchecked::<T::Archived>(bytes) }
}

/// Deserializes an archived value into an owned `T`.
///
/// ```
/// let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&String::from("x")).unwrap();
/// let archived = ferry_store::access::<String>(&bytes).unwrap();
/// let s: String = ferry_store::deserialize::<String>(archived).unwrap();
/// assert_eq!(s, "x");
/// ```
///
/// # Errors
///
/// [`StoreError::Corrupt`] when deserialization fails.
pub fn deserialize<T>(archived: &T::Archived) -> Result<T, StoreError>
where
    T: Archive,
    T::Archived: Deserialize<T, HighDeserializer<ArchiveError>>,
{
    rkyv::deserialize::<T, ArchiveError>(archived).map_err(|e| StoreError::Corrupt(e.to_string()))
}

mod sealed {
    #[allow(unreachable_pub)] // sealed-trait pattern: public but unnameable
    pub trait Sealed {}
}

/// Plain numeric element types whose archived form (on little-endian targets)
/// has the same bytes and alignment as the native value: `u8`, `i8`, `u16`,
/// `i16`, `u32`, `i32`, `u64`, `i64`, `f32`, `f64`. Sealed.
pub trait PodElement: sealed::Sealed + Archive + Copy + Send + Sync + 'static {}

/// `true` when the two arrays are equal (usable in `const` items).
#[cfg(target_endian = "little")]
const fn same_bytes<const N: usize>(a: [u8; N], b: [u8; N]) -> bool {
    let mut i = 0;
    while i < N {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

macro_rules! pod_element {
    ($($t:ty => $probe:expr),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl PodElement for $t {}

        // Compile-time proof that the archived form is the native form: same
        // size, same alignment, same bytes for an asymmetric probe value.
        #[cfg(target_endian = "little")]
        const _: () = {
            type A = <$t as Archive>::Archived;
            assert!(size_of::<A>() == size_of::<$t>());
            assert!(align_of::<A>() == align_of::<$t>());
            let probe: $t = $probe;
            // SAFETY: `A` is a plain-old-data wrapper of `$t` with the same
            // size (asserted above) and no padding, so it transmutes to a byte
            // array of that size.
            let archived = unsafe {
                core::mem::transmute::<A, [u8; size_of::<$t>()]>(A::from_native(probe))
            };
            assert!(same_bytes(archived, probe.to_ne_bytes()));
        };
    )*};
}

impl sealed::Sealed for u8 {}
impl PodElement for u8 {}
impl sealed::Sealed for i8 {}
impl PodElement for i8 {}

pod_element! {
    u16 => 0x0102,
    i16 => -0x0102,
    u32 => 0x0102_0304,
    i32 => -0x0102_0304,
    u64 => 0x0102_0304_0506_0708,
    i64 => -0x0102_0304_0506_0708,
    f32 => -1.234_567_f32,
    f64 => -1.234_567_890_123_f64,
}

/// `u8`/`i8` archive as themselves.
const _: () = {
    assert!(size_of::<<u8 as Archive>::Archived>() == 1);
    assert!(size_of::<<i8 as Archive>::Archived>() == 1);
};

/// Stand-in that archives as `ArchivedVec<P::Archived>` of `len` elements
/// already in place; used to write just the root of a `Vec<P>` archive.
struct PodVecRoot<P> {
    len: usize,
    _element: PhantomData<P>,
}

impl<P: PodElement> Archive for PodVecRoot<P> {
    type Archived = ArchivedVec<P::Archived>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: VecResolver, out: Place<Self::Archived>) {
        ArchivedVec::resolve_from_len(self.len, resolver, out);
    }
}

/// Layout of a `Vec<P>` archive with `len` elements, as rkyv writes it:
/// elements at 0, padding, root `ArchivedVec` at the end.
/// Returns `(element_bytes, root_pos, total_len)`.
fn pod_vec_layout<P: PodElement>(len: usize) -> Result<(usize, usize, usize), StoreError> {
    let too_big = || {
        StoreError::Serialize(format!(
            "a vector of {len} {}-byte elements exceeds the archive format's limits",
            size_of::<P>()
        ))
    };
    let element_bytes = len.checked_mul(size_of::<P>()).ok_or_else(too_big)?;
    let root_align = align_of::<ArchivedVec<P::Archived>>();
    let root_pos = element_bytes
        .checked_next_multiple_of(root_align)
        .ok_or_else(too_big)?;
    // The root's relative pointer spans `root_pos` bytes backwards, and the
    // length is stored as a `FixedUsize`.
    if root_pos > FixedIsize::MAX as usize || len > FixedUsize::MAX as usize {
        return Err(too_big());
    }
    let total = root_pos
        .checked_add(size_of::<ArchivedVec<P::Archived>>())
        .ok_or_else(too_big)?;
    Ok((element_bytes, root_pos, total))
}

/// Builds the archive of a `Vec<P>` with `len` elements directly in `arena`:
/// `fill` writes the elements in place (zero copies), then the `ArchivedVec`
/// root is written after them exactly as rkyv would. The result is
/// byte-for-byte what [`put`] of the same `Vec<P>` gives.
///
/// The slice passed to `fill` holds unspecified values on entry (zeros or
/// stale data); `fill` should overwrite all of it.
///
/// ```
/// use ferry_store::{Arena, StoreConfig, access, put_pod_slice_with};
///
/// let mut cfg = StoreConfig::new(format!("doc-pod-{}", std::process::id()), 0, 1 << 20);
/// cfg.dir = std::env::temp_dir();
/// let arena = Arena::create(&cfg).unwrap();
/// let block = put_pod_slice_with::<f64>(&arena, 4, |xs| {
///     for (i, x) in xs.iter_mut().enumerate() {
///         *x = i as f64 * 0.5;
///     }
/// })
/// .unwrap();
/// let v = access::<Vec<f64>>(&block).unwrap();
/// assert_eq!(v.as_slice(), &[0.0, 0.5, 1.0, 1.5]);
/// ```
///
/// # Errors
///
/// [`StoreError::Full`] when the arena cannot hold it,
/// [`StoreError::Serialize`] when `len` exceeds the archive format's limits.
#[cfg(target_endian = "little")]
pub fn put_pod_slice_with<P: PodElement>(
    arena: &Arena,
    len: usize,
    fill: impl FnOnce(&mut [P]),
) -> Result<Block, StoreError> {
    try_put_pod_slice_with(arena, len, |xs| {
        fill(xs);
        Ok(())
    })
}

/// Like [`put_pod_slice_with`], for a `fill` that can fail (reading a
/// file): on its error the block is given back and the error returned.
///
/// # Errors
///
/// As [`put_pod_slice_with`], and `fill`'s error.
#[cfg(target_endian = "little")]
pub fn try_put_pod_slice_with<P: PodElement>(
    arena: &Arena,
    len: usize,
    fill: impl FnOnce(&mut [P]) -> Result<(), StoreError>,
) -> Result<Block, StoreError> {
    let (element_bytes, root_pos, total) = pod_vec_layout::<P>(len)?;
    let mut block = arena.alloc(total)?;
    write_pod_vec::<P>(block.as_mut_slice(), len, (element_bytes, root_pos), fill)?;
    Ok(block.freeze())
}

/// Writes the archive of a `Vec<P>` of `len` elements into `buf` (its
/// whole length, 16-byte aligned), laid out as [`pod_vec_layout`] says:
/// `fill` writes the elements, then the root goes after them.
#[cfg(target_endian = "little")]
fn write_pod_vec<P: PodElement>(
    buf: &mut [u8],
    len: usize,
    (element_bytes, root_pos): (usize, usize),
    fill: impl FnOnce(&mut [P]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if !(buf.as_ptr() as usize).is_multiple_of(16) || element_bytes > root_pos {
        return Err(StoreError::Serialize(
            "a vector's archive needs a 16-byte aligned buffer".into(),
        ));
    }
    {
        let elements = &mut buf[..element_bytes];
        // SAFETY: `elements` is `len * size_of::<P>()` bytes, exclusively
        // borrowed, and starts on a 16-byte boundary (checked above; arena
        // blocks and inline objects are 16-byte aligned, empty blocks page
        // aligned), which satisfies `align_of::<P>() <= 8`. `P` is a
        // primitive number, for which every bit pattern is a valid value,
        // and the buffer is initialised memory.
        let elements: &mut [P] =
            unsafe { std::slice::from_raw_parts_mut(elements.as_mut_ptr().cast::<P>(), len) };
        fill(elements)?;
    }
    // rkyv pads with zeros before the root.
    buf[element_bytes..root_pos].fill(0);
    let root = PodVecRoot::<P> {
        len,
        _element: PhantomData,
    };
    let mut writer = SliceWriter::at(buf, root_pos);
    // SAFETY: the resolver points at position 0, where the `len` elements
    // were just written in their archived form (identical to the native form
    // on little-endian targets, checked at compile time for every
    // `PodElement`), which is what serializing `root` would have produced; the
    // writer is at `root_pos`, a multiple of the root's alignment, in a
    // 16-byte aligned buffer.
    unsafe {
        WriterExt::<ArchiveError>::resolve_aligned(&mut writer, &root, VecResolver::from_pos(0))
    }
    .map_err(ser_err)?;
    debug_assert_eq!(writer.pos(), buf.len());
    Ok(())
}

/// Views an archived vector of primitives as a native slice, without copying.
///
/// ```
/// let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&vec![1u32, 2, 3]).unwrap();
/// let archived = ferry_store::access::<Vec<u32>>(&bytes).unwrap();
/// let native: &[u32] = ferry_store::as_native_slice::<u32>(archived);
/// assert_eq!(native, &[1, 2, 3]);
/// ```
#[cfg(target_endian = "little")]
pub fn as_native_slice<P: PodElement>(archived: &ArchivedVec<P::Archived>) -> &[P] {
    let s = archived.as_slice();
    // SAFETY: `PodElement` is sealed and only implemented for primitives whose
    // archived type has the same size, alignment and byte representation as
    // the native type on little-endian targets (checked at compile time in
    // `pod_element!`; `u8`/`i8` archive as themselves), and every bit pattern
    // is valid for both. So the archived elements are also a valid `[P]` of
    // the same length, borrowed for the same lifetime.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<P>(), s.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_matches_to_bytes() {
        let v = (1u8, String::from("hello world, long enough"), vec![3u16; 5]);
        let n = archived_len(&v).unwrap();
        let bytes = rkyv::to_bytes::<rancor::Error>(&v).unwrap();
        assert_eq!(n, bytes.len());
    }

    #[test]
    fn pod_layout_matches_rkyv() {
        for len in [0usize, 1, 3, 7, 64] {
            let (_, _, total) = pod_vec_layout::<u8>(len).unwrap();
            assert_eq!(total, archived_len(&vec![0u8; len]).unwrap());
            let (_, _, total) = pod_vec_layout::<f64>(len).unwrap();
            assert_eq!(total, archived_len(&vec![0f64; len]).unwrap());
            let (_, _, total) = pod_vec_layout::<i16>(len).unwrap();
            assert_eq!(total, archived_len(&vec![0i16; len]).unwrap());
        }
        assert!(pod_vec_layout::<u64>(usize::MAX / 4).is_err());
    }

    #[test]
    fn put_is_exact_on_both_sides_of_the_scratch_buffer() {
        let mut cfg =
            crate::StoreConfig::new(format!("put-scratch-{}", std::process::id()), 0, 1 << 20);
        cfg.dir = std::env::temp_dir();
        let arena = Arena::create(&cfg).unwrap();
        // Values (not plain vectors, which go around the scratch buffer)
        // whose archives end just below, at and above the scratch buffer's
        // size, and a value with inner pointers.
        for len in (SCRATCH_BYTES - 40..SCRATCH_BYTES + 24).chain([0, 1, 4096]) {
            let v: (u32, Vec<u8>) = (7, (0..len).map(|i| i as u8).collect());
            let block = put(&arena, &v).unwrap();
            assert_eq!(block.len(), archived_len(&v).unwrap(), "len {len}");
            let back = access::<(u32, Vec<u8>)>(&block).unwrap();
            assert_eq!((back.0.to_native(), back.1.as_slice()), (7, v.1.as_slice()));
        }
        let v = (
            7u32,
            vec![String::from("a"), "b".repeat(600), "c".repeat(600)],
        );
        let block = put(&arena, &v).unwrap();
        let archived = access::<(u32, Vec<String>)>(&block).unwrap();
        let back: (u32, Vec<String>) = deserialize::<(u32, Vec<String>)>(archived).unwrap();
        assert_eq!(back, v);
    }

    /// A plain vector's archive, written without the serializer, is rkyv's
    /// byte for byte, for every element type and lengths around the root's
    /// alignment and the scratch buffer's size.
    #[cfg(target_endian = "little")]
    #[test]
    fn put_of_a_plain_vector_is_rkyv_s_archive() {
        macro_rules! check {
            ($arena:expr, $p:ty, $make:expr) => {
                for len in (0..20).chain([127, 128, 129, SCRATCH_BYTES, 5000]) {
                    let v: Vec<$p> = (0..len).map($make).collect();
                    let block = put($arena, &v).unwrap();
                    let theirs = rkyv::to_bytes::<rancor::Error>(&v).unwrap();
                    assert_eq!(&block[..], &theirs[..], "{len} {}", stringify!($p));
                    let archived = access::<Vec<$p>>(&block).unwrap();
                    assert_eq!(as_native_slice::<$p>(archived), v.as_slice());
                    // The same bytes when kept inline, as far as they fit.
                    let sealed = put_sealed($arena, &v).unwrap();
                    assert_eq!(&*sealed.pin().unwrap(), &theirs[..], "{len}");
                    assert_eq!(sealed.is_inline(), theirs.len() <= crate::INLINE_MAX);
                }
            };
        }
        let mut cfg =
            crate::StoreConfig::new(format!("put-plain-{}", std::process::id()), 0, 1 << 20);
        cfg.dir = std::env::temp_dir();
        let arena = Arena::create(&cfg).unwrap();
        check!(&arena, u8, |i| i as u8);
        check!(&arena, i8, |i| (i as i8).wrapping_sub(3));
        check!(&arena, u16, |i| (i as u16).wrapping_mul(257));
        check!(&arena, i16, |i| (i as i16).wrapping_neg());
        check!(&arena, u32, |i| (i as u32).wrapping_mul(65_537));
        check!(&arena, i32, |i| (i as i32).wrapping_mul(-3));
        check!(&arena, u64, |i| (i as u64).wrapping_mul(0x0102_0304_0506));
        check!(&arena, i64, |i| -(i as i64));
        check!(&arena, f32, |i| i as f32 * 0.25);
        check!(&arena, f64, |i| i as f64 * -1.5);
    }

    /// Any small archive is kept inline, readable as the value, and takes
    /// no arena space; a big one goes to the arena.
    #[test]
    fn put_sealed_keeps_small_archives_inline() {
        let mut cfg =
            crate::StoreConfig::new(format!("put-sealed-{}", std::process::id()), 0, 1 << 20);
        cfg.dir = std::env::temp_dir();
        let arena = Arena::create(&cfg).unwrap();
        let small = put_sealed(&arena, &(7u32, String::from("hi"))).unwrap();
        assert!(small.is_inline());
        assert_eq!(arena.used(), 0, "inline objects take no arena space");
        let pinned = small.pin().unwrap();
        let back = access::<(u32, String)>(&pinned).unwrap();
        assert_eq!((back.0.to_native(), back.1.as_str()), (7, "hi"));
        assert_eq!(pinned.offset(), None, "not in the arena");
        assert!(matches!(small.lend(), Err(StoreError::Inline { .. })));
        let big = put_sealed(&arena, &(7u32, "x".repeat(100))).unwrap();
        assert!(!big.is_inline() && arena.used() > 0);
        assert_eq!(
            access::<(u32, String)>(&big.pin().unwrap())
                .unwrap()
                .1
                .len(),
            100
        );
    }

    #[test]
    fn misaligned_buffer_is_rejected() {
        let mut buf = rkyv::util::AlignedVec::<16>::new();
        buf.resize(64, 0);
        let e = serialize_into(&1u64, &mut buf[1..]).unwrap_err();
        assert!(matches!(e, StoreError::Serialize(_)));
        let e = serialize_into(&1u64, &mut buf[..4]).unwrap_err();
        assert!(e.to_string().contains("overruns"), "{e}");
    }
}
