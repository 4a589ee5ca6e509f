//! A job that puts more than its store holds: objects spill to disk and
//! come back intact on get (in the driver, in tasks, on another rank); a
//! put that cannot fit waits, then says what holds the store; a spill
//! directory that cannot be written is a clear error at start; a crashed
//! rank's spill directory is removed by the next start of its job.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferry::{Config, Error, ObjectRef, StoreError};

/// A spill root of the test's own, removed at the end.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Root {
        let p = std::env::temp_dir().join(format!("ferry-rtspill-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Root(p)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cfg(root: &Root, store: usize) -> Config {
    Config::default()
        .num_cpus(2.0)
        .object_store_memory(store)
        .spill_dir(&root.0)
}

/// Object `seed`'s contents.
fn pattern(seed: u64, out: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in out.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn expected(seed: u64, len: usize) -> u64 {
    let mut v = vec![0u8; len];
    pattern(seed, &mut v);
    checksum(&v)
}

#[ferry::remote]
fn make(seed: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    pattern(seed, &mut v);
    v
}

#[ferry::remote]
fn checksum_of(data: Vec<u8>) -> u64 {
    checksum(&data)
}

/// Puts and reads back objects of its own for `ms` milliseconds; the
/// number of objects checked (a changed or lost one fails the task).
#[ferry::remote]
fn churn(seed: u64, ms: u64) -> u64 {
    let rt = ferry::current().expect("in a task");
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut mine: Vec<(ObjectRef<Vec<u8>>, u64)> = Vec::new();
    let mut checked = 0u64;
    let mut i = 0u64;
    while Instant::now() < deadline {
        let len = [5_000usize, 300_000, 1 << 20, 1_700_000][(i % 4) as usize];
        let s = seed << 20 | i;
        let r = rt
            .put_vec_with::<u8>(len, |d| pattern(s, d))
            .expect("put under pressure");
        mine.push((r, s));
        i += 1;
        let k = (i as usize * 7) % mine.len();
        let (r, s) = &mine[k];
        let v = rt.get(r).expect("get under pressure");
        assert_eq!(checksum(v.as_slice()), expected(*s, v.len()), "object {s}");
        checked += 1;
        if mine.len() > 24 {
            mine.remove(0);
        }
    }
    checked
}

#[test]
fn three_times_the_store_of_live_objects_come_back_intact() -> ferry::Result<()> {
    let root = Root::new("3x");
    let store = 32 << 20;
    let rt = ferry::init(cfg(&root, store))?;
    let mut objects = Vec::new();
    let mut total = 0usize;
    let mut seed = 0u64;
    while total < 3 * store {
        let len = [1usize << 20, 2_500_000, 40_000, 3 << 20][seed as usize % 4];
        // Half made by tasks, half put by the driver.
        let r = if seed.is_multiple_of(2) {
            make::remote(&rt, seed, len as u64)?
        } else {
            rt.put_vec_with::<u8>(len, |d| pattern(seed, d))?
        };
        objects.push((r, seed, len));
        total += len;
        seed += 1;
    }
    // Wait for the tasks, in order: the store is full long before the end.
    for (r, _, _) in &objects {
        rt.wait(std::slice::from_ref(r), 1, None)?;
    }
    let stats = rt.spill_stats();
    assert!(stats.spilled_objects > 0, "{stats:?}");
    assert!(rt.store_used() <= store);
    // Every object back, in a shuffled order: in the driver, and as a
    // task's argument.
    let n = objects.len();
    for k in 0..n {
        let (r, seed, len) = &objects[(k * 37) % n];
        let v = rt.get(r)?;
        assert_eq!(v.len(), *len);
        assert_eq!(
            checksum(v.as_slice()),
            expected(*seed, *len),
            "object {seed}"
        );
    }
    for (r, seed, len) in objects.iter().step_by(5) {
        let sum = checksum_of::remote(&rt, r)?;
        assert_eq!(
            *rt.get(&sum)?,
            expected(*seed, *len),
            "object {seed} in a task"
        );
    }
    let stats = rt.spill_stats();
    assert!(stats.restored_objects > 0, "{stats:?}");
    let dir = rt.spill_dir().expect("spilling is on").to_path_buf();
    drop(objects);
    rt.shutdown()?;
    assert!(!dir.exists(), "the spill directory is removed at shutdown");
    Ok(())
}

#[test]
fn concurrent_tasks_putting_and_getting_under_a_small_store_lose_nothing() -> ferry::Result<()> {
    let root = Root::new("mix");
    let rt = ferry::init(cfg(&root, 16 << 20).num_cpus(4.0))?;
    let tasks: Vec<_> = (0..8)
        .map(|t| churn::remote(&rt, t, 2500))
        .collect::<ferry::Result<_>>()?;
    let mut checked = 0u64;
    for t in &tasks {
        checked += rt.get(t)?.to_native();
    }
    assert!(checked > 0);
    let stats = rt.spill_stats();
    assert!(
        stats.spilled_objects > 0 && stats.restored_objects > 0,
        "{stats:?}"
    );
    rt.shutdown()
}

#[test]
fn a_put_that_cannot_fit_waits_then_says_what_holds_the_store() -> ferry::Result<()> {
    let root = Root::new("held");
    let timeout = Duration::from_millis(300);
    let rt = ferry::init(cfg(&root, 8 << 20).put_timeout(timeout))?;
    let a = rt.put_vec_with::<u8>(3 << 20, |d| d.fill(1))?;
    let b = rt.put_vec_with::<u8>(3 << 20, |d| d.fill(2))?;
    // Live views pin both: nothing can be spilled.
    let (va, vb) = (rt.get(&a)?, rt.get(&b)?);
    let start = Instant::now();
    let err = rt.put_vec_with::<u8>(4 << 20, |d| d.fill(3)).unwrap_err();
    assert!(start.elapsed() >= timeout);
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::Store(e) if matches!(**e, StoreError::Held { .. })),
        "{err:?}"
    );
    assert!(err.is_store_full(), "{err:?}");
    assert!(msg.contains("asked for 4.0 MiB and waited 0.3 s"), "{msg}");
    assert!(
        msg.contains("2 objects (6.0 MiB) read by live views"),
        "{msg}"
    );
    assert!(msg.contains("spilled to"), "{msg}");
    // Let go of one view: now it can be spilled and the put fits (next to
    // the free end of the store).
    drop(vb);
    let c = rt.put_vec_with::<u8>(4 << 20, |d| d.fill(3))?;
    assert!(rt.get(&c)?.as_slice().iter().all(|&x| x == 3));
    assert!(va.as_slice().iter().all(|&x| x == 1));
    drop(va);
    assert!(rt.get(&b)?.as_slice().iter().all(|&x| x == 2));
    rt.shutdown()
}

