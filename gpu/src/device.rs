//! An opened CUDA device: its primary context and default stream.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream};

use crate::error::{GpuError, Result};
use crate::ffi;
use crate::probe::{self, DeviceInfo};

/// An opened CUDA device.
///
/// Holds a reference to the device's *primary* context (shared with every
/// other user of that device in the process, including the CUDA runtime) and
/// its legacy default stream. Cloning is cheap and shares both.
///
/// All work this crate issues goes to the default stream, and copies that
/// must be complete on return end with a synchronize, so results are
/// visible as soon as a call returns.
///
/// ```
/// use ferry_gpu::{Device, GpuError};
/// match Device::open(0) {
///     Ok(dev) => println!("opened {} ({})", dev.info().name, dev.info().uuid),
///     Err(GpuError::NoDriver) => println!("no CUDA driver on this machine"),
///     Err(e) => println!("cannot open device 0: {e}"),
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Device {
    info: DeviceInfo,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
}

impl Device {
    /// Opens the device with CUDA ordinal `ordinal` (probing the driver first).
    ///
    /// Errors: [`GpuError::NoDriver`] without a driver, [`GpuError::NoDevice`]
    /// for an ordinal out of range, [`GpuError::Cuda`] if the context cannot be
    /// created.
    pub fn open(ordinal: usize) -> Result<Device> {
        let count = probe::device_count()?;
        if ordinal >= count {
            return Err(GpuError::NoDevice { ordinal, count });
        }
        let info = probe::device_info(ordinal)?;
        let ctx = ffi::call("cuDevicePrimaryCtxRetain", || CudaContext::new(ordinal))?;
        let stream = ctx.default_stream();
        Ok(Device { info, ctx, stream })
    }

    /// The CUDA ordinal of this device.
    pub fn ordinal(&self) -> usize {
        self.info.ordinal
    }

    /// What the driver reports about this device.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The cudarc context, for using cudarc directly alongside this crate.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The cudarc handle for the context's legacy default stream (the stream
    /// this crate issues its work on).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits until all work issued in this device's context has finished.
    pub fn synchronize(&self) -> Result<()> {
        ffi::call("cuCtxSynchronize", || self.ctx.synchronize())
    }

    /// Makes this device's context current on the calling thread.
    pub(crate) fn bind(&self) -> Result<()> {
        ffi::call("cuCtxSetCurrent", || self.ctx.bind_to_thread())
    }

    /// Whether `self` and `other` share one CUDA context.
    pub(crate) fn same_context(&self, other: &Device) -> bool {
        self.ctx.cu_ctx() == other.ctx.cu_ctx()
    }
}
