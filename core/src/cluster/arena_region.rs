//! A rank's arena, exposed to other ranks' one-sided reads.

use ferry_store::Arena;
use ferry_transport::Exposed;

/// An arena exposed to one-sided reads by other ranks.
pub(crate) struct ArenaRegion(pub(crate) Arena);

// SAFETY: the arena's mapping is fixed for its lifetime (`base_ptr` and
// `capacity` never change) and this value keeps the arena alive; other ranks
// only read sealed objects, which are never written again while a reader is
// told to read them (the executor keeps them until the owner's `Free`).
unsafe impl Exposed for ArenaRegion {
    fn base(&self) -> *const u8 {
        self.0.base_ptr()
    }

    fn len(&self) -> usize {
        self.0.capacity()
    }

    /// MPI did not start: the file goes now, not when the error has made
    /// its way out of `init` (by then the launcher may be killing this
    /// rank, as another rank has already exited).
    fn start_failed(&self) {
        if let Err(e) = self.0.unlink() {
            tracing::warn!("could not remove the store's file after MPI failed to start: {e}");
        }
    }
}
