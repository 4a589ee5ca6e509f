//! The per-object cell every [`ObjectRef`](crate::ObjectRef) points at.
//!
//! # Protocol
//!
//! 1. A slot is made *pending* when a task or actor call is submitted, or
//!    *ready* at once by `put`.
//! 2. Completing a pending slot sets its value exactly once (a `SetOnce`,
//!    whose release store publishes the bytes), then takes the waiter list
//!    under its lock and wakes every waiter: parked threads through their
//!    [`Signal`], dependent tasks through [`DepWaiter::dep_ready`], futures
//!    (`ref_future`) through their `Waker`.
//! 3. A waiter registers under the same lock after checking the value again,
//!    so a completion between its check and its registration is never lost.
//! 4. The slot is reference counted by `Arc`: every `ObjectRef`, every `View`
//!    and every object that contains the ref keeps it. The last drop frees the
//!    object's arena block (a small object kept inline goes with the slot). A failed slot that nobody ever looked at reports
//!    its error once when it is dropped.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::once::SetOnce;

use ferry_store::{Pinned, Sealed, StoreError};

use crate::error::Error;
use crate::ids::{ObjectId, stable_id};
use crate::object::lender::Lender;
use crate::object::waiters::Waiters;
use crate::signal::Signal;
use crate::sync::lock;

/// Something that waits for a slot without a thread: a task's dependency count.
pub(crate) trait DepWaiter: Send + Sync {
    /// One of the awaited objects is complete.
    fn dep_ready(self: Arc<Self>);

    /// Brings what readying and running this waiter will touch into this
    /// core's cache (see [`Slot::warm_dependents`]); nothing by default.
    fn warm(&self) {}
}

pub(crate) enum Waiter {
    Thread(Arc<Signal>),
    Task(Arc<dyn DepWaiter>),
    /// A future awaiting the object (see `ref_future`).
    Future(std::task::Waker),
}

/// Something kept alive by an object that contains it (a nested ref or handle).
pub(crate) type KeepAlive = Arc<dyn Any + Send + Sync>;

/// What type an object holds: exactly, for objects made in this process; by
/// the hash of the type's name (the same in every copy of the binary) for
/// objects that came from another rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeTag {
    Local(TypeId),
    Named(u64),
}

impl TypeTag {
    pub(crate) fn of<T: 'static>() -> TypeTag {
        TypeTag::Local(TypeId::of::<T>())
    }

    pub(crate) fn named(type_name: &str) -> TypeTag {
        TypeTag::Named(stable_id(type_name))
    }

    /// Whether an object with this tag may be read as a `T`.
    pub(crate) fn is<T: 'static>(self) -> bool {
        match self {
            TypeTag::Local(id) => id == TypeId::of::<T>(),
            TypeTag::Named(h) => h == stable_id(std::any::type_name::<T>()),
        }
    }
}

/// Where an object's bytes are.
pub(crate) enum Bytes {
    /// In this rank's store (in the arena, or spilled to disk while nobody
    /// reads it, or inline in the handle when small: see
    /// `ferry_store::INLINE_MAX`).
    Own(Sealed),
    /// In a same-node neighbour's arena, mapped read-only (zero copy); the
    /// owner keeps the object while this rank borrows it.
    Mapped {
        seg: Arc<ferry_store::ReadOnlySegment>,
        offset: usize,
        len: usize,
    },
}

/// An object's bytes, held in memory while this lives.
pub(crate) enum Access<'a> {
    Own(Pinned<'a>),
    Mapped(&'a [u8]),
}

impl Access<'_> {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Access::Own(p) => p.as_slice(),
            Access::Mapped(b) => b,
        }
    }
}

impl Bytes {
    /// Length in bytes (known without reading them back from disk).
    pub(crate) fn len(&self) -> usize {
        match self {
            Bytes::Own(s) => s.len(),
            Bytes::Mapped { len, .. } => *len,
        }
    }

