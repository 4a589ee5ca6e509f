//! Ferry's rank-to-rank transport: opaque control frames and one-sided reads.
//!
//! Every rank owns one endpoint implementing [`Transport`]:
//!
//! - [`Transport::send`] / [`Transport::recv`]: small opaque byte frames
//!   (the runtime encodes them, e.g. as rkyv archives). Frames from one
//!   sender to one receiver arrive in the order they were sent.
//! - [`Transport::read`]: a one-sided copy out of another rank's exposed
//!   [`Region`] (its object arena). The owner's threads take no part.
//! - [`Event::RankLost`]: a peer is gone; sends to it fail with
//!   [`TransportError::RankLost`].
//!
//! Two implementations:
//!
//! - [`Loopback`]: N ranks as threads of one process over crossbeam
//!   channels (tests, and single-process runs).
//! - `MpiTransport` (feature `mpi`): real ranks under `mpirun`/`srun`,
//!   two-sided MPI messages for frames and a passive-target MPI RMA window
//!   over the region for reads; senders and readers call MPI themselves
//!   under one lock, and a progress thread receives.
//!   See the crate README for the design and measured numbers.
//!
//! Ranks of one node exchange frames through shared-memory rings instead
//! (`MpiTransport::attach_rings`): one single-producer ring per ordered
//! pair, in the receiver's inbox ([`format_inbox`]), with a wake word its
//! progress thread parks on. Frames that do not fit take MPI, numbered, and
//! the receiver keeps each sender's order across both paths.
//!
//! All `unsafe` code lives in two private leaf modules: `rma` (the
//! raw-memory copy out of an [`Exposed`] region and the `mpi::ffi` calls
//! for the RMA window and non-blocking sends) and `ring` (atomics and
//! copies in shared memory, and `futex`).

mod error;
mod loopback;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
mod node;
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
mod quiet;
mod region;
mod ring;
mod rma;
mod wait;

use std::time::Duration;

pub use error::TransportError;
pub use loopback::Loopback;
#[cfg(feature = "mpi")]
pub use mpi::{FRAME_TAG, MpiInfo, MpiTransport, NodeRings, RingReport};
pub use region::{Exposed, Region};
pub use ring::{INBOX_BUDGET, RING_FRAME_MAX, SharedBytes, format_inbox, inbox_len, ring_bytes};

/// A rank number: `0..size`.
pub type Rank = u32;

/// What a rank receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A frame another rank (or this one) sent.
    Frame {
        /// The sender.
        from: Rank,
        /// The frame, exactly as sent.
        bytes: Vec<u8>,
    },
    /// A rank is gone; frames it sent before are delivered before this event.
    RankLost {
        /// The lost rank.
        rank: Rank,
        /// Why, for the error message the runtime shows.
        reason: String,
    },
}

/// What [`Transport::set_handler`] takes: called with every incoming event.
/// It borrows the event: a frame's buffer stays the transport's, which
/// reuses it for a later frame (a frame received allocates nothing).
pub type Handler = Box<dyn Fn(&Event) + Send + Sync>;

