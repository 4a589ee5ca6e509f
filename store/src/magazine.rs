//! A thread's cache of small free ranges of each arena it uses: the
//! allocator's lock taken once per [`BATCH`] small blocks, not once per
//! block.
//!
//! A task's result is usually small and is made on one thread (a worker)
//! and freed on another (its submitter, once nothing refers to it). Taken
//! from the allocator one at a time, every block moved the allocator's lock
//! and state between the two threads' cores twice. Here each thread keeps,
//! per arena and per size (16 to [`MAX_SIZE`] bytes), a short list of free
//! ranges: an allocation takes one (refilling [`BATCH`] at a time under the
//! lock when the list is empty) and a free puts one back (returning
//! [`BATCH`] under the lock when the list is full).
//!
//! Measured on the 2-core VM (Task Bench's stencil, 1 rank, 20,000-step
//! runs taking turns, paired medians): in the spells when work crossing
//! between its two cores costs more (a task's runtime steps there take
//! about twice the cycles, its kernel the same), a task at `-iter 64`
//! 1.82 -> 1.67 µs (ratio 0.91, quartiles 0.89-0.93), `-iter 128` 0.93,
//! `-iter 0` 0.95; in the quieter spells within ±2%.
//!
//! Cached ranges are free: [`Caches::bytes`] counts them (every thread
//! publishes its own count, on a line no other thread writes) so that
//! `Arena::used` does not see them. A thread gives its ranges back when it
//! exits, when an allocation of its own finds no room, and when a put is
//! waiting for space; at most `CLASSES × KEEP` ranges (a few KiB) per thread
//! and arena stay cached otherwise.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::alloc::{ALIGN, Allocation, OffsetAllocator};

/// What a thread caches ranges of: an arena's allocator, its id and its
/// threads' counts (the arena's shared state implements it).
pub(crate) trait Ranges: Send + Sync + 'static {
    /// Unique among arenas ([`next_id`]).
    fn id(&self) -> u64;
    /// Every thread's cached bytes of this arena.
    fn caches(&self) -> &Caches;
    /// The allocator, locked.
    fn allocator(&self) -> MutexGuard<'_, OffsetAllocator>;
}

/// The largest range (in bytes, after rounding) a thread caches.
pub(crate) const MAX_SIZE: usize = 64;

/// How many sizes are cached: 16, 32, 48, 64 bytes.
const CLASSES: usize = MAX_SIZE / ALIGN;

/// Most ranges of one size a thread keeps.
const KEEP: usize = 32;

/// How many ranges a refill takes from, and a full list gives back to, the
/// allocator at once.
const BATCH: usize = 16;

/// A refill takes a whole batch only while at least this share (1/N) of the
/// arena is free: a nearly full store is not held in other threads' caches.
const ROOMY: usize = 8;

/// A unique id for each arena, for finding its magazine (an address may be
/// reused by a later arena).
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The bytes one thread keeps cached for one arena: written by that thread
/// only, on a line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Held(AtomicUsize);

/// Every thread's cached bytes of one arena (kept by the arena).
#[derive(Default)]
pub(crate) struct Caches {
    held: Mutex<Vec<Arc<Held>>>,
}

impl Caches {
    /// Free bytes the threads' caches hold now.
    pub(crate) fn bytes(&self) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.iter().map(|h| h.0.load(Ordering::Relaxed)).sum()
    }

    fn register(&self) -> Arc<Held> {
        let h = Arc::new(Held::default());
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(h.clone());
        h
    }

    fn unregister(&self, h: &Arc<Held>) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|x| !Arc::ptr_eq(x, h));
    }
}

/// One thread's cache for one arena.
struct Magazine {
    id: u64,
    arena: Weak<dyn Ranges>,
    held: Arc<Held>,
    /// Bytes in `free` (published in `held`).
    bytes: usize,
    /// `free[size / ALIGN - 1]`: offsets of free ranges of that size.
    free: [Vec<usize>; CLASSES],
}

