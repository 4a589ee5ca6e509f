//! Objects: the per-object cell, typed refs, zero-copy views, the capture
//! of refs nested inside stored values, and the lender through which other
//! ranks' objects are borrowed.

pub(crate) mod cell;
pub(crate) mod codec;
pub(crate) mod exports;
pub(crate) mod lender;
pub(crate) mod mailbox;
pub(crate) mod object_ref;
pub(crate) mod ref_future;
pub(crate) mod store;
pub(crate) mod stream;
pub(crate) mod view;
pub(crate) mod waiters;
