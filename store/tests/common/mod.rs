//! Shared test helpers.

use std::sync::atomic::{AtomicU32, Ordering};

use ferry_store::{Arena, StoreConfig};

/// A config with a job id unique to this process and call.
pub(crate) fn unique_cfg(tag: &str, capacity: usize) -> StoreConfig {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    StoreConfig::new(
        format!("test-{tag}-{}-{n}", std::process::id()),
        n,
        capacity,
    )
}

/// An arena in /dev/shm with a unique name.
#[allow(dead_code)]
pub(crate) fn arena(tag: &str, capacity: usize) -> Arena {
    Arena::create(&unique_cfg(tag, capacity)).expect("create arena")
}
