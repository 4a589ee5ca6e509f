//! Shared-memory files: the only place that maps memory.
//!
//! A [`Segment`] is a file in a tmpfs directory (normally `/dev/shm`), created
//! exclusively with mode `0600`, sized with `ftruncate` (sparse: pages cost
//! memory only once touched) and mapped `MAP_SHARED` read-write. A
//! [`ReadOnlySegment`] maps an existing segment of another process read-only.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::{Mmap, MmapOptions, MmapRaw};

use crate::error::StoreError;
use crate::liveness;

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

/// A shared-memory file owned by this process, mapped read-write.
///
/// The file is removed by [`unlink`](Segment::unlink) or on drop, whichever
/// comes first; the mapping stays valid until the `Segment` is dropped.
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
    /// Holds the liveness lock ([`crate::clean`]) while the segment lives.
    _owner: File,
}

impl Segment {
    /// The conventional path of rank `rank`'s segment for job `job_id`:
    /// `<dir>/ferry-<job_id>-r<rank>`.
    pub fn path_for(dir: &Path, job_id: &str, rank: u32) -> PathBuf {
        dir.join(format!("ferry-{job_id}-r{rank}"))
    }

    /// Creates the file at `path` (mode `0600`, never replacing a live one),
    /// sizes it to `capacity` bytes without touching any page and maps it
    /// shared read-write. The segment holds an exclusive `flock` on the file
    /// while it lives; a file at `path` that nobody holds (left by a rank
    /// that crashed) is replaced.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShmTooSmall`] when the file system has less than
    /// `capacity` bytes free, [`StoreError::Exists`] when a live segment is
    /// at `path`, [`StoreError::Io`] for any other failure (including
    /// `capacity == 0`).
    pub fn create(path: &Path, capacity: usize) -> Result<Segment, StoreError> {
        if capacity == 0 {
            return Err(io_err(
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "segment capacity is zero"),
            ));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
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
            _owner: file,
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
