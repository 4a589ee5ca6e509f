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
//! So a worker hands a finished task's light remains, [`BATCH`] at a time,
//! to a short queue, and they are dropped by the next thread that submits
//! a task (one task's remains per submission, see [`Leftovers::drop_one`]),
//! by a thread about to block in `get`/`wait` (a worker blocked inside a
//! task hands over its own batch first), or by a worker that found no work
//! for a short while (which first hands over the batch it was collecting:
//! see `task::pool::Hold`). The memory goes back to
//! the thread that allocated it, which reuses it for its next task from its
//! own cache. What is held back is bounded: at most [`KEPT`] tasks' remains
//! in the queue (a worker that finds it full drops the oldest batch
//! itself), [`HELD`] more where the rank's threads run on several CPUs
//! (below), and a batch on each worker, each holding at most [`LIGHT`]
//! bytes of stored inputs (heavier remains are dropped at once); and an
//! idle rank holds nothing for long: its workers drop what they hold after
//! `HOLD` without work, and what reaches the queue while they nap waits at
//! most their nap (`signal::NAP`) and that again.
//!
//! Where the rank's threads run on several CPUs, a submitter leaves the
//! latest `HELD / BATCH` batches of remains undropped ([`HELD`] tasks'
//! when the batches are full; in `drop_one`, and before it blocks outside
//! any task): the memory it takes for its next tasks is then memory the
//! worker wrote hundreds of tasks ago, which that worker's core has let go
//! of since, not memory still in its caches, whose every line the
//! submitter's core would have to fetch from the other core's before
//! writing it. See [`HELD`].

use std::sync::Mutex;

use crossbeam_queue::ArrayQueue;

use crate::sync::lock;

/// The most remains waiting to be dropped (besides a batch being collected
/// on each worker): enough for the tasks a worker runs while its submitter
/// waits (a driver pacing its submissions with `wait`: Task Bench's
/// stencil on Ferry waits for 192 steps at a time, up to 384 tasks on one
/// rank; a worker that finds the queue full drops the oldest batch itself,
/// under the submitter's allocator lock). The queue holds `KEPT / BATCH`
/// batches (and [`HELD`]` / BATCH` more where its submitters hold some):
/// full ones, but for the one a worker hands over when it finds no work,
/// blocks or stops, and those of threads that are not workers (one task's
/// remains each).
pub(crate) const KEPT: usize = 512;

/// How many of the latest finished tasks' remains a submitting thread
/// leaves undropped where its rank's threads run on several CPUs, counted
/// in batches of [`BATCH`] (`HELD / BATCH` batches: this many remains when
/// they are full, as a busy worker hands them over; fewer when some are
/// not). The queue holds them besides [`KEPT`]. The blocks the submitter
/// reuses for its next tasks were then last written that many tasks ago,
/// by a worker that has touched much else since, and are mostly out of
/// its core's caches. Held back 512 to 7,200 tasks (trial builds), the
/// stencil below ran alike; 512 is the least tried.
///
/// Task Bench's 1-rank stencil (a chain, `-iter 0`, on the 2-core VM, runs
/// taking turns with the build before): 0.88–0.93 of the time a task took
/// while the two vCPUs' cache-line round trip was slow (~400 ns), 0.99–1.00
/// while it was fast (~100 ns); see the performance log.
pub(crate) const HELD: usize = 512;

/// How many remains a worker collects before it hands them over.
pub(crate) const BATCH: usize = 8;

/// The most bytes of stored objects one task's remains may hold back; with
/// [`KEPT`], at most 4 MiB of objects wait for a submitter at once (8 MiB
/// with [`HELD`]), and 64 KiB more in each worker's batch.
pub(crate) const LIGHT: usize = 8 << 10;

thread_local! {
    static TOKEN: u8 = const { 0 };
}

/// A number that names the calling thread while it lives (the address of
/// a thread-local), to tell whether a value was made on this thread.
pub(crate) fn thread_token() -> usize {
    TOKEN.with(|t| t as *const u8 as usize)
}

