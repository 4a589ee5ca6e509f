//! A GPU object made by an actor on another rank: read on the host and
//! device to device by the driver, and by a task on a third rank. Over
//! loopback the ranks are threads of one process (the object's buffer is
//! found in this process and copied peer to peer); under `mpirun` they are
//! processes of one node (CUDA IPC). Without a CUDA driver or a device it
//! says why and skips.

use ferry::Runtime;
use ferry::gpu::{Device, DeviceBytes, GpuObject, SharedBuffer, probe};

use super::last;

/// The bytes the producer shares: a pattern no two seeds share.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed)
        .collect()
}

/// Makes device buffers on device 0 and keeps them shared while it lives.
#[ferry::actor]
struct GpuProducer {
    kept: Vec<SharedBuffer>,
}

#[ferry::actor]
impl GpuProducer {
    fn new() -> Self {
        GpuProducer { kept: Vec::new() }
    }

    /// `len` bytes of `pattern(len, seed)` on device 0, as a GPU object.
    fn share(&mut self, len: u64, seed: u8) -> Result<GpuObject, String> {
        let device = Device::open(0).map_err(|e| e.to_string())?;
        let bytes = DeviceBytes::from_host(&device, &pattern(len as usize, seed))
            .map_err(|e| e.to_string())?;
        let shared = SharedBuffer::new(bytes).map_err(|e| e.to_string())?;
        let object = shared.object();
        self.kept.push(shared);
        Ok(object)
    }

    /// The process that made the objects.
    fn pid(&self) -> u32 {
        std::process::id()
    }
}

/// Copies `object` onto device 0 of the rank it runs on, then to the host.
#[ferry::remote]
fn read_on_device(object: GpuObject) -> Result<Vec<u8>, String> {
    let device = Device::open(0).map_err(|e| e.to_string())?;
    let copy = object.to_device(&device).map_err(|e| e.to_string())?;
    copy.to_host().map_err(|e| e.to_string())
}

/// Whether this process sees a GPU, or why not.
fn gpu_here() -> Result<(), String> {
    match probe::driver() {
        Err(e) => Err(format!("no CUDA driver ({e})")),
        Ok(info) if info.device_count == 0 => Err("the CUDA driver sees no device".into()),
        Ok(_) => Ok(()),
    }
}

pub(super) fn a_gpu_object_made_on_another_rank_is_read_here(rt: &Runtime) -> ferry::Result<()> {
    if let Err(why) = gpu_here() {
        println!("skipped a_gpu_object_made_on_another_rank_is_read_here: {why}");
        return Ok(());
    }
    let maker = last(rt);
    let producer = GpuProducer::options().on_rank(maker).remote(rt)?;
    let len = (1 << 20) + 3;
    let object = rt.get_value(&producer.share(len, 7).remote()?)?;
    let expected = pattern(len as usize, 7);
    // On the host of this rank.
    assert_eq!(object.to_host()?, expected, "host copy");
    // Device to device on this rank.
    let device = Device::open(0)?;
    assert_eq!(
        object.to_device(&device)?.to_host()?,
        expected,
        "device copy"
    );
    // A copy into a buffer of the wrong length is refused, typed.
    let short = DeviceBytes::zeroed(&device, 16)?;
    assert!(
        matches!(
            object.copy_into(&short),
            Err(ferry::Error::InvalidArgument(_))
        ),
        "a short buffer must be refused"
    );
    // A task on another rank (the maker's own when there are two) reads it
    // device to device there.
    let reader = if rt.world_size() > 2 { 1 } else { maker };
    let second = rt.get_value(&producer.share(4096, 99).remote()?)?;
    let read = rt.get_value(
        &read_on_device::options()
            .on_rank(reader)
            .remote(rt, second)?,
    )?;
    assert_eq!(read, pattern(4096, 99), "read by a task on rank {reader}");
    let pid = rt.get_value(&producer.pid().remote()?)?;
    println!(
        "a GPU object made on rank {maker} ({}) read on rank 0 and on rank {reader}",
        if pid == std::process::id() {
            "this process: peer copies"
        } else {
            "another process: CUDA IPC"
        }
    );
    Ok(())
}
