//! Heartbeats: a rank that stops answering (stopped by a signal, hung, its
//! message thread dead) is declared lost within a bounded time, instead of
//! leaving the others waiting for it forever.
//!
//! # Protocol
//!
//! 1. Once a rank has said `Hello` to every rank, it starts one thread that
//!    every `timeout / 4` sends `Heartbeat` to the ranks it watches: rank 0
//!    watches every other rank, every other rank watches rank 0 (2·(n−1)
//!    frames per period in all, none between two non-zero ranks). It beats
//!    while it still waits to hear from the others (a rank whose greeting
//!    never came waits up to the start-up timeout, and must not look silent
//!    meanwhile), but judges nobody until every rank has said `Hello`.
//! 2. Any frame from a rank is a sign of life ([`Heartbeat::heard`], noted
//!    at the watcher's next look), so a busy rank needs no extra frame.
//! 3. A watched rank not heard from for `timeout` is declared lost through
//!    the transport ([`Transport::declare_lost`]): over loopback every rank
//!    then handles it as a lost rank (retries, lineage, actor restarts);
//!    under MPI the job ends with a message naming it (`MPI_Abort`).
//!    A watcher that was itself kept off the CPU for more than two periods
//!    starts every window again instead (what starved it likely starved
//!    the frames too): a loaded machine delays a verdict, never fakes one.
//! 4. Watching ends when the job ends (rank 0 says `Shutdown`), so ranks
//!    that leave at the end are never declared lost.
//!
//! The timeout is `Config::heartbeat_timeout` / `FERRY_HEARTBEAT_TIMEOUT`
//! (default 10 s under MPI, off for loopback ranks unless set).
//!
//! [`Transport::declare_lost`]: ferry_transport::Transport::declare_lost

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferry_transport::Rank;

use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::wire::{self, Msg};
use crate::sync::lock;

