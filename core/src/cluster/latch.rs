//! [`Latch`]: a count-down to one closure, for work that must wait for
//! several acks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// Counts down to running a closure once: used to send `Done` or `Free`
/// only after every borrow it depends on is acked.
pub(crate) struct Latch {
    remaining: AtomicUsize,
    then: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Latch {
    pub(super) fn new(count: usize, then: impl FnOnce() + Send + 'static) -> Arc<Latch> {
        Arc::new(Latch {
            remaining: AtomicUsize::new(count),
            then: Mutex::new(Some(Box::new(then))),
        })
    }

    pub(super) fn hit(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(f) = lock(&self.then).take()
        {
            f();
        }
    }
}