    /// Other ranks no longer read the bytes in place: they may be spilled.
    pub(crate) fn unlend(&self) {
        if let Bytes::Own(s) = self {
            s.unlend();
        }
    }

    /// A neighbour's bytes (empty for this rank's own: those are reached
    /// through a pin).
    pub(crate) fn mapped(&self) -> &[u8] {
        match self {
            Bytes::Own(_) => &[],
            Bytes::Mapped { seg, offset, len } => &seg.as_slice()[*offset..*offset + *len],
        }
    }

    /// Whether the bytes are on disk now.
    pub(crate) fn is_spilled(&self) -> bool {
        matches!(self, Bytes::Own(s) if s.is_spilled())
    }

    /// The bytes, read back first if they were spilled.
    pub(crate) fn access(&self) -> Result<Access<'_>, StoreError> {
        match self {
            Bytes::Own(s) => s.pin().map(Access::Own),
            Bytes::Mapped { seg, offset, len } => {
                Ok(Access::Mapped(&seg.as_slice()[*offset..*offset + *len]))
            }
        }
    }

    /// The offset in this rank's own arena, for other ranks to read from
    /// (the object stays there until [`unlend`](Self::unlend)); `None` for
    /// bytes that are a neighbour's.
    pub(crate) fn lend(&self) -> Option<Result<usize, StoreError>> {
        match self {
            Bytes::Own(s) => Some(s.lend()),
            Bytes::Mapped { .. } => None,
        }
    }
}

/// An object's sealed bytes.
///
/// Laid out by hand (`repr(C)`, the type's tag last): the tag's unused
/// values, after the 104 bytes an [`Error`] takes, then tell a [`Stored`]
/// holding an error, and a `Stored` stays 128 bytes, which the compiler
/// moves with inline stores (in the compiler's own order there was no room
/// for that: 144 bytes, moved by a `memcpy` call, ~30 instructions a
/// move, several a task).
#[repr(C)]
pub(crate) struct StoredValue {
    pub(crate) block: Bytes,
    pub(crate) type_name: Cow<'static, str>,
    pub(crate) _contained: Vec<KeepAlive>,
    /// Set once the bytes have been checked (or were written by this rank).
    pub(crate) validated: AtomicBool,
    pub(crate) type_tag: TypeTag,
}

impl StoredValue {
    /// Bytes this rank wrote as a `T` (sound by construction), keeping the
    /// objects whose refs they contain alive.
    pub(crate) fn written<T: 'static>(block: Bytes, contained: Vec<KeepAlive>) -> StoredValue {
        StoredValue::new(
            block,
            TypeTag::of::<T>(),
            std::any::type_name::<T>().into(),
            true,
            contained,
        )
    }

    /// Bytes that claim to be a `T`'s archive but have not been checked yet
    /// (an archive handed in by the user): checked at the first get.
    pub(crate) fn unchecked<T: 'static>(block: Bytes) -> StoredValue {
        StoredValue::new(
            block,
            TypeTag::of::<T>(),
            std::any::type_name::<T>().into(),
            false,
            Vec::new(),
        )
    }

    /// Bytes from another rank or process, with the type it named: checked
    /// at the first get.
    pub(crate) fn received(
        block: Bytes,
        type_tag: TypeTag,
        type_name: Cow<'static, str>,
    ) -> StoredValue {
        StoredValue::new(block, type_tag, type_name, false, Vec::new())
    }

    /// A copy of `self` in `block` (checked as far as `self` was), keeping
    /// `keep` alive with it.
    pub(crate) fn copied_to(&self, block: Bytes, keep: Vec<KeepAlive>) -> StoredValue {
        StoredValue::new(
            block,
            self.type_tag,
            self.type_name.clone(),
            self.validated.load(Ordering::Acquire),
            keep,
        )
    }

    fn new(
        block: Bytes,
        type_tag: TypeTag,
        type_name: Cow<'static, str>,
        validated: bool,
        contained: Vec<KeepAlive>,
    ) -> StoredValue {
        StoredValue {
            block,
            type_tag,
            type_name,
            validated: AtomicBool::new(validated),
            _contained: contained,
        }
    }
}

