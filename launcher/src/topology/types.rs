//! The node's topology as data: its NUMA nodes with their cores and CPUs,
//! its GPUs, and where the description came from. Reading it from the
//! machine ([`Topology::detect`], in `detect.rs`) stands on these types;
//! they know nothing of it.

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
