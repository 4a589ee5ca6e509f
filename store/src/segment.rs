//! Shared-memory files: the only place that maps memory.
//!
//! A [`Segment`] is a file in a tmpfs directory (normally `/dev/shm`), created
//! exclusively with mode `0600`, sized with `ftruncate`, mapped `MAP_SHARED`
//! read-write, and its pages reserved with `fallocate` before any byte of it
//! is handed out. A [`ReadOnlySegment`] maps an existing segment of another
//! process read-only.
//!
//! # Why the pages are reserved
//!
//! A sparse tmpfs file takes its pages when they are first touched. If the
//! file system filled up meanwhile (another job writing to `/dev/shm`), that
//! first touch is a `SIGBUS`: the process dies with no error to show. With
//! the pages reserved before they are touched (`fallocate` on tmpfs
//! allocates them), a full `/dev/shm` is [`StoreError::ShmTooSmall`] when a
//! range is reserved, and touching a reserved range can no longer fail.
//!
//! Reserving costs the memory and the time to clear it (about 0.5 s per GiB
//! on a small VM), so the store reserves as it grows, not up front:
//! [`Segment::reserve_to`] reserves from the start of the file up to an
//! offset, in steps of [`RESERVE_STEP`], and the arena calls it for every
//! range it hands out. A store of 30% of memory that holds a few objects
//! takes a few steps, not 30% of memory; a `/dev/shm` filled by someone else
//! is an error at the `put` that needs the room, never a signal.
//! [`Segment::reserve`] reserves everything at once.
//!
//! Reserving can be split from creating ([`Segment::create_unreserved`], then
//! [`Segment::reserve_to`]) so that a caller may set the mapping's NUMA
//! policy first: pages are placed when they are allocated, and `fallocate`
//! is what allocates them.
//!
//! A file system without `fallocate` (`EOPNOTSUPP`; never tmpfs, which has
//! had it since Linux 3.5) keeps the sparse file: that is only for test
//! directories on such file systems, and a full file system there can still
//! end the process with `SIGBUS`.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use memmap2::{Mmap, MmapOptions, MmapRaw};

use crate::error::StoreError;
use crate::liveness;

/// How much [`Segment::reserve_to`] reserves at a time, at least: 64 MiB
/// (about 30 ms of clearing on a small VM, once per step of growth).
pub const RESERVE_STEP: usize = 64 << 20;

/// Default directory for segments.
pub const DEFAULT_SHM_DIR: &str = "/dev/shm";

fn io_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes available to an unprivileged user in the file system holding `dir`
/// (`statvfs`: `f_bavail * f_frsize`).
pub fn free_space(dir: &Path) -> Result<usize, StoreError> {
    let c_path = CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
        io_err(
            dir,
            io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
        )
    })?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` points to
    // writable memory of the right size for `statvfs` to fill in.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io_err(dir, io::Error::last_os_error()));
    }
    // SAFETY: `statvfs` returned 0, so it initialised the whole struct (and it
    // was zeroed before, so every field is initialised regardless).
    let st = unsafe { st.assume_init() };
    let avail = (st.f_bavail as u128) * (st.f_frsize as u128);
    Ok(usize::try_from(avail).unwrap_or(usize::MAX))
}

/// Magic number of tmpfs in `statfs`'s `f_type`.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Whether `dir` is on a tmpfs (`statfs`); `false` when that cannot be told.
fn is_tmpfs(dir: &Path) -> bool {
    let Ok(c_path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` points to
    // writable memory of the right size for `statfs` to fill in.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: `statfs` returned 0, so it filled the struct (zeroed before).
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type's type differs by platform
    let kind = st.f_type as i64;
    kind == TMPFS_MAGIC
}

/// The directory holding `path` (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A shared-memory file owned by this process, mapped read-write.
///
/// The file is removed by [`unlink`](Segment::unlink) or on drop, whichever
/// comes first; the mapping stays valid until the `Segment` is dropped.
/// Its pages are reserved (see the module docs) by [`create`](Self::create),
/// or later by [`reserve`](Self::reserve).
///
/// ```
/// use ferry_store::Segment;
///
/// let dir = std::env::temp_dir();
/// let path = Segment::path_for(&dir, &format!("doc-seg-{}", std::process::id()), 0);
/// let seg = Segment::create(&path, 1 << 20).unwrap();
/// assert_eq!(seg.capacity(), 1 << 20);
/// assert!(path.exists());
/// seg.unlink().unwrap();
/// assert!(!path.exists());
/// ```
#[derive(Debug)]
pub struct Segment {
    map: MmapRaw,
    path: PathBuf,
    capacity: usize,
    unlinked: AtomicBool,
    /// Bytes reserved from the start of the file (`capacity` when the file
    /// system cannot reserve: then nothing more is tried).
    reserved: AtomicUsize,
    /// Held while reserving, so that only one thread does it.
    reserving: Mutex<()>,
    /// The open file: holds the liveness lock ([`crate::clean`]) while the
    /// segment lives, and is what [`reserve`](Self::reserve) and
    /// [`map_readonly`](Self::map_readonly) work on once the name is gone.
    file: File,
}

