//! [`Sealed`] objects: immutable blocks the store may move to disk while
//! nobody reads them, and [`Pinned`], the guard that keeps one in memory.
//!
//! # Protocol
//!
//! Each object has a state word: the number of pins, and an `OUT` bit set
//! while its bytes are not in the arena (being spilled, or on disk).
//!
//! - Pinning increments the count with a compare-and-swap as long as `OUT`
//!   is clear: no lock on the fast path. With `OUT` set, the pinner takes
//!   the object's place lock, restores the bytes if they are on disk, and
//!   publishes them with the count at one.
//! - The spiller takes the place lock (without waiting: a busy object is
//!   skipped), then swaps the state from exactly zero (no pins, in the
//!   arena) to `OUT`. From then on pinners queue on the lock until the
//!   bytes are on disk (or back, if writing failed).
//! - Under the place lock, "in the arena" and "`OUT` clear" are the same
//!   thing, so a pinner holding the lock never races a spiller.
//! - An object lent to other ranks (its offset handed out) keeps one pin
//!   until it is given back: it does not move while they may read it.
//! - A spilled object's checksum (`checksum`) is kept with its place on
//!   disk and checked when the bytes come back: damaged bytes are
//!   [`StoreError::Corrupt`], the object stays on disk, and no reader sees
//!   them (a rank reads its own objects without validating them).
//! - Objects under [`SPILL_MIN`] are never spilled (each would cost a
//!   write for little room): they are plain blocks, not listed for the
//!   spiller, and pinning them changes nothing, so small puts and gets
//!   cost what they did before spilling existed.
//! - Objects of at most [`INLINE_MAX`](crate::INLINE_MAX) bytes may be
//!   kept in the handle itself (`inline`): no arena space, no pin, and no
//!   place another process could read them at ([`Sealed::lend`] refuses
//!   them).

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use crate::arena::{Arena, Block, Shared};
use crate::checksum::checksum;
use crate::error::{Bytes, StoreError};
use crate::fileio::{self, Buf, Op, Shape};
use crate::inline::Inline;
use crate::spill_dir::Extent;

/// Set in the state word while the bytes are not in the arena.
pub(crate) const OUT: u64 = 1 << 63;

/// Objects smaller than this are never spilled.
pub const SPILL_MIN: usize = 4096;

/// Where an object's bytes are.
pub(crate) enum Place {
    Arena(Block),
    /// On disk, with the checksum of the bytes written there.
    Disk {
        ext: Extent,
        sum: u64,
    },
}

pub(crate) struct Entry {
    pub(crate) shared: Arc<Shared>,
    /// Pins, and [`OUT`].
    pub(crate) state: AtomicU64,
    /// The bytes, while in the arena.
    data: AtomicPtr<u8>,
    pub(crate) len: usize,
    /// Arena bytes the object takes (its block's rounded size).
    pub(crate) reserved: usize,
    /// The store's clock at the last pin: the oldest is spilled first.
    pub(crate) last_use: AtomicU64,
    /// Handed out to other ranks: pinned until given back.
    pub(crate) lent: AtomicBool,
    pub(crate) place: Mutex<Place>,
    /// Where the store's registry lists it.
    pub(crate) index: usize,
}

