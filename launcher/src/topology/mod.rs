//! What this node has: NUMA nodes with their cores and CPUs, and GPUs.
//!
//! With the `hwloc` feature the topology comes from hwloc (NUMA nodes,
//! cores and their hardware threads, GPUs and the NUMA node each hangs off).
//! Without it, from the CPU affinity mask: one NUMA node holding the allowed
//! CPUs, each CPU its own core; NVIDIA GPUs are listed from
//! `/proc/driver/nvidia/gpus` when the driver is loaded. Either way only the
//! CPUs this process may use (its affinity mask, as mpirun, srun, taskset
//! or a cgroup left it) and the GPUs `CUDA_VISIBLE_DEVICES` leaves visible
//! are listed.
//!
//! The description (`types.rs`) stands alone; reading it from the machine
//! (`detect.rs`, with `crate::hwloc` and [`cuda_visible`](crate::cuda_visible))
//! stands on it, and those two modules on the description only.

mod detect;
mod types;

pub use types::{GpuInfo, NumaNode, Topology, TopologySource};
