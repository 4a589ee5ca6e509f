//! Shared-memory hygiene at the runtime's level: files a crashed run of the
//! same job left are removed at the next start; other jobs' files are not;
//! `ferry clean` removes stale files and leaves live ones.

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
    // Rank 0's own name is the live arena now.
    assert_eq!(rt.store_path(), shm(&format!("ferry-{job}-r0")));
    assert_eq!(
        std::fs::metadata(rt.store_path()).unwrap().len(),
        16 << 20,
        "the live arena replaced the stale file"
    );
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
    let text = ferry_clean(&["--job", &job], &stale);
    assert!(text.contains("1 stale file removed"), "{text}");
    assert!(!stale.exists());
    assert!(rt.store_path().exists(), "the live arena stays");
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
    let live = rt.spill_dir().unwrap().to_path_buf();
    // What a killed rank 1 of the job leaves: a directory nobody locks.
    let stale = root.join(format!("ferry-{job}-r1.spill"));
    std::fs::create_dir(&stale).unwrap();
    let root_arg = root.to_string_lossy();
    let text = ferry_clean(&["--job", &job, "--spill-dir", &root_arg], &stale);
    assert!(text.contains("1 stale spill directory removed"), "{text}");
    assert!(!stale.exists());
    assert!(live.is_dir(), "the live rank's directory stays");
    rt.shutdown().unwrap();
    assert!(!live.exists());
    std::fs::remove_dir_all(&root).unwrap();
}
