//! Task Bench's task graph (Slaughter et al., SC20, "Task Bench: A
//! Parameterized Benchmark for Evaluating Parallel Runtime Performance").
//!
//! A graph has `steps` rows of at most `width` points. Point `(t, p)` is one
//! task; it reads the outputs of some points of step `t - 1` (its
//! *dependencies*) and its output is read by some points of step `t + 1`
//! (its *reverse dependencies*). The [`DependenceType`] decides which; the
//! [`Kernel`] decides how much work a task does.
//!
//! This crate is only the definition, shared by Ferry's and plain MPI's
//! Task Bench implementations so that both run exactly the same graph and
//! report the same `Total Tasks` / `Total Dependencies`.
//!
//! Beside the graph: what each task writes and how its readers check it
//! ([`write_output`], [`check_input`], [`TaskGraph::execute_point`]), and
//! Task Bench's summary lines ([`report`]).
//!
//! With the `mpi` feature the crate also builds `taskbench-mpi`, Task Bench
//! over plain MPI (rsmpi): the baseline for Ferry's implementation, run by
//! `scripts/taskbench_metg.py` to compare their METG.
//!
//! ```
//! use ferry_taskbench::{DependenceType, TaskGraph};
//!
//! let g = TaskGraph::from_flags(["-steps", "3", "-width", "4", "-type", "stencil_1d"]).unwrap();
//! assert_eq!(g.dependence, DependenceType::Stencil1d);
//! assert_eq!(g.dependencies(1, 0), vec![0, 1]);
//! assert_eq!(g.reverse_dependencies(0, 3), vec![2, 3]);
//! assert_eq!(g.total_tasks(), 12);
//! assert_eq!(g.total_dependencies(), 20);
//! ```

pub mod ferry_run;
mod flags;
mod kernel;
mod payload;
pub mod report;

pub use flags::GraphError;
pub use kernel::{Kernel, KernelType};
pub use payload::{InputError, InputErrorKind, Point, check_input, write_output};

use std::fmt;

/// Which points of step `t - 1` a point of step `t` reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub enum DependenceType {
    /// No dependencies at all.
    Trivial,
    /// Each point reads only itself at the previous step.
    NoComm,
    /// Each point reads `p - 1`, `p`, `p + 1` (clipped at the edges).
    Stencil1d,
    /// As [`Stencil1d`](Self::Stencil1d), wrapping around at the edges.
    Stencil1dPeriodic,
    /// A diamond: the active width grows by one per step, then shrinks;
    /// each point reads `p - 1` and `p`.
    Dom,
    /// A binary tree that fans out: step `t` has `2^t` points (up to the
    /// width); each point reads its parent `p / 2`.
    Tree,
    /// Butterfly: at stage `k` a point reads `p - 2^k`, `p`, `p + 2^k`.
    Fft,
    /// Every point reads every point.
    AllToAll,
    /// Each point reads the `radix` points around it (clipped at the edges).
    Nearest,
    /// Each point reads `radix` points spread evenly over the width, shifted
    /// by the step's dependence set.
    Spread,
    /// As [`Nearest`](Self::Nearest), but each neighbour other than the
    /// point itself is kept only with probability `fraction_connected`,
    /// decided by a deterministic hash.
    RandomNearest,
}

impl DependenceType {
    /// Every dependence type, in Task Bench's order.
    pub const ALL: [DependenceType; 11] = [
        DependenceType::Trivial,
        DependenceType::NoComm,
        DependenceType::Stencil1d,
        DependenceType::Stencil1dPeriodic,
        DependenceType::Dom,
        DependenceType::Tree,
        DependenceType::Fft,
        DependenceType::AllToAll,
        DependenceType::Nearest,
        DependenceType::Spread,
        DependenceType::RandomNearest,
    ];

    /// The name Task Bench's `-type` flag uses.
    pub fn name(self) -> &'static str {
        match self {
            DependenceType::Trivial => "trivial",
            DependenceType::NoComm => "no_comm",
            DependenceType::Stencil1d => "stencil_1d",
            DependenceType::Stencil1dPeriodic => "stencil_1d_periodic",
            DependenceType::Dom => "dom",
            DependenceType::Tree => "tree",
            DependenceType::Fft => "fft",
            DependenceType::AllToAll => "all_to_all",
            DependenceType::Nearest => "nearest",
            DependenceType::Spread => "spread",
            DependenceType::RandomNearest => "random_nearest",
        }
    }

    /// The type named `name` (as in `-type NAME`), if there is one.
    pub fn from_name(name: &str) -> Option<DependenceType> {
        DependenceType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Whether the pattern changes from step to step with `-period`.
    pub fn needs_period(self) -> bool {
        matches!(self, DependenceType::Spread | DependenceType::RandomNearest)
    }

    /// Whether `-radix` shapes the pattern.
    pub fn uses_radix(self) -> bool {
        matches!(
            self,
            DependenceType::Nearest | DependenceType::Spread | DependenceType::RandomNearest
        )
    }
}

