//! Single-producer single-consumer frame rings in shared memory, and the
//! wake word a receiving rank parks on: every `unsafe` line of the
//! same-node path (raw atomics and copies in memory another process writes,
//! and the `futex` calls).
//!
//! One *inbox* per receiving rank: a header, a wake word, then one ring
//! per sending rank of its node (its *slot*: the sender's index among the
//! node's ranks in rank order).
//!
//! ```text
//! 0          magic u64 | version u32 | slots u32 | owner u32 | ring bytes u32
//! LINE       wake u32 | sleeping u32 | MPI posts u32
//! 2·LINE     slot 0: tail u64 (producer's line) | head u64 (consumer's line) | ring bytes of data
//! ...        slot 1, ...
//! ```
//!
//! Each ring has [`ring_bytes`]`(slots)` bytes of data: an inbox's rings
//! share [`INBOX_BUDGET`], each between 64 KiB and 256 KiB. With 64 KiB
//! rings, a burst of a thousand actor calls from one rank filled its ring
//! and a sixth of the calls' frames went by MPI (2 ranks, 2-core VM);
//! 256 KiB holds such a burst. Rings of 1 MiB held it too but slowed round
//! trips, each frame landing on a line no cache held.
//!
//! `tail` and `head` count bytes ever written and ever consumed; a record
//! starts at `pos % ring` and may wrap: a 16-byte header (length,
//! mark, sequence number), then the frame, padded to 8 bytes. The producer
//! writes a record, then publishes it with a release store of `tail`; the
//! consumer reads up to an acquired `tail`, then frees the bytes with a
//! release store of `head`. A producer killed mid-record never published
//! it. Everything read from the ring is checked (a length past the ring, a
//! wrong mark): a corrupt ring is an error, never a wild copy.

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::Duration;

use crate::{Rank, TransportError};

/// Memory shared with the node's other ranks (a file in `/dev/shm` mapped
/// `MAP_SHARED` read-write), that an inbox lives in.
///
/// # Safety
///
/// An implementor guarantees that [`base`](SharedBytes::base) returns the
/// same 8-byte aligned pointer every time, that the [`len`](SharedBytes::len)
/// bytes from it stay mapped readable and writable for as long as the value
/// lives, and that nothing but the rings of this module writes them once
/// [`format_inbox`] was called (other processes included).
pub unsafe trait SharedBytes: Send + Sync + 'static {
    /// Start of the shared bytes.
    fn base(&self) -> *mut u8;
    /// Number of shared bytes.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The data bytes of one inbox's rings together, at most (see
/// [`ring_bytes`]).
pub const INBOX_BUDGET: usize = 8 << 20;
/// The fewest data bytes a ring has.
const RING_MIN: usize = 64 << 10;
/// The most data bytes a ring has.
const RING_MAX: usize = 256 << 10;
/// The largest frame sent through a ring; larger ones take MPI (in order).
pub const RING_FRAME_MAX: usize = RING_MIN / 4;

/// Bytes of each ring's data in an inbox of `node_ranks` rings: its share
/// of [`INBOX_BUDGET`], rounded down to a power of two, at least 64 KiB
/// and at most 256 KiB. Every rank of a node computes the same.
///
/// ```
/// use ferry_transport::ring_bytes;
///
/// assert_eq!(ring_bytes(2), 256 << 10);
/// assert_eq!(ring_bytes(64), 128 << 10);
/// assert_eq!(ring_bytes(1024), 64 << 10);
/// // A corrupt inbox header may claim any count: still a size, no panic.
/// assert_eq!(ring_bytes(usize::MAX), 64 << 10);
/// ```
pub const fn ring_bytes(node_ranks: usize) -> usize {
    let share = INBOX_BUDGET / if node_ranks == 0 { 1 } else { node_ranks };
    // Below the least (a share of 0 has no highest bit to round down to).
    if share < RING_MIN {
        return RING_MIN;
    }
    let pow2 = 1usize << (usize::BITS - 1 - share.leading_zeros());
    if pow2 < RING_MIN {
        RING_MIN
    } else if pow2 > RING_MAX {
        RING_MAX
    } else {
        pow2
    }
}
/// One cache line and its prefetched neighbour: what separates the fields
/// that different processes write.
const LINE: usize = 128;
const MAGIC: u64 = u64::from_le_bytes(*b"FERRYRNG");
const VERSION: u32 = 2;
const RECORD_MARK: u32 = 0xF3A7_1E55;
const RECORD_HEADER: usize = 16;
/// Bytes one slot (a ring's two lines and its data) takes.
const fn slot_bytes(ring: usize) -> usize {
    2 * LINE + ring
}

