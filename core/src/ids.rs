//! Identifiers of objects, tasks and actors, and the stable ids of names.
//!
//! An id is 64 bits: the rank that made it in the top 16 bits and a per-rank
//! sequence number below, so ids minted on different ranks never collide and
//! the owner of an object can be read off its id without a lookup.
//!
//! A name (a function's path, a type's name) has a [`stable_id`]: its
//! FNV-1a hash, the same in every build of the same source, so that ranks
//! running copies of one binary agree on it.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
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

/// FNV-1a's offset basis: the hash of no bytes.
pub(crate) const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `bytes`, continuing from `hash` (start from
/// [`FNV_BASIS`]; continue with the next bytes from the result).
pub(crate) const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// FNV-1a of a function's path (or a type's name): the same in every build
/// of the same source.
pub const fn stable_id(path: &str) -> u64 {
    fnv1a(FNV_BASIS, path.as_bytes())
}

/// A map keyed by ids (or by their raw 64 bits), hashed with one multiply
/// instead of SipHash: the runtime looks ids up several times for every
/// message, and they come from this job's own ranks, which do not choose
/// them to collide.
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, BuildIdHasher>;

/// Builds [`IdHasher`]s.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BuildIdHasher;

impl BuildHasher for BuildIdHasher {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// A multiplicative hasher for integer keys (the one rustc uses for its
/// own tables): each word is mixed in by a rotate, an xor and a multiply by
/// an odd constant, which spreads a counter's low bits over the high ones
/// that the table's tags are taken from.
#[derive(Debug, Default)]
pub(crate) struct IdHasher(u64);

const MIX: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, x: u8) {
        self.write_u64(u64::from(x));
    }

    fn write_u16(&mut self, x: u16) {
        self.write_u64(u64::from(x));
    }

    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(MIX);
    }

    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_find_every_id_of_every_rank() {
        let mut m: IdMap<u64, u64> = IdMap::default();
        let ids: Vec<u64> = (0..4u64)
            .flat_map(|rank| (0..1000u64).map(move |seq| (rank << RANK_SHIFT) | seq))
            .collect();
        for &id in &ids {
            m.insert(id, id ^ 7);
        }
        assert_eq!(m.len(), ids.len());
        assert!(ids.iter().all(|id| m.get(id) == Some(&(id ^ 7))));
        let mut a = BuildIdHasher.build_hasher();
        a.write_u64(1);
        let mut b = BuildIdHasher.build_hasher();
        b.write_u64(2);
        assert_ne!(
            a.finish() >> 57,
            b.finish() >> 57,
            "neighbouring ids get different tags"
        );
    }

    #[test]
    fn stable_ids_are_fnv1a() {
        // The published FNV-1a (64-bit) test vectors.
        assert_eq!(stable_id(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_id("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_id("foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a(fnv1a(FNV_BASIS, b"foo"), b"bar"), stable_id("foobar"));
    }

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
