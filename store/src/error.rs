//! The single error type of the object store.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in the object store.
///
/// Messages are meant to be shown to a user as they are, e.g.
///
/// ```
/// use ferry_store::StoreError;
///
/// let e = StoreError::Full { requested: 2 << 30, used: 3 << 29, capacity: 3 << 30 };
/// assert_eq!(
///     e.to_string(),
///     "object store full: asked for 2.0 GiB, 1.5 GiB of 3.0 GiB in use"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A system call on the shared-memory file failed.
    #[error("object store I/O error on {}: {source}", .path.display())]
    Io {
        /// The file (or directory) the call was about.
        path: PathBuf,
        /// The underlying operating-system error.
        source: std::io::Error,
    },
    /// The shared-memory file already exists (another job or a stale run).
    #[error(
        "object store file {} belongs to a live process (another run with the same job id \
         and rank is still going)",
        .0.display()
    )]
    Exists(PathBuf),
    /// The file system holding the segment has less free space than requested.
    #[error(
        "not enough shared memory in {}: the object store needs {}, only {} free \
         (lower the store capacity or enlarge /dev/shm)",
        .path.display(), Bytes(*.requested), Bytes(*.available)
    )]
    ShmTooSmall {
        /// The directory that was checked.
        path: PathBuf,
        /// Bytes asked for.
        requested: usize,
        /// Bytes free in `path`.
        available: usize,
    },
    /// The stores of this node's ranks together need more shared memory than
    /// is free: each rank asked for `each` bytes.
    #[error(
        "not enough shared memory in {} for the object stores of this node's {ranks} ranks: \
         {ranks} x {} = {} needed, only {} free (lower the store capacity with \
         Config::object_store_memory or FERRY_OBJECT_STORE_MEMORY, leave it to the default, \
         which divides the node's budget among its ranks, run fewer ranks per node, or \
         enlarge /dev/shm)",
        .path.display(), Bytes(*.each), Bytes(.each.saturating_mul(*.ranks as usize)),
        Bytes(*.available)
    )]
    NodeShmTooSmall {
        /// The directory that was checked.
        path: PathBuf,
        /// Ranks of the job on this node.
        ranks: u32,
        /// Bytes each rank's store asks for.
        each: usize,
        /// Bytes free in `path`.
        available: usize,
    },
    /// The arena has no free range large enough.
    #[error(
        "object store full: asked for {}, {} of {} in use",
        Bytes(*.requested), Bytes(*.used), Bytes(*.capacity)
    )]
    Full {
        /// Bytes asked for.
        requested: usize,
        /// Bytes currently allocated.
        used: usize,
        /// Total arena size.
        capacity: usize,
    },
    /// A put waited for space as long as it may and none freed: what holds
    /// the store is in the report.
    #[error(
        "object store full: asked for {} and waited {:.1} s; {held}",
        Bytes(*.requested), .waited.as_secs_f64()
    )]
    Held {
        /// Bytes asked for.
        requested: usize,
        /// How long the put waited.
        waited: std::time::Duration,
        /// What held the store when it gave up.
        held: Box<HeldReport>,
    },
    /// The spill directory cannot be made or written.
    #[error(
        "cannot spill objects to {}: {source} (choose a writable local directory with \
         Config::spill_dir or FERRY_SPILL_DIR)",
        .path.display()
    )]
    SpillDir {
        /// The directory (or the root it was to be made in).
        path: PathBuf,
        /// The underlying operating-system error.
        source: std::io::Error,
    },
    /// Serializing a value failed.
    #[error("cannot serialize object: {0}")]
    Serialize(String),
    /// Bytes did not validate as the expected archived type, or a spilled
    /// object read back does not match the checksum taken when it was
    /// written.
    #[error("stored object is corrupt or of another type: {0}")]
    Corrupt(String),
    /// An object kept inline (in its handle, see [`INLINE_MAX`]) was asked
    /// for its place in the arena, where it has none.
    ///
    /// [`INLINE_MAX`]: crate::INLINE_MAX
    #[error(
        "an object of {len} bytes kept inline has no place in the arena to be read at \
         (objects this small travel by value)"
    )]
    Inline {
        /// The object's length.
        len: usize,
    },
}

/// A number of objects and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Objects.
    pub objects: usize,
    /// Bytes they take (arena bytes: rounded up to their alignment).
    pub bytes: usize,
}

