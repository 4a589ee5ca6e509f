//! Spilling under memory pressure: objects beyond the arena's capacity go
//! to disk and come back intact; pinned and lent objects never move; a
//! put that cannot fit waits, then says what holds the store.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_store::{Arena, SPILL_MIN, Sealed, StoreConfig, StoreError};

/// A spill root of its own for each test, removed at the end.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Root {
        let p = std::env::temp_dir().join(format!("ferry-spilltest-{tag}-{}", std::process::id()));
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

fn spilling_cfg(tag: &str, capacity: usize, root: &Root, timeout: Duration) -> StoreConfig {
    let mut cfg = common::unique_cfg(tag, capacity);
    cfg.spill_root = Some(root.0.clone());
    cfg.put_timeout = timeout;
    cfg
}

/// Deterministic contents for object `i` of `len` bytes.
fn fill(i: u64, buf: &mut [u8]) {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    // FNV-1a, 64 bit.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn put(arena: &Arena, i: u64, len: usize) -> Result<(Sealed, u64), StoreError> {
    let mut b = arena.alloc(len)?;
    fill(i, &mut b);
    let sum = checksum(&b);
    Ok((arena.seal(b.freeze()), sum))
}

#[test]
fn three_times_the_capacity_comes_back_intact() {
    let root = Root::new("3x");
    let cap = 32 << 20;
    let arena = Arena::create(&spilling_cfg("3x", cap, &root, Duration::from_secs(5))).unwrap();
    // Sizes from a few bytes to 4 MiB: the buffered and the direct path.
    let sizes = [100, 4096, 70_000, 1 << 20, 3 << 20, 4 << 20, 333_333];
    let mut objects = Vec::new();
    let mut total = 0usize;
    let mut i = 0u64;
    while total < 3 * cap {
        let len = sizes[i as usize % sizes.len()];
        objects.push((i, put(&arena, i, len).unwrap()));
        total += len;
        i += 1;
    }
    let stats = arena.spill_stats();
    assert!(stats.spilled_objects > 0, "{stats:?}");
    assert!(stats.on_disk_bytes as usize >= cap, "{stats:?}");
    assert!(arena.used() <= cap);
    for (i, (obj, _)) in &objects {
        if obj.len() < SPILL_MIN {
            assert!(!obj.is_spilled(), "object {i}: too small to spill");
        }
    }
    // Every object, in a shuffled order, read back and checked.
    let n = objects.len();
    for k in 0..n {
        let (i, (obj, sum)) = &objects[(k * 7919) % n];
        let bytes = obj.pin().unwrap();
        assert_eq!(checksum(&bytes), *sum, "object {i} of {} bytes", obj.len());
    }
    let stats = arena.spill_stats();
    assert!(stats.restored_objects > 0, "{stats:?}");
    if stats.direct_objects == 0 {
        eprintln!(
            "note: {} refuses O_DIRECT; only buffered spills were tested",
            root.0.display()
        );
    }
    let dir = arena.spill_dir().unwrap().to_path_buf();
    assert!(dir.is_dir());
    drop(objects);
    assert_eq!(arena.spill_stats().on_disk_objects, 0);
    assert_eq!(arena.used(), 0);
    drop(arena);
    assert!(!dir.exists(), "the spill directory goes with the store");
}

#[test]
fn pinned_and_lent_objects_stay_where_they_are() {
    let root = Root::new("pinned");
    let cap = 8 << 20;
    let arena = Arena::create(&spilling_cfg("pinned", cap, &root, Duration::from_secs(2))).unwrap();
    let (a, sum_a) = put(&arena, 1, 1 << 20).unwrap();
    let (b, sum_b) = put(&arena, 2, 1 << 20).unwrap();
    let pin = a.pin().unwrap();
    let at = pin.offset();
    let lent_at = b.lend().unwrap();
    let mut rest = Vec::new();
    for i in 10..40 {
        rest.push(put(&arena, i, 1 << 20).unwrap());
    }
    assert!(arena.spill_stats().spilled_objects > 0);
    assert!(!a.is_spilled() && !b.is_spilled());
    assert_eq!(pin.offset(), at);
    assert_eq!(checksum(&pin), sum_a);
    assert_eq!(b.pin().unwrap().offset(), Some(lent_at));
    drop(pin);
    // Unpinned now: it may go like the others, and comes back intact.
    for i in 40..60 {
        rest.push(put(&arena, i, 1 << 20).unwrap());
    }
    assert!(a.is_spilled(), "the oldest idle object is spilled");
    assert!(!b.is_spilled(), "a lent object never is");
    assert_eq!(checksum(&a.pin().unwrap()), sum_a);
    assert_eq!(checksum(&b.pin().unwrap()), sum_b);
}

