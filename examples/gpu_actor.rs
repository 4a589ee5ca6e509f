//! "Using GPUs on actors" of the Actors tutorial (seed 002): an actor that
//! asks for one GPU (Ray's `@ray.remote(num_gpus=1)` on `NeuralNetOnGPU`)
//! and trains a small model there: softmax regression on synthetic data,
//! full-batch gradient descent, with hand-written CUDA kernels.
//!
//! As in the tutorial: without GPUs the request is infeasible and creating
//! the actor fails at once; the same model then trains on the CPU ("allow
//! this to run on CPUs if there aren't any GPUs"). With a GPU the actor sees
//! one GPU id, opens its device, trains there, checks itself against the
//! CPU reference, and shares its weights as a GPU object that a second GPU
//! actor copies device to device and the driver copies to the host.
//!
//! Run it with `cargo run --release --example gpu_actor`.

use ferry::Error;
use ferry::gpu::softmax::{CpuModel, GpuModel, SyntheticData};
use ferry::gpu::{DeviceBytes, GpuObject, SharedBuffer};

const SAMPLES: usize = 4096;
const FEATURES: usize = 16;
const CLASSES: usize = 4;
const LR: f32 = 0.5;

fn data() -> SyntheticData {
    SyntheticData::new(SAMPLES, FEATURES, CLASSES, 42).expect("valid shape")
}

enum Model {
    Gpu(Box<GpuModel>),
    Cpu(CpuModel),
}

/// The tutorial's network, as a softmax regression.
#[ferry::actor]
struct NeuralNetOnGPU {
    gpu_ids: Vec<u32>,
    data: SyntheticData,
    model: Model,
    /// The weights, shared with other actors once exported.
    shared: Option<SharedBuffer>,
}

#[ferry::actor]
impl NeuralNetOnGPU {
    fn new() -> Self {
        // Ray: os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ray.get_gpu_ids())
        let gpu_ids = ferry::gpu_ids();
        let data = data();
        let model = match ferry::gpu::device() {
            Ok(device) => Model::Gpu(Box::new(
                GpuModel::new(&device, &data).expect("model on the GPU"),
            )),
            Err(_) => Model::Cpu(CpuModel::new(FEATURES, CLASSES).expect("model")),
        };
        NeuralNetOnGPU {
            gpu_ids,
            data,
            model,
            shared: None,
        }
    }

    fn gpu_ids(&self) -> Vec<u32> {
        self.gpu_ids.clone()
    }

    fn on_gpu(&self) -> bool {
        matches!(self.model, Model::Gpu(_))
    }

    /// `num_steps` of gradient descent; the loss after each.
    fn train(&mut self, num_steps: u32) -> Result<Vec<f32>, String> {
        (0..num_steps)
            .map(|_| match &mut self.model {
                Model::Gpu(m) => m.step(LR).map_err(|e| e.to_string()),
                Model::Cpu(m) => m.step(&self.data, LR).map_err(|e| e.to_string()),
            })
            .collect()
    }

    fn get_accuracy(&self) -> Result<f32, String> {
        let cpu = match &self.model {
            Model::Gpu(m) => m.to_cpu().map_err(|e| e.to_string())?,
            Model::Cpu(m) => m.clone(),
        };
        cpu.accuracy(&self.data).map_err(|e| e.to_string())
    }

    fn weights(&self) -> Result<Vec<f32>, String> {
        match &self.model {
            Model::Gpu(m) => m.weights().map_err(|e| e.to_string()),
            Model::Cpu(m) => Ok(m.weights().to_vec()),
        }
    }

    /// The weights as a GPU object (a copy on the device, kept by this
    /// actor while others read it).
    fn share_weights(&mut self) -> Result<GpuObject, String> {
        let Model::Gpu(m) = &self.model else {
            return Err("the model is on the CPU".into());
        };
        let host = m.weights().map_err(|e| e.to_string())?;
        let buf = DeviceBytes::from_host_f32(m.device(), &host).map_err(|e| e.to_string())?;
        let shared = SharedBuffer::new(buf).map_err(|e| e.to_string())?;
        let object = shared.object();
        self.shared = Some(shared);
        Ok(object)
    }
}

/// A second GPU actor that takes the weights device to device.
#[ferry::actor]
struct Evaluator;