/// A queue of values to be dropped by another thread later, in batches:
/// a worker collects up to [`BATCH`] remains before it hands them over
/// (see `task::cell`'s staging), so the queue's shared cache lines move
/// between the two threads once a batch, not once a task (each push and
/// pop of a shared queue costs the other thread's core a miss or two: on
/// the 2-core VM ~70 ns of a task's ~550 ns of overhead in a chain).
/// The emptied lists go back to the workers through `spares`, so that
/// their memory too is freed by the thread that allocated it.
pub(crate) struct Leftovers<T> {
    queue: ArrayQueue<Vec<T>>,
    spares: ArrayQueue<Vec<T>>,
    /// The batch [`drop_one`](Self::drop_one) takes its values from.
    dropping: Mutex<Vec<T>>,
    /// How many of the latest batches a submitter leaves waiting (see
    /// [`HELD`]).
    held: usize,
}

impl<T> Default for Leftovers<T> {
    fn default() -> Self {
        Leftovers::holding(0)
    }
}

impl<T> Leftovers<T> {
    /// A queue whose submitters leave the latest `tasks` values undropped
    /// (in batches of [`BATCH`]; see [`HELD`]).
    pub(crate) fn holding(tasks: usize) -> Self {
        let held = tasks.div_ceil(BATCH);
        Leftovers {
            queue: ArrayQueue::new(KEPT / BATCH + held),
            spares: ArrayQueue::new(KEPT / BATCH + held),
            dropping: Mutex::new(Vec::new()),
            held,
        }
    }

    /// Hands `value` to be dropped later, alone (a thread that does not
    /// collect batches); see [`defer_batch`](Self::defer_batch).
    pub(crate) fn defer(&self, value: T) {
        let mut one = self.spare();
        one.push(value);
        self.defer_batch(one);
    }

    /// Hands `batch` to be dropped later; when the queue is full the
    /// oldest waiting batch is dropped here.
    pub(crate) fn defer_batch(&self, batch: Vec<T>) {
        if batch.is_empty() {
            self.give_back(batch);
        } else if let Some(oldest) = self.queue.force_push(batch) {
            drop_all(oldest);
        }
    }

