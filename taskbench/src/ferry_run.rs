//! Task Bench on Ferry: every point `(t, p)` of the graph is one remote
//! task, as in Task Bench's Ray implementation, which passes a point's
//! dependencies as top-level refs (`f.remote(*deps)`).
//!
//! # Protocol
//!
//! 1. **Placement.** Point `p` runs on rank [`rank_of`]`(p, width, ranks)`
//!    at every step (`.options().on_rank(r)`): the block distribution of
//!    `taskbench-mpi`, so both implementations move the same bytes between
//!    the same ranks.
//! 2. **Submission.** The driver (the caller, rank 0 under `mpirun`)
//!    submits step 0, then step 1, … without waiting. Point `(t, p)` gets
//!    the refs of its dependencies' outputs at step `t - 1` as one
//!    `Vec<View<Vec<u8>>>` parameter, so it runs only when all of them are
//!    ready (on whatever rank they were made) and reads them without a copy.
//!    The driver holds only the previous step's refs.
//! 3. **Execution.** A task calls [`TaskGraph::execute_point`], which checks
//!    that every input is the right producer's output, runs the kernel and
//!    writes its own output; a wrong input is the task's error, which fails
//!    every task that reads its output in turn.
//! 4. **Completion.** An output no later task reads (every output of the
//!    last step, and, for some types, outputs of earlier steps: a *sink*)
//!    is fetched and checked by the driver; every other task is known to
//!    have succeeded once a reader has. So when every sink is fetched, every
//!    task has run and every input was checked. Sinks are fetched at the
//!    end, or earlier once more than [`SINK_WINDOW`] wait, to bound memory.
//! 5. **Pacing.** The driver lets at most [`steps_ahead`] steps be
//!    submitted and not known to be done: past that, it waits (`rt.wait`)
//!    until all but a quarter of them are, then goes on (Ray's pattern for
//!    limiting pending tasks). Without it, a driver that submits faster than
//!    the tasks run holds the whole graph pending at once: on the 2-core VM,
//!    20,000 steps of a 2-wide stencil on 2 ranks grew rank 0 to 53 MB and
//!    ~10,000 more page faults than with pacing (14 MB), and 10,000 steps
//!    took 77 ms against 61 ms paced (medians of 5).
//! 6. **Timing.** From just before the first submission to the last sink's
//!    check.
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
    most: usize,
}

impl Pacing {
    /// Records a submitted step's outputs; once `most` steps are pending,
    /// waits until all but a quarter of them are done.
    fn submitted(
        &mut self,
        rt: &Runtime,
        outputs: Vec<ObjectRef<Vec<u8>>>,
    ) -> Result<(), RunError> {
        self.steps.push_back(outputs);
        if self.steps.len() < self.most {
            return Ok(());
        }
        let keep = self.most / 4;
        while self.steps.len() > keep + 1 {
            self.steps.pop_front();
        }
        if let Some(step) = self.steps.pop_front() {
            // Waits for the readiness only: a failed task is reported by the
            // sinks' checks, as without pacing.
            rt.wait(&step[..], step.len(), None)
                .map_err(RunError::Ferry)?;
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
    /// Ferry refused a submission or a fetch (not a task's own failure).
    Ferry(ferry::Error),
    /// A task failed: a wrong input caught by
    /// [`TaskGraph::execute_point`] arrives as this, from the task that
    /// caught it (through the tasks that read its output in turn).
    Task(ferry::Error),
    /// A final output (one no task reads) is not its point's.
    Output(InputError),
    /// A point's dependency was not active at the step before (a graph
    /// that breaks [`TaskGraph::dependencies`]' promise).
    MissingInput {
        /// The reading point.
        point: Point,
        /// The dependency at the step before.
        input: usize,
    },
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
            RunError::MissingInput { .. } => None,
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
    let inputs: Vec<&[u8]> = inputs.iter().map(|v| v.as_slice()).collect();
    let mut output = vec![0u8; graph.output_bytes];
    graph.execute_point(t, p, &inputs, &mut output, &mut [])?;
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
    fn check(self, rt: &Runtime, graph: &TaskGraph) -> Result<(), RunError> {
        let (t, p) = self.at;
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

/// Runs every task of `graph` on `rt`'s ranks (see the module's protocol):
/// what it did, or why it stopped. `damage`, for tests, names a point whose
/// output is damaged after it runs.
pub fn run(rt: &Runtime, graph: &TaskGraph, damage: Option<Point>) -> Result<Completed, RunError> {
    graph.validate()?;
    let ranks = rt.world_size();
    // Step t - 1's outputs, and whether a task of step t reads each.
    let mut prev: Vec<Option<(ObjectRef<Vec<u8>>, bool)>> = vec![None; graph.width];
    let mut sinks: VecDeque<Sink> = VecDeque::new();
    let (mut tasks, mut dependencies) = (0u64, 0u64);
    let mut pacing = Pacing {
        steps: VecDeque::new(),
        most: steps_ahead(graph),
    };
    let start = Instant::now();
    for t in 0..graph.steps {
        let mut cur: Vec<Option<(ObjectRef<Vec<u8>>, bool)>> = vec![None; graph.width];
        for p in graph.active_points(t) {
            let deps = graph.dependencies(t, p);
            let mut inputs = Vec::with_capacity(deps.len());
            for q in deps {
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
            let inputs_len = inputs.len();
            let out = point::options()
                .on_rank(rank_of(p, graph.width, ranks))
                .remote(rt, graph.clone(), t, p, damage == Some((t, p)), inputs)
                .map_err(RunError::Ferry)?;
            tasks += 1;
            dependencies += inputs_len as u64;
            cur[p] = Some((out, false));
        }
        let outputs = cur.iter().flatten().map(|(r, _)| r.clone()).collect();
        pacing.submitted(rt, outputs)?;
        let before = std::mem::replace(&mut prev, cur);
        sinks.extend(before.into_iter().enumerate().filter_map(|(q, o)| {
            o.filter(|(_, read)| !read).map(|(output, _)| Sink {
                at: (t.saturating_sub(1), q), // t >= 1: step 0 had no `before`
                output,
            })
        }));
        while sinks.len() > SINK_WINDOW {
            if let Some(s) = sinks.pop_front() {
                s.check(rt, graph)?;
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
        s.check(rt, graph)?;
    }
    Ok(Completed {
        elapsed: start.elapsed(),
        tasks,
        dependencies,
    })
}
