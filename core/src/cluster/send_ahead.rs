//! How far tasks run ahead of their arguments on another rank: the owner
//! sends a task whose arguments are still being made (its `Submit` goes
//! ahead, and the executor waits for the inputs there), but at most
//! [`SEND_AHEAD`] such tasks per rank at once. Later ones wait here, in
//! the order they were submitted, until one of those is done or until their
//! own arguments are ready, whichever comes first: then they go.
//!
//! Why a bound: a driver that submits a long chain of dependent tasks at
//! once would otherwise queue every one of them in the executor's ring
//! ahead of the values the next step needs, and the executor would spend
//! the start of the run taking in work it cannot run yet (on the 2-core VM,
//! 1000 steps of Task Bench's stencil on 2 ranks: ~8 ms before the third
//! step ran). Why the second trigger: a held task is never later than its
//! arguments, as in Ray (whose owners send a task only then), so holding
//! can delay work but never deadlock it.
//!
//! A task with every argument ready, or held by another rank, goes at
//! once and is not counted. This is the owner's record; `remote_task`
//! sends and holds by it.
//!
//! ```text
//!   submit ──args ready──────────────────────────────▶ Submit
//!      │
//!      └──args pending──▶ fewer than SEND_AHEAD out? ─yes─▶ Submit (counted)
//!                                      │ no
//!                                      ▼
//!                             held ──a counted Done, or args ready──▶ Submit
//! ```

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_transport::Rank;

use crate::ids::IdMap;
use crate::sync::lock;

/// Tasks sent ahead of their arguments to one rank and not done yet, at
/// most. Measured on the 2-core VM (Task Bench's stencil, 2 ranks): 8, 32
/// and 128 steps ahead ran alike; 32 Submits of a few hundred bytes fit
/// even the smallest ring between two ranks of a node (64 KiB) with room
/// for the rest.
pub(crate) const SEND_AHEAD: usize = 32;

/// A task waiting here to be sent.
pub(crate) struct Held {
    /// Ranks making its arguments, as known at submission (see `makers`).
    pub(crate) makers: Vec<(u64, u32)>,
    /// Its function's name, for a cancellation's error.
    pub(crate) name: &'static str,
}

#[derive(Default)]
struct State {
    /// Per rank: counted tasks sent and not done.
    out: IdMap<Rank, usize>,
    /// The counted tasks, and where each went.
    counted: IdMap<u64, Rank>,
    /// Per rank: held tasks in submission order (ids already sent or
    /// cancelled are skipped when reached).
    queue: IdMap<Rank, VecDeque<u64>>,
    held: IdMap<u64, Held>,
}

/// The owner's record of tasks sent ahead and held back, per rank.
#[derive(Default)]
pub(crate) struct SendAhead {
    state: Mutex<State>,
    /// Tasks held back so far.
    held_back: AtomicU64,
}

impl SendAhead {
    /// Whether a task whose arguments are pending may go to `rank` now (it
    /// is then counted).
    pub(crate) fn admit(&self, rank: Rank, object: u64) -> bool {
        let mut s = lock(&self.state);
        let out = s.out.entry(rank).or_default();
        if *out >= SEND_AHEAD {
            return false;
        }
        *out += 1;
        s.counted.insert(object, rank);
        true
    }

    pub(crate) fn hold(&self, rank: Rank, object: u64, held: Held) {
        self.held_back.fetch_add(1, Ordering::Relaxed);
        let mut s = lock(&self.state);
        s.queue.entry(rank).or_default().push_back(object);
        s.held.insert(object, held);
    }

    /// `object`'s `Done` came from `rank`: the next held task for `rank`,
    /// if it was counted and one waits (that one is counted instead).
    pub(crate) fn done(&self, rank: Rank, object: u64) -> Option<(u64, Held)> {
        let mut s = lock(&self.state);
        let State {
            out,
            counted,
            queue,
            held,
        } = &mut *s;
        if counted.get(&object) != Some(&rank) {
            return None;
        }
        counted.remove(&object);
        let next = queue.get_mut(&rank).and_then(|q| {
            std::iter::from_fn(|| q.pop_front()).find_map(|id| held.remove(&id).map(|h| (id, h)))
        });
        match &next {
            Some((id, _)) => {
                counted.insert(*id, rank);
            }
            None => {
                if let Some(n) = out.get_mut(&rank) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        next
    }

    /// Takes `object` out of the held tasks (its arguments are ready, it
    /// was cancelled, or its rank was lost): what was held, if it was.
    pub(crate) fn take(&self, object: u64) -> Option<Held> {
        lock(&self.state).held.remove(&object)
    }

    /// `rank` was lost: what was counted or held for it is forgotten (the
    /// tasks themselves are sent again from the owner's `sent` record).
    pub(crate) fn rank_lost(&self, rank: Rank) {
        let mut s = lock(&self.state);
        s.out.remove(&rank);
        s.counted.retain(|_, r| *r != rank);
        if let Some(q) = s.queue.remove(&rank) {
            for id in q {
                s.held.remove(&id);
            }
        }
    }

    /// Tasks held here now.
    #[cfg(test)]
    fn held_count(&self) -> usize {
        lock(&self.state).held.len()
    }

    /// Tasks held back so far (`RankState::tasks_held_back`).
    pub(crate) fn held_back(&self) -> u64 {
        self.held_back.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> Held {
        Held {
            makers: Vec::new(),
            name: "f",
        }
    }

    /// A record with [`SEND_AHEAD`] tasks (ids from 0) counted for `rank`.
    fn full(rank: Rank) -> SendAhead {
        let a = SendAhead::default();
        for id in 0..SEND_AHEAD as u64 {
            assert!(a.admit(rank, id));
        }
        a
    }

    #[test]
    fn admits_up_to_the_bound_per_rank() {
        let a = full(1);
        assert!(!a.admit(1, 999), "the bound is reached for rank 1");
        assert!(a.admit(2, 1000), "rank 2 counts on its own");
    }

    #[test]
    fn a_counted_done_sends_the_oldest_held_task_in_its_place() {
        let a = full(1);
        a.hold(1, 100, held());
        a.hold(1, 101, held());
        // An uncounted task's Done frees nothing.
        assert!(a.done(1, 555).is_none());
        assert_eq!(a.done(1, 0).map(|(id, _)| id), Some(100));
        // 101 went by itself (its arguments became ready): skipped.
        assert!(a.take(101).is_some());
        assert!(a.done(1, 1).is_none());
        assert_eq!(a.held_count(), 0);
        // One slot is free again, and 100 is counted: its Done frees another.
        assert!(a.admit(1, 200));
        assert!(!a.admit(1, 201));
        assert!(a.done(1, 100).is_none());
        assert!(a.admit(1, 201));
    }

    #[test]
    fn a_lost_rank_forgets_what_was_counted_and_held() {
        let a = full(3);
        a.hold(3, 77, held());
        a.rank_lost(3);
        assert_eq!(a.held_count(), 0);
        assert!(
            a.admit(3, 78),
            "nothing counts against a lost rank any more"
        );
    }
}
