//! The transport's error type.

use crate::Rank;

/// Everything a transport operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A rank outside `0..size`.
    #[error("rank {rank} does not exist (world size {size})")]
    UnknownRank {
        /// The rank asked for.
        rank: u32,
        /// The world size.
        size: u32,
    },
    /// This endpoint has been closed.
    #[error("transport endpoint is closed")]
    Closed,
    /// The peer closed its endpoint (normal shutdown); it takes no more frames.
    #[error("rank {rank} has closed its transport endpoint")]
    PeerClosed {
        /// The closed peer.
        rank: Rank,
    },
    /// The peer is gone.
    #[error("rank {rank} was lost: {reason}")]
    RankLost {
        /// The lost rank.
        rank: Rank,
        /// Why.
        reason: String,
    },
    /// The MPI library reported an error (or offered too little).
    #[error("MPI: {0}")]
    Mpi(String),
    /// A read past the end of the remote region.
    #[error(
        "read of {len} bytes at offset {offset} of rank {rank}'s region exceeds its {region_len} bytes"
    )]
    OutOfBounds {
        /// The rank whose region was read.
        rank: Rank,
        /// Start of the read.
        offset: usize,
        /// Length of the read.
        len: usize,
        /// The region's length.
        region_len: usize,
    },
    /// A frame longer than the transport can carry in one message.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A shared-memory ring between two ranks of a node is damaged, or
    /// could not be set up.
    #[error("shared-memory ring: {0}")]
    Ring(String),
}
