//! `ferry bench`'s GPU measurement: a GPU object moved device to device
//! (Ferry's path: the object's handle, then a peer copy or CUDA IPC) beside
//! a raw `cuMemcpyDtoD`/`cuMemcpyPeer` of the same size, in the same run.
//! Without a CUDA driver or a GPU it says why and skips.

use std::time::Instant;

use ferry::gpu::{Device, DeviceBytes, SharedBuffer, bench, probe};

use super::runner::Runner;
use super::timeit::{median, say};

const SIZES: [(usize, usize, &str); 3] = [
    (1 << 20, 50, "1 MiB"),
    (64 << 20, 20, "64 MiB"),
    (256 << 20, 10, "256 MiB"),
];

/// Runs the measurement when the filter wants "gpu".
pub(crate) fn run(r: &mut Runner<'_>) -> ferry::Result<()> {
    if !r.wants_printed("gpu d2d") {
        return Ok(());
    }
    let count = match probe::driver() {
        Ok(d) if d.device_count > 0 => d.device_count,
        Ok(_) => {
            say("gpu d2d: skipped: the CUDA driver sees no GPU");
            return Ok(());
        }
        Err(e) => {
            say(&format!("gpu d2d: skipped: {e}"));
            return Ok(());
        }
    };
    let src_dev = Device::open(0)?;
    let dst_dev = Device::open(usize::from(count > 1))?;
    say(&format!(
        "gpu d2d: GPU object from {} (device 0) to {} (device {}), one process: \
         Ferry (GpuObject::copy_into) vs raw copy, GB/s, medians",
        src_dev.info().name,
        dst_dev.info().name,
        dst_dev.ordinal()
    ));
    for (bytes, iters, label) in SIZES {
        let src = DeviceBytes::alloc(&src_dev, bytes)?;
        src.fill(0x5a)?;
        let shared = SharedBuffer::new(src)?;
        let object = shared.object();
        let dst = DeviceBytes::zeroed(&dst_dev, bytes)?;
        object.copy_into(&dst)?;
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            object.copy_into(&dst)?;
            times.push(t.elapsed().as_secs_f64());
        }
        let ferry = bytes as f64 / median(times) / 1e9;
        let raw = bench::d2d_copy(&src_dev, &dst_dev, bytes, iters)?;
        say(&format!(
            "  {label:>7}: ferry {ferry:7.1}  raw {:7.1}  ferry/raw {:.2}  (handle path alone: {:.1})",
            raw.raw_gbps(),
            ferry / raw.raw_gbps(),
            raw.ferry_gbps()
        ));
    }
    Ok(())
}
