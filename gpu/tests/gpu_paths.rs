//! GPU paths. Each test runs when a CUDA driver with at least one device is
//! present, and otherwise prints `skipped: <reason>` and returns.

use std::process::Command;

use ferry_gpu::softmax::{CpuModel, GpuModel, SyntheticData};
use ferry_gpu::{Device, DeviceBytes, GpuError, IpcHandle, bench, copy_peer, probe};

/// Environment variable through which the parent hands the child an IPC handle.
const HANDLE_ENV: &str = "FERRY_GPU_TEST_IPC_HANDLE";

fn gpu(test: &str) -> Option<Device> {
    match probe::driver() {
        Err(e) => {
            println!("skipped: {test}: no CUDA driver ({e})");
            None
        }
        Ok(info) if info.device_count == 0 => {
            println!("skipped: {test}: the CUDA driver sees no device");
            None
        }
        Ok(_) => match Device::open(0) {
            Ok(d) => Some(d),
            Err(e) => {
                println!("skipped: {test}: cannot open device 0 ({e})");
                None
            }
        },
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(7) + 3) as u8).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn probe_describes_devices() {
    let Some(dev) = gpu("probe_describes_devices") else {
        return;
    };
    let info = dev.info();
    println!("{info:?}");
    assert!(
        info.uuid.starts_with("GPU-") && info.uuid.len() == 40,
        "{}",
        info.uuid
    );
    assert_eq!(info.pci_bus_id.len(), 12, "{}", info.pci_bus_id);
    assert!(info.total_memory > 0);
    assert!(info.matches_uuid(&info.uuid.to_uppercase()));
    assert_eq!(probe::devices().unwrap()[0], *info);
}

#[test]
fn buffer_round_trip() {
    let Some(dev) = gpu("buffer_round_trip") else {
        return;
    };
    let data = pattern(1 << 20);
    let buf = DeviceBytes::from_host(&dev, &data).unwrap();
    assert_eq!(buf.len(), data.len());
    assert_eq!(buf.device_ordinal(), 0);
    assert_ne!(buf.as_raw(), 0);
    assert_eq!(buf.to_host().unwrap(), data);
    let mut out = vec![0u8; data.len()];
    buf.copy_to_host(&mut out).unwrap();
    assert_eq!(out, data);
    assert!(matches!(
        buf.copy_to_host(&mut [0u8; 3]),
        Err(GpuError::InvalidArgument(_))
    ));

    let floats: Vec<f32> = (0..1000).map(|i| i as f32 * 0.25 - 7.0).collect();
    let fb = DeviceBytes::from_host_f32(&dev, &floats).unwrap();
    assert_eq!(fb.len(), 4000);
    assert_eq!(fb.to_host_f32().unwrap(), floats);

    let z = DeviceBytes::zeroed(&dev, 333).unwrap();
    assert_eq!(z.to_host().unwrap(), vec![0u8; 333]);
    assert!(z.to_host_f32().is_err());
    let empty = DeviceBytes::alloc(&dev, 0).unwrap();
    assert!(empty.is_empty() && empty.to_host().unwrap().is_empty());
}

#[test]
fn peer_copy_and_same_process_ipc() {
    let Some(dev) = gpu("peer_copy_and_same_process_ipc") else {
        return;
    };
    let data = pattern(4 << 20);
    let src = DeviceBytes::from_host(&dev, &data).unwrap();
    let dst = DeviceBytes::zeroed(&dev, data.len()).unwrap();
    copy_peer(&dst, &src).unwrap();
    assert_eq!(dst.to_host().unwrap(), data);
    assert!(copy_peer(&src, &src).is_err());
    assert!(copy_peer(&DeviceBytes::zeroed(&dev, 10).unwrap(), &src).is_err());

    let handle = src.export_ipc().unwrap();
    assert_eq!(handle.len, data.len() as u64);
    assert_eq!(handle.pid, std::process::id());
    assert_eq!(handle.device_uuid, dev.info().uuid);
    assert_eq!(IpcHandle::from_bytes(&handle.to_bytes()).unwrap(), handle);
    match dev.open_ipc(&handle) {
        Err(GpuError::Ipc(msg)) => assert!(msg.contains("copy_peer"), "{msg}"),
        other => panic!("opening our own handle should be refused: {other:?}"),
    }

    if probe::device_count().unwrap() >= 2 {
        let dev1 = Device::open(1).unwrap();
        let far = DeviceBytes::zeroed(&dev1, data.len()).unwrap();
        copy_peer(&far, &src).unwrap();
        assert_eq!(far.to_host().unwrap(), data);
    } else {
        println!("skipped: cross-device peer copy: only one device");
    }
}

