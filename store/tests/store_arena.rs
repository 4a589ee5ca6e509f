//! Arena, segment and allocator behaviour through the public API.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{arena, unique_cfg};
use ferry_store::{Arena, Segment, StoreError, open_readonly};

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;

#[test]
fn file_is_0600_and_removed_on_unlink() {
    let a = arena("mode", MIB);
    let path = a.path().to_path_buf();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len() as usize, a.capacity());
    let mut b = a.alloc(4).unwrap();
    b.as_mut_slice().copy_from_slice(&[1, 2, 3, 4]);
    a.unlink().unwrap();
    assert!(!path.exists());
    a.unlink().unwrap(); // idempotent
    // The mapping is still usable after unlink.
    let b = b.freeze();
    assert_eq!(b.as_slice(), &[1, 2, 3, 4]);
    let mut c = a.alloc(8).unwrap();
    c.as_mut_slice().fill(9);
    assert_eq!(c.as_slice(), &[9; 8]);
}

#[test]
fn file_removed_on_drop_even_with_blocks_outliving_arena() {
    let a = arena("drop", MIB);
    let path = a.path().to_path_buf();
    assert!(path.exists());
    let mut b = a.alloc(3).unwrap();
    b.as_mut_slice().copy_from_slice(b"abc");
    let b = b.freeze();
    drop(a);
    // The block keeps the mapping (and the file) alive.
    assert_eq!(b.as_slice(), b"abc");
    drop(b);
    assert!(!path.exists());
}

#[test]
fn exclusive_create_reports_exists() {
    let cfg = unique_cfg("excl", MIB);
    let a = Arena::create(&cfg).unwrap();
    match Arena::create(&cfg) {
        Err(StoreError::Exists(p)) => assert_eq!(p, cfg.path()),
        other => panic!("expected Exists, got {other:?}"),
    }
    // The failed attempt must not have removed the first arena's file.
    assert!(a.path().exists());
}

#[test]
fn bad_job_id_is_rejected() {
    let mut cfg = unique_cfg("bad", MIB);
    cfg.job_id = "../escape".into();
    assert!(matches!(Arena::create(&cfg), Err(StoreError::Io { .. })));
}

#[test]
fn shm_too_small() {
    let cfg = unique_cfg("huge", 1 << 50);
    match Arena::create(&cfg) {
        Err(StoreError::ShmTooSmall {
            requested,
            available,
            path,
        }) => {
            assert_eq!(requested, 1 << 50);
            assert!(available < requested);
            assert_eq!(path, cfg.dir);
        }
        other => panic!("expected ShmTooSmall, got {other:?}"),
    }
    assert!(!cfg.path().exists());
}

#[test]
fn pages_are_reserved_before_anything_is_handed_out() {
    use std::os::unix::fs::MetadataExt;

    let cfg = unique_cfg("reserve", 4 * MIB);
    let a = Arena::create_unreserved(&cfg).unwrap();
    let blocks = || std::fs::metadata(a.path()).unwrap().blocks() as usize * 512;
    assert_eq!(blocks(), 0, "sparse until reserved");
    // The first allocation reserves its step (here the whole segment).
    let b = a.alloc(16).unwrap();
    assert!(blocks() >= a.capacity(), "{} < {}", blocks(), a.capacity());
    drop(b);
    a.reserve().unwrap(); // idempotent
    // A created arena is reserved from the start.
    let c = arena("reserved", 2 * MIB);
    let meta = std::fs::metadata(c.path()).unwrap();
    assert!(meta.blocks() as usize * 512 >= 2 * MIB);
}

#[test]
fn a_large_store_reserves_its_pages_as_it_grows() {
    use std::os::unix::fs::MetadataExt;

    let step = ferry_store::RESERVE_STEP;
    let cfg = unique_cfg("grow", 4 * step);
    let a = Arena::create_unreserved(&cfg).unwrap();
    let blocks = || std::fs::metadata(a.path()).unwrap().blocks() as usize * 512;
    let small = a.alloc(16).unwrap();
    assert!(
        (step..2 * step).contains(&blocks()),
        "one step for a small object: {}",
        blocks()
    );
    let big = a.alloc(2 * step).unwrap();
    assert!(blocks() >= big.offset() + 2 * step, "{}", blocks());
    assert!(blocks() < a.capacity(), "not all of it yet: {}", blocks());
    drop((small, big));
}

#[test]
fn the_stores_of_a_node_must_fit_together() {
    let free = ferry_store::free_space(std::path::Path::new("/dev/shm")).unwrap();
    let mut cfg = unique_cfg("node", 64 * MIB);
    // Twice what is free, so that others' use of /dev/shm meanwhile does
    // not matter.
    cfg.node_ranks = u32::try_from(2 * (free / (64 * MIB)) + 2).unwrap_or(u32::MAX);
    let e = Arena::create(&cfg).unwrap_err();
    let msg = e.to_string();
    match e {
        StoreError::NodeShmTooSmall {
            ranks,
            each,
            available,
            ..
        } => {
            assert_eq!((ranks, each), (cfg.node_ranks, 64 * MIB));
            assert!(available < ranks as usize * each);
            assert!(msg.contains(&format!("this node's {ranks} ranks")), "{msg}");
        }
        other => panic!("expected NodeShmTooSmall, got {other:?}"),
    }
    assert!(!cfg.path().exists());
}

