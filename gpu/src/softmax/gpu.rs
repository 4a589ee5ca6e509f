//! The same model, trained on a CUDA device by hand-written PTX kernels.

use std::ffi::c_void;

use super::{CpuModel, SyntheticData};
use crate::buffer::DeviceBytes;
use crate::device::Device;
use crate::error::{GpuError, Result};
use crate::module::{Kernel, PtxModule};

/// The kernels' PTX (`.version 7.0`, `.target sm_70`): JIT-compiled by the
/// driver for whatever device it is loaded on.
pub(crate) const PTX: &str = include_str!("kernels.ptx");

const BLOCK: u32 = 256;

/// Softmax regression trained on a device: the data is uploaded once, then
/// each [`step`](Self::step) runs a forward/gradient kernel (one thread per
/// sample) and an update kernel (one thread per parameter).
///
/// ```no_run
/// # fn main() -> Result<(), ferry_gpu::GpuError> {
/// use ferry_gpu::{Device, softmax::{GpuModel, SyntheticData}};
/// let dev = Device::open(0)?;
/// let data = SyntheticData::new(4096, 16, 4, 1)?;
/// let mut model = GpuModel::new(&dev, &data)?;
/// for _ in 0..100 {
///     model.step(0.5)?;
/// }
/// println!("accuracy {}", model.to_cpu()?.accuracy(&data)?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GpuModel {
    // Buffers are declared before the module only for readability: kernels
    // run synchronously with respect to every method, so drop order is free.
    x: DeviceBytes,
    labels: DeviceBytes,
    weights: DeviceBytes,
    bias: DeviceBytes,
    delta: DeviceBytes,
    loss: DeviceBytes,
    forward: Kernel,
    update: Kernel,
    module: PtxModule,
    samples: usize,
    features: usize,
    classes: usize,
}

impl GpuModel {
    /// Uploads `data` to `device` and starts from zero weights.
    pub fn new(device: &Device, data: &SyntheticData) -> Result<Self> {
        let start = CpuModel::new(data.features(), data.classes())?;
        GpuModel::from_cpu(device, data, &start)
    }

    /// Uploads `data` to `device` and starts from `model`'s parameters.
    pub fn from_cpu(device: &Device, data: &SyntheticData, model: &CpuModel) -> Result<Self> {
        super::check_shape(model.features(), model.classes(), data)?;
        let module = PtxModule::load(device, PTX)?;
        let forward = module.kernel("ferry_softmax_forward")?;
        let update = module.kernel("ferry_softmax_update")?;
        let (n, k) = (data.samples(), data.classes());
        Ok(GpuModel {
            x: DeviceBytes::from_host_f32(device, data.x())?,
            labels: DeviceBytes::from_host_u32(device, data.labels())?,
            weights: DeviceBytes::from_host_f32(device, model.weights())?,
            bias: DeviceBytes::from_host_f32(device, model.bias())?,
            delta: DeviceBytes::zeroed(device, n * k * 4)?,
            loss: DeviceBytes::zeroed(device, 4)?,
            forward,
            update,
            module,
            samples: n,
            features: data.features(),
            classes: k,
        })
    }

    /// One full-batch gradient-descent step with learning rate `lr`; returns
    /// the mean cross-entropy before the update, like [`CpuModel::step`].
    pub fn step(&mut self, lr: f32) -> Result<f32> {
        if !lr.is_finite() {
            return Err(GpuError::InvalidArgument(format!("learning rate {lr}")));
        }
        self.loss.fill(0)?;
        // The sizes were checked to fit u32 by SyntheticData.
        let mut n = self.samples as u32;
        let mut f = self.features as u32;
        let mut k = self.classes as u32;
        let mut inv_n = 1.0f32 / self.samples as f32;
        let mut lr = lr;
        let mut x = self.x.as_raw();
        let mut y = self.labels.as_raw();
        let mut w = self.weights.as_raw();
        let mut b = self.bias.as_raw();
        let mut delta = self.delta.as_raw();
        let mut loss = self.loss.as_raw();

        let mut forward_params: [*mut c_void; 10] = [
            (&raw mut x).cast(),
            (&raw mut y).cast(),
            (&raw mut w).cast(),
            (&raw mut b).cast(),
            (&raw mut delta).cast(),
            (&raw mut loss).cast(),
            (&raw mut n).cast(),
            (&raw mut f).cast(),
            (&raw mut k).cast(),
            (&raw mut inv_n).cast(),
        ];
        // SAFETY: the ten parameters match the PTX signature
        // (u64 x6, u32 x3, f32) and point to live locals; x holds n*f f32,
        // y n u32 labels below k, w f*k f32, b k f32, delta n*k f32, loss one
        // f32, all owned by `self`, which outlives the synchronous step.
        unsafe {
            self.module
                .launch(self.forward, n.div_ceil(BLOCK), BLOCK, &mut forward_params)?;
        }
        let params = f * k + k;
        let mut update_params: [*mut c_void; 9] = [
            (&raw mut x).cast(),
            (&raw mut delta).cast(),
            (&raw mut w).cast(),
            (&raw mut b).cast(),
            (&raw mut n).cast(),
            (&raw mut f).cast(),
            (&raw mut k).cast(),
            (&raw mut lr).cast(),
            (&raw mut inv_n).cast(),
        ];
        // SAFETY: the nine parameters match the PTX signature
        // (u64 x4, u32 x3, f32 x2) and point to live locals; the buffers are
        // sized as above and f*k + k fits u32 (checked by SyntheticData).
        unsafe {
            self.module.launch(
                self.update,
                params.div_ceil(BLOCK),
                BLOCK,
                &mut update_params,
            )?;
        }
        // The synchronous copy on the legacy default stream waits for both
        // kernels; an error in either surfaces here.
        let out = self.loss.to_host_f32()?;
        out.first()
            .copied()
            .ok_or_else(|| GpuError::InvalidArgument("loss buffer is empty".into()))
    }

    /// Copies the weights back (row-major `features × classes`).
    pub fn weights(&self) -> Result<Vec<f32>> {
        self.weights.to_host_f32()
    }

    /// Copies the biases back (one per class).
    pub fn bias(&self) -> Result<Vec<f32>> {
        self.bias.to_host_f32()
    }

    /// Copies the parameters back into a [`CpuModel`] (to evaluate or to
    /// continue on the CPU).
    pub fn to_cpu(&self) -> Result<CpuModel> {
        CpuModel::from_parts(self.features, self.classes, self.weights()?, self.bias()?)
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        self.x.device()
    }
}
