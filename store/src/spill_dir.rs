//! A rank's spill directory and the files objects are spilled into.
//!
//! The directory, `<root>/ferry-<job>-r<rank>.spill` (mode 0700; the
//! default root is `spill` in the user's private directory, see
//! [`PrivateDir`]), is made under a temporary name, locked (`flock` on the directory, held for the rank's
//! life) and renamed into place, as segments are (see `liveness`), so a
//! crashed rank's directory is stale and [`clean`](crate::clean) removes
//! it. The spill files inside have no names at all (`O_TMPFILE`, or
//! unlinked right after they are made): the kernel frees their blocks when
//! the rank ends, however it ends.
//!
//! Two files: one written through the page cache, for small objects, and
//! one opened with `O_DIRECT` for objects of [`DIRECT_MIN`] and more, whose
//! arena blocks are page aligned and a whole number of pages long (what
//! direct I/O needs), so that spilling a large object does not fill the
//! page cache with it. Where the file system refuses `O_DIRECT` (tmpfs
//! before Linux 6.6, some network file systems) large objects are written
//! through the page cache too. Each file is carved by an offset allocator;
//! the blocks of a freed large extent are given back to the file system
//! (`FALLOC_FL_PUNCH_HOLE`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::alloc::{Allocation, LARGE, OffsetAllocator};
use crate::error::StoreError;
use crate::liveness::{remove_if_stale, rename_noreplace, try_lock};
use crate::private_dir::PrivateDir;

/// Objects at least this large are spilled with direct I/O.
pub(crate) const DIRECT_MIN: usize = 1 << 20;

/// Address space of one spill file (sparse: only what is written takes
/// disk blocks).
const FILE_SPAN: usize = 1 << 46;

fn spill_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::SpillDir {
        path: path.to_path_buf(),
        source,
    }
}

/// One spill file and its free ranges.
struct SpillFile {
    file: File,
    ranges: Mutex<OffsetAllocator>,
}

impl SpillFile {
    fn new(file: File) -> SpillFile {
        SpillFile {
            file,
            ranges: Mutex::new(OffsetAllocator::new(FILE_SPAN)),
        }
    }

    fn ranges(&self) -> std::sync::MutexGuard<'_, OffsetAllocator> {
        // No user code runs under the lock: a poisoned allocator is whole.
        self.ranges.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A rank's spill directory with its open spill files.
pub(crate) struct SpillDir {
    path: PathBuf,
    /// The directory, opened and `flock`ed for as long as the rank lives.
    _lock: File,
    buffered: SpillFile,
    direct: Option<SpillFile>,
    /// The file system refused a direct write: large objects go buffered.
    direct_refused: AtomicBool,
    /// The directory was removed (at shutdown).
    removed: AtomicBool,
}

impl std::fmt::Debug for SpillDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillDir")
            .field("path", &self.path)
            .field("direct", &self.direct_usable())
            .finish()
    }
}

/// Where one spilled object lies; gives its range back when dropped.
pub(crate) struct Extent {
    dir: Arc<SpillDir>,
    alloc: Allocation,
    /// Written with direct I/O: `alloc.size` bytes, page aligned.
    direct: bool,
}

impl Extent {
    pub(crate) fn file(&self) -> &File {
        self.dir.file(self.direct)
    }

    pub(crate) fn offset(&self) -> u64 {
        self.alloc.offset as u64
    }

    /// Reserves the extent's disk blocks before a direct write: writes
    /// into allocated blocks inside the file run in parallel, where writes
    /// that extend the file or fill holes are serialized by some file
    /// systems (ext4). Best effort: a file system without `fallocate` just
    /// allocates as it writes.
    pub(crate) fn preallocate(&self) {
        // SAFETY: fallocate on a descriptor we own, over this extent's range;
        // no memory is involved.
        let rc = unsafe {
            libc::fallocate(
                self.file().as_raw_fd(),
                0,
                self.alloc.offset as libc::off_t,
                self.alloc.size as libc::off_t,
            )
        };
        if rc != 0 {
            tracing::trace!("fallocate before a spill: {}", io::Error::last_os_error());
        }
    }

    /// Whether the object was written whole pages at a time, directly.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }
}

impl Drop for Extent {
    fn drop(&mut self) {
        let file = self.dir.spill_file(self.direct);
        if self.alloc.size >= LARGE {
            // Give the disk blocks back; the range is reused either way.
            // SAFETY: fallocate on a descriptor we own, with a range inside
            // the file's address space; no memory is involved.
            let rc = unsafe {
                libc::fallocate(
                    file.file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    self.alloc.offset as libc::off_t,
                    self.alloc.size as libc::off_t,
                )
            };
            if rc != 0 {
                tracing::debug!(
                    "could not punch a hole in a spill file: {}",
                    io::Error::last_os_error()
                );
            }
        }
        file.ranges().free(self.alloc);
    }
}

impl SpillDir {
    /// The directory of `job`'s rank `rank` under `root`.
    pub(crate) fn path_for(root: &Path, job: &str, rank: u32) -> PathBuf {
        root.join(format!("ferry-{job}-r{rank}.spill"))
    }

