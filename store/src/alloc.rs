//! Offset allocator over `[0, capacity)`: hands out non-overlapping ranges.
//!
//! Every range starts on a 16-byte boundary; ranges of 64 KiB or more start on
//! a 4 KiB page boundary and have a whole number of pages. The free space is
//! kept fully coalesced in two ordered maps (by `(size, offset)` for best fit,
//! by offset for merging neighbours), so a large range that is freed and asked
//! for again comes back at the same offset, on the same (hot) pages.
//!
//! Small ranges (up to [`QUICK_MAX`]) are additionally cached on exact-size
//! LIFO lists when freed, so the steady state of "alloc, free, alloc the same
//! size" costs a vector push/pop. The cache is bounded and is flushed back into
//! the coalesced maps whenever an allocation would otherwise fail.

use std::collections::{BTreeMap, BTreeSet};

/// Alignment of every range.
pub(crate) const ALIGN: usize = 16;
/// Ranges at least this long are page aligned.
pub(crate) const LARGE: usize = 64 * 1024;
/// Page size used for large ranges.
pub(crate) const PAGE: usize = 4096;
/// Largest size kept on the per-size quick lists.
const QUICK_MAX: usize = 4096;
/// Upper bound of bytes parked on the quick lists.
const QUICK_LIMIT: usize = 8 << 20;

/// A range handed out by [`OffsetAllocator::alloc`]. `size` is the rounded
/// size that was reserved (at least the requested length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allocation {
    pub(crate) offset: usize,
    pub(crate) size: usize,
}

/// Best-fit, coalescing offset allocator (see the module docs).
#[derive(Debug)]
pub(crate) struct OffsetAllocator {
    capacity: usize,
    used: usize,
    by_size: BTreeSet<(usize, usize)>,
    by_offset: BTreeMap<usize, usize>,
    /// `quick[size / ALIGN - 1]`: freed offsets of exactly that size.
    quick: Vec<Vec<usize>>,
    quick_bytes: usize,
}