impl Count {
    pub(crate) fn add(&mut self, bytes: usize) {
        self.objects += 1;
        self.bytes += bytes;
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.objects == 1 { "" } else { "s" };
        write!(f, "{} object{s} ({})", self.objects, Bytes(self.bytes))
    }
}

/// What holds a full object store: the answer to "why did my put fail".
///
/// ```
/// use ferry_store::{Count, HeldReport};
///
/// let held = HeldReport {
///     capacity: 64 << 20,
///     used: 64 << 20,
///     in_use: Count { objects: 2, bytes: 48 << 20 },
///     lent: Count { objects: 1, bytes: 16 << 20 },
///     ..HeldReport::default()
/// };
/// assert_eq!(
///     held.to_string(),
///     "64.0 MiB of 64.0 MiB in use: 2 objects (48.0 MiB) read by live views or running \
///      tasks, 1 object (16.0 MiB) lent to other ranks, 0 B being written or in small \
///      objects, 0 objects (0 B) idle; spilling is off"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldReport {
    /// Arena size.
    pub capacity: usize,
    /// Arena bytes allocated.
    pub used: usize,
    /// Sealed objects that are pinned: a live view, a running task's
    /// argument, a read in progress.
    pub in_use: Count,
    /// Sealed objects other ranks read in place (never spilled).
    pub lent: Count,
    /// Bytes of blocks still being written (not sealed yet) and of sealed
    /// objects too small to be spilled (under 4 KiB).
    pub being_written: usize,
    /// The longest free range: less than `capacity - used` when the free
    /// space lies in pieces between objects that cannot move.
    pub largest_free: usize,
    /// Sealed, unpinned objects still in memory: spilling them failed (see
    /// `spill_error`) or spilling is off.
    pub idle: Count,
    /// Objects on disk.
    pub spilled: Count,
    /// The spill directory, when spilling is on.
    pub spill_dir: Option<PathBuf>,
    /// The last spill failure, if any.
    pub spill_error: Option<String>,
}

impl fmt::Display for HeldReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} in use: {} read by live views or running tasks, {} lent to other \
             ranks, {} being written or in small objects, {} idle",
            Bytes(self.used),
            Bytes(self.capacity),
            self.in_use,
            self.lent,
            Bytes(self.being_written),
            self.idle
        )?;
        let free = self.capacity.saturating_sub(self.used);
        if free > 0 {
            write!(
                f,
                ", {} free in pieces of at most {}",
                Bytes(free),
                Bytes(self.largest_free)
            )?;
        }
        match &self.spill_dir {
            Some(dir) => write!(f, "; {} spilled to {}", self.spilled, dir.display())?,
            None => write!(f, "; spilling is off")?,
        }
        if let Some(e) = &self.spill_error {
            write!(f, " (last spill failed: {e})")?;
        }
        Ok(())
    }
}

/// Formats a byte count with binary units: `512 B`, `1.5 KiB`, `2.0 GiB`.
#[derive(Clone, Copy)]
pub(crate) struct Bytes(pub(crate) usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let n = self.0;
        if n < 1024 {
            return write!(f, "{n} B");
        }
        let mut value = n as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_formatting() {
        assert_eq!(Bytes(0).to_string(), "0 B");
        assert_eq!(Bytes(1023).to_string(), "1023 B");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(64 << 20).to_string(), "64.0 MiB");
        assert_eq!(Bytes(3 << 30).to_string(), "3.0 GiB");
    }

    #[test]
    fn messages() {
        let e = StoreError::ShmTooSmall {
            path: "/dev/shm".into(),
            requested: 1 << 40,
            available: 1 << 30,
        };
        assert!(e.to_string().contains("needs 1.0 TiB, only 1.0 GiB free"));
        let e = StoreError::NodeShmTooSmall {
            path: "/dev/shm".into(),
            ranks: 4,
            each: 100 << 20,
            available: 230 << 20,
        };
        assert!(
            e.to_string().contains(
                "this node's 4 ranks: 4 x 100.0 MiB = 400.0 MiB needed, only 230.0 MiB free"
            ),
            "{e}"
        );
        assert!(
            StoreError::Exists("/dev/shm/x".into())
                .to_string()
                .contains("/dev/shm/x belongs to a live process")
        );
    }
}
