//! The local actor engine: mailbox, thread, restarts and checkpoints. It
//! reaches the runtime above only through [`host::ActorHost`].

pub(crate) mod async_serve;
pub(crate) mod checkpoint;
pub(crate) mod engine;
pub(crate) mod executor;
pub(crate) mod host;
pub(crate) mod names;
pub(crate) mod serve;
pub(crate) mod thread;
pub(crate) mod threaded;
