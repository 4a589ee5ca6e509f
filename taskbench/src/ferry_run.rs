//! Task Bench on Ferry: every point `(t, p)` of the graph is one remote
//! task, as in Task Bench's Ray implementation, which passes a point's
//! dependencies as top-level refs (`f.remote(*deps)`). Each rank submits
//! its own points (control replication, as Legion and Realm run Task
//! Bench at scale): no rank sends another its tasks, and no single driver
//! sits on every step's path.
//!
//! # Protocol
//!
//! 1. **Placement.** Point `p` runs on rank [`rank_of`]`(p, width, ranks)`
//!    at every step: the block distribution of `taskbench-mpi`, so both
//!    implementations move the same bytes between the same ranks.
//! 2. **Shards.** The driver (the caller, rank 0 under `mpirun`) starts a
//!    `Shard` actor on every other rank (an actor holds no CPU, as the
//!    driver holds none), waits until each is up, starts the clock, asks
//!    each to run its part and runs rank 0's part itself. Every rank walks
//!    the whole graph and submits the points it owns, step 0, then step 1,
//!    … without waiting. Point `(t, p)` gets the refs of its dependencies'
//!    outputs at step `t - 1` as one `Vec<View<Vec<u8>>>` parameter, so it
//!    runs only when all of them are ready and reads them without a copy.
//! 3. **Exchange.** An output that points of other ranks read is sent to
//!    each of those ranks once (`Runtime::send_to`, tagged with the run
//!    and the point) as soon as it is made, by the thread that made it; the
//!    reading rank takes it with `Runtime::receive_from` under the same
//!    tag, a ref its tasks depend on like any other. Both sides walk the
//!    steps in order, so the `n`-th send of a point's output is the `n`-th
//!    receive of it: one message per edge between ranks, as in MPI.
//! 4. **Execution.** A task calls [`TaskGraph::execute_point`], which checks
//!    that every input is the right producer's output, runs the kernel and
//!    writes its own output; a wrong input is the task's error, which fails
//!    every task that reads its output in turn, across ranks too.
//! 5. **Completion.** An output no later task reads (every output of the
//!    last step, and, for some types, outputs of earlier steps: a *sink*)
//!    is fetched and checked by the rank that made it; every other task is
//!    known to have succeeded once a reader has. So when every sink is
//!    fetched, every task has run and every input was checked. Sinks are
//!    fetched at the end, or earlier once more than [`SINK_WINDOW`] wait, to
//!    bound memory. A rank whose check fails goes on to the end (every send
//!    and receive of the run still happens) and then reports it; the driver
//!    reports the first failure of rank 0's, then of rank 1's, and so on
//!    (another rank's as [`RunError::Rank`]).
//! 6. **Pacing.** Each rank lets at most [`steps_ahead`] of its steps be
//!    submitted and not known to be done: past that, it waits (`rt.wait`)
//!    until all but a quarter of them are, then goes on (Ray's pattern for
//!    limiting pending tasks). Without it, a driver that submits faster than
//!    the tasks run holds the whole graph pending at once: on the 2-core VM,
//!    20,000 steps of a 2-wide stencil on 2 ranks grew rank 0 to 53 MB and
//!    ~10,000 more page faults than with pacing (14 MB), and 10,000 steps
//!    took 77 ms against 61 ms paced (medians of 5; a single driver then).
//!    Every [`LIVENESS_TICK`] of its waits, rank 0 checks that no other
//!    rank's part has stopped early (a refused submission there), which
//!    would leave the others waiting for outputs that never come; when one
//!    has, or rank 0's own part stops early, rank 0 sends every other rank
//!    the run's end (`send_to`, one tag past the points'), which each
//!    checks in its own waits, and stops. It sends it at a run's normal
//!    end too, where no one waits for it any more.
//! 7. **Timing.** From just before the shards are asked to run to the end
//!    of the last one (each has checked its sinks by then).
//!
//! ```
//! use ferry_taskbench::{TaskGraph, ferry_run};
//!
//! let rt = ferry::init(ferry::Config::default().num_cpus(2.0))?;
//! let g = TaskGraph::from_flags(["-steps", "4", "-width", "3", "-type", "stencil_1d"])?;
//! let done = ferry_run::run(&rt, &g, None)?;
//! assert_eq!((done.tasks, done.dependencies), (g.total_tasks(), g.total_dependencies()));
//! # rt.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry::{ObjectRef, Runtime, View};

