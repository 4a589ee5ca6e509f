//! Start-up configuration (Ray's `ray.init(...)` keywords).

use std::time::Duration;

/// How to start a runtime.
///
/// ```
/// let cfg = ferry_core::Config::default()
///     .num_cpus(4.0)
///     .resource("TPU", 2.0)
///     .object_store_memory(256 << 20);
/// let rt = ferry_core::init(cfg)?;
/// assert_eq!(rt.cluster_resources()["CPU"], 4.0);
/// assert_eq!(rt.cluster_resources()["TPU"], 2.0);
/// # Ok::<(), ferry_core::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub(crate) num_cpus: Option<f64>,
    pub(crate) num_gpus: Option<f64>,
    pub(crate) memory: Option<f64>,
    pub(crate) resources: Vec<(String, f64)>,
    pub(crate) object_store_memory: Option<usize>,
    pub(crate) job_id: Option<String>,
    pub(crate) spin: Option<Duration>,
    pub(crate) max_threads: Option<usize>,
    pub(crate) force_rma: Option<bool>,
    pub(crate) pin_threads: Option<bool>,
}

impl Config {
    /// Logical CPUs of this rank (default: the CPUs of the rank's binding:
    /// what this process may run on, split among the node's ranks that
    /// share it).
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.num_cpus = Some(n);
        self
    }

    /// Logical GPUs of this rank (default: the GPUs of the rank's binding,
    /// found on the node and left visible by `CUDA_VISIBLE_DEVICES`; more
    /// than there are gives logical GPUs numbered after the real ones).
    pub fn num_gpus(mut self, n: f64) -> Self {
        self.num_gpus = Some(n);
        self
    }

    /// Logical memory in bytes for tasks to reserve (default: physical memory).
    pub fn memory(mut self, bytes: f64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// A custom resource this rank has.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.resources.push((name.into(), amount));
        self
    }

    /// Size of this rank's shared-memory object store in bytes (default:
    /// 30% of memory, at most 90% of /dev/shm's free space).
    pub fn object_store_memory(mut self, bytes: usize) -> Self {
        self.object_store_memory = Some(bytes);
        self
    }

    /// The job id that names shared-memory files (default: from the launcher,
    /// or unique per process).
    pub fn job_id(mut self, id: impl Into<String>) -> Self {
        self.job_id = Some(id.into());
        self
    }

    /// How long idle workers and waiting getters spin before they park
    /// (default 50 µs; 0 parks at once).
    pub fn spin(mut self, d: Duration) -> Self {
        self.spin = Some(d);
        self
    }

    /// Most worker threads the pool may grow to (default 256).
    pub fn max_threads(mut self, n: usize) -> Self {
        self.max_threads = Some(n);
        self
    }

    /// Move objects between ranks of one node by one-sided reads too,
    /// instead of mapping the neighbour's arena (for tests and benchmarks of
    /// the RMA path; also `FERRY_FORCE_RMA=1`).
    pub fn force_rma(mut self, yes: bool) -> Self {
        self.force_rma = Some(yes);
        self
    }

    /// Bind worker threads to the rank's cores (worker `i` to core `i`) and
    /// their memory and the object store's pages to the rank's NUMA node.
    /// Default: on for the ranks of an MPI job (`mpirun`, `srun`) that have
    /// CPUs of their own; off for one rank alone (`cargo run`: it shares its
    /// cores with the program's other threads, and the OS places threads
    /// better there: binding cost up to 40% of task throughput on a 2-core
    /// VM), for loopback ranks (threads of one process) and for ranks that
    /// share CPUs (more ranks than CPUs). Also `FERRY_PIN_THREADS=0|1`.
    /// Actors that ask for a core, NUMA node or GPU are bound either way.
    pub fn pin_threads(mut self, yes: bool) -> Self {
        self.pin_threads = Some(yes);
        self
    }

    /// Reads `FERRY_NUM_CPUS`, `FERRY_NUM_GPUS`, `FERRY_OBJECT_STORE_MEMORY`
    /// `FERRY_JOB_ID` and `FERRY_PIN_THREADS` over the defaults; a
    /// malformed value is an error.
    ///
    /// ```
    /// let cfg = ferry_core::Config::from_env()?;
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn from_env() -> crate::Result<Self> {
        fn parse<T: std::str::FromStr>(name: &str) -> crate::Result<Option<T>> {
            match std::env::var(name) {
                Ok(v) => v.trim().parse().map(Some).map_err(|_| {
                    crate::Error::InvalidArgument(format!("{name}={v:?} is not a valid number"))
                }),
                Err(_) => Ok(None),
            }
        }
        Ok(Config {
            num_cpus: parse("FERRY_NUM_CPUS")?,
            num_gpus: parse("FERRY_NUM_GPUS")?,
            object_store_memory: parse("FERRY_OBJECT_STORE_MEMORY")?,
            job_id: std::env::var("FERRY_JOB_ID").ok(),
            force_rma: std::env::var("FERRY_FORCE_RMA").ok().map(|v| v == "1"),
            pin_threads: match std::env::var("FERRY_PIN_THREADS").as_deref() {
                Ok("1") => Some(true),
                Ok("0") => Some(false),
                Ok(v) => {
                    return Err(crate::Error::InvalidArgument(format!(
                        "FERRY_PIN_THREADS={v:?}: use 0 or 1"
                    )));
                }
                Err(_) => None,
            },
            ..Config::default()
        })
    }
}
