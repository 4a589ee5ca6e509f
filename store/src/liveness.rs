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
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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

/// What kind of Ferry file a name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A rank's shared-memory segment: a regular file.
    Segment,
    /// A rank's spill directory.
    Spill,
}

/// A name Ferry gives its files, taken apart.
#[derive(Debug, PartialEq, Eq)]
struct FerryName<'a> {
    job: &'a str,
    kind: Kind,
    /// The pid of the process making it, for a temporary name.
    temp_of: Option<u32>,
}

/// Whether `s` is a rank or pid as Ferry writes one: ASCII digits only
/// (no sign, no space), fitting a `u32`.
fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u32>().is_ok()
}

/// Takes `name` apart when it is exactly one of the names Ferry gives its
/// files, and `None` for anything else:
///
/// * `ferry-<job>-r<rank>`: a segment ([`crate::Segment::path_for`]);
/// * `ferry-<job>-r<rank>.ring`: a segment too (a rank's inbox of
///   shared-memory rings, [`crate::ring_path`]);
/// * `ferry-<job>-r<rank>.spill`: a spill directory;
/// * `.ferry-<job>-r<rank>-tmp-<pid>` and `.ferry-<job>-r<rank>.spill-tmp-<pid>`:
///   either while process `pid` makes it.
///
/// `<rank>` and `<pid>` are decimal digits only; `<job>` is not empty.
fn parse_name(name: &str) -> Option<FerryName<'_>> {
    let (temp, rest) = match name.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let rest = rest.strip_prefix("ferry-")?;
    let (base, temp_of) = if temp {
        let (base, pid) = rest.rsplit_once("-tmp-")?;
        if !is_number(pid) {
            return None;
        }
        (base, pid.parse().ok())
    } else {
        (rest, None)
    };
    let (base, kind) = match base.strip_suffix(".spill") {
        Some(base) => (base, Kind::Spill),
        // A rank's inbox of shared-memory rings: a segment like the store.
        None => (base.strip_suffix(".ring").unwrap_or(base), Kind::Segment),
    };
    let (job, rank) = base.rsplit_once("-r")?;
    if job.is_empty() || !is_number(rank) {
        return None;
    }
    Some(FerryName { job, kind, temp_of })
}

/// Removes the stale Ferry segments in `dir` (segments whose rank died, and
/// half-made temporary files of dead processes), of job `job` only when
/// given. Returns what was removed.
///
/// A file is removed only when all of this proves it Ferry's and dead:
///
/// 1. its name is exactly one Ferry gives a segment (`ferry-<job>-r<rank>`,
///    or `.ferry-<job>-r<rank>-tmp-<pid>` while it is being made), with
///    `<job>` equal to `job` when given and `<rank>`, `<pid>` all digits;
/// 2. it is a regular file (not a symbolic link, which is never followed,
///    nor a FIFO or a device) owned by this process's user;
/// 3. no process holds its liveness lock (and, for a temporary name, the
///    process `<pid>` is gone).
///
/// Segments carry no header of their own (objects start at offset 0), so
/// there is no magic to check: the name, the file's type and owner and the
/// lock are the proof. Everything else in `dir`, such as a user's
/// `ferry-notes.txt` or `ferry-a-r5x`, is left alone.
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
/// // Not names Ferry gives its files.
/// std::fs::write(dir.join("ferry-notes.txt"), b"")?;
/// std::fs::write(dir.join("ferry-j1-r5x"), b"")?;
/// let live = ferry_store::Segment::create(&dir.join("ferry-j1-r1"), 4096)?;
/// let removed = ferry_store::clean(&dir, Some("j1"))?;
/// assert_eq!(removed, vec![dir.join("ferry-j1-r0")]);
/// assert!(live.path().exists());
/// assert!(dir.join("ferry-notes.txt").exists() && dir.join("ferry-j1-r5x").exists());
/// # drop(live); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn clean(dir: &Path, job: Option<&str>) -> Result<Vec<PathBuf>, StoreError> {
    clean_kind(dir, job, Kind::Segment)
}

