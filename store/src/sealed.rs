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

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use crate::arena::{Arena, Block, Shared};
use crate::error::StoreError;
use crate::fileio::{self, Buf, Op};
use crate::spill_dir::Extent;

/// Set in the state word while the bytes are not in the arena.
pub(crate) const OUT: u64 = 1 << 63;

/// Where an object's bytes are.
pub(crate) enum Place {
    Arena(Block),
    Disk(Extent),
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
    /// Handed out to other ranks: pinned for good.
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

    /// Reads the object back from `ext` into a fresh block (under the
    /// place lock, with `OUT` set).
    fn restore(&self, ext: &Extent) -> Result<Block, StoreError> {
        let arena = Arena::from_shared(Arc::clone(&self.shared));
        let mut block = arena.alloc(self.len)?;
        let result = {
            let buf = if ext.is_direct() {
                block.reserved_mut()
            } else {
                block.as_mut_slice()
            };
            fileio::run(&mut [Op {
                file: ext.file(),
                offset: ext.offset(),
                buf: Buf::Read(buf),
            }])
        };
        result.map_err(|e| StoreError::Io {
            path: self.shared.pressure.spill_path(),
            source: e,
        })?;
        self.shared.pressure.note_restored(self.reserved);
        Ok(block.freeze())
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.shared.pressure.unregister(self.index);
        if matches!(&*self.lock_place(), Place::Disk(_)) {
            self.shared.pressure.note_gone_from_disk(self.reserved);
        }
    }
}

/// A sealed object in a rank's store: immutable bytes that stay in shared
/// memory while [`pin`](Sealed::pin)ned and may be spilled to disk (and
/// read back on the next pin) while not. Cheap to clone.
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
#[derive(Clone)]
pub struct Sealed(pub(crate) Arc<Entry>);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("len", &self.0.len)
            .field("spilled", &self.is_spilled())
            .finish()
    }
}

impl Sealed {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Whether the bytes are on disk right now (or on their way there).
    pub fn is_spilled(&self) -> bool {
        self.0.state.load(Ordering::Relaxed) & OUT != 0
    }

    /// The bytes, kept in memory (read back from disk first if spilled)
    /// while the guard lives.
    ///
    /// # Errors
    ///
    /// Reading a spilled object back needs arena space:
    /// [`StoreError::Held`] / [`StoreError::Full`] when none frees in time,
    /// [`StoreError::Io`] when the spill file cannot be read.
    pub fn pin(&self) -> Result<Pinned, StoreError> {
        let e = &self.0;
        let mut s = e.state.load(Ordering::Acquire);
        while s & OUT == 0 {
            match e
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(self.pinned()),
                Err(now) => s = now,
            }
        }
        self.pin_slow()
    }

    fn pin_slow(&self) -> Result<Pinned, StoreError> {
        let e = &self.0;
        let mut place = e.lock_place();
        if let Place::Disk(ext) = &*place {
            let block = e.restore(ext)?;
            e.data
                .store(block.as_slice().as_ptr().cast_mut(), Ordering::Relaxed);
            // Drops the extent: its range of the spill file is free again.
            *place = Place::Arena(block);
            e.shared.pressure.note_gone_from_disk(e.reserved);
            // Publishes `data` to fast-path pinners.
            e.state.store(1, Ordering::Release);
        } else {
            // In the arena, so `OUT` is clear, and it stays clear while we
            // hold the lock (spillers need it).
            e.state.fetch_add(1, Ordering::Acquire);
        }
        drop(place);
        Ok(self.pinned())
    }

    /// The guard for a pin just taken.
    fn pinned(&self) -> Pinned {
        self.0.touch();
        Pinned {
            ptr: self.0.data.load(Ordering::Relaxed),
            entry: Arc::clone(&self.0),
        }
    }

    /// The object's offset in the arena, for another rank to read it in
    /// place; from now on it is not spilled (read back first if it was)
    /// until [`unlend`](Sealed::unlend).
    ///
    /// # Errors
    ///
    /// As [`pin`](Sealed::pin).
    pub fn lend(&self) -> Result<usize, StoreError> {
        let p = self.pin()?;
        if !self.0.lent.swap(true, Ordering::AcqRel) {
            // The pin that keeps it for good (`p` holds one, so this
            // cannot race a spiller).
            self.0.state.fetch_add(1, Ordering::Relaxed);
        }
        Ok((p.ptr as usize).wrapping_sub(self.0.shared.base() as usize))
    }
}

impl Sealed {
    /// No other rank reads the object in place any more: it may be spilled
    /// again (the pin [`lend`](Sealed::lend) took is given back). Does
    /// nothing for an object that is not lent.
    pub fn unlend(&self) {
        if self.0.lent.swap(false, Ordering::AcqRel) {
            self.0.unpin();
        }
    }
}

/// A pinned object's bytes: the object stays in shared memory while this
/// lives. Cheap to clone; `Send + Sync`.
pub struct Pinned {
    entry: Arc<Entry>,
    ptr: *const u8,
}

// SAFETY: `Pinned` only gives shared access to immutable bytes that stay
// where they are while any pin is held (see the module's protocol), and the
// entry is `Send + Sync` itself.
unsafe impl Send for Pinned {}
// SAFETY: as above.
unsafe impl Sync for Pinned {}

impl Pinned {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        if self.entry.len == 0 {
            return &[];
        }
        // SAFETY: while this pin is held the object is in the arena at
        // `ptr` (the spiller only moves objects with no pins) and its
        // `len` bytes are sealed, never written again while the block
        // lives; the block lives as long as the entry, which we hold.
        unsafe { std::slice::from_raw_parts(self.ptr, self.entry.len) }
    }

    /// Offset of the first byte in the arena (valid while pinned).
    pub fn offset(&self) -> usize {
        (self.ptr as usize).wrapping_sub(self.entry.shared.base() as usize)
    }
}

impl Clone for Pinned {
    fn clone(&self) -> Self {
        // A pin exists, so no spiller can set `OUT` meanwhile.
        self.entry.state.fetch_add(1, Ordering::Relaxed);
        Pinned {
            entry: Arc::clone(&self.entry),
            ptr: self.ptr,
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.entry.unpin();
    }
}

impl Deref for Pinned {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Pinned {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned")
            .field("offset", &self.offset())
            .field("len", &self.entry.len)
            .finish()
    }
}

/// Makes the entry of a freshly sealed block.
pub(crate) fn seal(shared: &Arc<Shared>, block: Block) -> Sealed {
    let len = block.len();
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
    Sealed(entry)
}
