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
//!
//! # The store at start
//!
//! 1. Each rank sizes its store: the configured size, or the node's budget
//!    (30% of memory, at most 90% of `/dev/shm`'s free space) divided among
//!    the node's ranks; start fails if the node's stores together do not
//!    fit in `/dev/shm`.
//! 2. It creates the segment file, sparse, and its ranks exchange where
//!    their stores are (MPI: the node hello; loopback: one process).
//! 3. Each rank maps the segments of its node's other ranks, and a barrier
//!    waits until every rank has.
//! 4. Each rank removes its segment's name (and its spill directory's): the
//!    memory lives as long as some mapping does, so a job killed in any way
//!    leaves nothing in `/dev/shm`, and `ferry clean` is only for files of
//!    older versions and of ranks killed before step 4.
//! 5. The rank sets the store's NUMA policy, then reserves its pages
//!    (`fallocate`): a `/dev/shm` that filled meanwhile is an error here,
//!    and no later touch of the store can end in `SIGBUS`.

pub(crate) mod actor_handle;
mod actor_host;
pub(crate) mod archived_actor_handle;
pub(crate) mod arg;
pub(crate) mod call_result;
pub mod loopback;
pub(crate) mod status_file;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_store::{Arena, PodElement, ReadOnlySegment, StoreConfig};
use ferry_transport::{Rank, Transport};

use crate::actor::engine::ActorTable;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::IdGen;
use crate::object::cell::{Bytes, Slot, StoredValue, TypeTag, UnhandledSink, Waiter};
use crate::object::exports::{self, Exports};
use crate::object::object_ref::ObjectRef;
use crate::object::view::View;
use crate::resources::gpu_pool::GpuPool;
use crate::resources::ledger::{Ledger, Request};
use crate::resources::pinning::Pinning;
use crate::signal::{self, Signal};
use crate::task::context;
use crate::task::scheduler::Scheduler;
use crate::values::Object;

/// The shared state of one rank's runtime.
pub(crate) struct Inner {
    pub(crate) rank: u32,
    pub(crate) job_id: String,
    pub(crate) ids: IdGen,
    pub(crate) arena: Arena,
    pub(crate) ledger: Ledger,
    pub(crate) gpus: GpuPool,
    pub(crate) pinning: Pinning,
    pub(crate) sched: Scheduler,
    pub(crate) exports: Arc<Exports>,
    pub(crate) unhandled: Arc<UnhandledSink>,
    pub(crate) actors: ActorTable,
    pub(crate) spin: Duration,
    pub(crate) empty_env: Arc<[(String, String)]>,
    pub(crate) cluster: Option<Cluster>,
    pub(crate) timeline: crate::timeline::Recorder,
    /// Task counts for state listings.
    pub(crate) tasks: crate::state::TaskBook,
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
        self.restored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
    }

    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    pub(crate) fn is_shut(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }

    /// Reserves `req` and picks its GPUs, if all of it is free now.
    pub(crate) fn try_grant(&self, req: &Request) -> Option<Arc<[u32]>> {
        if !self.ledger.try_acquire(req) {
            return None;
        }
        match self.gpus.assign(req.gpus()) {
            Some(ids) => Some(ids.into()),
            None => {
                self.ledger.release(req);
                None
            }
        }
    }

    /// Gives back what [`try_grant`](Self::try_grant) reserved.
    pub(crate) fn release_grant(&self, req: &Request, gpu_ids: &[u32]) {
        self.gpus.release(gpu_ids, req.gpus());
        self.ledger.release(req);
    }

    /// Serializes `value` into the arena (one copy), capturing nested refs.
    pub(crate) fn store_value<T: Object>(&self, value: &T) -> Result<StoredValue> {
        let (block, contained) =
            exports::capture(&self.exports, || ferry_store::put(&self.arena, value));
        Ok(StoredValue {
            block: Bytes::Own(self.arena.seal(block?)),
            type_tag: TypeTag::of::<T>(),
            type_name: std::any::type_name::<T>().into(),
            validated: AtomicBool::new(true),
            _contained: contained,
        })
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
            .field("store", &self.inner.arena.path())
            .finish()
    }
}

/// Starts a runtime on this process as one rank (Ray's `ray.init`).
///
/// Fails with a clear error when the process was started by `mpirun` or
/// `srun` as several ranks but Ferry was built without its `mpi` feature.
///
/// ```
/// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0).object_store_memory(64 << 20))?;
/// assert_eq!(rt.rank(), 0);
/// # Ok::<(), ferry_core::Error>(())
/// ```
pub fn init(cfg: Config) -> Result<Runtime> {
    cfg.check()?;
    let world = ferry_launcher::discover()?;
    crate::log::install(world.rank)?;
    #[cfg(feature = "mpi")]
    if world.size > 1 {
        return init_mpi(cfg, &world);
    }
    ferry_launcher::require_single_rank(&world)?;
    let job_id = cfg.job_id.clone().unwrap_or(world.job_id.clone());
    let prepared = Prepared::new(&cfg, world.rank, job_id, Placement::Alone)?;
    let arena = prepared.create_arena()?;
    // No neighbour will map it: its name can go at once.
    unlink_named(&arena);
    prepared.start(arena, None)
}

