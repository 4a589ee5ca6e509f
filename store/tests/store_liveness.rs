//! Shared-memory hygiene: a crashed rank's file is recognised as stale (no
//! live process holds its lock) and removed by the next start with the same
//! name or by `clean`; live files and other jobs' files are never touched.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferry_store::{Segment, StoreError, clean};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferry-liveness-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The child half of `a_killed_owner_leaves_a_file_that_clean_removes`.
#[test]
fn child_creates_a_segment_and_waits() {
    let Ok(path) = std::env::var("FERRY_LIVENESS_CHILD") else {
        return; // Only as the child.
    };
    let _seg = Segment::create(Path::new(&path), 1 << 20).unwrap();
    println!("ready");
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn a_killed_owner_leaves_a_file_that_clean_removes() {
    let dir = scratch("kill");
    let path = Segment::path_for(&dir, "jobk", 0);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_creates_a_segment_and_waits",
            "--nocapture",
        ])
        .env("FERRY_LIVENESS_CHILD", &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended early"
        );
    }
    // Alive: its file is not stale.
    assert!(clean(&dir, None).unwrap().is_empty());
    assert!(matches!(
        Segment::create(&path, 4096),
        Err(StoreError::Exists(_))
    ));
    child.kill().unwrap(); // SIGKILL: no destructor runs.
    child.wait().unwrap();
    assert!(path.exists(), "a killed owner leaves its file");
    assert_eq!(clean(&dir, Some("jobk")).unwrap(), vec![path.clone()]);
    assert!(!path.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_segment_replaces_a_stale_file_of_its_name() {
    let dir = scratch("replace");
    let path = Segment::path_for(&dir, "jobr", 2);
    std::fs::write(&path, b"left by a crash").unwrap();
    let seg = Segment::create(&path, 8192).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
    // But never a live one.
    assert!(matches!(
        Segment::create(&path, 8192),
        Err(StoreError::Exists(_))
    ));
    drop(seg);
    assert!(!path.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clean_touches_only_stale_files_of_the_job_it_is_given() {
    let dir = scratch("jobs");
    let live = Segment::create(&Segment::path_for(&dir, "j1", 0), 4096).unwrap();
    for name in ["ferry-j1-r1", "ferry-j10-r0", "ferry-j2-r0", "notes.txt"] {
        std::fs::write(dir.join(name), b"").unwrap();
    }
    // A temporary file of a dead process, and one of this live process.
    std::fs::write(dir.join(".ferry-j1-r5-tmp-999999999"), b"").unwrap();
    let mine = dir.join(format!(".ferry-j1-r6-tmp-{}", std::process::id()));
    std::fs::write(&mine, b"").unwrap();
    let removed = clean(&dir, Some("j1")).unwrap();
    assert_eq!(
        removed,
        vec![
            dir.join(".ferry-j1-r5-tmp-999999999"),
            dir.join("ferry-j1-r1")
        ]
    );
    assert!(live.path().exists());
    assert!(mine.exists());
    assert!(
        dir.join("ferry-j10-r0").exists(),
        "another job whose id starts alike"
    );
    // Without a job: every stale Ferry file, never other names.
    let removed = clean(&dir, None).unwrap();
    assert_eq!(
        removed,
        vec![dir.join("ferry-j10-r0"), dir.join("ferry-j2-r0")]
    );
    assert!(dir.join("notes.txt").exists());
    assert!(live.path().exists());
    drop(live);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clean_of_a_missing_directory_is_an_error() {
    let err = clean(Path::new("/nonexistent/ferry-dir"), None).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
}