#[test]
fn an_unwritable_spill_dir_is_a_clear_error_at_start() {
    let file = std::env::temp_dir().join(format!("ferry-rtspill-file-{}", std::process::id()));
    std::fs::write(&file, b"a file, not a directory").unwrap();
    let err = ferry::init(
        Config::default()
            .object_store_memory(8 << 20)
            .spill_dir(file.join("spill")),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cannot spill objects to"), "{msg}");
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains("FERRY_SPILL_DIR"), "{msg}");
    std::fs::remove_file(&file).unwrap();
    // Spilling off: no directory is needed, none is made.
    let rt = ferry::init(
        Config::default()
            .object_store_memory(8 << 20)
            .spill(false)
            .spill_dir(file.join("spill")),
    )
    .unwrap();
    assert_eq!(rt.spill_dir(), None);
    rt.shutdown().unwrap();
}

#[test]
fn objects_another_rank_spilled_come_back_when_fetched() -> ferry::Result<()> {
    let root = Root::new("ranks");
    let store = 16 << 20;
    let sums = ferry::loopback::run(2, cfg(&root, store).force_rma(true), |rt, world| {
        let other = world.runtime(1).expect("rank 1 is up");
        // Rank 1 puts 3x its store; rank 0 borrows refs to all of them.
        let mut objects = Vec::new();
        for seed in 0..48u64 {
            let r = other.put_vec_with::<u8>(1 << 20, |d| pattern(seed, d))?;
            objects.push((r, seed));
        }
        assert!(other.spill_stats().spilled_objects > 0);
        let mut sums = Vec::new();
        for (r, seed) in &objects {
            // Read on rank 0, which fetches it from rank 1 (read back from
            // disk there first), and on rank 1 itself.
            for on in [0, 1] {
                let s = checksum_of::options().on_rank(on).remote(&other, r)?;
                sums.push((other.get(&s)?.to_native(), *seed));
            }
        }
        assert!(other.spill_stats().restored_objects > 0);
        assert_eq!(rt.rank(), 0);
        Ok::<_, Error>(sums)
    })??;
    for (sum, seed) in sums {
        assert_eq!(sum, expected(seed, 1 << 20), "object {seed}");
    }
    Ok(())
}