/// Removes the stale spill directories in `root` (`ferry-<job>-r<rank>.spill`
/// of ranks that died, and `.ferry-<job>-r<rank>.spill-tmp-<pid>` half-made
/// by dead processes), of job `job` only when given. Nothing else in `root`
/// is touched: it is usually a shared temporary directory. As for [`clean`],
/// the name must be exactly Ferry's, the entry a directory (never a
/// symbolic link) owned by this process's user, and its lock free.
///
/// # Errors
///
/// [`StoreError::Io`] when `root` cannot be listed.
///
/// ```
/// let root = std::env::temp_dir().join(format!("ferry-doc-spillclean-{}", std::process::id()));
/// std::fs::create_dir_all(root.join("ferry-j1-r0.spill"))?;
/// std::fs::write(root.join("ferry-j1-r1"), b"not a spill directory")?;
/// std::fs::create_dir_all(root.join("ferry-j1-r2x.spill"))?;
/// let removed = ferry_store::clean_spill(&root, Some("j1"))?;
/// assert_eq!(removed, vec![root.join("ferry-j1-r0.spill")]);
/// assert!(root.join("ferry-j1-r1").exists());
/// assert!(root.join("ferry-j1-r2x.spill").exists());
/// # std::fs::remove_dir_all(&root)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn clean_spill(root: &Path, job: Option<&str>) -> Result<Vec<PathBuf>, StoreError> {
    clean_kind(root, job, Kind::Spill)
}