/// Removes the names of `arena`'s segment and spill directory once every
/// rank that reads it has mapped it (step 4 of the start, in the module
/// docs). A name that cannot be removed is only a file left behind (for
/// `ferry clean`), not a reason to stop.
pub(crate) fn unlink_named(arena: &Arena) {
    if let Err(e) = arena.unlink() {
        tracing::warn!("could not remove the object store's file name: {e}");
    }
}

/// Same-node neighbours' stores, mapped read-only at start (by rank).
pub(crate) type Neighbours = HashMap<Rank, Arc<ReadOnlySegment>>;

/// Starts this process as one rank of an MPI job. Rank 0 returns its
/// runtime and runs the program; every other rank serves tasks until rank 0
/// ends the job, then exits the process (status 0, or 1 with a message), so
/// that the same program runs unchanged on one rank and on many.
#[cfg(feature = "mpi")]
fn init_mpi(cfg: Config, world: &ferry_launcher::World) -> Result<Runtime> {
    let job_id = cfg.job_id.clone().unwrap_or(world.job_id.clone());
    // Sized from the launcher's count of ranks per node (the node hello
    // comes later: MPI starts with the store already exposed).
    let arena = create_arena(&cfg, &job_id, world.rank, world.local_size)?;
    let region =
        ferry_transport::Region::new(crate::cluster::arena_region::ArenaRegion(arena.clone()));
    let transport = ferry_transport::MpiTransport::start(region)
        .map_err(|e| Error::Init(format!("MPI: {e}")))?;
    if transport.rank() != world.rank || transport.size() != world.size {
        return Err(Error::Init(format!(
            "the launcher ({}) says rank {} of {} but MPI says rank {} of {}: \
             is this program linked against the MPI library of the launcher \
             that started it?",
            world.launcher,
            world.rank,
            world.size,
            transport.rank(),
            transport.size()
        )));
    }
    // Which ranks share this node, and what their launcher gave each: the
    // binding plan splits only what ranks share.
    let topo = ferry_launcher::Topology::detect()
        .map_err(|e| Error::Init(format!("cannot read this node's topology: {e}")))?;
    let hello = crate::cluster::node_hello::Hello::of(&topo, arena.path());
    let hellos = transport
        .all_gather_bytes(hello.encode())
        .map_err(|e| Error::Init(format!("MPI: {e}")))?;
    let (local, me) = crate::cluster::node_hello::local_ranks(&hellos, world.rank)
        .map_err(|e| Error::Init(format!("MPI start-up exchange: {e}")))?;
    // A launcher that does not say counts every rank as a neighbour
    // (smaller stores, no harm); one that says too few oversizes them.
    if local.len() > world.local_size as usize {
        tracing::warn!(
            "the launcher ({}) says {} ranks share this node, their host names say {}: \
             the object store was sized for {}",
            world.launcher,
            world.local_size,
            local.len(),
            world.local_size
        );
    }
    let stores = crate::cluster::node_hello::neighbour_stores(&hellos, world.rank)
        .map_err(|e| Error::Init(format!("MPI start-up exchange: {e}")))?;
    // Step 3: map the node's other stores, then wait for every rank to
    // have done so before any name goes (step 4). Nothing that can fail on
    // one rank alone comes between the two exchanges.
    let neighbours: Neighbours = if force_rma_of(&cfg) {
        Neighbours::new()
    } else {
        stores
            .into_iter()
            .filter_map(|(rank, path)| match ferry_store::open_readonly(&path) {
                Ok(seg) => Some((rank, Arc::new(seg))),
                Err(e) => {
                    tracing::warn!(
                        "cannot map rank {rank}'s store, its objects are read one-sidedly: {e}"
                    );
                    None
                }
            })
            .collect()
    };
    // One byte each (an exchange of nothing is refused by some MPIs).
    transport
        .all_gather_bytes(vec![1])
        .map_err(|e| Error::Init(format!("MPI: {e}")))?;
    unlink_named(&arena);
    let mut prepared = Prepared::new(
        &cfg,
        world.rank,
        job_id,
        Placement::Node { topo, local, me },
    )?;
    prepared.set_neighbours(neighbours);
    let rt = prepared.start(arena, Some(transport))?;
    if rt.rank() == 0 {
        return Ok(rt);
    }
    let served = rt.serve();
    drop(rt);
    match served {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("ferry: rank {}: {e}", world.rank);
            std::process::exit(1)
        }
    }
}

