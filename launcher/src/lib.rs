//! Ferry's launcher support.
//!
//! A Ferry program runs either as one rank (`cargo run`) or as many MPI
//! ranks started by `mpirun`, `mpiexec` or `srun`. This crate answers the
//! questions a rank has before any communication exists:
//!
//! * [`world`]: who am I? ([`discover`] reads the launcher's environment
//!   variables into a [`World`]: rank, size, local rank, job id).
//! * [`affinity`]: which CPUs may I run on, and how do I pin a thread?
//!   [`membind`]: where do my thread's and my arena's pages come from?
//! * [`cuda_visible`]: which GPUs does `CUDA_VISIBLE_DEVICES` leave me?
//! * [`topology`] and [`plan`](mod@plan): how should the ranks of one node split
//!   its CPUs and GPUs between them ([`plan()`] gives a [`RankBinding`] per
//!   local rank, without overlap; [`plan_rank`] one rank's binding given
//!   what the launcher gave every rank of the node).
//! * [`info`]: a readable table (or JSON) of that plan, for `ferry info`.
//!
//! ```
//! use ferry_launcher::{discover_from, plan, Launcher, Topology};
//!
//! // Synthetic environment: rank 1 of 2 under Open MPI's mpirun.
//! let env = |name: &str| match name {
//!     "OMPI_COMM_WORLD_RANK" | "OMPI_COMM_WORLD_LOCAL_RANK" => Some("1".to_string()),
//!     "OMPI_COMM_WORLD_SIZE" | "OMPI_COMM_WORLD_LOCAL_SIZE" => Some("2".to_string()),
//!     "OMPI_MCA_ess_base_jobid" => Some("4242".to_string()),
//!     _ => None,
//! };
//! let world = discover_from(env)?;
//! assert_eq!(world.launcher, Launcher::OpenMpi);
//! assert_eq!(world.job_id, "ompi4242");
//!
//! let topo = Topology::from_cpus((0..8).collect());
//! let bindings = plan(&topo, world.local_size)?;
//! assert_eq!(bindings[world.local_rank as usize].cpus, vec![4, 5, 6, 7]);
//! # Ok::<(), ferry_launcher::LaunchError>(())
//! ```

pub mod affinity;
pub mod cuda_visible;
pub mod error;
#[cfg(feature = "hwloc")]
mod hwloc;
pub mod info;
pub mod membind;
pub mod plan;
pub mod topology;
pub mod world;

pub use error::LaunchError;
pub use info::{format_cpu_ranges, render_json, render_table};
pub use plan::{Granted, RankBinding, plan, plan_oversubscribed, plan_rank};
pub use topology::{GpuInfo, NumaNode, Topology, TopologySource};
pub use world::{
    JobIdError, Launcher, MAX_JOB_ID, World, check_job_id, discover, discover_from,
    require_single_rank, sanitize_job_id,
};
