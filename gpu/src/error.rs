//! The crate's error type.

use cudarc::driver::DriverError;

/// Everything that can go wrong in `ferry-gpu`.
///
/// Every public entry point returns this instead of panicking; in particular a
/// machine without the NVIDIA driver gets [`GpuError::NoDriver`].
///
/// ```
/// use ferry_gpu::GpuError;
/// let e = GpuError::NoDevice { ordinal: 3, count: 1 };
/// assert!(e.to_string().contains("ordinal 3"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// `libcuda.so` (the CUDA driver library) could not be loaded.
    #[error(
        "CUDA driver not available: libcuda.so could not be loaded; install the NVIDIA driver \
         (the package that provides libcuda.so.1, e.g. libnvidia-compute or nvidia-driver) \
         and make sure its directory is on the loader path (LD_LIBRARY_PATH)"
    )]
    NoDriver,
    /// The requested device ordinal does not exist.
    #[error("no CUDA device with ordinal {ordinal}: {count} device(s) visible")]
    NoDevice {
        /// The ordinal that was asked for.
        ordinal: usize,
        /// How many devices the driver reports.
        count: usize,
    },
    /// A CUDA driver call failed.
    #[error("{call} failed: {message}")]
    Cuda {
        /// The driver call (or the step) that failed, e.g. `"cuMemAlloc"`.
        call: &'static str,
        /// The driver's error name, code and description.
        message: String,
    },
    /// A CUDA IPC handle could not be created, decoded or opened.
    #[error("CUDA IPC: {0}")]
    Ipc(String),
    /// An argument was out of range or inconsistent (sizes, lengths, devices).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl GpuError {
    /// Wraps a cudarc [`DriverError`] returned by `call`.
    ///
    /// Only called after the driver library was found, so asking the driver for
    /// the error's name and description is safe.
    pub(crate) fn cuda(call: &'static str, err: DriverError) -> Self {
        let code = err.0 as u32;
        // Asking the driver for the name and text is itself a driver call:
        // guard it like every other one.
        let described = std::panic::catch_unwind(|| {
            let name = err
                .error_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|_| format!("{:?}", err.0));
            let text = err
                .error_string()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, text)
        });
        let (name, text) = described.unwrap_or_else(|_| (format!("{:?}", err.0), String::new()));
        GpuError::Cuda {
            call,
            message: format!("{name} ({code}): {text}"),
        }
    }

    /// The error for an internal panic caught while `call` ran.
    pub(crate) fn panicked(call: &'static str, payload: &(dyn std::any::Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        GpuError::Cuda {
            call,
            message: format!("the CUDA binding panicked: {what}"),
        }
    }
}

/// Shorthand for `Result<T, GpuError>`.
pub type Result<T, E = GpuError> = std::result::Result<T, E>;
