//! GPU actors and GPU objects.
//!
//! An actor or task that asked for GPUs (`num_gpus`) opens its device with
//! [`device()`] and uses cudarc through it. A device buffer it wants to
//! hand to others becomes a [`SharedBuffer`]; its [`GpuObject`] is a small
//! plain value that goes anywhere a value goes (an actor method's result,
//! a task argument, an object in the store). A consumer gets the data from
//! it:
//!
//! * [`GpuObject::to_device`]: onto its own device, device to device: a
//!   peer copy (`cuMemcpyPeer`/`cuMemcpyDtoD`) when producer and consumer
//!   are actors of one rank (one process), through CUDA IPC
//!   (`cuIpcOpenMemHandle`, then a device copy) when they are ranks of one
//!   node;
//! * [`GpuObject::to_host`]: a host copy, for a CPU consumer.
//!
//! Limits: the producer owns the memory and must not change it after
//! sharing (it is an immutable object, as everything in the store). It must
//! keep its [`SharedBuffer`] (typically in the actor's state) until every
//! consumer has copied what it needs: once it is dropped, reads in the same
//! process fail with [`Error::Gpu`], and freeing memory another process
//! still has mapped is undefined in CUDA, so a producer on another rank must
//! outlive its consumers' copies (keep the actor alive until they are
//! done). GPU objects do not cross nodes (CUDA IPC is
//! node-local): a consumer on another node gets [`Error::Gpu`]. The data is
//! not spilled or kept by the object store: the store holds only the handle.
//!
//! Without a CUDA driver every call here returns [`Error::Gpu`] saying so;
//! nothing panics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rkyv::{Archive, Deserialize, Serialize};

pub use ferry_gpu::{Device, DeviceBytes, GpuError, IpcHandle, bench, copy_peer, probe, softmax};

use crate::error::{Error, Result};
use crate::sync::lock;

/// Opens the first GPU the running task or actor was given (its
/// [`gpu_ids`](crate::gpu_ids)), with a CUDA context bound to this thread.
///
/// # Errors
///
/// [`Error::InvalidArgument`] when the running task or actor asked for no
/// GPU (or outside any task), [`Error::Gpu`] when there is no CUDA driver or
/// the device cannot be opened (a logical GPU given by
/// [`Config::num_gpus`](crate::Config::num_gpus) on a machine without one).
///
/// ```
/// // Outside a task nothing was given.
/// assert!(matches!(ferry_core::gpu::device(), Err(ferry_core::Error::InvalidArgument(_))));
/// ```
pub fn device() -> Result<Device> {
    let ids = crate::gpu_ids();
    let Some(&first) = ids.first() else {
        return Err(Error::InvalidArgument(
            "gpu::device() in a task or actor that asked for no GPU (num_gpus)".into(),
        ));
    };
    Ok(Device::open(first as usize)?)
}

/// Buffers shared by this process, by key.
fn shared() -> &'static Mutex<HashMap<u64, Arc<DeviceBytes>>> {
    static SHARED: OnceLock<Mutex<HashMap<u64, Arc<DeviceBytes>>>> = OnceLock::new();
    SHARED.get_or_init(Default::default)
}

fn shared_buffers() -> std::sync::MutexGuard<'static, HashMap<u64, Arc<DeviceBytes>>> {
    lock(shared())
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A device buffer its producer shares: consumers reach it through
/// [`object`](Self::object) while this value lives.
#[derive(Debug)]
pub struct SharedBuffer {
    key: u64,
    buffer: Arc<DeviceBytes>,
    object: GpuObject,
}

impl SharedBuffer {
    /// Shares `buffer` (exporting a CUDA IPC handle for other processes).
    ///
    /// # Errors
    ///
    /// [`Error::Gpu`] when the buffer cannot be exported (it is empty, or
    /// the driver refuses).
    pub fn new(buffer: DeviceBytes) -> Result<SharedBuffer> {
        // Everything queued on the device (the producer's kernels on its
        // own streams) is done before anyone can read the buffer.
        buffer.device().synchronize()?;
        let ipc = buffer.export_ipc()?;
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let buffer = Arc::new(buffer);
        let object = GpuObject {
            pid: std::process::id(),
            host: crate::host::name(),
            key,
            len: buffer.len() as u64,
            device_uuid: ipc.device_uuid.clone(),
            ipc: ipc.to_bytes(),
        };
        shared_buffers().insert(key, buffer.clone());
        Ok(SharedBuffer {
            key,
            buffer,
            object,
        })
    }

