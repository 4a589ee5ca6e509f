//! How the ranks of one node share its CPUs and GPUs.
//!
//! [`plan`] is pure: it reads only the [`Topology`] it is given, so any
//! machine can be planned (and tested) anywhere.

use crate::error::LaunchError;
use crate::topology::{NumaNode, Topology};

/// The most ranks one node is planned for: more is a bad argument (a typo
/// or a wrapped number), refused with [`LaunchError::Plan`] instead of
/// allocating a binding for each.
pub const MAX_RANKS_PER_NODE: u32 = 1 << 16;

/// The CPUs and GPUs one rank of a node should use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankBinding {
    /// The rank's number on its node (`World::local_rank`).
    pub local_rank: u32,
    /// The CPUs to bind the rank's threads to, ascending.
    pub cpus: Vec<usize>,
    /// The same CPUs grouped by core (a core's hardware threads), ordered
    /// by their first CPU: one worker thread per core.
    pub cores: Vec<Vec<usize>>,
    /// Whether another rank of the node was given some of the same CPUs
    /// (more ranks than CPUs): then threads are better left unbound.
    pub shares_cpus: bool,
    /// The NUMA node holding all of `cpus`; `None` when they span several.
    pub numa_node: Option<u32>,
    /// The ordinals of the GPUs this rank should use, ascending.
    pub gpus: Vec<u32>,
}

/// Splits the node's CPUs and GPUs among `local_size` ranks.
///
/// * CPUs: each rank gets a contiguous block of whole cores (of single
///   CPUs when there are more ranks than cores), the blocks never
///   overlap, no rank is left empty and every CPU is used (block sizes differ
///   by at most one within a NUMA node). When there are at least as many
///   ranks as NUMA nodes, each rank stays inside one NUMA node, and the
///   ranks are spread over the nodes in proportion to their CPUs (local
///   ranks `0..k` on the first node, and so on). With fewer ranks than NUMA
///   nodes, each rank gets whole, neighbouring NUMA nodes.
/// * GPUs: with at least as many GPUs as ranks, each GPU goes to exactly one
///   rank and every rank gets `G / R` or `G / R + 1` of them; with fewer,
///   every rank gets one GPU and the ranks share them evenly. Either way a
///   GPU goes to a rank on its NUMA node where that keeps the split even,
///   and otherwise round-robin.
///
/// `local_size == 0` gives an empty plan.
///
/// # Errors
///
/// [`LaunchError::Oversubscribed`] when there are more ranks than CPUs
/// (see [`plan_oversubscribed`] to share CPUs instead).
///
/// ```
/// use ferry_launcher::{plan, NumaNode, Topology};
///
/// let mut topo = Topology::from_cpus((0..8).collect());
/// topo.numa_nodes = vec![NumaNode::new(0, (0..4).collect()), NumaNode::new(1, (4..8).collect())];
/// let bindings = plan(&topo, 4)?;
/// assert_eq!(bindings[2].cpus, vec![4, 5]);
/// assert_eq!(bindings[2].numa_node, Some(1));
///
/// assert!(plan(&topo, 9).is_err());
/// # Ok::<(), ferry_launcher::LaunchError>(())
/// ```
pub fn plan(topo: &Topology, local_size: u32) -> Result<Vec<RankBinding>, LaunchError> {
    let cpus = topo.cpu_count();
    if local_size as usize > cpus {
        return Err(LaunchError::Oversubscribed {
            ranks: local_size,
            cpus,
        });
    }
    let (mut bindings, locality) = split_cpus(topo, local_size as usize);
    assign_gpus(topo, &mut bindings, &locality);
    Ok(bindings)
}

