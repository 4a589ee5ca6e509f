//! CUDA IPC: sharing a device buffer with another process on the same node.
//!
//! The exporter calls [`DeviceBytes::export_ipc`] and ships the
//! [`IpcHandle`] (as [`IpcHandle::to_bytes`]) to the importer, which calls
//! [`Device::open_ipc`] and copies out of the [`IpcMapping`]. The exporter must
//! keep its buffer alive until every importer has dropped its mapping.
//!
//! CUDA refuses to open a handle in the process that exported it, so
//! [`Device::open_ipc`] rejects such handles with a clear error; within one
//! process use [`crate::copy_peer`] instead.

use std::ffi::c_char;

use cudarc::driver::{result, sys};

use crate::buffer::DeviceBytes;
use crate::copy::copy_raw;
use crate::device::Device;
use crate::error::{GpuError, Result};
use crate::ffi;

/// Size of the driver's opaque `CUipcMemHandle`.
pub const IPC_HANDLE_BYTES: usize = 64;

const MAGIC: &[u8; 8] = b"FERRYIPC";
const FORMAT_VERSION: u32 = 1;
/// magic, version, pid, len, handle, uuid length.
const HEADER_BYTES: usize = 8 + 4 + 4 + 8 + IPC_HANDLE_BYTES + 2;
/// Longest device UUID accepted when decoding (MIG UUIDs included).
const MAX_UUID_BYTES: usize = 128;

/// Everything an importer needs to map an exported device buffer: plain data,
/// safe to send anywhere.
///
/// ```
/// use ferry_gpu::IpcHandle;
/// let h = IpcHandle {
///     handle: [7; 64],
///     len: 4096,
///     device_uuid: "GPU-12345678-9abc-def0-0123-456789abcdef".into(),
///     pid: 4242,
/// };
/// let wire = h.to_bytes();
/// assert_eq!(IpcHandle::from_bytes(&wire)?, h);
/// assert!(IpcHandle::from_bytes(&wire[..10]).is_err());
/// # Ok::<(), ferry_gpu::GpuError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpcHandle {
    /// The driver's opaque `CUipcMemHandle` bytes.
    pub handle: [u8; IPC_HANDLE_BYTES],
    /// Length of the exported buffer in bytes.
    pub len: u64,
    /// UUID of the exporting device (`"GPU-…"`).
    pub device_uuid: String,
    /// Process id of the exporter.
    pub pid: u32,
}

impl IpcHandle {
    /// Encodes the handle in a fixed little-endian layout:
    /// `"FERRYIPC"`, format version (u32), pid (u32), len (u64), the 64 handle
    /// bytes, the UUID's length (u16) and its UTF-8 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let uuid = self.device_uuid.as_bytes();
        let uuid = &uuid[..uuid.len().min(MAX_UUID_BYTES)];
        let mut out = Vec::with_capacity(HEADER_BYTES + uuid.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.pid.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.handle);
        out.extend_from_slice(&(uuid.len() as u16).to_le_bytes());
        out.extend_from_slice(uuid);
        out
    }

    /// Decodes [`to_bytes`](Self::to_bytes) output, rejecting anything that
    /// is not exactly one well-formed handle with [`GpuError::Ipc`].
    pub fn from_bytes(bytes: &[u8]) -> Result<IpcHandle> {
        let bad = |why: String| GpuError::Ipc(format!("malformed IPC handle: {why}"));
        if bytes.len() < HEADER_BYTES {
            return Err(bad(format!(
                "{} bytes, need at least {HEADER_BYTES}",
                bytes.len()
            )));
        }
        let (magic, rest) = bytes.split_at(8);
        if magic != MAGIC {
            return Err(bad("wrong magic".into()));
        }
        let (version, rest) = rest.split_at(4);
        let version = u32::from_le_bytes(version.try_into().map_err(|_| bad("version".into()))?);
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {version}, expected {FORMAT_VERSION}"
            )));
        }
        let (pid, rest) = rest.split_at(4);
        let pid = u32::from_le_bytes(pid.try_into().map_err(|_| bad("pid".into()))?);
        let (len, rest) = rest.split_at(8);
        let len = u64::from_le_bytes(len.try_into().map_err(|_| bad("len".into()))?);
        let (handle, rest) = rest.split_at(IPC_HANDLE_BYTES);
        let handle: [u8; IPC_HANDLE_BYTES] = handle.try_into().map_err(|_| bad("handle".into()))?;
        let (uuid_len, uuid) = rest.split_at(2);
        let uuid_len =
            u16::from_le_bytes(uuid_len.try_into().map_err(|_| bad("uuid length".into()))?)
                as usize;
        if uuid_len > MAX_UUID_BYTES {
            return Err(bad(format!("device UUID of {uuid_len} bytes")));
        }
        if uuid.len() != uuid_len {
            return Err(bad(format!(
                "device UUID should be {uuid_len} bytes, {} follow",
                uuid.len()
            )));
        }
        let device_uuid = std::str::from_utf8(uuid)
            .map_err(|_| bad("device UUID is not UTF-8".into()))?
            .to_owned();
        if len == 0 {
            return Err(bad("zero-length buffer".into()));
        }
        Ok(IpcHandle {
            handle,
            len,
            device_uuid,
            pid,
        })
    }
}