/// Bytes an inbox for a node of `node_ranks` ranks takes.
pub const fn inbox_len(node_ranks: usize) -> usize {
    2 * LINE + node_ranks * slot_bytes(ring_bytes(node_ranks))
}

/// Where position `pos` lies in a ring of `ring` data bytes: a power of
/// two, as [`ring_bytes`] makes every ring (and an inbox's check demands),
/// so a mask rather than a division (a 64-bit `div` takes tens of cycles,
/// and a frame's way through a ring took four: two on each side). Below
/// `ring` for any ring of one byte or more.
fn offset_in(pos: u64, ring: usize) -> usize {
    debug_assert!(ring.is_power_of_two(), "a ring of {ring} bytes");
    (pos & (ring as u64).wrapping_sub(1)) as usize
}

/// A shared mapping, shared cheaply (`Clone` is an `Arc` clone).
#[derive(Clone)]
pub(crate) struct Mem(Arc<dyn SharedBytes>);

impl Mem {
    pub(crate) fn new(bytes: Arc<dyn SharedBytes>) -> Mem {
        Mem(bytes)
    }

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(
            off.is_multiple_of(8) && off + 8 <= self.0.len(),
            "ring field out of place"
        );
        // SAFETY: in bounds and 8-aligned (asserted; `base` is 8-aligned by
        // `SharedBytes`' contract); the mapping lives as long as `self`, and
        // these bytes are only ever accessed atomically (by every process).
        unsafe { &*self.0.base().add(off).cast::<AtomicU64>() }
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(
            off.is_multiple_of(4) && off + 4 <= self.0.len(),
            "ring field out of place"
        );
        // SAFETY: as in `u64_at`, for a 4-aligned u32.
        unsafe { &*self.0.base().add(off).cast::<AtomicU32>() }
    }

    /// Copies `src` into the ring of `ring` bytes at `data` (the ring's
    /// first data byte), starting at position `pos`, wrapping at its end.
    fn write_wrapping(&self, (data, ring): (usize, usize), pos: u64, src: &[u8]) {
        let at = offset_in(pos, ring);
        let first = src.len().min(ring - at);
        assert!(data + ring <= self.0.len() && src.len() <= ring);
        // SAFETY: both pieces lie inside the ring's data (asserted above;
        // `at + first <= ring`, and the rest starts at the ring's start).
        // The producer owns bytes between `tail` and `head + ring` (the
        // consumer does not read them until `tail` is
        // published), so nobody accesses them concurrently. `src` is a
        // local buffer: no overlap.
        unsafe {
            let ring = self.0.base().add(data);
            std::ptr::copy_nonoverlapping(src.as_ptr(), ring.add(at), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), ring, src.len() - first);
        }
    }

    /// Copies `dst.len()` bytes from position `pos` of the ring of `ring`
    /// bytes at `data`.
    fn read_wrapping(&self, (data, ring): (usize, usize), pos: u64, dst: &mut [u8]) {
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have one layout, and only
        // initialised bytes are written through the cast.
        let dst = unsafe { &mut *(dst as *mut [u8] as *mut [MaybeUninit<u8>]) };
        self.read_wrapping_uninit((data, ring), pos, dst);
    }

    /// [`read_wrapping`](Self::read_wrapping) into memory not initialised
    /// yet (a frame's buffer is not zeroed first): writes every byte of
    /// `dst`.
    fn read_wrapping_uninit(
        &self,
        (data, ring): (usize, usize),
        pos: u64,
        dst: &mut [MaybeUninit<u8>],
    ) {
        let at = offset_in(pos, ring);
        let (len, first) = (dst.len(), dst.len().min(ring - at));
        assert!(data + ring <= self.0.len() && len <= ring);
        // SAFETY: inside the ring's data, as in `write_wrapping`; the bytes
        // between `head` and the acquired `tail` were published by the
        // producer and are not written again until `head` passes them.
        // `dst` is a local buffer of `len` bytes: no overlap.
        unsafe {
            let ring = self.0.base().add(data);
            let dst = dst.as_mut_ptr().cast::<u8>();
            std::ptr::copy_nonoverlapping(ring.add(at), dst, first);
            std::ptr::copy_nonoverlapping(ring, dst.add(first), len - first);
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

fn corrupt(what: String) -> TransportError {
    TransportError::Ring(what)
}

/// Writes an empty inbox for `node_ranks` senders owned by `owner` into
/// `bytes` (freshly created, all zero), before any other rank maps it.
///
/// # Errors
///
/// [`TransportError::Ring`] when `bytes` is shorter than
/// [`inbox_len`]`(node_ranks)` or not 8-byte aligned.
pub fn format_inbox(
    bytes: &Arc<dyn SharedBytes>,
    owner: Rank,
    node_ranks: usize,
) -> Result<(), TransportError> {
    let mem = Mem::new(bytes.clone());
    if mem.len() < inbox_len(node_ranks) || !(bytes.base() as usize).is_multiple_of(8) {
        return Err(corrupt(format!(
            "an inbox for {node_ranks} ranks needs {} aligned bytes; got {}",
            inbox_len(node_ranks),
            mem.len()
        )));
    }
    let ring = ring_bytes(node_ranks);
    for slot in 0..node_ranks {
        let base = 2 * LINE + slot * slot_bytes(ring);
        mem.u64_at(base).store(0, Ordering::Relaxed);
        mem.u64_at(base + LINE).store(0, Ordering::Relaxed);
    }
    mem.u32_at(LINE).store(0, Ordering::Relaxed);
    mem.u32_at(LINE + 4).store(0, Ordering::Relaxed);
    mem.u32_at(LINE + 8).store(0, Ordering::Relaxed);
    mem.u32_at(8).store(VERSION, Ordering::Relaxed);
    mem.u32_at(12).store(node_ranks as u32, Ordering::Relaxed);
    mem.u32_at(16).store(owner, Ordering::Relaxed);
    mem.u32_at(20).store(ring as u32, Ordering::Relaxed);
    // Last, with release: whoever sees the magic sees the rest.
    mem.u64_at(0).store(MAGIC, Ordering::Release);
    Ok(())
}

/// Checks that `mem` holds an inbox of `owner` with room for `slot`: its
/// rings' data bytes.
fn check_inbox(mem: &Mem, owner: Rank, slot: usize) -> Result<usize, TransportError> {
    if mem.len() < 2 * LINE {
        return Err(corrupt(format!(
            "rank {owner}'s inbox is {} bytes",
            mem.len()
        )));
    }
    let magic = mem.u64_at(0).load(Ordering::Acquire);
    let version = mem.u32_at(8).load(Ordering::Relaxed);
    let slots = mem.u32_at(12).load(Ordering::Relaxed) as usize;
    let found = mem.u32_at(16).load(Ordering::Relaxed);
    let ring = mem.u32_at(20).load(Ordering::Relaxed) as usize;
    if magic != MAGIC || version != VERSION || ring != ring_bytes(slots) {
        return Err(corrupt(format!(
            "rank {owner}'s inbox is not a version-{VERSION} Ferry inbox"
        )));
    }
    if found != owner || slot >= slots || mem.len() < inbox_len(slots) {
        return Err(corrupt(format!(
            "the inbox mapped for rank {owner} belongs to rank {found} with {slots} slots \
             (slot {slot} asked, {} bytes mapped)",
            mem.len()
        )));
    }
    Ok(ring)
}

/// Where one ring's fields and data lie in an inbox.
struct SlotAt {
    /// Its first data byte, and its data bytes.
    data: (usize, usize),
    tail_at: usize,
    head_at: usize,
}

impl SlotAt {
    /// The ring of `slot` in `owner`'s inbox `mem` (checked to be one).
    fn locate(mem: &Mem, owner: Rank, slot: usize) -> Result<SlotAt, TransportError> {
        let ring = check_inbox(mem, owner, slot)?;
        let base = 2 * LINE + slot * slot_bytes(ring);
        Ok(SlotAt {
            data: (base + 2 * LINE, ring),
            tail_at: base,
            head_at: base + LINE,
        })
    }
}

fn padded(len: usize) -> usize {
    RECORD_HEADER + len.div_ceil(8) * 8
}

/// The sending end of one ring (in the receiver's inbox). `&mut self`
/// keeps it single-producer.
pub(crate) struct Producer {
    mem: Mem,
    data: (usize, usize),
    tail_at: usize,
    head_at: usize,
    tail: u64,
    head_seen: u64,
}

impl Producer {
    /// The ring of `slot` in `owner`'s inbox `mem`.
    pub(crate) fn open(mem: Mem, owner: Rank, slot: usize) -> Result<Producer, TransportError> {
        let at = SlotAt::locate(&mem, owner, slot)?;
        let tail = mem.u64_at(at.tail_at).load(Ordering::Acquire);
        let head_seen = mem.u64_at(at.head_at).load(Ordering::Acquire);
        Ok(Producer {
            mem,
            data: at.data,
            tail_at: at.tail_at,
            head_at: at.head_at,
            tail,
            head_seen,
        })
    }

    /// Appends one frame numbered `seq`; `false` (nothing written) when it
    /// is larger than [`RING_FRAME_MAX`] or the ring has no room for it now.
    pub(crate) fn try_push(&mut self, seq: u64, frame: &[u8]) -> bool {
        if frame.len() > RING_FRAME_MAX {
            return false;
        }
        let need = padded(frame.len()) as u64;
        let ring = self.data.1 as u64;
        let room = |head: u64, tail: u64| ring - (tail - head);
        if room(self.head_seen, self.tail) < need {
            self.head_seen = self.mem.u64_at(self.head_at).load(Ordering::Acquire);
            if self.head_seen > self.tail || room(self.head_seen, self.tail) < need {
                return false;
            }
        }
        let mut header = [0u8; RECORD_HEADER];
        header[..4].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&RECORD_MARK.to_le_bytes());
        header[8..].copy_from_slice(&seq.to_le_bytes());
        self.mem.write_wrapping(self.data, self.tail, &header);
        self.mem
            .write_wrapping(self.data, self.tail + RECORD_HEADER as u64, frame);
        self.tail += need;
        self.mem
            .u64_at(self.tail_at)
            .store(self.tail, Ordering::Release);
        true
    }
}

/// What [`Consumer::pop_if`] found next in a ring.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing published.
    Empty,
    /// The record wanted, taken: its frame.
    Frame(Vec<u8>),
    /// A record with another number, left in place.
    Other(u64),
}

