//! Objects sent from one rank to another under a tag (`Runtime::send_to`,
//! `Runtime::receive_from`), matched the way MPI matches messages: the
//! `n`-th object rank `s` sends rank `r` under tag `t` is what `r`'s `n`-th
//! receive from `s` under `t` gets, whichever comes first.
//!
//! Each side numbers its own calls per (peer, tag): a sender when it sends
//! (the number travels with the value), a receiver when it posts a receive.
//! A value that arrives before its receive waits here ([`Mailbox::deliver`]);
//! a receive posted first leaves its slot here for the value to complete
//! ([`Mailbox::post`]). A rank that is lost fails the receives from it, now
//! and later ([`Mailbox::sender_lost`]); so does the runtime's shutdown for
//! every receive ([`Mailbox::close`]). A receive whose ref is dropped before
//! its value comes leaves its place here until the value comes.

use std::sync::{Arc, Mutex, Weak};

use crate::error::Error;
use crate::ids::IdMap;
use crate::object::cell::{Slot, Stored};
use crate::sync::lock;

/// One value's place: (peer rank, tag, sequence number).
type Key = (u32, u64, u64);

/// One rank's sent and received tagged objects (keyed by ranks, tags and
/// numbers this job chose: hashed with a multiply, not SipHash).
#[derive(Default)]
pub(crate) struct Mailbox {
    boxes: Mutex<Boxes>,
}

#[derive(Default)]
struct Boxes {
    /// The next number to send under, per (destination, tag).
    sent: IdMap<(u32, u64), u64>,
    /// The next number to receive under, per (source, tag).
    received: IdMap<(u32, u64), u64>,
    /// Values that came before their receive.
    arrived: IdMap<Key, Stored>,
    /// Receives posted before their value (weak: a receive whose ref is
    /// dropped takes nothing).
    waiting: IdMap<Key, Weak<Slot>>,
    /// Senders lost, with why.
    lost: IdMap<u32, String>,
    /// The runtime is shut down: nothing more is kept.
    closed: bool,
}

/// Counts `key`'s next number up and returns the one before.
fn next(map: &mut IdMap<(u32, u64), u64>, key: (u32, u64)) -> u64 {
    let n = map.entry(key).or_insert(0);
    let this = *n;
    *n += 1;
    this
}

/// The error a receive from lost rank `from` gets.
fn lost_error(slot: &Slot, from: u32, reason: &str) -> Stored {
    Stored::Error(Error::OwnerLost {
        object: slot.id,
        rank: from,
        reason: format!("it was lost before it sent the object: {reason}"),
    })
}

impl Mailbox {
    /// The number of this rank's next send to `to` under `tag`.
    pub(crate) fn next_send(&self, to: u32, tag: u64) -> u64 {
        next(&mut lock(&self.boxes).sent, (to, tag))
    }

    /// Posts a receive from `from` under `tag` that `slot` (a pending slot
    /// of this rank's) takes: completed now when its value came already
    /// (or its sender is lost), else when it comes.
    pub(crate) fn post(&self, from: u32, tag: u64, slot: &Arc<Slot>) {
        let now = {
            let mut b = lock(&self.boxes);
            let key = (from, tag, next(&mut b.received, (from, tag)));
            match b.arrived.remove(&key) {
                Some(stored) => Some(stored),
                None if b.closed => Some(Stored::Error(Error::Shutdown)),
                None => match b.lost.get(&from) {
                    Some(reason) => Some(lost_error(slot, from, reason)),
                    None => {
                        b.waiting.insert(key, Arc::downgrade(slot));
                        None
                    }
                },
            }
        };
        // Outside the lock: completing wakes whoever waits on the slot.
        if let Some(stored) = now {
            slot.complete(stored);
        }
    }

    /// The `seq`-th value `from` sent this rank under `tag` arrived:
    /// completes its receive, or keeps it for the receive to come. One
    /// whose receive was posted and dropped is dropped.
    pub(crate) fn deliver(&self, from: u32, tag: u64, seq: u64, stored: Stored) {
        let key = (from, tag, seq);
        let slot = {
            let mut b = lock(&self.boxes);
            match b.waiting.remove(&key) {
                Some(w) => w.upgrade(),
                None if b.closed => None,
                None => {
                    b.arrived.insert(key, stored);
                    return;
                }
            }
        };
        // Outside the lock; the value (and its memory) is dropped out here too.
        if let Some(slot) = slot {
            slot.complete(stored);
        }
    }