impl DeviceBytes {
    /// Exports this buffer for another process (`cuIpcGetMemHandle`).
    ///
    /// The buffer comes from `cuMemAlloc`, as IPC requires. Keep it alive
    /// until every importer has dropped its [`IpcMapping`].
    pub fn export_ipc(&self) -> Result<IpcHandle> {
        if self.is_empty() {
            return Err(GpuError::Ipc("cannot export an empty buffer".into()));
        }
        self.device().bind()?;
        let ptr = self.as_raw();
        let raw = ffi::call("cuIpcGetMemHandle", || {
            let mut raw = sys::CUipcMemHandle {
                reserved: [0; IPC_HANDLE_BYTES],
            };
            // SAFETY: `ptr` is the base of a live cuMemAlloc allocation in the
            // current context; the driver fills the 64-byte handle.
            unsafe { sys::cuIpcGetMemHandle(&mut raw, ptr) }.result()?;
            Ok(raw)
        })?;
        Ok(IpcHandle {
            handle: raw.reserved.map(|c| c as u8),
            len: self.len() as u64,
            device_uuid: self.device().info().uuid.clone(),
            pid: std::process::id(),
        })
    }
}

impl Device {
    /// Maps a buffer exported by another process into this device's context
    /// (`cuIpcOpenMemHandle` with `CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS`, so the
    /// exporter may be a different device of the node).
    ///
    /// Fails with [`GpuError::Ipc`] for a handle exported by this very process
    /// (CUDA does not allow that: use [`crate::copy_peer`] on the original
    /// buffer) and when the mapped allocation is smaller than the handle
    /// claims.
    pub fn open_ipc(&self, handle: &IpcHandle) -> Result<IpcMapping> {
        if handle.pid == std::process::id() {
            return Err(GpuError::Ipc(format!(
                "the handle was exported by this process (pid {}); CUDA cannot open an IPC \
                 handle in the exporting process: copy from the original buffer with \
                 ferry_gpu::copy_peer instead",
                handle.pid
            )));
        }
        let len = usize::try_from(handle.len)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| GpuError::Ipc(format!("bad buffer length {}", handle.len)))?;
        self.bind()?;
        let raw = sys::CUipcMemHandle {
            reserved: handle.handle.map(|b| b as c_char),
        };
        let flags = sys::CUipcMem_flags::CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS as u32;
        let ptr = ffi::call("cuIpcOpenMemHandle", || {
            let mut ptr: sys::CUdeviceptr = 0;
            // SAFETY: the driver validates the opaque handle and writes one
            // device pointer; the context is current.
            unsafe { sys::cuIpcOpenMemHandle_v2(&mut ptr, raw, flags) }.result()?;
            Ok(ptr)
        })?;
        let mapping = IpcMapping {
            ptr,
            len,
            device: self.clone(),
            exporter_pid: handle.pid,
            exporter_uuid: handle.device_uuid.clone(),
        };
        // Check the handle's length against the real allocation, so a wrong
        // length cannot make later copies run past it. Where the driver will
        // not say, trust the handle.
        let range = ffi::call("cuMemGetAddressRange", || {
            let mut base: sys::CUdeviceptr = 0;
            let mut size: usize = 0;
            // SAFETY: `ptr` was just mapped in the current context; the driver
            // writes one pointer and one size.
            unsafe { sys::cuMemGetAddressRange_v2(&mut base, &mut size, ptr) }.result()?;
            Ok((base, size))
        });
        if let Ok((base, size)) = range {
            let available = (base + size as u64).saturating_sub(ptr);
            if available < handle.len {
                return Err(GpuError::Ipc(format!(
                    "the handle claims {} bytes but the exported allocation has {available}",
                    handle.len
                )));
            }
        }
        Ok(mapping)
    }
}

