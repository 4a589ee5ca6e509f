//! [`Runtime`]: starting, the object API (`put`, `get`, `wait`), resources,
//! and shutdown.
//!
//! # Shutdown
//!
//! 1. Mark the runtime shut; new submissions fail with [`Error::Shutdown`].
//! 2. Kill every actor (queued calls fail) and join its thread.
//! 3. Stop and join the workers; tasks that never started fail.
//! 4. Remove the shared-memory file (if start-up has not already: see
//!    below). Views and refs the user still holds stay readable (the
//!    mapping lives until the last one is dropped).

pub(crate) mod actor_handle;
mod actor_host;
pub(crate) mod actor_pool;
pub(crate) mod archived_actor_handle;
pub(crate) mod arg;
pub(crate) mod call_result;
mod channels;
pub(crate) mod current;
pub(crate) mod generator;
pub(crate) mod lender;
pub(crate) mod method_body;
pub(crate) mod named;
mod objects;
mod placement_group;
mod rank_host;
#[cfg(test)]
pub(crate) mod spy_transport;
mod start;

pub use start::init;
pub(crate) use start::{Placement, Prepared, unlink_named};
pub mod loopback;
pub(crate) mod status_file;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::actor::engine::ActorTable;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::object::object_ref::ObjectRef;
use crate::object::store::ObjectStore;
use crate::sync::lock;
use crate::task::pool::TaskPool;

/// The shared state of one rank's runtime.
pub(crate) struct Inner {
    pub(crate) rank: u32,
    pub(crate) job_id: String,
    /// The object store: arena, ids, nested-ref capture.
    pub(crate) store: ObjectStore,
    /// The scheduler and the resources it grants.
    pub(crate) pool: Arc<TaskPool>,
    pub(crate) actors: ActorTable,
    /// Named actors living here, and the job's name registry (rank 0's).
    pub(crate) names: crate::actor::names::NameBook,
    /// Streams of items (streaming returns) this rank's callers read.
    pub(crate) streams: crate::object::stream::StreamBook,
    /// The job's placement-group registry (rank 0's).
    pub(crate) groups: crate::cluster::group_registry::GroupRegistry,
    pub(crate) spin: Duration,
    pub(crate) cluster: Option<Cluster<Inner>>,
    /// This job's checkpoint directory.
    pub(crate) checkpoint_dir: std::path::PathBuf,
    /// Actors restored from checkpoints.
    restored: Mutex<Vec<crate::actor::checkpoint::Restored>>,
    shut: AtomicBool,
    shutdown_lock: Mutex<()>,
}

impl Inner {
    /// An actor was restored from its checkpoint: said once, and listed.
    pub(crate) fn note_restored(&self, r: crate::actor::checkpoint::Restored) {
        eprintln!(
            "ferry: rank {}: restored actor {} from {} (taken after {} calls)",
            self.rank,
            r.name,
            r.path.display(),
            r.calls
        );
        lock(&self.restored).push(r);
    }

    pub(crate) fn cluster(&self) -> Option<&Cluster<Inner>> {
        self.cluster.as_ref()
    }

    pub(crate) fn is_shut(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }
}

/// What [`Runtime::wait`] returns: `(ready, not_ready)`.
pub type WaitResult<T> = (Vec<ObjectRef<T>>, Vec<ObjectRef<T>>);

/// A handle to a running Ferry runtime (one rank's object store, scheduler
/// and actors). Cheap to clone; tasks get one from [`current`](crate::current).
///
/// The value [`init`] returns owns the runtime: dropping it (or calling
/// [`shutdown`](Self::shutdown)) stops every thread and removes the
/// shared-memory file. Clones do not own it.
///
/// ```
/// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(2.0))?;
/// let r = rt.put(&42u64)?;
/// assert_eq!(*rt.get(&r)?, 42);
/// rt.shutdown()?;
/// # Ok::<(), ferry_core::Error>(())
/// ```
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
    owner: bool,
}

impl Clone for Runtime {
    fn clone(&self) -> Self {
        Runtime {
            inner: self.inner.clone(),
            owner: false,
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("rank", &self.inner.rank)
            .field("job_id", &self.inner.job_id)
            .field("store", &self.inner.store.arena.path())
            .finish()
    }
}

impl Runtime {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Runtime {
        Runtime {
            inner,
            owner: false,
        }
    }