/// The child half of the crash test: a rank that spills, then is killed.
fn crash_child(root: &Path, job: &str) -> ! {
    let rt = ferry::init(
        Config::default()
            .job_id(job)
            .object_store_memory(8 << 20)
            .spill_dir(root),
    )
    .expect("child runtime");
    let mut keep = Vec::new();
    for seed in 0..24u64 {
        keep.push(
            rt.put_vec_with::<u8>(1 << 20, |d| pattern(seed, d))
                .unwrap(),
        );
    }
    assert!(rt.spill_stats().spilled_objects > 0);
    println!("spilled");
    // SAFETY: raising a signal has no memory-safety preconditions.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!("SIGKILL returned");
}

#[test]
fn a_crashed_rank_s_spill_dir_is_removed_by_the_next_start() {
    if let (Ok(j), Some(r)) = (
        std::env::var("FERRY_SPILL_CRASH_CHILD"),
        std::env::var_os("FERRY_SPILL_TEST_ROOT"),
    ) {
        crash_child(Path::new(&r), &j);
    }
    let root = Root::new("crash");
    let job = format!("spillcrash{}", std::process::id());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_crashed_rank_s_spill_dir_is_removed_by_the_next_start",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FERRY_SPILL_CRASH_CHILD", &job)
        .env("FERRY_SPILL_TEST_ROOT", &root.0)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("spilled"),
        "the child did not get to spill: {text}"
    );
    let dir = root.0.join(format!("ferry-{job}-r0.spill"));
    let shm = PathBuf::from(format!("/dev/shm/ferry-{job}-r0"));
    // Their names went at start: a SIGKILLed rank leaves nothing behind.
    assert!(!dir.exists(), "a SIGKILLed rank left its spill directory");
    assert!(!shm.exists(), "a SIGKILLed rank left its segment");
    // What a rank killed before its names went (or an older version)
    // leaves: a directory nobody holds, which the next start removes.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("spill-buffered"), b"old").unwrap();
    let rt = ferry::init(
        Config::default()
            .job_id(job.clone())
            .object_store_memory(8 << 20)
            .spill_dir(&root.0),
    )
    .unwrap();
    // The stale directory was replaced by the new run's own, whose name
    // went too once its files were open.
    assert_eq!(rt.spill_dir(), Some(dir.as_path()));
    assert!(!dir.exists(), "the stale directory is gone");
    let r = rt.put_vec_with::<u8>(6 << 20, |d| pattern(1, d)).unwrap();
    let s = rt.put_vec_with::<u8>(6 << 20, |d| pattern(2, d)).unwrap();
    assert!(rt.spill_stats().spilled_objects > 0, "the new run spills");
    assert_eq!(rt.get(&r).unwrap().as_slice().len(), 6 << 20);
    drop((r, s));
    rt.shutdown().unwrap();
    assert!(!dir.exists() && !shm.exists());
}
