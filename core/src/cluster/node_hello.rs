//! What ranks tell each other at start: which node each runs on and what
//! its launcher gave it (CPUs, visible GPUs), to plan their binding, and
//! where its object store is, so that the ranks of a node map each
//! other's stores before their names are removed.

use std::path::{Path, PathBuf};

use ferry_launcher::{Granted, Topology};

/// One rank's start-up facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) host: String,
    pub(crate) granted: Granted,
    /// The rank's object store file.
    pub(crate) store: PathBuf,
}

impl Hello {
    /// This process's facts.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn of(topo: &Topology, store: &Path) -> Hello {
        Hello {
            host: crate::host::name(),
            granted: Granted::of(topo),
            store: store.to_path_buf(),
        }
    }

    /// Four lines: host, CPUs (comma-separated), GPU names (tab-separated,
    /// as UUIDs and `CUDA_VISIBLE_DEVICES` entries hold no tab), and the
    /// store's path (the rest of the message).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let cpus: Vec<String> = self.granted.cpus.iter().map(usize::to_string).collect();
        format!(
            "{}\n{}\n{}\n{}",
            self.host,
            cpus.join(","),
            self.granted.gpus.join("\t"),
            self.store.display()
        )
        .into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Hello, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        let mut lines = text.splitn(4, '\n');
        let (Some(host), Some(cpus), Some(gpus), Some(store)) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(format!("malformed start-up message {text:?}"));
        };
        if store.is_empty() {
            return Err(format!("start-up message {text:?} names no object store"));
        }
        let cpus = cpus
            .split(',')
            .filter(|c| !c.is_empty())
            .map(|c| c.parse().map_err(|_| format!("bad CPU number {c:?}")))
            .collect::<Result<Vec<usize>, String>>()?;
        let gpus = gpus
            .split('\t')
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Hello {
            host: host.to_string(),
            granted: Granted { cpus, gpus },
            store: PathBuf::from(store),
        })
    }
}

/// Every rank's hello, decoded, and the index of `rank`'s own.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
fn decode_all(hellos: &[Vec<u8>], rank: u32) -> Result<(Vec<Hello>, usize), String> {
    let all = hellos
        .iter()
        .map(|h| Hello::decode(h))
        .collect::<Result<Vec<_>, _>>()?;
    if rank as usize >= all.len() {
        return Err(format!("no start-up message from rank {rank}"));
    }
    Ok((all, rank as usize))
}

/// The node's ranks (those on this rank's host, in rank order) and this
/// rank's place among them.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn local_ranks(hellos: &[Vec<u8>], rank: u32) -> Result<(Vec<Granted>, usize), String> {
    let (all, mine) = decode_all(hellos, rank)?;
    let mine = &all[mine];
    let on_node: Vec<usize> = (0..all.len())
        .filter(|&r| all[r].host == mine.host)
        .collect();
    let me = on_node
        .iter()
        .position(|&r| r == rank as usize)
        .unwrap_or(0);
    Ok((
        on_node.iter().map(|&r| all[r].granted.clone()).collect(),
        me,
    ))
}

/// The object stores of the other ranks on this rank's host, by rank.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn neighbour_stores(
    hellos: &[Vec<u8>],
    rank: u32,
) -> Result<Vec<(u32, PathBuf)>, String> {
    let (all, mine) = decode_all(hellos, rank)?;
    let mine = &all[mine];
    Ok(all
        .iter()
        .enumerate()
        .filter(|(r, h)| *r != rank as usize && h.host == mine.host)
        .map(|(r, h)| (r as u32, h.store.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(host: &str, cpus: &[usize], gpus: &[&str]) -> Hello {
        Hello {
            host: host.into(),
            granted: Granted {
                cpus: cpus.to_vec(),
                gpus: gpus.iter().map(|g| g.to_string()).collect(),
            },
            store: format!("/dev/shm/ferry-j-{host}-{}", cpus.first().unwrap_or(&0)).into(),
        }
    }

    #[test]
    fn round_trip_and_garbage() {
        for h in [
            hello("n1", &[0, 1, 7], &["GPU-a", "MIG-GPU-b/1/0"]),
            hello("n2", &[], &[]),
        ] {
            assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
        }
        assert!(Hello::decode(b"only-a-host").is_err());
        assert!(Hello::decode(b"h\n1,x\n\n/dev/shm/s").is_err());
        assert!(Hello::decode(b"h\n1\n\n").is_err(), "no store");
        assert!(Hello::decode(&[0xff, b'\n', b'\n', b'\n', b's']).is_err());
        // The store's path is the rest of the message, whatever it holds.
        let odd = Hello {
            store: "/tmp/a\nb c".into(),
            ..hello("n", &[1], &[])
        };
        assert_eq!(Hello::decode(&odd.encode()).unwrap(), odd);
    }

    #[test]
    fn local_ranks_are_those_of_this_host_in_rank_order() {
        let hellos: Vec<Vec<u8>> = [
            hello("a", &[0], &[]),
            hello("b", &[0], &[]),
            hello("a", &[1], &[]),
            hello("b", &[1], &[]),
        ]
        .iter()
        .map(Hello::encode)
        .collect();
        let (local, me) = local_ranks(&hellos, 3).unwrap();
        assert_eq!(me, 1);
        assert_eq!(local.len(), 2);
        assert_eq!(local[1].cpus, vec![1]);
        assert!(local_ranks(&hellos, 9).is_err());
        // Rank 3's neighbour on host b is rank 1, with its store.
        let stores = neighbour_stores(&hellos, 3).unwrap();
        assert_eq!(stores, vec![(1, PathBuf::from("/dev/shm/ferry-j-b-0"))]);
        assert!(neighbour_stores(&hellos, 9).is_err());
    }
}
