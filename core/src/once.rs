//! [`SetOnce`]: a value written at most once and read without a lock.
//!
//! What `std::sync::OnceLock` is for a value that is only ever *set* (never
//! computed by a closure that others wait for), at a fraction of its cost:
//! setting one is a compare-and-swap and a release store, where
//! `OnceLock::set` goes through `Once`'s general machinery (`callgrind`,
//! Task Bench's 1-rank stencil: completing a task's output took 441
//! instructions with `OnceLock`, 324 with this). Every object's slot is set
//! once when its task completes, and its export mark once when the object is
//! first sent to another rank, so this is on every task's path.
//!
//! Unlike `OnceLock::set`, a [`set`](SetOnce::set) that meets another in
//! progress does not wait for it: it fails at once (the other one wins), and
//! [`get`](SetOnce::get) sees nothing until the winner has finished
//! writing.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const SET: u8 = 2;

/// A cell set at most once, by any thread, and read by any thread once set
/// (see the tests below for its use).
pub(crate) struct SetOnce<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, by the one thread that moved `state`
// from EMPTY to WRITING, before the release store of SET; it is read only
// through `get`, after an acquire load that saw SET, and never written
// again (only dropped, through `&mut self`). So sharing a `SetOnce<T>`
// shares `&T` between threads (T: Sync) and may move a T to another
// thread (the setter's value, dropped by whoever drops the cell: T: Send).
unsafe impl<T: Send + Sync> Sync for SetOnce<T> {}
// SAFETY: a `SetOnce<T>` owns at most one T.
unsafe impl<T: Send> Send for SetOnce<T> {}

impl<T> SetOnce<T> {
    /// An empty cell.
    pub(crate) const fn new() -> SetOnce<T> {
        SetOnce {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Sets the value if nobody has (or is setting it); else gives `value`
    /// back.
    pub(crate) fn set(&self, value: T) -> Result<(), T> {
        if self
            .state
            .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(value);
        }
        // SAFETY: the compare-and-swap above succeeded for this thread
        // alone, and no reader looks at the value before SET is stored.
        unsafe { (*self.value.get()).write(value) };
        self.state.store(SET, Ordering::Release);
        Ok(())
    }

    /// The value, once set.
    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == SET {
            // SAFETY: SET is stored (release) only after the value was
            // written, and the value is never written again while `self`
            // is shared.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }
}

impl<T> Drop for SetOnce<T> {
    fn drop(&mut self) {
        if *self.state.get_mut() == SET {
            // SAFETY: SET means the value was written, and `&mut self`
            // means nobody reads it any more.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn the_first_set_wins_and_later_ones_get_their_value_back() {
        let cell = SetOnce::new();
        assert!(cell.get().is_none());
        assert!(cell.set(String::from("first")).is_ok());
        assert_eq!(
            cell.set(String::from("second")),
            Err(String::from("second"))
        );
        assert_eq!(cell.get().map(String::as_str), Some("first"));
    }

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_set_value_is_dropped_once_with_the_cell_and_an_empty_cell_drops_nothing() {
        let drops = Arc::new(AtomicUsize::new(0));
        drop(SetOnce::<Counted>::new());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        let cell = SetOnce::new();
        assert!(cell.set(Counted(drops.clone())).is_ok());
        let refused = cell.set(Counted(drops.clone()));
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(refused);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the refused value");
        drop(cell);
        assert_eq!(drops.load(Ordering::SeqCst), 2, "the set value, once");
    }

    #[test]
    fn of_many_threads_setting_at_once_exactly_one_wins_and_all_see_its_value() {
        for _ in 0..200 {
            let cell = Arc::new(SetOnce::new());
            let start = Arc::new(std::sync::Barrier::new(4));
            let threads: Vec<_> = (0..4)
                .map(|i| {
                    let (cell, start) = (cell.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let won = cell.set(vec![i; 8]).is_ok();
                        // Whoever won, a value seen is whole.
                        if let Some(v) = cell.get() {
                            assert!(v.iter().all(|&x| x == v[0]));
                        }
                        won
                    })
                })
                .collect();
            let wins = threads
                .into_iter()
                .map(|t| t.join().expect("no panic"))
                .filter(|&w| w)
                .count();
            assert_eq!(wins, 1);
            let v = cell.get().expect("set by the winner");
            assert_eq!(v.len(), 8);
        }
    }
}