impl Segment {
    /// The conventional path of rank `rank`'s segment for job `job_id`:
    /// `<dir>/ferry-<job_id>-r<rank>`.
    pub fn path_for(dir: &Path, job_id: &str, rank: u32) -> PathBuf {
        dir.join(format!("ferry-{job_id}-r{rank}"))
    }

    /// Creates the file at `path` (mode `0600`, never replacing a live one),
    /// sizes it to `capacity` bytes, maps it shared read-write and reserves
    /// its pages. The segment holds an exclusive `flock` on the file while it
    /// lives; a file at `path` that nobody holds (left by a rank that
    /// crashed) is replaced.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShmTooSmall`] when the file system has less than
    /// `capacity` bytes free, [`StoreError::Exists`] when a live segment is
    /// at `path`, [`StoreError::Io`] for any other failure (including
    /// `capacity == 0`).
    pub fn create(path: &Path, capacity: usize) -> Result<Segment, StoreError> {
        let seg = Segment::create_unreserved(path, capacity)?;
        seg.reserve()?;
        Ok(seg)
    }

    /// [`create`](Self::create) without reserving the pages: the caller
    /// calls [`reserve`](Self::reserve) before touching the mapping (after
    /// setting its NUMA policy, say). Until then the file is sparse and
    /// takes no memory.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create); a file system that fills up after the
    /// check is only found out by [`reserve`](Self::reserve).
    pub fn create_unreserved(path: &Path, capacity: usize) -> Result<Segment, StoreError> {
        if capacity == 0 {
            return Err(io_err(
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "segment capacity is zero"),
            ));
        }
        let dir = parent_dir(path);
        let available = free_space(dir)?;
        if capacity > available {
            return Err(StoreError::ShmTooSmall {
                path: dir.to_path_buf(),
                requested: capacity,
                available,
            });
        }
        // Made under a temporary name, locked, sized, then renamed into
        // place without replacing anything: a cleaner never sees it unlocked.
        let temp = dir.join(format!(
            ".{}-tmp-{}",
            path.file_name()
                .map_or_else(Default::default, |n| n.to_string_lossy()),
            std::process::id()
        ));
        let open_temp = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
        };
        let file = match open_temp() {
            // Left by an earlier process that had this pid and died.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                liveness::remove_if_stale(&temp)?;
                open_temp()
            }
            other => other,
        }
        .map_err(|e| io_err(&temp, e))?;
        let cleanup = |e: StoreError| {
            let _ = std::fs::remove_file(&temp);
            e
        };
        if !liveness::try_lock(&file).map_err(|e| cleanup(io_err(&temp, e)))? {
            return Err(cleanup(io_err(
                &temp,
                io::Error::other("a fresh file is locked by someone else"),
            )));
        }
        file.set_len(capacity as u64)
            .map_err(|e| cleanup(io_err(&temp, e)))?;
        let mut placed = liveness::rename_noreplace(&temp, path);
        if placed
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::AlreadyExists)
            && liveness::remove_if_stale(path).map_err(cleanup)?
        {
            // The file of a rank that died with this job id and rank:
            // replaced.
            placed = liveness::rename_noreplace(&temp, path);
        }
        placed.map_err(|e| {
            cleanup(match e.kind() {
                io::ErrorKind::AlreadyExists => StoreError::Exists(path.to_path_buf()),
                _ => io_err(path, e),
            })
        })?;
        // From here on the file is ours under its name: remove it again if
        // anything fails.
        let cleanup = |e: StoreError| {
            let _ = std::fs::remove_file(path);
            e
        };
        let map = MmapOptions::new()
            .len(capacity)
            .map_raw(&file)
            .map_err(|e| cleanup(io_err(path, e)))?;
        Ok(Segment {
            map,
            path: path.to_path_buf(),
            capacity,
            unlinked: AtomicBool::new(false),
            reserved: AtomicUsize::new(0),
            reserving: Mutex::new(()),
            file,
        })
    }

    /// Allocates every page of the file now (`fallocate`), so that touching
    /// the mapping cannot fail later however full the file system gets.
    /// Idempotent; works after [`unlink`](Self::unlink) too.
    ///
    /// # Errors
    ///
    /// As [`reserve_to`](Self::reserve_to).
    pub fn reserve(&self) -> Result<(), StoreError> {
        self.reserve_to(self.capacity)
    }

    /// Makes sure the pages of `0..end` are allocated (`fallocate` of what
    /// is not yet, rounded up to [`RESERVE_STEP`]), so that touching them
    /// cannot fail later however full the file system gets. Cheap when
    /// already done (one atomic load).
    ///
    /// # Errors
    ///
    /// [`StoreError::ShmTooSmall`] when the file system has no room for the
    /// pages (nothing more is reserved then), [`StoreError::Io`] for any
    /// other failure, including a tmpfs that refuses `fallocate`.
    pub fn reserve_to(&self, end: usize) -> Result<(), StoreError> {
        let end = end.min(self.capacity);
        // Acquire: pairs with the Release below; a caller that sees the
        // range reserved touches pages another thread reserved.
        if self.reserved.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        // Only bookkeeping happens under the lock: a poisoned one is whole.
        let _one = self.reserving.lock().unwrap_or_else(|e| e.into_inner());
        let from = self.reserved.load(Ordering::Acquire);
        if from >= end {
            return Ok(());
        }
        let to = end
            .div_ceil(RESERVE_STEP)
            .saturating_mul(RESERVE_STEP)
            .min(self.capacity);
        let dir = parent_dir(&self.path);
        let too_large = || {
            io_err(
                &self.path,
                io::Error::new(io::ErrorKind::InvalidInput, "segment too large"),
            )
        };
        let offset = libc::off_t::try_from(from).map_err(|_| too_large())?;
        let len = libc::off_t::try_from(to - from).map_err(|_| too_large())?;
        let rc = loop {
            // SAFETY: fallocate on a descriptor we own, over a range of the
            // file's own size; mode 0 only allocates blocks (contents stay
            // zero), so no memory the mapping exposes changes.
            let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, offset, len) };
            if rc == 0 {
                break Ok(());
            }
            let e = io::Error::last_os_error();
            // A signal while clearing a large range: tmpfs undid what it
            // allocated, so start again.
            if e.raw_os_error() != Some(libc::EINTR) {
                break Err(e);
            }
        };
        match rc {
            Ok(()) => self.reserved.store(to, Ordering::Release),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                return Err(StoreError::ShmTooSmall {
                    path: dir.to_path_buf(),
                    requested: to - from,
                    available: free_space(dir).unwrap_or(0),
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) && !is_tmpfs(dir) => {
                tracing::info!(
                    "{} cannot reserve the store's pages (no fallocate): the segment stays \
                     sparse, and a full file system there ends the process with SIGBUS",
                    dir.display()
                );
                self.reserved.store(self.capacity, Ordering::Release);
            }
            Err(e) => return Err(io_err(&self.path, e)),
        }
        Ok(())
    }

    /// Whether every page is reserved ([`reserve`](Self::reserve) succeeded,
    /// or the ranges handed out reached the end).
    pub fn is_reserved(&self) -> bool {
        self.reserved.load(Ordering::Acquire) >= self.capacity
    }

    /// Bytes reserved so far, from the start of the file.
    pub fn reserved_bytes(&self) -> usize {
        self.reserved.load(Ordering::Acquire)
    }

    /// The same memory mapped a second time, read-only, through the open
    /// file (no name needed): what a loopback rank in the same process
    /// reads its neighbour's objects through.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when the mapping fails.
    pub fn map_readonly(&self) -> Result<ReadOnlySegment, StoreError> {
        // SAFETY: as in `open_readonly`: a shared read-only mapping of a
        // segment whose owner writes only ranges not yet handed to readers,
        // and never truncates it.
        let map = unsafe { MmapOptions::new().len(self.capacity).map(&self.file) }
            .map_err(|e| io_err(&self.path, e))?;
        Ok(ReadOnlySegment {
            map,
            path: self.path.clone(),
        })
    }

    /// The file's path (it may already be unlinked).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Mapped length in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Start of the mapping: valid for reads and writes of
    /// [`capacity`](Self::capacity) bytes for as long as `self` lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Removes the file name now; idempotent. Existing mappings (this one and
    /// other processes') stay valid, new processes can no longer open it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if removing fails for a reason other than the file
    /// being gone already.
    pub fn unlink(&self) -> Result<(), StoreError> {
        if self.unlinked.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                self.unlinked.store(false, Ordering::Release);
                Err(io_err(&self.path, e))
            }
        }
    }

    /// Whether [`unlink`](Self::unlink) has succeeded.
    pub fn is_unlinked(&self) -> bool {
        self.unlinked.load(Ordering::Acquire)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let _ = self.unlink();
    }
}