    /// This process's rank (0 for the driver).
    pub fn rank(&self) -> u32 {
        self.inner.rank
    }

    /// This rank's share of its node (CPUs grouped by core, NUMA node,
    /// GPUs), as the binding plan gave it.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().object_store_memory(16 << 20))?;
    /// let binding = rt.binding();
    /// assert_eq!(binding.cpus, ferry_launcher::affinity::allowed_cpus()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn binding(&self) -> ferry_launcher::RankBinding {
        self.inner.pool.pinning.binding().clone()
    }

    /// Whether this rank's worker threads are bound to its cores (see
    /// [`Config::pin_threads`](crate::Config::pin_threads)).
    pub fn pins_threads(&self) -> bool {
        self.inner.pool.pinning.binds()
    }

    /// How many ranks the job has.
    pub fn world_size(&self) -> u32 {
        self.inner.cluster().map_or(1, |c| c.size())
    }

    /// This rank's resources (for one rank, the same as
    /// [`cluster_resources`](Self::cluster_resources)).
    pub fn rank_resources(&self) -> BTreeMap<String, f64> {
        let mut m = self.inner.pool.ledger.totals();
        m.insert(
            "object_store_memory".into(),
            self.inner.store.arena.capacity() as f64,
        );
        m
    }

    /// On a rank other than 0: runs tasks and actors for the others until
    /// rank 0 ends the job, then shuts this rank down. Returns at once on
    /// rank 0 and on a single rank.
    pub fn serve(&self) -> Result<()> {
        let Some(c) = self.inner.cluster() else {
            return Ok(());
        };
        if self.inner.rank == 0 {
            return Ok(());
        }
        let ended = c.wait_end();
        let stopped = self.shutdown();
        ended.and(stopped)
    }

    /// The job id that names this job's shared-memory files.
    pub fn job_id(&self) -> &str {
        &self.inner.job_id
    }

    /// The shared-memory file of this rank's object store. Its name is
    /// removed once the ranks of the node have mapped each other's stores
    /// (at start), so the path no longer exists while the runtime runs: a
    /// job killed in any way leaves nothing behind.
    pub fn store_path(&self) -> &std::path::Path {
        self.inner.store.arena.path()
    }

    /// Bytes of the object store's shared-memory arena in use. Objects
    /// whose archive is at most `ferry_store::INLINE_MAX` bytes (a task's
    /// few numbers) are kept in their slot instead, as Ray keeps small
    /// objects out of its shared-memory store, and are not counted here
    /// (those that `put_vec_with` and `put_file` write in place are in the
    /// arena whatever their size).
    pub fn store_used(&self) -> usize {
        self.inner.store.arena.used()
    }

    /// Cancels the task that makes `r` (Ray's `ray.cancel(ref)`), and the
    /// tasks it submitted: a task that has not started never runs; a running
    /// one sees [`is_cancelled`](crate::is_cancelled) turn true (a long task
    /// checks it and returns early). Either way `get` on `r` gives
    /// [`Error::Cancelled`]. A finished task is left as it is. Works for
    /// tasks sent to other ranks too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an object no task of this rank makes
    /// (a `put`, an actor call's result, another rank's object).
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let r = rt.put(&1u8)?;
    /// assert!(matches!(rt.cancel(&r), Err(ferry_core::Error::InvalidArgument(_))));
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn cancel<T>(&self, r: &ObjectRef<T>) -> Result<()> {
        self.cancel_with(r, true)
    }

    /// [`cancel`](Self::cancel), choosing whether the tasks it submitted are
    /// cancelled too (Ray's `recursive`).
    ///
    /// # Errors
    ///
    /// As [`cancel`](Self::cancel).
    pub fn cancel_with<T>(&self, r: &ObjectRef<T>, recursive: bool) -> Result<()> {
        let nothing = |what: &str| {
            Err(Error::InvalidArgument(format!(
                "{} is {what}, not a task's result: there is nothing to cancel",
                r.slot.id
            )))
        };
        if r.slot.is_put() {
            return nothing("a put object");
        }
        if r.slot.borrow().is_some() {
            return nothing("another rank's object");
        }
        if r.slot.is_ready() {
            return Ok(());
        }
        if let Some(p) = r.slot.producer() {
            p.cancel(recursive);
            return Ok(());
        }
        if let Some(c) = self.inner.cluster()
            && crate::cluster::cancel_remote(c, r.slot.id.as_u64(), recursive)
        {
            return Ok(());
        }
        nothing("an actor call's result")
    }