/// Where a rank runs, for its binding plan.
pub(crate) enum Placement {
    /// The only rank of its node (one process, no MPI).
    Alone,
    /// One of `ranks` loopback ranks: threads of one process, left unbound
    /// unless the config asks (tests); they share the node's memory.
    Loopback { ranks: u32 },
    /// Local rank `me` of a node whose ranks were given `local` by their
    /// launcher; `topo` is this rank's view of the node.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    Node {
        topo: ferry_launcher::Topology,
        local: Vec<ferry_launcher::Granted>,
        me: usize,
    },
}

/// A rank's shared-memory arena, before the rest of the rank exists (MPI
/// exposes it as a window at start); `node_ranks` ranks share its node.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn create_arena(
    cfg: &Config,
    job_id: &str,
    rank: u32,
    node_ranks: u32,
) -> Result<Arena> {
    arena(store_config(cfg, job_id, rank, node_ranks))
}

/// The store settings of `job_id`'s rank `rank`, one of `node_ranks` on
/// its node: the configured capacity, or the node's budget divided among
/// its ranks.
fn store_config(cfg: &Config, job_id: &str, rank: u32, node_ranks: u32) -> StoreConfig {
    let mut store = StoreConfig::new(job_id.to_string(), rank, 0);
    store.node_ranks = node_ranks.max(1);
    store.capacity = cfg
        .object_store_memory
        .unwrap_or_else(|| ferry_store::default_capacity(&store.dir, store.node_ranks));
    if cfg.spill != Some(false) {
        store.spill_root = Some(
            cfg.spill_dir
                .clone()
                .unwrap_or_else(ferry_store::default_spill_root),
        );
    }
    store.put_timeout = cfg
        .put_timeout
        .unwrap_or(crate::config::DEFAULT_PUT_TIMEOUT);
    store
}

/// Creates a rank's arena (its pages not yet reserved: `Prepared::start`
/// does that once their NUMA policy is set), first removing what a crashed
/// earlier run of the same job left (files no live rank holds; this job's
/// only).
fn arena(cfg: StoreConfig) -> Result<Arena> {
    let spills = cfg
        .spill_root
        .as_deref()
        .map(|root| ferry_store::clean_spill(root, Some(&cfg.job_id)));
    let cleaned = ferry_store::clean(&cfg.dir, Some(&cfg.job_id)).map(|mut removed| {
        if let Some(Ok(more)) = spills {
            removed.extend(more);
        }
        removed
    });
    match cleaned {
        Ok(removed) => {
            for path in removed {
                tracing::warn!(
                    "removed {}, left by a rank of job {} that ended without cleaning up",
                    path.display(),
                    cfg.job_id
                );
            }
        }
        Err(e) => tracing::debug!("could not look for stale files: {e}"),
    }
    Ok(Arena::create_unreserved(&cfg)?)
}

/// Whether same-node neighbours' objects are read one-sidedly rather than
/// in place (the config, else `FERRY_FORCE_RMA=1`).
#[cfg(feature = "mpi")]
fn force_rma_of(cfg: &Config) -> bool {
    cfg.force_rma
        .unwrap_or_else(|| std::env::var("FERRY_FORCE_RMA").is_ok_and(|v| v == "1"))
}

/// A rank's settings, checked, before anything is started.
pub(crate) struct Prepared {
    rank: u32,
    job_id: String,
    totals: Vec<(String, f64)>,
    gpu_ids: Vec<u32>,
    pinning: Pinning,
    store: StoreConfig,
    timeline: bool,
    /// Where rank 0 writes the status tables, and how often.
    status: Option<(std::path::PathBuf, Duration)>,
    checkpoint_dir: std::path::PathBuf,
    base_threads: usize,
    max_threads: usize,
    spin: Duration,
    force_rma: bool,
    /// How long a silent rank may stay silent (see `heartbeat`).
    heartbeat: Option<Duration>,
    /// Same-node neighbours' stores, mapped before their names went.
    neighbours: Neighbours,
}

