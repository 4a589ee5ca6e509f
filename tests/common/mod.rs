//! Helpers shared by the integration tests (each test file uses some).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use ferry::{Config, Runtime};

/// A runtime with `cpus` logical CPUs and a small (64 MiB) store.
pub(crate) fn start(cpus: f64) -> ferry::Result<Runtime> {
    ferry::init(
        Config::default()
            .num_cpus(cpus)
            .object_store_memory(64 << 20),
    )
}

/// Polls `cond` every 10 ms for up to `secs` seconds.
pub(crate) fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