impl Magazine {
    fn new<S: Ranges>(shared: &Arc<S>) -> Magazine {
        let arena: Weak<dyn Ranges> = Arc::downgrade(shared) as Weak<dyn Ranges>;
        Magazine {
            id: shared.id(),
            arena,
            held: shared.caches().register(),
            bytes: 0,
            free: Default::default(),
        }
    }

    fn publish(&mut self, bytes: usize) {
        self.bytes = bytes;
        self.held.0.store(bytes, Ordering::Relaxed);
    }

    /// Gives every cached range back to `shared`'s allocator.
    fn flush(&mut self, shared: &dyn Ranges) {
        if self.bytes == 0 {
            return;
        }
        let mut alloc = shared.allocator();
        for (class, list) in self.free.iter_mut().enumerate() {
            let size = (class + 1) * ALIGN;
            for offset in list.drain(..) {
                alloc.free(Allocation { offset, size });
            }
        }
        drop(alloc);
        self.publish(0);
    }
}

/// A thread's magazines, given back when the thread exits.
#[derive(Default)]
struct Magazines(Vec<Magazine>);

impl Drop for Magazines {
    fn drop(&mut self) {
        for m in &mut self.0 {
            if let Some(shared) = m.arena.upgrade() {
                m.flush(&*shared);
                shared.caches().unregister(&m.held);
            }
        }
    }
}

thread_local! {
    static MAGAZINES: RefCell<Magazines> = RefCell::new(Magazines::default());
}

/// Runs `f` on this thread's magazine for `shared` (made if need be);
/// `None` while the thread is exiting.
fn with_magazine<S: Ranges, R>(shared: &Arc<S>, f: impl FnOnce(&mut Magazine) -> R) -> Option<R> {
    MAGAZINES
        .try_with(|m| {
            let mut mags = m.try_borrow_mut().ok()?;
            let id = shared.id();
            let i = match mags.0.iter().position(|m| m.id == id) {
                Some(i) => i,
                None => {
                    // Arenas gone since: their ranges went with them.
                    mags.0.retain(|m| m.arena.strong_count() > 0);
                    mags.0.push(Magazine::new(shared));
                    mags.0.len() - 1
                }
            };
            Some(f(&mut mags.0[i]))
        })
        .ok()
        .flatten()
}

/// The class of a rounded `size`, if this cache takes it.
fn class_of(size: usize) -> Option<usize> {
    (size > 0 && size <= MAX_SIZE && size.is_multiple_of(ALIGN)).then(|| size / ALIGN - 1)
}

/// A free range of exactly `size` bytes (a rounded size, see
/// `alloc::reserved_size`) from this thread's cache, refilled from the
/// allocator if empty; `None` when the size is not cached or the allocator
/// has no room.
pub(crate) fn alloc<S: Ranges>(shared: &Arc<S>, size: usize) -> Option<Allocation> {
    let class = class_of(size)?;
    with_magazine(shared, |m| {
        if m.free[class].is_empty() {
            let mut alloc = shared.allocator();
            let roomy = alloc.capacity() - alloc.used() >= alloc.capacity() / ROOMY;
            let want = if roomy { BATCH } else { 1 };
            let mut took = 0;
            while took < want {
                let Some(a) = alloc.alloc(size) else { break };
                debug_assert_eq!(a.size, size);
                m.free[class].push(a.offset);
                took += 1;
            }
            drop(alloc);
            m.publish(m.bytes + took * size);
        }
        let offset = m.free[class].pop()?;
        m.publish(m.bytes - size);
        Some(Allocation { offset, size })
    })
    .flatten()
}

/// Keeps the freed range `a` in this thread's cache (giving a batch back
/// when its list is full); false when it is not cached (too large, or the
/// thread is exiting): the caller frees it.
pub(crate) fn free<S: Ranges>(shared: &Arc<S>, a: Allocation) -> bool {
    let Some(class) = class_of(a.size) else {
        return false;
    };
    with_magazine(shared, |m| {
        m.free[class].push(a.offset);
        let mut bytes = m.bytes + a.size;
        if m.free[class].len() > KEEP {
            let mut alloc = shared.allocator();
            for _ in 0..BATCH {
                if let Some(offset) = m.free[class].pop() {
                    alloc.free(Allocation {
                        offset,
                        size: a.size,
                    });
                    bytes -= a.size;
                }
            }
        }
        m.publish(bytes);
    })
    .is_some()
}

