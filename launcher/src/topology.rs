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

use std::io;
use std::path::Path;

use crate::affinity;
use crate::cuda_visible;

/// Where the NVIDIA driver lists its GPUs, one directory per PCI address.
const NVIDIA_PROC: &str = "/proc/driver/nvidia/gpus";

/// Where a [`Topology`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TopologySource {
    /// From the CPU affinity mask, without hwloc: one NUMA node is assumed,
    /// its CPUs are the allowed cpuset.
    Affinity,
    /// From hwloc, restricted to the allowed cpuset.
    Hwloc,
}

impl TopologySource {
    /// A short machine-readable name, e.g. `affinity`.
    ///
    /// ```
    /// assert_eq!(ferry_launcher::TopologySource::Affinity.name(), "affinity");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            TopologySource::Affinity => "affinity",
            TopologySource::Hwloc => "hwloc",
        }
    }

    /// What the source means, in words.
    ///
    /// ```
    /// let text = ferry_launcher::TopologySource::Affinity.describe();
    /// assert!(text.contains("one NUMA node assumed"));
    /// ```
    pub fn describe(self) -> &'static str {
        match self {
            TopologySource::Affinity if cfg!(feature = "hwloc") => {
                "from the CPU affinity mask (hwloc could not read this machine: one NUMA node assumed)"
            }
            TopologySource::Affinity => {
                "from the CPU affinity mask (built without hwloc: one NUMA node assumed)"
            }
            TopologySource::Hwloc => "from hwloc (NUMA nodes, cores, GPU locality)",
        }
    }
}

/// One NUMA node and the CPUs of it that this process may use.
///
/// `cores` groups `cpus` by physical core (a core's hardware threads); the
/// two always hold the same CPUs. Build one with [`NumaNode::new`] (every
/// CPU its own core) or [`NumaNode::with_cores`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNode {
    /// The operating system's number of the node.
    pub os_index: u32,
    /// The node's allowed CPUs (hardware threads, hwloc's PUs), ascending.
    pub cpus: Vec<usize>,
    /// The node's allowed cores, each the ascending list of its CPUs,
    /// ordered by their first CPU.
    pub cores: Vec<Vec<usize>>,
}

impl NumaNode {
    /// A node whose every CPU is a core of its own (no SMT).
    ///
    /// ```
    /// let node = ferry_launcher::NumaNode::new(1, vec![5, 4]);
    /// assert_eq!(node.cpus, vec![4, 5]);
    /// assert_eq!(node.cores, vec![vec![4], vec![5]]);
    /// ```
    pub fn new(os_index: u32, cpus: Vec<usize>) -> NumaNode {
        NumaNode::with_cores(os_index, cpus.into_iter().map(|c| vec![c]).collect())
    }

    /// A node of the given cores (each a list of its CPUs); empty cores are
    /// dropped, CPUs sorted and deduplicated.
    ///
    /// ```
    /// let node = ferry_launcher::NumaNode::with_cores(0, vec![vec![2, 0], vec![3, 1]]);
    /// assert_eq!(node.cpus, vec![0, 1, 2, 3]);
    /// assert_eq!(node.cores, vec![vec![0, 2], vec![1, 3]]);
    /// ```
    pub fn with_cores(os_index: u32, cores: Vec<Vec<usize>>) -> NumaNode {
        let mut cores: Vec<Vec<usize>> = cores
            .into_iter()
            .map(|mut core| {
                core.sort_unstable();
                core.dedup();
                core
            })
            .filter(|core| !core.is_empty())
            .collect();
        cores.sort();
        cores.dedup();
        let mut cpus: Vec<usize> = cores.iter().flatten().copied().collect();
        cpus.sort_unstable();
        cpus.dedup();
        NumaNode {
            os_index,
            cpus,
            cores,
        }
    }
}