    /// Writes the timeline of the job so far (Ray's `ray.timeline`): every
    /// task run, actor call and object transfer of every rank, as Chrome
    /// trace JSON (open it in Perfetto, <https://ui.perfetto.dev>, or
    /// `chrome://tracing`), with each rank a process and each worker or
    /// actor thread a thread. Called on rank 0 it gathers all ranks' events
    /// (ranks that do not answer within 30 s are left out, with a warning);
    /// elsewhere it writes that rank's own.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when recording is off (start the runtime
    /// with [`Config::timeline`](crate::Config::timeline) or
    /// `FERRY_TIMELINE=1`) or the file cannot be written.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0).timeline(true))?;
    /// let path = std::env::temp_dir().join(format!("ferry-doc-timeline-{}.json", std::process::id()));
    /// rt.timeline(&path)?;
    /// assert!(std::fs::read_to_string(&path)?.contains("traceEvents"));
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeline(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let path = path.as_ref();
        if !self.inner.pool.timeline.is_on() {
            return Err(Error::InvalidArgument(
                "the timeline is not being recorded: start the runtime with \
                 Config::timeline(true) or FERRY_TIMELINE=1"
                    .into(),
            ));
        }
        let mut ranks = vec![self.inner.pool.timeline.snapshot()];
        if self.inner.rank == 0
            && let Some(c) = self.inner.cluster()
        {
            ranks.extend(crate::cluster::gather_timelines(
                c,
                Instant::now() + Duration::from_secs(30),
            ));
        }
        ranks.sort_by_key(|r| r.rank);
        std::fs::write(path, crate::timeline::chrome_trace(&ranks)).map_err(|e| {
            Error::InvalidArgument(format!(
                "cannot write the timeline to {}: {e}",
                path.display()
            ))
        })
    }

    /// Tasks, actors, objects and resources of every rank (Ray's
    /// `ray.util.state` listings and `ray status`); its `Display` prints
    /// them as tables. Other ranks are asked for theirs and have 10 s to
    /// answer; those that do not are listed in `missing`.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let s = rt.state();
    /// assert_eq!(s.ranks.len(), 1);
    /// assert!(s.to_string().contains("Tasks"));
    /// # rt.shutdown()?;
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn state(&self) -> crate::state::ClusterState {
        let mut ranks = vec![rank_state(&self.inner)];
        let mut lost = Vec::new();
        let mut missing = Vec::new();
        if let Some(c) = self.inner.cluster() {
            ranks.extend(crate::cluster::gather_states(
                c,
                Instant::now() + Duration::from_secs(10),
            ));
            lost = c.lost_ranks();
            missing = (0..c.size())
                .filter(|r| !lost.contains(r) && !ranks.iter().any(|s| s.rank == *r))
                .collect();
        }
        ranks.sort_by_key(|r| r.rank);
        crate::state::ClusterState {
            job_id: self.inner.job_id.clone(),
            ranks,
            missing,
            lost,
            placement_groups: self.placement_group_table().unwrap_or_default(),
        }
    }

    /// The actors this rank restored from checkpoints (see
    /// [`ActorOptions::checkpoint_every`](crate::ActorOptions::checkpoint_every)).
    pub fn restored_actors(&self) -> Vec<crate::actor::checkpoint::Restored> {
        lock(&self.inner.restored).clone()
    }

    /// This job's checkpoint directory on this rank.
    pub fn checkpoint_dir(&self) -> &std::path::Path {
        &self.inner.checkpoint_dir
    }

    /// This rank's spill directory (`None` when spilling is off).
    pub fn spill_dir(&self) -> Option<&std::path::Path> {
        self.inner.store.arena.spill_dir()
    }