use crate::{GraphError, InputError, InputErrorKind, Point, TaskGraph, check_input};

/// How many unread outputs the driver lets wait before it fetches the
/// oldest (each holds `output_bytes` of its rank's store).
pub const SINK_WINDOW: usize = 4096;

/// At most this many steps are pending at once (see the module's pacing),
/// when their outputs fit [`PACING_BYTES`].
pub const MAX_STEPS_AHEAD: usize = 256;

/// The outputs that steps pending at once may hold, at most (the driver
/// keeps their refs until it knows them done).
pub const PACING_BYTES: usize = 64 << 20;

/// How many steps of `graph` the driver lets be pending at once:
/// [`MAX_STEPS_AHEAD`], fewer when their outputs would pass
/// [`PACING_BYTES`], never fewer than 8.
///
/// ```
/// use ferry_taskbench::{TaskGraph, ferry_run::steps_ahead};
///
/// let small = TaskGraph::from_flags(["-width", "4"])?;
/// assert_eq!(steps_ahead(&small), 256);
/// let big = TaskGraph::from_flags(["-width", "4", "-output", "4194304"])?;
/// assert_eq!(steps_ahead(&big), 8);
/// # Ok::<(), ferry_taskbench::GraphError>(())
/// ```
pub fn steps_ahead(graph: &TaskGraph) -> usize {
    let step_bytes = graph.width.max(1).saturating_mul(graph.output_bytes.max(1));
    (PACING_BYTES / step_bytes).clamp(8, MAX_STEPS_AHEAD)
}

/// The refs of the steps submitted and not known done, oldest first.
struct Pacing {
    steps: VecDeque<Vec<ObjectRef<Vec<u8>>>>,
    /// Lists of steps known done, emptied, for later steps: a step
    /// allocates no list of its own.
    spare: Vec<Vec<ObjectRef<Vec<u8>>>>,
    most: usize,
}

impl Pacing {
    fn new(most: usize) -> Pacing {
        Pacing {
            steps: VecDeque::with_capacity(most),
            spare: Vec::with_capacity(most),
            most,
        }
    }

    /// An empty list for a step's outputs.
    fn list(&mut self) -> Vec<ObjectRef<Vec<u8>>> {
        self.spare.pop().unwrap_or_default()
    }

    /// Lets go of a step's refs and keeps its list.
    fn recycle(&mut self, mut step: Vec<ObjectRef<Vec<u8>>>) {
        step.clear();
        if self.spare.len() < self.most {
            self.spare.push(step);
        }
    }

    /// Records a submitted step's outputs; once `most` steps are pending,
    /// waits until all but a quarter of them are done.
    fn submitted(
        &mut self,
        rt: &Runtime,
        outputs: Vec<ObjectRef<Vec<u8>>>,
        live: Live<'_>,
    ) -> Result<(), RunError> {
        self.steps.push_back(outputs);
        if self.steps.len() < self.most {
            return Ok(());
        }
        let keep = self.most / 4;
        while self.steps.len() > keep + 1 {
            if let Some(step) = self.steps.pop_front() {
                self.recycle(step);
            }
        }
        if let Some(step) = self.steps.pop_front() {
            // Waits for the readiness only: a failed task is reported by the
            // sinks' checks, as without pacing.
            let waited = wait_live(rt, &step, live);
            self.recycle(step);
            waited?;
        }
        Ok(())
    }
}