/// One GPU of the node, as this process's CUDA sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// The device's CUDA ordinal in this process: its position among the
    /// devices `CUDA_VISIBLE_DEVICES` leaves visible (all of them, in PCI
    /// bus order as with `CUDA_DEVICE_ORDER=PCI_BUS_ID`, when it is unset).
    /// This is what `gpu_ids()` returns and what a CUDA context is opened on.
    pub ordinal: u32,
    /// The NUMA node the GPU is attached to, when known.
    pub numa_node: Option<u32>,
    /// The GPU's model name.
    pub name: String,
    /// The device's UUID (`GPU-…`, or `MIG-…` for a MIG instance), when
    /// known.
    pub uuid: Option<String>,
    /// The PCI address (`0000:41:00.0`), when known.
    pub pci_bus_id: Option<String>,
    /// How to name this device in `CUDA_VISIBLE_DEVICES` for a task or
    /// child process: the entry of this process's `CUDA_VISIBLE_DEVICES`
    /// that made it visible, or its physical index when that is unset.
    pub visible_id: String,
}

impl GpuInfo {
    /// A GPU known only by its ordinal and name (its physical index is the
    /// ordinal).
    ///
    /// ```
    /// let gpu = ferry_launcher::GpuInfo::new(2, "NVIDIA H200");
    /// assert_eq!(gpu.visible_id, "2");
    /// assert_eq!(gpu.numa_node, None);
    /// ```
    pub fn new(ordinal: u32, name: impl Into<String>) -> GpuInfo {
        GpuInfo {
            ordinal,
            numa_node: None,
            name: name.into(),
            uuid: None,
            pci_bus_id: None,
            visible_id: ordinal.to_string(),
        }
    }
}

/// The node's NUMA nodes, CPUs and GPUs, as far as this process may use
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// NUMA nodes, ordered by `os_index`.
    pub numa_nodes: Vec<NumaNode>,
    /// GPUs, ordered by `ordinal`.
    pub gpus: Vec<GpuInfo>,
    /// Where this came from.
    pub source: TopologySource,
}

impl Topology {
    /// Reads this node: the CPUs of the process's affinity mask (one NUMA
    /// node assumed) and the NVIDIA GPUs the driver lists.
    ///
    /// # Errors
    ///
    /// When the affinity mask cannot be read.
    ///
    /// ```
    /// let topo = ferry_launcher::Topology::detect()?;
    /// assert!(topo.cpu_count() >= 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn detect() -> io::Result<Topology> {
        let allowed = affinity::allowed_cpus()?;
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        #[cfg(feature = "hwloc")]
        if let Some(mut topo) = crate::hwloc::detect(&allowed) {
            let proc_gpus = nvidia_gpus(Path::new(NVIDIA_PROC));
            crate::hwloc::merge_proc_gpus(&mut topo.gpus, &proc_gpus);
            topo.gpus = cuda_visible::apply(&topo.gpus, visible.as_deref()).gpus;
            return Ok(topo);
        }
        let mut topo = Topology::from_cpus(allowed);
        let physical = nvidia_gpus(Path::new(NVIDIA_PROC));
        topo.gpus = cuda_visible::apply(&physical, visible.as_deref()).gpus;
        Ok(topo)
    }

    /// The NUMA node holding `cpu`, if any.
    ///
    /// ```
    /// let topo = ferry_launcher::Topology::from_cpus(vec![0, 1]);
    /// assert_eq!(topo.numa_of(1), Some(0));
    /// assert_eq!(topo.numa_of(7), None);
    /// ```
    pub fn numa_of(&self, cpu: usize) -> Option<u32> {
        self.numa_nodes
            .iter()
            .find(|n| n.cpus.binary_search(&cpu).is_ok())
            .map(|n| n.os_index)
    }

    /// This topology with only the CPUs of `cpus` (NUMA nodes and cores left
    /// empty are dropped); GPUs are kept.
    ///
    /// ```
    /// let topo = ferry_launcher::Topology::from_cpus((0..8).collect());
    /// assert_eq!(topo.restricted_to(&[6, 7, 9]).numa_nodes[0].cpus, vec![6, 7]);
    /// ```
    pub fn restricted_to(&self, cpus: &[usize]) -> Topology {
        let keep: std::collections::HashSet<usize> = cpus.iter().copied().collect();
        let numa_nodes = self
            .numa_nodes
            .iter()
            .map(|n| {
                let cores = n
                    .cores
                    .iter()
                    .map(|core| core.iter().copied().filter(|c| keep.contains(c)).collect())
                    .collect();
                NumaNode::with_cores(n.os_index, cores)
            })
            .filter(|n| !n.cpus.is_empty())
            .collect();
        Topology {
            numa_nodes,
            gpus: self.gpus.clone(),
            source: self.source,
        }
    }

    /// The number of cores over all NUMA nodes.
    ///
    /// ```
    /// let node = ferry_launcher::NumaNode::with_cores(0, vec![vec![0, 2], vec![1, 3]]);
    /// let topo = ferry_launcher::Topology { numa_nodes: vec![node], ..ferry_launcher::Topology::from_cpus(vec![]) };
    /// assert_eq!((topo.core_count(), topo.cpu_count()), (2, 4));
    /// ```
    pub fn core_count(&self) -> usize {
        self.numa_nodes.iter().map(|n| n.cores.len()).sum()
    }

    /// A topology of one NUMA node (number 0) holding `cpus` (sorted and
    /// deduplicated here), with no GPUs.
    ///
    /// ```
    /// let topo = ferry_launcher::Topology::from_cpus(vec![3, 1, 2, 1]);
    /// assert_eq!(topo.numa_nodes[0].cpus, vec![1, 2, 3]);
    /// assert_eq!(topo.cpu_count(), 3);
    /// ```
    pub fn from_cpus(cpus: Vec<usize>) -> Topology {
        Topology {
            numa_nodes: vec![NumaNode::new(0, cpus)],
            gpus: Vec::new(),
            source: TopologySource::Affinity,
        }
    }

    /// The number of CPUs over all NUMA nodes.
    ///
    /// ```
    /// assert_eq!(ferry_launcher::Topology::from_cpus((0..8).collect()).cpu_count(), 8);
    /// ```
    pub fn cpu_count(&self) -> usize {
        self.numa_nodes.iter().map(|n| n.cpus.len()).sum()
    }
}