/// Where failed objects that nobody fetched are counted.
#[derive(Debug, Default)]
pub(crate) struct UnhandledSink {
    pub(crate) count: std::sync::atomic::AtomicU64,
    pub(crate) quiet: bool,
}

pub(crate) enum Stored {
    Value(StoredValue),
    Error(Error),
}

impl Stored {
    /// The error, for a failed object.
    pub(crate) fn error(&self) -> Option<&Error> {
        match self {
            Stored::Value(_) => None,
            Stored::Error(e) => Some(e),
        }
    }
}

/// Who can be asked to run the producing task inline (see `scheduler`).
pub(crate) trait Producer: Send + Sync {
    /// Runs the task on the calling thread if nobody has started it; true if it ran.
    fn run_inline(self: Arc<Self>) -> bool;
    /// Cancels the task (see `TaskCell::cancel`).
    fn cancel(self: Arc<Self>, recursive: bool);
}

pub(crate) struct Slot {
    pub(crate) id: ObjectId,
    value: SetOnce<Stored>,
    pending: Mutex<Pending>,
    /// Someone fetched this object (so its error, if any, was seen).
    observed: AtomicBool,
    unhandled: Option<Arc<UnhandledSink>>,
    /// Where this slot is listed for lookups by id, to unlist it on drop.
    exported: SetOnce<Weak<crate::object::exports::Exports>>,
    /// Set for an object owned by another rank that this rank borrows
    /// (boxed: most slots are this rank's own, and every slot is written
    /// whole when it is made).
    borrow: Option<Box<Borrow>>,
}

/// What a slot keeps until its value is set.
struct Pending {
    /// Who waits for the value.
    waiters: Waiters<Waiter>,
    /// The task making it, weakly (to run it inline or cancel it): let go
    /// of when the value is set, so that the task's memory is freed with
    /// the task's own remains (by its submitter, see `task::leftovers`)
    /// rather than with the last ref to its output (on the 2-core VM a
    /// driver dropping a few hundred refs at once freed as many cells,
    /// more than its malloc cache holds, and its next few hundred
    /// submissions allocated theirs from malloc's slow path).
    producer: Option<Weak<dyn Producer>>,
}

/// A borrowed object: its owner, who lends it to this rank, and the state
/// of the borrow protocol (see `cluster`).
pub(crate) struct Borrow {
    pub(crate) owner: u32,
    lender: Weak<dyn Lender>,
    /// The owner has registered this rank as a borrower.
    pub(crate) acked: AtomicBool,
    /// The value has been asked for.
    fetching: AtomicBool,
    /// Where the owner keeps the sealed value, from its `BorrowAck`:
    /// offset and length in its arena, and the type's name.
    pub(crate) at: OnceLock<(u64, u64, String)>,
    /// A rank other than the owner that is making the value (the owner
    /// said so), to ask first; [`NO_RANK`] when none.
    pub(crate) maker: AtomicU32,
    /// The rank the value was asked of; [`NO_RANK`] before.
    pub(crate) asked: AtomicU32,
    /// Not asked for: a task running on this rank for the owner is making
    /// the value, and its end fills the slot or asks for it then.
    pub(crate) deferred: AtomicBool,
    /// Where its `AddBorrow` is (0: sent; see `cluster::held_adds`).
    pub(crate) add: AtomicU8,
}

impl Borrow {
    /// Rank `by` sends the value unasked (see `cluster::lent_args`):
    /// nothing here asks for it.
    pub(crate) fn promised(&self, by: u32) {
        self.fetching.store(true, Ordering::Release);
        self.asked.store(by, Ordering::Release);
    }
}

