//! Which GPUs `CUDA_VISIBLE_DEVICES` leaves visible, read the way CUDA
//! reads it.
//!
//! The forms users, Slurm and container runtimes write:
//!
//! * unset: every GPU, in PCI bus order;
//! * `""` (empty) or Slurm's `NoDevFiles`: none;
//! * indices, `0,2`: those physical GPUs, renumbered from 0 in that order;
//! * UUIDs, `GPU-8e3f…`: as `nvidia-smi -L` prints them; a unique prefix is
//!   enough, as for CUDA;
//! * MIG instances, `MIG-GPU-<uuid>/<gi>/<ci>` (drivers before R470) or
//!   `MIG-<uuid>`: each is one device; the first form names its GPU, so its
//!   NUMA node is known;
//!
//! and mixtures of these. As CUDA does, the list ends at the first entry
//! that names no device (`-1`, a typo, an index past the last GPU, a
//! repeat): that entry and everything after it are ignored, which
//! [`Visible::ignored`] reports.

use crate::topology::GpuInfo;

/// The GPUs visible after applying `CUDA_VISIBLE_DEVICES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visible {
    /// The visible devices; `ordinal` is the position (CUDA's device number
    /// in this process), `visible_id` the entry that named the device.
    pub gpus: Vec<GpuInfo>,
    /// Why part of the list was ignored, when it was.
    pub ignored: Option<String>,
}

/// Applies a `CUDA_VISIBLE_DEVICES` value (`None`: unset) to the node's
/// physical GPUs (in PCI bus order, `ordinal` = physical index).
///
/// ```
/// use ferry_launcher::{cuda_visible::apply, GpuInfo};
///
/// let physical: Vec<GpuInfo> = (0..4).map(|i| GpuInfo::new(i, "GPU")).collect();
/// let v = apply(&physical, Some("3,1"));
/// let seen: Vec<(u32, &str)> = v.gpus.iter().map(|g| (g.ordinal, g.visible_id.as_str())).collect();
/// assert_eq!(seen, vec![(0, "3"), (1, "1")]);
///
/// assert!(apply(&physical, Some("NoDevFiles")).gpus.is_empty());
/// assert_eq!(apply(&physical, None).gpus.len(), 4);
/// let cut = apply(&physical, Some("0,-1,2"));
/// assert_eq!(cut.gpus.len(), 1);
/// assert!(cut.ignored.unwrap().contains("-1"));
/// ```
pub fn apply(physical: &[GpuInfo], value: Option<&str>) -> Visible {
    let Some(value) = value else {
        return Visible {
            gpus: physical
                .iter()
                .enumerate()
                .map(|(i, g)| GpuInfo {
                    ordinal: i as u32,
                    visible_id: i.to_string(),
                    ..g.clone()
                })
                .collect(),
            ignored: None,
        };
    };
    let value = value.trim();
    let mut visible = Visible {
        gpus: Vec::new(),
        ignored: None,
    };
    if value.is_empty() || value == "NoDevFiles" || physical.is_empty() {
        return visible;
    }
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    for (at, entry) in entries.iter().enumerate() {
        let found = resolve(physical, entry);
        let repeat = found.as_ref().is_some_and(|gpu| {
            visible.gpus.iter().any(|seen| {
                seen.uuid.is_some() && seen.uuid == gpu.uuid
                    || seen.visible_id == gpu.visible_id
                    || same_physical(seen, gpu)
            })
        });
        match found {
            Some(mut gpu) if !repeat => {
                gpu.ordinal = visible.gpus.len() as u32;
                visible.gpus.push(gpu);
            }
            _ => {
                let why = if repeat {
                    "names a device already listed"
                } else {
                    "names no device of this node"
                };
                visible.ignored = Some(format!(
                    "CUDA_VISIBLE_DEVICES entry {entry:?} {why}: it and the {} entr{} after it are \
                     ignored, as CUDA does",
                    entries.len() - at - 1,
                    if entries.len() - at - 1 == 1 {
                        "y"
                    } else {
                        "ies"
                    }
                ));
                break;
            }
        }
    }
    visible
}

/// Two entries naming the same physical, non-MIG GPU.
fn same_physical(a: &GpuInfo, b: &GpuInfo) -> bool {
    let whole = |g: &GpuInfo| !g.uuid.as_deref().is_some_and(|u| u.starts_with("MIG-"));
    whole(a) && whole(b) && a.pci_bus_id.is_some() && a.pci_bus_id == b.pci_bus_id
}

/// The device one entry names, with `visible_id` set to the entry.
fn resolve(physical: &[GpuInfo], entry: &str) -> Option<GpuInfo> {
    let named = |gpu: &GpuInfo| GpuInfo {
        visible_id: entry.to_string(),
        ..gpu.clone()
    };
    if !entry.is_empty() && entry.bytes().all(|b| b.is_ascii_digit()) {
        let index: usize = entry.parse().ok()?;
        return physical.get(index).map(named);
    }
    if let Some(rest) = entry.strip_prefix("MIG-") {
        // Old form: MIG-GPU-<uuid>/<gi>/<ci>, naming its GPU.
        if let Some((parent, instance)) = rest.split_once('/') {
            let gpu = by_uuid(physical, parent)?;
            let mut parts = instance.split('/');
            let ok = parts.clone().count() == 2 && parts.all(|p| p.parse::<u32>().is_ok());
            if !ok {
                return None;
            }
            return Some(GpuInfo {
                name: format!("{} MIG {instance}", gpu.name),
                uuid: Some(entry.to_string()),
                ..named(gpu)
            });
        }
        // New form: MIG-<uuid>; which GPU holds it only the driver knows.
        if rest.len() < 8 || !rest.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return None;
        }
        return Some(GpuInfo {
            numa_node: None,
            name: "NVIDIA MIG instance".to_string(),
            uuid: Some(entry.to_string()),
            pci_bus_id: None,
            ..named(&physical[0])
        });
    }
    if entry.starts_with("GPU-") {
        return by_uuid(physical, entry).map(named);
    }
    None
}

/// The one GPU whose UUID starts with `prefix` (case-insensitive), as CUDA
/// accepts unique UUID prefixes.
fn by_uuid<'a>(physical: &'a [GpuInfo], prefix: &str) -> Option<&'a GpuInfo> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.len() <= "GPU-".len() {
        return None;
    }
    let mut matches = physical.iter().filter(|g| {
        g.uuid
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with(&prefix))
    });
    let first = matches.next()?;
    matches.next().is_none().then_some(first)
}