/// Lists NVIDIA GPUs from the driver's `/proc` directory, one subdirectory
/// per GPU named by its PCI address, with `Model:` and `GPU UUID:` lines in
/// `information`, in PCI bus order. The NUMA node is left unknown: without
/// hwloc one NUMA node is assumed.
pub(crate) fn nvidia_gpus(dir: &Path) -> Vec<GpuInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, String, Option<String>)> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            let bus = entry.file_name().to_string_lossy().to_lowercase();
            let info =
                std::fs::read_to_string(entry.path().join("information")).unwrap_or_default();
            let field = |key: &str| {
                info.lines()
                    .find_map(|line| line.strip_prefix(key))
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            let name = field("Model:").unwrap_or_else(|| "NVIDIA GPU".to_string());
            (bus, name, field("GPU UUID:"))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .zip(0..)
        .map(|((bus, name, uuid), ordinal)| GpuInfo {
            uuid,
            pci_bus_id: Some(bus),
            ..GpuInfo::new(ordinal, name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_proc_listing() {
        let dir = std::env::temp_dir().join(format!("ferry-gpus-{}", std::process::id()));
        for (bus, model) in [("0000:c1:00.0", "NVIDIA B"), ("0000:41:00.0", "NVIDIA A")] {
            std::fs::create_dir_all(dir.join(bus)).unwrap();
            std::fs::write(
                dir.join(bus).join("information"),
                format!("Model: \t\t {model}\nIRQ: 1\nGPU UUID: \t GPU-{bus}\n"),
            )
            .unwrap();
        }
        let gpus = nvidia_gpus(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!((gpus[0].ordinal, gpus[0].name.as_str()), (0, "NVIDIA A"));
        assert_eq!((gpus[1].ordinal, gpus[1].name.as_str()), (1, "NVIDIA B"));
        assert_eq!(gpus[0].uuid.as_deref(), Some("GPU-0000:41:00.0"));
        assert_eq!(gpus[1].pci_bus_id.as_deref(), Some("0000:c1:00.0"));
        assert!(nvidia_gpus(Path::new("/nonexistent/ferry")).is_empty());
    }
}