/// The receiving end of one ring of this rank's own inbox.
pub(crate) struct Consumer {
    mem: Mem,
    data: (usize, usize),
    tail_at: usize,
    head_at: usize,
    head: u64,
    tail_seen: u64,
    from: Rank,
}

impl Consumer {
    /// The ring of `slot` (whose producer is rank `from`) in `owner`'s inbox.
    pub(crate) fn open(
        mem: Mem,
        owner: Rank,
        slot: usize,
        from: Rank,
    ) -> Result<Consumer, TransportError> {
        let at = SlotAt::locate(&mem, owner, slot)?;
        let head = mem.u64_at(at.head_at).load(Ordering::Acquire);
        Ok(Consumer {
            mem,
            data: at.data,
            tail_at: at.tail_at,
            head_at: at.head_at,
            head,
            tail_seen: head,
            from,
        })
    }

    /// Whether a record is published and not yet taken.
    pub(crate) fn is_pending(&self) -> bool {
        self.published() != self.head
    }

    /// The producer's published end (bytes ever written).
    pub(crate) fn published(&self) -> u64 {
        self.mem.u64_at(self.tail_at).load(Ordering::Acquire)
    }

    /// The next record's length and sequence number, if one is published.
    fn front(&mut self) -> Result<Option<(usize, u64)>, TransportError> {
        if self.head == self.tail_seen {
            self.tail_seen = self.mem.u64_at(self.tail_at).load(Ordering::Acquire);
            if self.head == self.tail_seen {
                return Ok(None);
            }
        }
        let published = self.tail_seen.wrapping_sub(self.head);
        if self.tail_seen < self.head || published > self.data.1 as u64 {
            return Err(corrupt(format!(
                "the ring from rank {} claims {published} bytes",
                self.from
            )));
        }
        let mut header = [0u8; RECORD_HEADER];
        self.mem.read_wrapping(self.data, self.head, &mut header);
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let mark = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
        if mark != RECORD_MARK || len > RING_FRAME_MAX || padded(len) as u64 > published {
            return Err(corrupt(format!(
                "a record from rank {} is damaged (length {len}, mark {mark:#x})",
                self.from
            )));
        }
        Ok(Some((len, seq)))
    }

