//! Locks that outlive a panic: a panic in user code run under a lock (a
//! task body, an actor method) must not make every later user of the lock
//! panic too, so a poisoned lock is taken as it is.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning (the data under Ferry's locks stays
/// consistent across a panic: each critical section is a few plain writes).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
