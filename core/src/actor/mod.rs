//! The local actor engine: mailbox, thread, restarts and checkpoints.

pub(crate) mod checkpoint;
pub(crate) mod engine;
