//! The object arena: one [`Segment`] carved up by the offset allocator into
//! writable [`BlockMut`]s that freeze into immutable, shareable [`Block`]s.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::alloc::{Allocation, OffsetAllocator, PAGE, reserved_size};
use crate::error::{HeldReport, StoreError};
use crate::magazine::{self, Caches};
use crate::pressure::{Pressure, SpillStats, alloc_under_pressure};
use crate::sealed::Sealed;
use crate::segment::{DEFAULT_SHM_DIR, Segment, free_space};
use crate::spill_dir::SpillDir;

/// Where and how large to create a rank's arena.
///
/// ```
/// use ferry_store::StoreConfig;
///
/// let cfg = StoreConfig::new("job42", 3, 1 << 30);
/// assert_eq!(cfg.dir, std::path::Path::new("/dev/shm"));
/// assert_eq!(cfg.path(), std::path::Path::new("/dev/shm/ferry-job42-r3"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Directory of the shared-memory file (a tmpfs, `/dev/shm` by default).
    pub dir: PathBuf,
    /// Job identifier; part of the file name, must not contain `/`.
    pub job_id: String,
    /// Rank owning the arena; part of the file name.
    pub rank: u32,
    /// Arena size in bytes (rounded up to a whole page).
    pub capacity: usize,
    /// Ranks of the job on this node, this one included, whose stores of
    /// `capacity` bytes each share `dir` (default 1): creating the arena
    /// fails when they would not all fit.
    pub node_ranks: u32,
    /// Where idle objects are spilled when the arena is full: the rank's
    /// directory `ferry-<job_id>-r<rank>.spill` is made in it. `None`
    /// (the default) spills nothing.
    pub spill_root: Option<PathBuf>,
    /// How long an allocation that does not fit waits for space (after
    /// spilling what it can) before it fails (default: not at all).
    pub put_timeout: Duration,
}

impl StoreConfig {
    /// A configuration in `/dev/shm`.
    pub fn new(job_id: impl Into<String>, rank: u32, capacity: usize) -> Self {
        StoreConfig {
            dir: PathBuf::from(DEFAULT_SHM_DIR),
            job_id: job_id.into(),
            rank,
            capacity,
            node_ranks: 1,
            spill_root: None,
            put_timeout: Duration::ZERO,
        }
    }

    /// The segment file: `<dir>/ferry-<job_id>-r<rank>`.
    pub fn path(&self) -> PathBuf {
        Segment::path_for(&self.dir, &self.job_id, self.rank)
    }
}

/// Physical memory in bytes, if the system says.
fn physical_memory() -> Option<usize> {
    // SAFETY: `sysconf` has no preconditions; it returns -1 on error.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    // SAFETY: as above.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (pages > 0 && page_size > 0)
        .then(|| (pages as u128 * page_size as u128).min(usize::MAX as u128) as usize)
}

/// A sensible arena size for one of `node_ranks` ranks sharing this node's
/// shared memory in `dir`: the node's budget, 30% of physical memory capped
/// at 90% of the free space in `dir`, divided among the ranks; a whole
/// number of pages, at least one. (64 MiB in all when neither memory nor
/// free space can be read.)
///
/// ```
/// use std::path::Path;
///
/// // The store of one of this node's four ranks.
/// let per_rank = ferry_store::default_capacity(Path::new("/dev/shm"), 4);
/// assert!(per_rank >= 4096 && per_rank % 4096 == 0);
/// ```
pub fn default_capacity(dir: &Path, node_ranks: u32) -> usize {
    share_of_node(physical_memory(), free_space(dir).ok(), node_ranks)
}

/// [`default_capacity`] from the node's physical `memory` and the `free`
/// bytes of its shared memory, where known.
fn share_of_node(memory: Option<usize>, free: Option<usize>, node_ranks: u32) -> usize {
    let memory = memory.map(|m| (m as u128 * 3 / 10) as usize);
    let shm = free.map(|f| (f as u128 * 9 / 10) as usize);
    let budget = match (memory, shm) {
        (Some(m), Some(s)) => m.min(s),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => 64 << 20,
    };
    (budget / node_ranks.max(1) as usize).max(PAGE) & !(PAGE - 1)
}

