//! GPU ids handed to tasks and actors (Ray's `ray.get_gpu_ids()` and the
//! `CUDA_VISIBLE_DEVICES` it sets), with logical GPUs given to `init`.

mod common;
use common::Gate;

use std::time::Duration;

use ferry::Config;

#[ferry::remote]
fn ids() -> Vec<u32> {
    ferry::gpu_ids()
}

#[ferry::remote]
fn visible() -> Option<String> {
    ferry::env_var("CUDA_VISIBLE_DEVICES")
}

/// Holds its GPUs until gate `key` opens; their ids.
#[ferry::remote]
fn hold_ids(key: u64) -> Vec<u32> {
    Gate::pass(key, 0);
    ferry::gpu_ids()
}

/// An actor that reports its GPUs.
#[ferry::actor]
struct Trainer {
    seen: Vec<u32>,
}

#[ferry::actor]
impl Trainer {
    fn new() -> Self {
        Trainer {
            seen: ferry::gpu_ids(),
        }
    }

    fn devices(&self) -> Vec<u32> {
        self.seen.clone()
    }
}

fn runtime(gpus: f64) -> ferry::Result<ferry::Runtime> {
    ferry::init(
        Config::default()
            .num_cpus(4.0)
            .num_gpus(gpus)
            .object_store_memory(16 << 20),
    )
}

#[test]
fn whole_gpu_tasks_get_distinct_devices() -> ferry::Result<()> {
    let rt = runtime(2.0)?;
    // Both hold their GPU at once (each waits at the gate until both came).
    let gate = Gate::new();
    let a = hold_ids::options().num_gpus(1.0).remote(&rt, gate.key())?;
    let b = hold_ids::options().num_gpus(1.0).remote(&rt, gate.key())?;
    gate.wait_arrived(2, "both one-GPU tasks to be running");
    gate.open();
    let (a, b) = (rt.get_value(&a)?, rt.get_value(&b)?);
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_ne!(a, b, "two one-GPU tasks running together share no device");
    let both = ids::options().num_gpus(2.0).remote(&rt)?;
    assert_eq!(rt.get_value(&both)?, vec![0, 1]);
    let none = ids::remote(&rt)?;
    assert!(rt.get_value(&none)?.is_empty());
    rt.shutdown()
}

#[test]
fn cuda_visible_devices_names_the_devices() -> ferry::Result<()> {
    let rt = runtime(1.0)?;
    let r = visible::options().num_gpus(0.5).remote(&rt)?;
    assert_eq!(rt.get_value(&r)?.as_deref(), Some("0"));
    rt.shutdown()
}

#[test]
fn actors_hold_their_gpus_for_life() -> ferry::Result<()> {
    let rt = runtime(1.0)?;
    let t = Trainer::options().num_gpus(1.0).remote(&rt)?;
    assert_eq!(rt.get_value(&t.devices().remote()?)?, vec![0]);
    // The only GPU is held by the actor: a GPU task must wait until it is killed.
    let waiting = ids::options().num_gpus(1.0).remote(&rt)?;
    let early = rt.get_timeout(&waiting, Duration::from_millis(200));
    assert!(
        matches!(early, Err(ferry::Error::Timeout(_))),
        "a GPU task ran while the actor held the only GPU: {early:?}"
    );
    drop(early);
    t.kill();
    assert_eq!(rt.get_value(&waiting)?, vec![0]);
    rt.shutdown()
}

#[test]
fn gpu_requests_without_gpus_are_infeasible() -> ferry::Result<()> {
    let rt = runtime(0.0)?;
    let err = ids::options().num_gpus(1.0).remote(&rt).unwrap_err();
    assert!(
        matches!(err, ferry::Error::Infeasible { ref resource, .. } if resource == "GPU"),
        "{err}"
    );
    let err = Trainer::options()
        .num_gpus(1.0)
        .remote(&rt)
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(err, ferry::Error::Infeasible { ref resource, .. } if resource == "GPU"),
        "{err}"
    );
    let err = ferry::init(Config::default().num_gpus(0.5))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, ferry::Error::InvalidArgument(_)), "{err}");
    rt.shutdown()
}
