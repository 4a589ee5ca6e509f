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
