//! Checkpoints under faults: a checkpoint that cannot be written (a path
//! through a regular file, a read-only directory or mount, a full tmpfs)
//! fails the call that made it due, with an error naming the file, and
//! says so on stderr; the actor keeps its state. A checkpoint file that is
//! a FIFO, a link, claims more than it holds, or carries a checksum of the
//! old kind over a zeroed state is refused (`ActorDied` naming it), never
//! read. The default places are private (0700, files 0600); a job id that
//! is not a plain name is refused.
//!
//! Some cases need root (mounting a tmpfs); they say when they are skipped.
//! Others run in a child process (this binary, run again on one test) to
//! read its stderr or to give it its own `TMPDIR`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry::{Config, Error, Runtime, StoreError};

/// Set in a child process this file starts; the value says what to do.
const CHILD: &str = "FERRY_CKPT_FAULTS_CHILD";

/// A directory of the test's own, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("ferry-ckfault-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tmpfs mounted for the test, unmounted at the end.
struct Mounted(PathBuf);

impl Mounted {
    /// Mounts a tmpfs with `opts` on `dir`; `Err` says why it cannot
    /// (not root, or no permission to mount here).
    fn tmpfs(dir: &Path, opts: &str) -> Result<Mounted, String> {
        if !is_root() {
            return Err("not root".into());
        }
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Mounted(dir.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn job(tag: &str) -> String {
    format!("ckfault-{tag}-{}", std::process::id())
}

fn cfg(checkpoints: &Path, tag: &str) -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(16 << 20)
        .job_id(job(tag))
        .checkpoint_dir(checkpoints)
}

#[ferry::actor(checkpoint)]
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Sim {
    step: u64,
    history: Vec<u64>,
}

#[ferry::actor]
impl Sim {
    fn new() -> Self {
        Sim {
            step: 0,
            history: Vec::new(),
        }
    }

    fn advance(&mut self, by: u64) -> u64 {
        self.step += by;
        self.history.push(self.step);
        self.step
    }

    fn history(&self) -> Vec<u64> {
        self.history.clone()
    }

    /// Makes the state `n` × 8 bytes larger.
    fn grow(&mut self, n: u64) -> usize {
        self.history.extend(std::iter::repeat_n(0, n as usize));
        self.history.len()
    }
}

/// Expects the periodic checkpoint's error: it names `sim.ckpt` and says
/// `why`.
fn expect_write_failure(got: ferry::Result<u64>, why: &str) {
    match got {
        Err(Error::Checkpoint { path, reason }) => {
            assert!(path.ends_with("sim.ckpt"), "{}", path.display());
            assert!(reason.contains(why), "{reason}");
            assert!(reason.contains("not returned"), "{reason}");
        }
        other => panic!("expected Error::Checkpoint ({why}), got {other:?}"),
    }
}

/// Expects a refused checkpoint file: the actor does not start and its
/// calls fail with `ActorDied` naming the file and saying `why`.
fn expect_refused(rt: &Runtime, why: &str) -> ferry::Result<()> {
    let sim = Sim::options().name("sim").remote(rt)?;
    match rt.get_value(&sim.advance(1).remote()?) {
        Err(Error::ActorDied { reason, .. }) => {
            assert!(reason.contains("sim.ckpt"), "{reason}");
            assert!(reason.contains(why), "{reason}");
        }
        other => panic!("expected ActorDied ({why}), got {other:?}"),
    }
    Ok(())
}

/// This binary again, on `test` only, as a child with `CHILD=what`.
fn child(test: &str, what: &str, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, what)
        .env_remove("XDG_RUNTIME_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the test binary runs")
}

fn child_role() -> Option<String> {
    std::env::var(CHILD).ok()
}

/// The checkpoint directory is under a regular file (so making it fails
/// with ENOTDIR, as root too): every call that makes a checkpoint due
/// fails until the directory can be made, then the state, kept all along,
/// is written and restored. The child prints; the parent reads stderr.
#[test]
fn a_checkpoint_that_cannot_be_written_fails_its_call_and_says_so() -> ferry::Result<()> {
    if child_role().is_some() {
        return through_a_file();
    }
    let out = child(
        "a_checkpoint_that_cannot_be_written_fails_its_call_and_says_so",
        "run",
        &[],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("child done"), "{stdout}\n{stderr}");
    let failing: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("actor sim") && l.contains("Not a directory"))
        .collect();
    assert_eq!(
        failing.len(),
        1,
        "said once, when it starts failing:\n{stderr}"
    );
    assert!(failing[0].starts_with("ferry: rank 0:"), "{stderr}");
    assert!(failing[0].contains("sim.ckpt"), "{stderr}");
    assert!(
        stderr.contains("written again (after 4 calls)"),
        "and once when it works again:\n{stderr}"
    );
    Ok(())
}

