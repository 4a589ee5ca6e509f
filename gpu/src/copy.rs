//! Device-to-device copies within one process.

use cudarc::driver::{result, sys};

use crate::buffer::DeviceBytes;
use crate::device::Device;
use crate::error::{GpuError, Result};
use crate::ffi;

/// Copies all of `src` into the start of `dst`, device to device, and waits
/// for the copy to finish.
///
/// This is the same-process counterpart of CUDA IPC (which CUDA refuses within
/// the exporting process): buffers in one context are copied with
/// `cuMemcpyDtoD`, buffers in different contexts (different devices) with
/// `cuMemcpyPeer`, which uses peer-to-peer access where the hardware has it
/// and stages through the host otherwise.
///
/// Errors with [`GpuError::InvalidArgument`] when `dst` is shorter than `src`
/// or both are the same buffer.
///
/// ```no_run
/// # fn main() -> Result<(), ferry_gpu::GpuError> {
/// use ferry_gpu::{copy_peer, Device, DeviceBytes};
/// let dev = Device::open(0)?;
/// let src = DeviceBytes::from_host(&dev, &[1, 2, 3])?;
/// let dst = DeviceBytes::zeroed(&dev, 3)?;
/// copy_peer(&dst, &src)?;
/// assert_eq!(dst.to_host()?, [1, 2, 3]);
/// # Ok(()) }
/// ```
pub fn copy_peer(dst: &DeviceBytes, src: &DeviceBytes) -> Result<()> {
    if dst.len() < src.len() {
        return Err(GpuError::InvalidArgument(format!(
            "destination holds {} bytes, source has {}",
            dst.len(),
            src.len()
        )));
    }
    if !src.is_empty() && dst.as_raw() == src.as_raw() {
        return Err(GpuError::InvalidArgument(
            "source and destination are the same buffer".into(),
        ));
    }
    // SAFETY: both pointers are live allocations owned by the borrowed
    // buffers, `src.len()` bytes fit in each, and they are distinct
    // `cuMemAlloc` allocations so the ranges do not overlap.
    unsafe {
        copy_raw(
            dst.device(),
            dst.as_raw(),
            src.device(),
            src.as_raw(),
            src.len(),
        )
    }
}

/// The raw copy underneath [`copy_peer`] and the IPC mapping copies:
/// `cuMemcpyDtoD` when both sides share a context, `cuMemcpyPeer` otherwise,
/// after waiting for the source context's work and followed by a
/// synchronize of the context(s) involved.
///
/// # Safety
///
/// `src..src+bytes` must be readable device memory valid in `src_dev`'s
/// context and `dst..dst+bytes` writable device memory valid in `dst_dev`'s
/// context, both live until this returns, and the ranges must not overlap.
pub(crate) unsafe fn copy_raw(
    dst_dev: &Device,
    dst: sys::CUdeviceptr,
    src_dev: &Device,
    src: sys::CUdeviceptr,
    bytes: usize,
) -> Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    // Work the producer queued on its own (possibly non-blocking) cudarc
    // streams is not ordered before a copy on the legacy stream: wait for
    // it, so the copy reads what was written.
    src_dev.synchronize()?;
    dst_dev.bind()?;
    if dst_dev.same_context(src_dev) {
        ffi::call("cuMemcpyDtoD", || {
            // SAFETY: forwarded from this function's contract.
            unsafe { result::memcpy_dtod_sync(dst, src, bytes) }
        })?;
        dst_dev.synchronize()
    } else {
        let dst_ctx = dst_dev.context().cu_ctx();
        let src_ctx = src_dev.context().cu_ctx();
        ffi::call("cuMemcpyPeer", || {
            // SAFETY: forwarded from this function's contract; both context
            // handles are kept alive by the borrowed devices.
            unsafe { sys::cuMemcpyPeer(dst, dst_ctx, src, src_ctx, bytes) }.result()
        })?;
        dst_dev.synchronize()?;
        src_dev.synchronize()
    }
}
