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
    pub(crate) spill_dir: Option<std::path::PathBuf>,
    pub(crate) spill: Option<bool>,
    pub(crate) put_timeout: Option<Duration>,
    pub(crate) timeline: Option<bool>,
    pub(crate) status_file: Option<std::path::PathBuf>,
    pub(crate) status_every: Option<Duration>,
    pub(crate) checkpoint_dir: Option<std::path::PathBuf>,
    pub(crate) heartbeat_timeout: Option<Duration>,
}

/// How often the status file is written by default.
pub(crate) const DEFAULT_STATUS_EVERY: Duration = Duration::from_secs(10);

/// How long a put waits for space by default.
pub(crate) const DEFAULT_PUT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// the node's budget, 30% of memory at most 90% of /dev/shm's free
    /// space, divided among the job's ranks on the node). Its pages are
    /// reserved at start; the node's stores together must fit in
    /// /dev/shm.
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

    /// Where objects are spilled when the object store is full: each rank
    /// makes `ferry-<job>-r<rank>.spill` in this directory (made if
    /// missing), whose files are gone when the rank ends, however it ends.
    /// Default: the system's temporary directory (`$TMPDIR`, else `/tmp`);
    /// on a cluster, point it at node-local disk. A directory that cannot be
    /// written is an error at start. Also `FERRY_SPILL_DIR`.
    pub fn spill_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// Whether idle objects may be spilled to disk when the store is full
    /// (default: yes). Without spilling, a put that does not fit waits for
    /// space (see [`put_timeout`](Self::put_timeout)) and then fails. Also
    /// `FERRY_SPILL=0`.
    pub fn spill(mut self, yes: bool) -> Self {
        self.spill = Some(yes);
        self
    }

    /// How long a put that does not fit, even after spilling what can be
    /// spilled, waits for space to free before it fails with an error that
    /// says what holds the store (default 10 s; zero fails at once). Also
    /// `FERRY_PUT_TIMEOUT` in seconds.
    pub fn put_timeout(mut self, d: Duration) -> Self {
        self.put_timeout = Some(d);
        self
    }

    /// Record every task run, actor call and object transfer for
    /// [`Runtime::timeline`](crate::Runtime::timeline) (default: off; each
    /// event costs two clock reads and a short lock). Also `FERRY_TIMELINE=1`.
    pub fn timeline(mut self, yes: bool) -> Self {
        self.timeline = Some(yes);
        self
    }

    /// On rank 0, writes the job's state listings
    /// ([`Runtime::state`](crate::Runtime::state), as tables) to `path`
    /// every [`status_every`](Self::status_every) (default 10 s) and
    /// whenever the process gets `SIGUSR1` (`kill -USR1 PID`), replacing
    /// the file whole each time; `ferry status PATH` prints it. Also
    /// `FERRY_STATUS_FILE`.
    pub fn status_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.status_file = Some(path.into());
        self
    }

    /// Where actor checkpoints are kept: one directory per job id under it
    /// (default: `ferry-checkpoints` in the system's temporary directory;
    /// on a cluster, a directory every node sees). Also
    /// `FERRY_CHECKPOINT_DIR`.
    pub fn checkpoint_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }

    /// How long a rank may go unheard before it is declared lost: ranks
    /// exchange heartbeats (rank 0 with every other rank) every quarter of
    /// this, and any message counts. A rank that is stopped (`SIGSTOP`),
    /// hung or whose message thread died is lost after this long: under
    /// MPI the job then ends with a message naming it; over loopback its
    /// work is retried elsewhere. Default: 10 s for the ranks of an MPI job,
    /// off for loopback ranks; zero turns it off. Also
    /// `FERRY_HEARTBEAT_TIMEOUT` (seconds).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = Some(timeout);
        self
    }

    /// How often the status file is written (see
    /// [`status_file`](Self::status_file)). Also `FERRY_STATUS_EVERY` (seconds).
    pub fn status_every(mut self, every: Duration) -> Self {
        self.status_every = Some(every);
        self
    }

    /// Reads `FERRY_NUM_CPUS`, `FERRY_NUM_GPUS`, `FERRY_OBJECT_STORE_MEMORY`,
    /// `FERRY_JOB_ID`, `FERRY_PIN_THREADS`, `FERRY_SPILL_DIR`, `FERRY_SPILL`,
    /// `FERRY_PUT_TIMEOUT`, `FERRY_TIMELINE`, `FERRY_STATUS_FILE`,
    /// `FERRY_STATUS_EVERY` and `FERRY_CHECKPOINT_DIR` over the defaults; a malformed value is an
    /// error.
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
        let switch = |name: &str| match std::env::var(name).as_deref() {
            Ok("1") => Ok(Some(true)),
            Ok("0") => Ok(Some(false)),
            Ok(v) => Err(crate::Error::InvalidArgument(format!(
                "{name}={v:?}: use 0 or 1"
            ))),
            Err(_) => Ok(None),
        };
        let seconds = |name: &str, min: f64| match parse::<f64>(name)? {
            Some(s) if s.is_finite() && s >= min => Ok(Some(Duration::from_secs_f64(s))),
            Some(s) => Err(crate::Error::InvalidArgument(format!(
                "{name}={s}: give seconds, {min} or more"
            ))),
            None => Ok(None),
        };
        let put_timeout = seconds("FERRY_PUT_TIMEOUT", 0.0)?;
        let status_every = seconds("FERRY_STATUS_EVERY", 0.01)?;
        let heartbeat_timeout = seconds("FERRY_HEARTBEAT_TIMEOUT", 0.0)?;
        Ok(Config {
            num_cpus: parse("FERRY_NUM_CPUS")?,
            num_gpus: parse("FERRY_NUM_GPUS")?,
            object_store_memory: parse("FERRY_OBJECT_STORE_MEMORY")?,
            job_id: std::env::var("FERRY_JOB_ID").ok(),
            force_rma: std::env::var("FERRY_FORCE_RMA").ok().map(|v| v == "1"),
            pin_threads: switch("FERRY_PIN_THREADS")?,
            spill: switch("FERRY_SPILL")?,
            timeline: switch("FERRY_TIMELINE")?,
            spill_dir: std::env::var_os("FERRY_SPILL_DIR")
                .filter(|v| !v.is_empty())
                .map(Into::into),
            put_timeout,
            status_file: std::env::var_os("FERRY_STATUS_FILE")
                .filter(|v| !v.is_empty())
                .map(Into::into),
            status_every,
            heartbeat_timeout,
            checkpoint_dir: std::env::var_os("FERRY_CHECKPOINT_DIR")
                .filter(|v| !v.is_empty())
                .map(Into::into),
            ..Config::default()
        })
    }
}