/// The default timeout for ranks of an MPI job.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One rank's heartbeat state: when each rank was last heard from.
pub(crate) struct Heartbeat {
    timeout: Option<Duration>,
    epoch: Instant,
    /// Milliseconds after `epoch` at which the watcher last found each
    /// rank's `fresh` mark (or began its window).
    last: Box<[AtomicU64]>,
    /// Set by each frame from a rank, taken by the watcher at its next
    /// look, which reads the clock after taking it: a frame costs its
    /// receiver a load, not a clock read (a stencil's every step brings
    /// one), and the time heard is never earlier than the frame, only
    /// later by up to the gap between two looks (a period, up to two
    /// before a starved watcher starts every window again). A verdict
    /// comes that much later, never sooner.
    fresh: Box<[AtomicBool]>,
    /// Set once every rank has said `Hello`: silence counts from then on.
    judging: AtomicBool,
    /// Set when the job ends: nobody is watched any more.
    done: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Heartbeat {
    /// `timeout: None`: no heartbeats.
    pub(crate) fn new(size: u32, timeout: Option<Duration>) -> Heartbeat {
        Heartbeat {
            timeout,
            epoch: Instant::now(),
            last: (0..size).map(|_| AtomicU64::new(0)).collect(),
            fresh: (0..size).map(|_| AtomicBool::new(false)).collect(),
            judging: AtomicBool::new(false),
            done: AtomicBool::new(false),
            thread: Mutex::new(None),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A frame came from `from`.
    pub(crate) fn heard(&self, from: Rank) {
        // Relaxed: a mark read by one watcher thread, which reads the
        // clock only after taking it: a mark seen set here is taken (and
        // the time read) after this frame. Written only when not set yet:
        // the line stays shared while frames keep coming.
        if let Some(h) = self.fresh.get(from as usize)
            && !h.load(Ordering::Relaxed)
        {
            h.store(true, Ordering::Relaxed);
        }
    }

    /// The watcher's look: each rank heard from since the look before was
    /// last heard from at `clock()` (ms after `epoch`), read after its mark
    /// is taken, so never before the frames that set it.
    fn take_heard(&self, clock: impl Fn() -> u64) {
        for (h, t) in self.fresh.iter().zip(self.last.iter()) {
            if h.load(Ordering::Relaxed) && h.swap(false, Ordering::Relaxed) {
                t.fetch_max(clock(), Ordering::Relaxed);
            }
        }
    }

    /// The job ends: stop watching (ranks that leave now are not lost).
    pub(crate) fn finish(&self) {
        self.done.store(true, Ordering::Release);
        let thread = lock(&self.thread).take();
        if let Some(h) = thread {
            h.thread().unpark();
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    /// Step 1, once every rank has said `Hello`: silence from now on counts.
    pub(crate) fn judge_from_now(&self) {
        let now = self.now_ms();
        for t in self.last.iter() {
            t.fetch_max(now, Ordering::Relaxed);
        }
        self.judging.store(true, Ordering::Release);
    }

    /// Step 1: starts the beating thread (after this rank's `Hello`s).
    pub(crate) fn start<H: ClusterHost>(
        &self,
        inner: &Arc<H>,
        c: &Cluster<H>,
    ) -> crate::Result<()> {
        let Some(timeout) = self.timeout else {
            return Ok(());
        };
        if c.size() < 2 {
            return Ok(());
        }
        let now = self.now_ms();
        for t in self.last.iter() {
            t.store(now, Ordering::Relaxed);
        }
        let weak = Arc::downgrade(inner);
        let rank = c.rank;
        let handle = std::thread::Builder::new()
            .name(format!("ferry-r{rank}-heartbeat"))
            .spawn(move || watch(weak, rank, timeout))
            .map_err(|e| crate::Error::Thread {
                what: "the heartbeat thread".into(),
                source: Arc::new(e),
            })?;
        *lock(&self.thread) = Some(handle);
        Ok(())
    }
}

/// The ranks `rank` watches (and sends heartbeats to).
fn watched(rank: Rank, size: u32) -> Vec<Rank> {
    if rank == 0 {
        (1..size).collect()
    } else {
        vec![0]
    }
}

/// Steps 1 and 3, until the job ends or the runtime is gone.
fn watch<H: ClusterHost>(weak: Weak<H>, rank: Rank, timeout: Duration) {
    crate::log::set_thread_rank(rank);
    let period = (timeout / 4).max(Duration::from_millis(5));
    let beat = wire::encode(&Msg::Heartbeat);
    let mut last_tick = Instant::now();
    loop {
        {
            let Some(inner) = weak.upgrade() else { return };
            let Some(c) = inner.cluster() else { return };
            let hb = &c.heartbeat;
            if hb.done.load(Ordering::Acquire)
                || c.stop.load(Ordering::Acquire)
                || c.transport.is_lost(c.rank)
            {
                return; // a lost rank judges nobody
            }
            let now = hb.now_ms();
            // This thread itself was kept off the CPU for a while (an
            // overloaded machine, a stopped process resumed): so, likely,
            // were the threads that would have sent or received the
            // others' frames. Silence measured across that gap proves
            // nothing: give every watched rank a fresh window.
            let starved = last_tick.elapsed() > period * 2;
            last_tick = Instant::now();
            if starved {
                for t in hb.last.iter() {
                    t.fetch_max(now, Ordering::Relaxed);
                }
            }
            hb.take_heard(|| hb.now_ms());
            let judging = hb.judging.load(Ordering::Acquire);
            for r in watched(c.rank, c.size()) {
                if c.transport.is_lost(r) || c.lost_ranks().contains(&r) {
                    continue;
                }
                let _ = c.transport.send(r, beat.clone());
                if !judging {
                    continue;
                }
                let last = hb.last[r as usize].load(Ordering::Relaxed);
                let silent = Duration::from_millis(now.saturating_sub(last));
                if silent > timeout && !hb.done.load(Ordering::Acquire) {
                    let reason = format!(
                        "rank {r} stopped answering: nothing heard from it for {:.1} s \
                         (heartbeat timeout {:.1} s, FERRY_HEARTBEAT_TIMEOUT)",
                        silent.as_secs_f64(),
                        timeout.as_secs_f64()
                    );
                    tracing::error!("{reason}");
                    if let Err(e) = c.transport.declare_lost(r, &reason) {
                        tracing::error!("could not declare rank {r} lost: {e}");
                    }
                }
            }
        }
        std::thread::park_timeout(period);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_zero_watches_everyone_and_the_others_watch_rank_zero() {
        assert_eq!(watched(0, 4), vec![1, 2, 3]);
        assert_eq!(watched(2, 4), vec![0]);
        assert!(watched(0, 1).is_empty());
    }

    #[test]
    fn a_frame_counts_as_heard_at_the_watchers_next_look() {
        let hb = Heartbeat::new(3, Some(Duration::from_secs(1)));
        hb.heard(1);
        hb.heard(1);
        hb.heard(9); // an unknown rank is ignored
        hb.take_heard(|| 500);
        assert_eq!(hb.last[1].load(Ordering::Relaxed), 500);
        assert_eq!(hb.last[2].load(Ordering::Relaxed), 0, "rank 2 sent nothing");
        // A mark is taken once: silence after it is not heard at the next look.
        hb.take_heard(|| 900);
        assert_eq!(hb.last[1].load(Ordering::Relaxed), 500);
        hb.heard(2);
        hb.take_heard(|| 1_300);
        assert_eq!(hb.last[2].load(Ordering::Relaxed), 1_300);
        assert_eq!(hb.last[1].load(Ordering::Relaxed), 500);
        // The clock is read after the mark is taken: a frame that comes
        // while the look reads it is stamped no earlier than itself.
        hb.heard(1);
        hb.take_heard(|| {
            assert!(
                !hb.fresh[1].load(Ordering::Relaxed),
                "taken before the clock"
            );
            1_700
        });
        assert_eq!(hb.last[1].load(Ordering::Relaxed), 1_700);
    }
}
