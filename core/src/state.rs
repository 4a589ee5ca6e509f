//! State listings: tasks, actors, objects and resources of every rank
//! (Ray's `ray.util.state` and `ray status`), as data and as printed tables.
//!
//! # Protocol
//!
//! 1. Each rank counts its task runs as they start and end, on a book of
//!    the thread that runs them (a short uncontended lock and a few relaxed
//!    stores per task), and keeps the last [`FAILURES_KEPT`] failures.
//! 2. [`Runtime::state`](crate::Runtime::state) takes this rank's
//!    [`RankState`] and, on several ranks, asks every other live rank for
//!    its own (`StateRequest` → `StateReply`), waiting up to 10 s; ranks
//!    that do not answer are listed as missing.
//! 3. [`ClusterState`]'s `Display` prints the tables; with
//!    `Config::status_file` rank 0 writes them to a file at an interval and
//!    whenever the process gets `SIGUSR1` (see `status`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rkyv::{Archive, Deserialize, Serialize};

use crate::error::Error;
use crate::sync::lock;

mod placement;
pub use placement::{PlacementGroupInfo, PlacementGroupState, PlacementStrategy};

/// How many recent task failures each rank keeps for listings.
pub(crate) const FAILURES_KEPT: usize = 64;

/// Everything one rank reports.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RankState {
    /// The rank.
    pub rank: u32,
    /// Its host name.
    pub host: String,
    /// Each logical resource: (name, total, available now).
    pub resources: Vec<(String, f64, f64)>,
    /// Its object store.
    pub store: StoreUse,
    /// Its task runs.
    pub tasks: TaskCounts,
    /// Tasks running now: (name, milliseconds since they started).
    pub running: Vec<(String, u64)>,
    /// Tasks it sent to other ranks still out: (rank, how many).
    pub sent: Vec<(u32, u64)>,
    /// The last task failures, oldest first.
    pub failures: Vec<TaskFailure>,
    /// Actors living here, and this rank's handles to actors elsewhere.
    pub actors: Vec<ActorState>,
    /// Objects that cross ranks: this rank's that others borrow, and
    /// others' that this rank borrows.
    pub objects: Vec<ObjectState>,
    /// Tasks kept to rebuild lost objects (lineage).
    pub lineage: u64,
    /// Objects of other ranks this rank borrowed and filled itself, from a
    /// task it had just run for their owner, without waiting for the owner
    /// to answer (so far).
    pub borrows_filled_here: u64,
    /// Values of borrowed objects this rank got from the rank that made
    /// them, before their owner had them (so far).
    pub values_from_makers: u64,
    /// Requests for values this rank was making for another rank's task,
    /// taken to answer as soon as the value exists (so far).
    pub asked_as_maker: u64,
    /// Requests for the values of borrowed objects this rank sent, to
    /// their owners or to the ranks making them (so far).
    pub fetches_sent: u64,
    /// Frames this rank sent to have its owners count its borrows (so
    /// far): the borrows one call's arguments need share a frame per owner.
    pub borrow_frames: u64,
    /// Borrows this rank ended in the `Done` of the task whose inputs held
    /// them, instead of in a frame of their own (so far).
    pub borrow_ends_with_done: u64,
    /// Values of its own objects this rank sent unasked to the rank running
    /// a task that takes them, as they were made (so far).
    pub values_pushed: u64,
    /// Frames this rank sent to ranks of its node through shared-memory
    /// rings (so far).
    pub frames_by_ring: u64,
    /// Frames this rank sent to ranks of its node that have a ring, by MPI
    /// instead: too large for the ring, or it was full (so far).
    pub frames_by_mpi_to_node: u64,
    /// Tasks this rank submitted to another rank that it held back until
    /// an earlier one was done or their arguments were ready, because
    /// enough tasks were already waiting there for arguments still being
    /// made (so far).
    pub tasks_held_back: u64,
}

/// A rank's object store.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct StoreUse {
    /// Capacity in bytes.
    pub capacity: u64,
    /// Bytes in use in shared memory.
    pub used: u64,
    /// Objects on disk now.
    pub spilled_objects: u64,
    /// Their bytes.
    pub spilled_bytes: u64,
}

/// Task runs on one rank.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskCounts {
    /// Submitted on this rank (to run here or elsewhere).
    pub submitted: u64,
    /// Started here.
    pub started: u64,
    /// Ended with a value.
    pub finished: u64,
    /// Ended with an error (after their retries).
    pub failed: u64,
    /// Ended cancelled.
    pub cancelled: u64,
    /// Of those started, the ones started straight after another task on
    /// the same worker thread, with that task's CPU passed on: no queue and
    /// no wake-up between the two. A chain of dependent tasks runs this way
    /// (each started after the task that made its last input), and so does
    /// a task waiting for a CPU that the finished task's CPU went to.
    pub started_by_producer: u64,
}

