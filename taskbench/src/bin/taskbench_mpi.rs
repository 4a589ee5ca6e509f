//! `taskbench-mpi`: Task Bench over plain MPI (rsmpi), the baseline Ferry's
//! own Task Bench implementation is measured against. It follows Task
//! Bench's MPI "nonblocking" implementation.
//!
//! Usage: `mpirun -n N taskbench-mpi [-steps N] [-width N] [-type NAME]
//! [-kernel NAME] [-iter N] [-output N] [-radix N] [-period N] [-fraction F]`
//! (Task Bench's flags; see `TaskGraph::from_flags`). Rank 0 prints Task
//! Bench's summary lines (`ferry_taskbench::report::summary`). Exit status:
//! 0 on success, 2 on bad flags, 1 when a task is handed a wrong input (with
//! more than one rank, through `MPI_Abort`).
//!
//! For tests, `FERRY_TASKBENCH_CORRUPT=T,P` flips the last byte of task
//! `(T, P)`'s output after it runs, so that its readers must catch it.
//!
//! # Protocol
//!
//! 1. **Ownership.** The points are block-distributed: rank `r` of `R` owns
//!    points `r * width / R .. (r + 1) * width / R`, for every step (a rank
//!    may own none when `R > width`).
//! 2. **Step 0.** Every rank runs its active points of step 0.
//! 3. **Step `t ≥ 1`.** Each rank
//!    1. posts one `MPI_Irecv` per (dependency, consumer) pair whose
//!       consumer `(t, c)` it owns and whose producer `(t - 1, q)` another
//!       rank owns, into its own buffer;
//!    2. posts one `MPI_Isend` of each of its step-`t - 1` outputs to the
//!       owner of each reverse dependency on another rank (dependencies on
//!       the same rank are read in place, from memory);
//!    3. waits for all of them (`MPI_Waitall`);
//!    4. runs each of its active points with `TaskGraph::execute_point`,
//!       which checks that every input is the right producer's output.
//! 4. **Timing.** A barrier, `MPI_Wtime`, the steps, a barrier, `MPI_Wtime`;
//!    the slowest rank's time is reduced to rank 0, which prints it.
//!
//! **Tags.** A message's tag is the consumer's offset within its owner's
//! block (so blocks may hold at most 32768 points, MPI's smallest allowed
//! tag bound). Messages between two ranks for the same consumer share a tag;
//! they are told apart by order: the sender posts them by increasing
//! producer, the receiver posts its receives by increasing producer, and
//! MPI's non-overtaking rule matches them in that order. A step's messages
//! never match a receive of an earlier step, since every step's receives
//! are posted before its wait and every step's sends come after the
//! previous step's.

use std::ops::Range;
use std::process::ExitCode;

use ferry_taskbench::{TaskGraph, report};
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Destination, Root, Source};

/// MPI guarantees tags up to at least this; a message's tag is the
/// consumer's offset in its block, so blocks are at most this plus one.
const MAX_TAG: usize = 32767;

const USAGE: &str = "usage: mpirun -n N taskbench-mpi [-steps N] [-width N] [-type NAME] \
                     [-kernel NAME] [-iter N] [-output N] [-radix N] [-period N] [-fraction F]";

/// The block distribution of `width` points over `ranks` ranks.
#[derive(Debug, Clone, Copy)]
struct Blocks {
    width: usize,
    ranks: usize,
}

impl Blocks {
    /// The first point rank `r` owns.
    fn first(self, r: usize) -> usize {
        r * self.width / self.ranks
    }

    /// The points rank `r` owns.
    fn range(self, r: usize) -> Range<usize> {
        self.first(r)..self.first(r + 1)
    }

    /// The rank owning point `p`: the largest `r` with `first(r) <= p`.
    fn owner(self, p: usize) -> usize {
        ((p + 1) * self.ranks - 1) / self.width
    }