/// An existing segment (normally another rank's) mapped read-only.
///
/// ```
/// use ferry_store::{Segment, open_readonly};
///
/// let dir = std::env::temp_dir();
/// let path = Segment::path_for(&dir, &format!("doc-ro-{}", std::process::id()), 1);
/// let seg = Segment::create(&path, 4096).unwrap();
/// // SAFETY: the mapping is 4096 bytes long and nothing else touches it.
/// unsafe { seg.as_ptr().write(42) };
/// let ro = open_readonly(&path).unwrap();
/// assert_eq!(ro.as_slice()[0], 42);
/// ```
#[derive(Debug)]
pub struct ReadOnlySegment {
    map: Mmap,
    path: PathBuf,
}

/// Maps the existing segment at `path` read-only (shared, whole file).
///
/// The owner may keep writing to ranges it has not yet published; callers only
/// read ranges that the owner has frozen and announced.
///
/// # Errors
///
/// [`StoreError::Io`] when the file cannot be opened or mapped.
pub fn open_readonly(path: &Path) -> Result<ReadOnlySegment, StoreError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    // SAFETY: the mapping is read-only and shared. Segments are only ever
    // written by their owner, and only in ranges not yet handed to readers,
    // and are never truncated while mapped, so the bytes readers look at do
    // not change underneath them.
    let map = unsafe { MmapOptions::new().map(&file) }.map_err(|e| io_err(path, e))?;
    Ok(ReadOnlySegment {
        map,
        path: path.to_path_buf(),
    })
}