impl Entry {
    fn lock_place(&self) -> MutexGuard<'_, Place> {
        // No user code runs under the lock; a poisoned place is consistent
        // (every transition is a single assignment).
        self.place.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The place lock if nobody holds it.
    pub(crate) fn try_lock_place(&self) -> Option<MutexGuard<'_, Place>> {
        match self.place.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn touch(&self) {
        self.last_use.store(
            self.shared.pressure.clock.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    fn unpin(&self) {
        let before = self.state.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before & !OUT > 0, "unpin without a pin");
        if before == 1 {
            // Now spillable: a put waiting for space may go on.
            self.shared.space_changed();
        }
    }

    /// Spilled (called by the spiller, which holds the place lock and set
    /// `OUT`): the bytes pointer is no longer valid.
    pub(crate) fn forget_data(&self) {
        self.data.store(std::ptr::null_mut(), Ordering::Relaxed);
    }

    /// Reads the object back from `ext` into a fresh block and checks it
    /// against `sum` (under the place lock, with `OUT` set).
    fn restore(&self, ext: &Extent, sum: u64) -> Result<Block, StoreError> {
        let arena = Arena::from_shared(Arc::clone(&self.shared));
        let mut block = arena.alloc(self.len)?;
        let result = {
            let buf = if ext.is_direct() {
                block.reserved_mut()
            } else {
                block.as_mut_slice()
            };
            let shape = if ext.is_direct() {
                Shape::DIRECT
            } else {
                Shape::BUFFERED
            };
            fileio::run_shaped(
                &mut [Op {
                    file: ext.file(),
                    offset: ext.offset(),
                    buf: Buf::Read(buf),
                }],
                shape,
            )
        };
        result.map_err(|e| StoreError::Io {
            path: self.shared.pressure.spill_path(),
            source: e,
        })?;
        if checksum(block.as_slice()) != sum {
            // The block is freed on return; the object stays on disk.
            return Err(StoreError::Corrupt(format!(
                "a spilled object of {} read back from {} does not match the checksum taken \
                 when it was written (the spill file was changed or damaged)",
                Bytes(self.len),
                self.shared.pressure.spill_path().display()
            )));
        }
        self.shared.pressure.note_restored(self.reserved);
        Ok(block.freeze())
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.shared.pressure.unregister(self.index);
        if matches!(&*self.lock_place(), Place::Disk { .. }) {
            self.shared.pressure.note_gone_from_disk(self.reserved);
        }
    }
}

/// A sealed object in a rank's store: immutable bytes that stay in shared
/// memory while [`pin`](Sealed::pin)ned and may be spilled to disk (and
/// read back on the next pin) while not. Objects under [`SPILL_MIN`] bytes
/// always stay.
///
/// ```
/// use ferry_store::{Arena, StoreConfig};
///
/// let mut cfg = StoreConfig::new(format!("doc-sealed-{}", std::process::id()), 0, 1 << 20);
/// cfg.dir = std::env::temp_dir();
/// let arena = Arena::create(&cfg)?;
/// let mut b = arena.alloc(5)?;
/// b.copy_from_slice(b"hello");
/// let obj = arena.seal(b.freeze());
/// let bytes = obj.pin()?;
/// assert_eq!(&*bytes, b"hello");
/// assert_eq!(obj.len(), 5);
/// # Ok::<(), ferry_store::StoreError>(())
/// ```
pub struct Sealed(Repr);

enum Repr {
    /// Kept in the handle, not in the arena.
    Inline(Inline),
    /// Never spilled: the block itself.
    Small(Block),
    /// Listed for the spiller.
    Large(Arc<Entry>),
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("len", &self.len())
            .field("inline", &self.is_inline())
            .field("spilled", &self.is_spilled())
            .finish()
    }
}

/// The bytes [`Sealed::acquire`] gives, and whether it took a pin that
/// [`Sealed::release`] must give back.
#[derive(Debug, Clone, Copy)]
pub struct Acquired<'a> {
    /// The object's bytes.
    pub bytes: &'a [u8],
    /// A pin was taken (objects under [`SPILL_MIN`] need none).
    pub pinned: bool,
}

impl Sealed {
    /// A copy of `bytes` kept in the handle itself, not in any arena;
    /// `None` when they are more than [`INLINE_MAX`](crate::INLINE_MAX).
    ///
    /// ```
    /// let obj = ferry_store::Sealed::inline(b"hello").unwrap();
    /// assert_eq!(&*obj.pin()?, b"hello");
    /// assert!(obj.is_inline() && obj.lend().is_err());
    /// assert!(ferry_store::Sealed::inline(&[0; ferry_store::INLINE_MAX + 1]).is_none());
    /// # Ok::<(), ferry_store::StoreError>(())
    /// ```
    pub fn inline(bytes: &[u8]) -> Option<Sealed> {
        Inline::copy(bytes).map(|i| Sealed(Repr::Inline(i)))
    }

    /// `len` bytes that `fill` writes, kept in the handle itself; `fill`
    /// back, unused, when `len` is more than [`INLINE_MAX`](crate::INLINE_MAX).
    pub(crate) fn inline_filled<E, F: FnOnce(&mut [u8]) -> Result<(), E>>(
        len: usize,
        fill: F,
    ) -> Result<Result<Sealed, E>, F> {
        Inline::filled(len, fill).map(|r| r.map(|i| Sealed(Repr::Inline(i))))
    }

