//! The node's topology from hwloc (feature `hwloc`): NUMA nodes, cores and
//! their hardware threads, and the NVIDIA GPUs with the NUMA node each
//! hangs off (from the PCI tree, so no CUDA or NVML plugin is needed).

use std::collections::HashSet;

use hwlocality::Topology as Hw;
use hwlocality::object::TopologyObject;
use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::types::ObjectType;
use hwlocality::topology::builder::TypeFilter;

use crate::topology::{GpuInfo, NumaNode, Topology, TopologySource};

/// NVIDIA's PCI vendor id.
const NVIDIA: u16 = 0x10de;
/// PCI classes of GPUs: VGA controller, 3D controller.
const GPU_CLASSES: [u16; 2] = [0x0300, 0x0302];

/// Reads this machine through hwloc, keeping only the CPUs in `allowed`;
/// `None` when hwloc cannot load the topology (then the caller falls back
/// to the affinity mask).
pub(crate) fn detect(allowed: &[usize]) -> Option<Topology> {
    let hw = Hw::builder()
        .with_io_type_filter(TypeFilter::KeepImportant)
        .ok()?
        .build()
        .ok()?;
    let allowed: HashSet<usize> = allowed.iter().copied().collect();
    let cpus_of = |obj: &TopologyObject| -> Vec<usize> {
        obj.cpuset()
            .map(|set| {
                set.iter_set()
                    .map(usize::from)
                    .filter(|c| allowed.contains(c))
                    .collect()
            })
            .unwrap_or_default()
    };
    let cores: Vec<Vec<usize>> = hw
        .objects_with_type(ObjectType::Core)
        .map(cpus_of)
        .collect();
    let mut numa_nodes = Vec::new();
    for node in hw.objects_with_type(ObjectType::NUMANode) {
        let Some(os_index) = node.os_index() else {
            continue;
        };
        let mine: HashSet<usize> = cpus_of(node).into_iter().collect();
        let mut node_cores: Vec<Vec<usize>> = cores
            .iter()
            .map(|core| core.iter().copied().filter(|c| mine.contains(c)).collect())
            .filter(|core: &Vec<usize>| !core.is_empty())
            .collect();
        // A machine that reports no cores: every CPU is one.
        let covered: HashSet<usize> = node_cores.iter().flatten().copied().collect();
        node_cores.extend(
            mine.iter()
                .filter(|c| !covered.contains(c))
                .map(|&c| vec![c]),
        );
        let numa = NumaNode::with_cores(os_index as u32, node_cores);
        // Memory-only nodes (CXL, HBM without CPUs) hold no CPU to plan.
        if !numa.cpus.is_empty() {
            numa_nodes.push(numa);
        }
    }
    if numa_nodes.is_empty() {
        return None;
    }
    numa_nodes.sort_by_key(|n| n.os_index);
    Some(Topology {
        numa_nodes,
        gpus: pci_gpus(&hw),
        source: TopologySource::Hwloc,
    })
}

/// NVIDIA GPUs on the PCI bus, in bus order, with their NUMA node.
fn pci_gpus(hw: &Hw) -> Vec<GpuInfo> {
    let mut found: Vec<(String, Option<u32>)> = hw
        .pci_devices()
        .filter_map(|dev| {
            let Some(ObjectAttributes::PCIDevice(pci)) = dev.attributes() else {
                return None;
            };
            if pci.vendor_id() != NVIDIA || !GPU_CLASSES.contains(&pci.class_id()) {
                return None;
            }
            let bus = format!(
                "{:04x}:{:02x}:{:02x}.{:x}",
                pci.domain(),
                pci.bus_id(),
                pci.bus_device(),
                pci.function()
            );
            let numa = dev
                .first_non_io_ancestor()
                .and_then(|a| a.nodeset())
                .and_then(|set| {
                    let mut nodes = set.iter_set().map(usize::from);
                    match (nodes.next(), nodes.next()) {
                        (Some(one), None) => Some(one as u32),
                        _ => None,
                    }
                });
            Some((bus, numa))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .zip(0..)
        .map(|((bus, numa), ordinal)| GpuInfo {
            numa_node: numa,
            pci_bus_id: Some(bus),
            ..GpuInfo::new(ordinal, "NVIDIA GPU")
        })
        .collect()
}

/// Fills in names and UUIDs the driver's `/proc` listing knows, matched by
/// PCI address; GPUs only the driver lists (hwloc saw no PCI tree) are
/// taken from it.
pub(crate) fn merge_proc_gpus(gpus: &mut Vec<GpuInfo>, from_proc: &[GpuInfo]) {
    if gpus.is_empty() {
        gpus.extend(from_proc.iter().cloned());
        return;
    }
    for gpu in gpus.iter_mut() {
        if let Some(p) = from_proc.iter().find(|p| p.pci_bus_id == gpu.pci_bus_id) {
            gpu.name.clone_from(&p.name);
            gpu.uuid.clone_from(&p.uuid);
        }
    }
}
