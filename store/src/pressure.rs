//! What the store does when a block does not fit: spill idle objects to
//! disk (oldest use first), wait for space (backpressure) up to a
//! timeout, and when that runs out, say what holds the store.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::alloc::{Allocation, reserved_size};
use crate::arena::Shared;
use crate::checksum::checksum;
use crate::error::{HeldReport, StoreError};
use crate::fileio::{self, Buf, Op, Shape};
use crate::sealed::{Entry, OUT, Place};
use crate::spill_dir::SpillDir;

/// Longest a waiting put sleeps before it looks again (a safety net: frees
/// and unpins wake it at once).
const RECHECK: Duration = Duration::from_millis(50);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only bookkeeping runs under these locks; a poisoned one is whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every sealed object of a store, by index (a slab: an object's index is
/// reused after it is gone).
#[derive(Default)]
struct Registry {
    slots: Vec<Option<Weak<Entry>>>,
    free: Vec<usize>,
}

/// Counters of what was spilled and read back.
///
/// ```
/// let s = ferry_store::SpillStats::default();
/// assert_eq!(s.spilled_objects, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Objects written to disk so far.
    pub spilled_objects: u64,
    /// Arena bytes of those objects.
    pub spilled_bytes: u64,
    /// Objects read back so far.
    pub restored_objects: u64,
    /// Arena bytes of those objects.
    pub restored_bytes: u64,
    /// Of the spilled objects, those written with direct I/O.
    pub direct_objects: u64,
    /// Objects on disk now.
    pub on_disk_objects: u64,
    /// Their arena bytes.
    pub on_disk_bytes: u64,
    /// Allocations waiting for space now (puts, results arriving from
    /// other ranks, objects read back).
    pub waiting_puts: u64,
}

