//! The same-node path: which peer's frames go through a shared-memory ring,
//! and how frames from one sender stay in order when some take the ring
//! and others MPI.
//!
//! Every frame from a sender to a ring peer is numbered (per ordered pair,
//! from 0). A frame goes through the ring when it fits
//! ([`RING_FRAME_MAX`](crate::ring::RING_FRAME_MAX)) and the ring has room;
//! otherwise through MPI with its number in front. The receiver hands frames
//! of a ring peer out strictly by number: a frame that arrived early by MPI
//! waits in a stash, and the ring is read only while its next record is the
//! next number. Numbers are taken under the sender's lock of the ring, so
//! the ring's records are always in increasing order.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ring::{Consumer, Mem, Nap, Next, Producer, WakeWord};
use crate::{Rank, TransportError};

/// Bytes of the number in front of a frame sent by MPI to a ring peer.
const SEQ_BYTES: usize = 8;

/// This rank's rings to its node's other ranks.
pub(crate) struct Outgoing {
    /// By destination rank: `None` when the frame goes by MPI unnumbered.
    peers: Vec<Option<Mutex<OutPeer>>>,
    /// By destination rank: the word its progress thread parks on.
    wakers: Vec<Option<WakeWord>>,
    ring_frames: AtomicU64,
    mpi_frames: AtomicU64,
}

struct OutPeer {
    ring: Producer,
    next_seq: u64,
}

/// Where [`Outgoing::route`] sent a frame.
pub(crate) enum Route {
    /// Through the ring: done.
    Ring,
    /// Through MPI: these bytes (numbered for a ring peer).
    Mpi(Vec<u8>),
}

impl Outgoing {
    /// No ring to anyone.
    pub(crate) fn none(size: u32) -> Outgoing {
        Outgoing {
            peers: (0..size).map(|_| None).collect(),
            wakers: (0..size).map(|_| None).collect(),
            ring_frames: AtomicU64::new(0),
            mpi_frames: AtomicU64::new(0),
        }
    }

    /// Adds the ring to `to` (slot `slot` of its inbox `mem`).
    pub(crate) fn open(&mut self, to: Rank, mem: Mem, slot: usize) -> Result<(), TransportError> {
        let ring = Producer::open(mem.clone(), to, slot)?;
        self.peers[to as usize] = Some(Mutex::new(OutPeer { ring, next_seq: 0 }));
        self.wakers[to as usize] = Some(WakeWord::Shared(mem));
        Ok(())
    }

    /// Whether frames to `to` go through a ring.
    #[cfg(test)]
    pub(crate) fn is_peer(&self, to: Rank) -> bool {
        self.peers.get(to as usize).is_some_and(Option::is_some)
    }

    /// Wakes `to`'s progress thread if it parks, after a frame was pushed
    /// into its ring.
    fn wake(&self, to: Rank) {
        if let Some(Some(w)) = self.wakers.get(to as usize) {
            w.wake(Nap::Deep);
        }
    }

    /// Counts a frame sent to `to` by MPI in its inbox and wakes its
    /// progress thread if it parks ([`WakeWord::post`]): it would otherwise
    /// see the frame only at its next poll.
    pub(crate) fn post(&self, to: Rank) {
        if let Some(Some(w)) = self.wakers.get(to as usize) {
            w.post();
        }
    }

