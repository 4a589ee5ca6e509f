//! The error type of this crate.

/// Why discovering the world, reading the machine or planning the bindings
/// failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// A launcher environment variable is missing or malformed.
    #[error("environment variable {name}={value:?} is not usable: {why}")]
    BadVar {
        /// The variable's name, e.g. `OMPI_COMM_WORLD_RANK`.
        name: String,
        /// Its value as found (empty when it is not set).
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// The program was started as several ranks but cannot talk MPI.
    #[error(
        "started as {size} ranks by {launcher}, but this program was built without Ferry's \
         `mpi` feature: rebuild with `--features mpi`, or run it with one rank"
    )]
    MpiRequired {
        /// The number of ranks the launcher started.
        size: u32,
        /// The launcher, in words (e.g. `mpirun (Open MPI)`).
        launcher: String,
    },
    /// More ranks on this node than CPUs to give them.
    #[error(
        "{ranks} ranks on this node but only {cpus} CPUs allowed: start fewer ranks per node, \
         or plan with CPU sharing (oversubscription)"
    )]
    Oversubscribed {
        /// Ranks on this node.
        ranks: u32,
        /// CPUs available on this node.
        cpus: usize,
    },
    /// The inputs of a plan do not fit together.
    #[error("cannot plan the binding: {0}")]
    Plan(String),
    /// An operating-system call failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
