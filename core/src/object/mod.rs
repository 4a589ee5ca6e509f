//! Objects: the per-object cell, typed refs, zero-copy views, and the
//! capture of refs nested inside stored values.

pub(crate) mod cell;
pub(crate) mod codec;
pub(crate) mod exports;
pub(crate) mod object_ref;
pub(crate) mod view;