impl TaskCounts {
    /// Started and not ended yet.
    pub fn running(&self) -> u64 {
        self.started
            .saturating_sub(self.finished + self.failed + self.cancelled)
    }
}

/// One task failure.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// The task's name.
    pub task: String,
    /// The error.
    pub error: String,
}

/// An actor as one rank sees it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ActorState {
    /// Its id.
    pub id: String,
    /// Its name (class name unless named).
    pub name: String,
    /// The rank it lives on.
    pub rank: u32,
    /// `alive`, `restarting` or `dead: why`.
    pub state: String,
    /// Times it was re-created (here: after panics; on its creator: after
    /// the loss of its rank).
    pub restarts: u32,
    /// Calls waiting in its mailbox (for actors living here).
    pub queued: u64,
    /// True for the actor itself, false for a handle to one elsewhere.
    pub lives_here: bool,
}

/// An object that crosses ranks.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ObjectState {
    /// Its id.
    pub id: String,
    /// Its size in bytes, where known here.
    pub size: Option<u64>,
    /// The rank that owns it.
    pub owner: u32,
    /// Ranks that hold refs to it and so may hold copies: borrowers (on
    /// its owner), or this rank (on a borrower).
    pub borrowers: Vec<u32>,
    /// Whether the bytes are here (a copy, or the owner's own).
    pub here: bool,
    /// Whether this rank's copy is on disk now.
    pub spilled: bool,
}

/// Every rank's state, as [`Runtime::state`](crate::Runtime::state) gathers it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterState {
    /// The job.
    pub job_id: String,
    /// The ranks that answered, by rank.
    pub ranks: Vec<RankState>,
    /// Live ranks that did not answer in time.
    pub missing: Vec<u32>,
    /// Ranks lost during the job.
    pub lost: Vec<u32>,
    /// The job's placement groups (from the registry on rank 0).
    pub placement_groups: Vec<PlacementGroupInfo>,
}

impl ClusterState {
    /// The job's placement groups, as [`Runtime::placement_group_table`](crate::Runtime::placement_group_table)
    /// lists them.
    pub fn placement_groups(&self) -> &[PlacementGroupInfo] {
        &self.placement_groups
    }
}

/// Per-thread task counts and the stack of tasks running on that thread
/// (a task's `get` may run another inline): function name and start (on
/// the coarse monotonic clock, in ms).
#[derive(Default)]
struct ThreadBook {
    running: Mutex<Vec<(&'static str, u64)>>,
    submitted: AtomicU64,
    started: AtomicU64,
    finished: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    started_by_producer: AtomicU64,
}

/// One rank's task book (step 1).
#[derive(Default)]
pub(crate) struct TaskBook {
    threads: Mutex<Vec<Arc<ThreadBook>>>,
    failures: Mutex<VecDeque<TaskFailure>>,
}

thread_local! {
    /// This thread's book, with the address of the runtime's `TaskBook`
    /// it belongs to (one process may hold several runtimes).
    static MINE: RefCell<Option<(usize, Arc<ThreadBook>)>> = const { RefCell::new(None) };
}

/// A task running on this thread, from [`TaskBook::start`] to
/// [`TaskBook::end`] (on the same thread).
pub(crate) struct Running(());

impl TaskBook {
    /// Runs `f` on this thread's book (made on first use), without touching
    /// any other thread's cache lines.
    fn with_mine<R>(&self, f: impl FnOnce(&ThreadBook) -> R) -> R {
        let key = self as *const TaskBook as usize;
        MINE.with(|m| {
            let mut m = m.borrow_mut();
            if !matches!(&*m, Some((k, _)) if *k == key) {
                let b = Arc::new(ThreadBook::default());
                lock(&self.threads).push(b.clone());
                *m = Some((key, b));
            }
            let (_, b) = m.as_ref().expect("set just above");
            f(b)
        })
    }

    /// A task was submitted on this thread.
    pub(crate) fn submitted(&self) {
        self.with_mine(|b| bump(&b.submitted));
    }

    /// Task `label` (its function) starts on this thread.
    pub(crate) fn start(&self, label: &'static str) -> Running {
        let now = coarse_ms();
        self.with_mine(|b| {
            lock(&b.running).push((label, now));
            bump(&b.started);
        });
        Running(())
    }

    /// The task about to start on this thread was made ready by the one
    /// that just ended here, and runs with no queue in between.
    pub(crate) fn started_by_producer(&self) {
        self.with_mine(|b| bump(&b.started_by_producer));
    }

