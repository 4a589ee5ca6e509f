//! The one place that turns cudarc calls into `GpuError`s.
//!
//! cudarc loads `libcuda.so` lazily and panics when the library or a symbol is
//! missing, so every call is run under `catch_unwind` as a second line of
//! defence behind the presence check in [`crate::probe`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use cudarc::driver::DriverError;

use crate::error::{GpuError, Result};

/// Runs one cudarc call named `call`, mapping its error and any panic.
pub(crate) fn call<T>(
    call: &'static str,
    f: impl FnOnce() -> std::result::Result<T, DriverError>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(GpuError::cuda(call, e)),
        Err(payload) => Err(GpuError::panicked(call, payload.as_ref())),
    }
}

/// Like [`call`], but hands back the driver's own error so the caller can
/// look at its code; only a panic becomes a `GpuError`.
pub(crate) fn call_raw<T>(
    call: &'static str,
    f: impl FnOnce() -> std::result::Result<T, DriverError>,
) -> Result<std::result::Result<T, DriverError>> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| GpuError::panicked(call, payload.as_ref()))
}
