//! Cache hints: memory another core wrote, brought into this core's cache
//! ahead of its use.

/// Asks the CPU to bring the `len` bytes from `start` into this core's
/// cache, a line at a time. A hint only: it never faults, whatever the
/// address (memory freed meanwhile included), and does nothing on targets
/// without one.
pub(crate) fn prefetch(start: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        const LINE: usize = 64;
        let mut off = 0;
        while off < len {
            // SAFETY: `_mm_prefetch` only hints the cache; it reads
            // nothing and never faults, so any address is sound.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    start.wrapping_add(off).cast::<i8>(),
                );
            }
            off += LINE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}

/// [`prefetch`]es the value an `Arc` (or `Weak`) points to at `data`,
/// with the two counts kept before it.
pub(crate) fn prefetch_arc<T>(data: *const T) {
    const COUNTS: usize = 2 * std::mem::size_of::<usize>();
    prefetch(
        data.cast::<u8>().wrapping_sub(COUNTS),
        std::mem::size_of::<T>() + COUNTS,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_address_is_only_a_hint() {
        let v = vec![7u8; 1000];
        prefetch(v.as_ptr(), v.len());
        prefetch(std::ptr::null(), 4096);
        prefetch(usize::MAX as *const u8, 128);
        let weak = std::sync::Weak::<[u64; 40]>::new();
        prefetch_arc(weak.as_ptr());
        let arc = std::sync::Arc::new([1u64; 40]);
        prefetch_arc(std::sync::Arc::as_ptr(&arc));
        assert_eq!(v[999], 7);
        assert_eq!(arc[39], 1);
    }
}
