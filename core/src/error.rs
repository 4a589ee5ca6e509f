//! Errors: what a user of the runtime can get back.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ferry_launcher::LaunchError;
use ferry_store::StoreError;
use ferry_transport::TransportError;

use crate::ids::{ActorId, ObjectId};

mod placement_group;
pub use placement_group::PlacementGroupError;

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
    /// The object store refused the object, or could not read it back.
    ///
    /// The store's own error is kept: match it to tell a full store from an
    /// I/O failure (or use [`is_store_full`](Error::is_store_full)). It is
    /// also the error's [`source`](std::error::Error::source), as an
    /// `Arc<StoreError>`.
    ///
    /// ```
    /// use ferry_core::{Error, StoreError};
    ///
    /// let full = Error::from(StoreError::Full { requested: 2 << 20, used: 1 << 20, capacity: 2 << 20 });
    /// assert!(matches!(&full, Error::Store(e) if matches!(**e, StoreError::Full { .. })));
    /// assert!(full.to_string().starts_with("object store: object store full"));
    /// ```
    #[error("object store: {0}")]
    Store(#[source] Arc<StoreError>),
    /// A message to, or a one-sided read from, another rank failed.
    #[error("{what}: {source}")]
    Transport {
        /// What was being done (`reading object ... from rank 1`).
        what: String,
        /// The transport's error.
        #[source]
        source: TransportError,
    },
    /// The launcher's world, this node's topology or this rank's binding
    /// could not be read or planned (a program without the `mpi` feature
    /// started as several ranks, too many ranks for the node's CPUs, ...).
    /// A malformed launcher variable is [`InvalidArgument`](Error::InvalidArgument).
    #[error("{what}: {source}")]
    Launch {
        /// What was being done (`could not start the runtime`).
        what: String,
        /// The launcher's error.
        #[source]
        source: Arc<LaunchError>,
    },
    /// An actor asked to run calls on several threads at once
    /// (`max_concurrency` above 1) whose class is not `Sync`.
    #[error(
        "actor class {class} is not Sync, so its calls cannot run on several threads at once \
         (max_concurrency above 1): make it Sync (Mutex/atomics inside), or make its methods \
         async fn (an async actor runs on one thread)"
    )]
    NotSync {
        /// The class.
        class: String,
    },
    /// A thread the runtime needs could not be started.
    #[error("could not start {what}: {source}")]
    Thread {
        /// Which thread (`worker threads`, `an actor thread`).
        what: String,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The actor is dead (killed, out of restarts, or all handles dropped).
    #[error("actor {actor} is dead: {reason}")]
    ActorDied {
        /// The actor's class and id.
        actor: String,
        /// Why it died.
        reason: String,
    },
    /// No actor with this id lives where the handle says (it has stopped,
    /// or the handle names a rank the job does not have).
    #[error("actor {actor} not found: {reason}")]
    ActorNotFound {
        /// The actor.
        actor: ActorId,
        /// Where it was looked for.
        reason: String,
    },
    /// The actor exists but is of another class than the handle's.
    #[error("actor {actor} is not a {class}")]
    NotThisActorClass {
        /// The actor.
        actor: ActorId,
        /// The class the handle asked for.
        class: String,
    },
    /// No live actor has this name in the job (Ray's `ValueError` from
    /// `ray.get_actor`).
    #[error("no actor named {name:?} in this job")]
    ActorNameNotFound {
        /// The name looked up.
        name: String,
    },
    /// Another live actor of the job holds this name (creating a named
    /// actor without `get_if_exists`).
    #[error("the actor name {name:?} is taken by actor {actor} of this job")]
    ActorNameTaken {
        /// The name asked for.
        name: String,
        /// The actor holding it.
        actor: ActorId,
    },
    /// The actor holding this name is of another class than the one asked
    /// for (`get_actor::<C>`, or `get_if_exists` with another class).
    #[error("the actor named {name:?} ({actor}) is not a {class}")]
    ActorNameOtherClass {
        /// The name.
        name: String,
        /// The actor holding it.
        actor: ActorId,
        /// The class asked for.
        class: String,
    },
    /// The job's name registry (on rank 0) could not be asked or did not
    /// answer in time.
    #[error("actor name {name:?}: the name registry on rank 0 did not answer: {reason}")]
    NameRegistry {
        /// The name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The object was freed by its owner (no ref to it was left), or it
    /// never existed.
    #[error("{object} was freed by its owner, rank {}, or never existed", .object.rank())]
    ObjectFreed {
        /// The object.
        object: ObjectId,
    },
    /// The rank that owned the object was lost and the object cannot be
    /// rebuilt (a put, or a task out of retries).
    #[error("{object} is lost with its owner, rank {rank}: {reason}")]
    OwnerLost {
        /// The object.
        object: ObjectId,
        /// Its owner, the lost rank.
        rank: u32,
        /// Why the rank was lost, and why the object cannot be rebuilt.
        reason: String,
    },
    /// The object's owner was lost, and rebuilding the object by re-running
    /// the task that returned it failed.
    #[error("{object} was lost with its owner and could not be rebuilt: {reason}")]
    RebuildFailed {
        /// The object.
        object: ObjectId,
        /// What went wrong.
        reason: String,
    },
    /// The object has no value yet where one was required.
    #[error("{object} has no value yet")]
    ObjectNotReady {
        /// The object.
        object: ObjectId,
    },
    /// A call named a remote function that the binary asked to run it does
    /// not have (a call encoded by another build of the program).
    #[error("remote function {id:016x} is not in the binary that was asked to run it")]
    FunctionNotInBinary {
        /// The function's id.
        id: u64,
    },
    /// An actor of a class that the binary asked to create it does not have.
    #[error("actor class {class:016x} is not in the binary that was asked to create it")]
    ActorClassNotInBinary {
        /// The class's id.
        class: u64,
    },
    /// A call to an actor method that the actor's binary does not have.
    #[error("actor method {method:016x} is not in the binary of the rank that hosts the actor")]
    ActorMethodNotInBinary {
        /// The method's id.
        method: u64,
    },
    /// An error on another rank whose kind cannot cross ranks (an I/O
    /// failure of its store, a transport failure there, ...): its message.
    #[error("{what} failed on rank {rank}: {message}")]
    Remote {
        /// The task or object it was about.
        what: String,
        /// The rank it happened on.
        rank: u32,
        /// The error's message there.
        message: String,
    },
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
    /// Starting the runtime failed for a reason with no typed source (ranks
    /// of different builds, a rank that did not answer).
    #[error("could not start the runtime: {0}")]
    Init(String),
    /// Rank 0, the driver, was lost: the other ranks stop.
    #[error("rank 0 (the driver) was lost: {reason}")]
    DriverLost {
        /// Why it was lost.
        reason: String,
    },
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
    /// A placement group could not be created, used or waited for (see
    /// [`PlacementGroupError`]).
    #[error(transparent)]
    PlacementGroup(#[from] PlacementGroupError),
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

    /// True when the object store had no room: [`StoreError::Full`], or
    /// [`StoreError::Held`] (a put waited for room and none came), as
    /// against an I/O failure of the store.
    ///
    /// ```
    /// use ferry_core::{Error, StoreError};
    ///
    /// let full = Error::from(StoreError::Full { requested: 4096, used: 0, capacity: 1024 });
    /// assert!(full.is_store_full());
    /// let io = Error::from(StoreError::Io {
    ///     path: "/dev/shm/x".into(),
    ///     source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    /// });
    /// assert!(!io.is_store_full());
    /// assert!(std::error::Error::source(&io).is_some());
    /// ```
    pub fn is_store_full(&self) -> bool {
        matches!(self, Error::Store(e) if matches!(**e, StoreError::Full { .. } | StoreError::Held { .. }))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(Arc::new(e))
    }
}

impl From<LaunchError> for Error {
    fn from(e: LaunchError) -> Self {
        match e {
            // A malformed variable is bad input, like a bad config value
            // (`FERRY_JOB_ID=..` is refused as the config's `job_id` is).
            LaunchError::BadVar { .. } => Error::InvalidArgument(e.to_string()),
            e => Error::Launch {
                what: "could not start the runtime".into(),
                source: Arc::new(e),
            },
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
