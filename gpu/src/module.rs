//! Loading a PTX module through the driver (`cuModuleLoadDataEx`), without
//! NVRTC, and launching its kernels.
//!
//! cudarc's `CudaContext::load_module` only exists with its `nvrtc` feature,
//! so this crate loads PTX text itself and keeps the raw handles.

use std::ffi::{CString, c_uint, c_void};

use cudarc::driver::{result, sys};

use crate::device::Device;
use crate::error::{GpuError, Result};
use crate::ffi;

/// Bytes reserved for the JIT compiler's error log.
const LOG_BYTES: usize = 8192;

/// A PTX module JIT-compiled into one device's context; unloaded on drop.
#[derive(Debug)]
pub(crate) struct PtxModule {
    raw: sys::CUmodule,
    device: Device,
}

// SAFETY: a CUmodule handle is an opaque driver object that may be used from
// any thread once its context is current; every use here binds the context
// first, and the handle is unloaded exactly once (in Drop).
unsafe impl Send for PtxModule {}
// SAFETY: see `Send`; the handle is never mutated after loading.
unsafe impl Sync for PtxModule {}

/// A kernel of a [`PtxModule`]; only valid while the module is loaded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernel {
    raw: sys::CUfunction,
}

// SAFETY: a CUfunction is an opaque, immutable driver handle; the owner keeps
// it next to its `PtxModule` so it never outlives the module.
unsafe impl Send for Kernel {}
// SAFETY: see `Send`.
unsafe impl Sync for Kernel {}

impl PtxModule {
    /// JIT-compiles `ptx` for `device`; on failure the error carries the
    /// JIT's log.
    pub(crate) fn load(device: &Device, ptx: &str) -> Result<PtxModule> {
        let image = CString::new(ptx)
            .map_err(|_| GpuError::InvalidArgument("PTX text contains a NUL byte".into()))?;
        device.bind()?;
        let mut log = vec![0u8; LOG_BYTES];
        let mut options = [
            sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER,
            sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
        ];
        // The driver reads option values as pointer-sized words: the buffer
        // address, then its size as an integer.
        let mut values: [*mut c_void; 2] = [log.as_mut_ptr().cast(), LOG_BYTES as *mut c_void];
        let loaded = ffi::call_raw("cuModuleLoadDataEx", || {
            let mut module: sys::CUmodule = std::ptr::null_mut();
            // SAFETY: `image` is a NUL-terminated PTX string; `options` and
            // `values` are two valid entries each; `log` is LOG_BYTES long and
            // outlives the call; the context is current.
            unsafe {
                sys::cuModuleLoadDataEx(
                    &mut module,
                    image.as_ptr().cast(),
                    options.len() as c_uint,
                    options.as_mut_ptr(),
                    values.as_mut_ptr(),
                )
            }
            .result()?;
            Ok(module)
        })?;
        match loaded {
            Ok(raw) => Ok(PtxModule {
                raw,
                device: device.clone(),
            }),
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]).trim().to_owned();
                let mut err = GpuError::cuda("cuModuleLoadDataEx", e);
                if let GpuError::Cuda { message, .. } = &mut err
                    && !text.is_empty()
                {
                    message.push_str("; JIT log: ");
                    message.push_str(&text);
                }
                Err(err)
            }
        }
    }

    /// Looks up the kernel called `name`.
    pub(crate) fn kernel(&self, name: &str) -> Result<Kernel> {
        let c_name = CString::new(name)
            .map_err(|_| GpuError::InvalidArgument("kernel name contains a NUL byte".into()))?;
        self.device.bind()?;
        let raw = ffi::call("cuModuleGetFunction", || {
            // SAFETY: `self.raw` is a loaded module in the current context.
            unsafe { result::module::get_function(self.raw, c_name) }
        })?;
        Ok(Kernel { raw })
    }

    /// Launches `kernel` (which must belong to this module) on the device's
    /// default stream, with 1-D `grid` × `block` threads.
    ///
    /// # Safety
    ///
    /// `params` must hold one pointer per kernel parameter, each pointing to a
    /// live value of exactly the type the PTX declares, and every device
    /// pointer among them must be a live allocation large enough for all
    /// accesses the kernel makes with the given sizes. The allocations must
    /// stay alive until the launched work has finished.
    pub(crate) unsafe fn launch(
        &self,
        kernel: Kernel,
        grid: u32,
        block: u32,
        params: &mut [*mut c_void],
    ) -> Result<()> {
        self.device.bind()?;
        ffi::call("cuLaunchKernel", || {
            // SAFETY: forwarded from this function's contract; the stream is
            // the legacy default stream (null) of the current context.
            unsafe {
                result::launch_kernel(
                    kernel.raw,
                    (grid, 1, 1),
                    (block, 1, 1),
                    0,
                    std::ptr::null_mut(),
                    params,
                )
            }
        })
    }
}

impl Drop for PtxModule {
    fn drop(&mut self) {
        let _ = self.device.bind();
        let raw = self.raw;
        let _ = ffi::call("cuModuleUnload", || {
            // SAFETY: loaded by `load`, unloaded exactly once here.
            unsafe { result::module::unload(raw) }
        });
    }
}
