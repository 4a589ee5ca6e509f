//! N ranks as threads of one process, over crossbeam channels.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::wait::recv_until;
use crate::{Event, Rank, Region, Transport, TransportError};

const ALIVE: u8 = 0;
const CLOSED: u8 = 1;
const LOST: u8 = 2;
/// Stopped (as by `SIGSTOP`): nothing it sends leaves, nothing reaches it.
const STOPPED: u8 = 3;
/// How long a stopped rank's `recv` naps before it returns nothing.
const STOPPED_NAP: Duration = Duration::from_millis(20);

/// State every endpoint of one loopback world shares.
struct World {
    inboxes: Vec<Sender<Event>>,
    regions: Vec<Region>,
    /// `ALIVE`, `CLOSED` or `LOST` per rank.
    state: Vec<AtomicU8>,
    /// Why each lost rank was lost.
    reasons: Mutex<Vec<Option<String>>>,
    /// Serializes kills and closes against each other, so every live rank
    /// gets exactly one `RankLost` per killed rank.
    lifecycle: Mutex<()>,
}

impl World {
    fn reason(&self, rank: Rank) -> String {
        let reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        reasons[rank as usize]
            .clone()
            .unwrap_or_else(|| "killed".to_owned())
    }

    fn lost(&self, rank: Rank) -> TransportError {
        TransportError::RankLost {
            rank,
            reason: self.reason(rank),
        }
    }
}

/// One rank of an in-process world (see [`Loopback::world`]).
///
/// Frames go through one unbounded crossbeam channel per receiving rank, so
/// `send` never blocks and frames from one sender stay in order; `read`
/// copies straight out of the other rank's [`Region`].
///
/// ```
/// use std::time::Duration;
/// use ferry_transport::{Event, Loopback, Region, Transport};
///
/// let world = Loopback::world(2, vec![Region::from_bytes(vec![1u8; 8]), Region::from_bytes(vec![2u8; 8])]);
/// world[0].send(1, b"hi".to_vec()).unwrap();
/// let ev = world[1].recv(Some(Duration::from_secs(1))).unwrap();
/// assert_eq!(ev, Some(Event::Frame { from: 0, bytes: b"hi".to_vec() }));
/// let mut buf = [0u8; 4];
/// world[1].read(0, 2, &mut buf).unwrap();
/// assert_eq!(buf, [1; 4]);
/// ```
pub struct Loopback {
    rank: Rank,
    world: Arc<World>,
    inbox: Receiver<Event>,
}

impl std::fmt::Debug for Loopback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loopback")
            .field("rank", &self.rank)
            .field("size", &self.size())
            .finish()
    }
}

