//! The dependent a completion keeps for the completing thread (the `NEXT`
//! slot): see the scheduler's "Running dependents on the completing
//! thread".
//!
//! While a thread completes a task's output, its slot is open for that
//! task's scheduler; the first dependent the completion makes ready (of the
//! same scheduler) is put there instead of being granted and queued, and
//! the thread runs it next. An idle worker's receive from other ranks
//! opens it too, for the first task what it receives makes ready. A
//! completion inside another's (a task that ran a producer inline from
//! `get`) opens its own slot and gives the outer one back when it ends,
//! even on a panic.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

/// What a slot holds: a task's cell (kept as `Any` so that this module
/// names no other of the task layer).
type Kept = Arc<dyn Any + Send + Sync>;

thread_local! {
    /// Open while this thread completes a task's output (or, an idle
    /// worker, receives from other ranks).
    static NEXT: RefCell<Option<NextSlot>> = const { RefCell::new(None) };
}

/// An open slot: whose scheduler it keeps for (its key), and what it holds.
struct NextSlot {
    key: usize,
    cell: Option<Kept>,
}

/// Restores the slot that was open before, even on a panic.
struct NextGuard {
    outer: Option<NextSlot>,
}

impl Drop for NextGuard {
    fn drop(&mut self) {
        let outer = self.outer.take();
        let _ = NEXT.try_with(|n| n.replace(outer));
    }
}

/// Runs `complete` with this thread's slot open for the scheduler `key`,
/// and returns the dependent it kept.
pub(crate) fn complete_keeping<T: Any + Send + Sync>(
    key: usize,
    complete: impl FnOnce(),
) -> Option<Arc<T>> {
    let open = NextSlot { key, cell: None };
    let guard = NextGuard {
        outer: NEXT.with(|n| n.replace(Some(open))),
    };
    complete();
    let kept = NEXT.with(|n| n.borrow_mut().as_mut().and_then(|s| s.cell.take()));
    drop(guard);
    // Only `keep::<T>` fills a slot of this key: the downcast holds.
    kept.and_then(|k| k.downcast::<T>().ok())
}

/// Keeps `cell` in this thread's slot, if one is open for the scheduler
/// `key` and empty; gives it back otherwise.
pub(crate) fn keep<T: Any + Send + Sync>(key: usize, cell: Arc<T>) -> Option<Arc<T>> {
    NEXT.with(|n| match &mut *n.borrow_mut() {
        Some(slot) if slot.key == key && slot.cell.is_none() => {
            slot.cell = Some(cell);
            None
        }
        _ => Some(cell),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_open_slot_of_the_same_key_keeps_and_only_once() {
        // No slot open: given back.
        assert!(keep(1, Arc::new(10u32)).is_some());
        let kept = complete_keeping::<u32>(1, || {
            assert!(keep(2, Arc::new(20u32)).is_some(), "another scheduler's");
            assert!(keep(1, Arc::new(11u32)).is_none());
            assert!(keep(1, Arc::new(12u32)).is_some(), "the slot is full");
        });
        assert_eq!(kept.as_deref(), Some(&11));
        // Closed again.
        assert!(keep(1, Arc::new(13u32)).is_some());
    }

    #[test]
    fn an_inner_completion_has_its_own_slot_and_gives_the_outer_back() {
        let outer = complete_keeping::<u32>(1, || {
            let inner = complete_keeping::<u32>(1, || {
                assert!(keep(1, Arc::new(2u32)).is_none());
            });
            assert_eq!(inner.as_deref(), Some(&2));
            assert!(
                keep(1, Arc::new(1u32)).is_none(),
                "the outer slot is open again"
            );
        });
        assert_eq!(outer.as_deref(), Some(&1));
    }

    #[test]
    fn a_panicking_completion_closes_its_slot() {
        let r = std::panic::catch_unwind(|| {
            complete_keeping::<u32>(1, || panic!("boom"));
        });
        assert!(r.is_err());
        assert!(keep(1, Arc::new(3u32)).is_some(), "no slot left open");
    }
}
