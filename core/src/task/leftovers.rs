//! What finished tasks leave behind, dropped by a thread that submits tasks.
//!
//! A task's body and the refs to its inputs were allocated by the thread
//! that submitted it. Dropped by the worker that ran it, each block went
//! back to the submitter's allocator from another thread: under glibc that
//! takes the submitter's arena lock once per block, against the submitter
//! taking the same lock for its next task, and a contended glibc lock puts
//! the thread to sleep at once (a futex wait and wake: microseconds on a
//! VM). In a chain of small tasks on one rank that was more than half of a
//! task's cost, and about 40,000 futex calls per 100,000 tasks.
//!
//! So a worker hands a finished task's light remains to a short queue, and
//! they are dropped by the next thread that submits a task (two per
//! submission), by a thread about to block in `get`/`wait` or woken from
//! it, or by a worker before it parks. The memory goes back to the thread
//! that allocated it, which reuses it for its next task from its own cache.
//! What is held back is bounded: at most [`KEPT`] tasks' remains (a worker
//! that finds the queue full drops the oldest itself), each holding at most
//! [`LIGHT`] bytes of stored inputs (heavier remains are dropped at once);
//! and nothing is held while the rank is idle.

use crossbeam_queue::ArrayQueue;

/// The most remains waiting to be dropped.
pub(crate) const KEPT: usize = 32;

/// The most bytes of stored objects one task's remains may hold back.
pub(crate) const LIGHT: usize = 64 << 10;

thread_local! {
    static TOKEN: u8 = const { 0 };
}

/// A number that names the calling thread while it lives (the address of
/// a thread-local), to tell whether a value was made on this thread.
pub(crate) fn thread_token() -> usize {
    TOKEN.with(|t| t as *const u8 as usize)
}

/// A queue of values to be dropped by another thread later.
pub(crate) struct Leftovers<T> {
    queue: ArrayQueue<T>,
}

impl<T> Default for Leftovers<T> {
    fn default() -> Self {
        Leftovers {
            queue: ArrayQueue::new(KEPT),
        }
    }
}

impl<T> Leftovers<T> {
    /// Hands `value` to be dropped later; when the queue is full the oldest
    /// waiting value is dropped here.
    pub(crate) fn defer(&self, value: T) {
        if let Some(oldest) = self.queue.force_push(value) {
            drop_quietly(oldest);
        }
    }

    /// Drops up to `max` waiting values on this thread.
    pub(crate) fn drain(&self, max: usize) {
        for _ in 0..max {
            match self.queue.pop() {
                Some(v) => drop_quietly(v),
                None => return,
            }
        }
    }

    /// Drops every waiting value on this thread (a load when none waits).
    pub(crate) fn drain_all(&self) {
        while let Some(v) = self.queue.pop() {
            drop_quietly(v);
        }
    }

    /// How many values wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

/// Drops `value`; a panic in a captured value's `Drop` is logged, not
/// passed on to the thread that happens to drop it.
fn drop_quietly<T>(value: T) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value))).is_err() {
        tracing::warn!("dropping a finished task's captured values panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn values_wait_until_drained_and_a_full_queue_drops_its_oldest() {
        let q = Leftovers::default();
        let items: Vec<Arc<usize>> = (0..KEPT + 2).map(Arc::new).collect();
        for it in &items {
            q.defer(it.clone());
        }
        assert_eq!(q.len(), KEPT);
        // The two oldest were dropped by the deferring thread, the rest wait.
        assert_eq!(Arc::strong_count(&items[0]), 1);
        assert_eq!(Arc::strong_count(&items[1]), 1);
        assert!(items[2..].iter().all(|it| Arc::strong_count(it) == 2));
        q.drain(2);
        assert_eq!(q.len(), KEPT - 2);
        assert_eq!(Arc::strong_count(&items[3]), 1, "oldest first");
        assert_eq!(Arc::strong_count(&items[4]), 2);
        q.drain_all();
        assert_eq!(q.len(), 0);
        assert!(items.iter().all(|it| Arc::strong_count(it) == 1));
    }

    #[test]
    fn each_thread_has_its_own_token() {
        let mine = thread_token();
        assert_eq!(mine, thread_token());
        let other = std::thread::spawn(thread_token).join().unwrap();
        assert_ne!(mine, other);
    }

    #[test]
    fn a_panicking_drop_is_contained() {
        struct Boom;
        impl Drop for Boom {
            fn drop(&mut self) {
                panic!("boom");
            }
        }
        let q = Leftovers::default();
        q.defer(Boom);
        q.drain_all();
        assert_eq!(q.len(), 0);
    }
}