impl Loopback {
    /// Creates `n` connected endpoints; rank `i` exposes `regions[i]`.
    /// Missing regions (when `regions.len() < n`) are empty; extra ones are
    /// ignored.
    pub fn world(n: u32, mut regions: Vec<Region>) -> Vec<Arc<Loopback>> {
        regions.truncate(n as usize);
        regions.resize_with(n as usize, Region::empty);
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| unbounded()).unzip();
        let world = Arc::new(World {
            inboxes: senders,
            regions,
            state: (0..n).map(|_| AtomicU8::new(ALIVE)).collect(),
            reasons: Mutex::new(vec![None; n as usize]),
            lifecycle: Mutex::new(()),
        });
        receivers
            .into_iter()
            .enumerate()
            .map(|(rank, inbox)| {
                Arc::new(Loopback {
                    rank: rank as Rank,
                    world: Arc::clone(&world),
                    inbox,
                })
            })
            .collect()
    }

    /// Simulates rank `rank` dying (callable from any endpoint of the world):
    /// every other rank that is still alive receives
    /// [`Event::RankLost`] (after the frames `rank` sent before), and
    /// sends to, reads from and operations on `rank` fail with
    /// [`TransportError::RankLost`]. Killing a lost or closed rank does
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`TransportError::UnknownRank`].
    pub fn kill(&self, rank: Rank, reason: &str) -> Result<(), TransportError> {
        self.check_rank(rank)?;
        let _guard = self
            .world
            .lifecycle
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !matches!(
            self.world.state[rank as usize].load(Ordering::Acquire),
            ALIVE | STOPPED
        ) {
            return Ok(());
        }
        self.world.reasons.lock().unwrap_or_else(|e| e.into_inner())[rank as usize] =
            Some(reason.to_owned());
        self.world.state[rank as usize].store(LOST, Ordering::Release);
        for (other, inbox) in self.world.inboxes.iter().enumerate() {
            if other != rank as usize && self.world.state[other].load(Ordering::Acquire) == ALIVE {
                // A receiver that is gone has nobody left to tell.
                let _ = inbox.send(Event::RankLost {
                    rank,
                    reason: reason.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Stops `rank` as `SIGSTOP` would stop a process: from now on its
    /// frames go nowhere, frames to it are dropped, it receives nothing and
    /// what it does to others (kill, declare lost) has no effect; nobody is
    /// told. Only a heartbeat can tell (the runtime's declares it lost).
    /// Stopping a rank that is not alive does nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ferry_transport::{Loopback, Region, Transport};
    ///
    /// let world = Loopback::world(2, vec![Region::from_bytes(vec![0u8; 8]), Region::from_bytes(vec![0u8; 8])]);
    /// world[0].stop(1).unwrap();
    /// world[0].send(1, b"lost in the void".to_vec()).unwrap();
    /// world[1].send(0, b"never leaves".to_vec()).unwrap();
    /// assert_eq!(world[0].recv(Some(Duration::from_millis(10))).unwrap(), None);
    /// assert!(!world[0].is_lost(1));
    /// ```
    ///
    /// # Errors
    ///
    /// [`TransportError::UnknownRank`].
    pub fn stop(&self, rank: Rank) -> Result<(), TransportError> {
        self.check_rank(rank)?;
        let _guard = self
            .world
            .lifecycle
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let _ = self.world.state[rank as usize].compare_exchange(
            ALIVE,
            STOPPED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        Ok(())
    }

    fn stopped(&self, rank: Rank) -> bool {
        self.world
            .state
            .get(rank as usize)
            .is_some_and(|s| s.load(Ordering::Acquire) == STOPPED)
    }

    fn check_rank(&self, rank: Rank) -> Result<(), TransportError> {
        if rank < self.size() {
            Ok(())
        } else {
            Err(TransportError::UnknownRank {
                rank,
                size: self.size(),
            })
        }
    }

    /// Fails when this endpoint is closed or lost.
    fn check_self(&self) -> Result<(), TransportError> {
        match self.world.state[self.rank as usize].load(Ordering::Acquire) {
            ALIVE | STOPPED => Ok(()),
            CLOSED => Err(TransportError::Closed),
            _ => Err(self.world.lost(self.rank)),
        }
    }

    /// Fails when `rank` does not exist or cannot be talked to.
    fn check_peer(&self, rank: Rank) -> Result<(), TransportError> {
        self.check_rank(rank)?;
        match self.world.state[rank as usize].load(Ordering::Acquire) {
            ALIVE | STOPPED => Ok(()),
            CLOSED => Err(TransportError::PeerClosed { rank }),
            _ => Err(self.world.lost(rank)),
        }
    }
}

impl Transport for Loopback {
    fn rank(&self) -> Rank {
        self.rank
    }

    fn size(&self) -> u32 {
        self.world.inboxes.len() as u32
    }

    fn send(&self, to: Rank, bytes: Vec<u8>) -> Result<(), TransportError> {
        self.check_self()?;
        self.check_peer(to)?;
        if self.stopped(self.rank) || self.stopped(to) {
            return Ok(()); // nothing leaves a stopped rank or reaches it
        }
        self.world.inboxes[to as usize]
            .send(Event::Frame {
                from: self.rank,
                bytes,
            })
            // Every endpoint holds its own inbox's receiver and the world holds
            // every sender, so this cannot fail; map it anyway.
            .map_err(|_| TransportError::PeerClosed { rank: to })
    }

    fn recv(&self, timeout: Option<Duration>) -> Result<Option<Event>, TransportError> {
        if let Err(e) = self.check_self() {
            // A closed endpoint still hands out what arrived before `close`.
            return match (&e, self.inbox.try_recv()) {
                (TransportError::Closed, Ok(ev)) => Ok(Some(ev)),
                _ => Err(e),
            };
        }
        if self.stopped(self.rank) {
            // A stopped rank receives nothing: wait a little, then say so.
            std::thread::sleep(timeout.unwrap_or(STOPPED_NAP).min(STOPPED_NAP));
            return Ok(None);
        }
        recv_until(&self.inbox, timeout, || self.check_self())
    }

    fn read(&self, from: Rank, offset: usize, dst: &mut [u8]) -> Result<(), TransportError> {
        self.check_self()?;
        self.check_rank(from)?;
        if self.world.state[from as usize].load(Ordering::Acquire) == LOST {
            return Err(self.world.lost(from));
        }
        // A closed rank's region stays readable: the memory lives as long as
        // the world does.
        self.world.regions[from as usize].read_local(from, offset, dst)
    }

    fn declare_lost(&self, rank: Rank, reason: &str) -> Result<(), TransportError> {
        // Only a live rank judges others: a stopped one does nothing, and
        // one already lost (or closed) has no say.
        if self.world.state[self.rank as usize].load(Ordering::Acquire) != ALIVE {
            return Ok(());
        }
        self.kill(rank, reason)
    }

    fn is_lost(&self, rank: Rank) -> bool {
        // `kill` stores LOST (Release) before it queues the events.
        self.world
            .state
            .get(rank as usize)
            .is_some_and(|s| s.load(Ordering::Acquire) == LOST)
    }

    fn close(&self) -> Result<(), TransportError> {
        let _guard = self
            .world
            .lifecycle
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let _ = self.world.state[self.rank as usize].compare_exchange(
            ALIVE,
            CLOSED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        Ok(())
    }
}
