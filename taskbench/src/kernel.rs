//! What a task computes.

use std::fmt;
use std::hint::black_box;

/// The kind of work a task does (`-kernel NAME`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub enum KernelType {
    /// Nothing: measures pure runtime overhead.
    #[default]
    Empty,
    /// Spins `iterations` times without touching memory.
    BusyWait,
    /// `iterations` rounds of a multiply-add on 64 doubles held in registers.
    ComputeBound,
    /// `iterations` passes over a caller-supplied scratch buffer.
    MemoryBound,
}

impl KernelType {
    /// Every kernel type.
    pub const ALL: [KernelType; 4] = [
        KernelType::Empty,
        KernelType::BusyWait,
        KernelType::ComputeBound,
        KernelType::MemoryBound,
    ];

    /// The name Task Bench's `-kernel` flag uses.
    pub fn name(self) -> &'static str {
        match self {
            KernelType::Empty => "empty",
            KernelType::BusyWait => "busy_wait",
            KernelType::ComputeBound => "compute_bound",
            KernelType::MemoryBound => "memory_bound",
        }
    }

    /// The kernel named `name` (as in `-kernel NAME`), if there is one.
    pub fn from_name(name: &str) -> Option<KernelType> {
        KernelType::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for KernelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A task's kernel: its type and size.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Kernel {
    /// What the task does.
    pub kind: KernelType,
    /// How much of it (`-iter N`).
    pub iterations: u64,
}

/// Lanes of the compute-bound kernel.
const LANES: usize = 64;

impl Kernel {
    /// FLOPs one task does, counted as Task Bench counts them: `2 * 64 *
    /// iterations + 64` for compute_bound, 0 for the others.
    pub fn flops_per_task(&self) -> u64 {
        match self.kind {
            KernelType::ComputeBound => 2 * LANES as u64 * self.iterations + LANES as u64,
            _ => 0,
        }
    }

    /// Runs the kernel once. `scratch` is only used by memory_bound (which
    /// does nothing on an empty buffer); the others ignore it.
    pub fn execute(&self, scratch: &mut [u8]) {
        match self.kind {
            KernelType::Empty => {}
            KernelType::BusyWait => {
                for _ in 0..self.iterations {
                    std::hint::spin_loop();
                }
            }
            KernelType::ComputeBound => {
                let mut a = [1.0f64; LANES];
                let b = black_box(0.999_999f64);
                let c = black_box(1e-6f64);
                for _ in 0..self.iterations {
                    for x in a.iter_mut() {
                        *x = *x * b + c;
                    }
                }
                // The final reduction is Task Bench's extra 64 FLOPs.
                black_box(a.iter().sum::<f64>());
            }
            KernelType::MemoryBound => {
                if scratch.is_empty() {
                    return;
                }
                let half = scratch.len() / 2;
                for i in 0..self.iterations {
                    let (src, dst) = scratch.split_at_mut(half);
                    if i % 2 == 0 {
                        dst[..half].copy_from_slice(src);
                    } else {
                        src.copy_from_slice(&dst[..half]);
                    }
                    black_box(&mut *scratch);
                }
            }
        }
    }
}