    /// Sends `frame` to `to` through its ring if it can, else hands back
    /// what to send by MPI. The frame may be the caller's own (`Vec`) or
    /// borrowed from a buffer it keeps (`&[u8]`): copied only into the ring,
    /// or into what goes by MPI.
    pub(crate) fn route<'a>(&self, to: Rank, frame: impl Into<Cow<'a, [u8]>>) -> Route {
        let frame = frame.into();
        match self.try_ring(to, &frame) {
            Ok(()) => Route::Ring,
            Err(None) => Route::Mpi(frame.into_owned()),
            Err(Some(seq)) => Route::Mpi(numbered(seq, &frame)),
        }
    }

    /// Pushes `frame` into `to`'s ring. `Err(None)`: `to` is no ring peer;
    /// `Err(Some(seq))`: it did not fit, and goes by MPI numbered `seq`.
    fn try_ring(&self, to: Rank, frame: &[u8]) -> Result<(), Option<u64>> {
        let Some(Some(peer)) = self.peers.get(to as usize) else {
            return Err(None);
        };
        let mut p = peer.lock().unwrap_or_else(|e| e.into_inner());
        let seq = p.next_seq;
        p.next_seq += 1;
        if p.ring.try_push(seq, frame) {
            drop(p);
            self.wake(to);
            self.ring_frames.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        drop(p);
        self.mpi_frames.fetch_add(1, Ordering::Relaxed);
        Err(Some(seq))
    }

    /// Frames to ring peers so far: through rings, and by MPI.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.ring_frames.load(Ordering::Relaxed),
            self.mpi_frames.load(Ordering::Relaxed),
        )
    }
}

/// `frame` after its sequence number, to go by MPI.
fn numbered(seq: u64, frame: &[u8]) -> Vec<u8> {
    let mut numbered = Vec::with_capacity(SEQ_BYTES + frame.len());
    numbered.extend_from_slice(&seq.to_le_bytes());
    numbered.extend_from_slice(frame);
    numbered
}

/// The most frames a kept [`Incoming`] batch list has room for.
const BATCH_KEPT: usize = 256;

/// The most frame buffers [`Incoming`] keeps for reuse, and the largest
/// (a frame larger than this leaves with its buffer).
const SPARE_KEPT: usize = 64;
const SPARE_BYTES: usize = 4096;

/// This rank's inbox: the rings its node's other ranks send through, and
/// the frames of theirs that came early by MPI.
pub(crate) struct Incoming {
    /// By sending rank.
    peers: Vec<Option<InPeer>>,
    order: Vec<Rank>,
    /// An empty list with room, lent to each receiving turn for the frames
    /// it collects (see [`Incoming::lend_batch`]).
    batch: Vec<(Rank, Vec<u8>)>,
    /// Buffers of frames handled, for the next frames taken from the rings
    /// (see [`reuse`](Self::reuse)).
    spare: Vec<Vec<u8>>,
    /// Receiving turns that looked at MPI only if they had to (see
    /// [`needs_mpi`](Self::needs_mpi)).
    turns: u32,
}

/// A receiving turn that found frames in the rings looks at MPI anyway
/// once in this many turns.
const MPI_EVERY: u32 = 16;

/// A receiving turn that found no frame in the rings, where every other
/// rank sends through one and none waits for a frame by MPI, looks at MPI
/// once in this many turns. A spinning thread takes a turn at every look:
/// a probe of MPI (which runs the library's progress engine) cost a
/// spinning worker of the 2-rank stencil ~400 instructions a look, ~5× a
/// look at its ring, so that a frame pushed meanwhile was seen later.
const MPI_EVERY_EMPTY: u32 = 8;

struct InPeer {
    ring: Consumer,
    next: u64,
    early: BTreeMap<u64, Vec<u8>>,
    /// The ring's published end when [`Incoming::drain`] last stopped at a
    /// later number (the next one still on its way by MPI): nothing more
    /// to take from it until that changes.
    stuck_at: Option<u64>,
}

impl Incoming {
    /// No rings.
    pub(crate) fn none(size: u32) -> Incoming {
        Incoming {
            peers: (0..size).map(|_| None).collect(),
            order: Vec::new(),
            batch: Vec::new(),
            spare: Vec::new(),
            turns: 0,
        }
    }