pub(crate) struct Shared {
    pub(crate) segment: Segment,
    alloc: Mutex<OffsetAllocator>,
    pub(crate) pressure: Pressure,
    /// Unique among arenas (see `magazine`).
    pub(crate) id: u64,
    /// Small free ranges threads keep (see `magazine`).
    pub(crate) caches: Caches,
    /// Whether threads cache small ranges: only in a process that may run
    /// on more than one CPU (with one, as a rank `mpirun` binds to a core,
    /// a block freed by another thread crosses no core, and the cache would
    /// only be more work).
    pub(crate) cache_small: bool,
}

impl Shared {
    pub(crate) fn allocator(&self) -> MutexGuard<'_, OffsetAllocator> {
        // The allocator's state is updated atomically with respect to panics
        // (no user code runs under the lock), so a poisoned lock is still
        // consistent.
        self.alloc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes held by live blocks: the allocator's, less the free ranges
    /// threads keep cached.
    pub(crate) fn used(&self) -> usize {
        let used = self.allocator().used();
        used.saturating_sub(self.caches.bytes())
    }

    /// Frees `a`: into this thread's cache when it is small and no put
    /// waits for space (then this thread's cache goes back too).
    fn free(self: &Arc<Self>, a: Allocation) {
        let waited_on = self.pressure.is_waited_on();
        if self.cache_small && !waited_on && magazine::free(self, a) {
            return;
        }
        if waited_on {
            magazine::flush(&**self);
        }
        let mut alloc = self.allocator();
        alloc.free(a);
        if self.pressure.is_waited_on() {
            self.pressure.bump();
        }
    }

    /// An object became spillable (or space freed): wakes waiting puts.
    pub(crate) fn space_changed(&self) {
        if self.pressure.is_waited_on() {
            let _alloc = self.allocator();
            self.pressure.bump();
        }
    }

    pub(crate) fn base(&self) -> *const u8 {
        self.segment.as_ptr()
    }
}

impl magazine::Ranges for Shared {
    fn id(&self) -> u64 {
        self.id
    }

    fn caches(&self) -> &Caches {
        &self.caches
    }

    fn allocator(&self) -> MutexGuard<'_, OffsetAllocator> {
        Shared::allocator(self)
    }
}

/// A rank's object store memory: a shared-memory segment plus its allocator.
///
/// Cheap to clone (reference counted); blocks keep the mapping alive, so the
/// arena may be dropped before its blocks.
///
/// ```
/// use ferry_store::{Arena, StoreConfig};
///
/// let mut cfg = StoreConfig::new(format!("doc-arena-{}", std::process::id()), 0, 1 << 20);
/// cfg.dir = std::env::temp_dir();
/// let arena = Arena::create(&cfg).unwrap();
/// let mut b = arena.alloc(5).unwrap();
/// b.as_mut_slice().copy_from_slice(b"hello");
/// let b = b.freeze();
/// assert_eq!(b.as_slice(), b"hello");
/// assert_eq!(arena.used(), 16);
/// drop(b);
/// assert_eq!(arena.used(), 0);
/// ```
#[derive(Clone)]
pub struct Arena {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("path", &self.path())
            .field("capacity", &self.capacity())
            .field("used", &self.used())
            .finish()
    }
}

impl Arena {
    /// Creates the segment described by `cfg`, reserves the pages of its
    /// first [`RESERVE_STEP`](crate::RESERVE_STEP) (the rest as
    /// [`alloc`](Self::alloc) hands ranges out), and makes an empty
    /// allocator over it.
    ///
    /// # Errors
    ///
    /// See [`Segment::create`]; additionally [`StoreError::Io`] when
    /// `cfg.job_id` is empty or contains `/` or a NUL byte, and
    /// [`StoreError::NodeShmTooSmall`] when `cfg.node_ranks` stores of this
    /// capacity do not fit in the free space of `cfg.dir`.
    pub fn create(cfg: &StoreConfig) -> Result<Arena, StoreError> {
        let arena = Arena::create_unreserved(cfg)?;
        arena.reserve_to(crate::RESERVE_STEP)?;
        Ok(arena)
    }