    /// An empty list to collect a batch in: one a dropping thread gave
    /// back, or a new one.
    pub(crate) fn spare(&self) -> Vec<T> {
        self.spares
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH))
    }

    fn give_back(&self, list: Vec<T>) {
        // A full spare queue: this list is freed here.
        let _ = self.spares.push(list);
    }

    /// Drops the values of up to `max` waiting batches on this thread.
    pub(crate) fn drain(&self, max: usize) {
        for _ in 0..max {
            if !self.drop_oldest_batch() {
                return;
            }
        }
    }

    /// Drops the oldest waiting batch's values on this thread; false when
    /// none waits.
    fn drop_oldest_batch(&self) -> bool {
        let Some(mut batch) = self.queue.pop() else {
            return false;
        };
        drop_all_in(&mut batch);
        self.give_back(batch);
        true
    }

    /// Drops the rest of the batch [`drop_one`](Self::drop_one) was
    /// dropping (the oldest values: it came out of the queue first).
    fn drop_current(&self) {
        let mut current = std::mem::take(&mut *lock(&self.dropping));
        if current.capacity() > 0 {
            drop_all_in(&mut current);
            self.give_back(current);
        }
    }

    /// Drops one waiting value on this thread (the next batch's first,
    /// when the one being dropped is used up), and a whole batch more when
    /// it takes a batch while more than half the queue waits.
    ///
    /// For a thread that submits tasks: a task's remains hold blocks of
    /// the sizes a submission allocates (its cell, its closure, its lists,
    /// and often its inputs' slots), so one task's remains dropped before
    /// each submission free blocks into this thread's malloc cache before
    /// the submission takes its own from it. A whole batch dropped at a time overflowed
    /// that cache (glibc's keeps 7 blocks of a size), and the submissions
    /// after it found it empty: on the 2-core VM, ~90% of the stencil's
    /// cells and slots came from malloc's slow path.
    pub(crate) fn drop_one(&self) {
        let mut took_batch = false;
        let value = {
            let mut current = lock(&self.dropping);
            if current.is_empty() {
                // The latest batches wait (see `HELD`); the queue's length
                // reads the line a worker writes once a batch.
                if self.held > 0 && self.queue.len() <= self.held {
                    return;
                }
                let Some(batch) = self.queue.pop() else {
                    return;
                };
                took_batch = true;
                let used = std::mem::replace(&mut *current, batch);
                if used.capacity() > 0 {
                    self.give_back(used);
                }
            }
            current.pop()
        };
        if let Some(value) = value {
            drop_quietly(value);
        }
        // Looked at with each new batch only: the queue's length reads the
        // line the worker writes as it hands batches over.
        if took_batch && self.queue.len() > (self.held + self.queue.capacity()) / 2 {
            self.drain(1);
        }
    }

    /// Drops every waiting value but those of the latest batches a
    /// submitter leaves waiting ([`HELD`]; all of them where none are
    /// held), for a submitting thread about to block: the memory of the
    /// values it drops comes back to its malloc cache for its next
    /// submissions, and that of the held ones later, once the worker's
    /// core has let it go.
    pub(crate) fn drain_unheld(&self) {
        self.drop_current();
        while self.queue.len() > self.held {
            if !self.drop_oldest_batch() {
                return;
            }
        }
    }

    /// Drops every waiting value on this thread, the batch
    /// [`drop_one`](Self::drop_one) was dropping included (a lock and a
    /// load when none waits).
    pub(crate) fn drain_all(&self) {
        self.drop_current();
        while self.drop_oldest_batch() {}
    }

    /// How many batches a submitter leaves waiting (see [`HELD`]).
    #[cfg(test)]
    pub(crate) fn held_batches(&self) -> usize {
        self.held
    }

    /// Whether any value waits (a batch queued or one being dropped).
    pub(crate) fn waiting(&self) -> bool {
        !self.queue.is_empty() || !lock(&self.dropping).is_empty()
    }

    /// How many values wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let batches: Vec<Vec<T>> = std::iter::from_fn(|| self.queue.pop()).collect();
        let n = batches.iter().map(Vec::len).sum::<usize>() + lock(&self.dropping).len();
        for b in batches {
            let _ = self.queue.push(b);
        }
        n
    }
}

/// Drops every value of `batch`, keeping its room.
fn drop_all_in<T>(batch: &mut Vec<T>) {
    for v in batch.drain(..) {
        drop_quietly(v);
    }
}

