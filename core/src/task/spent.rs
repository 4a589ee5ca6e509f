//! An emptied vector's memory, freed later by the thread that allocated it.
//!
//! A list argument's vector is allocated by the thread that submits the
//! task and emptied by the worker that resolves it. Freed there, each one
//! went to the worker's cache of free blocks, filled it with blocks of
//! another thread, and pushed the worker's own frees of that size to
//! glibc's slow path (on the 2-core VM, Task Bench's stencil on one rank:
//! ~40 ns of a task's ~0.7 µs of overhead). So the worker hands the
//! memory back with the task's remains (see `task::leftovers`).

use std::alloc::Layout;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

/// The memory of an emptied `Vec`, its type forgotten: dropping it frees
/// the memory.
pub(crate) struct Spent {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a `Spent` owns memory with no value in it, which any thread may
// free.
unsafe impl Send for Spent {}

impl Spent {
    /// The memory of `v`, emptied first (its values dropped here); `None`
    /// when it has none (then `v` is dropped as usual).
    pub(crate) fn of<T>(mut v: Vec<T>) -> Option<Spent> {
        v.clear();
        let layout = Layout::array::<T>(v.capacity()).ok()?;
        if layout.size() == 0 {
            return None;
        }
        let mut v = ManuallyDrop::new(v);
        // A vector with memory has a non-null pointer.
        let ptr = NonNull::new(v.as_mut_ptr().cast::<u8>())?;
        Some(Spent { ptr, layout })
    }
}

impl Drop for Spent {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the memory of a `Vec<T>` of `layout`'s capacity,
        // allocated by the global allocator with `Layout::array::<T>` of it
        // (as `Vec` does), holding no value, and owned by `self` alone
        // since `of` forgot the vector.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn the_values_are_dropped_at_once_and_the_memory_later() {
        let counted = Rc::new(());
        let v = vec![counted.clone(), counted.clone(), counted.clone()];
        let spent = Spent::of(v).expect("a vector with memory");
        assert_eq!(Rc::strong_count(&counted), 1);
        drop(spent);
        let mut room: Vec<u64> = Vec::with_capacity(100);
        room.push(7);
        let spent = Spent::of(room).expect("a vector with memory");
        std::thread::spawn(move || drop(spent)).join().unwrap();
    }

    #[test]
    fn a_vector_without_memory_gives_none() {
        assert!(Spent::of(Vec::<u64>::new()).is_none());
        assert!(Spent::of(vec![(); 10]).is_none());
    }
}
