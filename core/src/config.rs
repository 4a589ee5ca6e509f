//! Start-up configuration (Ray's `ray.init(...)` keywords).

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How to start a runtime.
///
/// Every value is checked when the runtime starts ([`init`](crate::init),
/// [`loopback::run`](crate::runtime::loopback::run)): one out of its range is an
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) that names the
/// setting and the range allowed. A timeout of [`Duration::MAX`] means "no
/// timeout".
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
    pub(crate) submitter_help: Option<Duration>,
    pub(crate) max_threads: Option<usize>,
    pub(crate) force_rma: Option<bool>,
    pub(crate) shm_rings: Option<bool>,
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
    /// The most logical CPUs a rank may have.
    pub const MAX_CPUS: f64 = 65_536.0;

    /// The most logical GPUs a rank may have.
    pub const MAX_GPUS: u32 = 4096;

    /// The largest amount of memory (bytes) or of a custom resource a rank may
    /// have: amounts are kept in fixed point, 1/10 000 of a unit, in 64 bits.
    pub const MAX_AMOUNT: f64 = 1e14;

    /// The smallest object store, in bytes.
    pub const MIN_STORE: usize = 1 << 20;

    /// The most worker threads a rank's pool may grow to.
    pub const MAX_THREADS: usize = 1 << 16;

    /// The longest spin before a wait parks.
    pub const MAX_SPIN: Duration = Duration::from_secs(1);

    /// The shortest interval between two writes of the status file.
    pub const MIN_STATUS_EVERY: Duration = Duration::from_millis(10);

    /// Logical CPUs of this rank (default: the CPUs of the rank's binding:
    /// what this process may run on, split among the node's ranks that
    /// share it); 0 to [`MAX_CPUS`](Self::MAX_CPUS), fractions allowed.
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.num_cpus = Some(n);
        self
    }

    /// Logical GPUs of this rank (default: the GPUs of the rank's binding,
    /// found on the node and left visible by `CUDA_VISIBLE_DEVICES`; more
    /// than there are gives logical GPUs numbered after the real ones); a
    /// whole number from 0 to [`MAX_GPUS`](Self::MAX_GPUS).
    pub fn num_gpus(mut self, n: f64) -> Self {
        self.num_gpus = Some(n);
        self
    }

    /// Logical memory in bytes for tasks to reserve (default: physical
    /// memory); 0 to [`MAX_AMOUNT`](Self::MAX_AMOUNT).
    pub fn memory(mut self, bytes: f64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// A custom resource this rank has: a name not given before (`CPU`,
    /// `GPU` and `memory` have their own settings) and 0 to [`MAX_AMOUNT`](Self::MAX_AMOUNT).
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.resources.push((name.into(), amount));
        self
    }

    /// Size of this rank's shared-memory object store in bytes (default:
    /// the node's budget, 30% of memory at most 90% of /dev/shm's free
    /// space, divided among the job's ranks on the node). Its pages are
    /// reserved at start; the node's stores together must fit in
    /// /dev/shm; at least
    /// [`MIN_STORE`](Self::MIN_STORE).
    pub fn object_store_memory(mut self, bytes: usize) -> Self {
        self.object_store_memory = Some(bytes);
        self
    }

    /// The job id that names shared-memory files and the job's checkpoint
    /// directory (default: `FERRY_JOB_ID`, else from the launcher, else
    /// unique per process). It must be a plain name: 1 to 128 characters of
    /// `A-Z a-z 0-9 . _ -`, not `.` or `..`
    /// ([`check_job_id`](ferry_launcher::check_job_id)).
    pub fn job_id(mut self, id: impl Into<String>) -> Self {
        self.job_id = Some(id.into());
        self
    }

    /// How long idle workers and waiting getters spin before they park
    /// (default 50 µs; 0 parks at once; at most [`MAX_SPIN`](Self::MAX_SPIN)).
    pub fn spin(mut self, d: Duration) -> Self {
        self.spin = Some(d);
        self
    }

    /// Lets a thread that submits work (outside any task or actor call),
    /// on a rank of one CPU, run a ready task itself when no worker has
    /// taken it yet, if the task's function last ran in at most `d` here
    /// (default 0: never). Also `FERRY_SUBMITTER_HELP` (microseconds).
    ///
    /// On a rank of one core (as `mpirun` binds ranks), the workers share
    /// the submitting thread's CPU and cannot run while it submits; a short
    /// task run by the submitter does not wait for them. A thread with
    /// several CPUs leaves every task to the workers, which run beside it.
    /// Measured on the 2-core VM, Task Bench's stencil on 2 ranks with
    /// 50 µs: 1000 steps in 3.9 ms instead of 5.9 ms, 10,000 in 33 ms
    /// instead of 62 ms (medians).
    ///
    /// Off by default because it changes what `remote` may do: a task run
    /// there that waits for something its submitter does only later (a
    /// signal, a value it puts afterwards) waits for ever. Turn it on where
    /// tasks never wait for their submitter. A function never timed on
    /// this rank, or timed above `d`, is left to the workers; runs are
    /// timed one in eight (a thread's first sixteen all), up to about
    /// 16 ms, so a larger `d` admits any function timed before.
    ///
    /// ```
    /// let cfg = ferry_core::Config::default().submitter_help(std::time::Duration::from_micros(50));
    /// # let _ = cfg;
    /// ```
    pub fn submitter_help(mut self, d: Duration) -> Self {
        self.submitter_help = Some(d);
        self
    }

    /// Most worker threads the pool may grow to (default 256; 1 to
    /// [`MAX_THREADS`](Self::MAX_THREADS)).
    pub fn max_threads(mut self, n: usize) -> Self {
        self.max_threads = Some(n);
        self
    }

    /// Move objects between ranks of one node by one-sided reads too,
    /// instead of mapping the neighbour's arena (for tests and benchmarks of
    /// the RMA path; also `FERRY_FORCE_RMA=0|1`).
    pub fn force_rma(mut self, yes: bool) -> Self {
        self.force_rma = Some(yes);
        self
    }

    /// Send control frames (tasks, results, actor calls) between the ranks
    /// of one node through shared-memory rings rather than MPI. Default: on
    /// (off to measure or test the MPI path alone; also
    /// `FERRY_SHM_RINGS=0|1`).
    pub fn shm_rings(mut self, yes: bool) -> Self {
        self.shm_rings = Some(yes);
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
    /// Default: `spill` in the user's private directory
    /// ([`ferry_store::PrivateDir`]: `$XDG_RUNTIME_DIR/ferry` when that is
    /// the user's own 0700 directory, else `ferry-<uid>` in `$TMPDIR` or
    /// `/tmp`, made 0700 and checked to be the user's own and not a link);
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
    /// says what holds the store (default 10 s; zero fails at once;
    /// [`Duration::MAX`] waits as long as it takes). Also
    /// `FERRY_PUT_TIMEOUT` in seconds (`inf`, or more seconds than a
    /// `Duration` holds, waits as long as it takes).
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

    /// Where actor checkpoints are kept: one directory per job id under it,
    /// made 0700, with files 0600 (default: `checkpoints` in the user's
    /// private directory, [`ferry_store::PrivateDir`], checked at each use
    /// to be the user's own; on a cluster, a directory every node sees).
    /// Also `FERRY_CHECKPOINT_DIR`.
    pub fn checkpoint_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }

    /// How long a rank may go unheard before it is declared lost: ranks
    /// exchange heartbeats (rank 0 with every other rank) every quarter of
    /// this, and any message counts. A rank that is stopped (`SIGSTOP`),
    /// hung or whose message thread died is lost after this long (up to
    /// half as long again: a message is noted at the next heartbeat, not
    /// as it arrives): under MPI the job then ends with a message naming
    /// it; over loopback its work is retried elsewhere. Default: 10 s for
    /// the ranks of an MPI job, off for loopback ranks; zero turns it off.
    /// Also `FERRY_HEARTBEAT_TIMEOUT` (seconds).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = Some(timeout);
        self
    }

    /// How often the status file is written (see
    /// [`status_file`](Self::status_file)); at least [`MIN_STATUS_EVERY`](Self::MIN_STATUS_EVERY);
    /// [`Duration::MAX`] writes it once at start and then on `SIGUSR1`
    /// only. Also `FERRY_STATUS_EVERY` (seconds; `inf` or more than a
    /// `Duration` holds: as `Duration::MAX`).
    pub fn status_every(mut self, every: Duration) -> Self {
        self.status_every = Some(every);
        self
    }

    /// Reads `FERRY_NUM_CPUS`, `FERRY_NUM_GPUS`, `FERRY_OBJECT_STORE_MEMORY`,
    /// `FERRY_JOB_ID`, `FERRY_FORCE_RMA`, `FERRY_PIN_THREADS`,
    /// `FERRY_SPILL_DIR`, `FERRY_SPILL`, `FERRY_PUT_TIMEOUT`,
    /// `FERRY_TIMELINE`, `FERRY_STATUS_FILE`, `FERRY_STATUS_EVERY`,
    /// `FERRY_SUBMITTER_HELP` and `FERRY_CHECKPOINT_DIR` over the defaults. An empty variable counts as
    /// unset. A value that is malformed or out of range is an
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming the
    /// variable and the range allowed (the ranges of the builder methods;
    /// switches are `0` or `1`).
    ///
    /// ```
    /// let cfg = ferry_core::Config::from_env()?;
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        let cfg = Config {
            num_cpus: env_number("FERRY_NUM_CPUS", &CPUS)?,
            num_gpus: env_number("FERRY_NUM_GPUS", &GPUS)?,
            object_store_memory: env_store_bytes("FERRY_OBJECT_STORE_MEMORY")?,
            job_id: match env_value("FERRY_JOB_ID")? {
                Some(id) => {
                    ferry_launcher::check_job_id(&id)
                        .map_err(|e| invalid(&format!("FERRY_JOB_ID={id:?}"), e.to_string()))?;
                    Some(id)
                }
                None => None,
            },
            force_rma: switch("FERRY_FORCE_RMA")?,
            shm_rings: switch("FERRY_SHM_RINGS")?,
            pin_threads: switch("FERRY_PIN_THREADS")?,
            spill: switch("FERRY_SPILL")?,
            timeline: switch("FERRY_TIMELINE")?,
            spill_dir: env_path("FERRY_SPILL_DIR"),
            put_timeout: env_seconds("FERRY_PUT_TIMEOUT", Duration::ZERO)?,
            status_file: env_path("FERRY_STATUS_FILE"),
            status_every: env_seconds("FERRY_STATUS_EVERY", Config::MIN_STATUS_EVERY)?,
            heartbeat_timeout: env_seconds("FERRY_HEARTBEAT_TIMEOUT", Duration::ZERO)?,
            submitter_help: env_micros("FERRY_SUBMITTER_HELP")?,
            checkpoint_dir: env_path("FERRY_CHECKPOINT_DIR"),
            ..Config::default()
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks every value against its range (see the builder methods), and
    /// the switches read from the environment at start whatever the config
    /// says (`FERRY_FORCE_RMA` when the config leaves it unset,
    /// `FERRY_IGNORE_UNHANDLED_ERRORS`, `FERRY_IO_URING`): the first value
    /// out of range is an [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// naming it and the range allowed. The runtime calls it at start.
    ///
    /// ```
    /// use ferry_core::{Config, Error};
    ///
    /// assert!(Config::default().num_gpus(8.0).check().is_ok());
    /// match Config::default().num_gpus(1e12).check() {
    ///     Err(Error::InvalidArgument(m)) => assert!(m.contains("0 to 4096"), "{m}"),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(Config::default().job_id("..").check().is_err());
    /// assert!(Config::default().object_store_memory(0).check().is_err());
    /// ```
    pub fn check(&self) -> Result<()> {
        let given =
            |method: &str, value: &dyn std::fmt::Debug| format!("Config::{method}({value:?})");
        if let Some(n) = self.num_cpus {
            CPUS.check(n)
                .map_err(|r| invalid(&given("num_cpus", &n), r))?;
        }
        if let Some(n) = self.num_gpus {
            GPUS.check(n)
                .map_err(|r| invalid(&given("num_gpus", &n), r))?;
        }
        if let Some(n) = self.memory {
            MEMORY
                .check(n)
                .map_err(|r| invalid(&given("memory", &n), r))?;
        }
        for (i, (name, amount)) in self.resources.iter().enumerate() {
            let shown = format!("Config::resource({name:?}, {amount:?})");
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(invalid(&shown, "give a name without control characters"));
            }
            let taken = ["CPU", "GPU", "memory"].contains(&name.as_str())
                || self.resources[..i].iter().any(|(n, _)| n == name);
            if taken {
                return Err(invalid(
                    &shown,
                    format!(
                        "resource {name} is given twice (CPU, GPU and memory have their own \
                         settings)"
                    ),
                ));
            }
            AMOUNT.check(*amount).map_err(|r| invalid(&shown, r))?;
        }
        if let Some(bytes) = self.object_store_memory
            && bytes < Config::MIN_STORE
        {
            return Err(invalid(&given("object_store_memory", &bytes), store_rule()));
        }
        if let Some(id) = &self.job_id {
            ferry_launcher::check_job_id(id)
                .map_err(|e| invalid(&given("job_id", id), e.to_string()))?;
        }
        if let Some(d) = self.spin
            && d > Config::MAX_SPIN
        {
            return Err(invalid(
                &given("spin", &d),
                format!(
                    "give at most {:?} (spinning longer burns a core for nothing)",
                    Config::MAX_SPIN
                ),
            ));
        }
        if let Some(n) = self.max_threads
            && !(1..=Config::MAX_THREADS).contains(&n)
        {
            return Err(invalid(
                &given("max_threads", &n),
                format!("give a whole number from 1 to {}", Config::MAX_THREADS),
            ));
        }
        if let Some(d) = self.status_every
            && d < Config::MIN_STATUS_EVERY
        {
            return Err(invalid(
                &given("status_every", &d),
                format!("give {:?} or more", Config::MIN_STATUS_EVERY),
            ));
        }
        for name in ["FERRY_IGNORE_UNHANDLED_ERRORS", "FERRY_IO_URING"] {
            switch(name)?;
        }
        if self.force_rma.is_none() {
            switch("FERRY_FORCE_RMA")?;
        }
        if self.shm_rings.is_none() {
            switch("FERRY_SHM_RINGS")?;
        }
        Ok(())
    }
}