/// Like [`plan`], but with more ranks than CPUs the ranks share CPUs
/// round-robin (rank `i` gets the `i % cpus`-th CPU) instead of failing:
/// for laptops and tests. With enough CPUs it is [`plan`].
///
/// # Errors
///
/// [`LaunchError::Oversubscribed`] only when there is no CPU at all and at
/// least one rank; [`LaunchError::Plan`] for more than
/// [`MAX_RANKS_PER_NODE`] ranks.
///
/// ```
/// use ferry_launcher::{plan_oversubscribed, Topology};
/// use ferry_launcher::plan::MAX_RANKS_PER_NODE;
///
/// let topo = Topology::from_cpus(vec![0, 1]);
/// let bindings = plan_oversubscribed(&topo, 3)?;
/// let cpus: Vec<_> = bindings.iter().map(|b| b.cpus.clone()).collect();
/// assert_eq!(cpus, vec![vec![0], vec![1], vec![0]]);
///
/// assert!(plan_oversubscribed(&topo, MAX_RANKS_PER_NODE + 1).is_err());
/// # Ok::<(), ferry_launcher::LaunchError>(())
/// ```
pub fn plan_oversubscribed(
    topo: &Topology,
    local_size: u32,
) -> Result<Vec<RankBinding>, LaunchError> {
    if local_size > MAX_RANKS_PER_NODE {
        return Err(LaunchError::Plan(format!(
            "{local_size} ranks on one node: at most {MAX_RANKS_PER_NODE} are supported"
        )));
    }
    let cpus = topo.cpu_count();
    if local_size as usize <= cpus {
        return plan(topo, local_size);
    }
    if cpus == 0 {
        return Err(LaunchError::Oversubscribed {
            ranks: local_size,
            cpus,
        });
    }
    let all: Vec<(usize, u32)> = topo
        .numa_nodes
        .iter()
        .flat_map(|n| n.cpus.iter().map(move |&c| (c, n.os_index)))
        .collect();
    let mut bindings = Vec::new();
    let mut locality = Vec::new();
    for rank in 0..local_size {
        let (cpu, node) = all[rank as usize % all.len()];
        bindings.push(RankBinding {
            local_rank: rank,
            cpus: vec![cpu],
            cores: vec![vec![cpu]],
            numa_node: Some(node),
            gpus: Vec::new(),
            shares_cpus: true,
        });
        locality.push(vec![node]);
    }
    assign_gpus(topo, &mut bindings, &locality);
    Ok(bindings)
}

/// Splits the CPUs among `ranks <= cpu_count` ranks; also returns each
/// rank's NUMA nodes.
fn split_cpus(topo: &Topology, ranks: usize) -> (Vec<RankBinding>, Vec<Vec<u32>>) {
    let nodes: Vec<_> = topo
        .numa_nodes
        .iter()
        .filter(|n| !n.cpus.is_empty())
        .collect();
    let mut bindings = Vec::with_capacity(ranks);
    let mut locality = Vec::with_capacity(ranks);
    // Whole cores while there are enough of them, else single CPUs.
    let by_core = ranks <= topo.core_count();
    let units = |node: &NumaNode| -> Vec<Vec<usize>> {
        if by_core {
            node.cores.clone()
        } else {
            node.cpus.iter().map(|&c| vec![c]).collect()
        }
    };
    let mut push = |cores: Vec<Vec<usize>>, node_ids: Vec<u32>| {
        let mut cpus: Vec<usize> = cores.iter().flatten().copied().collect();
        cpus.sort_unstable();
        bindings.push(RankBinding {
            local_rank: bindings.len() as u32,
            cpus,
            cores,
            shares_cpus: false,
            numa_node: match node_ids.as_slice() {
                [one] => Some(*one),
                _ => None,
            },
            gpus: Vec::new(),
        });
        locality.push(node_ids);
    };
    if ranks == 0 {
        // Nothing to split.
    } else if ranks >= nodes.len() {
        // Every node gets a rank, the rest go where a rank gets the most
        // CPUs (D'Hondt), never more ranks than CPUs on a node.
        let unit_counts: Vec<usize> = nodes.iter().map(|n| units(n).len()).collect();
        let mut per_node = vec![1usize; nodes.len()];
        for _ in nodes.len()..ranks {
            let mut best: Option<usize> = None;
            for i in 0..nodes.len() {
                if per_node[i] >= unit_counts[i] {
                    continue;
                }
                let better = match best {
                    None => true,
                    // units_i / (r_i + 1) > units_b / (r_b + 1)
                    Some(b) => {
                        unit_counts[i] * (per_node[b] + 1) > unit_counts[b] * (per_node[i] + 1)
                    }
                };
                if better {
                    best = Some(i);
                }
            }
            // ranks <= units, so some node still has room.
            if let Some(b) = best {
                per_node[b] += 1;
            }
        }
        for (node, &count) in nodes.iter().zip(&per_node) {
            for block in even_blocks(&units(node), count) {
                push(block.to_vec(), vec![node.os_index]);
            }
        }
    } else {
        // Fewer ranks than NUMA nodes: whole neighbouring nodes per rank.
        for group in even_blocks(&nodes, ranks) {
            let cores = group.iter().flat_map(|n| units(n)).collect();
            push(cores, group.iter().map(|n| n.os_index).collect());
        }
    }
    (bindings, locality)
}

