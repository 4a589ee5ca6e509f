//! Joining the runtime's threads at shutdown without waiting for ever on
//! user code that does not return.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long shutdown waits for running tasks before leaving them behind.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Joins runtime threads (not the calling one), waking them while they wind
/// down. User code that does not return cannot be stopped from outside a
/// thread: after [`SHUTDOWN_GRACE`] such a thread is left running (its
/// result is dropped) rather than hang the shutdown; it ends with the process.
pub(crate) fn join_with_grace(handles: Vec<JoinHandle<()>>) {
    let me = thread::current().id();
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    for h in handles {
        if h.thread().id() == me {
            continue;
        }
        while !h.is_finished() && Instant::now() < deadline {
            h.thread().unpark();
            thread::sleep(Duration::from_micros(200));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            tracing::warn!(
                "thread {:?} is still in user code {SHUTDOWN_GRACE:?} after shutdown; leaving it",
                h.thread().name()
            );
        }
    }
}
