//! Which shared-memory files belong to a live rank.
//!
//! The rank that creates a segment holds an exclusive `flock` on it for as
//! long as the segment lives (the kernel drops it when the process dies,
//! however it dies). A file nobody holds locked is stale: its rank crashed
//! before it could remove it. [`clean`] removes stale files; a new
//! [`Segment`](crate::Segment) replaces a stale file of its own name.
//!
//! Files are created under a temporary name (`.ferry-…-tmp-<pid>`), locked,
//! sized, and only then renamed into place without replacing anything
//! (`renameat2(RENAME_NOREPLACE)`), so a cleaner never sees a live rank's
//! file unlocked.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

fn io_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Takes the exclusive lock on `file` without waiting; `Ok(false)` when
/// another open file holds it (a live owner).
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Renames `from` to `to` unless `to` exists (`RENAME_NOREPLACE`).
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
    };
    let (from_c, to_c) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them
    // relative to the working directory as plain rename would.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether `path` is a file (or spill directory) no live rank holds (it is
/// removed then). `Ok(false)` for a live one or one that vanished meanwhile.
pub(crate) fn remove_if_stale(path: &Path) -> Result<bool, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(path, e)),
    };
    if !try_lock(&file).map_err(|e| io_err(path, e))? {
        return Ok(false);
    }
    // Locked by us: nobody owns it. Remove it while holding the lock, so a
    // concurrent cleaner cannot be fooled either.
    let is_dir = file.metadata().map_err(|e| io_err(path, e))?.is_dir();
    let removed = if is_dir {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path, e)),
    }
}

/// The pid in a temporary file's name (`.ferry-…-tmp-<pid>`).
fn temp_owner(name: &str) -> Option<u32> {
    name.rsplit_once("-tmp-")?.1.parse().ok()
}

/// Removes the stale Ferry files in `dir` (segments whose rank died, and
/// half-made temporary files of dead processes), of job `job` only when
/// given; live files, other users' files and other names are left alone.
/// Returns what was removed.
///
/// # Errors
///
/// [`StoreError::Io`] when `dir` cannot be listed.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("ferry-doc-clean-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// // A file no live rank holds, as a crashed rank leaves it.
/// std::fs::write(dir.join("ferry-j1-r0"), b"")?;
/// let live = ferry_store::Segment::create(&dir.join("ferry-j1-r1"), 4096)?;
/// let removed = ferry_store::clean(&dir, Some("j1"))?;
/// assert_eq!(removed, vec![dir.join("ferry-j1-r0")]);
/// assert!(live.path().exists());
/// # drop(live); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn clean(dir: &Path, job: Option<&str>) -> Result<Vec<PathBuf>, StoreError> {
    clean_matching(dir, job, |_, is_dir| !is_dir)
}

/// Removes the stale spill directories in `root` (`ferry-<job>-r<rank>.spill`
/// of ranks that died, and half-made ones of dead processes), of job `job`
/// only when given. Nothing else in `root` is looked at: it is usually a
/// shared temporary directory.
///
/// # Errors
///
/// [`StoreError::Io`] when `root` cannot be listed.
///
/// ```
/// let root = std::env::temp_dir().join(format!("ferry-doc-spillclean-{}", std::process::id()));
/// std::fs::create_dir_all(root.join("ferry-j1-r0.spill"))?;
/// std::fs::write(root.join("ferry-j1-r1"), b"not a spill directory")?;
/// let removed = ferry_store::clean_spill(&root, Some("j1"))?;
/// assert_eq!(removed, vec![root.join("ferry-j1-r0.spill")]);
/// assert!(root.join("ferry-j1-r1").exists());
/// # std::fs::remove_dir_all(&root)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn clean_spill(root: &Path, job: Option<&str>) -> Result<Vec<PathBuf>, StoreError> {
    clean_matching(root, job, |name, is_dir| {
        is_dir && (name.ends_with(".spill") || name.contains(".spill-tmp-"))
    })
}

fn clean_matching(
    dir: &Path,
    job: Option<&str>,
    wanted: impl Fn(&str, bool) -> bool,
) -> Result<Vec<PathBuf>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let (temp, rest) = if let Some(rest) = name.strip_prefix(".ferry-") {
            (true, rest)
        } else if let Some(rest) = name.strip_prefix("ferry-") {
            (false, rest)
        } else {
            continue;
        };
        if let Some(job) = job {
            let Some(after) = rest.strip_prefix(job) else {
                continue;
            };
            if !after.starts_with("-r") {
                continue;
            }
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !wanted(name, is_dir) {
            continue;
        }
        // A temporary file being made right now by a live process: not
        // ours to judge.
        if temp && temp_owner(name).is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
            continue;
        }
        let path = entry.path();
        // Not removed: live, vanished, or not ours to open (another user's
        // 0600 file).
        if let Ok(true) = remove_if_stale(&path) {
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}
