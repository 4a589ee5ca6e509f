//! [`Lender`]: how the object layer reaches objects owned by other ranks
//! (fetching a borrowed object's bytes, ending a borrow, finding the slot
//! for an id), implemented above it by the runtime with the cluster's
//! borrow protocol; and [`current`], the lender of the calling thread,
//! which turns the ids of archived refs back into live ones.
//!
//! The object layer names no layer above it: a borrowed slot keeps a
//! `Weak<dyn Lender>` (only borrowed objects pay for the dynamic call, on
//! their cold fetch and release), and [`current`] asks a finder that the
//! runtime installs once at start-up, so that nothing is added to the
//! paths that set a thread's runtime.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, OnceLock};

use crate::error::Result;
use crate::ids::ObjectId;
use crate::object::cell::{Borrow, Slot};

/// Who lends this rank the objects of other ranks.
pub(crate) trait Lender: Send + Sync {
    /// Asks the owner of the borrowed `slot` for its value; the slot is
    /// completed when it arrives (or fails if the owner cannot answer).
    /// Called once per slot.
    fn fetch(self: Arc<Self>, slot: &Slot, borrow: &Borrow);

    /// This rank's last reference to object `id`, borrowed from rank
    /// `owner`, is gone: the owner may release it.
    fn unborrow(self: Arc<Self>, id: ObjectId, owner: u32);

    /// The slot of object `id`: this rank's own, or a borrow of another
    /// rank's (made now, and registered with its owner, if there is none).
    fn lookup(self: Arc<Self>, id: ObjectId) -> Result<Arc<Slot>>;
}

/// Finds the calling thread's lender (the runtime it works for).
pub(crate) type FindLender = fn() -> Option<Arc<dyn Lender>>;

static FIND: OnceLock<FindLender> = OnceLock::new();

/// Says how to find a thread's lender; the first call wins (every runtime
/// installs the same finder).
pub(crate) fn install(find: FindLender) {
    let _ = FIND.set(find);
}

/// The calling thread's lender, if it works for a runtime.
pub(crate) fn current() -> Option<Arc<dyn Lender>> {
    FIND.get().and_then(|find| find())
}

/// A borrow whose end was held back by [`batching`]: the lender to tell,
/// the object, and its owner.
pub(crate) struct HeldEnd {
    lender: Arc<dyn Lender>,
    pub(crate) id: ObjectId,
    pub(crate) owner: u32,
}

thread_local! {
    /// How deep this thread is in [`batching`] scopes (0: not batching).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The ends held back by this thread's outermost scope.
    static HELD: RefCell<Vec<HeldEnd>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the ends of borrows (the last borrowed ref of an object
/// dropped on this thread) held back, so that the message that ends `f`'s
/// work can carry them to their owner ([`take_held`]: a task's `Done`
/// carries the ends of the borrows its inputs held, instead of a frame
/// each); those still held when the outermost scope ends are told to their
/// lenders then, in order. Nested scopes join the outermost.
pub(crate) fn batching<R>(f: impl FnOnce() -> R) -> R {
    struct Scope;
    impl Drop for Scope {
        fn drop(&mut self) {
            if DEPTH.with(|d| d.replace(d.get() - 1)) != 1 {
                return;
            }
            let held = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
            for end in held {
                end.lender.unborrow(end.id, end.owner);
            }
        }
    }
    DEPTH.with(|d| d.set(d.get() + 1));
    let _scope = Scope;
    f()
}

/// Holds back the end of the borrow of `id` from `owner` if this thread is
/// [`batching`]; false (nothing held) if it is not.
pub(super) fn hold_end(lender: &Arc<dyn Lender>, id: ObjectId, owner: u32) -> bool {
    if DEPTH.with(Cell::get) == 0 {
        return false;
    }
    HELD.with(|h| {
        h.borrow_mut().push(HeldEnd {
            lender: lender.clone(),
            id,
            owner,
        })
    });
    true
}

/// Takes the ends held back on this thread of borrows from `owner` through
/// `lender` (compared by address): the caller now ends them (see
/// [`batching`]).
pub(crate) fn take_held(lender: *const (), owner: u32) -> Vec<HeldEnd> {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        if h.is_empty() {
            return Vec::new();
        }
        let ours =
            |e: &HeldEnd| e.owner == owner && std::ptr::addr_eq(Arc::as_ptr(&e.lender), lender);
        if h.iter().all(ours) {
            return std::mem::take(&mut *h);
        }
        let (taken, kept) = std::mem::take(&mut *h).into_iter().partition(ours);
        *h = kept;
        taken
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::error::Error;

    /// A lender that records the borrows it is told have ended.
    #[derive(Default)]
    struct Recorder {
        ended: Mutex<Vec<(u64, u32)>>,
    }

    impl Lender for Recorder {
        fn fetch(self: Arc<Self>, _slot: &Slot, _borrow: &Borrow) {}

        fn unborrow(self: Arc<Self>, id: ObjectId, owner: u32) {
            self.ended.lock().unwrap().push((id.as_u64(), owner));
        }

        fn lookup(self: Arc<Self>, id: ObjectId) -> Result<Arc<Slot>> {
            Err(Error::ObjectFreed { object: id })
        }
    }

    fn borrowed(lender: &Arc<Recorder>, id: u64, owner: u32) -> Arc<Slot> {
        let dynamic: Arc<dyn Lender> = lender.clone();
        Slot::borrowed(ObjectId::from_u64(id), owner, Arc::downgrade(&dynamic))
    }

    fn ended(lender: &Recorder) -> Vec<(u64, u32)> {
        lender.ended.lock().unwrap().clone()
    }

    #[test]
    fn a_borrow_ends_at_once_outside_a_batch() {
        let lender = Arc::new(Recorder::default());
        drop(borrowed(&lender, 1, 3));
        assert_eq!(ended(&lender), [(1, 3)]);
    }

    #[test]
    fn ends_wait_for_the_outermost_batch_unless_taken() {
        let lender = Arc::new(Recorder::default());
        let me = Arc::as_ptr(&lender).cast::<()>();
        batching(|| {
            batching(|| drop(borrowed(&lender, 1, 3)));
            assert!(ended(&lender).is_empty(), "a nested scope joins the outer");
            drop(borrowed(&lender, 2, 4));
            drop(borrowed(&lender, 3, 3));
            let taken: Vec<u64> = take_held(me, 3).iter().map(|e| e.id.as_u64()).collect();
            assert_eq!(taken, [1, 3], "the ends of rank 3's borrows, in order");
            assert!(
                take_held(std::ptr::null(), 4).is_empty(),
                "another lender's"
            );
            assert!(ended(&lender).is_empty());
        });
        assert_eq!(
            ended(&lender),
            [(2, 4)],
            "what was not taken ends with the scope"
        );
    }
}