/// One rank's endpoint: frames in and out, one-sided reads of other ranks'
/// regions.
///
/// All methods take `&self` and may be called from any thread.
pub trait Transport: Send + Sync + 'static {
    /// This rank.
    fn rank(&self) -> Rank;

    /// Number of ranks.
    fn size(&self) -> u32;

    /// Queues one frame to `to`. Never blocks on the receiver; the order of
    /// frames between one sender and one receiver is kept. Sending to
    /// yourself works.
    ///
    /// # Errors
    ///
    /// [`TransportError::UnknownRank`], [`TransportError::RankLost`] when
    /// `to` is known to be gone, [`TransportError::PeerClosed`] when `to`
    /// closed its endpoint (where that can be known),
    /// [`TransportError::Closed`] after [`close`](Self::close),
    /// [`TransportError::FrameTooLarge`].
    fn send(&self, to: Rank, bytes: Vec<u8>) -> Result<(), TransportError>;

    /// [`send`](Self::send) from a buffer the caller keeps and may reuse:
    /// the bytes are copied where they go (a shared-memory ring), or into
    /// a buffer of the transport's own. By default a copy is sent.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    fn send_from(&self, to: Rank, bytes: &[u8]) -> Result<(), TransportError> {
        self.send(to, bytes.to_vec())
    }

    /// The next event, waiting up to `timeout` (`None`: forever); `Ok(None)`
    /// when the timeout passed. Spins briefly, then parks: an idle caller
    /// does not burn a core.
    ///
    /// # Errors
    ///
    /// [`TransportError::Closed`] once the endpoint is closed and every
    /// event received before has been returned.
    fn recv(&self, timeout: Option<Duration>) -> Result<Option<Event>, TransportError>;

    /// Copies `dst.len()` bytes at `offset` of rank `from`'s exposed region
    /// into `dst`. One-sided: the owner's threads do nothing. Reading your
    /// own region is a local copy.
    ///
    /// # Errors
    ///
    /// [`TransportError::OutOfBounds`] when `offset + dst.len()` exceeds the
    /// region, [`TransportError::UnknownRank`], [`TransportError::RankLost`],
    /// [`TransportError::Closed`], [`TransportError::Mpi`].
    fn read(&self, from: Rank, offset: usize, dst: &mut [u8]) -> Result<(), TransportError>;

    /// Whether `rank` is known to be gone: once this returns `true` it stays
    /// `true`, and it turns `true` no later than the [`Event::RankLost`] for
    /// `rank` is queued. The runtime checks it before it reads a peer's
    /// memory in place (a same-node arena mapped directly), so a lost rank's
    /// memory is never read once its loss is known, whichever of the
    /// event's handling and the read comes first. The default: never.
    fn is_lost(&self, rank: Rank) -> bool {
        let _ = rank;
        false
    }

    /// Makes `rank`, which stopped answering (the runtime's heartbeat heard
    /// nothing from it in time), lost for every rank. Loopback: as
    /// [`Loopback::kill`]. MPI: a rank cannot leave a running MPI job, so
    /// this ends the job with `reason` on standard error through
    /// `MPI_Abort`, and the launcher ends every rank; it does not return.
    ///
    /// # Errors
    ///
    /// [`TransportError::UnknownRank`].
    fn declare_lost(&self, rank: Rank, reason: &str) -> Result<(), TransportError>;

    /// Ends this process after a fatal error, saying `message` on standard
    /// error, such that the launcher ends every rank of the job (MPI:
    /// `MPI_Abort`, never a plain `exit` that would leave the others
    /// waiting). The default: `exit(70)`.
    fn abort(&self, message: &str) -> ! {
        eprintln!("ferry: {message}");
        std::process::exit(70)
    }

    /// Stops this endpoint and joins its threads. Idempotent. For MPI this is
    /// collective (every rank must call it): see `MpiTransport::close`.
    ///
    /// # Errors
    ///
    /// [`TransportError::Mpi`] when shutting MPI down failed.
    fn close(&self) -> Result<(), TransportError>;

    /// A hint from the runtime: it has sent a request and waits for the
    /// answer (`true`), or one such answer came (`false`). While answers are
    /// awaited an implementation may poll harder (MPI: the progress thread
    /// does not back off), trading a little CPU for latency; idle ranks are
    /// unaffected. The default does nothing.
    fn expect_reply(&self, awaiting: bool) {
        let _ = awaiting;
    }

    /// Receives and handles, on the calling thread, whatever frames have
    /// arrived (through the handler set with [`set_handler`](Self::set_handler)),
    /// unless another thread is doing so right now; whether there was any.
    /// A thread that waits for a reply calls it while it spins, so the
    /// reply reaches it with no thread in between. It is made to be called
    /// again and again: where a cheaper path carries most frames (MPI:
    /// shared-memory rings on one node), a call may look at the other one
    /// only now and then, and a caller that stops calling it to sleep
    /// calls [`poll_before_sleep`](Self::poll_before_sleep) last. The
    /// default (and the loopback transport, whose frames need no
    /// receiving) does nothing.
    fn poll(&self) -> bool {
        false
    }

    /// The last [`poll`](Self::poll) of a thread about to sleep: one that
    /// looks at every path a frame may come by, so that nothing a cheaper
    /// poll left for later waits for the thread's sleep. The default polls.
    fn poll_before_sleep(&self) -> bool {
        self.poll()
    }

    /// [`poll`](Self::poll), when this rank awaits answers (see
    /// [`expect_reply`](Self::expect_reply)) and no thread of it has
    /// received within the last `quiet`: whether there was anything. A
    /// thread busy with other work calls it now and then, so that the
    /// answers the rank waits for are handled even when the thread that
    /// usually receives cannot get a core. The default polls.
    fn poll_if_quiet(&self, quiet: Duration) -> bool {
        let _ = quiet;
        self.poll()
    }

    /// Frames sent so far to ranks of this node that have a shared-memory
    /// ring: how many went through the ring, and how many took the other
    /// path (too large, or the ring was full). `(0, 0)` where there are no
    /// rings (loopback, other nodes, or rings off).
    fn frame_paths(&self) -> (u64, u64) {
        (0, 0)
    }

    /// Asks the transport to hand incoming frames (and losses) straight to
    /// `handler` on the thread that receives them, instead of queueing them
    /// for [`recv`](Self::recv): one thread handoff less per message.
    /// `handler` runs on the transport's own thread, so it must not block
    /// for long; it may call [`send`](Self::send), [`read`](Self::read) and
    /// the transport's other methods, which then do their MPI work inline.
    /// Events queued before keep coming from `recv`. Returns the handler
    /// back where the transport cannot do this (the default: loopback,
    /// whose frames already go straight to the receiving thread).
    fn set_handler(&self, handler: Handler) -> Result<(), Handler> {
        Err(handler)
    }

    /// The baseline for the runtime's message latency: `iters` round trips
    /// of an 8-byte message with `peer` straight through the underlying
    /// library (MPI: blocking send and receive on the progress thread, on a
    /// tag of their own), after a tenth as many to warm up. Both ranks must
    /// call it at about the same time, `lead` on exactly one of them; the
    /// leader gets each round trip's time, the other an empty list. `None`
    /// where there is no underlying library to measure (loopback).
    ///
    /// # Errors
    ///
    /// [`TransportError::UnknownRank`] (or `peer` is this rank),
    /// [`TransportError::Closed`].
    fn raw_ping_pong(
        &self,
        peer: Rank,
        iters: usize,
        lead: bool,
    ) -> Result<Option<Vec<Duration>>, TransportError> {
        let _ = (peer, iters, lead);
        Ok(None)
    }
}

/// The rsmpi crate this transport is built with (for [`MpiTransport::with_world`]).
#[cfg(feature = "mpi")]
pub use ::mpi as rsmpi;
