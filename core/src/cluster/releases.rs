//! Ending borrows in a safe order.
//!
//! A rank that reads an object may find refs (or actor handles) inside and
//! borrow them from their owners; if it then lets go of the outer object,
//! the outer object's owner may let go of the inner ones, and that message
//! can reach the inner owner before this rank's borrow does — which would
//! free an object this rank holds. So a rank ends a borrow
//! (`RemoveBorrow`, `RemoveActorBorrow`) only once every borrow it started
//! before has been acked: releases wait, in order, behind a watermark of
//! unacked borrows.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use ferry_transport::Rank;

use crate::cluster::wire::Msg;
use crate::ids::IdMap;
use crate::sync::lock;

#[derive(Default)]
struct State {
    next: u64,
    /// Borrows sent and not acked: by sequence number, the id and owner.
    unacked: BTreeMap<u64, (u64, Rank)>,
    /// The same, by id (oldest first: acks from one owner come in order).
    by_id: IdMap<u64, VecDeque<u64>>,
    /// Releases waiting for every borrow before them to be acked: the
    /// sequence number they wait behind, the owner, the message.
    waiting: VecDeque<(u64, Rank, Msg)>,
}

/// Releases that may go now, in order. Most often one or none: those are
/// kept without allocating.
#[must_use = "ready releases must be sent"]
#[derive(Default)]
pub(crate) struct Ready {
    first: Option<(Rank, Msg)>,
    rest: Vec<(Rank, Msg)>,
}

impl Ready {
    fn push(&mut self, release: (Rank, Msg)) {
        if self.first.is_none() {
            self.first = Some(release);
        } else {
            self.rest.push(release);
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl IntoIterator for Ready {
    type Item = (Rank, Msg);
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<(Rank, Msg)>, std::vec::IntoIter<(Rank, Msg)>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl State {
    /// Releases whose earlier borrows are all acked, in order.
    fn ready(&mut self) -> Ready {
        let oldest = self.unacked.keys().next().copied().unwrap_or(u64::MAX);
        let mut out = Ready::default();
        while self
            .waiting
            .front()
            .is_some_and(|(seq, _, _)| *seq <= oldest)
        {
            if let Some((_, to, msg)) = self.waiting.pop_front() {
                out.push((to, msg));
            }
        }
        out
    }
}

/// One rank's ordering of borrows and their ends (see the module docs).
#[derive(Default)]
pub(crate) struct Releases {
    state: Mutex<State>,
}

impl Releases {
    /// A borrow of `id` from `owner` is being sent.
    pub(crate) fn borrowing(&self, id: u64, owner: Rank) {
        let mut s = lock(&self.state);
        let seq = s.next;
        s.next += 1;
        s.unacked.insert(seq, (id, owner));
        s.by_id.entry(id).or_default().push_back(seq);
    }

    /// The borrow of `id` was answered; the releases it held back.
    pub(crate) fn acked(&self, id: u64) -> Ready {
        let mut s = lock(&self.state);
        let seq = match s.by_id.get_mut(&id) {
            Some(q) => {
                let seq = q.pop_front();
                if q.is_empty() {
                    s.by_id.remove(&id);
                }
                seq
            }
            None => None,
        };
        match seq {
            Some(seq) => {
                s.unacked.remove(&seq);
                s.ready()
            }
            None => Ready::default(),
        }
    }

    /// A release (`msg` to `owner`): what may go now, in order (this one
    /// included, unless a borrow started before it is still unacked).
    pub(crate) fn release(&self, owner: Rank, msg: Msg) -> Ready {
        let mut s = lock(&self.state);
        let seq = s.next;
        s.waiting.push_back((seq, owner, msg));
        s.ready()
    }

    /// Whether every borrow sent so far is acked: a release may go now,
    /// by any path.
    pub(crate) fn none_unacked(&self) -> bool {
        lock(&self.state).unacked.is_empty()
    }

    /// `rank` is gone: its borrows will never be acked (nor need to be).
    pub(crate) fn rank_lost(&self, rank: Rank) -> Ready {
        let mut s = lock(&self.state);
        let lost: Vec<(u64, u64)> = s
            .unacked
            .iter()
            .filter(|(_, (_, owner))| *owner == rank)
            .map(|(seq, (id, _))| (*seq, *id))
            .collect();
        for (seq, id) in lost {
            s.unacked.remove(&seq);
            if let Some(q) = s.by_id.get_mut(&id) {
                q.retain(|x| *x != seq);
                if q.is_empty() {
                    s.by_id.remove(&id);
                }
            }
        }
        s.waiting.retain(|(_, to, _)| *to != rank);
        s.ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: Ready) -> Vec<u64> {
        v.into_iter()
            .map(|(_, m)| match m {
                Msg::RemoveBorrow { object } => object,
                _ => u64::MAX,
            })
            .collect()
    }

    #[test]
    fn a_release_waits_for_the_borrows_started_before_it() {
        let r = Releases::default();
        assert_eq!(
            ids(r.release(1, Msg::RemoveBorrow { object: 10 })),
            vec![10]
        );
        r.borrowing(20, 2); // an inner ref found in object 10's value
        assert!(r.release(1, Msg::RemoveBorrow { object: 11 }).is_empty());
        r.borrowing(21, 2); // started after the release: does not hold it
        assert_eq!(ids(r.acked(20)), vec![11]);
        assert!(r.release(1, Msg::RemoveBorrow { object: 12 }).is_empty());
        assert_eq!(ids(r.acked(21)), vec![12]);
    }

    #[test]
    fn a_lost_owner_holds_nothing_back() {
        let r = Releases::default();
        r.borrowing(20, 2);
        assert!(r.release(1, Msg::RemoveBorrow { object: 11 }).is_empty());
        assert!(r.release(2, Msg::RemoveBorrow { object: 12 }).is_empty());
        assert_eq!(
            ids(r.rank_lost(2)),
            vec![11],
            "the release to rank 2 is dropped"
        );
    }
}