    /// Whether the bytes are kept in the handle rather than the arena.
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(_))
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline(i) => i.len(),
            Repr::Small(b) => b.len(),
            Repr::Large(e) => e.len,
        }
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes are on disk right now (or on their way there).
    pub fn is_spilled(&self) -> bool {
        match &self.0 {
            Repr::Inline(_) | Repr::Small(_) => false,
            Repr::Large(e) => e.state.load(Ordering::Relaxed) & OUT != 0,
        }
    }

    /// The bytes, kept in memory (read back from disk first if spilled)
    /// while the guard lives.
    ///
    /// # Errors
    ///
    /// Reading a spilled object back needs arena space:
    /// [`StoreError::Held`] / [`StoreError::Full`] when none frees in time,
    /// [`StoreError::Io`] when the spill file cannot be read,
    /// [`StoreError::Corrupt`] when what it holds is not what was written.
    pub fn pin(&self) -> Result<Pinned<'_>, StoreError> {
        let a = self.acquire()?;
        Ok(Pinned {
            bytes: a.bytes,
            entry: match &self.0 {
                Repr::Large(e) => Some(e),
                Repr::Inline(_) | Repr::Small(_) => None,
            },
            base: self.base(),
        })
    }

    /// Where the arena starts (null for an inline object, which has no
    /// place there).
    fn base(&self) -> *const u8 {
        match &self.0 {
            Repr::Inline(_) => std::ptr::null(),
            Repr::Small(b) => b.as_slice().as_ptr().wrapping_sub(b.offset()),
            Repr::Large(e) => e.shared.base(),
        }
    }

    /// Takes a pin (if the object needs one) and gives the bytes, borrowed
    /// from `self`; a pin taken is held until [`release`](Sealed::release):
    /// for a handle that keeps the object alive itself and cannot hold a
    /// [`Pinned`] borrowing it (a view holding its slot). Such a handle
    /// must also keep `self` where it is while it uses the bytes: an inline
    /// object's bytes are in `self`.
    ///
    /// # Errors
    ///
    /// As [`pin`](Sealed::pin).
    #[inline]
    pub fn acquire(&self) -> Result<Acquired<'_>, StoreError> {
        match &self.0 {
            Repr::Inline(i) => Ok(Acquired {
                bytes: i.as_slice(),
                pinned: false,
            }),
            Repr::Small(b) => Ok(Acquired {
                bytes: b.as_slice(),
                pinned: false,
            }),
            Repr::Large(e) => acquire_large(e),
        }
    }

    /// The bytes of an object too small ever to be spilled (no pin needed,
    /// nothing to give back); `None` for the others.
    #[inline]
    pub fn small_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Inline(i) => Some(i.as_slice()),
            Repr::Small(b) => Some(b.as_slice()),
            Repr::Large(_) => None,
        }
    }

    /// The bytes of an object the caller holds a pin on.
    ///
    /// # Safety
    ///
    /// The caller holds a pin taken with [`acquire`](Sealed::acquire) or
    /// [`repin`](Sealed::repin) for as long as it uses the slice.
    #[inline]
    pub unsafe fn pinned_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(i) => i.as_slice(),
            Repr::Small(b) => b.as_slice(),
            Repr::Large(e) => bytes_while_pinned(e),
        }
    }

    /// Takes one more pin on an object already pinned (a view's clone); it
    /// is released with [`release`](Sealed::release) as any other.
    #[inline]
    pub fn repin(&self) {
        if let Repr::Large(e) = &self.0 {
            // A pin exists, so no spiller can set `OUT` meanwhile.
            e.state.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Gives back a pin taken with [`acquire`](Sealed::acquire) (one that
    /// said `pinned`) or [`repin`](Sealed::repin).
    ///
    /// # Safety
    ///
    /// The caller took a pin it has not given back yet, and uses no byte
    /// slice obtained under that pin after this call: once the last pin is
    /// gone the bytes may move to disk and their memory be reused.
    #[inline]
    pub unsafe fn release(&self) {
        if let Repr::Large(e) = &self.0 {
            e.unpin();
        }
    }

    /// The object's offset in the arena, for another rank to read it in
    /// place; from now on it is not spilled (read back first if it was)
    /// until [`unlend`](Sealed::unlend).
    ///
    /// # Errors
    ///
    /// As [`pin`](Sealed::pin); [`StoreError::Inline`] for an object kept
    /// inline, which has no place in the arena (send its bytes instead).
    pub fn lend(&self) -> Result<usize, StoreError> {
        if let Repr::Inline(i) = &self.0 {
            return Err(StoreError::Inline { len: i.len() });
        }
        let p = self.pin()?;
        if let Repr::Large(e) = &self.0
            && !e.lent.swap(true, Ordering::AcqRel)
        {
            // The pin that keeps it until given back (`p` holds one, so
            // this cannot race a spiller).
            e.state.fetch_add(1, Ordering::Relaxed);
        }
        // Not inline (refused above), so in the arena.
        p.offset().ok_or(StoreError::Inline { len: p.len() })
    }

    /// No other rank reads the object in place any more: it may be spilled
    /// again (the pin [`lend`](Sealed::lend) took is given back). Does
    /// nothing for an object that is not lent.
    pub fn unlend(&self) {
        if let Repr::Large(e) = &self.0
            && e.lent.swap(false, Ordering::AcqRel)
        {
            e.unpin();
        }
    }
}

#[inline(never)]
fn acquire_large(e: &Entry) -> Result<Acquired<'_>, StoreError> {
    take_pin(e)?;
    Ok(Acquired {
        bytes: bytes_while_pinned(e),
        pinned: true,
    })
}

/// The bytes of a pinned object (`e` holds a pin).
fn bytes_while_pinned(e: &Entry) -> &[u8] {
    if e.len == 0 {
        return &[];
    }
    let ptr = e.data.load(Ordering::Relaxed);
    // SAFETY: a pin is held, so the object is in the arena at `data`
    // (published by the Acquire that took the pin) and its `len` sealed bytes
    // are never written again while the block lives; the block lives as long
    // as the entry, which the caller borrows, and stays put while pinned.
    unsafe { std::slice::from_raw_parts(ptr, e.len) }
}

fn take_pin(e: &Entry) -> Result<(), StoreError> {
    let mut s = e.state.load(Ordering::Acquire);
    while s & OUT == 0 {
        match e
            .state
            .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {
                e.touch();
                return Ok(());
            }
            Err(now) => s = now,
        }
    }
    pin_slow(e)
}

