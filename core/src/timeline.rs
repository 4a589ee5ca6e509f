//! The timeline (Ray's `ray.timeline()`): what ran where and when, as Chrome
//! trace JSON that Perfetto and `chrome://tracing` open.
//!
//! Each rank records, when recording is on (`Config::timeline`,
//! `FERRY_TIMELINE=1`), one event per task run, actor call and object
//! transfer: its name, start and length, and the thread it ran on. Rank 0's
//! [`Runtime::timeline`](crate::Runtime::timeline) gathers every rank's
//! events and writes them with the rank as the process and the thread
//! (worker, actor, receive thread) as the thread. Times are microseconds
//! since the Unix epoch, so that ranks on different nodes line up as well
//! as their clocks do.

use crate::sync::lock;
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What an event was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub(crate) enum Kind {
    Task,
    ActorCall,
    Transfer,
}

impl Kind {
    fn category(self) -> &'static str {
        match self {
            Kind::Task => "task",
            Kind::ActorCall => "actor call",
            Kind::Transfer => "transfer",
        }
    }
}

/// One recorded span.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct Event {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    /// Microseconds since the Unix epoch.
    pub(crate) start_us: u64,
    pub(crate) dur_us: u64,
    /// The recording thread (see [`Threads`]).
    pub(crate) tid: u32,
    /// Bytes moved, for transfers.
    pub(crate) bytes: u64,
}

/// A rank's events and the names of the threads they ran on.
#[derive(Debug, Clone, Default, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct RankEvents {
    pub(crate) rank: u32,
    pub(crate) events: Vec<Event>,
    pub(crate) threads: Vec<(u32, String)>,
    /// Events not kept because the rank already held [`MAX_EVENTS`].
    pub(crate) dropped: u64,
}

/// Events a rank keeps at most (about 100 MB); later ones are counted, not
/// kept, so that a long job with the timeline on cannot run out of memory.
pub(crate) const MAX_EVENTS: usize = 1_000_000;

static NEXT_TID: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// This thread's id in timelines (small numbers, assigned on first use).
fn thread_id() -> (u32, bool) {
    TID.with(|t| match t.get() {
        0 => {
            let id = NEXT_TID.fetch_add(1, Ordering::Relaxed);
            t.set(id);
            (id, true)
        }
        id => (id, false),
    })
}

/// A rank's recorder.
pub(crate) struct Recorder {
    on: bool,
    origin: Instant,
    origin_us: u64,
    state: Mutex<RankEvents>,
}

impl Recorder {
    pub(crate) fn new(rank: u32, on: bool) -> Recorder {
        let origin_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Recorder {
            on,
            origin: Instant::now(),
            origin_us,
            state: Mutex::new(RankEvents {
                rank,
                ..RankEvents::default()
            }),
        }
    }

    /// Whether events are recorded.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    /// The start of a span, if recording (`None` costs nothing more).
    #[inline]
    pub(crate) fn start(&self) -> Option<Instant> {
        self.on.then(Instant::now)
    }

    /// Records a span that began at `start` (from [`start`](Self::start))
    /// and ends now.
    pub(crate) fn record(
        &self,
        start: Option<Instant>,
        kind: Kind,
        name: impl Into<String>,
        bytes: u64,
    ) {
        let Some(start) = start else { return };
        let end = Instant::now();
        let (tid, new) = thread_id();
        let us = |t: Instant| {
            self.origin_us
                .saturating_add(t.saturating_duration_since(self.origin).as_micros() as u64)
        };
        let event = Event {
            kind,
            name: name.into(),
            start_us: us(start),
            dur_us: end.saturating_duration_since(start).as_micros() as u64,
            tid,
            bytes,
        };
        let mut s = lock(&self.state);
        if s.events.len() >= MAX_EVENTS {
            s.dropped += 1;
            return;
        }
        if new || !s.threads.iter().any(|(t, _)| *t == tid) {
            let name = std::thread::current()
                .name()
                .map_or_else(|| format!("thread {tid}"), str::to_string);
            s.threads.push((tid, name));
        }
        s.events.push(event);
    }

    /// What was recorded so far.
    pub(crate) fn snapshot(&self) -> RankEvents {
        lock(&self.state).clone()
    }
}

/// Replies to a timeline request, gathered by rank 0.
pub(crate) struct Replies<T = RankEvents> {
    got: Mutex<Vec<T>>,
    arrived: std::sync::Condvar,
    /// Held by the one gathering at a time.
    pub(crate) one: Mutex<()>,
}

