//! GPUs without a CUDA driver (this machine): every GPU call is a typed
//! error, nothing panics, and everything else keeps working. On a machine
//! with a driver the tests say so and skip.

use ferry::gpu::{GpuError, GpuObject, probe};
use ferry::{Config, Error, Runtime};

fn has_driver() -> bool {
    match probe::driver() {
        Ok(info) => {
            println!("skipped: a CUDA driver is present ({info:?}); these tests cover its absence");
            true
        }
        Err(e) => {
            assert!(matches!(e, GpuError::NoDriver), "{e}");
            false
        }
    }
}

fn start(gpus: f64) -> Runtime {
    ferry::init(
        Config::default()
            .num_cpus(2.0)
            .num_gpus(gpus)
            .object_store_memory(16 << 20),
    )
    .unwrap()
}

#[ferry::remote]
fn open_gpu() -> String {
    match ferry::gpu::device() {
        Ok(d) => format!("opened {}", d.ordinal()),
        Err(Error::Gpu(m)) => format!("gpu error: {m}"),
        Err(Error::InvalidArgument(m)) => format!("invalid: {m}"),
        Err(e) => format!("other: {e}"),
    }
}

#[test]
fn without_a_driver_the_node_has_no_gpus_and_gpu_requests_are_infeasible() {
    if has_driver() {
        return;
    }
    let rt = ferry::init(Config::default().object_store_memory(16 << 20)).unwrap();
    // Zero GPUs are not listed, as in Ray.
    assert_eq!(
        rt.cluster_resources().get("GPU").copied().unwrap_or(0.0),
        0.0
    );
    assert!(rt.binding().gpus.is_empty());
    let err = open_gpu::options().num_gpus(1.0).remote(&rt).unwrap_err();
    assert!(
        matches!(&err, Error::Infeasible { resource, .. } if resource == "GPU"),
        "{err}"
    );
    // Everything else works.
    assert!(
        rt.get_value(&open_gpu::remote(&rt).unwrap())
            .unwrap()
            .starts_with("invalid: ")
    );
}

#[test]
fn a_logical_gpu_cannot_be_opened_and_says_why() {
    if has_driver() {
        return;
    }
    let rt = start(1.0);
    let msg = rt
        .get_value(&open_gpu::options().num_gpus(1.0).remote(&rt).unwrap())
        .unwrap();
    assert!(msg.starts_with("gpu error: "), "{msg}");
    assert!(msg.contains("libcuda"), "{msg}");
    // Twice gives the same answer (the probe is cached, never a panic).
    let again = rt
        .get_value(&open_gpu::options().num_gpus(1.0).remote(&rt).unwrap())
        .unwrap();
    assert_eq!(msg, again);
}

fn object(pid: u32, host: &str) -> GpuObject {
    GpuObject {
        pid,
        host: host.to_string(),
        key: 7,
        len: 64,
        device_uuid: "GPU-00000000-0000-0000-0000-000000000000".into(),
        ipc: vec![1, 2, 3],
    }
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn gpu_objects_fail_clearly_without_a_driver_or_a_producer() {
    if has_driver() {
        return;
    }
    // Produced by this process but not (or no longer) shared.
    let gone = object(std::process::id(), &this_host());
    let err = gone.to_host().unwrap_err();
    assert!(
        matches!(&err, Error::Gpu(m) if m.contains("released")),
        "{err}"
    );
    // Another node: IPC cannot reach it.
    let far = object(1, "some-other-node");
    let err = far.to_host().unwrap_err();
    assert!(
        matches!(&err, Error::Gpu(m) if m.contains("do not cross nodes")),
        "{err}"
    );
    // Another process of this node, with a garbage handle: a typed error.
    let other = object(1, &this_host());
    assert!(matches!(other.to_host(), Err(Error::Gpu(_))));
    // A GPU object is a plain value: it goes through the store.
    let rt = start(0.0);
    let r = rt.put(&far).unwrap();
    assert_eq!(rt.get_value(&r).unwrap(), far);
}
