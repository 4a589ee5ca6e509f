//! Shared-memory hygiene at the runtime's level: a running job's files have
//! no names (so nothing is left however it ends: `tests/shm_faults.rs`);
//! files a crashed run of the same job (or an older version) left are
//! removed at the next start; other jobs' files are not; `ferry clean`
//! removes stale files and leaves live ones.

use std::path::PathBuf;
use std::process::Command;

use ferry::Config;

fn shm(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name)
}

/// Runs `ferry clean` with `args`, checks it succeeded and said it removed
/// `removed`; its output.
fn ferry_clean(args: &[&str], removed: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("clean")
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("removed {}", removed.display())),
        "{text}"
    );
    text
}

#[test]
fn the_next_start_of_a_job_removes_what_its_crashed_ranks_left() {
    let job = format!("hyg{}", std::process::id());
    let other = format!("hygother{}", std::process::id());
    // As SIGKILLed ranks leave them: files nobody holds.
    for name in [
        format!("ferry-{job}-r0"),
        format!("ferry-{job}-r3"),
        format!("ferry-{other}-r0"),
    ] {
        std::fs::write(shm(&name), b"").unwrap();
    }
    let rt = ferry::init(
        Config::default()
            .job_id(job.clone())
            .object_store_memory(16 << 20),
    )
    .unwrap();
    assert!(!shm(&format!("ferry-{job}-r3")).exists());
    // Rank 0's own name was the live arena's, then removed once mapped.
    assert_eq!(rt.store_path(), shm(&format!("ferry-{job}-r0")));
    assert!(!rt.store_path().exists(), "the live arena has no name");
    let r = rt.put(&vec![3u64; 1 << 10]).unwrap();
    assert_eq!(rt.get(&r).unwrap().len(), 1 << 10);
    assert!(
        shm(&format!("ferry-{other}-r0")).exists(),
        "another job's file"
    );
    rt.shutdown().unwrap();
    assert!(!shm(&format!("ferry-{job}-r0")).exists());
    std::fs::remove_file(shm(&format!("ferry-{other}-r0"))).unwrap();
}

#[test]
fn ferry_clean_removes_stale_files_and_leaves_live_ones() {
    let job = format!("hygcli{}", std::process::id());
    let stale = shm(&format!("ferry-{job}-r1"));
    std::fs::write(&stale, b"").unwrap();
    let rt = ferry::init(
        Config::default()
            .job_id(job.clone())
            .object_store_memory(16 << 20),
    )
    .unwrap();
    // The start removed r1 already; leave another one behind again.
    std::fs::write(&stale, b"").unwrap();
    // A live segment with a name (a rank still starting, or an older
    // version's): held by this process.
    let live =
        ferry::parts::store::Segment::create(&shm(&format!("ferry-{job}-r2")), 1 << 20).unwrap();
    let text = ferry_clean(&["--job", &job], &stale);
    assert!(text.contains("1 stale file removed"), "{text}");
    assert!(!stale.exists());
    assert!(live.path().exists(), "the live segment stays");
    drop(live);
    rt.shutdown().unwrap();
    // A directory that is not there: a clear error, exit code 1.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["clean", "--dir", "/nonexistent/ferry"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ferry"));
}

#[test]
fn ferry_clean_removes_stale_spill_directories_and_leaves_live_ones() {
    let job = format!("hygspill{}", std::process::id());
    let root = std::env::temp_dir().join(format!("ferry-hygspill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let rt = ferry::init(
        Config::default()
            .job_id(job.clone())
            .object_store_memory(16 << 20)
            .spill_dir(&root),
    )
    .unwrap();
    // The runtime's own directory lost its name once its files were open.
    assert!(!rt.spill_dir().unwrap().exists());
    // A live one with a name (an arena made by the store alone keeps it).
    let mut cfg = ferry::parts::store::StoreConfig::new(job.clone(), 2, 1 << 20);
    cfg.spill_root = Some(root.clone());
    let arena = ferry::parts::store::Arena::create(&cfg).unwrap();
    let live = arena.spill_dir().unwrap().to_path_buf();
    // What a killed rank 1 of the job leaves: a directory nobody locks.
    let stale = root.join(format!("ferry-{job}-r1.spill"));
    std::fs::create_dir(&stale).unwrap();
    let root_arg = root.to_string_lossy();
    let text = ferry_clean(&["--job", &job, "--spill-dir", &root_arg], &stale);
    assert!(text.contains("1 stale spill directory removed"), "{text}");
    assert!(!stale.exists());
    assert!(live.is_dir(), "the live directory stays");
    drop(arena);
    assert!(!live.exists());
    rt.shutdown().unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}
