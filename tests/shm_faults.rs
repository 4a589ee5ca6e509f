//! Shared memory under faults: a running job's files have no names, so a
//! job killed in any way leaves nothing in `/dev/shm`; a `/dev/shm` that
//! fills while a job runs is an error, never a `SIGBUS`; the default store
//! size divides the node's budget among its ranks, and stores that cannot
//! fit together are refused at start; a damaged spill file is a corrupt
//! object at `get`.
//!
//! The tests that need a small `/dev/shm` of their own run themselves again
//! in a private mount namespace (`unshare --mount`, root only) with a tmpfs
//! mounted over `/dev/shm` there; elsewhere they say why they skip.

use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferry::{Config, Error};

const MIB: usize = 1 << 20;

/// A directory of its own for each test, removed at the end.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Root {
        let p = std::env::temp_dir().join(format!("ferry-shmfault-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Root(p)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The names in `dir` that belong to job `job` (segments, temporaries,
/// spill directories).
fn named(dir: &Path, job: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.contains(&format!("ferry-{job}-")))
        .collect();
    found.sort();
    found
}

fn shm_named(job: &str) -> Vec<String> {
    named(Path::new("/dev/shm"), job)
}

#[ferry::remote]
fn made_on_rank_1(rt: &ferry::Runtime) -> ferry::Result<Vec<ferry::ObjectRef<Vec<u64>>>> {
    Ok(vec![rt.put_vec_with::<u64>(1 << 18, |xs| {
        for (i, x) in xs.iter_mut().enumerate() {
            *x = i as u64;
        }
    })?])
}

#[test]
fn a_running_job_has_no_file_names_in_shm_or_the_spill_root() -> ferry::Result<()> {
    let root = Root::new("names");
    let job = format!("shmnames{}", std::process::id());
    let rt = ferry::init(
        Config::default()
            .job_id(job.clone())
            .object_store_memory(16 * MIB)
            .spill_dir(&root.0),
    )?;
    assert_eq!(shm_named(&job), Vec::<String>::new());
    assert_eq!(named(&root.0, &job), Vec::<String>::new());
    // The store works without its name, spilling included.
    let objects: Vec<_> = (0..12u8)
        .map(|i| rt.put_vec_with::<u8>(2 * MIB, |d| d.fill(i)))
        .collect::<ferry::Result<_>>()?;
    assert!(rt.spill_stats().spilled_objects > 0);
    for (i, r) in objects.iter().enumerate() {
        assert!(rt.get(r)?.as_slice().iter().all(|&x| x == i as u8));
    }
    drop(objects);
    rt.shutdown()?;

    // Loopback ranks: mapped each other's stores at start, then dropped
    // the names; a neighbour's object is still read in place.
    let job = format!("shmnameslb{}", std::process::id());
    ferry::loopback::run(
        3,
        Config::default()
            .job_id(job.clone())
            .num_cpus(1.0)
            .object_store_memory(16 * MIB)
            .spill_dir(&root.0),
        |rt, _| -> ferry::Result<()> {
            assert_eq!(shm_named(&job), Vec::<String>::new());
            assert_eq!(named(&root.0, &job), Vec::<String>::new());
            let made = made_on_rank_1::options().on_rank(1).remote(&rt)?;
            let r = rt.get(&made)?[0].to_ref()?;
            let before = rt.store_used();
            let v = rt.get(&r)?;
            assert_eq!(v.as_slice().len(), 1 << 18);
            assert!(v.as_slice().iter().enumerate().all(|(i, x)| *x == i as u64));
            assert_eq!(rt.store_used(), before, "read in place: no copy here");
            Ok(())
        },
    )??;
    Ok(())
}

/// The child half of the kill test: a rank that spills, or three loopback
/// ranks, then SIGKILL.
fn kill_child(root: &Path, job: &str, ranks: u32) -> ! {
    let cfg = Config::default()
        .job_id(job)
        .num_cpus(1.0)
        .object_store_memory(8 * MIB)
        .spill_dir(root);
    let die = |rt: &ferry::Runtime| -> ! {
        let keep: Vec<_> = (0..12u8)
            .map(|i| rt.put_vec_with::<u8>(MIB, |d| d.fill(i)).unwrap())
            .collect();
        assert!(rt.spill_stats().spilled_objects > 0);
        println!("ready to die");
        // SAFETY: raising a signal has no memory-safety preconditions.
        unsafe { libc::raise(libc::SIGKILL) };
        drop(keep);
        unreachable!("SIGKILL returned");
    };
    if ranks == 1 {
        die(&ferry::init(cfg).expect("child runtime"));
    }
    let _ = ferry::loopback::run(ranks, cfg, |rt, _| die(&rt));
    unreachable!("the loopback body never returns");
}

#[test]
fn a_sigkilled_job_leaves_nothing_in_shm_or_the_spill_root() {
    if let (Ok(job), Some(root), Ok(ranks)) = (
        std::env::var("FERRY_SHM_KILL_CHILD"),
        std::env::var_os("FERRY_SHM_KILL_ROOT"),
        std::env::var("FERRY_SHM_KILL_RANKS"),
    ) {
        kill_child(Path::new(&root), &job, ranks.parse().unwrap());
    }
    for ranks in [1u32, 3] {
        let root = Root::new(&format!("kill{ranks}"));
        let job = format!("shmkill{ranks}x{}", std::process::id());
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_sigkilled_job_leaves_nothing_in_shm_or_the_spill_root",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FERRY_SHM_KILL_CHILD", &job)
            .env("FERRY_SHM_KILL_ROOT", &root.0)
            .env("FERRY_SHM_KILL_RANKS", ranks.to_string())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ready to die"), "{ranks} ranks: {text}");
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{ranks} ranks");
        assert_eq!(shm_named(&job), Vec::<String>::new(), "{ranks} ranks");
        assert_eq!(named(&root.0, &job), Vec::<String>::new(), "{ranks} ranks");
    }
}

