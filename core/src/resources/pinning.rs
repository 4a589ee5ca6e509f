//! Where a rank's threads run and where their memory lives.
//!
//! The launcher's plan gives each rank a [`RankBinding`]: its cores, its
//! NUMA node, its GPUs. [`Pinning`] applies it: worker `i` is bound to the
//! rank's core `i` (workers started beyond the cores, while others block in
//! `get`, to all of the rank's CPUs), the arena's pages prefer the rank's
//! NUMA node, and an actor asking for a core, a NUMA node or a GPU runs on
//! a thread bound there with its memory on that node.
//! Threads left unbound start on another CPU than the thread that started
//! them ([`Pinning::place_new_thread`]), then may run on all of the rank's
//! (see `placement`).

use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use ferry_launcher::membind;
use ferry_launcher::{RankBinding, Topology, affinity};
use ferry_store::Arena;

use crate::error::{Error, Result};
use crate::resources::placement::{OpenOnDrop, StartGate, first_cpu};

/// Where an actor asks to run ([`ActorOptions::pin`](crate::ActorOptions::pin)).
///
/// ```
/// let opts = ferry_core::ActorOptions::default().pin(ferry_core::Pin::Core(0));
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pin {
    /// One CPU (hardware thread), by the operating system's number. The
    /// actor's memory goes to that CPU's NUMA node.
    Core(usize),
    /// Any CPU of the rank on this NUMA node (by the OS's number), with
    /// the actor's memory on it.
    NumaNode(u32),
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pin::Core(c) => write!(f, "core {c}"),
            Pin::NumaNode(n) => write!(f, "NUMA node {n}"),
        }
    }
}

/// One rank's binding, and whether its threads are bound by default.
#[derive(Debug)]
pub(crate) struct Pinning {
    binding: RankBinding,
    topo: Topology,
    /// Bind workers and the arena (off for loopback ranks, which share one
    /// process, and for ranks that share CPUs with other ranks).
    bind: bool,
    /// Threads placed so far by [`Pinning::place_new_thread`].
    placed: AtomicUsize,
}

/// What a thread ended up bound to, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bound {
    pub(crate) cpus: Vec<usize>,
    pub(crate) numa_node: Option<u32>,
}

impl Pinning {
    pub(crate) fn new(topo: Topology, binding: RankBinding, bind: bool) -> Pinning {
        Pinning {
            bind: bind && !binding.shares_cpus && !binding.cpus.is_empty(),
            binding,
            topo,
            placed: AtomicUsize::new(0),
        }
    }

    /// The rank's binding.
    pub(crate) fn binding(&self) -> &RankBinding {
        &self.binding
    }

    /// Whether the rank's threads are bound by default.
    pub(crate) fn binds(&self) -> bool {
        self.bind
    }