fn through_a_file() -> ferry::Result<()> {
    let dir = Dir::new("enotdir");
    let blocker = dir.0.join("a-file");
    std::fs::write(&blocker, b"not a directory").expect("writable");
    let checkpoints = blocker.join("checkpoints");
    {
        let rt = ferry::init(cfg(&checkpoints, "enotdir"))?;
        let sim = Sim::options().name("sim").checkpoint_every(2).remote(&rt)?;
        assert_eq!(rt.get_value(&sim.advance(1).remote()?)?, 1);
        expect_write_failure(rt.get_value(&sim.advance(1).remote()?), "Not a directory");
        // Due again at once: the next call tries again, and fails.
        expect_write_failure(rt.get_value(&sim.advance(1).remote()?), "Not a directory");
        // On request: the same error.
        match rt.get_value(&sim.checkpoint()?) {
            Err(Error::Checkpoint { path, .. }) => assert!(path.ends_with("sim.ckpt")),
            other => panic!("expected Error::Checkpoint, got {other:?}"),
        }
        // The way is cleared: the state was kept through the failures.
        std::fs::remove_file(&blocker).expect("removable");
        assert_eq!(rt.get_value(&sim.advance(1).remote()?)?, 4);
        assert!(rt.checkpoint_dir().join("sim.ckpt").is_file());
        rt.shutdown()?;
    }
    let rt = ferry::init(cfg(&checkpoints, "enotdir"))?;
    let sim = Sim::options().name("sim").checkpoint_every(2).remote(&rt)?;
    assert_eq!(rt.get_value(&sim.history().remote()?)?, [1, 2, 3, 4]);
    assert_eq!(rt.restored_actors()[0].calls, 4);
    rt.shutdown()?;
    println!("child done");
    Ok(())
}

