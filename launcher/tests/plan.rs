//! `plan` over a sweep of synthetic topologies.

use std::collections::HashSet;

use ferry_launcher::{
    GpuInfo, LaunchError, NumaNode, RankBinding, Topology, TopologySource, plan,
    plan_oversubscribed, render_json, render_table,
};

/// `nodes` NUMA nodes splitting `cpus` CPUs (the first nodes get the extra
/// ones), `gpus` GPUs spread round-robin over the nodes.
fn topo(nodes: usize, cpus: usize, gpus: u32) -> Topology {
    let mut numa_nodes = Vec::new();
    let mut next = 0;
    for n in 0..nodes {
        let count = cpus / nodes + usize::from(n < cpus % nodes);
        numa_nodes.push(NumaNode {
            os_index: n as u32,
            cpus: (next..next + count).collect(),
        });
        next += count;
    }
    Topology {
        numa_nodes,
        gpus: (0..gpus)
            .map(|g| GpuInfo {
                ordinal: g,
                numa_node: Some(g % nodes as u32),
                name: format!("gpu{g}"),
            })
            .collect(),
        source: TopologySource::Affinity,
    }
}

fn node_of(topo: &Topology, cpu: usize) -> u32 {
    topo.numa_nodes
        .iter()
        .find(|n| n.cpus.contains(&cpu))
        .map(|n| n.os_index)
        .expect("cpu of the topology")
}

fn check(topo: &Topology, ranks: u32, bindings: &[RankBinding]) {
    let ctx = format!(
        "nodes={} cpus={} gpus={} ranks={ranks}",
        topo.numa_nodes.len(),
        topo.cpu_count(),
        topo.gpus.len()
    );
    assert_eq!(bindings.len(), ranks as usize, "{ctx}");
    let mut seen = HashSet::new();
    for (i, b) in bindings.iter().enumerate() {
        assert_eq!(b.local_rank as usize, i, "{ctx}");
        assert!(!b.cpus.is_empty(), "{ctx}: rank {i} has no cpu");
        assert!(b.cpus.windows(2).all(|w| w[0] < w[1]), "{ctx}: sorted");
        for &c in &b.cpus {
            assert!(seen.insert(c), "{ctx}: cpu {c} given twice");
        }
        let nodes: HashSet<u32> = b.cpus.iter().map(|&c| node_of(topo, c)).collect();
        if ranks as usize >= topo.numa_nodes.len() {
            assert_eq!(nodes.len(), 1, "{ctx}: rank {i} spans NUMA nodes");
            assert_eq!(b.numa_node, nodes.iter().next().copied(), "{ctx}");
        } else if nodes.len() == 1 {
            assert_eq!(b.numa_node, nodes.iter().next().copied(), "{ctx}");
        } else {
            assert_eq!(b.numa_node, None, "{ctx}");
        }
    }
    // Contiguous blocks inside each NUMA node and every CPU used.
    assert_eq!(seen.len(), topo.cpu_count(), "{ctx}: all cpus used");
    let cpu_sizes: Vec<usize> = bindings.iter().map(|b| b.cpus.len()).collect();
    if ranks as usize >= topo.numa_nodes.len() && topo.cpu_count() % ranks as usize == 0 {
        // Equal NUMA nodes and an even split: equal shares.
        let equal_nodes = topo
            .numa_nodes
            .iter()
            .all(|n| n.cpus.len() == topo.numa_nodes[0].cpus.len());
        if equal_nodes && ranks as usize % topo.numa_nodes.len() == 0 {
            assert!(
                cpu_sizes.iter().all(|&s| s == cpu_sizes[0]),
                "{ctx}: {cpu_sizes:?}"
            );
        }
    }
    // GPUs: balanced, and each rank's GPUs near it when the topology allows.
    let g = topo.gpus.len();
    let r = ranks as usize;
    if g == 0 {
        assert!(bindings.iter().all(|b| b.gpus.is_empty()), "{ctx}");
    } else if g >= r {
        let mut all: Vec<u32> = bindings.iter().flat_map(|b| b.gpus.clone()).collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..g as u32).collect::<Vec<_>>(),
            "{ctx}: each gpu once"
        );
        for b in bindings {
            let n = b.gpus.len();
            assert!(n == g / r || n == g / r + 1, "{ctx}: uneven gpus {n}");
        }
    } else {
        let mut users = vec![0usize; g];
        for b in bindings {
            assert_eq!(b.gpus.len(), 1, "{ctx}: one shared gpu per rank");
            users[b.gpus[0] as usize] += 1;
        }
        for &u in &users {
            assert!(
                u == r / g || u == r / g + 1,
                "{ctx}: uneven sharing {users:?}"
            );
        }
    }
}

