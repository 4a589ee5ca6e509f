//! "Using GPUs on actors" of the Actors tutorial (seed 002): an actor that
//! asks for one GPU (Ray's `@ray.remote(num_gpus=1)` on `NeuralNetOnGPU`).
//!
//! Without GPUs the request is infeasible and creating the actor fails at
//! once, as in Ray; the same network then trains on the CPU. With GPUs
//! (`FERRY_NUM_GPUS=1`, or discovered ones) the actor sees one GPU id.
//!
//! Run it with `cargo run --example gpu_actor`.

use ferry::Error;

/// A tiny "network": a linear model trained by gradient descent on
/// `y = 3x - 1`.
#[ferry::actor]
struct NeuralNetOnGPU {
    gpu_ids: Vec<u32>,
    w: f64,
    b: f64,
}

fn data() -> impl Iterator<Item = (f64, f64)> {
    (0..100).map(|i| {
        let x = i as f64 / 100.0;
        (x, 3.0 * x - 1.0)
    })
}

#[ferry::actor]
impl NeuralNetOnGPU {
    fn new() -> Self {
        // Ray: os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ray.get_gpu_ids())
        NeuralNetOnGPU {
            gpu_ids: ferry::gpu_ids(),
            w: 0.0,
            b: 0.0,
        }
    }

    fn gpu_ids(&self) -> Vec<u32> {
        self.gpu_ids.clone()
    }

    fn train(&mut self, num_steps: u64) {
        for _ in 0..num_steps {
            let (mut gw, mut gb) = (0.0, 0.0);
            for (x, y) in data() {
                let err = self.w * x + self.b - y;
                gw += err * x / 50.0;
                gb += err / 50.0;
            }
            self.w -= 0.5 * gw;
            self.b -= 0.5 * gb;
        }
    }

    /// The mean absolute error on the data.
    fn get_error(&self) -> f64 {
        data()
            .map(|(x, y)| (self.w * x + self.b - y).abs())
            .sum::<f64>()
            / 100.0
    }
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let gpus = rt.cluster_resources().get("GPU").copied();
    let created = NeuralNetOnGPU::options().num_gpus(1.0).remote(&rt);
    let nn = match (gpus, created) {
        (None, Err(e @ Error::Infeasible { .. })) => {
            assert!(matches!(&e, Error::Infeasible { resource, .. } if resource == "GPU"));
            println!("NeuralNetOnGPU with num_gpus=1: {e}");
            println!("skipped: no GPU on this machine; training on the CPU instead");
            NeuralNetOnGPU::remote(&rt)?
        }
        (Some(n), Ok(nn)) => {
            let ids = rt.get_value(&nn.gpu_ids().remote()?)?;
            println!("{n} GPU(s); the actor was given GPU ids {ids:?}");
            assert_eq!(ids.len(), 1, "num_gpus=1 should give exactly one GPU id");
            nn
        }
        (gpus, created) => panic!("GPUs {gpus:?} but creating the actor gave {created:?}"),
    };
    // nn.train.remote(100); ray.get(nn.get_accuracy.remote())
    let _ = nn.train(200).remote()?;
    let error = rt.get(&nn.get_error().remote()?)?.to_native();
    assert!(error < 0.05, "mean error {error}");
    println!("mean error after training: {error:.4}");
    Ok(())
}