#[test]
fn a_damaged_spill_file_is_a_corrupt_object_at_get() -> ferry::Result<()> {
    let root = Root::new("damaged");
    let rt = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(4 * MIB)
            .spill_dir(&root.0),
    )?;
    // 64 KiB objects go through the page cache into one spill file; the
    // first spilled lies at its start.
    let objects: Vec<_> = (0..128u32)
        .map(|i| rt.put_vec_with::<u32>(16 << 10, |d| d.fill(i)))
        .collect::<ferry::Result<_>>()?;
    assert!(rt.spill_stats().spilled_objects > 0);
    let dir = rt.spill_dir().unwrap().to_path_buf();
    // The spill files have no names: reach them through this process's
    // descriptors.
    let files: Vec<std::fs::File> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(&dir)))
        .filter_map(|e| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(e.path())
                .ok()
        })
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
        .collect();
    assert_eq!(files.len(), 1, "one spill file holds the objects");
    let mut byte = [0u8; 1];
    files[0].read_exact_at(&mut byte, 1000).unwrap();
    files[0].write_all_at(&[byte[0] ^ 0x40], 1000).unwrap();
    let mut corrupt = Vec::new();
    for (i, r) in objects.iter().enumerate() {
        match rt.get(r) {
            Ok(v) => assert!(v.as_slice().iter().all(|&x| x == i as u32), "object {i}"),
            Err(Error::Corrupt { object, reason }) => {
                assert_eq!(object, r.id().to_string());
                assert!(reason.contains("checksum"), "{reason}");
                corrupt.push(i);
            }
            Err(e) => panic!("object {i}: {e}"),
        }
    }
    assert_eq!(corrupt.len(), 1, "exactly the damaged object: {corrupt:?}");
    drop(objects);
    rt.shutdown()
}

