//! Objects small enough to be kept in their handle instead of the arena.
//!
//! A task's result is usually a few numbers. In the arena each one cost an
//! allocation on the thread that made it and a free on the thread that
//! dropped the last ref (Task Bench's 2-rank stencil, `callgrind`: ~170
//! instructions to allocate a 16-byte vector's archive, ~90 to free it, and the
//! allocator's cache lines moved between the two threads' cores). An
//! archive of at most [`INLINE_MAX`] bytes is copied into the [`Sealed`]
//! handle itself instead, as Ray keeps small objects in the owner's own
//! memory rather than in its shared-memory store.
//!
//! What this changes for the layers above: an inline object has no place
//! in the arena, so it cannot be read in place by another process
//! ([`Sealed::lend`] refuses it); small objects cross ranks by value
//! anyway. It takes no arena space, is never spilled and needs no pin.
//!
//! [`Sealed`]: crate::Sealed
//! [`Sealed::lend`]: crate::Sealed::lend

use std::fmt;

/// The largest archive (in bytes) kept inline: with its length, one
/// 16-byte-aligned, 48-byte block (a 16-byte `Vec<u8>`'s archive fits; at
/// 31 bytes it did not).
pub const INLINE_MAX: usize = 47;

/// An archive of at most [`INLINE_MAX`] bytes, aligned as an archive must
/// be (16 bytes, like arena blocks).
#[derive(Clone)]
#[repr(C, align(16))]
pub(crate) struct Inline {
    bytes: [u8; INLINE_MAX],
    len: Len,
}

/// Writes `Len`, the lengths `0..=INLINE_MAX` as a `u8` enum: its other
/// values are free for the enums around [`Inline`] to tag themselves with
/// (`Sealed`'s, and the core's `Bytes`), so that a sealed object stays one
/// 48-byte block.
macro_rules! lengths {
    ($($name:ident = $n:literal),* $(,)?) => {
        #[derive(Clone, Copy)]
        #[repr(u8)]
        enum Len { $($name = $n),* }

        /// Every `Len`, indexed by its value.
        const LENS: [Len; INLINE_MAX + 1] = [$(Len::$name),*];
    };
}

lengths!(
    L0 = 0,
    L1 = 1,
    L2 = 2,
    L3 = 3,
    L4 = 4,
    L5 = 5,
    L6 = 6,
    L7 = 7,
    L8 = 8,
    L9 = 9,
    L10 = 10,
    L11 = 11,
    L12 = 12,
    L13 = 13,
    L14 = 14,
    L15 = 15,
    L16 = 16,
    L17 = 17,
    L18 = 18,
    L19 = 19,
    L20 = 20,
    L21 = 21,
    L22 = 22,
    L23 = 23,
    L24 = 24,
    L25 = 25,
    L26 = 26,
    L27 = 27,
    L28 = 28,
    L29 = 29,
    L30 = 30,
    L31 = 31,
    L32 = 32,
    L33 = 33,
    L34 = 34,
    L35 = 35,
    L36 = 36,
    L37 = 37,
    L38 = 38,
    L39 = 39,
    L40 = 40,
    L41 = 41,
    L42 = 42,
    L43 = 43,
    L44 = 44,
    L45 = 45,
    L46 = 46,
    L47 = 47,
);

const _: () = assert!(INLINE_MAX <= u8::MAX as usize);
const _: () = assert!(size_of::<Inline>() == 48);

impl Inline {
    /// `len` bytes that `fill` writes (all of them); `fill` back, unused,
    /// when `len` is over [`INLINE_MAX`].
    pub(crate) fn filled<E, F: FnOnce(&mut [u8]) -> Result<(), E>>(
        len: usize,
        fill: F,
    ) -> Result<Result<Inline, E>, F> {
        if len > INLINE_MAX {
            return Err(fill);
        }
        let mut inline = Inline {
            bytes: [0; INLINE_MAX],
            len: LENS[len],
        };
        Ok(fill(&mut inline.bytes[..len]).map(|()| inline))
    }

    /// A copy of `bytes`; `None` when they are over [`INLINE_MAX`].
    pub(crate) fn copy(bytes: &[u8]) -> Option<Inline> {
        let copied = Inline::filled(bytes.len(), |b| {
            b.copy_from_slice(bytes);
            Ok::<(), std::convert::Infallible>(())
        });
        match copied {
            Ok(Ok(inline)) => Some(inline),
            Ok(Err(never)) => match never {},
            Err(_) => None,
        }
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }
}

impl fmt::Debug for Inline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inline").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_aligned_as_an_archive_and_kept_whole() {
        let i = Inline::copy(&[7u8; INLINE_MAX]).expect("fits");
        assert_eq!(i.as_slice(), &[7u8; INLINE_MAX][..]);
        assert!((i.as_slice().as_ptr() as usize).is_multiple_of(16));
        let boxed = Box::new(Inline::copy(b"abc").expect("fits"));
        assert!((boxed.as_slice().as_ptr() as usize).is_multiple_of(16));
        assert_eq!(boxed.len(), 3);
    }

    #[test]
    fn enums_around_it_take_no_more_room() {
        assert_eq!(size_of::<Option<Option<Option<Inline>>>>(), 48);
        assert_eq!(size_of::<crate::Sealed>(), 48);
    }

    #[test]
    fn too_long_is_refused_and_a_failed_fill_is_returned() {
        assert!(Inline::copy(&[0u8; INLINE_MAX + 1]).is_none());
        let r = Inline::filled(4, |_| Err("no")).ok().expect("fits");
        assert_eq!(r.err(), Some("no"));
        assert!(Inline::filled(INLINE_MAX + 1, |_| Ok::<(), ()>(())).is_err());
        assert_eq!(Inline::copy(&[]).expect("fits").len(), 0);
    }
}