/// A read-only mount (root) or a directory without write permission (any
/// other user; root writes through those): the periodic checkpoint fails
/// its call.
#[test]
fn a_checkpoint_into_a_read_only_place_fails_its_call() -> ferry::Result<()> {
    let dir = Dir::new("ro");
    let checkpoints = dir.0.join("ro");
    let (_mount, why) = if is_root() {
        match Mounted::tmpfs(&checkpoints, "ro,size=64k") {
            Ok(m) => (Some(m), "Read-only file system"),
            Err(e) => {
                println!("skipped: cannot mount a read-only tmpfs as root: {e}");
                return Ok(());
            }
        }
    } else {
        std::fs::create_dir(&checkpoints).expect("dir");
        std::fs::set_permissions(&checkpoints, std::fs::Permissions::from_mode(0o500))
            .expect("chmod");
        (None, "Permission denied")
    };
    let rt = ferry::init(cfg(&checkpoints, "ro"))?;
    let sim = Sim::options().name("sim").checkpoint_every(1).remote(&rt)?;
    expect_write_failure(rt.get_value(&sim.advance(5).remote()?), why);
    expect_write_failure(rt.get_value(&sim.advance(5).remote()?), why);
    rt.shutdown()?;
    if !is_root() {
        let _ = std::fs::set_permissions(&checkpoints, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// A tmpfs of 64 KiB and a state of 160 KiB: the write fails with ENOSPC
/// and leaves no temporary file behind; the last checkpoint is intact.
#[test]
fn a_checkpoint_into_a_full_tmpfs_fails_its_call() -> ferry::Result<()> {
    let dir = Dir::new("full");
    let checkpoints = dir.0.join("small");
    let _mount = match Mounted::tmpfs(&checkpoints, "size=64k") {
        Ok(m) => m,
        Err(e) => {
            println!("skipped: needs a 64 KiB tmpfs, which needs root: {e}");
            return Ok(());
        }
    };
    let rt = ferry::init(cfg(&checkpoints, "full"))?;
    let sim = Sim::options().name("sim").checkpoint_every(1).remote(&rt)?;
    assert_eq!(rt.get_value(&sim.advance(1).remote()?)?, 1);
    let file = rt.checkpoint_dir().join("sim.ckpt");
    let first = std::fs::read(&file).expect("the first checkpoint");
    expect_write_failure(
        rt.get_value(&sim.grow(20_000).remote()?).map(|n| n as u64),
        "No space left on device",
    );
    assert_eq!(std::fs::read(&file).expect("still there"), first);
    let left: Vec<_> = std::fs::read_dir(rt.checkpoint_dir())
        .expect("listable")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("sim.ckpt")]);
    rt.shutdown()
}

/// A FIFO where the checkpoint should be: refused, never opened for a
/// blocking read (which would hang).
#[test]
fn a_fifo_in_place_of_the_checkpoint_is_refused() -> ferry::Result<()> {
    let dir = Dir::new("fifo");
    let rt = ferry::init(cfg(&dir.0, "fifo"))?;
    std::fs::create_dir_all(rt.checkpoint_dir()).expect("job dir");
    let fifo = rt.checkpoint_dir().join("sim.ckpt");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: mkfifo with a valid NUL-terminated path; no memory is shared.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    expect_refused(&rt, "a FIFO, not a regular file")?;
    rt.shutdown()
}

/// A symbolic link where the checkpoint should be: not followed when
/// reading (refused), and replaced, not written through, when writing.
#[test]
fn a_symlink_in_place_of_the_checkpoint_is_not_followed() -> ferry::Result<()> {
    let dir = Dir::new("link");
    let rt = ferry::init(cfg(&dir.0, "link"))?;
    // A real checkpoint of another actor, linked to as `sim`'s.
    let other = Sim::options().name("other").remote(&rt)?;
    rt.get_value(&other.advance(3).remote()?)?;
    rt.get_value(&other.checkpoint()?)?;
    let link = rt.checkpoint_dir().join("sim.ckpt");
    std::os::unix::fs::symlink(rt.checkpoint_dir().join("other.ckpt"), &link).expect("symlink");
    expect_refused(&rt, "symbolic link")?;
    // Writing: the link is replaced by the file; its target is untouched.
    let victim = dir.0.join("victim");
    std::fs::write(&victim, b"someone's file").expect("writable");
    let fresh = Sim::options().name("fresh").remote(&rt)?;
    rt.get_value(&fresh.advance(1).remote()?)?;
    let fresh_path = rt.checkpoint_dir().join("fresh.ckpt");
    std::os::unix::fs::symlink(&victim, &fresh_path).expect("symlink");
    rt.get_value(&fresh.checkpoint()?)?;
    assert_eq!(std::fs::read(&victim).expect("readable"), b"someone's file");
    let meta = std::fs::symlink_metadata(&fresh_path).expect("there");
    assert!(
        meta.file_type().is_file(),
        "the link was replaced by the file"
    );
    rt.shutdown()
}

/// Header fields of a version-2 checkpoint (as `core/src/checkpoint.rs`
/// writes them).
fn header(calls: u64, state_len: u64, sum: u64) -> Vec<u8> {
    let mut h = b"FERRYCKP".to_vec();
    h.extend_from_slice(&2u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&calls.to_le_bytes());
    h.extend_from_slice(&state_len.to_le_bytes());
    h.extend_from_slice(&sum.to_le_bytes());
    h
}

/// A header claiming 4 GiB in a file of a few bytes is refused before
/// anything is allocated (it aborted the process before); a header whose
/// size agrees with a sparse file of 2 TiB is refused by the size limit.
#[test]
fn a_checkpoint_claiming_more_than_it_may_hold_is_refused() -> ferry::Result<()> {
    let dir = Dir::new("huge");
    let rt = ferry::init(cfg(&dir.0, "huge"))?;
    std::fs::create_dir_all(rt.checkpoint_dir()).expect("job dir");
    let file = rt.checkpoint_dir().join("sim.ckpt");
    let mut bytes = header(5, 4 << 30, 0);
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&file, &bytes).expect("writable");
    expect_refused(&rt, "header says 4294967296 bytes of state")?;
    // The same length in the header and the file, past the limit: sparse,
    // so no disk is used.
    let state = 2u64 << 40;
    let f = std::fs::File::create(&file).expect("writable");
    std::io::Write::write_all(&mut &f, &header(5, state, 0)).expect("written");
    match f.set_len(40 + state) {
        Ok(()) => expect_refused(&rt, "larger than the limit")?,
        Err(e) => println!("skipped the 2 TiB sparse file: {e}"),
    }
    drop(f);
    let _ = std::fs::remove_file(&file);
    rt.shutdown()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The case found before: a real checkpoint whose state was zeroed and
/// given a valid checksum of the state alone (format version 1's) was
/// restored as "taken after 5 calls" with its counts at zero. The checksum
/// now covers the header too.
#[test]
fn a_zeroed_state_with_a_checksum_of_the_state_alone_is_refused() -> ferry::Result<()> {
    let dir = Dir::new("zero");
    let file = {
        let rt = ferry::init(cfg(&dir.0, "zero"))?;
        let sim = Sim::options().name("sim").checkpoint_every(5).remote(&rt)?;
        for _ in 0..5 {
            rt.get_value(&sim.advance(1).remote()?)?;
        }
        let file = rt.checkpoint_dir().join("sim.ckpt");
        rt.shutdown()?;
        file
    };
    let mut bytes = std::fs::read(&file).expect("written");
    assert_eq!(&bytes[..8], b"FERRYCKP");
    assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), 5);
    bytes[40..].fill(0);
    let sum = fnv1a(&bytes[40..]);
    bytes[32..40].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&file, &bytes).expect("writable");
    let rt = ferry::init(cfg(&dir.0, "zero"))?;
    expect_refused(&rt, "checksum does not match")?;
    assert!(rt.restored_actors().is_empty());
    rt.shutdown()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("exists")
        .permissions()
        .mode()
        & 0o7777
}