    /// Takes the next record if its number is `want`, into a buffer of
    /// `spare` if there is one; else says what is next (reading the
    /// record's header once).
    pub(crate) fn pop_if(
        &mut self,
        want: u64,
        spare: &mut Vec<Vec<u8>>,
    ) -> Result<Next, TransportError> {
        Ok(match self.front()? {
            None => Next::Empty,
            Some((len, seq)) if seq == want => {
                Next::Frame(self.take(len, spare.pop().unwrap_or_default()))
            }
            Some((_, seq)) => Next::Other(seq),
        })
    }

    /// Takes the next record: its sequence number and frame.
    #[cfg(test)]
    pub(crate) fn pop(&mut self) -> Result<Option<(u64, Vec<u8>)>, TransportError> {
        Ok(self
            .front()?
            .map(|(len, seq)| (seq, self.take(len, Vec::new()))))
    }

    /// Takes the record [`front`](Self::front) found, of `len` bytes, into
    /// `frame` (emptied first; grown if it has less room).
    fn take(&mut self, len: usize, mut frame: Vec<u8>) -> Vec<u8> {
        frame.clear();
        frame.reserve(len);
        self.mem.read_wrapping_uninit(
            self.data,
            self.head + RECORD_HEADER as u64,
            &mut frame.spare_capacity_mut()[..len],
        );
        // SAFETY: the read wrote all `len` bytes.
        unsafe { frame.set_len(len) };
        self.head += padded(len) as u64;
        self.mem
            .u64_at(self.head_at)
            .store(self.head, Ordering::Release);
        frame
    }
}