/// Mounts a tmpfs of `size` bytes over `/dev/shm` (in the child's private
/// mount namespace).
fn mount_private_shm(size: usize) -> Result<(), String> {
    let out = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            "/dev/shm",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Writes zeros to `path` until `at_most` bytes or a full file system.
fn fill_beside(path: &Path, at_most: usize) -> usize {
    use std::io::Write;
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

/// The child of the full-`/dev/shm` test, in a 256 MiB `/dev/shm` of its
/// own. Before pages were reserved, the first part ended in SIGBUS (exit
/// 135) after a second or two.
fn full_shm_child() {
    if let Err(e) = mount_private_shm(256 * MIB) {
        println!("skipped: cannot mount a tmpfs over /dev/shm here ({e})");
        return;
    }
    // 1. A 200 MiB store, then someone else fills /dev/shm beside it.
    let rt = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(200 * MIB)
            .spill(false)
            .put_timeout(std::time::Duration::ZERO),
    )
    .expect("200 MiB fit in a fresh 256 MiB /dev/shm");
    // The store reserves its pages as it grows (the first 64 MiB at
    // start), so the file takes what is not reserved yet.
    let beside = Path::new("/dev/shm/someone-else");
    let written = fill_beside(beside, 120 * MIB);
    assert_eq!(written, 120 * MIB, "room beside the store's first step");
    let mut objects = Vec::new();
    let err = loop {
        match rt.put_vec_with::<u8>(4 * MIB, |d| d.fill(0x5a)) {
            Ok(r) => objects.push(r),
            Err(e) => break e,
        }
    };
    // The put that needed pages nobody had left: a typed error, no signal.
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("not enough shared memory in /dev/shm"),
        "{err}"
    );
    assert!(
        (16..50).contains(&objects.len()),
        "{} puts of 4 MiB",
        objects.len()
    );
    for r in &objects {
        assert!(rt.get(r).unwrap().as_slice().iter().all(|&x| x == 0x5a));
    }
    drop(objects);
    rt.shutdown().unwrap();
    // 2. Another store in a /dev/shm filled to the brim: an error at start.
    let brim = Path::new("/dev/shm/someone-else-2");
    fill_beside(brim, 256 * MIB);
    let err = ferry::init(Config::default().object_store_memory(64 * MIB)).unwrap_err();
    assert!(
        err.to_string()
            .contains("not enough shared memory in /dev/shm"),
        "{err}"
    );
    std::fs::remove_file(beside).unwrap();
    std::fs::remove_file(brim).unwrap();
    // 3. The default divides the node's budget among its four ranks.
    let share = ferry::parts::store::default_capacity(Path::new("/dev/shm"), 4);
    assert!(share * 4 <= 256 * MIB * 9 / 10, "{share}");
    ferry::loopback::run(4, Config::default().num_cpus(1.0), |_, world| {
        for r in 0..4 {
            let rt = world.runtime(r).unwrap();
            assert_eq!(
                rt.rank_resources()["object_store_memory"],
                share as f64,
                "rank {r}"
            );
        }
    })
    .unwrap();
    // 4. Four explicit stores that cannot fit together: refused at start,
    // with the sizes.
    let err = ferry::loopback::run(
        4,
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(100 * MIB),
        |_, _| (),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("this node's 4 ranks: 4 x 100.0 MiB = 400.0 MiB needed"),
        "{msg}"
    );
    let left: Vec<_> = std::fs::read_dir("/dev/shm").unwrap().flatten().collect();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    println!("child: all four cases held");
}

#[test]
fn a_full_dev_shm_is_an_error_never_a_signal() {
    if std::env::var_os("FERRY_SHM_FULL_CHILD").is_some() {
        full_shm_child();
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: mounting a private /dev/shm needs root");
        return;
    }
    let out = match Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_full_dev_shm_is_an_error_never_a_signal",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FERRY_SHM_FULL_CHILD", "1")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            println!("skipped: cannot run unshare ({e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unshare failed") {
        println!("skipped: no private mount namespace here: {stderr}");
        return;
    }
    assert!(
        out.status.success(),
        "the child failed (exit {:?}, signal {:?}): {stdout}\n{stderr}",
        out.status.code(),
        out.status.signal()
    );
    if stdout.contains("skipped:") {
        println!("{stdout}");
        return;
    }
    assert!(stdout.contains("child: all four cases held"), "{stdout}");
}
