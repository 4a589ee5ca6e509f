//! What a rank exposes for one-sided reads.

use std::fmt;
use std::sync::Arc;

use crate::{Rank, TransportError, rma};

/// Memory a rank exposes to [`Transport::read`](crate::Transport::read):
/// in the runtime, the rank's object arena.
///
/// # Safety
///
/// An implementor guarantees that
///
/// - [`base`](Exposed::base) returns the same pointer every time, and the
///   `len()` bytes from it stay mapped and readable (by this process and, for
///   MPI, by the MPI library) for as long as the value lives; they never move;
/// - [`len`](Exposed::len) returns the same value every time;
/// - nobody writes bytes that a reader is told to read while the read runs
///   (the runtime only reads sealed, immutable objects). Writing other bytes
///   of the region concurrently is allowed: the memory is treated like shared
///   memory written by another process, and a racing read returns
///   unspecified bytes.
pub unsafe trait Exposed: Send + Sync + 'static {
    /// Start of the exposed bytes.
    fn base(&self) -> *const u8;
    /// Number of exposed bytes.
    fn len(&self) -> usize;
    /// Whether nothing is exposed.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The transport could not start: let go of whatever names the memory
    /// is known by on this node (the runtime removes its arena's file), at
    /// once, before this rank or any other can end. By default nothing.
    fn start_failed(&self) {}
}

/// A rank's exposed memory, shared cheaply (`Clone` is an `Arc` clone).
#[derive(Clone)]
pub struct Region {
    inner: Arc<dyn Exposed>,
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region").field("len", &self.len()).finish()
    }
}

impl Region {
    /// Exposes `memory` (the runtime passes its arena here).
    pub fn new(memory: impl Exposed) -> Region {
        Region {
            inner: Arc::new(memory),
        }
    }

    /// Exposes an owned, immutable copy of `bytes` (tests, benchmarks).
    pub fn from_bytes(bytes: impl Into<Box<[u8]>>) -> Region {
        Region::new(rma::OwnedBytes::new(bytes.into()))
    }

    /// Exposes nothing: every read of this rank is out of bounds.
    pub fn empty() -> Region {
        Region::from_bytes(Vec::new())
    }

    /// Number of exposed bytes.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// See [`Exposed::start_failed`].
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn start_failed(&self) {
        self.inner.start_failed();
    }

    /// Whether nothing is exposed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `dst.len()` bytes at `offset` into `dst` (a local read; `rank`
    /// only names the owner in the error).
    ///
    /// # Errors
    ///
    /// [`TransportError::OutOfBounds`] when the range exceeds the region.
    pub fn read_local(
        &self,
        rank: Rank,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<(), TransportError> {
        self.check(rank, offset, dst.len())?;
        rma::copy_out(&*self.inner, offset, dst);
        Ok(())
    }

    /// Checks that `offset..offset + len` lies inside the region.
    pub(crate) fn check(
        &self,
        rank: Rank,
        offset: usize,
        len: usize,
    ) -> Result<(), TransportError> {
        let region_len = self.len();
        match offset.checked_add(len) {
            Some(end) if end <= region_len => Ok(()),
            _ => Err(TransportError::OutOfBounds {
                rank,
                offset,
                len,
                region_len,
            }),
        }
    }

    /// The underlying memory (the RMA window is created over it).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn exposed(&self) -> &dyn Exposed {
        &*self.inner
    }
}