/// The spill files of the directory `dir` that hold something, opened for
/// writing through this process's descriptors (they have no names).
fn spill_files(dir: &std::path::Path) -> Vec<std::fs::File> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.starts_with(dir) {
            continue;
        }
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(entry.path())
        else {
            continue; // the directory itself
        };
        if f.metadata().is_ok_and(|m| m.is_file() && m.len() > 0) {
            files.push(f);
        }
    }
    files
}

#[test]
fn a_damaged_spill_file_is_corrupt_and_never_read_as_the_object() {
    use std::os::unix::fs::FileExt;

    let root = Root::new("damaged");
    let arena = Arena::create(&spilling_cfg(
        "damaged",
        1 << 20,
        &root,
        Duration::from_secs(5),
    ))
    .unwrap();
    // 64 KiB objects go through the page cache into one file; the first one
    // spilled lies at its start.
    let objects: Vec<_> = (0..48)
        .map(|i| (i, put(&arena, i, 64 << 10).unwrap()))
        .collect();
    assert!(arena.spill_stats().spilled_objects > 0);
    let files = spill_files(arena.spill_dir().unwrap());
    assert_eq!(files.len(), 1, "one spill file holds the objects");
    let mut byte = [0u8; 1];
    files[0].read_exact_at(&mut byte, 1000).unwrap();
    files[0].write_all_at(&[byte[0] ^ 0x10], 1000).unwrap();
    let mut corrupt = Vec::new();
    for (i, (obj, sum)) in &objects {
        let was_spilled = obj.is_spilled();
        match obj.pin() {
            Ok(bytes) => assert_eq!(checksum(&bytes), *sum, "object {i} came back changed"),
            Err(StoreError::Corrupt(why)) => {
                assert!(was_spilled, "object {i} was in memory: {why}");
                assert!(
                    why.contains("checksum") && why.contains("64.0 KiB"),
                    "{why}"
                );
                corrupt.push(*i);
            }
            Err(e) => panic!("object {i}: {e}"),
        }
    }
    assert_eq!(corrupt.len(), 1, "exactly the damaged object: {corrupt:?}");
    // It stays on disk, and stays an error.
    let (obj, _) = &objects[corrupt[0] as usize].1;
    assert!(obj.is_spilled());
    assert!(matches!(obj.pin(), Err(StoreError::Corrupt(_))));
    // Putting the byte back makes it readable again: nothing else was lost.
    files[0].write_all_at(&byte, 1000).unwrap();
    let (obj, sum) = &objects[corrupt[0] as usize].1;
    assert_eq!(checksum(&obj.pin().unwrap()), *sum);
}

#[test]
fn a_put_that_cannot_fit_waits_then_says_what_holds_the_store() {
    let root = Root::new("held");
    let cap = 4 << 20;
    let timeout = Duration::from_millis(300);
    let arena = Arena::create(&spilling_cfg("held", cap, &root, timeout)).unwrap();
    let (a, _) = put(&arena, 1, 2 << 20).unwrap();
    let (b, _) = put(&arena, 2, 1 << 20).unwrap();
    let _pa = a.pin().unwrap();
    let _lent = b.lend().unwrap();
    let being_written = arena.alloc(512 << 10).unwrap();
    let start = Instant::now();
    let err = put(&arena, 3, 1 << 20).unwrap_err();
    assert!(start.elapsed() >= timeout);
    let msg = err.to_string();
    match &err {
        StoreError::Held {
            requested, held, ..
        } => {
            assert_eq!(*requested, 1 << 20);
            assert_eq!(held.in_use.objects, 1, "{msg}");
            assert_eq!(held.in_use.bytes, 2 << 20, "{msg}");
            assert_eq!(held.lent.objects, 1, "{msg}");
            assert_eq!(held.being_written, 512 << 10, "{msg}");
        }
        other => panic!("expected Held, got {other:?}"),
    }
    assert!(msg.contains("asked for 1.0 MiB"), "{msg}");
    assert!(
        msg.contains("1 object (2.0 MiB) read by live views"),
        "{msg}"
    );
    assert!(
        msg.contains("1 object (1.0 MiB) lent to other ranks"),
        "{msg}"
    );
    assert!(msg.contains("512.0 KiB being written"), "{msg}");
    drop(being_written);
    // Larger than the whole store: fails at once, no waiting.
    let start = Instant::now();
    assert!(matches!(arena.alloc(cap + 1), Err(StoreError::Full { .. })));
    assert!(start.elapsed() < timeout);
}