    /// [`create`](Self::create) without reserving the segment's pages yet
    /// (see [`Segment::create_unreserved`]): call [`reserve`](Self::reserve)
    /// once the mapping's NUMA policy is set. The first allocation reserves
    /// them if nothing did before.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create), less what only reserving finds out.
    pub fn create_unreserved(cfg: &StoreConfig) -> Result<Arena, StoreError> {
        let path = cfg.path();
        if cfg.job_id.is_empty() || cfg.job_id.contains(['/', '\0']) {
            return Err(StoreError::Io {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "job id must be non-empty and must not contain '/' or NUL",
                ),
            });
        }
        let capacity = cfg.capacity.max(1).div_ceil(PAGE).saturating_mul(PAGE);
        if cfg.node_ranks > 1 {
            // Before anyone reserves (the ranks of a node create their
            // arenas, then reserve them), so every rank sees the same room.
            let available = free_space(&cfg.dir)?;
            if capacity.saturating_mul(cfg.node_ranks as usize) > available {
                return Err(StoreError::NodeShmTooSmall {
                    path: cfg.dir.clone(),
                    ranks: cfg.node_ranks,
                    each: capacity,
                    available,
                });
            }
        }
        let spill = match &cfg.spill_root {
            Some(root) => Some(SpillDir::create(root, &cfg.job_id, cfg.rank)?),
            None => None,
        };
        let segment = Segment::create_unreserved(&path, capacity)?;
        Ok(Arena {
            shared: Arc::new(Shared {
                alloc: Mutex::new(OffsetAllocator::new(capacity)),
                segment,
                pressure: Pressure::new(spill, cfg.put_timeout),
                id: magazine::next_id(),
                caches: Caches::default(),
                cache_small: std::thread::available_parallelism().map_or(true, |n| n.get() > 1),
            }),
        })
    }

    /// Reserves the segment's pages now (see [`Segment::reserve`]);
    /// idempotent.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShmTooSmall`] when the shared memory has no room for
    /// them, [`StoreError::Io`] for other failures.
    pub fn reserve(&self) -> Result<(), StoreError> {
        self.shared.segment.reserve()
    }

    /// Reserves the pages of the first `end` bytes now (see
    /// [`Segment::reserve_to`]); the rest is reserved as [`alloc`](Self::alloc)
    /// hands ranges out.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Self::reserve).
    pub fn reserve_to(&self, end: usize) -> Result<(), StoreError> {
        self.shared.segment.reserve_to(end)
    }

    /// The arena's memory mapped again, read-only, through its open file
    /// (see [`Segment::map_readonly`]): for a rank of the same process that
    /// reads this one's objects in place, also after the file's name is
    /// gone.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when the mapping fails.
    pub fn map_readonly(&self) -> Result<crate::ReadOnlySegment, StoreError> {
        self.shared.segment.map_readonly()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Arena {
        Arena { shared }
    }

    /// Seals `block` as an object the store may spill while it is not
    /// pinned (see [`Sealed`]).
    pub fn seal(&self, block: Block) -> Sealed {
        crate::sealed::seal(&self.shared, block)
    }

    /// A sealed copy of `bytes`: inline when they are at most
    /// [`INLINE_MAX`](crate::INLINE_MAX), else in a fresh block (see
    /// [`seal_filled`](Self::seal_filled)).
    ///
    /// # Errors
    ///
    /// As [`alloc`](Self::alloc).
    pub fn seal_copy(&self, bytes: &[u8]) -> Result<Sealed, StoreError> {
        self.seal_filled(bytes.len(), |b| {
            b.copy_from_slice(bytes);
            Ok(())
        })
    }

    /// An object of `len` bytes that `fill` writes (every byte), sealed:
    /// kept inline when `len` is at most [`INLINE_MAX`](crate::INLINE_MAX),
    /// else in a fresh block ([`alloc`](Self::alloc), which may spill or
    /// wait for space). The buffer `fill` gets starts on a 16-byte
    /// boundary, as an archive needs. On `fill`'s error nothing is kept.
    ///
    /// ```
    /// use ferry_store::{Arena, StoreConfig, StoreError};
    ///
    /// let mut cfg = StoreConfig::new(format!("doc-filled-{}", std::process::id()), 0, 1 << 20);
    /// cfg.dir = std::env::temp_dir();
    /// let arena = Arena::create(&cfg)?;
    /// let small = arena.seal_filled(3, |b| Ok::<_, StoreError>(b.copy_from_slice(b"abc")))?;
    /// let big = arena.seal_filled(100, |b| Ok::<_, StoreError>(b.fill(7)))?;
    /// assert!(small.is_inline() && !big.is_inline());
    /// assert_eq!((&*small.pin()?, big.pin()?[99]), (&b"abc"[..], 7));
    /// # Ok::<(), StoreError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`alloc`](Self::alloc), and `fill`'s error.
    pub fn seal_filled<E: From<StoreError>>(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Sealed, E> {
        let fill = match Sealed::inline_filled(len, fill) {
            Ok(inline) => return inline,
            Err(fill) => fill,
        };
        let mut block = self.alloc(len)?;
        fill(block.as_mut_slice())?;
        Ok(self.seal(block.freeze()))
    }

    /// The rank's spill directory, when spilling is on.
    pub fn spill_dir(&self) -> Option<&Path> {
        self.shared.pressure.spill_dir().map(SpillDir::path)
    }

    /// What was spilled and read back so far.
    pub fn spill_stats(&self) -> SpillStats {
        self.shared.pressure.stats()
    }

    /// What holds the store's memory now (the report a failed put gives).
    pub fn held(&self) -> HeldReport {
        crate::pressure::report(&self.shared)
    }

    /// The segment's file path (it may already be unlinked).
    pub fn path(&self) -> &Path {
        self.shared.segment.path()
    }

    /// Start of the mapped segment, for exposing the arena to one-sided reads
    /// (another rank's `MPI_Get`). The mapping stays valid while any clone of
    /// the arena, or any block from it, lives.
    pub fn base_ptr(&self) -> *const u8 {
        self.shared.segment.as_ptr()
    }

    /// Arena size in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.segment.capacity()
    }

    /// Bytes currently held by live blocks (rounded up to their alignment).
    pub fn used(&self) -> usize {
        self.shared.used()
    }

    /// Reserves `len` writable bytes. The block starts on a 16-byte boundary
    /// (4096 for `len >= 64 KiB`); its contents are unspecified (zero on first
    /// use, old data when reused). `len == 0` gives an empty block that holds
    /// no memory.
    ///
    /// When no free range is large enough, idle sealed objects are spilled
    /// (if the arena has a spill directory) and the call waits up to the
    /// configured put timeout for space.
    ///
    /// # Errors
    ///
    /// [`StoreError::Full`] when `len` can never fit, or no free range is
    /// large enough and neither spilling nor waiting is configured;
    /// [`StoreError::Held`] (with what holds the store) when the wait ran
    /// out; [`StoreError::ShmTooSmall`] when the arena was made with
    /// [`create_unreserved`](Self::create_unreserved), never reserved, and
    /// its pages cannot be now.
    pub fn alloc(&self, len: usize) -> Result<BlockMut, StoreError> {
        self.alloc_with(len, true)
    }

    /// [`alloc`](Self::alloc) from the space free now: never spills and
    /// never waits, for a caller that has another way to get its bytes.
    ///
    /// # Errors
    ///
    /// [`StoreError::Full`] when no free range is large enough now;
    /// [`StoreError::ShmTooSmall`] as for [`alloc`](Self::alloc).
    pub fn alloc_now(&self, len: usize) -> Result<BlockMut, StoreError> {
        self.alloc_with(len, false)
    }

    fn alloc_with(&self, len: usize, may_wait: bool) -> Result<BlockMut, StoreError> {
        let alloc = if len == 0 {
            Allocation { offset: 0, size: 0 }
        } else {
            let shared = &self.shared;
            // A small block from this thread's cache; any other from the
            // allocator, after giving the cache back if it has no room.
            let quick = reserved_size(len)
                .filter(|_| shared.cache_small)
                .and_then(|size| magazine::alloc(shared, size))
                .or_else(|| shared.allocator().alloc(len))
                .or_else(|| {
                    magazine::flush(&**shared);
                    shared.allocator().alloc(len)
                });
            let alloc = match quick {
                Some(x) => x,
                None if may_wait => alloc_under_pressure(shared, len)?,
                None => {
                    return Err(StoreError::Full {
                        requested: len,
                        used: shared.used(),
                        capacity: shared.allocator().capacity(),
                    });
                }
            };
            // No byte of the mapping is handed out before its page is
            // reserved: a full /dev/shm is an error here, never a SIGBUS.
            if let Err(e) = self.shared.segment.reserve_to(alloc.offset + alloc.size) {
                self.shared.free(alloc);
                return Err(e);
            }
            alloc
        };
        Ok(BlockMut {
            raw: RawBlock {
                shared: Arc::clone(&self.shared),
                alloc,
                len,
            },
        })
    }

    /// Removes the segment's file name (and the spill directory, whose files
    /// have no names and stay readable) now (idempotent); the memory stays
    /// mapped and usable, by this process and by every process that mapped
    /// it before, and is freed when the last mapping goes, however the
    /// processes end. Also done automatically when the last handle (arena or
    /// block) is dropped.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the file cannot be removed.
    pub fn unlink(&self) -> Result<(), StoreError> {
        if let Some(dir) = self.shared.pressure.spill_dir() {
            dir.remove();
        }
        self.shared.segment.unlink()
    }
}