    /// How to name the devices `ids` (CUDA ordinals of this process) in a
    /// task's `CUDA_VISIBLE_DEVICES`: as this process's own
    /// `CUDA_VISIBLE_DEVICES` named them (logical GPUs beyond the real ones
    /// by their number).
    pub(crate) fn visible_ids(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&id| {
                self.topo
                    .gpus
                    .iter()
                    .find(|g| g.ordinal == id)
                    .map_or_else(|| id.to_string(), |g| g.visible_id.clone())
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Binds the calling worker thread, the `index`-th of the pool.
    pub(crate) fn bind_worker(&self, index: usize) {
        if !self.bind {
            return;
        }
        let cpus = self.binding.cores.get(index).unwrap_or(&self.binding.cpus);
        if let Err(e) = affinity::bind_current_thread(cpus) {
            tracing::warn!("could not bind worker {index} to CPUs {cpus:?}: {e}");
        }
        if let Some(node) = self.binding.numa_node
            && let Err(e) = membind::bind_thread_memory(node)
        {
            tracing::debug!("could not bind worker {index}'s memory to node {node}: {e}");
        }
    }

    /// Starts a worker or actor thread, just spawned by the calling thread
    /// and not yet bound, on another of the calling thread's CPUs than its
    /// own (the `n`-th thread placed goes to [`first_cpu`]`(.., n)`).
    ///
    /// A new thread is queued on its starter's CPU, and a starter that goes
    /// on submitting tasks or calls keeps it waiting there for its time
    /// slice (0.4–1.3 ms at the start of a 1-rank stencil on the 2-core VM,
    /// all of its 1,000 tasks submitted first) while the other CPU idles.
    /// A thread that will bind itself (workers of a bound rank, pinned
    /// actors) is left alone.
    ///
    /// The thread should wait for `gate` before it runs anything that may
    /// set its own mask ([`StartGate::wait`]); the gate opens when this
    /// returns, placed or not.
    pub(crate) fn place_new_thread<T>(
        &self,
        handle: &JoinHandle<T>,
        gate: &StartGate,
        binds_itself: bool,
    ) {
        let _open = OpenOnDrop(gate);
        if self.bind || binds_itself {
            return;
        }
        let Ok(cpus) = affinity::current_thread_cpus() else {
            return;
        };
        let here = affinity::current_cpu();
        let n = self.placed.fetch_add(1, Ordering::Relaxed);
        let Some(cpu) = first_cpu(&cpus, here, n).filter(|&c| Some(c) != here) else {
            return;
        };
        // SAFETY: the thread has not exited: it waits on `gate`, which
        // opens only when this returns.
        if let Err(e) = unsafe { affinity::place_thread(handle.as_pthread_t(), cpu, &cpus) } {
            tracing::debug!("could not start a new thread on CPU {cpu}: {e}");
        }
    }

    /// Makes the arena's pages prefer the rank's NUMA node (before most of
    /// them are touched).
    pub(crate) fn bind_arena(&self, arena: &Arena) {
        let Some(node) = self.binding.numa_node.filter(|_| self.bind) else {
            return;
        };
        if let Err(e) = membind::bind_area(arena.base_ptr(), arena.capacity(), node) {
            tracing::warn!("could not bind the object store to NUMA node {node}: {e}");
        }
    }

    /// Checks that this rank can honour `pin`.
    pub(crate) fn check(&self, pin: Pin) -> Result<()> {
        self.cpus_of(pin).map(|_| ())
    }

    fn cpus_of(&self, pin: Pin) -> Result<Bound> {
        let have = &self.binding.cpus;
        let ranges = ferry_launcher::format_cpu_ranges(have);
        match pin {
            Pin::Core(cpu) if have.contains(&cpu) => Ok(Bound {
                cpus: vec![cpu],
                numa_node: self.topo.numa_of(cpu),
            }),
            Pin::Core(cpu) => Err(Error::InvalidArgument(format!(
                "an actor pinned to core {cpu}: rank {} has CPUs {ranges}",
                self.binding.local_rank
            ))),
            Pin::NumaNode(node) => {
                let cpus: Vec<usize> = have
                    .iter()
                    .copied()
                    .filter(|&c| self.topo.numa_of(c) == Some(node))
                    .collect();
                if cpus.is_empty() {
                    return Err(Error::InvalidArgument(format!(
                        "an actor pinned to NUMA node {node}: this rank's CPUs {ranges} are on \
                         NUMA node{} {}",
                        if self.topo.numa_nodes.len() == 1 {
                            ""
                        } else {
                            "s"
                        },
                        self.rank_nodes()
                    )));
                }
                Ok(Bound {
                    cpus,
                    numa_node: Some(node),
                })
            }
        }
    }

    fn rank_nodes(&self) -> String {
        let mut nodes: Vec<u32> = self
            .binding
            .cpus
            .iter()
            .filter_map(|&c| self.topo.numa_of(c))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Binds the calling actor thread: to `pin` when given, else near its
    /// first GPU (the rank's CPUs on the GPU's NUMA node), else like an
    /// extra worker (all of the rank's CPUs, when the rank binds).
    pub(crate) fn bind_actor(&self, pin: Option<Pin>, gpus: &[u32]) -> Option<Bound> {
        let target = match pin {
            Some(pin) => self.cpus_of(pin).ok(),
            None => gpus
                .first()
                .and_then(|g| self.topo.gpus.iter().find(|info| info.ordinal == *g))
                .and_then(|g| g.numa_node)
                .and_then(|node| self.cpus_of(Pin::NumaNode(node)).ok())
                .or_else(|| {
                    self.bind.then(|| Bound {
                        cpus: self.binding.cpus.clone(),
                        numa_node: self.binding.numa_node,
                    })
                }),
        }?;
        if let Err(e) = affinity::bind_current_thread(&target.cpus) {
            tracing::warn!("could not bind an actor to CPUs {:?}: {e}", target.cpus);
            return None;
        }
        if let Some(node) = target.numa_node
            && let Err(e) = membind::bind_thread_memory(node)
        {
            tracing::warn!("could not bind an actor's memory to NUMA node {node}: {e}");
        }
        Some(target)
    }
}
