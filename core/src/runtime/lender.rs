//! The runtime as the object layer's [`Lender`]: borrowed objects are
//! fetched, released and looked up through the cluster's borrow protocol;
//! and the finder that gives the object layer the calling thread's lender
//! (its current runtime).

use std::sync::Arc;

use crate::error::Result;
use crate::ids::ObjectId;
use crate::object::cell::{Borrow, Slot};
use crate::object::lender::{self, Lender};
use crate::runtime::Inner;

impl Lender for Inner {
    fn fetch(self: Arc<Self>, slot: &Slot, borrow: &Borrow) {
        crate::cluster::fetch(&self, slot, borrow);
    }

    fn unborrow(self: Arc<Self>, id: ObjectId, owner: u32) {
        crate::cluster::unborrow(&self, id, owner);
    }

    fn lookup(self: Arc<Self>, id: ObjectId) -> Result<Arc<Slot>> {
        crate::cluster::lookup(&self, id)
    }
}

/// The calling thread's runtime, as a lender.
fn thread_lender() -> Option<Arc<dyn Lender>> {
    crate::runtime::current::runtime_inner().map(|inner| inner as Arc<dyn Lender>)
}

/// Tells the object layer how to find a thread's lender (once per process;
/// called as a runtime starts, before any of its threads runs).
pub(crate) fn install() {
    lender::install(thread_lender);
}