/// What a waiter on a [`WakeWord`] found when it looked, its sleep
/// announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) enum Look {
    /// Work is there: no sleep.
    Work,
    /// Nothing: a sleep of the whole timeout, unless woken.
    Nothing,
    /// Nothing seen, but it could not look at everything (another thread
    /// was receiving, and what came after that thread's look and before
    /// this sleep was announced wakes nobody; or a frame sent by MPI is
    /// owed a probe, see [`MpiPosts`]): a sleep of at most this.
    Unsure(Duration),
}

/// How a waiter sleeps on a [`WakeWord`], and which wakes it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) enum Nap {
    /// A short sleep between polls: only this process's threads wake it
    /// (a command queued).
    Light = 1,
    /// The sleep of an idle rank: the node's other ranks wake it too, after
    /// they sent it a frame.
    Deep = 2,
}

/// The word a rank's progress thread parks on when idle, woken by local
/// threads (a queued command) and, once its inbox is in place and the rank
/// is idle, by the node's other ranks after they push a frame (`futex` on
/// shared memory).
#[derive(Clone)]
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) enum WakeWord {
    /// Process-local (no inbox): its words on the heap. Nobody posts to
    /// a local word (only ring peers do, to an inbox's); its third word
    /// stays 0 and only makes [`posts_word`](Self::posts_word) total.
    Local(Arc<[AtomicU32; 3]>),
    /// In an inbox's header.
    Shared(Mem),
}

#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
impl WakeWord {
    pub(crate) fn local() -> WakeWord {
        WakeWord::Local(Arc::new([
            AtomicU32::new(0),
            AtomicU32::new(0),
            AtomicU32::new(0),
        ]))
    }

    /// An inbox's word (checked to be one).
    pub(crate) fn of_inbox(mem: Mem, owner: Rank) -> Result<WakeWord, TransportError> {
        check_inbox(&mem, owner, 0)?;
        Ok(WakeWord::Shared(mem))
    }