/// Exports a buffer, hands the handle to a child process (this test binary
/// again, running `ipc_child_importer`) and lets the child check the contents.
#[test]
fn ipc_round_trip_across_processes() {
    let Some(dev) = gpu("ipc_round_trip_across_processes") else {
        return;
    };
    let data = pattern(3 << 20);
    let src = DeviceBytes::from_host(&dev, &data).unwrap();
    let handle = src.export_ipc().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "ipc_child_importer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HANDLE_ENV, hex(&handle.to_bytes()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("ipc-child: ok"),
        "child did not run:\n{stdout}\n{stderr}"
    );
    // The exporter's buffer is intact after the importer closed its mapping.
    assert_eq!(src.to_host().unwrap(), data);
}

/// The importer half of `ipc_round_trip_across_processes`; does nothing unless
/// started by it.
#[test]
fn ipc_child_importer() {
    let Ok(wire) = std::env::var(HANDLE_ENV) else {
        return;
    };
    let handle = IpcHandle::from_bytes(&unhex(&wire)).unwrap();
    let ordinal = probe::devices()
        .unwrap()
        .iter()
        .position(|d| d.matches_uuid(&handle.device_uuid))
        .unwrap_or(0);
    let dev = Device::open(ordinal).unwrap();
    let mapping = dev.open_ipc(&handle).unwrap();
    assert_eq!(mapping.len() as u64, handle.len);
    assert_eq!(mapping.exporter_pid(), handle.pid);
    let expected = pattern(mapping.len());
    assert_eq!(mapping.to_host().unwrap(), expected);
    let local = DeviceBytes::zeroed(&dev, mapping.len()).unwrap();
    mapping.copy_into(&local).unwrap();
    assert_eq!(local.to_host().unwrap(), expected);
    let mut lying = handle.clone();
    lying.len *= 2;
    lying.len += 1 << 30;
    assert!(
        dev.open_ipc(&lying).is_err(),
        "an oversized handle must be refused"
    );
    drop(mapping);
    println!("ipc-child: ok");
}

#[test]
fn gpu_model_matches_cpu_model() {
    let Some(dev) = gpu("gpu_model_matches_cpu_model") else {
        return;
    };
    let data = SyntheticData::new(2048, 16, 5, 3).unwrap();
    let mut cpu = CpuModel::new(16, 5).unwrap();
    let mut gpu = GpuModel::new(&dev, &data).unwrap();
    let lr = 0.5;
    for step in 0..50 {
        let lc = cpu.step(&data, lr).unwrap();
        let lg = gpu.step(lr).unwrap();
        let rel = (lc - lg).abs() / lc.abs().max(1e-6);
        assert!(rel < 1e-3, "step {step}: cpu loss {lc}, gpu loss {lg}");
    }
    let wc = cpu.weights();
    let wg = gpu.weights().unwrap();
    let scale = wc.iter().fold(0f32, |m, w| m.max(w.abs()));
    for (a, b) in wc.iter().zip(&wg) {
        assert!((a - b).abs() <= 1e-3 * scale, "weights {a} vs {b}");
    }
    let acc = gpu.to_cpu().unwrap().accuracy(&data).unwrap();
    assert!(acc > 0.9, "accuracy {acc}");
    println!(
        "gpu model: loss {} accuracy {acc}",
        cpu.loss(&data).unwrap()
    );
}

#[test]
fn d2d_bench_returns_positive_times() {
    let Some(dev) = gpu("d2d_bench_returns_positive_times") else {
        return;
    };
    let t = bench::d2d_copy(&dev, &dev, 8 << 20, 5).unwrap();
    println!(
        "d2d 8 MiB: ferry {:.3e} s ({:.1} GB/s), raw {:.3e} s ({:.1} GB/s)",
        t.ferry_median_s,
        t.ferry_gbps(),
        t.raw_median_s,
        t.raw_gbps()
    );
    assert!(t.ferry_median_s > 0.0 && t.raw_median_s > 0.0);
    assert_eq!((t.bytes, t.iters), (8 << 20, 5));
    assert!(bench::d2d_copy(&dev, &dev, 0, 5).is_err());
}
