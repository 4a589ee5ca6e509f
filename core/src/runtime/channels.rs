//! Objects sent to another rank under a tag ([`Runtime::send_to`],
//! [`Runtime::receive_from`]): MPI's point-to-point messages, for objects.
//! The matching is `object::mailbox`'s, the frames `cluster::channels`'.

use std::sync::{Arc, Weak};

use crate::cluster::channels::holds_refs;
use crate::cluster::owner_answers::{Answer, answer_when_ready};
use crate::error::{Error, Result};
use crate::object::cell::{Bytes, Slot, Stored};
use crate::object::object_ref::ObjectRef;
use crate::runtime::{Inner, Runtime};

impl Runtime {
    /// Sends `obj` to rank `to` under `tag`: once the object is complete,
    /// its value (or its failure) goes to `to`, whose matching
    /// [`receive_from`](Self::receive_from) gets it. Returns at once; the
    /// object is held until it is sent, and may be dropped meanwhile.
    ///
    /// Sends and receives match as MPI's messages do: the `n`-th object
    /// this rank sends `to` under `tag` is what `to`'s `n`-th
    /// `receive_from(this rank, tag)` gets, whether it is received before
    /// or after it arrives, and whatever the order the objects complete in.
    /// Tags name streams of sends, not single ones: each (rank, tag) pair
    /// used keeps a counter on both sides for the job's life.
    ///
    /// The receiver gets a copy in its own store (its object from then on);
    /// the bytes travel in one frame whatever their size, so this is meant
    /// for the small values a pipeline hands on (a boundary, a residual),
    /// where it costs one message and nothing else: no borrow, no request.
    /// A large object is better passed as a ref to a task on `to`, which
    /// reads it in place or by one one-sided read. Sending to this rank
    /// itself works the same way. An object that holds refs (nested
    /// `ObjectRef`s, actor handles) is not sent: its copy would not keep
    /// them alive, so the receive gets [`Error::InvalidArgument`] instead.
    ///
    /// Errors: [`Error::InvalidArgument`] when `to` is not a rank of the
    /// job or is lost, or when `obj` is another rank's (borrowed here: its
    /// owner can send it); [`Error::Shutdown`] after shutdown.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let boundary = rt.put(&vec![1.0f64, 2.0])?;
    /// rt.send_to(&boundary, rt.rank(), 7)?;
    /// let got = rt.receive_from::<Vec<f64>>(rt.rank(), 7)?;
    /// assert_eq!(rt.get(&got)?.as_slice(), &[1.0, 2.0]);
    /// assert!(rt.send_to(&boundary, 5, 7).is_err()); // no rank 5 here
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn send_to<T>(&self, obj: &ObjectRef<T>, to: u32, tag: u64) -> Result<()> {
        self.check_peer(to, "send_to")?;
        if let Some(b) = obj.slot.borrow() {
            return Err(Error::InvalidArgument(format!(
                "send_to: {} belongs to rank {}, which can send it; this rank can pass its ref on",
                obj.slot.id, b.owner
            )));
        }
        let slot = obj.slot.clone();
        let seq = self.inner.store.mailbox.next_send(to, tag);
        match self.inner.cluster() {
            Some(c) if to != self.inner.rank => {
                crate::cluster::channels::send_when_ready(c, to, tag, seq, slot);
            }
            _ => answer_when_ready(ToSelf {
                rank: Arc::downgrade(&self.inner),
                tag,
                seq,
                slot,
            }),
        }
        Ok(())
    }

    /// A ref to the next object rank `from` sends this rank under `tag`
    /// (see [`send_to`](Self::send_to) for the matching). It completes when
    /// the object arrives, at once if it came already; it can be passed to
    /// tasks like any other ref, which then run when it arrives. When
    /// `from` is lost before it sent the object, the ref fails with
    /// [`Error::OwnerLost`] (what it sent before is still received); at
    /// shutdown, with [`Error::Shutdown`]; until then a `get` of it waits
    /// as long as its timeout allows.
    ///
    /// Errors: [`Error::InvalidArgument`] when `from` is not a rank of the
    /// job; [`Error::Shutdown`] after shutdown.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let me = rt.rank();
    /// let first = rt.receive_from::<u64>(me, 1)?; // posted before the send
    /// assert!(!first.is_ready());
    /// rt.send_to(&rt.put(&10u64)?, me, 1)?;
    /// rt.send_to(&rt.put(&20u64)?, me, 1)?;
    /// let second = rt.receive_from::<u64>(me, 1)?;
    /// assert_eq!((rt.get(&first)?.to_native(), rt.get(&second)?.to_native()), (10, 20));
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn receive_from<T>(&self, from: u32, tag: u64) -> Result<ObjectRef<T>> {
        // A lost rank is not refused here: what it sent before it was lost
        // can still be received, and the rest fails as `OwnerLost`.
        self.check_rank(from, "receive_from")?;
        let slot = self.inner.store.new_output();
        self.inner.store.mailbox.post(from, tag, &slot);
        Ok(ObjectRef::from_slot(slot))
    }

    /// Checks that `call` may name `rank`: a rank of the job, while the
    /// runtime runs.
    fn check_rank(&self, rank: u32, call: &str) -> Result<()> {
        if self.inner.is_shut() {
            return Err(Error::Shutdown);
        }
        let size = self.world_size();
        if rank >= size {
            return Err(Error::InvalidArgument(format!(
                "{call}: rank {rank} is not a rank of this job ({size} ranks)"
            )));
        }
        Ok(())
    }

    /// Checks that `rank` can be sent to by `call`: [`check_rank`], and not
    /// lost.
    ///
    /// [`check_rank`]: Self::check_rank
    fn check_peer(&self, rank: u32, call: &str) -> Result<()> {
        self.check_rank(rank, call)?;
        // The transport knows a rank lost before the runtime hears of it.
        if let Some(c) = self.inner.cluster()
            && rank != self.inner.rank
            && c.transport.is_lost(rank)
        {
            return Err(Error::InvalidArgument(format!(
                "{call}: rank {rank} was lost"
            )));
        }
        Ok(())
    }
}

/// A send to this rank itself, waiting for its object.
struct ToSelf {
    rank: Weak<Inner>,
    tag: u64,
    seq: u64,
    slot: Arc<Slot>,
}

impl Answer for ToSelf {
    fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    fn send(&self) {
        let Some(inner) = self.rank.upgrade() else {
            return;
        };
        let stored = match self.slot.get() {
            Some(Stored::Value(v)) if !v._contained.is_empty() => {
                Stored::Error(holds_refs(&self.slot))
            }
            Some(Stored::Value(v)) => copied(&inner, v),
            Some(Stored::Error(e)) => {
                // Handed on: the receive sees the error.
                self.slot.mark_observed();
                Stored::Error(e.clone())
            }
            None => return,
        };
        inner
            .store
            .mailbox
            .deliver(inner.rank, self.tag, self.seq, stored);
    }
}

/// A copy of `v` in a block of its own (a sealed block has one holder).
fn copied(inner: &Inner, v: &crate::object::cell::StoredValue) -> Stored {
    let copy = || -> Result<Stored> {
        let bytes = v.block.access()?;
        let sealed = Bytes::Own(inner.store.arena.seal_copy(bytes.as_slice())?);
        Ok(Stored::Value(v.copied_to(sealed, v._contained.clone())))
    };
    copy().unwrap_or_else(Stored::Error)
}
