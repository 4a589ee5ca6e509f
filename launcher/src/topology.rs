//! What this node has: NUMA nodes with their CPUs, and GPUs.
//!
//! Without hwloc (not yet a feature of this crate) the topology comes from
//! the CPU affinity mask: one NUMA node holding the allowed CPUs. NVIDIA
//! GPUs are listed from `/proc/driver/nvidia/gpus` when the driver is
//! loaded.

use std::io;
use std::path::Path;

use crate::affinity;

/// Where a [`Topology`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TopologySource {
    /// From the CPU affinity mask, without hwloc: one NUMA node is assumed,
    /// its CPUs are the allowed cpuset.
    Affinity,
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
        }
    }

    /// What the source means, in words.
    ///
    /// ```
    /// let text = ferry_launcher::TopologySource::Affinity.describe();
    /// assert!(text.contains("without hwloc"));
    /// ```
    pub fn describe(self) -> &'static str {
        match self {
            TopologySource::Affinity => {
                "from the CPU affinity mask (built without hwloc: one NUMA node assumed)"
            }
        }
    }
}

/// One NUMA node and the CPUs of it that this process may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNode {
    /// The operating system's number of the node.
    pub os_index: u32,
    /// The node's allowed CPUs, ascending.
    pub cpus: Vec<usize>,
}

/// One GPU of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// The GPU's number (in PCI bus order, as with
    /// `CUDA_DEVICE_ORDER=PCI_BUS_ID`).
    pub ordinal: u32,
    /// The NUMA node the GPU is attached to, when known.
    pub numa_node: Option<u32>,
    /// The GPU's model name.
    pub name: String,
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
        let mut topo = Topology::from_cpus(affinity::allowed_cpus()?);
        topo.gpus = nvidia_gpus(Path::new("/proc/driver/nvidia/gpus"));
        Ok(topo)
    }

    /// A topology of one NUMA node (number 0) holding `cpus` (sorted and
    /// deduplicated here), with no GPUs.
    ///
    /// ```
    /// let topo = ferry_launcher::Topology::from_cpus(vec![3, 1, 2, 1]);
    /// assert_eq!(topo.numa_nodes[0].cpus, vec![1, 2, 3]);
    /// assert_eq!(topo.cpu_count(), 3);
    /// ```
    pub fn from_cpus(mut cpus: Vec<usize>) -> Topology {
        cpus.sort_unstable();
        cpus.dedup();
        Topology {
            numa_nodes: vec![NumaNode { os_index: 0, cpus }],
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
/// per GPU named by its PCI address, with a `Model:` line in `information`.
/// The NUMA node is left unknown: without hwloc one NUMA node is assumed.
fn nvidia_gpus(dir: &Path) -> Vec<GpuInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, String)> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            let bus = entry.file_name().to_string_lossy().to_lowercase();
            let info =
                std::fs::read_to_string(entry.path().join("information")).unwrap_or_default();
            let name = info
                .lines()
                .find_map(|line| line.strip_prefix("Model:"))
                .map(|m| m.trim().to_string())
                .unwrap_or_else(|| "NVIDIA GPU".to_string());
            (bus, name)
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .zip(0..)
        .map(|((_, name), ordinal)| GpuInfo {
            ordinal,
            numa_node: None,
            name,
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
                format!("Model: \t\t {model}\nIRQ: 1\n"),
            )
            .unwrap();
        }
        let gpus = nvidia_gpus(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!((gpus[0].ordinal, gpus[0].name.as_str()), (0, "NVIDIA A"));
        assert_eq!((gpus[1].ordinal, gpus[1].name.as_str()), (1, "NVIDIA B"));
        assert!(nvidia_gpus(Path::new("/nonexistent/ferry")).is_empty());
    }
}
