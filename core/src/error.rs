//! Errors: what a user of the runtime can get back.

use std::fmt;
use std::time::Duration;

/// The result type of the runtime's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a task or actor call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The user's code panicked.
    Panic,
    /// The user's code returned `Err`.
    Application,
    /// The runtime lost the worker, the rank or the actor that ran it.
    System,
}

/// A task or actor call that failed, re-raised at `get`.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskError {
    /// The task's name (the function, or `Actor.method`).
    pub task: String,
    /// The rank it ran on.
    pub rank: u32,
    /// How it failed.
    pub kind: FailureKind,
    /// The panic message or the error's `Display`.
    pub message: String,
    /// How many times it ran, retries included.
    pub attempts: u32,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.kind {
            FailureKind::Panic => "panicked",
            FailureKind::Application => "returned an error",
            FailureKind::System => "was lost",
        };
        write!(
            f,
            "task {} on rank {} {how}: {}",
            self.task, self.rank, self.message
        )?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in the runtime.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task or actor call failed; the error carries its name, rank and message.
    #[error("{0}")]
    Task(Box<TaskError>),
    /// A task this one depended on failed, so this one never ran.
    #[error("task {task} did not run because an argument failed: {cause}")]
    Dependency {
        /// The task that did not run.
        task: String,
        /// The argument's failure.
        cause: Box<Error>,
    },
    /// `get` or `wait` gave up.
    #[error("timed out after {0:?} waiting for an object")]
    Timeout(Duration),
    /// No rank could ever satisfy a task's or actor's resource request.
    ///
    /// A task or actor runs on one rank, so what counts is the most any one
    /// rank has (`largest`), not the cluster's sum (`total`).
    #[error(
        "infeasible request: {what} asks for {asked} {resource}, but no rank has that much: \
         the most one rank has is {largest} (rank {largest_rank}; {total} in the whole cluster). \
         A task or actor runs on one rank: give a rank more with {hint}"
    )]
    Infeasible {
        /// The task or actor.
        what: String,
        /// The resource name (`CPU`, `GPU`, a custom name).
        resource: String,
        /// How much it asked for.
        asked: f64,
        /// The most any one (live) rank has.
        largest: f64,
        /// The rank that has `largest`.
        largest_rank: u32,
        /// How much the whole cluster has, all ranks together.
        total: f64,
        /// How to give a rank more of this resource.
        hint: String,
    },
    /// A bad argument to an API call.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// `get` asked for a different type than the object holds.
    #[error("object {object} holds a {stored}, not a {asked}")]
    TypeMismatch {
        /// The object.
        object: String,
        /// The type it holds.
        stored: String,
        /// The type that was asked for.
        asked: &'static str,
    },
    /// The object's bytes are not a valid archive of its type.
    #[error("object {object} is corrupt: {reason}")]
    Corrupt {
        /// The object.
        object: String,
        /// What validation found.
        reason: String,
    },
    /// The object store refused the object.
    #[error("object store: {0}")]
    Store(String),
    /// The actor is dead (killed, out of restarts, or all handles dropped).
    #[error("actor {actor} is dead: {reason}")]
    ActorDied {
        /// The actor's class and id.
        actor: String,
        /// Why it died.
        reason: String,
    },
    /// An id that refers to nothing this rank knows (a freed object, a stale handle).
    #[error("{0} is unknown to this rank (freed or never created here)")]
    Unknown(String),
    /// The task was cancelled (`Runtime::cancel`) before it finished.
    #[error("task {task} was cancelled")]
    Cancelled {
        /// The task.
        task: String,
    },
    /// The runtime has shut down.
    #[error("the runtime has shut down")]
    Shutdown,
    /// No runtime is running on this thread.
    #[error("no Ferry runtime on this thread: call ferry::init first")]
    NoRuntime,
    /// Starting the runtime failed.
    #[error("could not start the runtime: {0}")]
    Init(String),
    /// No usable GPU: no CUDA driver, no device, or a CUDA call failed.
    #[error("GPU: {0}")]
    Gpu(String),
    /// An actor checkpoint could not be written, or a checkpoint file could
    /// not be read back.
    #[error("checkpoint {}: {reason}", .path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl From<ferry_gpu::GpuError> for Error {
    fn from(e: ferry_gpu::GpuError) -> Error {
        Error::Gpu(e.to_string())
    }
}

impl Error {
    /// The task error inside, if this is one (also through a failed dependency).
    pub fn task_error(&self) -> Option<&TaskError> {
        match self {
            Error::Task(t) => Some(t),
            Error::Dependency { cause, .. } => cause.task_error(),
            _ => None,
        }
    }
}

impl From<ferry_store::StoreError> for Error {
    fn from(e: ferry_store::StoreError) -> Self {
        Error::Store(e.to_string())
    }
}

impl From<ferry_launcher::LaunchError> for Error {
    fn from(e: ferry_launcher::LaunchError) -> Self {
        match e {
            // A malformed variable is bad input, like a bad config value.
            ferry_launcher::LaunchError::BadVar { .. } => Error::InvalidArgument(e.to_string()),
            e => Error::Init(e.to_string()),
        }
    }
}

/// How a rank gets more of `resource`: the setting, and for CPUs the
/// launcher's binding (each rank gets its share of the cores it is bound to).
pub(crate) fn more_of(resource: &str) -> String {
    match resource {
        "CPU" => "FERRY_NUM_CPUS=N (Config::num_cpus), or a launcher binding with more \
                  cores per rank (mpirun --map-by slot:PE=N or --bind-to none, srun -c N)"
            .into(),
        "GPU" => "FERRY_NUM_GPUS=N (Config::num_gpus) on a rank that sees GPUs \
                  (CUDA_VISIBLE_DEVICES, srun --gpus-per-task)"
            .into(),
        "memory" => "Config::memory".into(),
        other => format!("Config::resource({other:?}, N)"),
    }
}