/// A store's pressure handling (one per arena).
pub(crate) struct Pressure {
    spill: Option<Arc<SpillDir>>,
    timeout: Duration,
    registry: Mutex<Registry>,
    /// Advances with every seal: the age of a use.
    pub(crate) clock: AtomicU64,
    /// One spiller at a time (the others wait, then find space).
    spilling: Mutex<()>,
    /// Puts waiting for space.
    waiting: AtomicUsize,
    /// Bumped (under the allocator lock) when space frees or an object
    /// becomes spillable while someone waits.
    generation: AtomicU64,
    /// Waited on with the allocator lock.
    pub(crate) space: Condvar,
    spilled_objects: AtomicU64,
    spilled_bytes: AtomicU64,
    restored_objects: AtomicU64,
    restored_bytes: AtomicU64,
    direct_objects: AtomicU64,
    on_disk_objects: AtomicU64,
    on_disk_bytes: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Pressure {
    pub(crate) fn new(spill: Option<Arc<SpillDir>>, timeout: Duration) -> Pressure {
        Pressure {
            spill,
            timeout,
            registry: Mutex::new(Registry::default()),
            clock: AtomicU64::new(0),
            spilling: Mutex::new(()),
            waiting: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            space: Condvar::new(),
            spilled_objects: AtomicU64::new(0),
            spilled_bytes: AtomicU64::new(0),
            restored_objects: AtomicU64::new(0),
            restored_bytes: AtomicU64::new(0),
            direct_objects: AtomicU64::new(0),
            on_disk_objects: AtomicU64::new(0),
            on_disk_bytes: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn spill_dir(&self) -> Option<&SpillDir> {
        self.spill.as_deref()
    }

    pub(crate) fn spill_path(&self) -> PathBuf {
        self.spill
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default()
    }

    pub(crate) fn register(&self, e: Weak<Entry>) -> usize {
        let mut r = lock(&self.registry);
        match r.free.pop() {
            Some(i) => {
                r.slots[i] = Some(e);
                i
            }
            None => {
                r.slots.push(Some(e));
                r.slots.len() - 1
            }
        }
    }

    pub(crate) fn unregister(&self, index: usize) {
        let mut r = lock(&self.registry);
        if let Some(slot) = r.slots.get_mut(index) {
            *slot = None;
            r.free.push(index);
        }
    }

    /// Every live object (strong handles: dropping one may free it, so do
    /// that without holding the registry).
    fn entries(&self) -> Vec<Arc<Entry>> {
        lock(&self.registry)
            .slots
            .iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .collect()
    }

    pub(crate) fn is_waited_on(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.space.notify_all();
    }

    pub(crate) fn note_restored(&self, bytes: usize) {
        self.restored_objects.fetch_add(1, Ordering::Relaxed);
        self.restored_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn note_gone_from_disk(&self, bytes: usize) {
        self.on_disk_objects.fetch_sub(1, Ordering::Relaxed);
        self.on_disk_bytes
            .fetch_sub(bytes as u64, Ordering::Relaxed);
    }

    fn note_spilled(&self, bytes: usize, direct: bool) {
        if direct {
            self.direct_objects.fetch_add(1, Ordering::Relaxed);
        }
        self.spilled_objects.fetch_add(1, Ordering::Relaxed);
        self.spilled_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.on_disk_objects.fetch_add(1, Ordering::Relaxed);
        self.on_disk_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> SpillStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SpillStats {
            spilled_objects: l(&self.spilled_objects),
            spilled_bytes: l(&self.spilled_bytes),
            restored_objects: l(&self.restored_objects),
            restored_bytes: l(&self.restored_bytes),
            direct_objects: l(&self.direct_objects),
            on_disk_objects: l(&self.on_disk_objects),
            on_disk_bytes: l(&self.on_disk_bytes),
            waiting_puts: self.waiting.load(Ordering::SeqCst) as u64,
        }
    }
}

thread_local! {
    static NEVER_WAIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Allocations on the calling thread never wait for space: they spill what
/// they can and fail at once if that is not enough. For threads whose
/// waiting could hold up what would free the space (the thread that
/// handles messages from other ranks: frees arrive as messages).
///
/// ```
/// ferry_store::never_wait_on_this_thread();
/// ```
pub fn never_wait_on_this_thread() {
    NEVER_WAIT.with(|w| w.set(true));
}

/// Runs `f` with allocations on the calling thread never waiting for space
/// (as [`never_wait_on_this_thread`]), and gives the thread its own way
/// back after (also when `f` panics): for a thread that handles messages
/// from other ranks now and then and runs tasks otherwise (a worker that
/// receives while it waits for work), whose tasks may wait.
///
/// ```
/// let seven = ferry_store::never_wait_while(|| 7);
/// assert_eq!(seven, 7);
/// ```
pub fn never_wait_while<R>(f: impl FnOnce() -> R) -> R {
    /// Puts back what the thread had.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = NEVER_WAIT.try_with(|w| w.set(self.0));
        }
    }
    let _restore = Restore(NEVER_WAIT.with(|w| w.replace(true)));
    f()
}

/// An allocation that did not fit at once: spill, wait, or say why not.
pub(crate) fn alloc_under_pressure(shared: &Shared, len: usize) -> Result<Allocation, StoreError> {
    let capacity = shared.segment.capacity();
    let full = || StoreError::Full {
        requested: len,
        used: shared.used(),
        capacity: shared.allocator().capacity(),
    };
    let p = &shared.pressure;
    // Larger than the whole store: no amount of waiting helps.
    if reserved_size(len).is_none_or(|size| size > capacity)
        || (p.spill.is_none() && p.timeout.is_zero())
    {
        return Err(full());
    }
    let timeout = if NEVER_WAIT.with(std::cell::Cell::get) {
        Duration::ZERO
    } else {
        p.timeout
    };
    let start = Instant::now();
    // A timeout past what an `Instant` holds (`Duration::MAX`) has no deadline.
    let deadline = start.checked_add(timeout);
    p.waiting.fetch_add(1, Ordering::SeqCst);
    struct Leave<'a>(&'a AtomicUsize);
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _leave = Leave(&p.waiting);
    loop {
        let generation = p.generation.load(Ordering::SeqCst);
        if p.spill.is_some() {
            spill_for(shared, len);
        }
        let mut a = shared.allocator();
        if let Some(x) = a.alloc(len) {
            return Ok(x);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            drop(a);
            return Err(StoreError::Held {
                requested: len,
                waited: now - start,
                held: Box::new(report(shared)),
            });
        }
        if p.generation.load(Ordering::SeqCst) == generation {
            let wait = deadline.map_or(RECHECK, |d| (d - now).min(RECHECK));
            drop(p.space.wait_timeout(a, wait));
        }
    }
}

/// Spills idle objects, oldest use first, until `need` bytes could fit (at
/// least a 32nd of the store at a time, so that a stream of puts does not
/// spill one object per put).
fn spill_for(shared: &Shared, need: usize) {
    let p = &shared.pressure;
    let Some(dir) = &p.spill else { return };
    let _one = lock(&p.spilling);
    let size = reserved_size(need).unwrap_or(usize::MAX);
    if shared.allocator().fits(need) {
        return; // someone else made room meanwhile
    }
    let target = size.max(shared.segment.capacity() / 32);
    let mut candidates: Vec<(u64, Arc<Entry>)> = p
        .entries()
        .into_iter()
        .filter(|e| e.len > 0 && e.state.load(Ordering::Relaxed) == 0)
        .map(|e| (e.last_use.load(Ordering::Relaxed), e))
        .collect();
    candidates.sort_unstable_by_key(|(t, _)| *t);
    let mut chosen = Vec::new();
    let mut freed = 0usize;
    for (_, e) in &candidates {
        if freed >= target {
            break;
        }
        let Some(place) = e.try_lock_place() else {
            continue;
        };
        if !matches!(&*place, Place::Arena(_))
            || e.state
                .compare_exchange(0, OUT, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        let Some(ext) = dir.extent(e.len, e.reserved) else {
            e.state.store(0, Ordering::Release);
            continue;
        };
        freed += e.reserved;
        chosen.push((e, place, ext));
    }
    if chosen.is_empty() {
        return;
    }
    for (_, _, ext) in &chosen {
        if ext.is_direct() {
            ext.preallocate();
        }
    }
    // Taken before the write, over the bytes written (the padding a direct
    // write adds is not the object's).
    let sums: Vec<u64> = chosen
        .iter()
        .map(|(_, place, _)| match &**place {
            Place::Arena(block) => checksum(block.as_slice()),
            Place::Disk { .. } => unreachable!("chosen objects are in the arena"),
        })
        .collect();
    let written = {
        let mut ops: Vec<Op<'_>> = chosen
            .iter()
            .map(|(_, place, ext)| {
                let Place::Arena(block) = &**place else {
                    unreachable!("chosen objects are in the arena")
                };
                let bytes = if ext.is_direct() {
                    block.reserved()
                } else {
                    block.as_slice()
                };
                Op {
                    file: ext.file(),
                    offset: ext.offset(),
                    buf: Buf::Write(bytes),
                }
            })
            .collect();
        let direct = chosen.iter().any(|(_, _, x)| x.is_direct());
        fileio::run_shaped(
            &mut ops,
            if direct {
                Shape::DIRECT
            } else {
                Shape::BUFFERED
            },
        )
    };
    match written {
        Ok(_) => {
            for ((e, mut place, ext), sum) in chosen.into_iter().zip(sums) {
                e.forget_data();
                p.note_spilled(e.reserved, ext.is_direct());
                // Frees the arena block.
                *place = Place::Disk { ext, sum };
            }
            *lock(&p.last_error) = None;
        }
        Err(err) => {
            let direct = chosen.iter().any(|(_, _, x)| x.is_direct());
            if direct && err.raw_os_error() == Some(libc::EINVAL) {
                // The next round writes through the page cache.
                dir.refuse_direct();
            } else {
                tracing::warn!("spilling to {} failed: {err}", dir.path().display());
                *lock(&p.last_error) = Some(err.to_string());
            }
            for (e, place, ext) in chosen {
                drop(ext);
                e.state.store(0, Ordering::Release);
                drop(place);
            }
            shared.space_changed();
        }
    }
}

/// What holds the store now.
pub(crate) fn report(shared: &Shared) -> HeldReport {
    let p = &shared.pressure;
    let largest_free = shared.allocator().largest_free();
    let used = shared.used();
    let mut held = HeldReport {
        capacity: shared.segment.capacity(),
        used,
        largest_free,
        spill_dir: p.spill.as_ref().map(|d| d.path().to_path_buf()),
        spill_error: lock(&p.last_error).clone(),
        ..HeldReport::default()
    };
    let mut sealed_resident = 0usize;
    for e in p.entries().into_iter().filter(|e| e.len > 0) {
        let s = e.state.load(Ordering::Relaxed);
        if s & OUT != 0 {
            held.spilled.add(e.reserved);
            continue;
        }
        sealed_resident += e.reserved;
        if e.lent.load(Ordering::Relaxed) {
            held.lent.add(e.reserved);
        } else if s > 0 {
            held.in_use.add(e.reserved);
        } else {
            held.idle.add(e.reserved);
        }
    }
    held.being_written = held.used.saturating_sub(sealed_resident);
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_waits() -> bool {
        NEVER_WAIT.with(std::cell::Cell::get)
    }

    #[test]
    fn a_thread_that_handled_a_message_waits_again_after() {
        std::thread::spawn(|| {
            assert!(!never_waits());
            assert!(never_wait_while(never_waits));
            assert!(!never_waits(), "the thread's own way back");
            // Also after a panic inside.
            let r = std::panic::catch_unwind(|| never_wait_while(|| panic!("boom")));
            assert!(r.is_err());
            assert!(!never_waits());
            // A thread that never waits keeps it.
            never_wait_on_this_thread();
            never_wait_while(|| ());
            assert!(never_waits());
        })
        .join()
        .unwrap();
    }
}