impl Prepared {
    pub(crate) fn new(
        cfg: &Config,
        rank: u32,
        job_id: String,
        placement: Placement,
    ) -> Result<Prepared> {
        let heartbeat = match (cfg.heartbeat_timeout, &placement) {
            (Some(t), _) => (!t.is_zero()).then_some(t),
            (None, Placement::Loopback { .. }) => None,
            (None, _) => Some(crate::cluster::heartbeat::DEFAULT_TIMEOUT),
        };
        let node_ranks = match &placement {
            Placement::Alone => 1,
            Placement::Loopback { ranks } => *ranks,
            Placement::Node { local, .. } => local.len() as u32,
        };
        let (topo, local, me, bind_default) = match placement {
            Placement::Alone | Placement::Loopback { .. } => {
                let topo = ferry_launcher::Topology::detect().unwrap_or_else(|_| {
                    ferry_launcher::Topology::from_cpus(
                        ferry_launcher::affinity::allowed_cpus().unwrap_or_default(),
                    )
                });
                let local = vec![ferry_launcher::Granted::of(&topo)];
                // A lone rank (`cargo run`) shares its cores with the
                // program's own threads: binding workers there cost up to
                // 40% of task throughput on a 2-core VM, so it is opt-in.
                (topo, local, 0, false)
            }
            Placement::Node { topo, local, me } => (topo, local, me, true),
        };
        let binding = ferry_launcher::plan_rank(&topo, &local, me)
            .map_err(|e| Error::Init(format!("cannot plan this rank's binding: {e}")))?;
        let cores = binding.cpus.len().max(1);
        // The config's values are checked (`Config::check`) before this.
        let num_cpus = cfg.num_cpus.unwrap_or(cores as f64);
        let num_gpus = cfg.num_gpus.unwrap_or(binding.gpus.len() as f64);
        // The rank's own devices first; logical GPUs asked for beyond them
        // (Ray's `init(num_gpus=8)` on a machine without) are numbered on.
        let mut gpu_ids: Vec<u32> = binding
            .gpus
            .iter()
            .copied()
            .take(num_gpus as usize)
            .collect();
        let mut next = topo.gpus.iter().map(|g| g.ordinal + 1).max().unwrap_or(0);
        while gpu_ids.len() < num_gpus as usize {
            gpu_ids.push(next);
            next += 1;
        }
        let mut totals = vec![
            ("CPU".to_string(), num_cpus),
            ("GPU".to_string(), num_gpus),
            (
                "memory".to_string(),
                cfg.memory
                    .unwrap_or(ferry_launcher::affinity::total_memory_bytes() as f64),
            ),
        ];
        totals.extend(cfg.resources.iter().cloned());
        let bind = cfg.pin_threads.unwrap_or(bind_default);
        let store = store_config(cfg, &job_id, rank, node_ranks);
        let checkpoint_dir = cfg
            .checkpoint_dir
            .clone()
            .unwrap_or_else(|| ferry_store::PrivateDir::locate().path().join("checkpoints"))
            .join(&job_id);
        Ok(Prepared {
            rank,
            job_id,
            totals,
            gpu_ids,
            pinning: Pinning::new(topo, binding, bind),
            store,
            timeline: cfg.timeline.unwrap_or(false),
            checkpoint_dir,
            status: cfg.status_file.clone().map(|p| {
                let every = cfg
                    .status_every
                    .unwrap_or(crate::config::DEFAULT_STATUS_EVERY);
                (p, every)
            }),
            base_threads: (num_cpus.ceil() as usize).clamp(1, cores),
            max_threads: cfg.max_threads.unwrap_or(256),
            spin: cfg.spin.unwrap_or(Duration::from_micros(50)),
            force_rma: match cfg.force_rma {
                Some(yes) => yes,
                None => crate::config::switch("FERRY_FORCE_RMA")?.unwrap_or(false),
            },
            heartbeat,
            neighbours: Neighbours::new(),
        })
    }

    /// Whether same-node neighbours' stores are read one-sidedly instead of
    /// mapped.
    pub(crate) fn force_rma(&self) -> bool {
        self.force_rma
    }

    /// The same-node neighbours' stores this rank reads in place, mapped
    /// before their names were removed.
    pub(crate) fn set_neighbours(&mut self, neighbours: Neighbours) {
        self.neighbours = neighbours;
    }

    /// This rank's shared-memory arena.
    pub(crate) fn create_arena(&self) -> Result<Arena> {
        arena(self.store.clone())
    }