    fn words(&self) -> (&AtomicU32, &AtomicU32) {
        match self {
            WakeWord::Local(w) => (&w[0], &w[1]),
            WakeWord::Shared(mem) => (mem.u32_at(LINE), mem.u32_at(LINE + 4)),
        }
    }

    /// The count of frames sent to the owner by MPI ([`post`](Self::post)).
    fn posts_word(&self) -> &AtomicU32 {
        match self {
            WakeWord::Local(w) => &w[2],
            WakeWord::Shared(mem) => mem.u32_at(LINE + 8),
        }
    }

    /// After a frame was sent to this word's owner by MPI rather than
    /// through its ring: counts it, then wakes the owner from a deep nap,
    /// as a push into its ring would. The owner checks the count after it
    /// announces a sleep ([`MpiPosts::owed`]), so a frame sent between its
    /// last probe of MPI and that announcement (which this wake misses) is
    /// received before the sleep rather than after it.
    pub(crate) fn post(&self) {
        // The read-modify-write is ordered before `wake`'s fence and its
        // look at `sleeping` (Dekker's pattern with `wait`).
        self.posts_word().fetch_add(1, Ordering::SeqCst);
        self.wake(Nap::Deep);
    }

    /// Wakes the waiter if it sleeps a nap at least as deep as `from`
    /// takes: `Light` wakes any, `Deep` only a deep one (a load, and a
    /// system call only then).
    pub(crate) fn wake(&self, from: Nap) {
        let (word, sleeping) = self.words();
        // Pairs with the fence in `wait`: either the waiter sees what was
        // published before this call, or this sees it sleeping.
        fence(Ordering::SeqCst);
        if sleeping.load(Ordering::Relaxed) >= from as u32 {
            word.fetch_add(1, Ordering::Release);
            futex_wake(word);
        }
    }

    /// Parks up to `timeout` unless `look()` (called after announcing the
    /// sleep) finds work, or a [`wake`](Self::wake) that takes this `nap`
    /// comes; at most `d` when it says [`Look::Unsure`]`(d)`.
    pub(crate) fn wait(&self, timeout: Duration, nap: Nap, look: impl Fn() -> Look) {
        let (word, sleeping) = self.words();
        let seen = word.load(Ordering::Acquire);
        sleeping.store(nap as u32, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        match look() {
            Look::Work => {}
            Look::Nothing => futex_wait(word, seen, timeout),
            Look::Unsure(most) => futex_wait(word, seen, timeout.min(most)),
        }
        sleeping.store(0, Ordering::Relaxed);
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32 for the call; FUTEX_WAKE only
    // uses its address (shared futex: the word may be in shared memory).
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

fn futex_wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 and `ts` a valid relative
    // timeout, both alive for the call. The kernel returns at once when the
    // word is no longer `seen`; EINTR and timeouts are normal returns.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts as *const libc::timespec,
        );
    }
}

/// The receiving side of [`WakeWord::post`]: which count of MPI frames the
/// last finished probe of MPI covered, so that a waiter about to sleep
/// knows whether one was sent since (and probes again first).
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) struct MpiPosts(AtomicU32);

#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
impl MpiPosts {
    /// Before a probe of MPI: the count it will cover (every frame counted
    /// so far was sent before it looks).
    pub(crate) fn before_probe(word: &WakeWord) -> u32 {
        word.posts_word().load(Ordering::Acquire)
    }

    /// The probe that began at count `seen` found nothing more. (Probes
    /// run under the receiving lock, one at a time, so counts land in
    /// order.)
    pub(crate) fn probed(&self, seen: u32) {
        self.0.store(seen, Ordering::Relaxed);
    }

    /// Whether a frame was sent by MPI since the last finished probe
    /// began. A waiter calls it after announcing its sleep (within
    /// [`WakeWord::wait`]'s `look`): a post after that wakes it instead,
    /// from a deep nap (a light one ends by itself, within a millisecond).
    ///
    /// A count covers the sends *started* before the probe: a frame MPI
    /// had not delivered yet when the probe looked (a rendezvous, a full
    /// queue) is taken as covered and waits for the next poll.
    pub(crate) fn owed(&self, word: &WakeWord) -> bool {
        word.posts_word().load(Ordering::Relaxed) != self.0.load(Ordering::Relaxed)
    }
}

