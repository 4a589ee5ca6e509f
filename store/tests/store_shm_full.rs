//! A full shared-memory file system is an error, never a signal: the
//! arena's pages are reserved when it is made, so another process filling
//! the file system beside it cannot take them away.
//!
//! The test needs a small tmpfs of its own: it runs itself again in a
//! private mount namespace (`unshare --mount`, which needs root) and mounts
//! one there, so nothing outside the test sees it. Where that is not
//! possible it says so and passes.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use ferry_store::{Arena, Segment, StoreConfig, StoreError};

const MIB: usize = 1 << 20;
const CHILD: &str = "FERRY_STORE_SHM_FULL_CHILD";

/// Mounts a tmpfs of `size` bytes at `dir` (in the private namespace the
/// child runs in).
fn mount_tmpfs(dir: &Path, size: usize) -> std::io::Result<()> {
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("mount: {status}")))
    }
}

/// Writes zeros to `path` until the file system is full; the bytes written.
fn fill_beside(path: &Path, at_most: usize) -> usize {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; MIB];
    let mut written = 0;
    while written < at_most {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("writing beside the store: {e}"),
        }
    }
    written
}

/// The child: a 200 MiB store in a 256 MiB tmpfs, a 120 MiB file written
/// beside it, then the store filled until no page is left. Without reserved
/// pages this ended in SIGBUS (exit 135) when the writes reached the pages
/// the file took.
fn child(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    if let Err(e) = mount_tmpfs(dir, 256 * MIB) {
        println!("skipped: cannot mount a tmpfs here ({e})");
        return;
    }
    let mut cfg = StoreConfig::new("full", 0, 200 * MIB);
    cfg.dir = dir.to_path_buf();
    let arena = Arena::create(&cfg).expect("200 MiB fit in a fresh 256 MiB tmpfs");
    // A segment left sparse (what a caller does before setting its NUMA
    // policy): the file system fills before it is reserved.
    let sparse = Segment::create_unreserved(&dir.join("ferry-sparse-r0"), 64 * MIB)
        .expect("a sparse file takes no room");
    // The store reserved its first step (64 MiB) at start; the rest is
    // reserved as it grows, so the file takes what is not reserved yet.
    let written = fill_beside(&dir.join("someone-else"), 120 * MIB);
    assert_eq!(written, 120 * MIB);
    // The store fills until no page is left: then a typed error at the
    // allocation that needed more, never a signal.
    let mut blocks = Vec::new();
    let err = loop {
        match arena.alloc(4 * MIB) {
            Ok(mut b) => {
                b.as_mut_slice().fill(0xa5);
                blocks.push(b.freeze());
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, StoreError::ShmTooSmall { .. }), "{err}");
    assert!(
        (16..50).contains(&blocks.len()),
        "{} blocks of 4 MiB",
        blocks.len()
    );
    // A second store does not fit now: a typed error, at once.
    let mut other = StoreConfig::new("full", 1, 64 * MIB);
    other.dir = dir.to_path_buf();
    match Arena::create(&other) {
        Err(StoreError::ShmTooSmall {
            requested,
            available,
            ..
        }) => assert!(available < requested, "{requested} {available}"),
        other => panic!("expected ShmTooSmall, got {other:?}"),
    }
    assert!(!other.path().exists(), "nothing left of the failed store");
    // Reserving the sparse one now fails, and touches nothing.
    assert!(matches!(
        sparse.reserve(),
        Err(StoreError::ShmTooSmall { .. })
    ));
    assert!(!sparse.is_reserved());
    assert!(
        blocks
            .iter()
            .all(|b| b.as_slice().iter().all(|&x| x == 0xa5))
    );
    println!("child: {} blocks written, nothing signalled", blocks.len());
}

#[test]
fn a_store_in_a_full_tmpfs_fails_with_an_error_never_a_signal() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(Path::new(&dir));
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: mounting a private tmpfs needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ferry-shm-full-{}", std::process::id()));
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_store_in_a_full_tmpfs_fails_with_an_error_never_a_signal",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &dir)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            println!("skipped: cannot run unshare ({e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unshare failed") || stderr.contains("Operation not permitted") {
        println!("skipped: no private mount namespace here: {stderr}");
        return;
    }
    assert!(
        out.status.success(),
        "the child failed ({:?}; a signal shows as None): {stdout}\n{stderr}",
        out.status.code()
    );
    if stdout.contains("skipped:") {
        println!("{stdout}");
        return;
    }
    assert!(stdout.contains("nothing signalled"), "{stdout}");
}