    /// Starts the rank: workers, and with a transport the cluster protocol.
    pub(crate) fn start(
        self,
        arena: Arena,
        transport: Option<Arc<dyn Transport>>,
    ) -> Result<Runtime> {
        let quiet = crate::config::switch("FERRY_IGNORE_UNHANDLED_ERRORS")?.unwrap_or(false);
        // Every rank, so that a SIGUSR1 never ends a job (see `status`).
        crate::runtime::status_file::catch_usr1();
        // Step 5: the NUMA policy first, so that reserving places the pages;
        // the first step now, so that a /dev/shm already full fails here
        // (the rest is reserved as the store grows).
        self.pinning.bind_arena(&arena);
        if let Err(e) = arena.reserve_to(ferry_store::RESERVE_STEP) {
            let _ = arena.unlink();
            return Err(e.into());
        }
        let ledger = Ledger::new(self.totals);
        let neighbours = self.neighbours;
        let cluster = transport.map(|t| {
            let mut own = ledger.totals();
            own.insert("object_store_memory".into(), arena.capacity() as f64);
            Cluster::new(
                t,
                own,
                arena.path().to_path_buf(),
                self.force_rma,
                self.heartbeat,
                neighbours,
            )
        });
        let inner = Arc::new(Inner {
            rank: self.rank,
            job_id: self.job_id,
            ids: IdGen::new(self.rank),
            arena,
            ledger,
            gpus: GpuPool::new(self.gpu_ids),
            pinning: self.pinning,
            sched: Scheduler::new(self.base_threads, self.max_threads, self.spin),
            exports: Arc::new(Exports::default()),
            unhandled: Arc::new(UnhandledSink {
                count: Default::default(),
                quiet,
            }),
            actors: ActorTable::default(),
            spin: self.spin,
            empty_env: Arc::from(Vec::new()),
            cluster,
            timeline: crate::timeline::Recorder::new(self.rank, self.timeline),
            tasks: Default::default(),
            checkpoint_dir: self.checkpoint_dir,
            restored: Mutex::new(Vec::new()),
            shut: AtomicBool::new(false),
            shutdown_lock: Mutex::new(()),
        });
        if let Err(e) = inner.sched.start(&inner) {
            inner.sched.shutdown();
            let _ = inner.arena.unlink();
            return Err(Error::Init(format!("could not start worker threads: {e}")));
        }
        if inner.cluster.is_some()
            && let Err(e) = Cluster::start(&inner, Duration::from_secs(60))
        {
            let rt = Runtime {
                inner,
                owner: false,
            };
            let _ = rt.shutdown();
            return Err(e);
        }
        context::set_runtime(Some(inner.clone()));
        if let Some((path, every)) = self.status
            && inner.rank == 0
        {
            crate::runtime::status_file::start(&inner, path, every);
        }
        tracing::debug!(rank = inner.rank, job = %inner.job_id, "runtime started");
        Ok(Runtime { inner, owner: true })
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
        self.inner.pinning.binding().clone()
    }

    /// Whether this rank's worker threads are bound to its cores (see
    /// [`Config::pin_threads`]).
    pub fn pins_threads(&self) -> bool {
        self.inner.pinning.binds()
    }

    /// How many ranks the job has.
    pub fn world_size(&self) -> u32 {
        self.inner.cluster().map_or(1, |c| c.size())
    }

    /// This rank's resources (for one rank, the same as
    /// [`cluster_resources`](Self::cluster_resources)).
    pub fn rank_resources(&self) -> BTreeMap<String, f64> {
        let mut m = self.inner.ledger.totals();
        m.insert(
            "object_store_memory".into(),
            self.inner.arena.capacity() as f64,
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
        self.inner.arena.path()
    }

    /// Bytes of the object store in use.
    pub fn store_used(&self) -> usize {
        self.inner.arena.used()
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
        if !self.inner.timeline.is_on() {
            return Err(Error::InvalidArgument(
                "the timeline is not being recorded: start the runtime with \
                 Config::timeline(true) or FERRY_TIMELINE=1"
                    .into(),
            ));
        }
        let mut ranks = vec![self.inner.timeline.snapshot()];
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
        }
    }

    /// The actors this rank restored from checkpoints (see
    /// [`ActorOptions::checkpoint_every`](crate::ActorOptions::checkpoint_every)).
    pub fn restored_actors(&self) -> Vec<crate::actor::checkpoint::Restored> {
        self.inner
            .restored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// This job's checkpoint directory on this rank.
    pub fn checkpoint_dir(&self) -> &std::path::Path {
        &self.inner.checkpoint_dir
    }

    /// This rank's spill directory (`None` when spilling is off).
    pub fn spill_dir(&self) -> Option<&std::path::Path> {
        self.inner.arena.spill_dir()
    }

    /// What this rank has spilled to disk and read back so far.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// assert_eq!(rt.spill_stats().spilled_objects, 0);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn spill_stats(&self) -> ferry_store::SpillStats {
        self.inner.arena.spill_stats()
    }

    /// What holds this rank's object store now: pinned, lent, being
    /// written, idle and spilled objects (what a put that timed out
    /// reports).
    pub fn store_held(&self) -> ferry_store::HeldReport {
        self.inner.arena.held()
    }

    /// Worker threads started so far (the pool grows when tasks block).
    pub fn worker_threads(&self) -> usize {
        self.inner.sched.thread_count()
    }

    /// Failed objects dropped without anybody calling `get` on them.
    pub fn unhandled_errors(&self) -> u64 {
        self.inner.unhandled.count.load(Ordering::Relaxed)
    }

    fn check_live(&self) -> Result<()> {
        if self.inner.is_shut() {
            Err(Error::Shutdown)
        } else {
            Ok(())
        }
    }