fn clean_kind(dir: &Path, job: Option<&str>, kind: Kind) -> Result<Vec<PathBuf>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(parsed) = name.to_str().and_then(parse_name) else {
            continue;
        };
        if parsed.kind != kind || job.is_some_and(|j| j != parsed.job) {
            continue;
        }
        // A temporary file being made right now by a live process: not
        // ours to judge.
        if parsed
            .temp_of
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
        {
            continue;
        }
        let path = entry.path();
        // lstat: a symbolic link is neither a file nor a directory here.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let right_type = match kind {
            Kind::Segment => meta.file_type().is_file(),
            Kind::Spill => meta.file_type().is_dir(),
        };
        if !right_type || meta.uid() != me {
            continue;
        }
        // Not removed: live, vanished, replaced meanwhile, or not ours to
        // open.
        if let Ok(true) = remove_if_stale_nofollow(&path, &meta, kind) {
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Like [`remove_if_stale`], for `path` whose `lstat` gave `seen`: opened
/// without following a symbolic link or blocking on a FIFO, and removed
/// only while the name still holds the file that was opened and locked.
fn remove_if_stale_nofollow(
    path: &Path,
    seen: &std::fs::Metadata,
    kind: Kind,
) -> Result<bool, StoreError> {
    let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    if kind == Kind::Spill {
        flags |= libc::O_DIRECTORY;
    }
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(path, e)),
    };
    let same = |m: &std::fs::Metadata| m.dev() == seen.dev() && m.ino() == seen.ino();
    if !same(&file.metadata().map_err(|e| io_err(path, e))?) {
        return Ok(false);
    }
    if !try_lock(&file).map_err(|e| io_err(path, e))? {
        return Ok(false);
    }
    // Locked by us: nobody owns it. Remove it while holding the lock, so a
    // concurrent cleaner cannot be fooled either, and only if the name
    // still holds the file we locked.
    match std::fs::symlink_metadata(path) {
        Ok(now) if same(&now) => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(path, e)),
    }
    let removed = match kind {
        // remove_dir_all never follows symbolic links inside the directory.
        Kind::Spill => std::fs::remove_dir_all(path),
        Kind::Segment => std::fs::remove_file(path),
    };
    match removed {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferry-liveness-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_ferry_names_parse() {
        let seg = |job| {
            Some(FerryName {
                job,
                kind: Kind::Segment,
                temp_of: None,
            })
        };
        assert_eq!(parse_name("ferry-a-r5"), seg("a"));
        assert_eq!(parse_name("ferry-a-r1-r0"), seg("a-r1"));
        assert_eq!(parse_name("ferry-a-r5.ring"), seg("a"));
        assert_eq!(
            parse_name(".ferry-j-r3.ring-tmp-42"),
            Some(FerryName {
                job: "j",
                kind: Kind::Segment,
                temp_of: Some(42)
            })
        );
        assert_eq!(
            parse_name("ferry-j-r0.spill"),
            Some(FerryName {
                job: "j",
                kind: Kind::Spill,
                temp_of: None
            })
        );
        assert_eq!(
            parse_name(".ferry-j-r3-tmp-42"),
            Some(FerryName {
                job: "j",
                kind: Kind::Segment,
                temp_of: Some(42)
            })
        );
        assert_eq!(
            parse_name(".ferry-j-r3.spill-tmp-42"),
            Some(FerryName {
                job: "j",
                kind: Kind::Spill,
                temp_of: Some(42)
            })
        );
        for name in [
            "ferry-notes.txt",
            "ferry-a-r5x",
            "ferry-a-r",
            "ferry--r0",
            "ferry-a-r+5",
            "ferry-a-r 5",
            "ferry-a-r99999999999",
            "ferry-a-r5.spill.bak",
            "ferry-a-r5.ring.bak",
            "ferry-a-r5.spill.ring",
            "ferry-a-r5.txt",
            ".ferry-a-r5-tmp-",
            ".ferry-a-r5-tmp-12x",
            ".ferry-a-r5",
            "xferry-a-r5",
            "notes.txt",
        ] {
            assert_eq!(parse_name(name), None, "{name}");
        }
    }

    #[test]
    fn clean_never_follows_links_nor_opens_fifos_nor_takes_other_names() {
        let dir = scratch("strict");
        let elsewhere = scratch("strict-target");
        let target = elsewhere.join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        // Named like stale segments, but not Ferry's.
        std::os::unix::fs::symlink(&target, dir.join("ferry-a-r7")).unwrap();
        std::fs::create_dir(dir.join("ferry-a-r8")).unwrap();
        let fifo = CString::new(dir.join("ferry-a-r9").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        for name in ["ferry-notes.txt", "ferry-a-r5x"] {
            std::fs::write(dir.join(name), b"user data").unwrap();
        }
        // The one stale segment.
        std::fs::write(dir.join("ferry-a-r0"), b"").unwrap();
        assert_eq!(
            clean(&dir, Some("a")).unwrap(),
            vec![dir.join("ferry-a-r0")]
        );
        assert_eq!(clean(&dir, None).unwrap(), Vec::<PathBuf>::new());
        for name in [
            "ferry-a-r7",
            "ferry-a-r8",
            "ferry-a-r9",
            "ferry-notes.txt",
            "ferry-a-r5x",
        ] {
            assert!(
                std::fs::symlink_metadata(dir.join(name)).is_ok(),
                "{name} was removed"
            );
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&elsewhere).unwrap();
    }

    #[test]
    fn clean_spill_never_follows_links_nor_takes_files_or_other_names() {
        let root = scratch("spill");
        let elsewhere = scratch("spill-target");
        std::fs::write(elsewhere.join("precious"), b"keep me").unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("ferry-a-r1.spill")).unwrap();
        std::fs::write(root.join("ferry-a-r2.spill"), b"a file").unwrap();
        std::fs::create_dir(root.join("ferry-a-r3x.spill")).unwrap();
        std::fs::create_dir(root.join("ferry-notes.spill")).unwrap();
        std::fs::create_dir(root.join("ferry-a-r0.spill")).unwrap();
        assert_eq!(
            clean_spill(&root, Some("a")).unwrap(),
            vec![root.join("ferry-a-r0.spill")]
        );
        assert_eq!(clean_spill(&root, None).unwrap(), Vec::<PathBuf>::new());
        for name in [
            "ferry-a-r1.spill",
            "ferry-a-r2.spill",
            "ferry-a-r3x.spill",
            "ferry-notes.spill",
        ] {
            assert!(
                std::fs::symlink_metadata(root.join(name)).is_ok(),
                "{name} was removed"
            );
        }
        assert_eq!(
            std::fs::read(elsewhere.join("precious")).unwrap(),
            b"keep me"
        );
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&elsewhere).unwrap();
    }

    #[test]
    fn a_dead_rank_s_ring_inbox_is_cleaned_and_a_live_one_kept() {
        let dir = scratch("ring");
        let store = crate::Segment::path_for(&dir, "j", 0);
        // Left by a rank killed between creating its inbox and removing its
        // name: nobody holds its lock.
        let dead = crate::ring_path(&store);
        std::fs::write(&dead, b"").unwrap();
        let live_store = crate::Segment::path_for(&dir, "j", 1);
        let live = crate::Segment::create(&crate::ring_path(&live_store), 4096).unwrap();
        assert_eq!(clean(&dir, Some("j")).unwrap(), vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(live.path().exists());
        drop(live);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
