//! Is there a CUDA driver, and which devices does it see?
//!
//! Everything here is safe to call on a machine without the NVIDIA driver: the
//! first call checks that `libcuda.so` can be loaded at all (cudarc would panic
//! otherwise), runs `cuInit`, and caches the outcome for the life of the
//! process, so later calls return the same answer cheaply.
//!
//! ```
//! match ferry_gpu::probe::driver() {
//!     Ok(info) => println!("CUDA {}.{}, {} device(s)",
//!                          info.version_major(), info.version_minor(), info.device_count),
//!     Err(e) => println!("no GPU support: {e}"),
//! }
//! ```

use std::panic::catch_unwind;
use std::sync::OnceLock;

use cudarc::driver::{result, sys};

use crate::error::{GpuError, Result};
use crate::ffi;

/// What the CUDA driver reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverInfo {
    /// The driver's CUDA version as `cuDriverGetVersion` encodes it
    /// (`1000 * major + 10 * minor`, e.g. `12080` for 12.8).
    pub version: i32,
    /// How many devices are visible (after `CUDA_VISIBLE_DEVICES`).
    pub device_count: usize,
}

impl DriverInfo {
    /// The major CUDA version the driver supports (`12` for 12.8).
    pub fn version_major(&self) -> i32 {
        self.version / 1000
    }

    /// The minor CUDA version the driver supports (`8` for 12.8).
    pub fn version_minor(&self) -> i32 {
        (self.version % 1000) / 10
    }
}

/// One CUDA device as the driver describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// The CUDA ordinal (index among the visible devices).
    pub ordinal: usize,
    /// The marketing name, e.g. `"NVIDIA H200"`.
    pub name: String,
    /// The UUID in nvidia-smi's form, `"GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"`,
    /// as used in `CUDA_VISIBLE_DEVICES`.
    pub uuid: String,
    /// Total device memory in bytes.
    pub total_memory: usize,
    /// The PCI address in sysfs/hwloc form, `"dddd:bb:dd.0"` (lower-case hex).
    pub pci_bus_id: String,
    /// PCI domain number.
    pub pci_domain: u32,
    /// PCI bus number.
    pub pci_bus: u32,
    /// PCI device number.
    pub pci_device: u32,
    /// Compute capability as `(major, minor)`, e.g. `(9, 0)` for Hopper.
    pub compute_capability: (u32, u32),
}

impl DeviceInfo {
    /// Whether `id` names this device's UUID: compared case-insensitively,
    /// with or without the `GPU-` prefix (as `CUDA_VISIBLE_DEVICES` entries
    /// and nvidia-smi print them). Unique-prefix abbreviations are not
    /// accepted.
    pub fn matches_uuid(&self, id: &str) -> bool {
        fn strip(s: &str) -> &str {
            let t = s.trim();
            if t.len() >= 4 && t[..4].eq_ignore_ascii_case("GPU-") {
                &t[4..]
            } else {
                t
            }
        }
        strip(&self.uuid).eq_ignore_ascii_case(strip(id))
    }
}

/// Formats 16 UUID bytes the way nvidia-smi and `CUDA_VISIBLE_DEVICES` do.
///
/// ```
/// let b = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
///          0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
/// assert_eq!(ferry_gpu::probe::format_uuid(&b),
///            "GPU-12345678-9abc-def0-0123-456789abcdef");
/// ```
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex = |r: std::ops::Range<usize>| -> String {
        bytes[r].iter().map(|b| format!("{b:02x}")).collect()
    };
    format!(
        "GPU-{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// Formats a PCI address the way sysfs and hwloc do (`"0000:3b:00.0"`).
///
/// GPUs are always function 0, so the function digit is fixed.
///
/// ```
/// assert_eq!(ferry_gpu::probe::format_pci_bus_id(0, 0x3b, 0), "0000:3b:00.0");
/// ```
pub fn format_pci_bus_id(domain: u32, bus: u32, device: u32) -> String {
    format!("{domain:04x}:{bus:02x}:{device:02x}.0")
}

/// Whether `libcuda.so` can be loaded, without letting cudarc panic.
fn library_present() -> bool {
    // SAFETY: `is_culib_present` only tries to dlopen the driver library under
    // its usual names and closes it again; it touches no CUDA state.
    catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false)
}

fn init_driver() -> Result<DriverInfo> {
    if !library_present() {
        return Err(GpuError::NoDriver);
    }
    let version = ffi::call("cuDriverGetVersion", || {
        let mut v: std::ffi::c_int = 0;
        // SAFETY: the driver writes one int through a valid pointer.
        unsafe { sys::cuDriverGetVersion(&mut v) }.result()?;
        Ok(v)
    })?;
    match ffi::call_raw("cuInit", result::init)? {
        Ok(()) => {}
        Err(e) if e.0 == sys::CUresult::CUDA_ERROR_NO_DEVICE => {
            return Ok(DriverInfo {
                version,
                device_count: 0,
            });
        }
        Err(e) => return Err(GpuError::cuda("cuInit", e)),
    }
    let count = ffi::call("cuDeviceGetCount", result::device::get_count)?;
    Ok(DriverInfo {
        version,
        device_count: usize::try_from(count).unwrap_or(0),
    })
}