    /// Whether a receiving turn that took its rings' frames first (`found`:
    /// some) must also look for frames that came by MPI. A look at MPI
    /// (a probe, which runs the library's progress engine) costs more than
    /// one at the rings, and a turn that does it before the rings delays
    /// every frame behind it. It may skip it when every other rank sends
    /// through a ring (a frame that goes by MPI instead is numbered among
    /// the ring's: [`drain`](Self::drain) stops before it) and no ring
    /// waits for a frame by MPI; and not more than [`MPI_EVERY`] turns in a
    /// row that found frames, nor [`MPI_EVERY_EMPTY`] that found none (a
    /// frame a ring peer sent by MPI after its last ring frame shows no gap
    /// in the ring, and MPI progresses the sends in flight). A `thorough`
    /// turn that found none always looks: the progress thread's (when it
    /// is woken for a frame sent by MPI, its first turn must see it), and
    /// a polling thread's last before it sleeps (what its skipped probes
    /// left must not wait for its sleep).
    pub(crate) fn needs_mpi(&mut self, found: bool, thorough: bool) -> bool {
        self.turns = self.turns.wrapping_add(1);
        self.order.len() + 1 < self.peers.len()
            || (thorough && !found)
            || self
                .turns
                .is_multiple_of(if found { MPI_EVERY } else { MPI_EVERY_EMPTY })
            || self
                .order
                .iter()
                .filter_map(|&r| self.peers[r as usize].as_ref())
                .any(|p| p.stuck_at.is_some() || !p.early.is_empty())
    }

    /// Adds the ring `from` sends through (slot `slot` of this rank's inbox
    /// `mem`, owned by `me`).
    pub(crate) fn open(
        &mut self,
        me: Rank,
        from: Rank,
        mem: Mem,
        slot: usize,
    ) -> Result<(), TransportError> {
        let ring = Consumer::open(mem, me, slot, from)?;
        self.peers[from as usize] = Some(InPeer {
            ring,
            next: 0,
            early: BTreeMap::new(),
            stuck_at: None,
        });
        self.order.push(from);
        Ok(())
    }

    /// Whether any ring holds a frame not yet taken that can be taken
    /// (not one waiting behind a frame still on its way by MPI).
    pub(crate) fn is_pending(&self) -> bool {
        self.order
            .iter()
            .filter_map(|&r| self.peers[r as usize].as_ref())
            .any(|p| p.ring.is_pending() && p.stuck_at != Some(p.ring.published()))
    }

    /// Takes a frame that came by MPI: handed out at once unless its sender
    /// is a ring peer, whose frames come out in number order ([`drain`](Self::drain)).
    pub(crate) fn take_mpi(
        &mut self,
        from: Rank,
        mut frame: Vec<u8>,
        out: &mut Vec<(Rank, Vec<u8>)>,
    ) -> Result<(), TransportError> {
        let Some(Some(peer)) = self.peers.get_mut(from as usize) else {
            out.push((from, frame));
            return Ok(());
        };
        if frame.len() < SEQ_BYTES {
            return Err(TransportError::Ring(format!(
                "a {}-byte frame from rank {from} carries no sequence number",
                frame.len()
            )));
        }
        let seq = u64::from_le_bytes(frame[..SEQ_BYTES].try_into().expect("8 bytes"));
        if seq < peer.next || peer.early.contains_key(&seq) {
            return Err(TransportError::Ring(format!(
                "frame {seq} from rank {from} came twice"
            )));
        }
        frame.drain(..SEQ_BYTES);
        peer.early.insert(seq, frame);
        Ok(())
    }

    /// An empty list to collect a turn's frames in, with the room the last
    /// turn's had: a turn allocates no list of its own.
    pub(crate) fn lend_batch(&mut self) -> Vec<(Rank, Vec<u8>)> {
        std::mem::take(&mut self.batch)
    }

    /// Takes back a list [`lend_batch`](Self::lend_batch) lent, emptied
    /// (one grown past [`BATCH_KEPT`] frames is let go instead).
    pub(crate) fn return_batch(&mut self, mut batch: Vec<(Rank, Vec<u8>)>) {
        if batch.capacity() <= BATCH_KEPT {
            batch.clear();
            self.batch = batch;
        }
    }

    /// Keeps a handled frame's buffer for a frame taken from a ring later:
    /// a frame received then needs no allocation (nor its handling a
    /// free). At most [`SPARE_KEPT`] buffers of at most [`SPARE_BYTES`]
    /// each are kept; the others are freed.
    pub(crate) fn reuse(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < SPARE_KEPT && buffer.capacity() <= SPARE_BYTES {
            self.spare.push(buffer);
        }
    }

