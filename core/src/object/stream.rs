//! A stream of objects on the rank that owns it (Ray's streaming
//! generator, `num_returns="streaming"`): the items a task has produced and
//! the caller has not taken yet, and how far the caller has read.
//!
//! # Protocol
//!
//! 1. The caller opens a [`StreamState`] and lists it in its rank's
//!    [`StreamBook`] under a fresh id; the task is told the id and the
//!    owner's rank.
//! 2. The producer reports item `i` ([`StreamState::push`]); an index
//!    already reported (a retry re-running the task) is dropped, so each
//!    item is seen once.
//! 3. Before producing item `i` the producer waits until
//!    `i < consumed + backpressure`; the caller's [`StreamState::take`]
//!    raises `consumed` and wakes it. A producer on another rank learns
//!    `consumed` through the [`StreamPeer`] the cluster installs.
//! 4. The task's end (its output slot complete) wakes the caller
//!    ([`StreamState::wake`]); the layer above reads the task's result (the
//!    number of items, or its error) and ends the stream once every item
//!    before the end was taken.
//! 5. The caller dropping the stream cancels it: a waiting producer wakes
//!    and stops, unread items are freed, and the id leaves the book.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::object::cell::{DepWaiter, Slot};
use crate::sync::lock;

/// A producer on another rank, told how far the caller has read.
pub(crate) trait StreamPeer: Send + Sync {
    /// The caller has taken `consumed` items of `stream` (or dropped it:
    /// `cancelled`).
    fn consumed(&self, stream: u64, consumed: u64, cancelled: bool);
}

/// What [`StreamState::take`] found.
pub(crate) enum Taken {
    /// The next item.
    Item(Arc<Slot>),
    /// Nothing now; `received` items were reported so far, and `woken`
    /// says whether the task's end was signalled.
    Empty { received: u64, woken: bool },
}

/// Why a producer stopped waiting for room.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Room {
    /// It may produce the next item.
    Free,
    /// The caller dropped the stream.
    Cancelled,
    /// The wait's `alive` check said stop.
    Stopped,
}

struct Queue {
    items: VecDeque<Arc<Slot>>,
    received: u64,
    consumed: u64,
    woken: bool,
    cancelled: bool,
    peer: Option<(u32, Arc<dyn StreamPeer>)>,
}

/// One stream, on its owner.
pub(crate) struct StreamState {
    pub(crate) id: u64,
    pub(crate) backpressure: u64,
    queue: Mutex<Queue>,
    cv: Condvar,
    /// Items reported twice (by a retry) and dropped.
    pub(crate) duplicates: AtomicU64,
}