fn drop_all<T>(mut batch: Vec<T>) {
    drop_all_in(&mut batch);
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

    /// Hands `items` over as a worker does, [`BATCH`] at a time.
    fn defer_in_batches(q: &Leftovers<Arc<usize>>, items: &[Arc<usize>]) {
        for batch in items.chunks(BATCH) {
            let mut b = q.spare();
            b.extend(batch.iter().cloned());
            q.defer_batch(b);
        }
    }

    /// How many of `items` the queue has let go of.
    fn dropped(items: &[Arc<usize>]) -> usize {
        items.iter().filter(|i| Arc::strong_count(i) == 1).count()
    }

    #[test]
    fn batches_wait_until_drained_and_a_full_queue_drops_its_oldest() {
        let q = Leftovers::default();
        let items: Vec<Arc<usize>> = (0..KEPT + BATCH).map(Arc::new).collect();
        defer_in_batches(&q, &items);
        assert_eq!(q.len(), KEPT);
        // The oldest batch was dropped by the deferring thread, the rest wait.
        assert!(items[..BATCH].iter().all(|it| Arc::strong_count(it) == 1));
        assert!(items[BATCH..].iter().all(|it| Arc::strong_count(it) == 2));
        q.drain(1);
        assert_eq!(q.len(), KEPT - BATCH);
        assert!(
            items[BATCH..2 * BATCH]
                .iter()
                .all(|it| Arc::strong_count(it) == 1),
            "oldest first"
        );
        assert_eq!(Arc::strong_count(&items[2 * BATCH]), 2);
        // The drained batch's list comes back for the next batch.
        let spare = q.spare();
        assert!(spare.is_empty() && spare.capacity() >= BATCH);
        q.defer(Arc::new(0));
        q.drain_all();
        assert_eq!(q.len(), 0);
        assert!(items.iter().all(|it| Arc::strong_count(it) == 1));
    }

    #[test]
    fn a_submitter_drops_one_value_at_a_time_and_a_whole_batch_when_many_wait() {
        let q = Leftovers::default();
        let items: Vec<Arc<usize>> = (0..2 * BATCH).map(Arc::new).collect();
        defer_in_batches(&q, &items);
        q.drop_one();
        assert_eq!(dropped(&items), 1, "one value, from the oldest batch");
        assert_eq!(dropped(&items[..BATCH]), 1);
        for _ in 1..BATCH {
            q.drop_one();
        }
        assert_eq!(dropped(&items[..BATCH]), BATCH);
        assert_eq!(q.len(), BATCH, "the next batch still waits whole");
        q.drop_one();
        assert_eq!(dropped(&items), BATCH + 1);
        // The rest, the one being dropped included, go with `drain_all`.
        q.drain_all();
        assert_eq!(q.len(), 0);
        assert_eq!(dropped(&items), 2 * BATCH);
        q.drop_one(); // nothing waits: nothing happens

        // More than half the queue waiting: a whole batch more goes too.
        let many: Vec<Arc<usize>> = (0..KEPT).map(Arc::new).collect();
        defer_in_batches(&q, &many);
        q.drop_one();
        assert_eq!(dropped(&many), 1 + BATCH);
        q.drain_all();
    }

    #[test]
    fn a_holding_queue_leaves_its_latest_batches_to_drop_later() {
        let q = Leftovers::holding(2 * BATCH);
        let items: Vec<Arc<usize>> = (0..4 * BATCH).map(Arc::new).collect();
        defer_in_batches(&q, &items);
        // A submitter drops the oldest values one at a time, down to the
        // latest two batches, which wait however many submissions come.
        for _ in 0..4 * BATCH {
            q.drop_one();
        }
        assert_eq!(
            dropped(&items[..2 * BATCH]),
            2 * BATCH,
            "the oldest two batches"
        );
        assert_eq!(dropped(&items[2 * BATCH..]), 0, "the latest two wait");
        assert_eq!(q.len(), 2 * BATCH);
        // One more batch: the oldest waiting one goes, one value at a time.
        let more: Vec<Arc<usize>> = (0..BATCH).map(Arc::new).collect();
        defer_in_batches(&q, &more);
        q.drop_one();
        assert_eq!(dropped(&items[2 * BATCH..3 * BATCH]), 1);
        // A thread about to block drops all but the latest two batches.
        q.drain_unheld();
        assert_eq!(dropped(&items), 3 * BATCH);
        assert_eq!(dropped(&more), 0);
        assert_eq!(q.len(), 2 * BATCH);
        // Idle: everything goes.
        q.drain_all();
        assert_eq!(dropped(&items) + dropped(&more), 5 * BATCH);

        // A whole batch more goes only when more batches wait than half
        // way from the held ones to the queue's capacity: (2 + 66) / 2 =
        // 34 here, and 34 are left after the one taken.
        let capacity = KEPT / BATCH + 2;
        let many: Vec<Arc<usize>> = (0..((2 + capacity) / 2 + 1) * BATCH)
            .map(Arc::new)
            .collect();
        defer_in_batches(&q, &many);
        q.drop_one();
        assert_eq!(dropped(&many), 1, "one value, and no batch more");
        q.drain_all();

        // Where none are held, a thread about to block drops everything.
        let q = Leftovers::default();
        assert_eq!(q.held_batches(), 0);
        let one = Arc::new(0);
        q.defer(one.clone());
        q.drain_unheld();
        assert_eq!(Arc::strong_count(&one), 1);
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