/// Without a checkpoint or spill directory given, both go to the user's
/// private directory: every directory 0700, checkpoint files 0600.
#[test]
fn default_places_are_private() -> ferry::Result<()> {
    let private = ferry::parts::store::PrivateDir::locate();
    let rt = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(16 << 20)
            .job_id(job("default")),
    )?;
    let ckpt = rt.checkpoint_dir().to_path_buf();
    assert_eq!(
        ckpt,
        private.path().join("checkpoints").join(job("default"))
    );
    let sim = Sim::options().name("sim").remote(&rt)?;
    rt.get_value(&sim.advance(1).remote()?)?;
    rt.get_value(&sim.checkpoint()?)?;
    assert_eq!(mode(&ckpt.join("sim.ckpt")), 0o600);
    for d in [
        ckpt.as_path(),
        &private.path().join("checkpoints"),
        private.path(),
    ] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    let spill = rt.spill_dir().expect("spilling is on").to_path_buf();
    assert!(
        spill.starts_with(private.path().join("spill")),
        "{}",
        spill.display()
    );
    // The rank's own spill directory loses its name once open (nothing is
    // left behind however the rank ends); its parent stays private.
    assert!(!spill.exists(), "{}", spill.display());
    assert_eq!(mode(&private.path().join("spill")), 0o700);
    rt.shutdown()?;
    let _ = std::fs::remove_dir_all(&ckpt);
    Ok(())
}

