//! `DeviceBytes`: a plain device allocation, owned by a device's context.

use cudarc::driver::{result, sys};

use crate::device::Device;
use crate::error::{GpuError, Result};
use crate::ffi;

/// `n` bytes of device memory allocated with `cuMemAlloc` in a [`Device`]'s
/// context, freed on drop.
///
/// The allocation comes from `cuMemAlloc` (never from a stream-ordered memory
/// pool), so it can be exported with [`DeviceBytes::export_ipc`]. Host copies
/// are synchronous: the data is in place (or back on the host) when they
/// return. A zero-length buffer allocates nothing and has address 0.
///
/// ```no_run
/// # fn main() -> Result<(), ferry_gpu::GpuError> {
/// use ferry_gpu::{Device, DeviceBytes};
/// let dev = Device::open(0)?;
/// let buf = DeviceBytes::from_host(&dev, b"hello")?;
/// assert_eq!(buf.to_host()?, b"hello");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DeviceBytes {
    ptr: sys::CUdeviceptr,
    len: usize,
    device: Device,
}

impl DeviceBytes {
    /// Allocates `len` bytes on `device`; the contents are unspecified.
    pub fn alloc(device: &Device, len: usize) -> Result<DeviceBytes> {
        let ptr = if len == 0 {
            0
        } else {
            device.bind()?;
            ffi::call("cuMemAlloc", || {
                // SAFETY: plain allocation in the current (just bound) context;
                // the memory is only ever read back as bytes or plain floats,
                // for which any bit pattern is valid.
                unsafe { result::malloc_sync(len) }
            })?
        };
        Ok(DeviceBytes {
            ptr,
            len,
            device: device.clone(),
        })
    }

    /// Allocates `len` bytes on `device`, all set to zero.
    pub fn zeroed(device: &Device, len: usize) -> Result<DeviceBytes> {
        let buf = DeviceBytes::alloc(device, len)?;
        buf.fill(0)?;
        Ok(buf)
    }

    /// Allocates a buffer on `device` holding a copy of `data`.
    pub fn from_host(device: &Device, data: &[u8]) -> Result<DeviceBytes> {
        let mut buf = DeviceBytes::alloc(device, data.len())?;
        buf.copy_from_host(data)?;
        Ok(buf)
    }

    /// Allocates a buffer on `device` holding a copy of `data` (4 bytes per
    /// value, native byte order).
    pub fn from_host_f32(device: &Device, data: &[f32]) -> Result<DeviceBytes> {
        let bytes = std::mem::size_of_val(data);
        let mut buf = DeviceBytes::alloc(device, bytes)?;
        buf.upload(data)?;
        Ok(buf)
    }

    /// Allocates a buffer on `device` holding a copy of `data` (4 bytes per
    /// value, native byte order).
    pub fn from_host_u32(device: &Device, data: &[u32]) -> Result<DeviceBytes> {
        let bytes = std::mem::size_of_val(data);
        let mut buf = DeviceBytes::alloc(device, bytes)?;
        buf.upload(data)?;
        Ok(buf)
    }

    /// Overwrites the whole buffer with `data`, which must be exactly
    /// [`len`](Self::len) bytes long.
    pub fn copy_from_host(&mut self, data: &[u8]) -> Result<()> {
        self.upload(data)
    }

    /// Overwrites the whole buffer with `data`, which must be exactly
    /// `len() / 4` values long.
    pub fn copy_from_host_f32(&mut self, data: &[f32]) -> Result<()> {
        self.upload(data)
    }

    /// Copies the buffer back to a new host vector.
    pub fn to_host(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.len];
        self.download(&mut out)?;
        Ok(out)
    }

    /// Copies the buffer into `out`, which must be exactly
    /// [`len`](Self::len) bytes long.
    pub fn copy_to_host(&self, out: &mut [u8]) -> Result<()> {
        self.download(out)
    }

    /// Copies the buffer back as `f32` values (native byte order); the length
    /// must be a multiple of 4.
    pub fn to_host_f32(&self) -> Result<Vec<f32>> {
        if !self.len.is_multiple_of(4) {
            return Err(GpuError::InvalidArgument(format!(
                "buffer of {} bytes is not a whole number of f32 values",
                self.len
            )));
        }
        let mut out = vec![0f32; self.len / 4];
        self.download(&mut out)?;
        Ok(out)
    }

    /// Sets every byte of the buffer to `value`.
    pub fn fill(&self, value: u8) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        self.device.bind()?;
        ffi::call("cuMemsetD8", || {
            // SAFETY: `ptr..ptr+len` is this buffer's live allocation.
            unsafe { result::memset_d8_sync(self.ptr, value, self.len) }
        })?;
        self.device.synchronize()
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ordinal of the device that owns the allocation.
    pub fn device_ordinal(&self) -> usize {
        self.device.ordinal()
    }

    /// The device that owns the allocation.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The raw `CUdeviceptr` (0 for an empty buffer). It stays valid as long
    /// as `self` lives; do not free it.
    pub fn as_raw(&self) -> u64 {
        self.ptr
    }

    /// Synchronous host-to-device copy of exactly `len` bytes.
    ///
    /// `T` is only ever `u8`, `u32` or `f32`: no padding, every bit pattern valid.
    fn upload<T: Copy>(&mut self, data: &[T]) -> Result<()> {
        let bytes = std::mem::size_of_val(data);
        if bytes != self.len {
            return Err(GpuError::InvalidArgument(format!(
                "host data is {bytes} bytes but the device buffer is {} bytes",
                self.len
            )));
        }
        if bytes == 0 {
            return Ok(());
        }
        self.device.bind()?;
        ffi::call("cuMemcpyHtoD", || {
            // SAFETY: the destination is this buffer's live allocation of
            // exactly `size_of_val(data)` bytes; the synchronous copy has read
            // `data` before it returns.
            unsafe { result::memcpy_htod_sync(self.ptr, data) }
        })?;
        // From pageable memory the copy may still be in flight on return;
        // wait, so the data is in place for other contexts and processes.
        self.device.synchronize()
    }

    /// Synchronous device-to-host copy of exactly `len` bytes.
    ///
    /// `T` is only ever `u8`, `u32` or `f32`: every bit pattern is a valid value.
    fn download<T: Copy>(&self, out: &mut [T]) -> Result<()> {
        let bytes = std::mem::size_of_val(out);
        if bytes != self.len {
            return Err(GpuError::InvalidArgument(format!(
                "host buffer is {bytes} bytes but the device buffer is {} bytes",
                self.len
            )));
        }
        if bytes == 0 {
            return Ok(());
        }
        self.device.bind()?;
        ffi::call("cuMemcpyDtoH", || {
            // SAFETY: the source is this buffer's live allocation of exactly
            // `size_of_val(out)` bytes; `out` is exclusively borrowed and any
            // bit pattern is a valid `T`; the copy completes before returning.
            unsafe { result::memcpy_dtoh_sync(out, self.ptr) }
        })
    }
}

impl Drop for DeviceBytes {
    fn drop(&mut self) {
        if self.ptr == 0 {
            return;
        }
        // Errors cannot be reported from drop; the context is torn down anyway
        // if the driver is in a failed state.
        let _ = self.device.bind();
        let ptr = self.ptr;
        let _ = ffi::call("cuMemFree", || {
            // SAFETY: `ptr` came from cuMemAlloc in this context, is freed
            // exactly once, and no borrow of `self` outlives the drop.
            unsafe { result::free_sync(ptr) }
        });
    }
}