/// Cuts `items` into `parts` contiguous blocks whose lengths differ by at
/// most one (the longer ones first).
fn even_blocks<T>(items: &[T], parts: usize) -> Vec<&[T]> {
    let (base, extra) = (items.len() / parts, items.len() % parts);
    let mut rest = items;
    (0..parts)
        .map(|i| {
            let (block, tail) = rest.split_at(base + usize::from(i < extra));
            rest = tail;
            block
        })
        .collect()
}

fn assign_gpus(topo: &Topology, bindings: &mut [RankBinding], locality: &[Vec<u32>]) {
    let gpus = &topo.gpus;
    if gpus.is_empty() || bindings.is_empty() {
        return;
    }
    let near = |gpu: usize, rank: usize| {
        gpus[gpu]
            .numa_node
            .is_some_and(|node| locality[rank].contains(&node))
    };
    if gpus.len() >= bindings.len() {
        // Each GPU to one rank.
        let owner = balanced_assign(gpus.len(), bindings.len(), near);
        for (gpu, rank) in owner.into_iter().enumerate() {
            bindings[rank].gpus.push(gpus[gpu].ordinal);
        }
    } else {
        // Each rank one GPU, shared.
        let choice = balanced_assign(bindings.len(), gpus.len(), |r, g| near(g, r));
        for (rank, gpu) in choice.into_iter().enumerate() {
            bindings[rank].gpus.push(gpus[gpu].ordinal);
        }
    }
    for b in bindings.iter_mut() {
        b.gpus.sort_unstable();
    }
}

/// Puts each of `items` into one of `bins` (`bins > 0`) so that every bin
/// gets `items / bins` or one more, preferring a bin that `near` says is
/// close, then the emptiest bin, then the lowest. Returns each item's bin.
fn balanced_assign(items: usize, bins: usize, near: impl Fn(usize, usize) -> bool) -> Vec<usize> {
    let (base, mut extras) = (items / bins, items % bins);
    let mut count = vec![0usize; bins];
    let mut chosen: Vec<Option<usize>> = vec![None; items];
    for local_only in [true, false] {
        for (item, slot) in chosen.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            let pick = (0..bins)
                .filter(|&bin| count[bin] < base || (count[bin] == base && extras > 0))
                .filter(|&bin| !local_only || near(item, bin))
                .min_by_key(|&bin| (count[bin], bin));
            if let Some(bin) = pick {
                if count[bin] == base {
                    extras -= 1;
                }
                count[bin] += 1;
                *slot = Some(bin);
            }
        }
    }
    // The capacities add up to `items`, so the second pass placed them all.
    chosen.into_iter().map(|c| c.unwrap_or(0)).collect()
}

/// What the launcher gave one rank of a node: the CPUs it may run on (its
/// affinity mask) and the GPUs it can see (by UUID, or by
/// `CUDA_VISIBLE_DEVICES` entry when the UUID is unknown), ascending.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Granted {
    /// The rank's allowed CPUs, ascending.
    pub cpus: Vec<usize>,
    /// Names of the rank's visible GPUs.
    pub gpus: Vec<String>,
}

impl Granted {
    /// What this process was given, read from its topology.
    ///
    /// ```
    /// let topo = ferry_launcher::Topology::from_cpus(vec![2, 3]);
    /// let granted = ferry_launcher::Granted::of(&topo);
    /// assert_eq!(granted.cpus, vec![2, 3]);
    /// assert!(granted.gpus.is_empty());
    /// ```
    pub fn of(topo: &Topology) -> Granted {
        let mut cpus: Vec<usize> = topo
            .numa_nodes
            .iter()
            .flat_map(|n| n.cpus.iter().copied())
            .collect();
        cpus.sort_unstable();
        let mut gpus: Vec<String> = topo
            .gpus
            .iter()
            .map(|g| g.uuid.clone().unwrap_or_else(|| g.visible_id.clone()))
            .collect();
        gpus.sort();
        Granted { cpus, gpus }
    }
}

