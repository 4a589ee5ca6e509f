//! `plan` over a sweep of synthetic topologies.

use std::collections::HashSet;

use ferry_launcher::{
    GpuInfo, Granted, LaunchError, NumaNode, RankBinding, Topology, TopologySource, plan,
    plan_oversubscribed, plan_rank, render_json, render_table,
};

/// `nodes` NUMA nodes splitting `cpus` CPUs (the first nodes get the extra
/// ones), `gpus` GPUs spread round-robin over the nodes.
fn topo(nodes: usize, cpus: usize, gpus: u32) -> Topology {
    let mut numa_nodes = Vec::new();
    let mut next = 0;
    for n in 0..nodes {
        let count = cpus / nodes + usize::from(n < cpus % nodes);
        numa_nodes.push(NumaNode::new(n as u32, (next..next + count).collect()));
        next += count;
    }
    Topology {
        numa_nodes,
        gpus: (0..gpus)
            .map(|g| GpuInfo {
                numa_node: Some(g % nodes as u32),
                ..GpuInfo::new(g, format!("gpu{g}"))
            })
            .collect(),
        source: TopologySource::Affinity,
    }
}

/// Like `topo`, with `smt` hardware threads per core: core `k` of the
/// machine holds CPUs `k` and `k + cores`, `k + 2 * cores`, ... (the
/// numbering Linux gives SMT siblings).
fn smt_topo(nodes: usize, cores: usize, smt: usize, gpus: u32) -> Topology {
    let mut t = topo(nodes, cores, gpus);
    for node in &mut t.numa_nodes {
        let split: Vec<Vec<usize>> = node
            .cpus
            .iter()
            .map(|&c| (0..smt).map(|s| c + s * cores).collect())
            .collect();
        *node = NumaNode::with_cores(node.os_index, split);
    }
    t
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
    // Shares are counted in cores while there are enough, else in CPUs.
    let by_core = ranks as usize <= topo.core_count();
    let units = if by_core {
        topo.core_count()
    } else {
        topo.cpu_count()
    };
    let cpu_sizes: Vec<usize> = bindings
        .iter()
        .map(|b| if by_core { b.cores.len() } else { b.cpus.len() })
        .collect();
    if ranks as usize >= topo.numa_nodes.len() && units % ranks as usize == 0 {
        // Equal NUMA nodes and an even split: equal shares.
        let equal_nodes = topo
            .numa_nodes
            .iter()
            .all(|n| n.cpus.len() == topo.numa_nodes[0].cpus.len());
        if equal_nodes && (ranks as usize).is_multiple_of(topo.numa_nodes.len()) {
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
fn sweep_smt_topologies_keeps_cores_whole() {
    let mut cases = 0;
    for nodes in 1..=4 {
        for cores in [2, 4, 6, 8, 16, 32, 64] {
            if cores < nodes {
                continue;
            }
            for smt in [2, 4] {
                for gpus in [0, 1, 2, 4, 8] {
                    let t = smt_topo(nodes, cores, smt, gpus);
                    for ranks in (1..=8u32).filter(|&r| r as usize <= cores * smt) {
                        let b = plan(&t, ranks).unwrap();
                        check(&t, ranks, &b);
                        for r in &b {
                            assert_eq!(r.cores.iter().flatten().count(), r.cpus.len());
                            if ranks as usize <= cores {
                                // Whole cores: every core's threads together.
                                for core in &r.cores {
                                    assert_eq!(core.len(), smt, "{r:?}");
                                    assert!(core.iter().all(|c| r.cpus.contains(c)));
                                }
                            }
                            assert!(!r.shares_cpus);
                        }
                        cases += 1;
                    }
                }
            }
        }
    }
    assert!(cases > 800, "{cases}");
    // More ranks than cores (but not than CPUs): single CPUs.
    let t = smt_topo(1, 2, 2, 0);
    let b = plan(&t, 4).unwrap();
    assert!(b.iter().all(|r| r.cpus.len() == 1), "{b:?}");
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
            NumaNode::new(0, (0..12).collect()),
            NumaNode::new(1, (12..16).collect()),
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
    assert!(
        lines[0].starts_with("topology: from the CPU affinity mask ("),
        "{table}"
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

/// What the launcher gave each rank.
fn granted(cpus: std::ops::Range<usize>, gpus: &[&str]) -> Granted {
    Granted {
        cpus: cpus.collect(),
        gpus: gpus.iter().map(|g| g.to_string()).collect(),
    }
}

#[test]
fn ranks_sharing_one_mask_split_it_as_plan_does() {
    for nodes in 1..=4 {
        for cpus in [4, 8, 16, 64, 128] {
            for gpus in 0..=8 {
                let t = topo(nodes, cpus, gpus);
                let names: Vec<String> = (0..gpus).map(|g| g.to_string()).collect();
                for ranks in 1..=8usize {
                    let all = Granted::of(&t);
                    assert_eq!(all.gpus, names);
                    let local = vec![all; ranks];
                    let whole = plan_oversubscribed(&t, ranks as u32).unwrap();
                    for (me, expected) in whole.iter().enumerate() {
                        assert_eq!(&plan_rank(&t, &local, me).unwrap(), expected);
                    }
                }
            }
        }
    }
}

#[test]
fn a_rank_bound_by_its_launcher_keeps_its_cpus() {
    // srun's default / mpirun --bind-to core: one core each.
    let local: Vec<Granted> = (0..4).map(|r| granted(r..r + 1, &[])).collect();
    for me in 0..4 {
        let b = plan_rank(&Topology::from_cpus(vec![me]), &local, me).unwrap();
        assert_eq!((b.cpus.clone(), b.local_rank), (vec![me], me as u32));
        assert!(!b.shares_cpus);
    }
    // Two NUMA nodes of 8, mpirun --bind-to numa with 3 ranks per node:
    // ranks 0-2 share node 0, ranks 3-5 node 1.
    let t = topo(2, 16, 0);
    let local: Vec<Granted> = (0..6)
        .map(|r| {
            if r < 3 {
                granted(0..8, &[])
            } else {
                granted(8..16, &[])
            }
        })
        .collect();
    let mine = |me: usize| {
        let own = t.restricted_to(&local[me].cpus);
        plan_rank(&own, &local, me).unwrap()
    };
    assert_eq!(mine(0).cpus, vec![0, 1, 2]);
    assert_eq!(mine(2).cpus, vec![6, 7]);
    assert_eq!(mine(3).cpus, vec![8, 9, 10]);
    assert_eq!(mine(5).cpus, vec![14, 15]);
    assert_eq!(mine(5).numa_node, Some(1));
    // Two ranks on one CPU share it.
    let local = vec![granted(3..4, &[]), granted(3..4, &[])];
    let b = plan_rank(&Topology::from_cpus(vec![3]), &local, 1).unwrap();
    assert_eq!(b.cpus, vec![3]);
    assert!(b.shares_cpus);
    assert!(plan_rank(&Topology::from_cpus(vec![3]), &local, 2).is_err());
}

#[test]
fn gpus_given_per_rank_stay_with_their_rank() {
    // srun --gpus-per-task=1: every rank sees one GPU of its own, as
    // device 0, and all share the node's CPUs.
    let local: Vec<Granted> = (0..4)
        .map(|r| granted(0..8, &[["GPU-a", "GPU-b", "GPU-c", "GPU-d"][r]]))
        .collect();
    for me in 0..4 {
        let mut t = Topology::from_cpus((0..8).collect());
        t.gpus = vec![GpuInfo {
            uuid: Some(local[me].gpus[0].clone()),
            ..GpuInfo::new(0, "GPU")
        }];
        let b = plan_rank(&t, &local, me).unwrap();
        assert_eq!(b.gpus, vec![0], "rank {me}");
        assert_eq!(b.cpus, vec![2 * me, 2 * me + 1]);
    }
    // Bound to CPUs by the launcher, all GPUs visible to all: the GPUs
    // are split evenly among all ranks.
    let mut t = topo(1, 4, 4);
    let names = ["0", "1", "2", "3"];
    let local: Vec<Granted> = (0..2).map(|r| granted(2 * r..2 * r + 2, &names)).collect();
    t.numa_nodes = vec![NumaNode::new(0, vec![0, 1])];
    let b0 = plan_rank(&t, &local, 0).unwrap();
    t.numa_nodes = vec![NumaNode::new(0, vec![2, 3])];
    let b1 = plan_rank(&t, &local, 1).unwrap();
    assert_eq!((b0.cpus.clone(), b1.cpus.clone()), (vec![0, 1], vec![2, 3]));
    let mut all = [b0.gpus.clone(), b1.gpus.clone()].concat();
    all.sort_unstable();
    assert_eq!((b0.gpus.len(), all), (2, vec![0, 1, 2, 3]));
}