impl fmt::Display for DependenceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One Task Bench task graph.
///
/// Build one with [`TaskGraph::new`] (Task Bench's defaults) and set fields,
/// or with [`TaskGraph::from_flags`]; [`TaskGraph::validate`] says whether
/// the fields make a well-formed graph. The point functions assume a valid
/// graph.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TaskGraph {
    /// Number of time steps (rows), `-steps`.
    pub steps: usize,
    /// Maximum number of points in a step, `-width`.
    pub width: usize,
    /// The dependence pattern, `-type`.
    pub dependence: DependenceType,
    /// Neighbourhood size for nearest, spread and random_nearest, `-radix`.
    pub radix: usize,
    /// Number of distinct dependence sets for spread and random_nearest
    /// (`-period`); 0 for the other types.
    pub period: usize,
    /// Probability that random_nearest keeps a neighbour, `-fraction`.
    pub fraction_connected: f64,
    /// What each task computes, `-kernel` and `-iter`.
    pub kernel: Kernel,
    /// Bytes each task outputs (at least 16), `-output`.
    pub output_bytes: usize,
}

/// The smallest output a task may have: Task Bench writes `(t, p)` as two
/// 64-bit integers into it so that readers can check their inputs.
pub const MIN_OUTPUT_BYTES: usize = 16;

/// The period Task Bench gives spread and random_nearest when `-period` is
/// not passed.
pub const DEFAULT_PERIOD: usize = 3;

impl Default for TaskGraph {
    fn default() -> Self {
        TaskGraph::new(4, 4, DependenceType::Trivial)
    }
}

impl TaskGraph {
    /// A graph with Task Bench's defaults for everything else: radix 3,
    /// period 3 where the type needs one (0 otherwise), fraction 0.25, the
    /// empty kernel and 16-byte outputs.
    pub fn new(steps: usize, width: usize, dependence: DependenceType) -> TaskGraph {
        TaskGraph {
            steps,
            width,
            dependence,
            radix: 3,
            period: if dependence.needs_period() {
                DEFAULT_PERIOD
            } else {
                0
            },
            fraction_connected: 0.25,
            kernel: Kernel::default(),
            output_bytes: MIN_OUTPUT_BYTES,
        }
    }

    /// The first active point of step `t` (0 for `t` outside the graph).
    pub fn offset_at_timestep(&self, t: usize) -> usize {
        if t >= self.steps {
            return 0;
        }
        match self.dependence {
            DependenceType::Dom => (t + self.width).saturating_sub(self.steps),
            _ => 0,
        }
    }

    /// How many points step `t` has (0 for `t` outside the graph). Only dom
    /// (grows by one per step, then shrinks) and tree (doubles per step)
    /// have fewer than `width`.
    pub fn width_at_timestep(&self, t: usize) -> usize {
        if t >= self.steps {
            return 0;
        }
        match self.dependence {
            DependenceType::Dom => self.width.min(t + 1).min(self.steps - t),
            DependenceType::Tree => {
                if t >= usize::BITS as usize - 1 {
                    self.width
                } else {
                    self.width.min(1usize << t)
                }
            }
            _ => self.width,
        }
    }

    /// The active points of step `t`, as a range.
    pub fn active_points(&self, t: usize) -> std::ops::Range<usize> {
        let offset = self.offset_at_timestep(t);
        offset..offset + self.width_at_timestep(t)
    }

    /// How many different dependence sets the pattern cycles through: the
    /// number of butterfly stages `ceil(log2(width))` (at least 1) for fft,
    /// `period` for spread and random_nearest, 1 otherwise.
    pub fn max_dependence_sets(&self) -> usize {
        match self.dependence {
            DependenceType::Fft => {
                (self.width.next_power_of_two().trailing_zeros() as usize).max(1)
            }
            DependenceType::Spread | DependenceType::RandomNearest => self.period.max(1),
            _ => 1,
        }
    }

