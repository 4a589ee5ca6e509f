//! A finished task's result that arrives while its owner's store is full
//! waits for room (or spills) instead of being dropped, and the executor
//! keeps its copy until the owner holds it.

use std::time::{Duration, Instant};

use ferry::Config;

const MIB: usize = 1 << 20;

#[ferry::remote]
fn make(len: u64, fill: u8) -> Vec<u8> {
    vec![fill; len as usize]
}

#[test]
fn a_result_arriving_at_a_full_store_waits_for_room() -> ferry::Result<()> {
    let cfg = Config::default()
        .num_cpus(1.0)
        .object_store_memory(16 * MIB)
        .spill(false)
        .put_timeout(Duration::from_secs(120));
    ferry::loopback::run(2, cfg, |rt, _world| -> ferry::Result<()> {
        // Rank 0's store mostly held (no spilling here).
        let big = rt.put_vec_with::<u8>(10 * MIB, |d| d.fill(1))?;
        let r = make::options().on_rank(1).remote(&rt, 8 * MIB as u64, 7)?;
        // The result has arrived and waits for room.
        let deadline = Instant::now() + Duration::from_secs(60);
        while rt.spill_stats().waiting_puts == 0 {
            assert!(
                Instant::now() < deadline,
                "the result never waited for room (dropped or failed at once?)"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(big);
        let v = rt.get(&r)?;
        assert_eq!(v.len(), 8 * MIB);
        assert!(v.as_slice().iter().all(|&b| b == 7));
        Ok(())
    })?
}
