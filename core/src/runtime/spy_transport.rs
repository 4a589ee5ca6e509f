//! A loopback endpoint for tests that sits between a rank and its world:
//! it can lose the first frame to one rank, and counts the receives a busy
//! worker offers (`poll_if_quiet`); everything else goes straight through.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ferry_transport::{Event, Handler, Loopback, Rank, Transport, TransportError};

pub(crate) struct Spy {
    inner: Arc<Loopback>,
    /// The rank whose first frame from this one is lost, if any.
    lose_first_to: Option<Rank>,
    lost_one: AtomicBool,
    /// Receives offered between tasks so far.
    offers: Arc<AtomicUsize>,
}

impl Spy {
    /// `inner`, losing its first frame to `to`.
    pub(crate) fn losing_first_frame_to(inner: Arc<Loopback>, to: Rank) -> Spy {
        Spy {
            inner,
            lose_first_to: Some(to),
            lost_one: AtomicBool::new(false),
            offers: Arc::default(),
        }
    }

    /// `inner`, counting into `offers` the receives offered between tasks.
    pub(crate) fn counting_offers(inner: Arc<Loopback>, offers: Arc<AtomicUsize>) -> Spy {
        Spy {
            inner,
            lose_first_to: None,
            lost_one: AtomicBool::new(false),
            offers,
        }
    }
}

impl Transport for Spy {
    fn rank(&self) -> Rank {
        self.inner.rank()
    }
    fn size(&self) -> u32 {
        self.inner.size()
    }
    fn send(&self, to: Rank, bytes: Vec<u8>) -> Result<(), TransportError> {
        if self.lose_first_to == Some(to) && !self.lost_one.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.send(to, bytes)
    }
    fn recv(&self, timeout: Option<Duration>) -> Result<Option<Event>, TransportError> {
        self.inner.recv(timeout)
    }
    fn read(&self, from: Rank, offset: usize, dst: &mut [u8]) -> Result<(), TransportError> {
        self.inner.read(from, offset, dst)
    }
    fn is_lost(&self, rank: Rank) -> bool {
        self.inner.is_lost(rank)
    }
    fn declare_lost(&self, rank: Rank, reason: &str) -> Result<(), TransportError> {
        self.inner.declare_lost(rank, reason)
    }
    fn close(&self) -> Result<(), TransportError> {
        self.inner.close()
    }
    fn set_handler(&self, handler: Handler) -> Result<(), Handler> {
        self.inner.set_handler(handler)
    }
    fn poll_if_quiet(&self, quiet: Duration) -> bool {
        self.offers.fetch_add(1, Ordering::SeqCst);
        self.inner.poll_if_quiet(quiet)
    }
}
