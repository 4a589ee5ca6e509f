//! Identifiers of objects, tasks and actors.
//!
//! An id is 64 bits: the rank that made it in the top 16 bits and a per-rank
//! sequence number below, so ids minted on different ranks never collide and
//! the owner of an object can be read off its id without a lookup.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

const RANK_SHIFT: u32 = 48;
const SEQ_MASK: u64 = (1 << RANK_SHIFT) - 1;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// The id as one 64-bit number (rank in the top 16 bits).
            pub fn as_u64(self) -> u64 {
                self.0
            }

            /// Rebuilds an id from [`as_u64`](Self::as_u64).
            pub fn from_u64(raw: u64) -> Self {
                Self(raw)
            }

            /// The rank that minted this id.
            pub fn rank(self) -> u32 {
                (self.0 >> RANK_SHIFT) as u32
            }

            /// The per-rank sequence number.
            pub fn seq(self) -> u64 {
                self.0 & SEQ_MASK
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "({:04x}:{:012x})"), self.rank(), self.seq())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

id_type!(
    /// Names one object in the cluster.
    ObjectId,
    "ObjectId"
);
id_type!(
    /// Names one actor in the cluster.
    ActorId,
    "ActorId"
);

/// Mints ids for one rank.
#[derive(Debug)]
pub(crate) struct IdGen {
    rank: u64,
    next: AtomicU64,
}

impl IdGen {
    pub(crate) fn new(rank: u32) -> Self {
        Self {
            rank: u64::from(rank) << RANK_SHIFT,
            next: AtomicU64::new(1),
        }
    }

    fn next_raw(&self) -> u64 {
        // Relaxed: uniqueness needs only the atomicity of the increment.
        self.rank | (self.next.fetch_add(1, Ordering::Relaxed) & SEQ_MASK)
    }

    pub(crate) fn object(&self) -> ObjectId {
        ObjectId(self.next_raw())
    }

    pub(crate) fn actor(&self) -> ActorId {
        ActorId(self.next_raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_rank_and_are_unique() {
        let g = IdGen::new(7);
        let a = g.object();
        let b = g.object();
        assert_ne!(a, b);
        assert_eq!(a.rank(), 7);
        assert_eq!(ObjectId::from_u64(a.as_u64()), a);
        assert_eq!(format!("{a:?}"), "ObjectId(0007:000000000001)");
    }
}
