//! An opened CUDA device: its primary context and default stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

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
    ///
    /// The device is opened once per process and kept: later calls (from
    /// any thread) share it, so the primary context is not torn down and
    /// rebuilt each time the last user lets go.
    pub fn open(ordinal: usize) -> Result<Device> {
        static OPENED: OnceLock<Mutex<HashMap<usize, Device>>> = OnceLock::new();
        let opened = OPENED.get_or_init(Default::default);
        if let Some(dev) = opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ordinal)
        {
            return Ok(dev.clone());
        }
        let count = probe::device_count()?;
        if ordinal >= count {
            return Err(GpuError::NoDevice { ordinal, count });
        }
        let info = probe::device_info(ordinal)?;
        let ctx = ffi::call("cuDevicePrimaryCtxRetain", || CudaContext::new(ordinal))?;
        let stream = ctx.default_stream();
        let dev = Device { info, ctx, stream };
        Ok(opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(ordinal)
            .or_insert(dev)
            .clone())
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
    ///
    /// Sets the context directly rather than through cudarc's
    /// `bind_to_thread`, which first reports (and clears) an error cudarc
    /// deferred from dropping one of its own objects: that error belongs to
    /// someone else, and on that path the context would not be made current,
    /// so a later free would run under the wrong context.
    pub(crate) fn bind(&self) -> Result<()> {
        let ctx = self.ctx.cu_ctx();
        ffi::call("cuCtxSetCurrent", || {
            // SAFETY: `ctx` is the primary context this `Device` retains
            // (kept alive by `self.ctx`); making it current only changes the
            // calling thread's CUDA state.
            unsafe { cudarc::driver::result::ctx::set_current(ctx) }
        })
    }

    /// Whether `self` and `other` share one CUDA context.
    pub(crate) fn same_context(&self, other: &Device) -> bool {
        self.ctx.cu_ctx() == other.ctx.cu_ctx()
    }
}