/// The rank that runs point `p` of a `width`-wide graph on `ranks` ranks:
/// the `r` whose block `r * width / ranks .. (r + 1) * width / ranks` holds
/// `p` (as in `taskbench-mpi`; `p * ranks / width` when `ranks` divides
/// `width`). With more ranks than points some ranks run nothing.
///
/// ```
/// use ferry_taskbench::ferry_run::rank_of;
///
/// assert_eq!((0..4).map(|p| rank_of(p, 4, 2)).collect::<Vec<_>>(), [0, 0, 1, 1]);
/// assert_eq!((0..3).map(|p| rank_of(p, 3, 2)).collect::<Vec<_>>(), [0, 1, 1]);
/// assert_eq!(rank_of(0, 1, 1), 0);
/// ```
pub fn rank_of(p: usize, width: usize, ranks: u32) -> u32 {
    let ranks = ranks.max(1) as usize;
    (((p + 1) * ranks - 1) / width.max(1)) as u32
}

/// Why a graph did not run to the end.
#[derive(Debug)]
pub enum RunError {
    /// The graph is not well formed (see [`TaskGraph::validate`]).
    Graph(GraphError),
    /// Ferry refused a submission or a fetch (not a task's own failure),
    /// or the run's [`Faults`] named a rank or step it does not have.
    Ferry(ferry::Error),
    /// A task failed: a wrong input caught by
    /// [`TaskGraph::execute_point`] arrives as this, from the task that
    /// caught it (through the tasks that read its output in turn).
    Task(ferry::Error),
    /// A final output (one no task reads) is not its point's.
    Output(InputError),
    /// Another rank's part of the run failed there (the failure's text):
    /// a task's failure its checks found, or an error that stopped it.
    Rank {
        /// The rank.
        rank: u32,
        /// What happened there.
        message: String,
    },
    /// A rank's part stopped before a step, as [`Faults::stop`] asked.
    Stopped {
        /// The rank.
        rank: u32,
        /// The step it did not submit.
        step: usize,
    },
    /// A point's dependency was not active at the step before (a graph
    /// that breaks [`TaskGraph::dependencies`]' promise).
    MissingInput {
        /// The reading point.
        point: Point,
        /// The dependency at the step before.
        input: usize,
    },
}

/// Faults a test injects into a run; none by default.
///
/// ```
/// use ferry_taskbench::{DependenceType, TaskGraph, ferry_run::{self, Faults, RunError}};
///
/// let rt = ferry::init(ferry::Config::default().num_cpus(1.0))?;
/// let g = TaskGraph::new(6, 2, DependenceType::Stencil1d);
/// let stop = Faults { stop: Some((0, 3)), ..Faults::default() };
/// assert!(matches!(
///     ferry_run::run_with(&rt, &g, stop),
///     Err(RunError::Stopped { rank: 0, step: 3 })
/// ));
/// # rt.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Faults {
    /// A point whose output is damaged after it runs: its readers must
    /// catch it.
    pub damage: Option<Point>,
    /// `(rank, step)`: that rank's part stops with [`RunError::Stopped`]
    /// before it submits the step, as a refused submission would stop it;
    /// the other ranks must stop too rather than wait for its sends. The
    /// run returns that error when the rank is 0, else
    /// [`RunError::Rank`] with its text. A rank or step the graph and the
    /// job do not have is an error of the run.
    pub stop: Option<(u32, usize)>,
}