/// Another process's device buffer, mapped into this process; unmapped
/// (`cuIpcCloseMemHandle`) on drop.
#[derive(Debug)]
pub struct IpcMapping {
    ptr: sys::CUdeviceptr,
    len: usize,
    device: Device,
    exporter_pid: u32,
    exporter_uuid: String,
}

impl IpcMapping {
    /// Length of the mapped buffer in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never true for an opened mapping).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped address, valid in the importing device's context while
    /// `self` lives.
    pub fn as_raw(&self) -> u64 {
        self.ptr
    }

    /// The device that opened the mapping.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Process id of the exporter.
    pub fn exporter_pid(&self) -> u32 {
        self.exporter_pid
    }

    /// UUID of the exporting device.
    pub fn exporter_uuid(&self) -> &str {
        &self.exporter_uuid
    }

    /// Copies the whole mapped buffer into the start of `dst` (device to
    /// device) and waits for the copy to finish. `dst` may live on any device.
    pub fn copy_into(&self, dst: &DeviceBytes) -> Result<()> {
        if dst.len() < self.len {
            return Err(GpuError::InvalidArgument(format!(
                "destination holds {} bytes, the mapping has {}",
                dst.len(),
                self.len
            )));
        }
        // SAFETY: the mapping is `len` readable bytes valid in
        // `self.device`'s context while `self` lives (its length was checked
        // against the allocation when opened); `dst` is a distinct live
        // allocation of at least `len` bytes, so the ranges cannot overlap.
        unsafe { copy_raw(dst.device(), dst.as_raw(), &self.device, self.ptr, self.len) }
    }

    /// Copies the mapped buffer into `out`, which must be exactly
    /// [`len`](Self::len) bytes long.
    pub fn copy_to_host(&self, out: &mut [u8]) -> Result<()> {
        if out.len() != self.len {
            return Err(GpuError::InvalidArgument(format!(
                "host buffer is {} bytes, the mapping has {}",
                out.len(),
                self.len
            )));
        }
        self.device.bind()?;
        let ptr = self.ptr;
        ffi::call("cuMemcpyDtoH", || {
            // SAFETY: `ptr..ptr+len` is mapped and readable in the current
            // context; `out` is exactly `len` exclusively borrowed bytes.
            unsafe { result::memcpy_dtoh_sync(out, ptr) }
        })
    }

    /// Copies the mapped buffer to a new host vector.
    pub fn to_host(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.len];
        self.copy_to_host(&mut out)?;
        Ok(out)
    }
}

impl Drop for IpcMapping {
    fn drop(&mut self) {
        let _ = self.device.bind();
        let ptr = self.ptr;
        let _ = ffi::call("cuIpcCloseMemHandle", || {
            // SAFETY: `ptr` was returned by cuIpcOpenMemHandle and is closed
            // exactly once; no borrow of `self` outlives the drop.
            unsafe { sys::cuIpcCloseMemHandle(ptr) }.result()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IpcHandle {
        let mut handle = [0u8; IPC_HANDLE_BYTES];
        for (i, b) in handle.iter_mut().enumerate() {
            *b = i as u8 ^ 0x5a;
        }
        IpcHandle {
            handle,
            len: 1 << 33,
            device_uuid: "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f".into(),
            pid: 0xdead_beef,
        }
    }

    #[test]
    fn layout_is_fixed_little_endian() {
        let h = sample();
        let b = h.to_bytes();
        assert_eq!(b.len(), HEADER_BYTES + h.device_uuid.len());
        assert_eq!(&b[..8], b"FERRYIPC");
        assert_eq!(&b[8..12], &1u32.to_le_bytes());
        assert_eq!(&b[12..16], &0xdead_beefu32.to_le_bytes());
        assert_eq!(&b[16..24], &(1u64 << 33).to_le_bytes());
        assert_eq!(&b[24..88], &h.handle);
        assert_eq!(&b[88..90], &(h.device_uuid.len() as u16).to_le_bytes());
        assert_eq!(&b[90..], h.device_uuid.as_bytes());
    }

    #[test]
    fn every_truncation_is_rejected() {
        let b = sample().to_bytes();
        for n in 0..b.len() {
            assert!(
                matches!(IpcHandle::from_bytes(&b[..n]), Err(GpuError::Ipc(_))),
                "truncated to {n}"
            );
        }
    }
}
