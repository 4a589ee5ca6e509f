//! Spilling with io_uring switched off (as where seccomp refuses it): the
//! pread/pwrite path does the same work. A test binary of its own, because
//! the switch is process-wide.

mod common;

use std::time::Duration;

use ferry_store::Arena;

#[test]
fn spill_and_restore_without_io_uring() {
    // SAFETY: set before any other thread of this test binary exists.
    unsafe { std::env::set_var("FERRY_IO_URING", "0") };
    let root = std::env::temp_dir().join(format!("ferry-spillfb-{}", std::process::id()));
    let mut cfg = common::unique_cfg("fallback", 4 << 20);
    cfg.spill_root = Some(root.clone());
    cfg.put_timeout = Duration::from_secs(5);
    let arena = Arena::create(&cfg).unwrap();
    let mut objects = Vec::new();
    for i in 0..12u8 {
        let len = if i % 2 == 0 { 1 << 20 } else { 5000 };
        let mut b = arena.alloc(len).unwrap();
        b.fill(i);
        objects.push(arena.seal(b.freeze()));
    }
    assert!(arena.spill_stats().spilled_objects > 0);
    for (i, obj) in objects.iter().enumerate() {
        let p = obj.pin().unwrap();
        assert!(p.iter().all(|&b| b == i as u8), "object {i}");
    }
    drop(objects);
    drop(arena);
    std::fs::remove_dir_all(&root).unwrap();
}