    /// The most points any rank owns.
    fn largest(self) -> usize {
        self.width.div_ceil(self.ranks)
    }
}

/// Where input `i` of a local task comes from.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// The previous step's output of the local point at this offset.
    Local(usize),
    /// The receive buffer with this index.
    Remote(usize),
}

/// One step's messages and inputs for one rank, rebuilt every step (the
/// buffers are reused).
#[derive(Default)]
struct Plan {
    /// `(source rank, tag)` of each receive, in posting order.
    recvs: Vec<(i32, i32)>,
    /// `(destination rank, tag, local offset of the producer)` of each send.
    sends: Vec<(i32, i32, usize)>,
    /// `(consumer point, range in inputs)` of each local active task.
    tasks: Vec<(usize, Range<usize>)>,
    /// Every local task's inputs, in dependency order, back to back.
    inputs: Vec<Input>,
}

impl Plan {
    /// The plan of step `t >= 1` on rank `me`.
    fn build(&mut self, g: &TaskGraph, blocks: Blocks, me: usize, t: usize) {
        self.recvs.clear();
        self.sends.clear();
        self.tasks.clear();
        self.inputs.clear();
        let mine = blocks.range(me);
        let first = mine.start;
        let active = |t: usize| {
            let a = g.active_points(t);
            a.start.max(mine.start)..a.end.min(mine.end)
        };
        for q in active(t - 1) {
            for c in g.reverse_dependencies(t - 1, q) {
                let owner = blocks.owner(c);
                if owner != me {
                    let tag = c - blocks.first(owner);
                    self.sends.push((owner as i32, tag as i32, q - first));
                }
            }
        }
        let mut remote = Vec::new();
        for c in active(t) {
            let start = self.inputs.len();
            remote.clear();
            for q in g.dependencies(t, c) {
                let owner = blocks.owner(q);
                if owner == me {
                    self.inputs.push(Input::Local(q - first));
                } else {
                    // Filled in below, once the receives are ordered.
                    remote.push((q, owner, self.inputs.len()));
                    self.inputs.push(Input::Remote(0));
                }
            }
            // Post by increasing producer, as the senders send.
            remote.sort_unstable();
            for &(_, owner, slot) in &remote {
                self.inputs[slot] = Input::Remote(self.recvs.len());
                self.recvs.push((owner as i32, (c - first) as i32));
            }
            self.tasks.push((c, start..self.inputs.len()));
        }
    }
}

/// Prints `what` and ends the whole job with status 1.
fn fail(world: &SimpleCommunicator, what: impl std::fmt::Display) -> ! {
    eprintln!("taskbench-mpi rank {}: {what}", world.rank());
    if world.size() > 1 {
        world.abort(1)
    }
    std::process::exit(1)
}

/// A zeroed buffer of `count` outputs of `ob` bytes each, or the job ends
/// saying why (too large to address or to allocate) instead of panicking.
// `vec![0; n]` would abort on a failed allocation; reserving first lets a
// too-large graph be reported.
#[allow(clippy::slow_vector_initialization)]
fn outputs(world: &SimpleCommunicator, count: usize, ob: usize) -> Vec<u8> {
    let mut v = Vec::new();
    match count.checked_mul(ob) {
        Some(n) if v.try_reserve_exact(n).is_ok() => {
            v.resize(n, 0);
            v
        }
        _ => fail(
            world,
            format!("cannot allocate {count} outputs of {ob} bytes"),
        ),
    }
}

/// The task whose output `FERRY_TASKBENCH_CORRUPT=T,P` asks to damage.
fn corrupt_point() -> Option<(usize, usize)> {
    let v = std::env::var("FERRY_TASKBENCH_CORRUPT").ok()?;
    let (t, p) = v.split_once(',')?;
    Some((t.trim().parse().ok()?, p.trim().parse().ok()?))
}