fn pin_slow(e: &Entry) -> Result<(), StoreError> {
    let mut place = e.lock_place();
    if let Place::Disk { ext, sum } = &*place {
        let block = e.restore(ext, *sum)?;
        e.data
            .store(block.as_slice().as_ptr().cast_mut(), Ordering::Relaxed);
        // Drops the extent: its range of the spill file is free again.
        *place = Place::Arena(block);
        e.shared.pressure.note_gone_from_disk(e.reserved);
        // Publishes `data` to fast-path pinners.
        e.state.store(1, Ordering::Release);
    } else {
        // In the arena, so `OUT` is clear, and it stays clear while we hold
        // the lock (spillers need it).
        e.state.fetch_add(1, Ordering::Acquire);
    }
    drop(place);
    e.touch();
    Ok(())
}

/// A pinned object's bytes: the object stays in shared memory (or, kept
/// inline, in its handle) while this lives.
pub struct Pinned<'a> {
    bytes: &'a [u8],
    /// The pinned entry (`None`: a small object, which needs no pin).
    entry: Option<&'a Entry>,
    /// Where the arena starts; null for an inline object.
    base: *const u8,
}

// SAFETY: `base` is only compared against (never dereferenced); the rest is
// shared references to `Sync` data.
unsafe impl Send for Pinned<'_> {}
// SAFETY: as above.
unsafe impl Sync for Pinned<'_> {}

impl Pinned<'_> {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes
    }

    /// Offset of the first byte in the arena (valid while pinned); `None`
    /// for an object kept inline, which is not in the arena.
    pub fn offset(&self) -> Option<usize> {
        (!self.base.is_null())
            .then(|| (self.bytes.as_ptr() as usize).wrapping_sub(self.base as usize))
    }
}

impl Clone for Pinned<'_> {
    fn clone(&self) -> Self {
        if let Some(e) = self.entry {
            // A pin exists, so no spiller can set `OUT` meanwhile.
            e.state.fetch_add(1, Ordering::Relaxed);
        }
        Pinned {
            bytes: self.bytes,
            entry: self.entry,
            base: self.base,
        }
    }
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.entry {
            e.unpin();
        }
    }
}

impl Deref for Pinned<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

impl AsRef<[u8]> for Pinned<'_> {
    fn as_ref(&self) -> &[u8] {
        self.bytes
    }
}

impl fmt::Debug for Pinned<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned")
            .field("offset", &self.offset())
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Makes the object of a freshly sealed block.
pub(crate) fn seal(shared: &Arc<Shared>, block: Block) -> Sealed {
    let len = block.len();
    if len < SPILL_MIN {
        return Sealed(Repr::Small(block));
    }
    let reserved = block.reserved_len();
    let data = block.as_slice().as_ptr().cast_mut();
    let shared = Arc::clone(shared);
    let entry = Arc::new_cyclic(|weak| {
        let index = shared.pressure.register(weak.clone());
        Entry {
            last_use: AtomicU64::new(shared.pressure.clock.fetch_add(1, Ordering::Relaxed)),
            shared: Arc::clone(&shared),
            state: AtomicU64::new(0),
            data: AtomicPtr::new(data),
            len,
            reserved,
            lent: AtomicBool::new(false),
            place: Mutex::new(Place::Arena(block)),
            index,
        }
    });
    Sealed(Repr::Large(entry))
}