    /// After how many steps the dependence pattern repeats (the same as
    /// [`max_dependence_sets`](Self::max_dependence_sets)).
    pub fn timestep_period(&self) -> usize {
        self.max_dependence_sets()
    }

    /// Which dependence set step `t` uses. Fft starts its stages at step 1
    /// (step 1 uses stage 0, distance 1); spread and random_nearest use
    /// `t % period`.
    pub fn dependence_set_at_timestep(&self, t: usize) -> usize {
        let sets = self.max_dependence_sets();
        match self.dependence {
            DependenceType::Fft => (t + sets - 1) % sets,
            DependenceType::Spread | DependenceType::RandomNearest => t % sets,
            _ => 0,
        }
    }

    /// The points of step `t - 1` that point `(t, p)` reads, in the order
    /// its inputs are numbered. Empty for step 0, for steps outside the
    /// graph and for points not active at `t`. Every point returned is
    /// active at `t - 1` and appears once.
    pub fn dependencies(&self, t: usize, p: usize) -> Vec<usize> {
        if t == 0 || !self.active_points(t).contains(&p) {
            return Vec::new();
        }
        let prev = self.active_points(t - 1);
        let dset = self.dependence_set_at_timestep(t);
        let mut out = Vec::new();
        for (lo, hi) in self.raw_dependencies(dset, p) {
            out.extend((lo..=hi).filter(|q| prev.contains(q)));
        }
        out
    }

    /// The points of step `t + 1` that read point `(t, p)`'s output, in
    /// increasing order except where a pattern wraps around. Empty for the
    /// last step and for points not active at `t`.
    pub fn reverse_dependencies(&self, t: usize, p: usize) -> Vec<usize> {
        if t + 1 >= self.steps || !self.active_points(t).contains(&p) {
            return Vec::new();
        }
        let next = self.active_points(t + 1);
        let dset = self.dependence_set_at_timestep(t + 1);
        let mut out = Vec::new();
        for (lo, hi) in self.raw_reverse_dependencies(dset, p) {
            out.extend((lo..=hi).filter(|q| next.contains(q)));
        }
        out
    }

    /// Number of tasks in the graph (Task Bench's `Total Tasks`).
    pub fn total_tasks(&self) -> u64 {
        (0..self.steps)
            .map(|t| self.width_at_timestep(t) as u64)
            .sum()
    }

    /// Number of edges in the graph, each input of each task counted once
    /// (Task Bench's `Total Dependencies`).
    pub fn total_dependencies(&self) -> u64 {
        (1..self.steps)
            .map(|t| {
                self.active_points(t)
                    .map(|p| self.dependencies(t, p).len() as u64)
                    .sum::<u64>()
            })
            .sum()
    }

    /// FLOPs the kernel of every task does together (Task Bench's `Total
    /// FLOPs`).
    pub fn total_flops(&self) -> u64 {
        self.total_tasks() * self.kernel.flops_per_task()
    }

    /// Inclusive ranges of points point `p` reads under dependence set
    /// `dset`, before clipping to the previous step's active points.
    fn raw_dependencies(&self, dset: usize, p: usize) -> Vec<(usize, usize)> {
        let w = self.width;
        let last = w - 1;
        let r = self.radix;
        match self.dependence {
            DependenceType::Trivial => Vec::new(),
            DependenceType::NoComm => vec![(p, p)],
            DependenceType::Stencil1d => vec![(p.saturating_sub(1), (p + 1).min(last))],
            DependenceType::Stencil1dPeriodic => self.periodic_neighbours(p),
            DependenceType::Dom => vec![(p.saturating_sub(1), p)],
            DependenceType::Tree => vec![(p / 2, p / 2)],
            DependenceType::Fft => self.butterfly(dset, p),
            DependenceType::AllToAll => vec![(0, last)],
            DependenceType::Nearest => {
                if r == 0 {
                    Vec::new()
                } else {
                    vec![(p.saturating_sub(r / 2), (p + (r - 1) / 2).min(last))]
                }
            }
            DependenceType::Spread => (0..r)
                .map(|i| {
                    let q = (p + self.spread_shift(i, dset)) % w;
                    (q, q)
                })
                .collect(),
            DependenceType::RandomNearest => {
                if r == 0 {
                    return Vec::new();
                }
                let lo = p.saturating_sub(r / 2);
                let hi = (p + (r - 1) / 2).min(last);
                self.random_runs(lo, hi, |q| self.keeps(dset, q, p) || q == p)
            }
        }
    }