    /// What this rank has spilled to disk and read back so far.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// assert_eq!(rt.spill_stats().spilled_objects, 0);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn spill_stats(&self) -> ferry_store::SpillStats {
        self.inner.store.arena.spill_stats()
    }

    /// What holds this rank's object store now: pinned, lent, being
    /// written, idle and spilled objects (what a put that timed out
    /// reports).
    pub fn store_held(&self) -> ferry_store::HeldReport {
        self.inner.store.arena.held()
    }

    /// Worker threads started so far (the pool grows when tasks block).
    pub fn worker_threads(&self) -> usize {
        self.inner.pool.sched.thread_count()
    }

    /// Failed objects dropped without anybody calling `get` on them.
    pub fn unhandled_errors(&self) -> u64 {
        self.inner.store.unhandled.count.load(Ordering::Relaxed)
    }

    /// Stops the runtime: kills the actors, joins every thread, removes the
    /// shared-memory file. Calling it again does nothing.
    pub fn shutdown(&self) -> Result<()> {
        let inner = &self.inner;
        let _one_at_a_time = lock(&inner.shutdown_lock);
        if inner.shut.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(c) = inner.cluster()
            && inner.rank == 0
        {
            c.broadcast_shutdown();
        }
        inner.actors.shutdown();
        drop(inner.names.clear());
        inner.pool.sched.shutdown();
        // Finished tasks' remains held for a submitter go now, while the
        // cluster can still hear of what they held.
        inner.pool.leftovers.drain_all();
        if let Some(c) = inner.cluster() {
            c.close();
        }
        inner.store.mailbox.close();
        crate::runtime::current::clear_runtime_if(inner);
        tracing::debug!(rank = inner.rank, "runtime stopped");
        inner.store.arena.unlink().map_err(Error::from)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.owner
            && let Err(e) = self.shutdown()
        {
            eprintln!("ferry: shutdown: {e}");
        }
    }
}

/// This rank's part of [`Runtime::state`].
pub(crate) fn rank_state(inner: &Inner) -> crate::state::RankState {
    let totals = inner.pool.ledger.totals();
    let available = inner.pool.ledger.available();
    let resources = totals
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                *t,
                available.get(name).copied().unwrap_or(0.0),
            )
        })
        .collect();
    let spill = inner.store.arena.spill_stats();
    let (tasks, running, failures) = inner.pool.tasks.snapshot();
    let mut actors = inner.actors.states();
    let (mut objects, mut sent, mut lineage, mut filled) = (Vec::new(), Vec::new(), 0, 0);
    let (mut from_makers, mut asked_as_maker, mut fetches_sent, mut borrow_frames) = (0, 0, 0, 0);
    let mut frames = (0, 0);
    let mut pushed = 0;
    let mut held_back = 0;
    let mut ends_with_done = 0;
    let mut host = crate::host::name();
    if let Some(c) = inner.cluster() {
        actors.extend(c.actors.states());
        objects = c.object_states();
        sent = c.sent_counts();
        lineage = c.lineage.len() as u64;
        filled = c.filled_here.load(std::sync::atomic::Ordering::Relaxed);
        from_makers = c
            .values_from_makers
            .load(std::sync::atomic::Ordering::Relaxed);
        asked_as_maker = c.asked_as_maker.load(std::sync::atomic::Ordering::Relaxed);
        fetches_sent = c.fetches_sent.load(std::sync::atomic::Ordering::Relaxed);
        borrow_frames = c.borrow_frames.load(std::sync::atomic::Ordering::Relaxed);
        pushed = c.values_pushed.load(std::sync::atomic::Ordering::Relaxed);
        frames = c.transport.frame_paths();
        held_back = c.ahead.held_back();
        ends_with_done = c.ends_with_done.load(std::sync::atomic::Ordering::Relaxed);
        host = c.host();
    }
    crate::state::RankState {
        rank: inner.rank,
        host,
        resources,
        store: crate::state::StoreUse {
            capacity: inner.store.arena.capacity() as u64,
            used: inner.store.arena.used() as u64,
            spilled_objects: spill.on_disk_objects,
            spilled_bytes: spill.on_disk_bytes,
        },
        tasks,
        running,
        sent,
        failures,
        actors,
        objects,
        lineage,
        borrows_filled_here: filled,
        values_from_makers: from_makers,
        asked_as_maker,
        fetches_sent,
        borrow_frames,
        borrow_ends_with_done: ends_with_done,
        values_pushed: pushed,
        frames_by_ring: frames.0,
        frames_by_mpi_to_node: frames.1,
        tasks_held_back: held_back,
    }
}