    /// Rank `from` is lost: the receives from it that wait fail, and so
    /// will those posted later for values that had not come.
    pub(crate) fn sender_lost(&self, from: u32, reason: &str) {
        let failed: Vec<Arc<Slot>> = {
            let mut b = lock(&self.boxes);
            b.lost.insert(from, reason.to_string());
            let keys: Vec<Key> = b.waiting.keys().filter(|k| k.0 == from).copied().collect();
            keys.into_iter()
                .filter_map(|k| b.waiting.remove(&k).and_then(|w| w.upgrade()))
                .collect()
        };
        for slot in failed {
            slot.complete(lost_error(&slot, from, reason));
        }
    }

    /// The runtime shuts down: receives still waiting fail with
    /// [`Error::Shutdown`], values nobody received are dropped, and later
    /// ones too (as from a lost rank).
    pub(crate) fn close(&self) {
        let (waiting, arrived) = {
            let mut b = lock(&self.boxes);
            b.closed = true;
            (
                std::mem::take(&mut b.waiting),
                std::mem::take(&mut b.arrived),
            )
        };
        drop(arrived); // outside the lock: this frees their blocks
        for slot in waiting.into_values().filter_map(|w| w.upgrade()) {
            slot.complete(Stored::Error(Error::Shutdown));
        }
    }

    /// Values that came and have no receive yet.
    #[cfg(test)]
    pub(crate) fn unreceived(&self) -> usize {
        lock(&self.boxes).arrived.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ObjectId;
    use crate::object::cell::UnhandledSink;

    fn pending(n: u64) -> Arc<Slot> {
        Slot::pending(
            ObjectId::from_u64(n),
            None,
            Arc::new(UnhandledSink::default()),
        )
    }

    fn failed(what: &str) -> Stored {
        Stored::Error(Error::InvalidArgument(what.into()))
    }

    fn text(slot: &Slot) -> String {
        match slot.get() {
            Some(Stored::Error(e)) => e.to_string(),
            Some(Stored::Value(_)) => "a value".into(),
            None => "nothing".into(),
        }
    }

    #[test]
    fn values_match_receives_in_order_whichever_comes_first() {
        let m = Mailbox::default();
        // Rank 1 sent #0 and #1 under tag 7; #1 came first.
        m.deliver(1, 7, 1, failed("second"));
        let (a, b, c) = (pending(1), pending(2), pending(3));
        m.post(1, 7, &a);
        assert!(!a.is_ready(), "#0 has not come");
        m.post(1, 7, &b);
        assert_eq!(text(&b), "invalid argument: second");
        m.deliver(1, 7, 0, failed("first"));
        assert_eq!(text(&a), "invalid argument: first");
        // Another tag and another sender are other sequences.
        m.post(2, 7, &c);
        m.deliver(1, 8, 0, failed("other tag"));
        assert!(!c.is_ready());
        m.deliver(2, 7, 0, failed("other rank"));
        assert_eq!(text(&c), "invalid argument: other rank");
        assert_eq!(m.unreceived(), 1);
    }

    #[test]
    fn sends_are_numbered_per_destination_and_tag() {
        let m = Mailbox::default();
        assert_eq!(m.next_send(1, 5), 0);
        assert_eq!(m.next_send(1, 5), 1);
        assert_eq!(m.next_send(2, 5), 0);
        assert_eq!(m.next_send(1, 6), 0);
    }

    #[test]
    fn a_lost_sender_fails_waiting_and_later_receives_but_not_what_came() {
        let m = Mailbox::default();
        let (waits, came, later) = (pending(1), pending(2), pending(3));
        m.post(3, 1, &waits);
        m.deliver(3, 2, 0, failed("came before the loss"));
        m.sender_lost(3, "killed");
        assert!(text(&waits).contains("rank 3"), "{}", text(&waits));
        assert!(text(&waits).contains("killed"), "{}", text(&waits));
        m.post(3, 2, &came);
        assert_eq!(text(&came), "invalid argument: came before the loss");
        m.post(3, 1, &later);
        assert!(text(&later).contains("killed"), "{}", text(&later));
    }

    #[test]
    fn closing_fails_waiting_receives_and_keeps_nothing() {
        let m = Mailbox::default();
        let (waits, later) = (pending(1), pending(2));
        m.post(1, 1, &waits);
        m.deliver(2, 1, 0, failed("never received"));
        m.close();
        assert!(matches!(waits.get(), Some(Stored::Error(Error::Shutdown))));
        assert_eq!(m.unreceived(), 0);
        m.deliver(2, 1, 1, failed("after the end"));
        assert_eq!(m.unreceived(), 0);
        m.post(1, 1, &later);
        assert!(matches!(later.get(), Some(Stored::Error(Error::Shutdown))));
    }

    #[test]
    fn a_dropped_receive_takes_nothing_and_keeps_nothing() {
        let m = Mailbox::default();
        m.post(1, 1, &pending(1)); // its ref is gone at once
        m.deliver(1, 1, 0, failed("for nobody"));
        assert_eq!(m.unreceived(), 0);
    }
}