/// A bound on a number, and how to say it.
struct Bound {
    lo: f64,
    hi: f64,
    whole: bool,
    what: &'static str,
}

impl Bound {
    /// `v` if it is inside the bound; else the rule, in words.
    fn check(&self, v: f64) -> std::result::Result<f64, String> {
        if v.is_finite() && v >= self.lo && v <= self.hi && (!self.whole || v.fract() == 0.0) {
            Ok(v)
        } else {
            Err(self.rule())
        }
    }

    fn rule(&self) -> String {
        format!("give {} from {} to {}", self.what, self.lo, self.hi)
    }
}

const CPUS: Bound = Bound {
    lo: 0.0,
    hi: Config::MAX_CPUS,
    whole: false,
    what: "a number of CPUs",
};

const GPUS: Bound = Bound {
    lo: 0.0,
    hi: Config::MAX_GPUS as f64,
    whole: true,
    what: "a whole number of GPUs",
};

const MEMORY: Bound = Bound {
    lo: 0.0,
    hi: Config::MAX_AMOUNT,
    whole: false,
    what: "a number of bytes",
};

const AMOUNT: Bound = Bound {
    lo: 0.0,
    hi: Config::MAX_AMOUNT,
    whole: false,
    what: "an amount",
};

fn store_rule() -> String {
    format!(
        "give a whole number of bytes, {} (1 MiB) or more",
        Config::MIN_STORE
    )
}