/// The binding of local rank `me` of a node, given what the launcher gave
/// every local rank (`local[i]` for local rank `i`) and `topo`, this rank's
/// own view of the node (its allowed CPUs, its visible GPUs).
///
/// What the launcher already divided stays divided; what ranks share is
/// split among the ranks sharing it:
///
/// * ranks with the same CPU mask (no binding by the launcher, a job
///   cgroup, `mpirun --bind-to socket`) split that mask as [`plan`] does,
///   in local-rank order, sharing CPUs round-robin when there are more of
///   them than CPUs ([`RankBinding::shares_cpus`]); a rank whose mask is
///   its own (`srun`'s default, `mpirun --bind-to core`) keeps all of it;
/// * likewise ranks that see the same GPUs split them (near their CPUs
///   when the same ranks share the CPUs too), and a rank that sees GPUs of
///   its own (`srun --gpus-per-task`) keeps them.
///
/// # Errors
///
/// [`LaunchError::Oversubscribed`] when this rank has no CPU at all, and
/// [`LaunchError::Plan`] when `me` is not a rank of `local`.
///
/// ```
/// use ferry_launcher::{plan_rank, Granted, Topology};
///
/// // Two ranks bound by mpirun to one socket of 4 CPUs each, two more ranks
/// // on each socket: each rank gets half of its socket.
/// let socket = |s: usize| Granted { cpus: (4 * s..4 * s + 4).collect(), gpus: vec![] };
/// let local = [socket(0), socket(0), socket(1), socket(1)];
/// let me = plan_rank(&Topology::from_cpus(local[3].cpus.clone()), &local, 3)?;
/// assert_eq!(me.cpus, vec![6, 7]);
/// assert_eq!(me.local_rank, 3);
/// # Ok::<(), ferry_launcher::LaunchError>(())
/// ```
pub fn plan_rank(
    topo: &Topology,
    local: &[Granted],
    me: usize,
) -> Result<RankBinding, LaunchError> {
    let Some(mine) = local.get(me) else {
        return Err(LaunchError::Plan(format!(
            "local rank {me} is not one of the node's {} ranks",
            local.len()
        )));
    };
    let cpu_group: Vec<usize> = (0..local.len())
        .filter(|&j| local[j].cpus == mine.cpus)
        .collect();
    let gpu_group: Vec<usize> = (0..local.len())
        .filter(|&j| local[j].gpus == mine.gpus)
        .collect();
    let position = |group: &[usize]| group.iter().position(|&j| j == me).unwrap_or(0);
    let own = topo.restricted_to(&mine.cpus);
    let mut bindings = plan_oversubscribed(&own, cpu_group.len() as u32)?;
    let mut binding = bindings.swap_remove(position(&cpu_group));
    if gpu_group != cpu_group {
        // The GPUs are shared by other ranks than the CPUs: split them
        // evenly in local-rank order, without locality.
        binding.gpus.clear();
        let mut shares: Vec<RankBinding> = gpu_group
            .iter()
            .map(|_| RankBinding {
                gpus: Vec::new(),
                ..binding.clone()
            })
            .collect();
        let locality = vec![Vec::new(); shares.len()];
        assign_gpus(topo, &mut shares, &locality);
        binding.gpus = shares.swap_remove(position(&gpu_group)).gpus;
    }
    binding.local_rank = me as u32;
    Ok(binding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_blocks_split() {
        let v: Vec<u32> = (0..7).collect();
        let blocks = even_blocks(&v, 3);
        assert_eq!(blocks, vec![&[0, 1, 2][..], &[3, 4], &[5, 6]]);
    }

    #[test]
    fn balanced_assign_prefers_near_when_even() {
        // Items 0,1 are near bin 1; items 2,3 near bin 0.
        let bins = balanced_assign(4, 2, |item, bin| (item < 2) == (bin == 1));
        assert_eq!(bins, vec![1, 1, 0, 0]);
        // Everything near bin 0, but the split stays even.
        let bins = balanced_assign(3, 2, |_, bin| bin == 0);
        assert_eq!(bins, vec![0, 0, 1]);
        let bins = balanced_assign(5, 3, |_, bin| bin == 2);
        let mut counts = [0; 3];
        for b in bins {
            counts[b] += 1;
        }
        assert_eq!(counts, [2, 1, 2]);
    }
}