    /// Stores a value and returns a ref to it (Ray's `ray.put`). The value is
    /// serialized straight into shared memory: one copy of its bytes.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let r = rt.put(&vec![1.5f64, 2.5])?;
    /// assert_eq!(rt.get(&r)?.as_slice(), &[1.5, 2.5]);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn put<T: Object>(&self, value: &T) -> Result<ObjectRef<T>> {
        self.check_live()?;
        let stored = self.inner.store_value(value)?;
        Ok(ObjectRef::from_slot(Slot::ready(
            self.inner.ids.object(),
            stored,
        )))
    }

    /// Builds a `Vec<P>` of `len` numbers directly in shared memory: `fill`
    /// writes the elements in place, so nothing is copied at all.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let r = rt.put_vec_with::<f64>(4, |xs| {
    ///     for (i, x) in xs.iter_mut().enumerate() { *x = i as f64; }
    /// })?;
    /// assert_eq!(rt.get(&r)?.as_slice(), &[0.0, 1.0, 2.0, 3.0]);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn put_vec_with<P>(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [P]),
    ) -> Result<ObjectRef<Vec<P>>>
    where
        P: PodElement,
        Vec<P>: Object,
    {
        self.check_live()?;
        let block = ferry_store::put_pod_slice_with::<P>(&self.inner.arena, len, fill)?;
        Ok(self.pod_vec_ref(block))
    }

    /// The ref of a sealed block holding a `Vec<P>` built in place (valid by
    /// construction).
    fn pod_vec_ref<P>(&self, block: ferry_store::Block) -> ObjectRef<Vec<P>>
    where
        P: PodElement,
        Vec<P>: Object,
    {
        let stored = StoredValue {
            block: Bytes::Own(self.inner.arena.seal(block)),
            type_tag: TypeTag::of::<Vec<P>>(),
            type_name: std::any::type_name::<Vec<P>>().into(),
            validated: AtomicBool::new(true),
            _contained: Vec::new(),
        };
        ObjectRef::from_slot(Slot::ready(self.inner.ids.object(), stored))
    }

    /// Puts a whole file into the store as a `Vec<u8>`, read from disk
    /// straight into shared memory (io_uring, several reads in flight; `pread`
    /// where io_uring is not allowed), with no buffer in between: a dataset
    /// or a checkpoint becomes an object every task can view.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the file cannot be opened,
    /// [`Error::Store`] when the store cannot hold it or a read fails.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("ferry-doc-put-file-{}", std::process::id()));
    /// std::fs::write(&path, b"a checkpoint")?;
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0).object_store_memory(16 << 20))?;
    /// let r = rt.put_file(&path)?;
    /// assert_eq!(rt.get(&r)?.as_slice(), b"a checkpoint");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_file(&self, path: impl AsRef<std::path::Path>) -> Result<ObjectRef<Vec<u8>>> {
        let path = path.as_ref();
        let len = std::fs::metadata(path)
            .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?
            .len();
        self.put_file_range(path, 0, len)
    }

    /// Puts `len` bytes of a file, from byte `offset` on, into the store as a
    /// `Vec<u8>` (as [`put_file`](Self::put_file) does for a whole file).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the file cannot be opened or the range
    /// goes past its end, [`Error::Store`] when the store cannot hold it or
    /// a read fails.
    pub fn put_file_range(
        &self,
        path: impl AsRef<std::path::Path>,
        offset: u64,
        len: u64,
    ) -> Result<ObjectRef<Vec<u8>>> {
        self.check_live()?;
        let path = path.as_ref();
        let bad =
            |why: String| Error::InvalidArgument(format!("cannot read {}: {why}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let size = file.metadata().map_err(|e| bad(e.to_string()))?.len();
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= size)
            .ok_or_else(|| {
                bad(format!(
                    "bytes {offset}..{} asked for, the file has {size}",
                    offset.saturating_add(len)
                ))
            })?;
        debug_assert!(end <= size);
        let len =
            usize::try_from(len).map_err(|_| bad(format!("{len} bytes do not fit in memory")))?;
        let block = ferry_store::try_put_pod_slice_with::<u8>(&self.inner.arena, len, |dst| {
            ferry_store::read_exact_at(&file, offset, dst)
                .map(|_| ())
                .map_err(|source| ferry_store::StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })
        })?;
        Ok(self.pod_vec_ref(block))
    }

    /// Stores bytes that claim to be an rkyv archive of a `T` (read from a
    /// file, received from elsewhere). They are validated at the first `get`:
    /// bytes that are not a valid archive give [`Error::Corrupt`], never
    /// undefined behaviour.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let r = rt.put_archive::<Vec<u64>>(&[0xff; 16])?;
    /// assert!(matches!(rt.get(&r), Err(ferry_core::Error::Corrupt { .. })));
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn put_archive<T: Object>(&self, bytes: &[u8]) -> Result<ObjectRef<T>> {
        self.check_live()?;
        let mut block = self.inner.arena.alloc(bytes.len())?;
        block.as_mut_slice().copy_from_slice(bytes);
        let stored = StoredValue {
            block: Bytes::Own(self.inner.arena.seal(block.freeze())),
            type_tag: TypeTag::of::<T>(),
            type_name: std::any::type_name::<T>().into(),
            validated: AtomicBool::new(false),
            _contained: Vec::new(),
        };
        Ok(ObjectRef::from_slot(Slot::ready(
            self.inner.ids.object(),
            stored,
        )))
    }

    /// Waits for the object and returns a zero-copy view of it (Ray's
    /// `ray.get`). A failed task's error comes back here.
    ///
    /// While it waits inside a task, the task's CPUs go back to the pool; if
    /// the producing task has not started, the caller runs it itself.
    pub fn get<T: Object>(&self, r: &ObjectRef<T>) -> Result<View<T>> {
        self.wait_slot(&r.slot, None)?;
        View::of(r.slot.clone())
    }

    /// [`get`](Self::get) with a timeout: [`Error::Timeout`] when it passes.
    /// A timeout too long to be a deadline ([`Duration::MAX`]) is no
    /// timeout: as `get`.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let r = rt.put(&1u8)?;
    /// assert_eq!(*rt.get_timeout(&r, std::time::Duration::from_secs(1))?, 1);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn get_timeout<T: Object>(&self, r: &ObjectRef<T>, timeout: Duration) -> Result<View<T>> {
        self.wait_slot(&r.slot, crate::config::deadline_after(timeout))
            .map_err(|_| Error::Timeout(timeout))?;
        View::of(r.slot.clone())
    }

    /// Gets every object, in order; the first error is returned.
    pub fn get_all<T: Object>(&self, refs: &[ObjectRef<T>]) -> Result<Vec<View<T>>> {
        refs.iter().map(|r| self.get(r)).collect()
    }

    /// Gets and deserializes an owned copy (for small values; `get` is zero-copy).
    pub fn get_value<T: crate::values::Remotable>(&self, r: &ObjectRef<T>) -> Result<T> {
        self.get(r)?.deserialize()
    }

    fn wait_slot(&self, slot: &Arc<Slot>, deadline: Option<Instant>) -> Result<()> {
        if slot.is_ready() {
            return Ok(());
        }
        slot.start_fetch();
        // Run the producer here rather than sleep, unless a deadline forbids
        // starting work of unknown length.
        if deadline.is_none()
            && let Some(p) = slot.producer()
            && p.run_inline()
            && slot.is_ready()
        {
            return Ok(());
        }
        if signal::spin_until(self.spin_budget(deadline), || slot.is_ready()) {
            return Ok(());
        }
        let sig = Signal::for_current();
        if !slot.add_waiter(Waiter::Thread(sig.clone())) {
            return Ok(());
        }
        let ok = self.blocking(|| signal::park_until(deadline, || slot.is_ready()));
        if ok {
            Ok(())
        } else {
            Err(Error::Timeout(Duration::ZERO))
        }
    }

    fn spin_budget(&self, deadline: Option<Instant>) -> Duration {
        match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(self.inner.spin),
            None => self.inner.spin,
        }
    }

    /// Runs a blocking wait; inside a task, its CPUs go back to the pool meanwhile.
    fn blocking<R>(&self, f: impl FnOnce() -> R) -> R {
        let cpus = context::current_task()
            .filter(|c| c.is_task)
            .map(|c| c.held.cpu_only());
        if let Some(cpus) = &cpus {
            self.inner.sched.block_begin(&self.inner, cpus);
        }
        let r = f();
        if let Some(cpus) = &cpus {
            self.inner.sched.block_end(&self.inner, cpus);
        }
        r
    }

    /// Waits until `num_returns` of `refs` are ready or `timeout` passes (Ray's
    /// `ray.wait`). Returns `(ready, not_ready)`, both in the order of `refs`;
    /// `ready` holds at most `num_returns` refs. Pass the refs by value
    /// (`rt.wait(not_ready, 1, None)`, as Ray code does) to move them into the
    /// result without touching their reference counts, or borrow them
    /// (`rt.wait(&refs, …)`) to keep yours. `Some(Duration::MAX)` waits as
    /// `None` does.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let refs = vec![rt.put(&1u32)?, rt.put(&2u32)?];
    /// let (ready, rest) = rt.wait(&refs, 1, None)?;
    /// assert_eq!((ready.len(), rest.len()), (1, 1));
    /// assert_eq!(ready[0], refs[0]);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn wait<'a, T: 'a>(
        &self,
        refs: impl Into<Cow<'a, [ObjectRef<T>]>>,
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<WaitResult<T>> {
        let refs: Cow<'a, [ObjectRef<T>]> = refs.into();
        if num_returns > refs.len() {
            return Err(Error::InvalidArgument(format!(
                "wait: num_returns ({num_returns}) is more than the {} refs given",
                refs.len()
            )));
        }
        if let Some(dup) = first_duplicate(&refs) {
            return Err(Error::InvalidArgument(format!(
                "wait: {dup} is given twice"
            )));
        }
        // A timeout too long to be a deadline (`Duration::MAX`) is none.
        let deadline = timeout.and_then(crate::config::deadline_after);
        let enough = || {
            refs.iter()
                .filter(|r| r.is_ready())
                .take(num_returns)
                .count()
                >= num_returns
        };
        if !signal::spin_until(self.spin_budget(deadline), enough) {
            let sig = Signal::for_current();
            for r in refs.iter() {
                r.slot.add_waiter(Waiter::Thread(sig.clone()));
            }
            self.blocking(|| signal::park_until(deadline, enough));
        }
        let mut ready = Vec::with_capacity(num_returns);
        let mut not_ready = Vec::with_capacity(refs.len());
        let mut split = |r: ObjectRef<T>| {
            if ready.len() < num_returns && r.is_ready() {
                ready.push(r);
            } else {
                not_ready.push(r);
            }
        };
        // Refs given by value move into the result; borrowed ones are cloned.
        match refs {
            Cow::Owned(v) => v.into_iter().for_each(&mut split),
            Cow::Borrowed(s) => s.iter().cloned().for_each(&mut split),
        }
        Ok((ready, not_ready))
    }

    /// Every resource of the cluster and its total (Ray's `ray.cluster_resources()`),
    /// including `object_store_memory` in bytes: summed over all ranks.
    pub fn cluster_resources(&self) -> BTreeMap<String, f64> {
        if let Some(c) = self.inner.cluster() {
            return c.cluster_totals();
        }
        let mut m = self.inner.ledger.totals();
        m.insert(
            "object_store_memory".into(),
            self.inner.arena.capacity() as f64,
        );
        m
    }

    /// What is free now (Ray's `ray.available_resources()`): this rank's
    /// free resources plus, on several ranks, the others' as this rank sees
    /// them (their totals less the tasks it has running there).
    pub fn available_resources(&self) -> BTreeMap<String, f64> {
        let mut m = self.inner.ledger.available();
        m.insert(
            "object_store_memory".into(),
            (self.inner.arena.capacity() - self.inner.arena.used()) as f64,
        );
        if let Some(c) = self.inner.cluster() {
            for (k, v) in c.others_available() {
                *m.entry(k).or_insert(0.0) += v;
            }
        }
        m
    }

    /// Stops the runtime: kills the actors, joins every thread, removes the
    /// shared-memory file. Calling it again does nothing.
    pub fn shutdown(&self) -> Result<()> {
        let inner = &self.inner;
        let _one_at_a_time = inner
            .shutdown_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if inner.shut.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(c) = inner.cluster()
            && inner.rank == 0
        {
            c.broadcast_shutdown();
        }
        inner.actors.shutdown();
        inner.sched.shutdown();
        if let Some(c) = inner.cluster() {
            c.close();
        }
        context::clear_runtime_if(inner);
        tracing::debug!(rank = inner.rank, "runtime stopped");
        inner.arena.unlink().map_err(Error::from)
    }
}