#[test]
fn full_error_and_message() {
    let a = arena("full", MIB);
    let _held = a.alloc(MIB / 2).unwrap();
    let e = a.alloc(MIB).unwrap_err();
    match e {
        StoreError::Full {
            requested,
            used,
            capacity,
        } => {
            assert_eq!((requested, used, capacity), (MIB, MIB / 2, MIB));
        }
        ref other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "object store full: asked for 1.0 MiB, 512.0 KiB of 1.0 MiB in use"
    );
}

#[test]
fn alloc_free_reuses_offsets_and_accounts_exactly() {
    let a = arena("reuse", 16 * MIB);
    let first = a.alloc(100).unwrap();
    let off = first.offset();
    assert_eq!(off % 16, 0);
    assert_eq!(a.used(), 112);
    drop(first);
    assert_eq!(a.used(), 0);
    for _ in 0..10 {
        let b = a.alloc(100).unwrap();
        assert_eq!(b.offset(), off);
    }
    let big = a.alloc(MIB + 1).unwrap();
    assert_eq!(big.offset() % 4096, 0);
    assert_eq!(a.used(), MIB + 4096);
    let big_off = big.offset();
    drop(big);
    assert_eq!(a.alloc(MIB + 1).unwrap().offset(), big_off);
}

#[test]
fn zero_length_and_truncate() {
    let a = arena("zero", MIB);
    let z = a.alloc(0).unwrap();
    assert!(z.is_empty());
    assert_eq!(z.as_slice().as_ptr() as usize % 16, 0);
    assert_eq!(a.used(), 0);
    let z = z.freeze();
    assert_eq!(z.as_slice(), &[] as &[u8]);

    let mut b = a.alloc(100).unwrap();
    b.as_mut_slice().fill(7);
    b.truncate(10);
    assert_eq!(b.len(), 10);
    b.truncate(50); // no growth
    assert_eq!(b.len(), 10);
    assert_eq!(a.used(), 112, "truncate keeps the allocation");
    let b = b.freeze();
    assert_eq!(b.as_slice(), &[7; 10]);
    drop(b);
    assert_eq!(a.used(), 0);
}

#[test]
fn gib_allocation_reuses_same_pages() {
    let a = arena("gib", 2 * GIB);
    let small = a.alloc(64).unwrap(); // make offsets non-trivial
    let mut big = a.alloc(GIB).unwrap();
    let off = big.offset();
    assert_eq!(off % 4096, 0);
    // Touch a few pages.
    let s = big.as_mut_slice();
    s[0] = 1;
    s[GIB / 2] = 2;
    s[GIB - 1] = 3;
    drop(big);
    let big = a.alloc(GIB).unwrap();
    assert_eq!(big.offset(), off, "same hot pages come back");
    assert_eq!(big.as_slice()[GIB - 1], 3);
    assert!(
        a.alloc(GIB).is_err(),
        "two GiB blocks plus a small one do not fit"
    );
    drop(small);
}

#[test]
fn neighbour_reads_through_readonly_mapping() {
    let a = arena("ro", MIB);
    let mut b = a.alloc(5).unwrap();
    b.as_mut_slice().copy_from_slice(b"ferry");
    let b = b.freeze();
    let ro = open_readonly(a.path()).unwrap();
    assert_eq!(ro.len(), a.capacity());
    assert_eq!(&ro.as_slice()[b.offset()..b.offset() + b.len()], b"ferry");
    a.unlink().unwrap();
    assert!(matches!(
        open_readonly(a.path()),
        Err(StoreError::Io { .. })
    ));
    // Through the open file, the name is not needed.
    let again = a.map_readonly().unwrap();
    assert_eq!(
        &again.as_slice()[b.offset()..b.offset() + b.len()],
        b"ferry"
    );
    assert_eq!(again.len(), a.capacity());
}

#[test]
fn blocks_move_across_threads() {
    let a = arena("threads", 16 * MIB);
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            let a = a.clone();
            std::thread::spawn(move || {
                let mut blocks = Vec::new();
                for i in 0..200usize {
                    let mut b = a.alloc(1 + i % 300).unwrap();
                    b.as_mut_slice().fill(t);
                    blocks.push(b.freeze());
                    if i % 3 == 0 {
                        blocks.swap_remove(i % blocks.len());
                    }
                }
                blocks
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        for b in h.join().unwrap() {
            assert!(b.as_slice().iter().all(|&x| x == t as u8));
        }
    }
    assert_eq!(a.used(), 0);
}

#[test]
fn segment_path_convention() {
    let cfg = unique_cfg("path", MIB);
    assert_eq!(
        cfg.path(),
        Segment::path_for(&cfg.dir, &cfg.job_id, cfg.rank)
    );
    assert!(
        cfg.path()
            .to_str()
            .unwrap()
            .starts_with("/dev/shm/ferry-test-path-")
    );
}