impl Faults {
    /// Whether a job of `ranks` ranks running `graph` has the rank and
    /// step [`stop`](Self::stop) names: what is wrong, if not.
    ///
    /// ```
    /// use ferry_taskbench::{DependenceType, TaskGraph, ferry_run::Faults};
    /// let g = TaskGraph::new(4, 2, DependenceType::Stencil1d);
    /// let stop = |rank, step| Faults { stop: Some((rank, step)), ..Faults::default() };
    /// assert!(stop(1, 3).check(2, &g).is_ok());
    /// assert!(stop(2, 0).check(2, &g).unwrap_err().contains("2 ranks"));
    /// assert!(stop(0, 4).check(2, &g).unwrap_err().contains("4 steps"));
    /// ```
    pub fn check(&self, ranks: u32, graph: &TaskGraph) -> Result<(), String> {
        match self.stop {
            Some((rank, step)) if rank >= ranks || step >= graph.steps => Err(format!(
                "a stop at step {step} of rank {rank}: the job has {ranks} ranks, the graph {} steps",
                graph.steps
            )),
            _ => Ok(()),
        }
    }
}

impl RunError {
    fn from_get(e: ferry::Error) -> RunError {
        if e.task_error().is_some() {
            RunError::Task(e)
        } else {
            RunError::Ferry(e)
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Graph(e) => write!(f, "bad graph: {e}"),
            RunError::Ferry(e) => write!(f, "ferry: {e}"),
            RunError::Task(e) => write!(f, "a task failed: {e}"),
            RunError::Output(e) => write!(f, "a final output is wrong: {e}"),
            RunError::Rank { rank, message } => write!(f, "on rank {rank}: {message}"),
            RunError::Stopped { rank, step } => write!(
                f,
                "rank {rank} stopped before step {step}, as a test asked (Faults::stop)"
            ),
            RunError::MissingInput {
                point: (t, p),
                input,
            } => write!(
                f,
                "task ({t}, {p}) depends on point {input}, which is not active at step {}",
                t.saturating_sub(1)
            ),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Graph(e) => Some(e),
            RunError::Ferry(e) | RunError::Task(e) => Some(e),
            RunError::Output(e) => Some(e),
            RunError::MissingInput { .. } | RunError::Rank { .. } | RunError::Stopped { .. } => {
                None
            }
        }
    }
}

impl From<GraphError> for RunError {
    fn from(e: GraphError) -> Self {
        RunError::Graph(e)
    }
}

/// Point `(t, p)`: checks its inputs (the outputs of its dependencies at
/// step `t - 1`, in order), runs the kernel and returns its output, with
/// the last byte flipped when `damage` (for tests: its readers must catch
/// it).
#[ferry::remote]
fn point(
    graph: TaskGraph,
    t: usize,
    p: usize,
    damage: bool,
    inputs: Vec<View<Vec<u8>>>,
) -> Result<Vec<u8>, InputError> {
    // `execute_point` writes every byte: an allocation from the thread's
    // cache and a short fill, not `vec![0; n]`'s zeroed allocation (glibc's
    // `calloc` bypasses the cache: ~150 instructions more a task for 16
    // bytes, `callgrind`, Rust 1.95; a later LLVM may fold this back into
    // a zeroed allocation, so look again after a toolchain upgrade).
    #[expect(
        clippy::slow_vector_initialization,
        reason = "calloc is the slow way for a small buffer"
    )]
    let mut output = Vec::with_capacity(graph.output_bytes);
    output.resize(graph.output_bytes, 0u8);
    // The inputs' slices on the stack when few (a stencil's three): one
    // allocation a task fewer than a `Vec`.
    const ON_STACK: usize = 8;
    if inputs.len() <= ON_STACK {
        let mut slices: [&[u8]; ON_STACK] = [&[]; ON_STACK];
        for (s, v) in slices.iter_mut().zip(&inputs) {
            *s = v.as_slice();
        }
        graph.execute_point(t, p, &slices[..inputs.len()], &mut output, &mut [])?;
    } else {
        let slices: Vec<&[u8]> = inputs.iter().map(|v| v.as_slice()).collect();
        graph.execute_point(t, p, &slices, &mut output, &mut [])?;
    }
    if damage && let Some(last) = output.last_mut() {
        *last ^= 0xFF;
    }
    Ok(output)
}

/// A submitted point whose output no later task reads.
struct Sink {
    at: Point,
    output: ObjectRef<Vec<u8>>,
}

