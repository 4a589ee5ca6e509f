//! Human- and machine-readable views of a topology and its plan, for
//! `ferry info`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::plan::RankBinding;
use crate::topology::Topology;

/// Writes CPU numbers as ranges: `[0, 1, 2, 3, 8]` becomes `0-3,8`; an
/// empty list is `-`. The input need not be sorted.
///
/// ```
/// use ferry_launcher::format_cpu_ranges;
/// assert_eq!(format_cpu_ranges(&[0, 1, 2, 3, 8]), "0-3,8");
/// assert_eq!(format_cpu_ranges(&[5, 3, 4, 10, 12, 11]), "3-5,10-12");
/// assert_eq!(format_cpu_ranges(&[7]), "7");
/// assert_eq!(format_cpu_ranges(&[]), "-");
/// ```
pub fn format_cpu_ranges(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}-{end}");
        }
        i += 1;
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

fn list_or_dash(items: &[u32]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A readable table of the topology and the per-rank plan: a header naming
/// the topology's source and what the node has, then one row per local
/// rank with its CPUs (as ranges), NUMA node and GPUs.
///
/// ```
/// use ferry_launcher::{plan, render_table, Topology};
///
/// let topo = Topology::from_cpus((0..8).collect());
/// let table = render_table(&topo, &plan(&topo, 2)?);
/// assert!(table.starts_with("topology: from the CPU affinity mask"));
/// assert!(table.contains("0-3"));
/// assert!(table.contains("4-7"));
/// # Ok::<(), ferry_launcher::LaunchError>(())
/// ```
pub fn render_table(topo: &Topology, plan: &[RankBinding]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "topology: {}", topo.source.describe());
    let all: Vec<usize> = topo
        .numa_nodes
        .iter()
        .flat_map(|n| n.cpus.iter().copied())
        .collect();
    let cores = topo.core_count();
    let _ = writeln!(
        out,
        "cpus: {} ({}), {cores} core{}, in {} NUMA node{}",
        all.len(),
        format_cpu_ranges(&all),
        if cores == 1 { "" } else { "s" },
        topo.numa_nodes.len(),
        if topo.numa_nodes.len() == 1 { "" } else { "s" },
    );
    if topo.numa_nodes.len() > 1 {
        for node in &topo.numa_nodes {
            let _ = writeln!(
                out,
                "  numa {}: cpus {}",
                node.os_index,
                format_cpu_ranges(&node.cpus)
            );
        }
    }
    if topo.gpus.is_empty() {
        let _ = writeln!(out, "gpus: none");
    } else {
        let _ = writeln!(out, "gpus: {}", topo.gpus.len());
        for gpu in &topo.gpus {
            let numa = gpu.numa_node.map_or("?".to_string(), |n| n.to_string());
            let id = gpu.uuid.as_deref().or(gpu.pci_bus_id.as_deref());
            let id = id.map_or(String::new(), |id| format!(", {id}"));
            let _ = writeln!(out, "  gpu {}: {} (numa {numa}{id})", gpu.ordinal, gpu.name);
        }
    }
    let rows: Vec<[String; 4]> = plan
        .iter()
        .map(|b| {
            [
                b.local_rank.to_string(),
                format_cpu_ranges(&b.cpus),
                b.numa_node.map_or("-".to_string(), |n| n.to_string()),
                list_or_dash(&b.gpus),
            ]
        })
        .collect();
    let header = ["rank", "cpus", "numa", "gpus"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// The topology and the plan as JSON:
///
/// ```json
/// { "source": "affinity", "source_description": "...",
///   "cpu_count": 8, "core_count": 8,
///   "numa_nodes": [{"os_index": 0, "cpus": [0, ...], "cpu_ranges": "0-7",
///                   "cores": [[0], [1], ...]}],
///   "gpus": [{"ordinal": 0, "numa_node": null, "name": "...", "uuid": null,
///             "pci_bus_id": null, "visible_id": "0"}],
///   "ranks": [{"local_rank": 0, "cpus": [0, 1, 2, 3], "cpu_ranges": "0-3",
///              "cores": [[0], [1], [2], [3]], "numa_node": 0, "gpus": [],
///              "shares_cpus": false}] }
/// ```
///
/// ```
/// use ferry_launcher::{plan, render_json, Topology};
///
/// let topo = Topology::from_cpus((0..4).collect());
/// let json = render_json(&topo, &plan(&topo, 2)?);
/// assert_eq!(json["source"], "affinity");
/// assert_eq!(json["ranks"][1]["cpu_ranges"], "2-3");
/// assert_eq!(json["ranks"][1]["numa_node"], 0);
/// # Ok::<(), ferry_launcher::LaunchError>(())
/// ```
pub fn render_json(topo: &Topology, plan: &[RankBinding]) -> Value {
    json!({
        "source": topo.source.name(),
        "source_description": topo.source.describe(),
        "cpu_count": topo.cpu_count(),
        "core_count": topo.core_count(),
        "numa_nodes": topo.numa_nodes.iter().map(|n| json!({
            "os_index": n.os_index,
            "cpus": n.cpus,
            "cpu_ranges": format_cpu_ranges(&n.cpus),
            "cores": n.cores,
        })).collect::<Vec<_>>(),
        "gpus": topo.gpus.iter().map(|g| json!({
            "ordinal": g.ordinal,
            "numa_node": g.numa_node,
            "name": g.name,
            "uuid": g.uuid,
            "pci_bus_id": g.pci_bus_id,
            "visible_id": g.visible_id,
        })).collect::<Vec<_>>(),
        "ranks": plan.iter().map(|b| json!({
            "local_rank": b.local_rank,
            "cpus": b.cpus,
            "cpu_ranges": format_cpu_ranges(&b.cpus),
            "cores": b.cores,
            "numa_node": b.numa_node,
            "gpus": b.gpus,
            "shares_cpus": b.shares_cpus,
        })).collect::<Vec<_>>(),
    })
}