    /// The task `r` stands for (named `name`) ended: with a value, or
    /// with `error`.
    pub(crate) fn end(&self, r: Running, name: &str, error: Option<&Error>) {
        let Running(()) = r;
        let failure = self.with_mine(|b| {
            lock(&b.running).pop();
            match error {
                None => bump(&b.finished),
                Some(Error::Cancelled { .. }) => bump(&b.cancelled),
                Some(e) => {
                    bump(&b.failed);
                    return Some(e);
                }
            }
            None
        });
        if let Some(e) = failure {
            let mut f = lock(&self.failures);
            if f.len() == FAILURES_KEPT {
                f.pop_front();
            }
            f.push_back(TaskFailure {
                task: name.to_string(),
                error: e.to_string(),
            });
        }
    }

    /// The counts, the running tasks and the failures, summed over threads.
    pub(crate) fn snapshot(&self) -> (TaskCounts, Vec<(String, u64)>, Vec<TaskFailure>) {
        let mut c = TaskCounts::default();
        let mut running = Vec::new();
        let now = coarse_ms();
        for b in lock(&self.threads).iter() {
            c.submitted += b.submitted.load(Ordering::Relaxed);
            c.started += b.started.load(Ordering::Relaxed);
            c.finished += b.finished.load(Ordering::Relaxed);
            c.failed += b.failed.load(Ordering::Relaxed);
            c.cancelled += b.cancelled.load(Ordering::Relaxed);
            c.started_by_producer += b.started_by_producer.load(Ordering::Relaxed);
            for (name, since) in lock(&b.running).iter() {
                running.push((name.to_string(), now.saturating_sub(*since)));
            }
        }
        let failures = lock(&self.failures).iter().cloned().collect();
        (c, running, failures)
    }
}

/// Milliseconds on the coarse monotonic clock (a few ns to read, a few ms
/// of resolution: enough to say how long a task has been running).
fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0;
    if ok {
        ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
    } else {
        0
    }
}