impl Sink {
    /// Fetches the output and checks that it is the point's.
    fn check(self, rt: &Runtime, graph: &TaskGraph, live: Live<'_>) -> Result<(), RunError> {
        let (t, p) = self.at;
        wait_live(rt, std::slice::from_ref(&self.output), live)?;
        let view = rt.get(&self.output).map_err(RunError::from_get)?;
        let bytes = view.as_slice();
        let wrong = |kind| InputError {
            reader: None,
            input: None,
            kind,
        };
        if bytes.len() != graph.output_bytes {
            return Err(RunError::Output(wrong(InputErrorKind::Length {
                expected: graph.output_bytes,
                found: bytes.len(),
            })));
        }
        check_input(bytes, t, p).map_err(RunError::Output)
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// From just before the first submission to the last output's check.
    pub elapsed: Duration,
    /// Tasks submitted (and run): the graph's `total_tasks()`.
    pub tasks: u64,
    /// Refs passed to tasks as inputs: the graph's `total_dependencies()`.
    pub dependencies: u64,
}

/// Checks, while a rank's shard waits, that the run can still end: an
/// error once another rank's shard has stopped early (its ranks' points
/// would never come).
type Live<'a> = &'a dyn Fn() -> Result<(), RunError>;

/// How often a waiting shard checks [`Live`].
pub const LIVENESS_TICK: Duration = Duration::from_millis(100);

/// Waits until every one of `refs` is complete, checking `live` every
/// [`LIVENESS_TICK`].
fn wait_live(rt: &Runtime, refs: &[ObjectRef<Vec<u8>>], live: Live<'_>) -> Result<(), RunError> {
    loop {
        let (_, pending) = rt
            .wait(refs, refs.len(), Some(LIVENESS_TICK))
            .map_err(RunError::Ferry)?;
        if pending.is_empty() {
            return Ok(());
        }
        live()?;
    }
}

/// Runs every task of `graph` on `rt`'s ranks (see the module's protocol):
/// what it did, or why it stopped. `damage`, for tests, names a point whose
/// output is damaged after it runs. Called on rank 0 (the driver); the
/// other ranks' shards run as actors it starts there.
pub fn run(rt: &Runtime, graph: &TaskGraph, damage: Option<Point>) -> Result<Completed, RunError> {
    run_with(
        rt,
        graph,
        Faults {
            damage,
            ..Faults::default()
        },
    )
}

/// [`run`] with the faults a test injects (see [`Faults`]).
pub fn run_with(rt: &Runtime, graph: &TaskGraph, faults: Faults) -> Result<Completed, RunError> {
    graph.validate()?;
    faults.check(rt.world_size(), graph).map_err(|e| {
        RunError::Ferry(ferry::Error::InvalidArgument(format!("Faults::stop: {e}")))
    })?;
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let ranks = rt.world_size();
    let shards = (1..ranks)
        .map(|r| Shard::options().on_rank(r).remote(rt))
        .collect::<ferry::Result<Vec<_>>>()
        .map_err(RunError::Ferry)?;
    // Each one up before the clock starts (as Task Bench starts timing
    // after a barrier).
    for s in &shards {
        let up = s.ready().remote().map_err(RunError::Ferry)?;
        rt.get(&up).map_err(RunError::Ferry)?;
    }
    let start = Instant::now();
    let parts = shards
        .iter()
        .map(|s| s.run(graph.clone(), run, faults).remote())
        .collect::<ferry::Result<Vec<_>>>()
        .map_err(RunError::Ferry)?;
    // A shard that ended early (it did not make every send of the run)
    // stops this one, and through `end` the others.
    let stopped_early = || {
        parts.iter().enumerate().find_map(|(i, p)| {
            let r = i as u32 + 1;
            match p.is_ready().then(|| rt.get_value(p)) {
                Some(Ok((_, _, EARLY, why))) => Some(RunError::Rank {
                    rank: r,
                    message: why,
                }),
                Some(Err(e)) => Some(RunError::Rank {
                    rank: r,
                    message: e.to_string(),
                }),
                _ => None,
            }
        })
    };
    let live = || stopped_early().map_or(Ok(()), Err);
    let mine = shard(rt, graph, run, faults, &live);
    let end = Ender {
        rt,
        ranks,
        run,
        told: std::cell::Cell::new(false),
    };
    if mine.is_err() {
        end.now();
    }
    // Every other shard's end, waited for while checking that none has
    // stopped early (which would leave the others waiting for its sends).
    loop {
        let (_, pending) = rt
            .wait(&parts[..], parts.len(), Some(LIVENESS_TICK))
            .map_err(RunError::Ferry)?;
        if pending.is_empty() {
            break;
        }
        if stopped_early().is_some() {
            end.now();
        }
    }
    end.now();
    let mut counts = [0u64; 2];
    let mut first_error = None;
    let mut keep = |e: RunError| {
        first_error.get_or_insert(e);
    };
    match mine {
        Ok((c, failed)) => {
            counts[0] += c.tasks;
            counts[1] += c.dependencies;
            failed.map(&mut keep);
        }
        Err(e) => keep(e),
    }
    // The first failure of the lowest rank that did not stop because it
    // was told to.
    for (i, p) in parts.iter().enumerate() {
        let rank = i as u32 + 1;
        match rt.get_value(p) {
            Ok((tasks, deps, status, why)) => {
                counts[0] += tasks;
                counts[1] += deps;
                if status == FAILED || status == EARLY {
                    keep(RunError::Rank { rank, message: why });
                }
            }
            Err(e) => keep(RunError::Rank {
                rank,
                message: e.to_string(),
            }),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(Completed {
        elapsed: start.elapsed(),
        tasks: counts[0],
        dependencies: counts[1],
    })
}

/// How a shard on another rank ended: it made every send of the run and
/// found nothing wrong, ...
const DONE: u8 = 0;
/// ... or a task's failure (its text with it), ...
const FAILED: u8 = 1;
/// ... or it stopped early, before every send (its error's text) ...
const EARLY: u8 = 2;
/// ... or because rank 0 told it to (another shard stopped early).
const TOLD: u8 = 3;

/// The tag of the message that ends run `run` on every other rank (past
/// every point's tag).
fn end_tag(run: u64) -> u64 {
    (run << 32) | u64::from(u32::MAX)
}

/// Tells every other rank's shard that run `run` is over, once: a shard
/// still waiting then stops (its receive of this is its liveness check);
/// one that has ended drops the message.
struct Ender<'a> {
    rt: &'a Runtime,
    ranks: u32,
    run: u64,
    told: std::cell::Cell<bool>,
}

impl Ender<'_> {
    fn now(&self) {
        if self.told.replace(true) {
            return;
        }
        let Ok(end) = self.rt.put(&true) else { return };
        for r in 1..self.ranks {
            // A rank that cannot be told is lost: its actor call fails.
            let _ = self.rt.send_to(&end, r, end_tag(self.run));
        }
    }
}

/// Tasks and dependencies a shard submitted.
struct Counts {
    tasks: u64,
    dependencies: u64,
}

/// This rank's part of run `run` of `graph` (see the module's protocol):
/// submits the points this rank owns, receives the outputs of other ranks'
/// points that they read and sends theirs to the ranks that read them. A
/// task's failure does not stop it (every send and receive of the run
/// still happens, so no other rank waits for ever): the first one its
/// checks found comes back with its counts, once it has submitted
/// everything. An error (a refused submission, `live` failing, or the
/// stop `faults` asks for) stops it early.
fn shard(
    rt: &Runtime,
    graph: &TaskGraph,
    run: u64,
    faults: Faults,
    live: Live<'_>,
) -> Result<(Counts, Option<RunError>), RunError> {
    let damage = faults.damage;
    let (ranks, me) = (rt.world_size(), rt.rank());
    let owner = |p: usize| rank_of(p, graph.width, ranks);
    // A point's sends are a stream of their own, one per run.
    let tag = |p: usize| (run << 32) | p as u64;
    // Step t - 1's outputs read here (this rank's own and those received),
    // and whether a task reads each (a remote reader counts).
    let mut prev: Vec<Option<(ObjectRef<Vec<u8>>, bool)>> = vec![None; graph.width];
    let mut sinks: VecDeque<Sink> = VecDeque::new();
    let mut counts = Counts {
        tasks: 0,
        dependencies: 0,
    };
    let mut failed: Option<RunError> = None;
    let mut pacing = Pacing::new(steps_ahead(graph));
    let mut plan = StepPlan::default();
    // A point's inputs, moved into its call: the list is kept, and the
    // call's own argument list is made once at its size.
    let mut inputs: Vec<ObjectRef<Vec<u8>>> = Vec::new();
    // The next step's outputs (all `None` between steps: kept, not made
    // again each step).
    let mut cur: Vec<Option<(ObjectRef<Vec<u8>>, bool)>> = vec![None; graph.width];
    for t in 0..graph.steps {
        if faults.stop == Some((me, t)) {
            return Err(RunError::Stopped { rank: me, step: t });
        }
        plan.prepare(graph, t, me, ranks);
        for (p, deps, readers) in &plan.points {
            let p = *p;
            for &q in deps {
                if prev[q].is_none() && owner(q) != me {
                    let r = rt.receive_from(owner(q), tag(q)).map_err(RunError::Ferry)?;
                    prev[q] = Some((r, true));
                }
                let (r, read) =
                    prev.get_mut(q)
                        .and_then(Option::as_mut)
                        .ok_or(RunError::MissingInput {
                            point: (t, p),
                            input: q,
                        })?;
                *read = true;
                inputs.push(r.clone());
            }
            let out = point::options()
                .on_rank(me)
                .remote(
                    rt,
                    graph.clone(),
                    t,
                    p,
                    damage == Some((t, p)),
                    inputs.drain(..),
                )
                .map_err(RunError::Ferry)?;
            counts.tasks += 1;
            counts.dependencies += deps.len() as u64;
            // Sent to every other rank that reads it, once each.
            for &r in readers {
                rt.send_to(&out, r, tag(p)).map_err(RunError::Ferry)?;
            }
            cur[p] = Some((out, !readers.is_empty()));
        }
        let mut outputs = pacing.list();
        outputs.extend(
            plan.points
                .iter()
                .filter_map(|(p, _, _)| cur[*p].as_ref().map(|(r, _)| r.clone())),
        );
        pacing.submitted(rt, outputs, live)?;
        std::mem::swap(&mut prev, &mut cur);
        // `cur` now holds step t - 1's outputs: the unread ones are sinks.
        for (q, o) in cur.iter_mut().enumerate() {
            if let Some((output, false)) = o.take() {
                sinks.push_back(Sink {
                    at: (t.saturating_sub(1), q), // t >= 1: step 0 had no step before
                    output,
                });
            }
        }
        while sinks.len() > SINK_WINDOW {
            if let Some(s) = sinks.pop_front() {
                note(&mut failed, s.check(rt, graph, live))?;
            }
        }
    }
    let last = graph.steps - 1;
    sinks.extend(prev.into_iter().enumerate().filter_map(|(q, o)| {
        o.map(|(output, _)| Sink {
            at: (last, q),
            output,
        })
    }));
    for s in sinks {
        note(&mut failed, s.check(rt, graph, live))?;
    }
    Ok((counts, failed))
}

/// What a rank submits at a step: each point it owns there, with the
/// points of the step before that it reads and the other ranks that read
/// it at the step after. Steps of one shape in a row (every step of a
/// stencil, of nearest, of all_to_all) share a plan, made again when the
/// shape changes (every step of spread, fft and random_nearest): the
/// graph's lists are not computed for every task of the former.
#[derive(Default)]
struct StepPlan {
    shape: Option<Shape>,
    points: Vec<(usize, Vec<usize>, Vec<u32>)>,
}

/// What a step's dependencies and readers are computed from: whether it is
/// the first, its dependence set and the points active at it and at the
/// steps around it (`None` past the last step).
type Shape = (
    bool,
    usize,
    std::ops::Range<usize>,
    std::ops::Range<usize>,
    Option<(usize, std::ops::Range<usize>)>,
);

impl StepPlan {
    /// Makes this the plan of step `t` for rank `me` of `ranks`.
    fn prepare(&mut self, graph: &TaskGraph, t: usize, me: u32, ranks: u32) {
        let shape: Shape = (
            t == 0,
            graph.dependence_set_at_timestep(t),
            if t == 0 {
                0..0
            } else {
                graph.active_points(t - 1)
            },
            graph.active_points(t),
            (t + 1 < graph.steps).then(|| {
                (
                    graph.dependence_set_at_timestep(t + 1),
                    graph.active_points(t + 1),
                )
            }),
        );
        if self.shape.as_ref() == Some(&shape) {
            return;
        }
        let owner = |p: usize| rank_of(p, graph.width, ranks);
        self.points = graph
            .active_points(t)
            .filter(|&p| owner(p) == me)
            .map(|p| {
                let mut readers: Vec<u32> = if ranks > 1 {
                    graph
                        .reverse_dependencies(t, p)
                        .into_iter()
                        .map(owner)
                        .filter(|&r| r != me)
                        .collect()
                } else {
                    Vec::new()
                };
                readers.sort_unstable();
                readers.dedup();
                (p, graph.dependencies(t, p), readers)
            })
            .collect();
        self.shape = Some(shape);
    }
}

/// Keeps the first failure of a task (or of a check) in `failed`; an
/// error of the runtime, or another rank's, ends the shard at once.
fn note(failed: &mut Option<RunError>, checked: Result<(), RunError>) -> Result<(), RunError> {
    match checked {
        Ok(()) => Ok(()),
        Err(e @ (RunError::Task(_) | RunError::Output(_))) => {
            failed.get_or_insert(e);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Another rank's shard: an actor (it holds no CPU, as the driver holds
/// none on rank 0) whose `run` is that rank's part of a run.
#[ferry::actor]
struct Shard;

#[ferry::actor]
impl Shard {
    fn new() -> Self {
        Shard
    }

    /// Answers once the actor is up.
    fn ready(&self) -> bool {
        true
    }

    /// This rank's part of run `run` (see [`shard`]): the tasks and
    /// dependencies it submitted, how it ended ([`DONE`], [`FAILED`],
    /// [`EARLY`] or [`TOLD`]) and the failure's text. It stops when rank
    /// 0 tells it the run is over (another rank stopped early).
    fn run(&mut self, graph: TaskGraph, run: u64, faults: Faults) -> (u64, u64, u8, String) {
        let outcome = || -> Result<(u64, u64, u8, String), RunError> {
            let rt = ferry::current().map_err(RunError::Ferry)?;
            let end = rt
                .receive_from::<bool>(0, end_tag(run))
                .map_err(RunError::Ferry)?;
            let live = || {
                if end.is_ready() {
                    Err(RunError::Rank {
                        rank: 0,
                        message: "the run was ended".into(),
                    })
                } else {
                    Ok(())
                }
            };
            let (c, failed) = shard(&rt, &graph, run, faults, &live)?;
            Ok(match failed {
                None => (c.tasks, c.dependencies, DONE, String::new()),
                Some(e) => (c.tasks, c.dependencies, FAILED, e.to_string()),
            })
        };
        match outcome() {
            Ok(o) => o,
            Err(RunError::Rank { rank: 0, message }) => (0, 0, TOLD, message),
            Err(e) => (0, 0, EARLY, e.to_string()),
        }
    }
}