/// Gives this thread's cached ranges of `shared` back to its allocator.
pub(crate) fn flush(shared: &dyn Ranges) {
    let _ = MAGAZINES.try_with(|m| {
        if let Ok(mut mags) = m.try_borrow_mut()
            && let Some(mag) = mags.0.iter_mut().find(|m| m.id == shared.id())
        {
            mag.flush(shared);
        }
    });
}

#[cfg(test)]
mod tests {
    use crate::{Arena, StoreConfig};

    /// An arena whose threads cache small ranges or not (by default that
    /// follows the CPUs this process may run on).
    fn arena_caching(name: &str, capacity: usize, cache: bool) -> Arena {
        let mut cfg = StoreConfig::new(format!("mag-{name}-{}", std::process::id()), 0, capacity);
        cfg.dir = std::env::temp_dir();
        let mut a = Arena::create(&cfg).unwrap();
        std::sync::Arc::get_mut(&mut a.shared)
            .expect("a new arena has one handle")
            .cache_small = cache;
        a
    }

    fn arena(name: &str, capacity: usize) -> Arena {
        arena_caching(name, capacity, true)
    }

    #[test]
    fn without_the_cache_every_block_goes_back_at_once() {
        let a = arena_caching("off", 1 << 20, false);
        let b = a.alloc(20).unwrap();
        assert_eq!((a.used(), reserved(&a)), (32, 32));
        drop(b);
        assert_eq!((a.used(), reserved(&a)), (0, 0));
    }

    /// Bytes the allocator itself counts as handed out (live or cached).
    fn reserved(a: &Arena) -> usize {
        a.shared.allocator().used()
    }

    #[test]
    fn a_freed_small_block_is_reused_and_used_stays_exact() {
        let a = arena("reuse", 1 << 20);
        let b = a.alloc(20).unwrap().freeze();
        let at = b.offset();
        assert_eq!(a.used(), 32);
        assert!(reserved(&a) > 32, "a batch was taken for this thread");
        drop(b);
        assert_eq!(a.used(), 0, "a cached range is free");
        let again = a.alloc(32).unwrap();
        assert_eq!(again.offset(), at, "the range just freed comes back first");
        drop(again);
        // Larger blocks are not cached.
        let big = a.alloc(65).unwrap();
        assert_eq!(a.used(), 80);
        drop(big);
        assert_eq!(a.used(), 0);
    }

    #[test]
    fn a_thread_gives_its_ranges_back_when_it_exits() {
        let a = arena("exit", 1 << 20);
        let blocks: Vec<_> = (0..40).map(|_| a.alloc(16).unwrap().freeze()).collect();
        let a2 = a.clone();
        std::thread::spawn(move || {
            // Freed here: kept in this thread's cache, partly given back.
            drop(blocks);
            assert_eq!(a2.used(), 0);
            assert!(reserved(&a2) > 0);
        })
        .join()
        .unwrap();
        // The other thread's cache is back; this thread's own remains.
        assert_eq!(a.used(), 0);
        super::flush(&*a.shared);
        assert_eq!(reserved(&a), 0, "nothing is held once both caches are back");
    }

    #[test]
    fn a_full_arena_takes_back_this_thread_s_cache_before_failing() {
        let cap = 64 << 10;
        let a = arena("full", cap);
        // Fill the arena with small blocks, free them into this thread's
        // cache, then ask for one block as large as the whole arena.
        let mut small = Vec::new();
        while let Ok(b) = a.alloc_now(64) {
            small.push(b);
        }
        assert_eq!(a.used(), cap);
        drop(small);
        assert_eq!(a.used(), 0);
        let whole = a.alloc_now(cap).expect("the cached ranges were given back");
        assert_eq!(whole.len(), cap);
    }
}