    /// The buffer.
    pub fn buffer(&self) -> &DeviceBytes {
        &self.buffer
    }

    /// The handle consumers read it through.
    pub fn object(&self) -> GpuObject {
        self.object.clone()
    }
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        shared_buffers().remove(&self.key);
    }
}

/// A device buffer shared by an actor or task, as a plain value (see the
/// [module docs](self)).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GpuObject {
    /// The producing process.
    pub pid: u32,
    /// The producing process's host.
    pub host: String,
    /// The buffer's key in the producing process.
    pub key: u64,
    /// Length in bytes.
    pub len: u64,
    /// UUID of the device holding it.
    pub device_uuid: String,
    /// The CUDA IPC handle ([`IpcHandle::to_bytes`]).
    pub ipc: Vec<u8>,
}

impl GpuObject {
    /// The buffer in this process, when it was shared here and is still
    /// shared.
    fn local(&self) -> Result<Option<Arc<DeviceBytes>>> {
        if self.pid != std::process::id() || self.host != crate::host::name() {
            return Ok(None);
        }
        shared_buffers()
            .get(&self.key)
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                Error::Gpu(format!(
                    "the GPU object ({} bytes on {}) was released by its producer",
                    self.len, self.device_uuid
                ))
            })
    }

    fn remote_check(&self) -> Result<IpcHandle> {
        let here = crate::host::name();
        if self.host != here {
            return Err(Error::Gpu(format!(
                "the GPU object lives on node {}, this is {here}: GPU objects do not cross \
                 nodes (CUDA IPC is node-local)",
                self.host
            )));
        }
        Ok(IpcHandle::from_bytes(&self.ipc)?)
    }

    /// Copies the buffer onto `device`, device to device.
    ///
    /// # Errors
    ///
    /// [`Error::Gpu`]: no driver, the producer released the buffer, another
    /// node, or a CUDA failure.
    pub fn to_device(&self, device: &Device) -> Result<DeviceBytes> {
        let dst = DeviceBytes::alloc(device, self.len as usize)?;
        self.copy_into(&dst)?;
        Ok(dst)
    }

    /// Copies the buffer into `dst` (on any device of this node), device to
    /// device, for a consumer that reuses its buffer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `dst` is not exactly as long; else as
    /// [`to_device`](Self::to_device).
    pub fn copy_into(&self, dst: &DeviceBytes) -> Result<()> {
        if dst.len() as u64 != self.len {
            return Err(Error::InvalidArgument(format!(
                "copying a {}-byte GPU object into a {}-byte buffer",
                self.len,
                dst.len()
            )));
        }
        if let Some(src) = self.local()? {
            return Ok(copy_peer(dst, &src)?);
        }
        let handle = self.remote_check()?;
        let device = dst.device();
        Ok(device.open_ipc(&handle)?.copy_into(dst)?)
    }

    /// Copies the buffer to host memory (for a CPU consumer; it opens a
    /// CUDA context on the producer's device).
    ///
    /// # Errors
    ///
    /// As [`to_device`](Self::to_device).
    pub fn to_host(&self) -> Result<Vec<u8>> {
        if let Some(src) = self.local()? {
            return Ok(src.to_host()?);
        }
        let handle = self.remote_check()?;
        let ordinal = probe::devices()?
            .iter()
            .find(|d| d.matches_uuid(&self.device_uuid))
            .map(|d| d.ordinal)
            .ok_or_else(|| {
                Error::Gpu(format!(
                    "the GPU object's device {} is not visible to this process",
                    self.device_uuid
                ))
            })?;
        let device = Device::open(ordinal)?;
        Ok(device.open_ipc(&handle)?.to_host()?)
    }
}