/// The first id that appears twice in `refs`. Refs in submission order (the
/// usual case, and what `wait` hands back as `not_ready`) have increasing
/// ids, which one pass confirms; other orders are checked with a hash set.
fn first_duplicate<T>(refs: &[ObjectRef<T>]) -> Option<crate::ids::ObjectId> {
    if refs.windows(2).all(|w| w[0].id() < w[1].id()) {
        return None;
    }
    let mut seen = HashSet::with_capacity(refs.len());
    refs.iter().map(ObjectRef::id).find(|id| !seen.insert(*id))
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
    let totals = inner.ledger.totals();
    let available = inner.ledger.available();
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
    let spill = inner.arena.spill_stats();
    let (tasks, running, failures) = inner.tasks.snapshot();
    let mut actors = inner.actors.states();
    let (mut objects, mut sent, mut lineage) = (Vec::new(), Vec::new(), 0);
    let mut host = crate::cluster::host_name();
    if let Some(c) = inner.cluster() {
        actors.extend(c.actors.states());
        objects = c.object_states();
        sent = c.sent_counts();
        lineage = c.lineage.len() as u64;
        host = c.host();
    }
    crate::state::RankState {
        rank: inner.rank,
        host,
        resources,
        store: crate::state::StoreUse {
            capacity: inner.arena.capacity() as u64,
            used: inner.arena.used() as u64,
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
    }
}
