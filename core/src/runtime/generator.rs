//! [`ObjectRefGenerator`]: the caller's side of a streaming task (Ray's
//! `num_returns="streaming"`), one ref per item as the task produces it.
//! The stream itself is `object::stream`; across ranks, `cluster::streams`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, FailureKind, Result, TaskError};
use crate::object::cell::{Stored, Waiter};
use crate::object::object_ref::ObjectRef;
use crate::object::stream::{EndWaker, StreamState, Taken};
use crate::runtime::Runtime;
use crate::sync::lock;

/// How often a caller waiting for items the task reported but that have
/// not arrived checks that their rank lives.
const TICK: Duration = Duration::from_millis(50);

/// What [`ObjectRefGenerator::try_next`] and
/// [`next_timeout`](ObjectRefGenerator::next_timeout) found.
#[derive(Debug)]
pub enum GeneratorNext<T> {
    /// The next item's ref.
    Item(ObjectRef<T>),
    /// The task failed after the items before (its error, once).
    Failed(Error),
    /// No item yet: the task is still producing.
    Pending,
    /// The stream has ended: every item was taken.
    Finished,
}

/// The refs a streaming task (`#[ferry::remote(num_returns = "streaming")]`)
/// produces, one per item, in order, each as soon as the item exists (Ray's
/// `ObjectRefGenerator`). As an [`Iterator`] it blocks for the next item;
/// it yields the task's error (a [`TaskError`], as `get` gives it) after
/// the items before it, then ends. Dropping it stops the task at its next
/// item and frees the items not taken.
///
/// (`examples/streaming_returns.rs` runs this.)
///
/// ```text
/// #[ferry::remote(num_returns = "streaming")]
/// fn count(n: u64) -> impl Iterator<Item = u64> {
///     0..n
/// }
///
/// let mut gen = count::remote(&rt, 3)?; // ObjectRefGenerator<u64>
/// let first = gen.next().unwrap()?;    // while 1 and 2 are being made
/// assert_eq!(*rt.get(&first)?, 0);
/// ```
pub struct ObjectRefGenerator<T> {
    rt: Runtime,
    state: Arc<StreamState>,
    done: ObjectRef<u64>,
    /// The task's error was handed out, or the end seen.
    over: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ObjectRefGenerator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRefGenerator")
            .field("stream", &self.state.id)
            .field("task", &self.done.id())
            .finish()
    }
}

impl<T> ObjectRefGenerator<T> {
    /// The caller's side of stream `state`, made by the task whose output
    /// is `done` (its number of items).
    pub(crate) fn new(rt: &Runtime, state: Arc<StreamState>, done: ObjectRef<u64>) -> Self {
        let waker = Arc::new(EndWaker(Arc::downgrade(&state)));
        if !done.slot.add_waiter(Waiter::Task(waker)) {
            state.wake();
        }
        ObjectRefGenerator {
            rt: rt.clone(),
            state,
            done,
            over: false,
            _t: PhantomData,
        }
    }

    /// The next item without waiting.
    pub fn try_next(&mut self) -> GeneratorNext<T> {
        self.next_until(Some(Instant::now()))
    }

    /// The next item, waiting at most `timeout` for it.
    pub fn next_timeout(&mut self, timeout: Duration) -> GeneratorNext<T> {
        self.next_until(Instant::now().checked_add(timeout))
    }

    /// Whether the stream has ended: the task is done and every item (and
    /// its error, if it failed) was taken.
    pub fn is_finished(&self) -> bool {
        self.over
            || (self.state.waiting() == 0
                && matches!(self.done.slot.get(), Some(Stored::Value(_)))
                && self
                    .rt
                    .get_value(&self.done)
                    .is_ok_and(|n| self.state.received() >= n))
    }

    /// Items produced and not taken yet (what backpressure counts, for a
    /// producer on this rank; one on another rank may have more on the way).
    pub fn num_ready(&self) -> usize {
        self.state.waiting()
    }

    /// The ref of the whole task: its number of items when it succeeds,
    /// its error when it fails (Ray's `ObjectRefGenerator.completed()`).
    pub fn completed(&self) -> &ObjectRef<u64> {
        &self.done
    }

    /// Items the task reported again while retried, and dropped (each item
    /// is handed out once).
    pub fn repeats_dropped(&self) -> u64 {
        self.state
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next item, waiting until `deadline` (`None`: no limit).
    fn next_until(&mut self, deadline: Option<Instant>) -> GeneratorNext<T> {
        if self.over {
            return GeneratorNext::Finished;
        }
        let mut expect = None;
        loop {
            // Without a deadline, wait in ticks to check liveness below.
            let until = deadline.or_else(|| Instant::now().checked_add(TICK));
            // Inside a task, a wait gives the task's CPUs back meanwhile
            // (so the producer can run, even with one CPU).
            let taken = match deadline {
                Some(d) if d <= Instant::now() => self.state.take(None, expect),
                _ => self.rt.blocking(|| self.state.take(until, expect)),
            };
            let (received, woken) = match taken {
                Taken::Item(slot) => return GeneratorNext::Item(ObjectRef::from_slot(slot)),
                Taken::Empty { received, woken } => (received, woken),
            };
            if woken && expect.is_none() {
                match self.rt.get_value(&self.done) {
                    Ok(n) => expect = Some(n),
                    Err(e) => {
                        self.over = true;
                        return GeneratorNext::Failed(e);
                    }
                }
            }
            if let Some(n) = expect {
                if received >= n {
                    self.over = true;
                    return GeneratorNext::Finished;
                }
                // Reported, not here yet: in flight from another rank.
                if let Some(e) = self.producer_lost() {
                    self.over = true;
                    return GeneratorNext::Failed(e);
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return GeneratorNext::Pending;
            }
        }
    }

    /// The rank producing items from afar, if it was lost.
    fn producer_lost(&self) -> Option<Error> {
        let rank = self.state.peer_rank()?;
        let c = self.rt.inner.cluster()?;
        lock(&c.lost).contains(&rank).then(|| {
            Error::Task(Box::new(TaskError {
                task: format!("stream {:016x}", self.state.id),
                rank,
                kind: FailureKind::System,
                message: format!("rank {rank} was lost before the stream's last items arrived"),
                attempts: 1,
            }))
        })
    }
}

impl<T> Iterator for ObjectRefGenerator<T> {
    type Item = Result<ObjectRef<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_until(None) {
            GeneratorNext::Item(r) => Some(Ok(r)),
            GeneratorNext::Failed(e) => Some(Err(e)),
            GeneratorNext::Pending | GeneratorNext::Finished => None,
        }
    }
}

impl<T> Drop for ObjectRefGenerator<T> {
    fn drop(&mut self) {
        // A stream read to its end has nothing to cancel.
        if !self.over {
            self.state.cancel();
        }
        self.rt.inner.streams.close(self.state.id);
    }
}
