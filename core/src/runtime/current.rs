//! The thread's current runtime: installed on every thread the runtime
//! starts (through the hooks the lower layers run as a thread starts and
//! stops), so that code on it reaches its rank's runtime.

use std::sync::{Arc, Weak};

use crate::runtime::Inner;
use crate::task::pool::ThreadHooks;

/// The hooks a worker thread of `inner`'s task pool runs: it serves
/// `inner` while it lives.
pub(crate) fn worker_hooks(inner: &Arc<Inner>) -> ThreadHooks {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    ThreadHooks {
        start: Box::new(move || crate::task::context::set_runtime(weak.upgrade())),
        stop: Box::new(|| crate::task::context::set_runtime(None)),
    }
}