/// No rank, in [`Borrow`]'s rank fields.
pub(crate) const NO_RANK: u32 = u32::MAX;

impl Slot {
    fn empty(
        id: ObjectId,
        producer: Option<Weak<dyn Producer>>,
        unhandled: Option<Arc<UnhandledSink>>,
        borrow: Option<Box<Borrow>>,
    ) -> Slot {
        Slot {
            id,
            value: SetOnce::new(),
            pending: Mutex::new(Pending {
                waiters: Waiters::new(),
                producer,
            }),
            observed: AtomicBool::new(false),
            unhandled,
            exported: SetOnce::new(),
            borrow,
        }
    }

    /// A slot whose value is known at once (`put`).
    pub(crate) fn ready(id: ObjectId, value: StoredValue) -> Arc<Slot> {
        let slot = Slot::empty(id, None, None, None);
        let _ = slot.value.set(Stored::Value(value));
        Arc::new(slot)
    }

    /// A slot a task or actor call will complete; its error, if nobody looks
    /// at it, is reported to `unhandled`.
    pub(crate) fn pending(
        id: ObjectId,
        producer: Option<Weak<dyn Producer>>,
        unhandled: Arc<UnhandledSink>,
    ) -> Arc<Slot> {
        Arc::new(Slot::empty(id, producer, Some(unhandled), None))
    }

    /// A slot for object `id`, owned by rank `owner`, that this rank
    /// borrows through `lender`.
    pub(crate) fn borrowed(id: ObjectId, owner: u32, lender: Weak<dyn Lender>) -> Arc<Slot> {
        let borrow = Borrow {
            owner,
            lender,
            acked: AtomicBool::new(false),
            fetching: AtomicBool::new(false),
            at: OnceLock::new(),
            maker: AtomicU32::new(NO_RANK),
            asked: AtomicU32::new(NO_RANK),
            deferred: AtomicBool::new(false),
            add: AtomicU8::new(0),
        };
        Arc::new(Slot::empty(id, None, None, Some(Box::new(borrow))))
    }

    /// Made by `put` (ready at once, no task behind it).
    pub(crate) fn is_put(&self) -> bool {
        // Only `pending` slots have a producer, and they all have a sink.
        self.unhandled.is_none() && self.borrow.is_none()
    }

    pub(crate) fn borrow(&self) -> Option<&Borrow> {
        self.borrow.as_deref()
    }

    /// For a borrowed object: asks its owner for the value (once).
    pub(crate) fn start_fetch(&self) {
        if let Some(b) = &self.borrow
            && !self.is_ready()
            && !b.fetching.swap(true, Ordering::AcqRel)
            && let Some(lender) = b.lender.upgrade()
        {
            lender.fetch(self, b);
        }
    }

