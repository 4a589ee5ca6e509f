//! Ferry's object store: a per-rank shared-memory arena and rkyv helpers.
//!
//! - [`Segment`] / [`open_readonly`]: the shared-memory file and its mapping
//!   (the only `mmap` code), its pages reserved so that a full `/dev/shm` is
//!   an error, never a `SIGBUS`.
//! - [`Arena`]: the segment carved into [`BlockMut`] / [`Block`] ranges by a
//!   best-fit offset allocator, small ranges cached per thread (a block
//!   made on one thread and freed on another moves the allocator's lock
//!   between their cores once a batch, not twice a block).
//! - [`put`], [`access`], [`deserialize`], [`put_pod_slice_with`],
//!   [`as_native_slice`]: rkyv archives written straight into the arena and
//!   read in place.
//! - [`Sealed`] / [`Pinned`]: sealed objects the store spills to disk while
//!   nobody pins them, and reads back (checked against a checksum) on the
//!   next pin; those of at most [`INLINE_MAX`] bytes kept in the handle
//!   instead of the arena ([`put_sealed`], [`Arena::seal_filled`]).
//! - [`PrivateDir`]: the user's private directory (0700, checked to be
//!   the user's own), where spill files and checkpoints go by default.
//! - [`StoreError`]: everything that can fail.

mod alloc;
mod archive;
mod arena;
mod checksum;
mod error;
mod fileio;
mod inline;
mod liveness;
mod magazine;
mod pressure;
mod private_dir;
mod sealed;
mod segment;
mod spill_dir;

pub use archive::{
    ArchiveError, PodElement, SliceWriter, Storable, StoreSerializer, StoreValidator, access,
    access_unchecked, archived_len, deserialize, is_plain_vec, put, put_sealed, serialize_into,
    to_aligned_vec,
};
#[cfg(target_endian = "little")]
pub use archive::{as_native_slice, put_pod_slice_with, try_put_pod_slice_with};
pub use arena::{Arena, Block, BlockMut, StoreConfig, default_capacity};
pub use error::{Count, HeldReport, StoreError};
pub use fileio::{IoPath, read_exact_at, write_all_at};
pub use inline::INLINE_MAX;
pub use liveness::{clean, clean_spill};
pub use pressure::{SpillStats, never_wait_on_this_thread, never_wait_while};
pub use private_dir::{PrivateDir, PrivateDirError, Problem, default_spill_root};
pub use sealed::{Pinned, SPILL_MIN, Sealed};
pub use segment::{
    DEFAULT_SHM_DIR, RESERVE_STEP, ReadOnlySegment, Segment, SharedSegment, free_space,
    open_readonly, open_shared, ring_path,
};