/// Owns an allocated range; frees it on drop.
struct RawBlock {
    shared: Arc<Shared>,
    alloc: Allocation,
    /// Logical length, `<= alloc.size` (or 0 for the empty block).
    len: usize,
}

impl RawBlock {
    fn ptr(&self) -> *mut u8 {
        // `wrapping_add` keeps this safe; `offset + size <= capacity`, so the
        // result is within (or one past the end of) the mapping.
        self.shared.segment.as_ptr().wrapping_add(self.alloc.offset)
    }
}

impl Drop for RawBlock {
    fn drop(&mut self) {
        if self.alloc.size > 0 {
            self.shared.free(self.alloc);
        }
    }
}

/// A uniquely owned, writable range of the arena. Dropping it frees the range;
/// [`freeze`](BlockMut::freeze) turns it into an immutable [`Block`].
pub struct BlockMut {
    raw: RawBlock,
}

impl BlockMut {
    /// The writable bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the allocator hands out disjoint ranges inside the mapping,
        // and this `BlockMut` is the only handle to its range, so no other
        // reference to these bytes exists; `len <= alloc.size` keeps the slice
        // in bounds; the mapping outlives `self` (we hold the `Arc<Shared>`).
        // Mapped memory is always initialised (zero-filled or old data).
        unsafe { std::slice::from_raw_parts_mut(self.raw.ptr(), self.raw.len) }
    }

    /// The bytes, read-only.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as in `as_mut_slice`; `&self` excludes concurrent writes.
        unsafe { std::slice::from_raw_parts(self.raw.ptr(), self.raw.len) }
    }

    /// Pointer to the first byte (valid for `len()` bytes while `self` lives).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.raw.ptr()
    }

    /// Logical length in bytes.
    pub fn len(&self) -> usize {
        self.raw.len
    }

    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }

    /// Offset of the first byte from the start of the segment.
    pub fn offset(&self) -> usize {
        self.raw.alloc.offset
    }

    /// Shrinks the logical length to `len` (no effect if `len >= self.len()`);
    /// the reserved range is kept until the block is dropped.
    pub fn truncate(&mut self, len: usize) {
        self.raw.len = self.raw.len.min(len);
    }

    /// The whole reserved range (a whole number of pages for blocks of
    /// 64 KiB and more), for direct I/O that moves whole pages.
    pub(crate) fn reserved_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_mut_slice`, over the full reserved range, which
        // this block owns alone.
        unsafe { std::slice::from_raw_parts_mut(self.raw.ptr(), self.raw.alloc.size) }
    }

    /// Makes the block immutable and shareable.
    pub fn freeze(self) -> Block {
        Block { raw: self.raw }
    }
}

impl Deref for BlockMut {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for BlockMut {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl fmt::Debug for BlockMut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockMut")
            .field("offset", &self.offset())
            .field("len", &self.len())
            .finish()
    }
}

/// An immutable range of the arena, `Send + Sync`. Dropping it frees the
/// range; it keeps the segment mapped for as long as it lives.
pub struct Block {
    raw: RawBlock,
}

impl Block {
    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the range is inside the mapping, which outlives `self`
        // (we hold the `Arc<Shared>`); it came from a `BlockMut` that was
        // consumed by `freeze`, and nothing writes to a frozen range until it
        // is freed, which only happens when `self` is dropped.
        unsafe { std::slice::from_raw_parts(self.raw.ptr(), self.raw.len) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.raw.len
    }

    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }

    /// Offset of the first byte from the start of the segment (what another
    /// rank needs to find it in a [`ReadOnlySegment`](crate::ReadOnlySegment)).
    pub fn offset(&self) -> usize {
        self.raw.alloc.offset
    }

    /// Arena bytes the block takes (its length rounded up).
    pub(crate) fn reserved_len(&self) -> usize {
        self.raw.alloc.size
    }

    /// The whole reserved range, padding included (see
    /// [`BlockMut::reserved_mut`]).
    pub(crate) fn reserved(&self) -> &[u8] {
        // SAFETY: as in `as_slice`; the padding after `len` belongs to this
        // block too, and nothing writes it while the block is frozen.
        unsafe { std::slice::from_raw_parts(self.raw.ptr(), self.raw.alloc.size) }
    }
}

impl Deref for Block {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("offset", &self.offset())
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_node_s_budget_is_divided_among_its_ranks() {
        const GIB: usize = 1 << 30;
        // 30% of 64 GiB of memory, less than 90% of 32 GiB of /dev/shm.
        let one = share_of_node(Some(64 * GIB), Some(32 * GIB), 1);
        assert_eq!(one, (64 * GIB * 3 / 10) & !(PAGE - 1));
        let four = share_of_node(Some(64 * GIB), Some(32 * GIB), 4);
        assert_eq!(four, (64 * GIB * 3 / 10 / 4) & !(PAGE - 1));
        // A small /dev/shm bounds it: 90% of 1 GiB among 3 ranks.
        let three = share_of_node(Some(64 * GIB), Some(GIB), 3);
        assert_eq!(three, (GIB * 9 / 10 / 3) & !(PAGE - 1));
        assert!(3 * three <= GIB);
        // Unknown memory, unknown free space, a full /dev/shm.
        assert_eq!(
            share_of_node(None, Some(GIB), 1),
            (GIB * 9 / 10) & !(PAGE - 1)
        );
        assert_eq!(share_of_node(None, None, 2), 32 << 20);
        assert_eq!(share_of_node(Some(GIB), Some(0), 1), PAGE);
        assert_eq!(
            share_of_node(Some(GIB), Some(GIB), 0),
            share_of_node(Some(GIB), Some(GIB), 1)
        );
    }

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<Arena>();
        assert_send_sync::<Block>();
        assert_send_sync::<BlockMut>();
    }
}