/// Heap memory posing as a shared mapping (tests of the ring logic within
/// one process).
#[cfg(test)]
pub(crate) struct HeapBytes(Box<[AtomicU64]>);

#[cfg(test)]
impl HeapBytes {
    pub(crate) fn shared(len: usize) -> Arc<dyn SharedBytes> {
        Arc::new(HeapBytes(
            (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect(),
        ))
    }
}

// SAFETY: a boxed slice of atomics never moves while it lives, is 8-aligned,
// and every access through the ring goes through atomics or the ring's
// single-writer protocol.
#[cfg(test)]
unsafe impl SharedBytes for HeapBytes {
    fn base(&self) -> *mut u8 {
        self.0.as_ptr() as *mut u8
    }

    fn len(&self) -> usize {
        self.0.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox(slots: usize, owner: Rank) -> Mem {
        let bytes = HeapBytes::shared(inbox_len(slots));
        format_inbox(&bytes, owner, slots).unwrap();
        Mem::new(bytes)
    }

    #[test]
    fn frames_come_out_in_order_across_many_wraps() {
        let mem = inbox(2, 7);
        let mut p = Producer::open(mem.clone(), 7, 1).unwrap();
        let mut c = Consumer::open(mem, 7, 1, 3).unwrap();
        let mut next_out = 0u64;
        for seq in 0..20_000u64 {
            let frame: Vec<u8> = (0..(seq % 1000) as usize)
                .map(|i| (i as u64 ^ seq) as u8)
                .collect();
            while !p.try_push(seq, &frame) {
                let (s, f) = c.pop().unwrap().expect("a full ring has a record");
                assert_eq!(s, next_out);
                assert_eq!(f.len() as u64, s % 1000);
                next_out += 1;
            }
        }
        while let Some((s, f)) = c.pop().unwrap() {
            assert_eq!(s, next_out);
            assert!(
                f.iter()
                    .enumerate()
                    .all(|(i, &b)| b == (i as u64 ^ s) as u8)
            );
            next_out += 1;
        }
        assert_eq!(next_out, 20_000);
    }

    #[test]
    fn a_full_ring_refuses_and_takes_again_once_drained() {
        // Nodes of 1, 64 and 200 ranks: rings of 256, 128 and 64 KiB; the
        // last slot of each, so that every slot before it is sized right.
        for slots in [1, 64, 200] {
            let last = slots - 1;
            let mem = inbox(slots, 0);
            let mut p = Producer::open(mem.clone(), 0, last).unwrap();
            let mut c = Consumer::open(mem, 0, last, 0).unwrap();
            let frame = vec![1u8; RING_FRAME_MAX];
            let mut pushed = 0;
            while p.try_push(pushed, &frame) {
                pushed += 1;
            }
            assert_eq!(pushed as usize, ring_bytes(slots) / padded(RING_FRAME_MAX));
            assert!(
                !p.try_push(99, &vec![0u8; RING_FRAME_MAX + 1]),
                "too large for any ring"
            );
            assert_eq!(
                c.pop_if(1, &mut Vec::new()).unwrap(),
                Next::Other(0),
                "left in place"
            );
            assert_eq!(
                c.pop_if(0, &mut Vec::new()).unwrap(),
                Next::Frame(frame.clone())
            );
            assert!(p.try_push(pushed, &frame));
            while let Some((seq, f)) = c.pop().unwrap() {
                assert_eq!(f, frame, "frame {seq} of a {slots}-slot inbox");
            }
        }
    }

    #[test]
    fn a_node_s_inboxes_share_a_bounded_budget() {
        for ranks in 1..=512 {
            let ring = ring_bytes(ranks);
            assert!(ring.is_power_of_two() && (RING_MIN..=RING_MAX).contains(&ring));
            assert!(
                ranks * ring <= INBOX_BUDGET || ring == RING_MIN,
                "{ranks} ranks"
            );
        }
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_wild_copy() {
        let mem = inbox(1, 0);
        let mut p = Producer::open(mem.clone(), 0, 0).unwrap();
        assert!(p.try_push(0, b"hello"));
        // Overwrite the record's length with one past the ring.
        let data = (2 * LINE + 2 * LINE, ring_bytes(1));
        mem.write_wrapping(data, 0, &u32::MAX.to_le_bytes());
        let mut c = Consumer::open(mem, 0, 0, 5).unwrap();
        let e = c.pop().unwrap_err();
        assert!(
            matches!(e, TransportError::Ring(ref m) if m.contains("rank 5")),
            "{e}"
        );
    }

    #[test]
    fn an_inbox_of_another_rank_or_too_few_slots_is_refused() {
        let mem = inbox(2, 4);
        assert!(Producer::open(mem.clone(), 4, 1).is_ok());
        assert!(Producer::open(mem.clone(), 3, 1).is_err());
        assert!(Producer::open(mem, 4, 2).is_err());
        let unformatted = Mem::new(HeapBytes::shared(inbox_len(2)));
        assert!(Producer::open(unformatted, 0, 0).is_err());
        let short = HeapBytes::shared(inbox_len(2) - 8);
        assert!(format_inbox(&short, 0, 2).is_err());
        // A header whose ring size is not its slot count's.
        let resized = inbox(2, 4);
        resized.u32_at(20).store(64 << 10, Ordering::Relaxed);
        assert!(Producer::open(resized, 4, 1).is_err());
    }

    #[test]
    fn a_producer_thread_and_a_consumer_thread_agree() {
        let mem = inbox(2, 1);
        let mut p = Producer::open(mem.clone(), 1, 0).unwrap();
        let mut c = Consumer::open(mem.clone(), 1, 0, 0).unwrap();
        let wake = WakeWord::of_inbox(mem, 1).unwrap();
        let waker = wake.clone();
        const N: u64 = 50_000;
        let producer = std::thread::spawn(move || {
            for seq in 0..N {
                let frame = seq.to_le_bytes().repeat((seq % 7) as usize + 1);
                while !p.try_push(seq, &frame) {
                    std::thread::yield_now();
                }
                waker.wake(Nap::Deep);
            }
        });
        let mut next = 0;
        while next < N {
            match c.pop().unwrap() {
                Some((seq, frame)) => {
                    assert_eq!(seq, next);
                    assert_eq!(frame, seq.to_le_bytes().repeat((seq % 7) as usize + 1));
                    next += 1;
                }
                // Parks until woken by a push (or 10 ms pass: a lost wake-up
                // would only slow this test down, never fail it).
                None => wake.wait(Duration::from_millis(10), Nap::Deep, || {
                    if c.is_pending() {
                        Look::Work
                    } else {
                        Look::Nothing
                    }
                }),
            }
        }
        producer.join().unwrap();
    }

    #[test]
    fn a_frame_posted_by_mpi_is_owed_until_a_probe_that_began_after_it() {
        let mem = inbox(2, 3);
        let owner = WakeWord::of_inbox(mem.clone(), 3).unwrap();
        let sender = WakeWord::of_inbox(mem, 3).unwrap();
        let posts = MpiPosts::default();
        assert!(!posts.owed(&owner), "nothing sent yet");
        // Sent before a probe began: that probe covers it.
        sender.post();
        assert!(posts.owed(&owner));
        let seen = MpiPosts::before_probe(&owner);
        posts.probed(seen);
        assert!(!posts.owed(&owner));
        // Sent while a probe ran (it may have missed it): still owed.
        let seen = MpiPosts::before_probe(&owner);
        sender.post();
        posts.probed(seen);
        assert!(posts.owed(&owner));
        let seen = MpiPosts::before_probe(&owner);
        posts.probed(seen);
        assert!(!posts.owed(&owner));
    }

    #[test]
    fn an_unsure_waiter_sleeps_briefly_not_its_whole_timeout() {
        let word = WakeWord::local();
        let start = std::time::Instant::now();
        // Nobody wakes it: only the short bound ends the sleep (a full one
        // would take the 600 s timeout).
        word.wait(Duration::from_secs(600), Nap::Deep, || {
            Look::Unsure(Duration::from_millis(1))
        });
        assert!(start.elapsed() < Duration::from_secs(300));
        // Work found after announcing the sleep: no sleep at all.
        word.wait(Duration::from_secs(600), Nap::Deep, || Look::Work);
        assert!(start.elapsed() < Duration::from_secs(300));
    }
}