/// Adds one to a counter only its own thread writes.
fn bump(x: &AtomicU64) {
    x.store(x.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Writes `rows` as left-aligned columns under `head`.
fn table(f: &mut fmt::Formatter<'_>, head: &[&str], rows: &[Vec<String>]) -> fmt::Result {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
        let mut s = String::from(" ");
        for (cell, w) in cells.iter().zip(&width) {
            s.push_str(&format!(" {cell:<w$}"));
        }
        writeln!(f, "{}", s.trim_end())
    };
    line(f, &head.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    if rows.is_empty() {
        return writeln!(f, "  (none)");
    }
    for r in rows {
        line(f, r)?;
    }
    Ok(())
}

impl fmt::Display for ClusterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ferry status: job {}, {} rank(s) answered{}{}",
            self.job_id,
            self.ranks.len(),
            if self.missing.is_empty() {
                String::new()
            } else {
                format!(", no answer from {:?}", self.missing)
            },
            if self.lost.is_empty() {
                String::new()
            } else {
                format!(", lost {:?}", self.lost)
            },
        )?;
        writeln!(f, "\nResources")?;
        let rows: Vec<Vec<String>> = self
            .ranks
            .iter()
            .map(|r| {
                let res = r
                    .resources
                    .iter()
                    .filter(|(n, t, _)| *t > 0.0 && n != "memory")
                    .map(|(n, t, a)| format!("{n} {}/{t}", t - a))
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![
                    r.rank.to_string(),
                    r.host.clone(),
                    res,
                    format!("{} / {}", bytes(r.store.used), bytes(r.store.capacity)),
                    format!(
                        "{} ({})",
                        r.store.spilled_objects,
                        bytes(r.store.spilled_bytes)
                    ),
                ]
            })
            .collect();
        table(
            f,
            &["rank", "host", "used/total", "store", "spilled"],
            &rows,
        )?;
        if !self.placement_groups.is_empty() {
            writeln!(f, "\nPlacement groups")?;
            for g in &self.placement_groups {
                writeln!(f, "  {g}")?;
            }
        }
        writeln!(f, "\nTasks")?;
        let rows: Vec<Vec<String>> = self
            .ranks
            .iter()
            .map(|r| {
                let t = &r.tasks;
                vec![
                    r.rank.to_string(),
                    t.submitted.to_string(),
                    t.running().to_string(),
                    t.finished.to_string(),
                    t.failed.to_string(),
                    t.cancelled.to_string(),
                    r.sent
                        .iter()
                        .map(|(to, n)| format!("{n} on {to}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.lineage.to_string(),
                ]
            })
            .collect();
        table(
            f,
            &[
                "rank",
                "submitted",
                "running",
                "finished",
                "failed",
                "cancelled",
                "sent out",
                "lineage",
            ],
            &rows,
        )?;
        let running: Vec<Vec<String>> = self
            .ranks
            .iter()
            .flat_map(|r| {
                r.running
                    .iter()
                    .map(|(n, ms)| vec![r.rank.to_string(), n.clone(), format!("{ms} ms")])
            })
            .collect();
        if !running.is_empty() {
            writeln!(f, "\nRunning tasks")?;
            table(f, &["rank", "task", "for"], &running)?;
        }
        writeln!(f, "\nActors")?;
        let rows: Vec<Vec<String>> = self
            .ranks
            .iter()
            .flat_map(|r| {
                r.actors.iter().map(|a| {
                    vec![
                        r.rank.to_string(),
                        a.id.clone(),
                        a.name.clone(),
                        if a.lives_here {
                            "here".into()
                        } else {
                            format!("on {}", a.rank)
                        },
                        a.state.clone(),
                        a.restarts.to_string(),
                        a.queued.to_string(),
                    ]
                })
            })
            .collect();
        table(
            f,
            &["rank", "id", "name", "where", "state", "restarts", "queued"],
            &rows,
        )?;
        writeln!(f, "\nObjects across ranks")?;
        let rows: Vec<Vec<String>> = self
            .ranks
            .iter()
            .flat_map(|r| {
                r.objects.iter().map(|o| {
                    vec![
                        r.rank.to_string(),
                        o.id.clone(),
                        o.size.map_or("?".into(), bytes),
                        o.owner.to_string(),
                        format!("{:?}", o.borrowers),
                        if o.spilled {
                            "spilled".into()
                        } else if o.here {
                            "here".into()
                        } else {
                            "not here".into()
                        },
                    ]
                })
            })
            .collect();
        table(
            f,
            &["rank", "id", "size", "owner", "held by", "bytes"],
            &rows,
        )?;
        let failures: Vec<Vec<String>> = self
            .ranks
            .iter()
            .flat_map(|r| {
                r.failures
                    .iter()
                    .map(|x| vec![r.rank.to_string(), x.task.clone(), x.error.clone()])
            })
            .collect();
        if !failures.is_empty() {
            writeln!(f, "\nRecent task failures")?;
            table(f, &["rank", "task", "error"], &failures)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_over_threads_and_failures_are_capped() {
        let book = Arc::new(TaskBook::default());
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let book = book.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        book.submitted();
                        let r = book.start("t");
                        let error = if i % 2 == 0 {
                            Error::InvalidArgument(format!("no {i}"))
                        } else {
                            Error::Cancelled { task: "t".into() }
                        };
                        book.end(r, "t", Some(&error));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (c, running, failures) = book.snapshot();
        assert_eq!(
            (c.submitted, c.started, c.failed, c.cancelled),
            (300, 300, 150, 150)
        );
        assert_eq!(c.running(), 0);
        assert!(running.is_empty());
        assert_eq!(failures.len(), FAILURES_KEPT);
    }

    #[test]
    fn a_running_task_is_listed_until_it_ends() {
        let book = TaskBook::default();
        let r = book.start("long");
        let (c, running, _) = book.snapshot();
        assert_eq!(c.running(), 1);
        assert_eq!(running[0].0, "long");
        book.end(r, "long", Some(&Error::Shutdown));
        assert_eq!(book.snapshot().1.len(), 0);
    }

    #[test]
    fn tables_show_every_section() {
        let s = ClusterState {
            job_id: "j".into(),
            ranks: vec![RankState {
                rank: 0,
                host: "h".into(),
                resources: vec![("CPU".into(), 2.0, 1.5)],
                store: StoreUse {
                    capacity: 1 << 20,
                    used: 2048,
                    spilled_objects: 0,
                    spilled_bytes: 0,
                },
                tasks: TaskCounts {
                    submitted: 3,
                    started: 3,
                    finished: 2,
                    failed: 1,
                    cancelled: 0,
                    started_by_producer: 1,
                },
                running: vec![],
                sent: vec![(1, 2)],
                failures: vec![TaskFailure {
                    task: "boom".into(),
                    error: "it broke".into(),
                }],
                actors: vec![],
                objects: vec![],
                lineage: 0,
                borrows_filled_here: 0,
                values_from_makers: 0,
                asked_as_maker: 0,
                fetches_sent: 0,
                borrow_frames: 0,
                borrow_ends_with_done: 0,
                values_pushed: 0,
                frames_by_ring: 0,
                frames_by_mpi_to_node: 0,
                tasks_held_back: 0,
            }],
            missing: vec![3],
            lost: vec![2],
            placement_groups: vec![],
        };
        let out = s.to_string();
        for want in [
            "job j",
            "no answer from [3]",
            "lost [2]",
            "CPU 0.5/2",
            "2.0 KiB / 1.0 MiB",
            "2 on 1",
            "boom",
            "it broke",
            "(none)",
        ] {
            assert!(out.contains(want), "{want:?} missing from:\n{out}");
        }
    }
}
