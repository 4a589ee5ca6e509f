//! `ferry clean` removes only what it can prove is Ferry's: names exactly
//! as Ferry gives them, regular files and directories of this user (never
//! through a symbolic link), which no live rank holds.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferry::parts::store::Segment;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferry-cli-clean-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `ferry clean --dir dir --spill-dir spill [extra]`; checks it
/// succeeded; its standard output.
fn ferry_clean(dir: &Path, spill: &Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("clean")
        .arg("--dir")
        .arg(dir)
        .arg("--spill-dir")
        .arg(spill)
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The lines of `text` saying what was removed.
fn removed(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("removed "))
        .collect();
    v.sort_unstable();
    v
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[test]
fn only_a_stale_ferry_segment_and_spill_directory_go() {
    let dir = scratch("shm");
    let spill = scratch("spill");
    let elsewhere = scratch("elsewhere");
    let precious = elsewhere.join("precious.dat");
    std::fs::write(&precious, b"a user's data").unwrap();

    // A user's files whose names merely start like Ferry's.
    for name in ["ferry-notes.txt", "ferry-a-r5x", "ferry-a-r5.bak"] {
        std::fs::write(dir.join(name), b"a user's notes").unwrap();
    }
    // Named like segments, but a symbolic link and a directory.
    std::os::unix::fs::symlink(&precious, dir.join("ferry-a-r7")).unwrap();
    std::fs::create_dir(dir.join("ferry-a-r8")).unwrap();
    // A live rank's segment.
    let live = Segment::create(&dir.join("ferry-a-r1"), 4096).unwrap();
    // What a killed rank leaves: its segment, 0600, held by no one.
    let stale = dir.join("ferry-a-r0");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&stale)
        .unwrap()
        .set_len(4096)
        .unwrap();

    // Spill directories: a stale one, a link to a user's directory, a
    // plain file and a directory of another name.
    let stale_spill = spill.join("ferry-a-r0.spill");
    std::fs::create_dir(&stale_spill).unwrap();
    std::os::unix::fs::symlink(&elsewhere, spill.join("ferry-a-r1.spill")).unwrap();
    std::fs::write(spill.join("ferry-a-r2.spill"), b"a file").unwrap();
    std::fs::create_dir(spill.join("ferry-a-r3x.spill")).unwrap();
    std::fs::create_dir(spill.join("ferry-notes.spill")).unwrap();

    let text = ferry_clean(&dir, &spill, &["--job", "a"]);
    let want = [
        stale.to_string_lossy().into_owned(),
        stale_spill.to_string_lossy().into_owned(),
    ];
    assert_eq!(
        removed(&text),
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(text.contains("1 stale file removed"), "{text}");
    assert!(text.contains("1 stale spill directory removed"), "{text}");
    assert!(!exists(&stale) && !exists(&stale_spill));

    // Without --job: still nothing else.
    let text = ferry_clean(&dir, &spill, &[]);
    assert!(removed(&text).is_empty(), "{text}");
    for path in [
        dir.join("ferry-notes.txt"),
        dir.join("ferry-a-r5x"),
        dir.join("ferry-a-r5.bak"),
        dir.join("ferry-a-r7"),
        dir.join("ferry-a-r8"),
        spill.join("ferry-a-r1.spill"),
        spill.join("ferry-a-r2.spill"),
        spill.join("ferry-a-r3x.spill"),
        spill.join("ferry-notes.spill"),
    ] {
        assert!(exists(&path), "{} was removed", path.display());
    }
    assert!(live.path().exists(), "the live segment was removed");
    assert_eq!(std::fs::read(&precious).unwrap(), b"a user's data");
    assert_eq!(
        std::fs::read(dir.join("ferry-notes.txt")).unwrap(),
        b"a user's notes"
    );
    drop(live);
    for d in [&dir, &spill, &elsewhere] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