impl<T> Default for Replies<T> {
    fn default() -> Self {
        Replies {
            got: Mutex::new(Vec::new()),
            arrived: std::sync::Condvar::new(),
            one: Mutex::new(()),
        }
    }
}

impl<T> Replies<T> {
    /// A rank's reply arrived.
    pub(crate) fn deposit(&self, events: T) {
        lock(&self.got).push(events);
        self.arrived.notify_all();
    }

    /// Forgets earlier replies (before a new request).
    pub(crate) fn clear(&self) {
        lock(&self.got).clear();
    }

    /// Waits until `n` replies are in or `deadline` passes; what came.
    pub(crate) fn wait_for(&self, n: usize, deadline: Instant) -> Vec<T> {
        let mut got = lock(&self.got);
        while got.len() < n {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            got = self
                .arrived
                .wait_timeout(got, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        std::mem::take(&mut *got)
    }
}

fn escape(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Every rank's events as a Chrome trace (the JSON object format):
/// `"X"` (complete) events with the rank as `pid` and the thread as `tid`,
/// and `"M"` metadata naming each process and thread.
pub(crate) fn chrome_trace(ranks: &[RankEvents]) -> String {
    let mut out = String::from("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    let mut first = true;
    let mut push = |line: String, out: &mut String| {
        if !first {
            out.push_str(",\n");
        }
        first = false;
        out.push_str(&line);
    };
    for r in ranks {
        push(
            format!(
                "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{},\"tid\":0,\"args\":{{\"name\":{}}}}}",
                r.rank,
                escape(&if r.dropped == 0 {
                    format!("rank {}", r.rank)
                } else {
                    format!("rank {} ({} later events not kept)", r.rank, r.dropped)
                })
            ),
            &mut out,
        );
        push(
            format!(
                "{{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":{0},\"tid\":0,\"args\":{{\"sort_index\":{0}}}}}",
                r.rank
            ),
            &mut out,
        );
        for (tid, name) in &r.threads {
            push(
                format!(
                    "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{},\"tid\":{tid},\"args\":{{\"name\":{}}}}}",
                    r.rank,
                    escape(name)
                ),
                &mut out,
            );
        }
        for e in &r.events {
            let args = if e.kind == Kind::Transfer {
                format!("{{\"bytes\":{}}}", e.bytes)
            } else {
                "{}".to_string()
            };
            push(
                format!(
                    "{{\"ph\":\"X\",\"cat\":{},\"name\":{},\"pid\":{},\"tid\":{},\"ts\":{},\"dur\":{},\"args\":{args}}}",
                    escape(e.kind.category()),
                    escape(&e.name),
                    r.rank,
                    e.tid,
                    e.start_us,
                    e.dur_us.max(1)
                ),
                &mut out,
            );
        }
    }
    out.push_str("\n]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_is_json_with_named_ranks_and_threads() {
        let rec = Recorder::new(3, true);
        let t = rec.start();
        rec.record(t, Kind::Task, "square \"quoted\"", 0);
        rec.record(rec.start(), Kind::Transfer, "object 7 from rank 1", 4096);
        let snap = rec.snapshot();
        assert_eq!(snap.events.len(), 2);
        let json: serde_json::Value = serde_json::from_str(&chrome_trace(&[snap])).unwrap();
        let events = json["traceEvents"].as_array().unwrap();
        let x: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(x.len(), 2);
        assert_eq!(x[0]["name"], "square \"quoted\"");
        assert_eq!(x[0]["pid"], 3);
        assert_eq!(x[1]["args"]["bytes"], 4096);
        assert!(
            events
                .iter()
                .any(|e| e["name"] == "process_name" && e["args"]["name"] == "rank 3")
        );
        assert!(events.iter().any(|e| e["name"] == "thread_name"));
    }

    #[test]
    fn a_full_recorder_counts_what_it_drops() {
        let rec = Recorder::new(0, true);
        for _ in 0..MAX_EVENTS + 3 {
            rec.record(rec.start(), Kind::Task, "t", 0);
        }
        let snap = rec.snapshot();
        assert_eq!((snap.events.len(), snap.dropped), (MAX_EVENTS, 3));
        assert!(chrome_trace(&[snap]).contains("rank 0 (3 later events not kept)"));
    }

    #[test]
    fn nothing_is_recorded_when_off() {
        let rec = Recorder::new(0, false);
        assert!(rec.start().is_none());
        rec.record(rec.start(), Kind::Task, "x", 0);
        assert!(rec.snapshot().events.is_empty());
    }
}