/// Runs every step of `g` on this rank.
fn run(world: &SimpleCommunicator, g: &TaskGraph, blocks: Blocks) {
    let corrupt = corrupt_point();
    let me = world.rank() as usize;
    let ob = g.output_bytes;
    let mine = blocks.range(me);
    let mut prev = outputs(world, mine.len(), ob);
    let mut cur = outputs(world, mine.len(), ob);
    let mut received: Vec<u8> = Vec::new();
    let mut scratch: Vec<u8> = Vec::new();
    let mut plan = Plan::default();

    for p in g.active_points(0) {
        if mine.contains(&p) {
            let i = p - mine.start;
            if let Err(e) = g.execute_point(0, p, &[], &mut cur[i * ob..(i + 1) * ob], &mut scratch)
            {
                fail(world, e);
            }
        }
    }
    for t in 1..g.steps {
        std::mem::swap(&mut prev, &mut cur);
        plan.build(g, blocks, me, t);
        if received.len() < plan.recvs.len().saturating_mul(ob) {
            received = outputs(world, plan.recvs.len(), ob);
        }
        let n = plan.recvs.len() + plan.sends.len();
        mpi::request::multiple_scope(n, |scope, requests| {
            for (buf, &(src, tag)) in received.chunks_exact_mut(ob).zip(&plan.recvs) {
                let req = world
                    .process_at_rank(src)
                    .immediate_receive_into_with_tag(scope, buf, tag);
                requests.add(req);
            }
            for &(dest, tag, i) in &plan.sends {
                let req = world.process_at_rank(dest).immediate_send_with_tag(
                    scope,
                    &prev[i * ob..(i + 1) * ob],
                    tag,
                );
                requests.add(req);
            }
            let mut done = Vec::with_capacity(n);
            requests.wait_all(&mut done);
        });
        let mut inputs: Vec<&[u8]> = Vec::new();
        for (c, range) in &plan.tasks {
            inputs.clear();
            inputs.extend(plan.inputs[range.clone()].iter().map(|&input| match input {
                Input::Local(i) => &prev[i * ob..(i + 1) * ob],
                Input::Remote(k) => &received[k * ob..(k + 1) * ob],
            }));
            let i = c - mine.start;
            let out = &mut cur[i * ob..(i + 1) * ob];
            if let Err(e) = g.execute_point(t, *c, &inputs, out, &mut scratch) {
                fail(world, e);
            }
            if corrupt == Some((t, *c)) {
                out[ob - 1] ^= 0xFF;
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(universe) = mpi::initialize() else {
        eprintln!("taskbench-mpi: MPI is already initialized");
        return ExitCode::from(1);
    };
    let world = universe.world();
    let (me, ranks) = (world.rank(), world.size() as usize);
    let graph = match TaskGraph::from_flags(&args) {
        Ok(g) => g,
        Err(e) => {
            if me == 0 {
                eprintln!("taskbench-mpi: {e}\n{USAGE}");
            }
            return ExitCode::from(2);
        }
    };
    let blocks = Blocks {
        width: graph.width,
        ranks,
    };
    if blocks.largest() > MAX_TAG + 1 {
        if me == 0 {
            eprintln!(
                "taskbench-mpi: -width {} over {ranks} ranks gives blocks of {} points; \
                 at most {} per rank are supported (MPI's smallest tag bound)",
                graph.width,
                blocks.largest(),
                MAX_TAG + 1
            );
        }
        return ExitCode::from(2);
    }

    world.barrier();
    let start = mpi::time();
    run(&world, &graph, blocks);
    world.barrier();
    let elapsed = mpi::time() - start;

    let root = world.process_at_rank(0);
    if me == 0 {
        let mut slowest = 0.0f64;
        root.reduce_into_root(&elapsed, &mut slowest, SystemOperation::max());
        let elapsed = std::time::Duration::from_secs_f64(slowest.max(0.0));
        print!("{}", report::summary(&graph, elapsed));
    } else {
        root.reduce_into(&elapsed, SystemOperation::max());
    }
    ExitCode::SUCCESS
}