    /// Inclusive ranges of points reading point `p` under dependence set
    /// `dset`, before clipping to the next step's active points: the mirror
    /// image of [`raw_dependencies`](Self::raw_dependencies).
    fn raw_reverse_dependencies(&self, dset: usize, p: usize) -> Vec<(usize, usize)> {
        let w = self.width;
        let last = w - 1;
        let r = self.radix;
        match self.dependence {
            DependenceType::Trivial => Vec::new(),
            DependenceType::NoComm => vec![(p, p)],
            DependenceType::Stencil1d => vec![(p.saturating_sub(1), (p + 1).min(last))],
            DependenceType::Stencil1dPeriodic => self.periodic_neighbours(p),
            DependenceType::Dom => vec![(p, (p + 1).min(last))],
            DependenceType::Tree => {
                let first = 2 * p;
                if first > last {
                    Vec::new()
                } else {
                    vec![(first, (first + 1).min(last))]
                }
            }
            DependenceType::Fft => self.butterfly(dset, p),
            DependenceType::AllToAll => vec![(0, last)],
            DependenceType::Nearest => {
                if r == 0 {
                    Vec::new()
                } else {
                    vec![(p.saturating_sub((r - 1) / 2), (p + r / 2).min(last))]
                }
            }
            DependenceType::Spread => (0..r)
                .map(|i| {
                    let shift = self.spread_shift(i, dset) % w;
                    let q = (p + w - shift) % w;
                    (q, q)
                })
                .collect(),
            DependenceType::RandomNearest => {
                if r == 0 {
                    return Vec::new();
                }
                let lo = p.saturating_sub((r - 1) / 2);
                let hi = (p + r / 2).min(last);
                self.random_runs(lo, hi, |q| self.keeps(dset, p, q) || q == p)
            }
        }
    }

    /// `p - 1`, `p`, `p + 1` modulo the width, each once (for widths 1 and
    /// 2 the wrapped neighbours are already in the plain range).
    fn periodic_neighbours(&self, p: usize) -> Vec<(usize, usize)> {
        let last = self.width - 1;
        let mut out = vec![(p.saturating_sub(1), (p + 1).min(last))];
        if p == 0 && last > 1 {
            out.push((last, last));
        }
        if p == last && last > 1 {
            out.push((0, 0));
        }
        out
    }

    /// `p - 2^dset`, `p`, `p + 2^dset`, those inside the width.
    fn butterfly(&self, dset: usize, p: usize) -> Vec<(usize, usize)> {
        let d = 1usize.checked_shl(dset as u32).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(3);
        if let Some(q) = p.checked_sub(d) {
            out.push((q, q));
        }
        out.push((p, p));
        if let Some(q) = p.checked_add(d).filter(|&q| q < self.width) {
            out.push((q, q));
        }
        out
    }

    /// How far spread's `i`-th dependency is from the point: `i` evenly
    /// spaced strides over the width, the non-zero ones shifted by `dset`.
    fn spread_shift(&self, i: usize, dset: usize) -> usize {
        i * self.width / self.radix + if i > 0 { dset } else { 0 }
    }

    /// Whether random_nearest keeps the edge from `producer` to `consumer`
    /// under dependence set `dset`.
    fn keeps(&self, dset: usize, producer: usize, consumer: usize) -> bool {
        uniform_hash(&[
            self.radix as u64,
            dset as u64,
            producer as u64,
            consumer as u64,
        ]) < self.fraction_connected
    }

    /// The points of `lo..=hi` that `keep` accepts, as maximal runs.
    fn random_runs(
        &self,
        lo: usize,
        hi: usize,
        keep: impl Fn(usize) -> bool,
    ) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = None;
        for q in lo..=hi {
            match (keep(q), start) {
                (true, None) => start = Some(q),
                (false, Some(s)) => {
                    out.push((s, q - 1));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push((s, hi));
        }
        out
    }
}

/// A deterministic value in `[0, 1)` from a few integers (SplitMix64 steps
/// over the words). random_nearest decides its edges with this, so its
/// graphs and counts are the same on every rank and every run and match
/// the definition in this crate — not necessarily Task Bench's C++ code
/// bit for bit, which uses a different hash.
fn uniform_hash(words: &[u64]) -> f64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let mut h = 0x5441_534B_4245_4E43; // "TASKBENC"
    for &w in words {
        h = mix(h ^ w);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}