/// The one-line error for a setting (`shown`: the variable or the builder
/// call, with its value) and what is allowed.
fn invalid(shown: &str, rule: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{shown}: {rule}"))
}

/// The variable's value; `None` when unset or empty. A value that is not
/// Unicode is an error.
fn env_value(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => {
            Err(invalid(&format!("{name}={v:?}"), "the value is not UTF-8"))
        }
    }
}

/// A path from the environment; `None` when unset or empty.
fn env_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

/// A store size in bytes, [`Config::MIN_STORE`] or more.
fn env_store_bytes(name: &str) -> Result<Option<usize>> {
    match env_value(name)? {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= Config::MIN_STORE => Ok(Some(n)),
            _ => Err(invalid(&format!("{name}={v:?}"), store_rule())),
        },
        None => Ok(None),
    }
}

/// A number inside `bound`.
fn env_number(name: &str, bound: &Bound) -> Result<Option<f64>> {
    match env_value(name)? {
        Some(v) => match v.trim().parse::<f64>().map(|n| bound.check(n)) {
            Ok(Ok(n)) => Ok(Some(n)),
            _ => Err(invalid(&format!("{name}={v:?}"), bound.rule())),
        },
        None => Ok(None),
    }
}

/// Whole microseconds.
fn env_micros(name: &str) -> Result<Option<Duration>> {
    match env_value(name)? {
        Some(v) => match v.trim().parse::<u64>() {
            Ok(us) => Ok(Some(Duration::from_micros(us))),
            Err(_) => Err(invalid(
                &format!("{name}={v:?}"),
                "give whole microseconds (0 turns it off)",
            )),
        },
        None => Ok(None),
    }
}