impl StreamState {
    pub(crate) fn new(id: u64, backpressure: u64) -> Arc<StreamState> {
        Arc::new(StreamState {
            id,
            backpressure: backpressure.max(1),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                received: 0,
                consumed: 0,
                woken: false,
                cancelled: false,
                peer: None,
            }),
            cv: Condvar::new(),
            duplicates: AtomicU64::new(0),
        })
    }

    /// Step 2: item `index` arrived (from `peer`, when it was produced on
    /// another rank). Returns how far the caller has read.
    pub(crate) fn push(
        &self,
        index: u64,
        slot: Arc<Slot>,
        peer: Option<(u32, Arc<dyn StreamPeer>)>,
    ) -> u64 {
        let mut q = lock(&self.queue);
        if let Some(p) = peer {
            q.peer = Some(p);
        }
        if q.cancelled {
            return q.consumed; // nobody will read it: dropped
        }
        if index != q.received {
            // A retry's repeat of an item already reported (an index
            // ahead of `received` cannot happen: items come in order).
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return q.consumed;
        }
        q.received += 1;
        q.items.push_back(slot);
        self.cv.notify_all();
        q.consumed
    }

    /// Items reported so far.
    pub(crate) fn received(&self) -> u64 {
        lock(&self.queue).received
    }

    /// Whether item `index` may be produced now (`None`: not yet).
    pub(crate) fn room_now(&self, index: u64) -> Option<Room> {
        let q = lock(&self.queue);
        if q.cancelled {
            Some(Room::Cancelled)
        } else {
            (index < q.consumed + self.backpressure).then_some(Room::Free)
        }
    }

    /// Step 3, on a producer of this rank: waits until item `index` may be
    /// produced, checking `alive` every `tick` (a bounded wait).
    pub(crate) fn wait_room(&self, index: u64, tick: Duration, alive: impl Fn() -> bool) -> Room {
        let mut q = lock(&self.queue);
        loop {
            if q.cancelled {
                return Room::Cancelled;
            }
            if index < q.consumed + self.backpressure {
                return Room::Free;
            }
            if !alive() {
                return Room::Stopped;
            }
            q = self
                .cv
                .wait_timeout(q, tick)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Items reported and not taken yet.
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.queue).items.len()
    }

    /// Step 3 on the caller: the next item, waiting for one until
    /// `deadline` (`None`: do not wait) unless the end was signalled and
    /// the items it counted (`expect`, when known) are all here.
    pub(crate) fn take(&self, deadline: Option<Instant>, expect: Option<u64>) -> Taken {
        let mut q = lock(&self.queue);
        loop {
            if let Some(slot) = q.items.pop_front() {
                q.consumed += 1;
                let told = q.peer.clone().map(|(_, p)| (p, q.consumed));
                drop(q);
                if let Some((p, consumed)) = told {
                    p.consumed(self.id, consumed, false);
                }
                self.cv.notify_all();
                return Taken::Item(slot);
            }
            let now = Instant::now();
            match deadline {
                Some(d) if (!q.woken || expect.is_some_and(|n| q.received < n)) && d > now => {
                    q = self
                        .cv
                        .wait_timeout(q, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                _ => {
                    return Taken::Empty {
                        received: q.received,
                        woken: q.woken,
                    };
                }
            }
        }
    }

    /// Step 4: the task ended (or a wait should look again).
    pub(crate) fn wake(&self) {
        lock(&self.queue).woken = true;
        self.cv.notify_all();
    }

    /// Step 5: the caller dropped the stream; the unread items go.
    pub(crate) fn cancel(&self) {
        let (items, peer) = {
            let mut q = lock(&self.queue);
            q.cancelled = true;
            (std::mem::take(&mut q.items), q.peer.clone())
        };
        self.cv.notify_all();
        drop(items);
        if let Some((_, p)) = peer {
            p.consumed(self.id, u64::MAX, true);
        }
    }

    /// Whether the caller dropped the stream.
    pub(crate) fn is_cancelled(&self) -> bool {
        lock(&self.queue).cancelled
    }

    /// The rank producing items from another rank, once one arrived.
    pub(crate) fn peer_rank(&self) -> Option<u32> {
        lock(&self.queue).peer.as_ref().map(|(r, _)| *r)
    }
}

/// Step 4's wake-up: waits on the task's output slot.
pub(crate) struct EndWaker(pub(crate) Weak<StreamState>);

impl DepWaiter for EndWaker {
    fn dep_ready(self: Arc<Self>) {
        if let Some(s) = self.0.upgrade() {
            s.wake();
        }
    }
}

/// The streams a rank owns, by id (step 1).
#[derive(Default)]
pub(crate) struct StreamBook {
    streams: Mutex<HashMap<u64, Weak<StreamState>>>,
}

impl StreamBook {
    pub(crate) fn open(&self, s: &Arc<StreamState>) {
        lock(&self.streams).insert(s.id, Arc::downgrade(s));
    }

    /// The stream `id`, while its caller holds it.
    pub(crate) fn find(&self, id: u64) -> Option<Arc<StreamState>> {
        lock(&self.streams).get(&id).and_then(Weak::upgrade)
    }

    pub(crate) fn close(&self, id: u64) {
        lock(&self.streams).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ObjectId;

    fn slot(i: u64) -> Arc<Slot> {
        let sink = Arc::new(crate::object::cell::UnhandledSink::default());
        Slot::pending(ObjectId::from_u64(i), None, sink)
    }

    #[test]
    fn repeats_are_dropped_and_room_follows_the_reader() {
        let s = StreamState::new(1, 2);
        s.push(0, slot(10), None);
        s.push(0, slot(11), None);
        s.push(1, slot(12), None);
        assert_eq!(s.received(), 2);
        assert_eq!(s.duplicates.load(Ordering::Relaxed), 1);
        let tick = Duration::from_millis(1);
        assert_eq!(s.wait_room(2, tick, || false), Room::Stopped);
        assert!(matches!(s.take(None, None), Taken::Item(x) if x.id.as_u64() == 10));
        assert_eq!(s.wait_room(2, tick, || false), Room::Free);
        s.cancel();
        assert_eq!(s.wait_room(3, tick, || true), Room::Cancelled);
        assert!(matches!(
            s.take(None, None),
            Taken::Empty { received: 2, .. }
        ));
    }
}
