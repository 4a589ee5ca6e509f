//! Ferry's CUDA support, loaded at run time.
//!
//! The crate links nothing from CUDA at build time: `libcuda.so` is opened when
//! first needed, and a machine without it gets [`GpuError::NoDriver`] from every
//! entry point instead of a panic. What it offers:
//!
//! - [`probe`]: is there a driver, which devices (UUIDs in `CUDA_VISIBLE_DEVICES`
//!   form, PCI addresses in hwloc form);
//! - [`Device`]: an opened device, exposing its cudarc context for direct use;
//! - [`DeviceBytes`]: plain device allocations with host copies;
//! - [`ipc`]: CUDA IPC handles to share a buffer with another process, and
//!   [`copy_peer`] for the same-process case;
//! - [`softmax`]: a small model trained on CPU and GPU (hand-written PTX, no
//!   NVRTC), the workload of Ray's "NeuralNetOnGPU" tutorial;
//! - [`bench`](mod@bench): device-to-device copy timings, Ferry's path against a raw copy.
//!
//! ```
//! match ferry_gpu::Device::open(0) {
//!     Ok(dev) => println!("GPU 0 is {}", dev.info().name),
//!     Err(ferry_gpu::GpuError::NoDriver) => println!("no CUDA driver here"),
//!     Err(e) => println!("GPU 0 unavailable: {e}"),
//! }
//! ```

pub mod bench;
mod buffer;
mod copy;
mod device;
mod error;
mod ffi;
pub mod ipc;
mod module;
pub mod probe;
pub mod softmax;

pub use buffer::DeviceBytes;
pub use copy::copy_peer;
pub use device::Device;
pub use error::{GpuError, Result};
pub use ipc::{IpcHandle, IpcMapping};
pub use probe::{DeviceInfo, DriverInfo};

/// The cudarc version this crate is built against, for using its API directly
/// on [`Device::context`].
pub use cudarc;