/// `ferry-<uid>` in `$TMPDIR` made by someone else, or open to others, is
/// refused with an error naming it, and nothing is put in it. In a child
/// with its own `TMPDIR`.
#[test]
fn a_default_place_that_is_not_private_is_refused() -> ferry::Result<()> {
    if child_role().is_some() {
        return in_an_open_tmpdir();
    }
    let tmp = Dir::new("opentmp");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let root = tmp.0.join(format!("ferry-{uid}"));
    std::fs::create_dir(&root).expect("dir");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = child(
        "a_default_place_that_is_not_private_is_refused",
        "run",
        &[("TMPDIR", &tmp.0)],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("child done"), "{stdout}\n{stderr}");
    assert_eq!(mode(&root), 0o755, "never mended");
    assert_eq!(
        std::fs::read_dir(&root).expect("listable").count(),
        0,
        "nothing was put in it"
    );
    Ok(())
}

fn in_an_open_tmpdir() -> ferry::Result<()> {
    let root = ferry::parts::store::PrivateDir::locate()
        .path()
        .to_path_buf();
    let base = || {
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(16 << 20)
            .job_id(job("opentmp"))
    };
    match ferry::init(base()) {
        Err(Error::Store(e)) => {
            assert!(matches!(*e, StoreError::SpillDir { .. }), "{e:?}");
            let m = e.to_string();
            assert!(m.contains(&root.display().to_string()), "{m}");
            assert!(m.contains("mode is 0755"), "{m}");
        }
        other => panic!("expected the spill directory refused, got {other:?}"),
    }
    // Without spilling the job starts, but an actor with a checkpoint does
    // not: looking for its checkpoint finds the place is not private.
    let rt = ferry::init(base().spill(false))?;
    let sim = Sim::options().name("sim").remote(&rt)?;
    match rt.get_value(&sim.advance(1).remote()?) {
        Err(Error::ActorDied { reason, .. }) => {
            assert!(reason.contains(&root.display().to_string()), "{reason}");
            assert!(reason.contains("not a private directory"), "{reason}");
        }
        other => panic!("expected ActorDied, got {other:?}"),
    }
    rt.shutdown()?;
    println!("child done");
    Ok(())
}

/// A job id that is not a plain name never reaches a path.
#[test]
fn job_ids_that_are_not_plain_names_are_refused() -> ferry::Result<()> {
    let dir = Dir::new("jobid");
    for bad in ["..", ".", "a/b", "a\nb", "run\n", "", "a b", "x\0y"] {
        let c = || {
            Config::default()
                .num_cpus(1.0)
                .object_store_memory(16 << 20)
                .checkpoint_dir(&dir.0)
                .job_id(bad)
        };
        match ferry::init(c()) {
            Err(Error::InvalidArgument(m)) => {
                assert!(m.contains("job_id") && m.contains("plain name"), "{m}");
                assert!(!m.contains('\n'), "one line: {m}");
            }
            other => panic!("{bad:?}: expected InvalidArgument, got {other:?}"),
        }
        match ferry::loopback::run(2, c(), |_, _| ()) {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("{bad:?} over loopback: expected InvalidArgument, got {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read_dir(&dir.0).expect("listable").count(),
        0,
        "nothing was made"
    );
    Ok(())
}
