//! Reading this node's topology ([`Topology::detect`]): from hwloc with the
//! `hwloc` feature, else from the CPU affinity mask and the NVIDIA driver's
//! `/proc` listing; either way with the GPUs `CUDA_VISIBLE_DEVICES` leaves.

use std::io;
use std::path::Path;

use super::types::{GpuInfo, Topology};
use crate::affinity;
use crate::cuda_visible;

/// Where the NVIDIA driver lists its GPUs, one directory per PCI address.
const NVIDIA_PROC: &str = "/proc/driver/nvidia/gpus";

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
        let allowed = affinity::allowed_cpus()?;
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        #[cfg(feature = "hwloc")]
        if let Some(mut topo) = crate::hwloc::detect(&allowed) {
            let proc_gpus = nvidia_gpus(Path::new(NVIDIA_PROC));
            crate::hwloc::merge_proc_gpus(&mut topo.gpus, &proc_gpus);
            topo.gpus = cuda_visible::apply(&topo.gpus, visible.as_deref()).gpus;
            return Ok(topo);
        }
        let mut topo = Topology::from_cpus(allowed);
        let physical = nvidia_gpus(Path::new(NVIDIA_PROC));
        topo.gpus = cuda_visible::apply(&physical, visible.as_deref()).gpus;
        Ok(topo)
    }
}

/// Lists NVIDIA GPUs from the driver's `/proc` directory, one subdirectory
/// per GPU named by its PCI address, with `Model:` and `GPU UUID:` lines in
/// `information`, in PCI bus order. The NUMA node is left unknown: without
/// hwloc one NUMA node is assumed.
fn nvidia_gpus(dir: &Path) -> Vec<GpuInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, String, Option<String>)> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            let bus = entry.file_name().to_string_lossy().to_lowercase();
            let info =
                std::fs::read_to_string(entry.path().join("information")).unwrap_or_default();
            let field = |key: &str| {
                info.lines()
                    .find_map(|line| line.strip_prefix(key))
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            let name = field("Model:").unwrap_or_else(|| "NVIDIA GPU".to_string());
            (bus, name, field("GPU UUID:"))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .zip(0..)
        .map(|((bus, name, uuid), ordinal)| GpuInfo {
            uuid,
            pci_bus_id: Some(bus),
            ..GpuInfo::new(ordinal, name)
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
                format!("Model: \t\t {model}\nIRQ: 1\nGPU UUID: \t GPU-{bus}\n"),
            )
            .unwrap();
        }
        let gpus = nvidia_gpus(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!((gpus[0].ordinal, gpus[0].name.as_str()), (0, "NVIDIA A"));
        assert_eq!((gpus[1].ordinal, gpus[1].name.as_str()), (1, "NVIDIA B"));
        assert_eq!(gpus[0].uuid.as_deref(), Some("GPU-0000:41:00.0"));
        assert_eq!(gpus[1].pci_bus_id.as_deref(), Some("0000:c1:00.0"));
        assert!(nvidia_gpus(Path::new("/nonexistent/ferry")).is_empty());
    }
}