    /// Hands out, per ring peer and in number order, the frames that are
    /// next: from the early ones and the ring; at most `budget` in all.
    pub(crate) fn drain(
        &mut self,
        out: &mut Vec<(Rank, Vec<u8>)>,
        budget: usize,
    ) -> Result<(), TransportError> {
        // `usize::MAX` means "everything": it must not wrap.
        let stop = out.len().saturating_add(budget);
        for &from in &self.order {
            let Some(peer) = self.peers[from as usize].as_mut() else {
                continue;
            };
            peer.stuck_at = None;
            while out.len() < stop {
                if let Some(frame) = peer.early.remove(&peer.next) {
                    out.push((from, frame));
                } else {
                    match peer.ring.pop_if(peer.next, &mut self.spare)? {
                        Next::Frame(frame) => out.push((from, frame)),
                        Next::Other(seq) if seq < peer.next => {
                            return Err(TransportError::Ring(format!(
                                "frame {seq} from rank {from} came twice"
                            )));
                        }
                        Next::Other(_) => {
                            // A later number: the next one is still on its
                            // way by MPI.
                            peer.stuck_at = Some(peer.ring.published());
                            break;
                        }
                        Next::Empty => break,
                    }
                }
                peer.next += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{HeapBytes, RING_FRAME_MAX, format_inbox, inbox_len, ring_bytes};

    /// Rank 1 sending to rank 0 through slot 1 of rank 0's inbox.
    fn pair() -> (Outgoing, Incoming) {
        let bytes = HeapBytes::shared(inbox_len(2));
        format_inbox(&bytes, 0, 2).unwrap();
        let mem = Mem::new(bytes);
        let mut out = Outgoing::none(2);
        out.open(0, mem.clone(), 1).unwrap();
        let mut inc = Incoming::none(2);
        inc.open(0, 1, mem, 1).unwrap();
        (out, inc)
    }

    /// A turn of a rank whose peers all send through rings skips the probe
    /// of MPI, but never while a ring waits for a frame that went by MPI,
    /// nor for more than `MPI_EVERY` turns in a row that found frames, or
    /// `MPI_EVERY_EMPTY` that found none; a thorough one that found none
    /// always probes.
    #[test]
    fn a_turn_with_ring_frames_probes_mpi_only_when_it_must() {
        let (out, mut inc) = pair();
        assert!(inc.needs_mpi(false, true), "a thorough empty turn looks");
        let looks = (0..MPI_EVERY_EMPTY * 4)
            .filter(|_| inc.needs_mpi(false, false))
            .count();
        assert_eq!(looks, 4);
        let looks = (0..MPI_EVERY * 4)
            .filter(|_| inc.needs_mpi(true, false))
            .count();
        assert_eq!(looks, 4);
        // Frame 0 too large for the ring (it goes by MPI), frame 1 in it:
        // the ring waits for frame 0.
        let Route::Mpi(first) = out.route(0, vec![0u8; RING_FRAME_MAX + 1]) else {
            panic!("a frame larger than the ring took it");
        };
        assert!(matches!(out.route(0, vec![1u8; 8]), Route::Ring));
        let mut got = Vec::new();
        inc.drain(&mut got, 8).unwrap();
        assert!(got.is_empty(), "frame 1 went ahead of frame 0");
        assert!((0..MPI_EVERY * 2).all(|_| inc.needs_mpi(true, false)));
        inc.take_mpi(1, first, &mut got).unwrap();
        assert!(inc.needs_mpi(true, false), "frame 0 waits to be handed out");
        inc.drain(&mut got, 8).unwrap();
        assert_eq!(got.len(), 2);
        let looks = (0..MPI_EVERY)
            .filter(|_| inc.needs_mpi(true, false))
            .count();
        assert_eq!(looks, 1);
    }

    /// A handled frame's buffer takes a later frame from the ring (no
    /// allocation), holding nothing of the longer frame it held before;
    /// few and small buffers are kept.
    #[test]
    fn a_handled_frame_s_buffer_takes_a_later_frame() {
        let (out, mut inc) = pair();
        assert!(matches!(out.route(0, vec![7u8; 100]), Route::Ring));
        let mut got = Vec::new();
        inc.drain(&mut got, 8).unwrap();
        let (_, first) = got.pop().expect("frame 0 came");
        assert_eq!(first, vec![7u8; 100]);
        let at = first.as_ptr();
        inc.reuse(first);
        assert!(matches!(out.route(0, vec![9u8; 10]), Route::Ring));
        inc.drain(&mut got, 8).unwrap();
        let (_, second) = got.pop().expect("frame 1 came");
        assert_eq!(second, vec![9u8; 10]);
        assert_eq!(second.as_ptr(), at, "the kept buffer took frame 1");
        inc.reuse(Vec::with_capacity(SPARE_BYTES + 1));
        assert!(inc.spare.is_empty(), "a large buffer is not kept");
        for _ in 0..SPARE_KEPT * 2 {
            inc.reuse(Vec::with_capacity(16));
        }
        assert_eq!(inc.spare.len(), SPARE_KEPT);
    }

    #[test]
    fn frames_keep_their_order_across_the_ring_and_mpi() {
        let (out, mut inc) = pair();
        let mut by_mpi = Vec::new();
        let frames: Vec<Vec<u8>> = (0..400u32)
            .map(|i| {
                // Every fifth frame too large for the ring.
                let len = if i % 5 == 0 { RING_FRAME_MAX + 1 } else { 64 };
                let mut f = vec![0u8; len];
                f[..4].copy_from_slice(&i.to_le_bytes());
                f
            })
            .collect();
        let mut got = Vec::new();
        for f in &frames {
            match out.route(0, f.clone()) {
                Route::Ring => {}
                Route::Mpi(b) => by_mpi.push(b),
            }
            // MPI frames come in late and out of order: deliver them in
            // bursts, reversed.
            if by_mpi.len() == 3 {
                for b in by_mpi.drain(..).rev() {
                    inc.take_mpi(1, b, &mut got).unwrap();
                }
            }
            inc.drain(&mut got, 7).unwrap();
        }
        for b in by_mpi.drain(..) {
            inc.take_mpi(1, b, &mut got).unwrap();
        }
        while got.len() < frames.len() {
            let before = got.len();
            inc.drain(&mut got, 64).unwrap();
            assert!(got.len() > before, "stuck at {before}");
        }
        assert!(got.iter().all(|(from, _)| *from == 1));
        let order: Vec<u32> = got
            .iter()
            .map(|(_, f)| u32::from_le_bytes(f[..4].try_into().unwrap()))
            .collect();
        assert_eq!(order, (0..400).collect::<Vec<_>>());
        let (ring, mpi) = out.counts();
        assert_eq!(ring + mpi, 400);
        assert!(ring > 0 && mpi >= 80, "ring {ring}, mpi {mpi}");
    }

    #[test]
    fn a_full_ring_sends_the_rest_by_mpi_in_order() {
        let (out, mut inc) = pair();
        let mut got = Vec::new();
        let mut mpi = Vec::new();
        // Records of 24 bytes: a thousand more than the ring holds.
        let frames = (ring_bytes(2) / 24 + 1000) as u32;
        for i in 0..frames {
            if let Route::Mpi(b) = out.route(0, i.to_le_bytes().to_vec()) {
                mpi.push(b);
            }
        }
        assert_eq!(
            mpi.len(),
            1000,
            "{frames} frames of 24 bytes overflow the ring"
        );
        for b in mpi {
            inc.take_mpi(1, b, &mut got).unwrap();
        }
        inc.drain(&mut got, usize::MAX).unwrap();
        let order: Vec<u32> = got
            .iter()
            .map(|(_, f)| u32::from_le_bytes(f[..4].try_into().unwrap()))
            .collect();
        assert_eq!(order, (0..frames).collect::<Vec<_>>());
    }

    #[test]
    fn frames_of_other_ranks_pass_unnumbered_and_duplicates_are_refused() {
        let (out, mut inc) = pair();
        match out.route(1, b"plain".to_vec()) {
            Route::Mpi(b) => assert_eq!(b, b"plain"),
            Route::Ring => panic!("rank 1 has no ring"),
        }
        let mut got = Vec::new();
        inc.take_mpi(0, b"plain".to_vec(), &mut got).unwrap();
        assert_eq!(got, vec![(0, b"plain".to_vec())]);
        let mut numbered = 5u64.to_le_bytes().to_vec();
        numbered.push(1);
        inc.take_mpi(1, numbered.clone(), &mut got).unwrap();
        assert!(inc.take_mpi(1, numbered, &mut got).is_err());
        assert!(inc.take_mpi(1, vec![1, 2], &mut got).is_err());
    }

    #[test]
    fn a_ring_frame_behind_one_still_coming_by_mpi_is_not_pending() {
        let (out, mut inc) = pair();
        assert!(out.is_peer(0) && !out.is_peer(1));
        let Route::Mpi(first) = out.route(0, vec![1u8; RING_FRAME_MAX + 1]) else {
            panic!("too large for the ring")
        };
        assert!(matches!(out.route(0, vec![2u8; 8]), Route::Ring));
        let mut got = Vec::new();
        assert!(inc.is_pending());
        inc.drain(&mut got, 64).unwrap();
        assert!(got.is_empty(), "frame 1 must wait for frame 0");
        // Nothing can be taken until frame 0 comes: a parked receiver is
        // not kept awake by it.
        assert!(!inc.is_pending());
        assert!(matches!(out.route(0, vec![3u8; 8]), Route::Ring));
        assert!(inc.is_pending(), "a new record is worth a look");
        inc.drain(&mut got, 64).unwrap();
        assert!(got.is_empty() && !inc.is_pending());
        inc.take_mpi(1, first, &mut got).unwrap();
        inc.drain(&mut got, 64).unwrap();
        let firsts: Vec<u8> = got.iter().map(|(_, f)| f[0]).collect();
        assert_eq!(firsts, vec![1, 2, 3]);
    }

    #[test]
    fn frames_sent_from_a_kept_buffer_keep_their_order_on_both_paths() {
        let (out, mut inc) = pair();
        // Ring, then too large for it (numbered, by MPI), then ring again:
        // the same numbering as frames handed over.
        let mut buffer = vec![1u8; 8];
        assert!(matches!(out.route(0, &buffer), Route::Ring));
        buffer = vec![2u8; RING_FRAME_MAX + 1];
        let Route::Mpi(second) = out.route(0, &buffer) else {
            panic!("too large for the ring")
        };
        buffer = vec![3u8; 8];
        assert!(matches!(out.route(0, buffer.clone()), Route::Ring));
        let mut got = Vec::new();
        inc.drain(&mut got, 64).unwrap();
        inc.take_mpi(1, second, &mut got).unwrap();
        inc.drain(&mut got, 64).unwrap();
        let firsts: Vec<u8> = got.iter().map(|(_, f)| f[0]).collect();
        assert_eq!(firsts, vec![1, 2, 3]);
        assert_eq!(got[1].1.len(), RING_FRAME_MAX + 1);
        // Another node's rank: the bytes, copied, unnumbered.
        match out.route(1, &b"plain"[..]) {
            Route::Mpi(b) => assert_eq!(b, b"plain"),
            Route::Ring => panic!("rank 1 has no ring"),
        }
    }

    #[test]
    fn draining_everything_after_other_frames_still_takes_the_rings() {
        let (out, mut inc) = pair();
        assert!(matches!(out.route(0, b"ring".to_vec()), Route::Ring));
        // A frame of another sender already collected in this turn.
        let mut got = vec![(0, b"other".to_vec())];
        inc.drain(&mut got, usize::MAX).unwrap();
        assert_eq!(got, vec![(0, b"other".to_vec()), (1, b"ring".to_vec())]);
    }
}
