//! Softmax regression (multinomial logistic regression) trained by full-batch
//! gradient descent, on the CPU and on a CUDA device.
//!
//! This is the small model the Ray tutorial's "NeuralNetOnGPU" actor trains:
//! [`SyntheticData`] makes a deterministic, separable classification problem,
//! [`CpuModel`] is the reference implementation, and [`GpuModel`] runs the
//! same step as two hand-written PTX kernels. Both perform the same f32
//! operations in the same order (fused multiply-adds included), so their
//! losses agree to rounding of `exp`/`log` after any number of steps.
//!
//! ```
//! use ferry_gpu::softmax::{CpuModel, SyntheticData};
//! let data = SyntheticData::new(512, 8, 4, 7)?;
//! let mut model = CpuModel::new(8, 4)?;
//! let first = model.step(&data, 0.5)?;
//! let mut last = first;
//! for _ in 0..50 {
//!     last = model.step(&data, 0.5)?;
//! }
//! assert!(last < first);
//! assert!(model.accuracy(&data)? > 0.9);
//! # Ok::<(), ferry_gpu::GpuError>(())
//! ```

mod cpu;
mod data;
mod gpu;

pub use cpu::CpuModel;
pub use data::SyntheticData;
pub use gpu::GpuModel;

use crate::error::{GpuError, Result};

/// Checks that a model of `features` × `classes` fits `data`.
fn check_shape(features: usize, classes: usize, data: &SyntheticData) -> Result<()> {
    if data.features() != features || data.classes() != classes {
        return Err(GpuError::InvalidArgument(format!(
            "model is {features} features x {classes} classes, data is {} x {}",
            data.features(),
            data.classes()
        )));
    }
    Ok(())
}