/// Loads the driver, runs `cuInit` and reports its version and device count.
///
/// The outcome (success or error) is computed once per process and cached.
/// Returns [`GpuError::NoDriver`] when `libcuda.so` cannot be loaded. A driver
/// that finds no device (`CUDA_ERROR_NO_DEVICE`) is reported as success with
/// `device_count == 0`.
pub fn driver() -> Result<DriverInfo> {
    static DRIVER: OnceLock<Result<DriverInfo>> = OnceLock::new();
    DRIVER.get_or_init(init_driver).clone()
}

/// The number of visible CUDA devices (see [`driver`]).
///
/// ```
/// // Ok(n) on a machine with the driver, Err(NoDriver) without one.
/// let _ = ferry_gpu::probe::device_count();
/// ```
pub fn device_count() -> Result<usize> {
    driver().map(|d| d.device_count)
}

fn query_device(ordinal: usize) -> Result<DeviceInfo> {
    let index = i32::try_from(ordinal)
        .map_err(|_| GpuError::InvalidArgument(format!("device ordinal {ordinal} too large")))?;
    let dev = ffi::call("cuDeviceGet", || result::device::get(index))?;
    let name = ffi::call("cuDeviceGetName", || result::device::get_name(dev))?;
    let uuid = ffi::call("cuDeviceGetUuid", || result::device::get_uuid(dev))?;
    let total_memory = ffi::call("cuDeviceTotalMem", || {
        // SAFETY: `dev` was just returned by cuDeviceGet.
        unsafe { result::device::total_mem(dev) }
    })?;
    let attr = |attrib: sys::CUdevice_attribute, call: &'static str| -> Result<u32> {
        let v = ffi::call(call, || {
            // SAFETY: `dev` was just returned by cuDeviceGet.
            unsafe { result::device::get_attribute(dev, attrib) }
        })?;
        Ok(u32::try_from(v).unwrap_or(0))
    };
    use sys::CUdevice_attribute as A;
    let pci_domain = attr(
        A::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID,
        "cuDeviceGetAttribute(PCI_DOMAIN_ID)",
    )?;
    let pci_bus = attr(
        A::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID,
        "cuDeviceGetAttribute(PCI_BUS_ID)",
    )?;
    let pci_device = attr(
        A::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID,
        "cuDeviceGetAttribute(PCI_DEVICE_ID)",
    )?;
    let cc_major = attr(
        A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
        "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)",
    )?;
    let cc_minor = attr(
        A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
        "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)",
    )?;
    let uuid_bytes: [u8; 16] = uuid.bytes.map(|b| b as u8);
    Ok(DeviceInfo {
        ordinal,
        name,
        uuid: format_uuid(&uuid_bytes),
        total_memory,
        pci_bus_id: format_pci_bus_id(pci_domain, pci_bus, pci_device),
        pci_domain,
        pci_bus,
        pci_device,
        compute_capability: (cc_major, cc_minor),
    })
}

/// Describes every visible device, in ordinal order (computed once, cached).
///
/// ```
/// if let Ok(devices) = ferry_gpu::probe::devices() {
///     for d in devices {
///         println!("{} {} {} {}", d.ordinal, d.uuid, d.pci_bus_id, d.name);
///     }
/// }
/// ```
pub fn devices() -> Result<Vec<DeviceInfo>> {
    static DEVICES: OnceLock<Result<Vec<DeviceInfo>>> = OnceLock::new();
    DEVICES
        .get_or_init(|| {
            let info = driver()?;
            (0..info.device_count).map(query_device).collect()
        })
        .clone()
}

/// Describes the device with CUDA ordinal `ordinal`.
///
/// Returns [`GpuError::NoDevice`] when the ordinal is out of range.
pub fn device_info(ordinal: usize) -> Result<DeviceInfo> {
    let all = devices()?;
    let count = all.len();
    all.into_iter()
        .nth(ordinal)
        .ok_or(GpuError::NoDevice { ordinal, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_format_matches_nvidia_smi() {
        let b = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255];
        assert_eq!(format_uuid(&b), "GPU-00010203-0405-0607-0809-0a0b0c0d0eff");
    }

    #[test]
    fn uuid_matching_is_lenient_about_prefix_and_case() {
        let d = DeviceInfo {
            ordinal: 0,
            name: "x".into(),
            uuid: format_uuid(&[0xab; 16]),
            total_memory: 0,
            pci_bus_id: format_pci_bus_id(0, 0x3b, 0),
            pci_domain: 0,
            pci_bus: 0x3b,
            pci_device: 0,
            compute_capability: (9, 0),
        };
        assert!(d.matches_uuid("GPU-ABABABAB-ABAB-ABAB-ABAB-ABABABABABAB"));
        assert!(d.matches_uuid("abababab-abab-abab-abab-abababababab"));
        assert!(!d.matches_uuid("GPU-abababab"));
        assert_eq!(d.pci_bus_id, "0000:3b:00.0");
    }

    #[test]
    fn driver_version_split() {
        let d = DriverInfo {
            version: 12080,
            device_count: 1,
        };
        assert_eq!((d.version_major(), d.version_minor()), (12, 8));
    }
}