/// Seconds, `min` or more; `inf`, or more seconds than a `Duration` holds,
/// is [`Duration::MAX`] ("never").
fn env_seconds(name: &str, min: Duration) -> Result<Option<Duration>> {
    let Some(v) = env_value(name)? else {
        return Ok(None);
    };
    let rule = || {
        invalid(
            &format!("{name}={v:?}"),
            format!("give seconds, {} or more (inf: never)", min.as_secs_f64()),
        )
    };
    let secs: f64 = v.trim().parse().map_err(|_| rule())?;
    if secs.is_nan() || secs < min.as_secs_f64() {
        return Err(rule());
    }
    Ok(Some(
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX),
    ))
}

/// A `0`/`1` switch from the environment; `None` when unset or empty.
pub(crate) fn switch(name: &str) -> Result<Option<bool>> {
    match env_value(name)?.as_deref().map(str::trim) {
        Some("1") => Ok(Some(true)),
        Some("0") => Ok(Some(false)),
        Some(v) => Err(invalid(&format!("{name}={v:?}"), "use 0 or 1")),
        None => Ok(None),
    }
}

/// `now + d`, or `None` ("no deadline") when that is past what an
/// `Instant` can hold (as with [`Duration::MAX`]).
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_say_their_range() {
        assert_eq!(GPUS.check(4096.0), Ok(4096.0));
        assert!(GPUS.check(4097.0).unwrap_err().contains("from 0 to 4096"));
        assert!(GPUS.check(1.5).is_err());
        assert!(CPUS.check(0.5).is_ok());
        assert!(CPUS.check(f64::INFINITY).is_err());
        assert!(CPUS.check(-1.0).is_err());
        assert!(MEMORY.check(f64::NAN).is_err());
    }

    #[test]
    fn builder_values_out_of_range_are_refused() {
        let refused = |c: Config, what: &str| match c.check() {
            Err(Error::InvalidArgument(m)) => {
                assert!(m.starts_with(&format!("Config::{what}(")), "{m}");
                assert!(!m.contains('\n'), "{m}");
            }
            other => panic!("{what}: expected InvalidArgument, got {other:?}"),
        };
        refused(Config::default().num_cpus(1e9), "num_cpus");
        refused(Config::default().num_cpus(f64::NAN), "num_cpus");
        refused(Config::default().num_gpus(1e12), "num_gpus");
        refused(Config::default().memory(-1.0), "memory");
        refused(
            Config::default().object_store_memory(0),
            "object_store_memory",
        );
        refused(Config::default().job_id("a\nb"), "job_id");
        refused(Config::default().spin(Duration::MAX), "spin");
        refused(Config::default().max_threads(0), "max_threads");
        refused(Config::default().max_threads(usize::MAX), "max_threads");
        refused(
            Config::default().status_every(Duration::ZERO),
            "status_every",
        );
        refused(Config::default().resource("TPU", f64::INFINITY), "resource");
        refused(Config::default().resource("CPU", 1.0), "resource");
        refused(
            Config::default().resource("TPU", 1.0).resource("TPU", 2.0),
            "resource",
        );
        Config::default()
            .num_gpus(4096.0)
            .put_timeout(Duration::MAX)
            .status_every(Duration::MAX)
            .resource("TPU", 2.0)
            .check()
            .unwrap();
    }

    #[test]
    fn huge_deadlines_are_none() {
        assert!(deadline_after(Duration::MAX).is_none());
        assert!(deadline_after(Duration::from_secs(1)).is_some());
    }
}