#[test]
fn a_waiting_put_goes_on_when_a_pin_is_dropped() {
    let root = Root::new("wait");
    let cap = 4 << 20;
    let arena = Arc::new(
        Arena::create(&spilling_cfg("wait", cap, &root, Duration::from_secs(20))).unwrap(),
    );
    // The whole store pinned (a running task's arguments, say).
    let (a, sum) = put(&arena, 1, cap).unwrap();
    let pin = a.pin().unwrap();
    let waiter = {
        let arena = Arc::clone(&arena);
        std::thread::spawn(move || {
            let start = Instant::now();
            let r = put(&arena, 2, 1 << 20).map(|_| ());
            (r, start.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    drop(pin);
    let (r, waited) = waiter.join().unwrap();
    r.unwrap();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(
        waited < Duration::from_secs(15),
        "woken, not timed out: {waited:?}"
    );
    assert!(a.is_spilled());
    assert_eq!(checksum(&a.pin().unwrap()), sum);
}

#[test]
fn concurrent_puts_and_gets_under_a_small_capacity_lose_nothing() {
    let root = Root::new("mix");
    // Each thread holds at most two pins of up to 2.5 MB while it restores
    // the second (hold and wait), so six threads may pin 30 MB at once: the
    // store must hold that with room to spare for the holes left by small
    // objects (never spilled), or the threads wait on each other until the
    // put timeout (what a 16 MiB store did in CI). 40 objects of ~0.93 MB
    // per thread keep ~3.5x the store alive, so spilling goes on throughout.
    let cap = 64 << 20;
    let arena =
        Arc::new(Arena::create(&spilling_cfg("mix", cap, &root, Duration::from_secs(30))).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let (arena, stop, checked) = (arena.clone(), stop.clone(), checked.clone());
            std::thread::spawn(move || {
                let mut mine: Vec<(Sealed, u64)> = Vec::new();
                let mut i = t << 32;
                while !stop.load(Ordering::Relaxed) {
                    let len = [3000, 200_000, 1 << 20, 2_500_000][(i % 4) as usize];
                    mine.push(put(&arena, i, len).expect("put under pressure"));
                    i += 1;
                    // Read back a few, old and new, holding two pins at once.
                    let k = (i as usize * 31) % mine.len();
                    let j = mine.len() - 1;
                    let (p, q) = (mine[k].0.pin().unwrap(), mine[j].0.pin().unwrap());
                    assert_eq!(checksum(&p), mine[k].1);
                    assert_eq!(checksum(&q), mine[j].1);
                    drop((p, q));
                    checked.fetch_add(2, Ordering::Relaxed);
                    // Keep 40 per thread alive (~3.5x the store in all).
                    if mine.len() > 40 {
                        mine.remove(0);
                    }
                }
                for (obj, sum) in &mine {
                    assert_eq!(checksum(&obj.pin().unwrap()), *sum);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let stats = arena.spill_stats();
    assert!(
        stats.spilled_objects > 0 && stats.restored_objects > 0,
        "{stats:?}"
    );
    assert!(checked.load(Ordering::Relaxed) > 0);
    assert_eq!(
        stats.on_disk_objects, 0,
        "every object gone, every extent freed"
    );
}

#[test]
fn an_unwritable_spill_directory_is_a_clear_error() {
    // A regular file where the directory should be: refused even for root.
    let file = std::env::temp_dir().join(format!("ferry-spilltest-file-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let mut cfg = common::unique_cfg("unwritable", 1 << 20);
    cfg.spill_root = Some(file.join("spill"));
    let err = Arena::create(&cfg).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::SpillDir { .. }), "{err:?}");
    assert!(msg.contains("cannot spill objects to"), "{msg}");
    assert!(msg.contains("FERRY_SPILL_DIR"), "{msg}");
    std::fs::remove_file(&file).unwrap();
    // No segment was left behind either.
    assert!(!cfg.path().exists());
}

#[test]
fn a_crashed_rank_s_spill_directory_is_cleaned() {
    let root = Root::new("stale");
    let cfg = spilling_cfg("stale", 1 << 20, &root, Duration::ZERO);
    // What a killed rank leaves: its directory, no longer locked.
    let stale = root
        .0
        .join(format!("ferry-{}-r{}.spill", cfg.job_id, cfg.rank));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("leftover"), b"x").unwrap();
    let arena = Arena::create(&cfg).unwrap();
    assert_eq!(arena.spill_dir(), Some(stale.as_path()));
    assert!(!stale.join("leftover").exists(), "taken over clean");
    // A live directory is not touched by a cleaner; a dead one is.
    assert!(ferry_store::clean_spill(&root.0, None).unwrap().is_empty());
    let other = root.0.join("ferry-otherjob-r0.spill");
    std::fs::create_dir(&other).unwrap();
    assert_eq!(
        ferry_store::clean_spill(&root.0, Some("otherjob")).unwrap(),
        vec![other.clone()]
    );
    assert!(stale.exists());
    drop(arena);
    assert!(!stale.exists());
}