#[test]
fn sweep_synthetic_topologies() {
    let mut cases = 0;
    for nodes in 1..=4 {
        for cpus in [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 127, 128] {
            if cpus < nodes {
                continue;
            }
            for gpus in 0..=8 {
                let topo = topo(nodes, cpus, gpus);
                for ranks in 1..=8u32 {
                    match plan(&topo, ranks) {
                        Ok(bindings) => check(&topo, ranks, &bindings),
                        Err(LaunchError::Oversubscribed { ranks: r, cpus: c }) => {
                            assert!(ranks as usize > cpus);
                            assert_eq!((r, c), (ranks, cpus));
                        }
                        Err(e) => panic!("unexpected {e}"),
                    }
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 1500);
}

#[test]
fn gpus_stay_on_their_numa_node_when_even() {
    // Two NUMA nodes, two ranks each; four GPUs, two per node, listed
    // node 1 first.
    let mut t = topo(2, 16, 4);
    for (g, node) in t.gpus.iter_mut().zip([1, 1, 0, 0]) {
        g.numa_node = Some(node);
    }
    let bindings = plan(&t, 4).unwrap();
    for b in &bindings {
        for g in &b.gpus {
            assert_eq!(t.gpus[*g as usize].numa_node, b.numa_node, "{bindings:?}");
        }
    }
    // Two ranks, one per node; GPUs listed alternating.
    let t = topo(2, 8, 4);
    let bindings = plan(&t, 2).unwrap();
    assert_eq!(bindings[0].gpus, vec![0, 2]);
    assert_eq!(bindings[1].gpus, vec![1, 3]);
}

#[test]
fn ranks_follow_numa_sizes() {
    // Node 0 has 12 CPUs, node 1 has 4: three ranks go 2 + 1.
    let t = Topology {
        numa_nodes: vec![
            NumaNode {
                os_index: 0,
                cpus: (0..12).collect(),
            },
            NumaNode {
                os_index: 1,
                cpus: (12..16).collect(),
            },
        ],
        gpus: Vec::new(),
        source: TopologySource::Affinity,
    };
    let b = plan(&t, 3).unwrap();
    assert_eq!(b[0].cpus, (0..6).collect::<Vec<_>>());
    assert_eq!(b[1].cpus, (6..12).collect::<Vec<_>>());
    assert_eq!(b[2].cpus, (12..16).collect::<Vec<_>>());
    // Fewer ranks than nodes: whole nodes per rank.
    let t = topo(4, 16, 0);
    let b = plan(&t, 2).unwrap();
    assert_eq!(b[0].cpus, (0..8).collect::<Vec<_>>());
    assert_eq!(b[0].numa_node, None);
    let b = plan(&t, 3).unwrap();
    assert_eq!(b[2].cpus, (12..16).collect::<Vec<_>>());
    assert_eq!(b[2].numa_node, Some(3));
}

#[test]
fn non_contiguous_cpu_numbers() {
    // A cpuset like 0-3,8-11 from `taskset`/srun.
    let t = Topology::from_cpus(vec![0, 1, 2, 3, 8, 9, 10, 11]);
    let b = plan(&t, 2).unwrap();
    assert_eq!(b[0].cpus, vec![0, 1, 2, 3]);
    assert_eq!(b[1].cpus, vec![8, 9, 10, 11]);
    let table = render_table(&t, &b);
    assert!(table.contains("0-3,8-11"), "{table}");
}

#[test]
fn oversubscription() {
    let t = topo(2, 4, 1);
    let err = plan(&t, 6).unwrap_err();
    assert!(matches!(
        err,
        LaunchError::Oversubscribed { ranks: 6, cpus: 4 }
    ));
    assert!(err.to_string().contains("6 ranks"));
    let b = plan_oversubscribed(&t, 6).unwrap();
    let cpus: Vec<usize> = b.iter().map(|b| b.cpus[0]).collect();
    assert_eq!(cpus, vec![0, 1, 2, 3, 0, 1]);
    assert_eq!(b[2].numa_node, Some(1));
    assert!(b.iter().all(|b| b.gpus == vec![0]));
    // Enough CPUs: the same as plan().
    assert_eq!(plan_oversubscribed(&t, 2).unwrap(), plan(&t, 2).unwrap());
    // No CPUs at all.
    let empty = Topology::from_cpus(Vec::new());
    assert!(plan_oversubscribed(&empty, 1).is_err());
    assert!(plan(&empty, 0).unwrap().is_empty());
}

#[test]
fn table_and_json() {
    let t = topo(2, 8, 2);
    let b = plan(&t, 2).unwrap();
    let table = render_table(&t, &b);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "topology: from the CPU affinity mask (built without hwloc: one NUMA node assumed)"
    );
    assert!(table.contains("gpu 1: gpu1 (numa 1)"), "{table}");
    let rows: Vec<&str> = lines
        .iter()
        .copied()
        .skip_while(|l| !l.starts_with("rank"))
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows[1].starts_with("0     0-3   0     0"), "{table}");
    assert!(rows[2].starts_with("1     4-7   1     1"), "{table}");

    let json = render_json(&t, &b);
    assert_eq!(json["cpu_count"], 8);
    assert_eq!(json["numa_nodes"].as_array().unwrap().len(), 2);
    assert_eq!(json["gpus"][1]["numa_node"], 1);
    assert_eq!(json["ranks"][0]["cpus"], serde_json::json!([0, 1, 2, 3]));
    assert_eq!(json["ranks"][1]["gpus"], serde_json::json!([1]));
}
