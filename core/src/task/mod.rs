//! Tasks: the task cell, the scheduler and its workers, cancellation, and
//! what a running task knows about itself.

pub(crate) mod cancel;
pub(crate) mod cell;
pub(crate) mod context;
pub(crate) mod durations;
pub(crate) mod grace;
pub(crate) mod leftovers;
pub(crate) mod next;
pub(crate) mod pending;
pub(crate) mod pool;
pub(crate) mod receiving;
pub(crate) mod scheduler;
pub(crate) mod spent;