    #[inline]
    pub(crate) fn get(&self) -> Option<&Stored> {
        self.value.get()
    }

    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        self.value.get().is_some()
    }

    /// No other rank reads this object's bytes in place any more.
    pub(crate) fn unlend(&self) {
        if let Some(Stored::Value(v)) = self.value.get() {
            v.block.unlend();
        }
    }

    pub(crate) fn mark_observed(&self) {
        // Looked at first: an object many read is written once, not by all.
        if !self.observed.load(Ordering::Relaxed) {
            self.observed.store(true, Ordering::Relaxed);
        }
    }

    /// The task making the value, while it is not set.
    pub(crate) fn producer(&self) -> Option<Arc<dyn Producer>> {
        self.lock_pending()
            .producer
            .as_ref()
            .and_then(Weak::upgrade)
    }

    /// Sets the value (first completion wins) and wakes every waiter.
    pub(crate) fn complete(&self, stored: Stored) {
        self.complete_first(stored);
    }

    /// [`complete`](Self::complete), saying whether this completion won
    /// (false when the slot was complete already).
    pub(crate) fn complete_first(&self, stored: Stored) -> bool {
        if self.value.set(stored).is_err() {
            return false;
        }
        let (waiters, producer) = {
            let mut p = self.lock_pending();
            (p.waiters.take(), p.producer.take())
        };
        drop(producer);
        for w in waiters {
            match w {
                Waiter::Thread(s) => s.notify(),
                Waiter::Task(t) => t.dep_ready(),
                Waiter::Future(w) => w.wake(),
            }
        }
        true
    }

    /// Registers `w` unless the slot is already complete; false if it was.
    /// Brings the dependents waiting on this object into this core's cache
    /// (see [`DepWaiter::warm`]), for a thread about to make the object and
    /// then ready them: lines another thread wrote at their submission,
    /// fetched while the object is being made rather than one miss at a
    /// time once it is done. Only the first few are warmed.
    pub(crate) fn warm_dependents(&self) {
        self.lock_pending().waiters.for_each_first(|w| {
            if let Waiter::Task(t) = w {
                t.warm();
            }
        });
    }

    pub(crate) fn add_waiter(&self, w: Waiter) -> bool {
        let mut p = self.lock_pending();
        if self.is_ready() {
            return false;
        }
        p.waiters.push(w);
        true
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A poisoned list is still a valid list: no user code runs under it.
        lock(&self.pending)
    }

    /// Marks the slot listed in `exports` (the first mark stays).
    pub(crate) fn set_exported(&self, exports: Weak<crate::object::exports::Exports>) {
        let _ = self.exported.set(exports);
    }

    /// Whether the slot is listed in its rank's exports.
    pub(crate) fn is_exported(&self) -> bool {
        self.exported.get().is_some()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(b) = &self.borrow
            && let Some(lender) = b.lender.upgrade()
            && !crate::object::lender::hold_end(&lender, self.id, b.owner)
        {
            lender.unborrow(self.id, b.owner);
        }
        if let Some(exports) = self.exported.get().and_then(Weak::upgrade) {
            exports.forget_object(self.id);
        }
        if let (Some(Stored::Error(e)), Some(sink)) = (self.value.get(), &self.unhandled)
            && !self.observed.load(Ordering::Relaxed)
        {
            sink.count.fetch_add(1, Ordering::Relaxed);
            if !sink.quiet {
                eprintln!(
                    "ferry: unhandled error in {} (nobody called get on it; \
                         set FERRY_IGNORE_UNHANDLED_ERRORS=1 to silence): {e}",
                    self.id
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Maker;

    impl Producer for Maker {
        fn run_inline(self: Arc<Self>) -> bool {
            false
        }
        fn cancel(self: Arc<Self>, _recursive: bool) {}
    }

    /// A performance guard: small enough to be moved with inline stores
    /// (see [`StoredValue`]). A compiler that lays the types out otherwise
    /// makes every task a little slower, not wrong; this says so, and
    /// `StoredValue`'s comment says what the layout relies on.
    #[test]
    fn a_stored_value_takes_128_bytes() {
        assert_eq!(size_of::<Bytes>(), 48);
        assert_eq!(size_of::<Stored>(), 128);
    }

    #[test]
    fn a_completed_slot_lets_its_producer_go() {
        let maker: Arc<dyn Producer> = Arc::new(Maker);
        let sink = Arc::new(UnhandledSink::default());
        let slot = Slot::pending(ObjectId::from_u64(1), Some(Arc::downgrade(&maker)), sink);
        assert!(
            slot.producer().is_some(),
            "pending: its task can be run or cancelled"
        );
        assert_eq!(Arc::weak_count(&maker), 1);
        slot.mark_observed();
        assert!(slot.complete_first(Stored::Error(Error::Shutdown)));
        assert!(slot.producer().is_none());
        // The task's memory is not kept by the refs to its output.
        assert_eq!(Arc::weak_count(&maker), 0);
        assert!(
            !slot.complete_first(Stored::Error(Error::Shutdown)),
            "first wins"
        );
    }
}
