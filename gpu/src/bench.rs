//! Device-to-device copy timings: Ferry's transfer path against a raw copy.
//!
//! [`d2d_copy`] runs inside one process, where CUDA does not let a process
//! open its own IPC handle; Ferry's path there is "export the handle, encode
//! and decode it as it would travel through the object store, then
//! [`copy_peer`]". [`ipc_import_copy`] times the consumer side in another
//! process: open the handle, copy out, close.

use std::time::Instant;

use crate::buffer::DeviceBytes;
use crate::copy::copy_peer;
use crate::device::Device;
use crate::error::{GpuError, Result};
use crate::ipc::IpcHandle;

/// Median timings of one copy size.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CopyTimes {
    /// Bytes copied per iteration.
    pub bytes: usize,
    /// Timed iterations of each path (after one warm-up).
    pub iters: usize,
    /// Median seconds of Ferry's path (handle export + encode/decode + copy).
    pub ferry_median_s: f64,
    /// Median seconds of the raw `cuMemcpyDtoD` / `cuMemcpyPeer` + synchronize.
    pub raw_median_s: f64,
}

impl CopyTimes {
    /// Ferry's bandwidth in GB/s (10⁹ bytes per second).
    pub fn ferry_gbps(&self) -> f64 {
        self.bytes as f64 / self.ferry_median_s / 1e9
    }

    /// The raw copy's bandwidth in GB/s (10⁹ bytes per second).
    pub fn raw_gbps(&self) -> f64 {
        self.bytes as f64 / self.raw_median_s / 1e9
    }
}

/// Times copying `bytes` from a buffer on `src_dev` to one on `dst_dev`,
/// `iters` times each way, interleaving Ferry's path and the raw copy.
///
/// Every timed copy has finished (synchronized) before its clock stops.
///
/// ```no_run
/// # fn main() -> Result<(), ferry_gpu::GpuError> {
/// let dev = ferry_gpu::Device::open(0)?;
/// let t = ferry_gpu::bench::d2d_copy(&dev, &dev, 64 << 20, 20)?;
/// println!("ferry {:.1} GB/s, raw {:.1} GB/s", t.ferry_gbps(), t.raw_gbps());
/// # Ok(()) }
/// ```
pub fn d2d_copy(
    src_dev: &Device,
    dst_dev: &Device,
    bytes: usize,
    iters: usize,
) -> Result<CopyTimes> {
    if bytes == 0 || iters == 0 {
        return Err(GpuError::InvalidArgument(format!(
            "need bytes > 0 and iters > 0 (got {bytes}, {iters})"
        )));
    }
    let src = DeviceBytes::alloc(src_dev, bytes)?;
    src.fill(0xa5)?;
    let dst = DeviceBytes::zeroed(dst_dev, bytes)?;

    ferry_copy(&dst, &src)?;
    raw_copy(&dst, &src)?;
    let mut ferry = Vec::with_capacity(iters);
    let mut raw = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        ferry_copy(&dst, &src)?;
        ferry.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        raw_copy(&dst, &src)?;
        raw.push(t.elapsed().as_secs_f64());
    }
    Ok(CopyTimes {
        bytes,
        iters,
        ferry_median_s: median(&mut ferry),
        raw_median_s: median(&mut raw),
    })
}

/// Times the consumer side of a cross-process transfer: open `handle`
/// (exported by another process), copy it into `dst`, close the mapping.
/// Returns the median seconds over `iters` runs (after one warm-up).
pub fn ipc_import_copy(dst: &DeviceBytes, handle: &IpcHandle, iters: usize) -> Result<f64> {
    if iters == 0 {
        return Err(GpuError::InvalidArgument("need iters > 0".into()));
    }
    let once = || -> Result<()> {
        let mapping = dst.device().open_ipc(handle)?;
        mapping.copy_into(dst)
    };
    once()?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        once()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(&mut times))
}

/// Ferry's same-process path: export, ship the handle as bytes, copy.
fn ferry_copy(dst: &DeviceBytes, src: &DeviceBytes) -> Result<()> {
    let wire = src.export_ipc()?.to_bytes();
    let handle = IpcHandle::from_bytes(&wire)?;
    if handle.len as usize != src.len() {
        return Err(GpuError::Ipc("handle length changed in transit".into()));
    }
    copy_peer(dst, src)
}

/// The baseline: the driver copy and its synchronize, nothing else.
fn raw_copy(dst: &DeviceBytes, src: &DeviceBytes) -> Result<()> {
    copy_peer(dst, src)
}

/// Median of a non-empty sample (mean of the middle two for even sizes).
fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