#[ferry::actor]
impl Evaluator {
    fn new() -> Self {
        Evaluator
    }

    /// Copies `weights` onto this actor's GPU (or, for an actor that asked
    /// for none, onto device `ordinal`) and back, to show what arrived.
    fn receive(&self, weights: GpuObject, ordinal: Option<u32>) -> Result<Vec<f32>, String> {
        let device = match ordinal {
            Some(o) => ferry::gpu::Device::open(o as usize).map_err(|e| e.to_string())?,
            None => ferry::gpu::device().map_err(|e| e.to_string())?,
        };
        let here = weights.to_device(&device).map_err(|e| e.to_string())?;
        here.to_host_f32().map_err(|e| e.to_string())
    }
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let gpus = rt.cluster_resources().get("GPU").copied().unwrap_or(0.0);
    let created = NeuralNetOnGPU::options().num_gpus(1.0).remote(&rt);
    let nn = match created {
        Err(e @ Error::Infeasible { .. }) if gpus == 0.0 => {
            assert!(matches!(&e, Error::Infeasible { resource, .. } if resource == "GPU"));
            println!("NeuralNetOnGPU with num_gpus=1: {e}");
            println!("skipped the GPU: no GPU on this machine; training on the CPU instead");
            NeuralNetOnGPU::remote(&rt)?
        }
        Ok(nn) => {
            let ids = rt.get_value(&nn.gpu_ids().remote()?)?;
            println!("{gpus} GPU(s); the actor was given GPU ids {ids:?}");
            assert_eq!(ids.len(), 1, "num_gpus=1 should give exactly one GPU id");
            nn
        }
        Err(e) => return Err(e),
    };
    let on_gpu = rt.get_value(&nn.on_gpu().remote()?)?;
    if gpus > 0.0 && !on_gpu {
        println!("a GPU was given but could not be opened (no CUDA driver?): training on the CPU");
    }
    // nn.train.remote(100); ray.get(nn.get_accuracy.remote())
    let losses = rt.get_value(&nn.train(100).remote()?)?;
    let accuracy = rt.get_value(&nn.get_accuracy().remote()?)?;
    println!(
        "loss {:.4} -> {:.4}, accuracy {:.1}% on {}",
        losses[0],
        losses[losses.len() - 1],
        100.0 * accuracy,
        if on_gpu { "the GPU" } else { "the CPU" }
    );
    assert!(losses[losses.len() - 1] < losses[0] * 0.5, "{losses:?}");
    assert!(accuracy > 0.9, "accuracy {accuracy}");

    // The same steps on the CPU reference give the same model.
    let mut reference = CpuModel::new(FEATURES, CLASSES).expect("model");
    let data = data();
    let ref_losses: Vec<f32> = (0..100)
        .map(|_| reference.step(&data, LR).expect("step"))
        .collect();
    let last = ref_losses[ref_losses.len() - 1];
    let rel = (losses[losses.len() - 1] - last).abs() / last.abs().max(1e-6);
    assert!(
        rel < 1e-3,
        "actor loss {} vs CPU reference {last}",
        losses[99]
    );

    if !on_gpu {
        println!("skipped GPU objects: no GPU");
        return Ok(());
    }
    let weights = rt.get_value(&nn.weights().remote()?)?;
    let object = rt.get_value(&nn.share_weights().remote()?)?;
    // A CPU consumer: a host copy.
    let host: Vec<f32> = object
        .to_host()?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(host, weights);
    // A GPU consumer: device to device.
    if gpus >= 2.0 {
        let eval = Evaluator::options().num_gpus(1.0).remote(&rt)?;
        let got = rt.get_value(&eval.receive(object, None).remote()?)?;
        assert_eq!(got, weights);
        println!("weights moved device to device to a second GPU actor");
    } else {
        // One GPU, held whole by the trainer: a second actor that asks for
        // none opens the trainer's device itself (a fractional request would
        // wait for the trainer to let go).
        let ids = rt.get_value(&nn.gpu_ids().remote()?)?;
        let eval = Evaluator::remote(&rt)?;
        let got = rt.get_value(&eval.receive(object, Some(ids[0])).remote()?)?;
        assert_eq!(got, weights);
        println!("weights moved device to device to a second actor on the same GPU");
    }
    Ok(())
}