impl ReadOnlySegment {
    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.map
    }

    /// Mapped length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The path of the rank's inbox of shared-memory rings that goes with its
/// store segment at `store`: `<store>.ring` (a segment as well: created,
/// locked and cleaned like the store's).
///
/// ```
/// use std::path::Path;
/// assert_eq!(
///     ferry_store::ring_path(Path::new("/dev/shm/ferry-j-r3")),
///     Path::new("/dev/shm/ferry-j-r3.ring")
/// );
/// ```
pub fn ring_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".ring");
    PathBuf::from(name)
}

/// An existing segment of another process mapped shared and read-write: a
/// neighbour's inbox of rings, which this process writes frames into.
#[derive(Debug)]
pub struct SharedSegment {
    map: MmapRaw,
    path: PathBuf,
}

/// Maps the existing segment at `path` shared and read-write (whole file).
///
/// ```
/// use ferry_store::{Segment, open_shared};
///
/// let dir = std::env::temp_dir();
/// let path = Segment::path_for(&dir, &format!("doc-rw-{}", std::process::id()), 1);
/// let seg = Segment::create(&path, 4096).unwrap();
/// let other = open_shared(&path).unwrap();
/// // SAFETY: both mappings are 4096 bytes long; nothing else touches them.
/// unsafe { other.as_ptr().write(7) };
/// assert_eq!(unsafe { seg.as_ptr().read() }, 7);
/// ```
///
/// # Errors
///
/// [`StoreError::Io`] when the file cannot be opened or mapped, or is empty.
pub fn open_shared(path: &Path) -> Result<SharedSegment, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len() as usize;
    if len == 0 {
        return Err(io_err(
            path,
            io::Error::new(io::ErrorKind::InvalidData, "the segment is empty"),
        ));
    }
    let map = MmapOptions::new()
        .len(len)
        .map_raw(&file)
        .map_err(|e| io_err(path, e))?;
    Ok(SharedSegment {
        map,
        path: path.to_path_buf(),
    })
}

impl SharedSegment {
    /// Start of the mapping: valid for reads and writes of
    /// [`len`](Self::len) bytes for as long as `self` lives (what the bytes
    /// mean is agreed with the owner, who writes them too).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Mapped length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty (never: empty files are refused).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
