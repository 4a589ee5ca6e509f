//! Cancellation (Ray's `ray.cancel`): a flag per task that its body can
//! check, and the tasks it submitted, for a recursive cancel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::object::cell::Producer;
use crate::sync::lock;

/// What a running body reads its cancellation from: its task's cell, which
/// keeps the [`Cancel`] inline (one allocation fewer per task).
pub(crate) trait Cancellable: Send + Sync {
    fn cancel_state(&self) -> &Cancel;
}

/// One task's cancellation state.
#[derive(Default)]
pub(crate) struct Cancel {
    flag: AtomicBool,
    /// Tasks submitted while this one ran (weakly: finished ones go away).
    children: Mutex<Vec<Weak<dyn Producer>>>,
}

impl Cancel {
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Sets the flag; the children to cancel too (when `recursive`), each
    /// once.
    pub(crate) fn set(&self, recursive: bool) -> Vec<Arc<dyn Producer>> {
        self.flag.store(true, Ordering::Release);
        if !recursive {
            return Vec::new();
        }
        let children = std::mem::take(&mut *lock(&self.children));
        children.iter().filter_map(Weak::upgrade).collect()
    }

    /// `child` was submitted by the task this belongs to; false when this
    /// one is cancelled already (the caller cancels the child).
    pub(crate) fn adopt(&self, child: Weak<dyn Producer>) -> bool {
        let mut c = lock(&self.children);
        if self.is_set() {
            return false;
        }
        // Keep the list from growing with finished children.
        if c.len() >= 64 && c.len().is_power_of_two() {
            c.retain(|w| w.strong_count() > 0);
        }
        c.push(child);
        true
    }
}