const fn round_up(n: usize, align: usize) -> Option<usize> {
    match n.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// The size actually reserved for a request of `len` bytes, and its alignment.
fn size_class(len: usize) -> Option<(usize, usize)> {
    if len >= LARGE {
        Some((round_up(len, PAGE)?, PAGE))
    } else {
        Some((round_up(len.max(1), ALIGN)?, ALIGN))
    }
}

/// The bytes a request of `len` reserves (`None` on overflow).
pub(crate) fn reserved_size(len: usize) -> Option<usize> {
    size_class(len).map(|(size, _)| size)
}

impl OffsetAllocator {
    /// An allocator whose whole `[0, capacity)` range is free. `capacity` is
    /// rounded down to a multiple of [`ALIGN`].
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity & !(ALIGN - 1);
        let mut a = OffsetAllocator {
            capacity,
            used: 0,
            by_size: BTreeSet::new(),
            by_offset: BTreeMap::new(),
            quick: vec![Vec::new(); QUICK_MAX / ALIGN],
            quick_bytes: 0,
        };
        if capacity > 0 {
            a.insert_free(0, capacity);
        }
        a
    }

    /// Total managed bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes currently handed out (sum of the rounded sizes of live ranges).
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// The longest free range, counting the cached small ones as free only
    /// where they are (a quick check before an allocation that may fail).
    pub(crate) fn largest_free(&self) -> usize {
        let coalesced = self.by_size.iter().next_back().map_or(0, |&(s, _)| s);
        if self.quick_bytes > 0 {
            coalesced.max(QUICK_MAX)
        } else {
            coalesced
        }
    }

    /// Whether [`alloc`](Self::alloc) of `len` bytes would succeed now
    /// without flushing the cached small ranges: a free range long enough
    /// *after aligning its start*. A range as long as the request but not
    /// aligned does not hold it, so the longest free range alone is no
    /// answer (a spill that trusted it made no room, and puts waited until
    /// they timed out).
    pub(crate) fn fits(&self, len: usize) -> bool {
        let Some((size, align)) = size_class(len) else {
            return false;
        };
        if size <= QUICK_MAX && !self.quick[size / ALIGN - 1].is_empty() {
            return true;
        }
        self.by_size.range((size, 0)..).any(|&(bsize, boff)| {
            round_up(boff, align).is_some_and(|start| start - boff + size <= bsize)
        })
    }

    /// Reserves at least `len` bytes; `None` when no free range fits.
    pub(crate) fn alloc(&mut self, len: usize) -> Option<Allocation> {
        let (size, align) = size_class(len)?;
        if size <= QUICK_MAX
            && let Some(offset) = self.quick[size / ALIGN - 1].pop()
        {
            self.quick_bytes -= size;
            self.used += size;
            return Some(Allocation { offset, size });
        }
        let offset = match self.alloc_general(size, align) {
            Some(o) => o,
            None if self.quick_bytes > 0 => {
                self.flush_quick();
                self.alloc_general(size, align)?
            }
            None => return None,
        };
        self.used += size;
        Some(Allocation { offset, size })
    }

    /// Returns a range obtained from [`alloc`](Self::alloc) of this allocator.
    pub(crate) fn free(&mut self, a: Allocation) {
        debug_assert!(a.offset + a.size <= self.capacity);
        debug_assert!(self.used >= a.size);
        self.used -= a.size;
        if a.size <= QUICK_MAX && self.quick_bytes + a.size <= QUICK_LIMIT {
            self.quick[a.size / ALIGN - 1].push(a.offset);
            self.quick_bytes += a.size;
        } else {
            self.free_general(a.offset, a.size);
        }
    }

    fn insert_free(&mut self, offset: usize, size: usize) {
        self.by_size.insert((size, offset));
        self.by_offset.insert(offset, size);
    }

    fn remove_free(&mut self, offset: usize, size: usize) {
        self.by_size.remove(&(size, offset));
        self.by_offset.remove(&offset);
    }

    /// Best fit: the smallest free range that holds `size` bytes at `align`,
    /// lowest offset among equals.
    fn alloc_general(&mut self, size: usize, align: usize) -> Option<usize> {
        let (block_size, block_off, start) =
            self.by_size.range((size, 0)..).find_map(|&(bsize, boff)| {
                let start = round_up(boff, align)?;
                (start - boff + size <= bsize).then_some((bsize, boff, start))
            })?;
        self.remove_free(block_off, block_size);
        if start > block_off {
            self.insert_free(block_off, start - block_off);
        }
        let end = start + size;
        let block_end = block_off + block_size;
        if block_end > end {
            self.insert_free(end, block_end - end);
        }
        Some(start)
    }

    fn free_general(&mut self, mut offset: usize, mut size: usize) {
        if let Some((&prev_off, &prev_size)) = self.by_offset.range(..offset).next_back() {
            debug_assert!(prev_off + prev_size <= offset, "double free or overlap");
            if prev_off + prev_size == offset {
                self.remove_free(prev_off, prev_size);
                offset = prev_off;
                size += prev_size;
            }
        }
        if let Some((&next_off, &next_size)) = self.by_offset.range(offset + size..).next()
            && next_off == offset + size
        {
            self.remove_free(next_off, next_size);
            size += next_size;
        }
        debug_assert!(
            self.by_offset
                .range(offset..)
                .next()
                .is_none_or(|(&o, _)| o >= offset + size),
            "double free or overlap"
        );
        self.insert_free(offset, size);
    }

    /// Moves every cached small range back into the coalesced maps.
    fn flush_quick(&mut self) {
        let mut quick = std::mem::take(&mut self.quick);
        for (i, list) in quick.iter_mut().enumerate() {
            let size = (i + 1) * ALIGN;
            for offset in list.drain(..) {
                self.free_general(offset, size);
            }
        }
        self.quick = quick;
        self.quick_bytes = 0;
    }

    /// Checks the internal bookkeeping; panics on inconsistency.
    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.by_size.len(), self.by_offset.len());
        let mut free = 0;
        let mut prev_end = None;
        for (&off, &size) in &self.by_offset {
            assert!(self.by_size.contains(&(size, off)));
            assert!(size > 0 && off % ALIGN == 0 && size % ALIGN == 0);
            if let Some(end) = prev_end {
                assert!(off > end, "free ranges must be coalesced and disjoint");
            }
            prev_end = Some(off + size);
            free += size;
        }
        assert!(prev_end.is_none_or(|e| e <= self.capacity));
        let quick: usize = self
            .quick
            .iter()
            .enumerate()
            .map(|(i, l)| l.len() * (i + 1) * ALIGN)
            .sum();
        assert_eq!(quick, self.quick_bytes);
        assert_eq!(free + quick + self.used, self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_needs_an_aligned_range_not_just_a_long_one() {
        // One free range, exactly as long as a large request but starting
        // 16 bytes past a page: the request cannot start on a page in it.
        let cap = 4 * LARGE;
        let mut a = OffsetAllocator::new(cap);
        a.remove_free(0, cap);
        a.insert_free(ALIGN, LARGE);
        assert_eq!(a.largest_free(), LARGE);
        assert!(!a.fits(LARGE));
        assert!(a.alloc(LARGE).is_none(), "fits agrees with alloc");
        // One page less fits from the next page on.
        assert!(a.fits(LARGE - PAGE));
        assert!(a.alloc(LARGE - PAGE).is_some());
    }

    /// Small deterministic xorshift generator (no extra dependency).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn alignment_and_rounding() {
        let mut a = OffsetAllocator::new(1 << 20);
        let x = a.alloc(1).unwrap();
        assert_eq!((x.offset % ALIGN, x.size), (0, 16));
        let y = a.alloc(17).unwrap();
        assert_eq!((y.offset % ALIGN, y.size), (0, 32));
        let big = a.alloc(LARGE + 1).unwrap();
        assert_eq!(big.offset % PAGE, 0);
        assert_eq!(big.size, LARGE + PAGE);
        assert_eq!(a.used(), 16 + 32 + LARGE + PAGE);
        a.check_invariants();
        a.free(x);
        a.free(y);
        a.free(big);
        assert_eq!(a.used(), 0);
        a.check_invariants();
    }

    #[test]
    fn reuse_same_offset_small_and_large() {
        let mut a = OffsetAllocator::new(1 << 30);
        let keep = a.alloc(100).unwrap();
        for len in [24, 1000, 4096, 70_000, 1 << 20, 256 << 20] {
            let first = a.alloc(len).unwrap();
            a.free(first);
            for _ in 0..5 {
                let again = a.alloc(len).unwrap();
                assert_eq!(again, first, "len {len}");
                a.free(again);
            }
        }
        a.free(keep);
        a.check_invariants();
        // Everything coalesces back after a flush.
        a.flush_quick();
        assert_eq!(a.by_offset.len(), 1);
    }

    #[test]
    fn full_and_recovery_through_quick_lists() {
        let mut a = OffsetAllocator::new(64 * 1024);
        let mut blocks = Vec::new();
        while let Some(b) = a.alloc(1024) {
            blocks.push(b);
        }
        assert_eq!(blocks.len(), 64);
        assert_eq!(a.used(), a.capacity());
        assert!(a.alloc(16).is_none());
        for b in blocks.drain(..) {
            a.free(b); // all parked on the 1 KiB quick list
        }
        assert_eq!(a.used(), 0);
        // A request for the whole arena forces a flush and coalescing.
        let whole = a.alloc(64 * 1024).unwrap();
        assert_eq!(whole.offset, 0);
        assert!(a.alloc(1).is_none());
        a.check_invariants();
    }

    #[test]
    fn too_large_requests_fail_cleanly() {
        let mut a = OffsetAllocator::new(1 << 20);
        assert!(a.alloc((1 << 20) + 1).is_none());
        assert!(a.alloc(usize::MAX).is_none());
        assert!(a.alloc(usize::MAX - 5).is_none());
        assert_eq!(a.used(), 0);
        assert_eq!(OffsetAllocator::new(0).alloc(1), None);
    }

    #[test]
    fn random_sequences_never_overlap() {
        for seed in 1..=8u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let cap = 8 << 20;
            let mut a = OffsetAllocator::new(cap);
            let mut live: BTreeMap<usize, Allocation> = BTreeMap::new();
            let mut expected_used = 0;
            for step in 0..4000 {
                if live.is_empty() || rng.below(100) < 55 {
                    let len = match rng.below(10) {
                        0..=5 => rng.below(512) as usize,
                        6..=8 => rng.below(16 << 10) as usize,
                        _ => rng.below(1 << 20) as usize + LARGE,
                    };
                    match a.alloc(len) {
                        Some(b) => {
                            assert!(b.size >= len.max(1));
                            assert_eq!(b.offset % ALIGN, 0);
                            if len >= LARGE {
                                assert_eq!(b.offset % PAGE, 0);
                            }
                            assert!(b.offset + b.size <= cap);
                            if let Some((_, p)) = live.range(..=b.offset).next_back() {
                                assert!(p.offset + p.size <= b.offset, "overlap with prev");
                            }
                            if let Some((_, n)) = live.range(b.offset..).next() {
                                assert!(b.offset + b.size <= n.offset, "overlap with next");
                            }
                            live.insert(b.offset, b);
                            expected_used += b.size;
                        }
                        None => {
                            // Full must be honest: no free range could hold it.
                            let (size, _) = size_class(len).unwrap();
                            assert!(a.quick_bytes == 0 || size > QUICK_MAX);
                            assert!(a.by_size.range((size + PAGE, 0)..).next().is_none());
                        }
                    }
                } else {
                    let k = rng.below(live.len() as u64) as usize;
                    let off = *live.keys().nth(k).unwrap();
                    let b = live.remove(&off).unwrap();
                    a.free(b);
                    expected_used -= b.size;
                }
                assert_eq!(a.used(), expected_used);
                if step % 97 == 0 {
                    a.check_invariants();
                }
            }
            for (_, b) in std::mem::take(&mut live) {
                a.free(b);
            }
            assert_eq!(a.used(), 0);
            a.flush_quick();
            a.check_invariants();
            assert_eq!(a.by_offset.len(), 1, "everything coalesces back");
        }
    }
}