    /// Makes (or takes over from a crashed run) the spill directory of
    /// `job`'s rank `rank` under `root`, and opens its spill files.
    ///
    /// # Errors
    ///
    /// [`StoreError::SpillDir`] when `root` does not exist or is not a
    /// writable directory; [`StoreError::Exists`] when a live rank of the
    /// same job and rank holds the directory.
    pub(crate) fn create(root: &Path, job: &str, rank: u32) -> Result<Arc<SpillDir>, StoreError> {
        let path = Self::path_for(root, job, rank);
        let temp = root.join(format!(
            ".ferry-{job}-r{rank}.spill-tmp-{}",
            std::process::id()
        ));
        // A temporary directory of ours can only be left by an earlier
        // attempt of this very process.
        let _ = std::fs::remove_dir_all(&temp);
        make_root(root)?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&temp)
            .map_err(|e| spill_err(root, e))?;
        let made = Self::lock_and_open(&temp).and_then(|(lock, buffered, direct)| {
            Self::move_into_place(&temp, &path)?;
            Ok(SpillDir {
                path: path.clone(),
                _lock: lock,
                buffered: SpillFile::new(buffered),
                direct: direct.map(SpillFile::new),
                direct_refused: AtomicBool::new(false),
                removed: AtomicBool::new(false),
            })
        });
        match made {
            Ok(d) => Ok(Arc::new(d)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&temp);
                Err(e)
            }
        }
    }

    fn lock_and_open(dir: &Path) -> Result<(File, File, Option<File>), StoreError> {
        let lock = File::open(dir).map_err(|e| spill_err(dir, e))?;
        if !try_lock(&lock).map_err(|e| spill_err(dir, e))? {
            return Err(StoreError::Exists(dir.to_path_buf()));
        }
        let buffered = anonymous_file(dir, false).map_err(|e| spill_err(dir, e))?;
        let direct = match anonymous_file(dir, true) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::info!(
                    "{} refuses O_DIRECT ({e}); large objects spill through the page cache",
                    dir.display()
                );
                None
            }
        };
        Ok((lock, buffered, direct))
    }

    fn move_into_place(temp: &Path, path: &Path) -> Result<(), StoreError> {
        match rename_noreplace(temp, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(spill_err(path, e)),
            Err(_) => {}
        }
        // Left by a crashed run of this job and rank, or held by a live one.
        if remove_if_stale(path)? {
            tracing::warn!(
                "removed {}, left by a rank that ended without cleaning up",
                path.display()
            );
        }
        rename_noreplace(temp, path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                StoreError::Exists(path.to_path_buf())
            } else {
                spill_err(path, e)
            }
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn direct_usable(&self) -> bool {
        self.direct.is_some() && !self.direct_refused.load(Ordering::Relaxed)
    }

    fn spill_file(&self, direct: bool) -> &SpillFile {
        match (&self.direct, direct) {
            (Some(d), true) => d,
            _ => &self.buffered,
        }
    }

    fn file(&self, direct: bool) -> &File {
        &self.spill_file(direct).file
    }

    /// A range for an object of `len` bytes whose block reserves
    /// `reserved` (direct I/O writes all of it when `len` is large).
    pub(crate) fn extent(self: &Arc<Self>, len: usize, reserved: usize) -> Option<Extent> {
        let direct = len >= DIRECT_MIN && self.direct_usable();
        let size = if direct { reserved } else { len };
        let alloc = self.spill_file(direct).ranges().alloc(size)?;
        Some(Extent {
            dir: Arc::clone(self),
            alloc,
            direct,
        })
    }

    /// The file system refused a direct write (`EINVAL`): from now on
    /// everything goes through the page cache.
    pub(crate) fn refuse_direct(&self) {
        if !self.direct_refused.swap(true, Ordering::Relaxed) {
            tracing::info!(
                "{} refused a direct write; large objects spill through the page cache",
                self.path.display()
            );
        }
    }
}

impl SpillDir {
    /// Removes the directory now (idempotent): the spill files have no
    /// names, so what is on disk stays readable through them.
    pub(crate) fn remove(&self) {
        if self.removed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::debug!("could not remove {}: {e}", self.path.display());
        }
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Makes `root` if it is missing. The default root, below the user's
/// private directory ([`default_spill_root`](crate::default_spill_root)),
/// is made 0700 and checked to be the user's own at every start; a root
/// the user chose is taken as it is.
fn make_root(root: &Path) -> Result<(), StoreError> {
    let private = PrivateDir::locate();
    match private.below(root) {
        Some(sub) => private
            .make(sub)
            .map(drop)
            .map_err(|e| spill_err(root, io::Error::new(io::ErrorKind::PermissionDenied, e))),
        None => std::fs::create_dir_all(root).map_err(|e| spill_err(root, e)),
    }
}

/// A file in `dir` that has no name: `O_TMPFILE` where the file system
/// has it, else made and unlinked at once.
fn anonymous_file(dir: &Path, direct: bool) -> io::Result<File> {
    let flags = if direct { libc::O_DIRECT } else { 0 };
    let tmp = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | flags)
        .open(dir);
    match tmp {
        Ok(f) => return Ok(f),
        // Only "this file system has no O_TMPFILE" falls through.
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::ENOENT)
            ) =>
        {
            return Err(e);
        }
        Err(_) => {}
    }
    let name = dir.join(format!(
        "spill-{}",
        if direct { "direct" } else { "buffered" }
    ));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(flags)
        .open(&name)?;
    std::fs::remove_file(&name)?;
    Ok(f)
}
