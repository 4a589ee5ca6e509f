//! Starting a rank's runtime: its store, its task pool, its cluster.
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

use crate::actor::engine::ActorTable;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::object::cell::UnhandledSink;
use crate::object::store::ObjectStore;
use crate::resources::gpu_pool::GpuPool;
use crate::resources::ledger::Ledger;
use crate::resources::pinning::Pinning;
use crate::runtime::{Inner, Runtime, current};
use crate::task::pool::TaskPool;
use crate::task::receiving::BUSY_POLL_QUIET;
use crate::task::scheduler::Scheduler;
use ferry_store::{Arena, ReadOnlySegment, StoreConfig};
use ferry_transport::{Rank, Transport};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// A transport failure at step `what` of an MPI start.
#[cfg(feature = "mpi")]
fn mpi_start(what: &str, source: ferry_transport::TransportError) -> Error {
    Error::Transport {
        what: format!("could not start the runtime: {what}"),
        source,
    }
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
    let rings = shm_rings_of(&cfg)?;
    // Sized from the launcher's count of ranks per node (the node hello
    // comes later: MPI starts with the store already exposed).
    let arena = create_arena(&cfg, &job_id, world.rank, world.local_size)?;
    let region =
        ferry_transport::Region::new(crate::cluster::arena_region::ArenaRegion(arena.clone()));
    let transport =
        ferry_transport::MpiTransport::start(region).map_err(|e| mpi_start("starting MPI", e))?;
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
    let topo = ferry_launcher::Topology::detect().map_err(|e| Error::Launch {
        what: "could not start the runtime: cannot read this node's topology".into(),
        source: Arc::new(e.into()),
    })?;
    let hello = crate::cluster::node_hello::Hello::of(&topo, arena.path());
    let hellos = transport
        .all_gather_bytes(hello.encode())
        .map_err(|e| mpi_start("exchanging the node hellos", e))?;
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
    // This rank's inbox of shared-memory rings, which its neighbours open
    // after the exchange below.
    let inbox = if rings && !stores.is_empty() {
        crate::cluster::inbox::create(&arena, world.rank, stores.len() + 1)
    } else {
        None
    };
    // Step 3: map the node's other stores, then wait for every rank to
    // have done so before any name goes (step 4). Nothing that can fail on
    // one rank alone comes between the two exchanges.
    let neighbours: Neighbours = if force_rma_of(&cfg) {
        Neighbours::new()
    } else {
        stores
            .iter()
            .filter_map(|(rank, path)| match ferry_store::open_readonly(path) {
                Ok(seg) => Some((*rank, Arc::new(seg))),
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
        .map_err(|e| mpi_start("waiting for every rank to map its neighbours", e))?;
    // Every inbox exists now: open the neighbours', and attach (collective;
    // it also waits for every rank to have opened its neighbours').
    crate::cluster::inbox::attach(&transport, world.rank, inbox, &stores, rings)
        .map_err(|e| mpi_start("attaching the shared-memory rings", e))?;
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

/// Whether the ranks of a node send frames through shared-memory rings
/// (the config, else `FERRY_SHM_RINGS`, else yes).
#[cfg(feature = "mpi")]
fn shm_rings_of(cfg: &Config) -> Result<bool> {
    Ok(match cfg.shm_rings {
        Some(yes) => yes,
        None => crate::config::switch("FERRY_SHM_RINGS")?.unwrap_or(true),
    })
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
    submitter_help: Duration,
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
        let binding = ferry_launcher::plan_rank(&topo, &local, me).map_err(|e| Error::Launch {
            what: "could not start the runtime: cannot plan this rank's binding".into(),
            source: Arc::new(e),
        })?;
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
            submitter_help: cfg.submitter_help.unwrap_or(Duration::ZERO),
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
        // Archived refs are looked up through the thread's runtime.
        crate::runtime::lender::install();
        // Step 5: the NUMA policy first, so that reserving places the pages;
        // the first step now, so that a /dev/shm already full fails here
        // (the rest is reserved as the store grows).
        self.pinning.bind_arena(&arena);
        if let Err(e) = arena.reserve_to(ferry_store::RESERVE_STEP) {
            let _ = arena.unlink();
            return Err(e.into());
        }
        let ledger = Ledger::new(self.totals);
        let cores = self.pinning.binding().cpus.len();
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
            store: ObjectStore::new(
                self.rank,
                arena,
                UnhandledSink {
                    count: Default::default(),
                    quiet,
                },
            ),
            pool: Arc::new(TaskPool::new(
                self.rank,
                ledger,
                GpuPool::new(self.gpu_ids),
                self.pinning,
                Scheduler::new(
                    self.base_threads,
                    self.max_threads,
                    cores,
                    // The process's mask, which the rank's threads inherit
                    // (workers are bound within it): one CPU for all of them?
                    !ferry_launcher::affinity::current_thread_cpus().is_ok_and(|c| c.len() == 1),
                    self.spin,
                    self.submitter_help,
                ),
                crate::timeline::Recorder::new(self.rank, self.timeline),
            )),
            actors: ActorTable::default(),
            names: Default::default(),
            streams: Default::default(),
            groups: Default::default(),
            spin: self.spin,
            cluster,
            checkpoint_dir: self.checkpoint_dir,
            restored: Mutex::new(Vec::new()),
            shut: AtomicBool::new(false),
            shutdown_lock: Mutex::new(()),
        });
        if let Err(e) = inner.pool.start(current::worker_hooks(&inner)) {
            inner.pool.sched.shutdown();
            let _ = inner.store.arena.unlink();
            return Err(Error::Thread {
                what: "worker threads".into(),
                source: Arc::new(e),
            });
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
        if let Some(c) = &inner.cluster {
            // An idle worker receives what arrives itself while it spins: the
            // first task that what comes in makes ready is run right there,
            // with no queue and no thread to wake; one going from task to task
            // receives in between when the rank awaits answers and nobody
            // else has received lately.
            let idle = c.transport.clone();
            let busy = c.transport.clone();
            let last = c.transport.clone();
            inner.pool.sched.receiving.set(
                Box::new(move || idle.poll()),
                Box::new(move || busy.poll_if_quiet(BUSY_POLL_QUIET)),
                Box::new(move || last.poll_before_sleep()),
            );
        }
        crate::runtime::current::set_runtime(Some(inner.clone()));
        if let Some((path, every)) = self.status
            && inner.rank == 0
        {
            crate::runtime::status_file::start(&inner, path, every);
        }
        tracing::debug!(rank = inner.rank, job = %inner.job_id, "runtime started");
        Ok(Runtime { inner, owner: true })
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use ferry_launcher::affinity;

    /// Whether a runtime started on a thread bound to `cpus` warms its
    /// tasks' dependents, and whether its submitters hold finished tasks'
    /// latest remains back.
    fn warms_on(cpus: Vec<usize>) -> (bool, bool) {
        std::thread::spawn(move || {
            affinity::bind_current_thread(&cpus).expect("bind the test thread");
            let rt = crate::init(Config::default().num_cpus(1.0)).expect("init");
            let warms = rt.inner.pool.sched.warms();
            let holds = rt.inner.pool.leftovers.held_batches() > 0;
            rt.shutdown().expect("shutdown");
            (warms, holds)
        })
        .join()
        .expect("the test thread")
    }

    /// A rank whose process runs on one CPU (every thread inherits the
    /// mask: a rank `mpirun` bound to a core) does not prefetch its tasks'
    /// dependents, which its submitter wrote on that CPU, nor hold back
    /// remains for another core's caches to let go of; one whose threads
    /// may run on several does both.
    #[test]
    fn only_a_rank_on_several_cpus_warms_its_dependents() {
        let all = affinity::current_thread_cpus().expect("this thread's CPUs");
        assert_eq!(
            warms_on(all[..1].to_vec()),
            (false, false),
            "bound to CPU {}",
            all[0]
        );
        if all.len() < 2 {
            eprintln!("skipped the several-CPU half: this thread may use one CPU only");
            return;
        }
        assert_eq!(
            warms_on(all[..2].to_vec()),
            (true, true),
            "on CPUs {:?}",
            &all[..2]
        );
    }
}
