//! Resources: the logical ledger (CPUs, GPUs, memory, custom), the pool of
//! GPU ids, pinning to cores, NUMA nodes and devices, and the options that
//! ask for them.

pub(crate) mod bundles;
pub mod gpu;
pub(crate) mod gpu_pool;
pub(crate) mod items;
pub(crate) mod ledger;
pub(crate) mod options;
pub(crate) mod pinning;
pub(crate) mod placement;
