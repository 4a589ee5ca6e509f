//! `ferry bench`'s NUMA streaming measurement: an actor pinned to a NUMA
//! node sums a large buffer whose pages were placed on its own node or on
//! another one, to show what pinning buys (and what a wrong placement
//! costs). On a machine with one NUMA node there is nothing to compare; it
//! says so and reports the local figure.

use std::time::Instant;

use ferry::parts::launcher::{Topology, membind};
use ferry::{Pin, Runtime};

use super::runner::Runner;
use super::timeit::{median, say};

/// Bytes streamed per pass.
const BYTES: usize = 256 << 20;

/// An actor that streams over memory on a chosen NUMA node.
#[ferry::actor]
pub(crate) struct Streamer;

#[ferry::actor]
impl Streamer {
    fn new() -> Self {
        Streamer
    }

    /// Places `BYTES` on NUMA node `memory` (the policy is set before the
    /// first touch, so the pages land there whichever CPU touches them),
    /// then sums them `passes` times; the GB/s of each pass.
    fn stream(&self, memory: u32, passes: u32) -> Result<Vec<f64>, String> {
        let words = BYTES / 8;
        let mut buf: Vec<u64> = Vec::with_capacity(words);
        membind::bind_area(buf.as_ptr().cast(), words * 8, memory)
            .map_err(|e| format!("cannot place memory on NUMA node {memory}: {e}"))?;
        buf.extend((0..words as u64).map(|i| i ^ 0x5555));
        let mut rates = Vec::new();
        let mut total = 0u64;
        for _ in 0..passes {
            let start = Instant::now();
            total = total.wrapping_add(buf.iter().fold(0u64, |a, &x| a.wrapping_add(x)));
            rates.push(BYTES as f64 / start.elapsed().as_secs_f64() / 1e9);
        }
        std::hint::black_box(total);
        Ok(rates)
    }
}

/// Runs the measurement when the filter wants "numa streaming".
pub(crate) fn run(rt: &Runtime, r: &mut Runner<'_>) -> ferry::Result<()> {
    if !r.wants_printed("numa streaming") {
        return Ok(());
    }
    let passes = 5;
    let topo = Topology::detect().map_err(|e| ferry::Error::Launch {
        what: "cannot read this node's topology".into(),
        source: std::sync::Arc::new(e.into()),
    })?;
    let binding = rt.binding();
    let mut nodes: Vec<u32> = binding
        .cpus
        .iter()
        .filter_map(|&c| topo.numa_of(c))
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    let rate = |cpu_node: u32, mem_node: u32| -> ferry::Result<f64> {
        let actor = Streamer::options()
            .pin(Pin::NumaNode(cpu_node))
            .remote(rt)?;
        let rates = rt.get_value(&actor.stream(mem_node, passes).remote()?)?;
        Ok(median(rates))
    };
    if nodes.len() < 2 {
        let node = nodes.first().copied().unwrap_or(0);
        let local = rate(node, node)?;
        say(&format!(
            "numa streaming: this rank's CPUs are on one NUMA node ({} NUMA node{} seen, {}): \
             no remote node to compare; an actor pinned to node {node} sums {} MiB of its \
             node's memory at {local:.1} GB/s (median of {passes})",
            topo.numa_nodes.len(),
            if topo.numa_nodes.len() == 1 { "" } else { "s" },
            topo.source.describe(),
            BYTES >> 20,
        ));
        return Ok(());
    }
    say(&format!(
        "numa streaming: an actor pinned to each NUMA node sums {} MiB placed on each node \
         (GB/s, median of {passes})",
        BYTES >> 20
    ));
    for &cpu in &nodes {
        let mut row = Vec::new();
        let mut local = 0.0;
        let mut remote = Vec::new();
        for &mem in &nodes {
            let gbs = rate(cpu, mem)?;
            row.push(format!("mem {mem}: {gbs:6.1}"));
            if mem == cpu {
                local = gbs;
            } else {
                remote.push(gbs);
            }
        }
        let worst = remote.iter().copied().fold(f64::INFINITY, f64::min);
        say(&format!(
            "  actor on node {cpu}: {}  local/remote {:.2}",
            row.join("  "),
            local / worst
        ));
    }
    Ok(())
}
