//! Options of a task or actor, as `.options(...)` takes them in Ray.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

use crate::error::{Result, TaskError};
use crate::resources::bundles::{BundleRef, PlacementGroup};
use crate::resources::ledger::{Ledger, Request};
use crate::resources::pinning::Pin;

/// Which application errors a task retries on.
#[derive(Clone, Default)]
pub enum RetryOn {
    /// Never (Ray's default): only system failures are retried.
    #[default]
    Never,
    /// Every panic or `Err`.
    All,
    /// Those for which the predicate says yes.
    When(Arc<dyn Fn(&TaskError) -> bool + Send + Sync>),
}

impl fmt::Debug for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryOn::Never => f.write_str("Never"),
            RetryOn::All => f.write_str("All"),
            RetryOn::When(_) => f.write_str("When(..)"),
        }
    }
}

/// Resource and retry options of a task (Ray's `@ray.remote(...)` and
/// `.options(...)` keywords).
///
/// ```
/// let o = ferry_core::TaskOptions::default()
///     .num_cpus(0.5)
///     .resource("TPU", 1.0)
///     .max_retries(5)
///     .env_var("MY_CUSTOM_ENV", "prod");
/// assert_eq!(o.cpus(), 0.5);
/// ```
#[derive(Clone, Debug)]
pub struct TaskOptions {
    pub(crate) name: Option<String>,
    pub(crate) ask: ResourceAsk,
    pub(crate) max_retries: i32,
    pub(crate) retry_on: RetryOn,
    pub(crate) env: Vec<(String, String)>,
    /// Set on the rank a task was sent to: run it here, do not place it again.
    pub(crate) pinned_here: bool,
    /// Run on this rank (Ray's node-affinity scheduling strategy).
    pub(crate) rank: Option<u32>,
    /// A streaming task's items produced and not yet taken by the caller
    /// at which its producer pauses.
    pub(crate) backpressure: u64,
}

/// The default of [`TaskOptions::generator_backpressure_num_objects`].
pub const DEFAULT_BACKPRESSURE: u64 = 16;

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            name: None,
            ask: ResourceAsk {
                cpus: 1.0,
                ..ResourceAsk::default()
            },
            max_retries: 3,
            retry_on: RetryOn::Never,
            env: Vec::new(),
            pinned_here: false,
            rank: None,
            backpressure: DEFAULT_BACKPRESSURE,
        }
    }
}

impl TaskOptions {
    /// Logical CPUs the task holds while it runs (fractional and 0 allowed; default 1).
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.ask.cpus = n;
        self
    }

    /// Logical GPUs (fractional allowed; default 0).
    pub fn num_gpus(mut self, n: f64) -> Self {
        self.ask.gpus = n;
        self
    }

    /// Memory in bytes the task reserves (logical, as in Ray).
    pub fn memory(mut self, bytes: f64) -> Self {
        self.ask.memory = bytes;
        self
    }

    /// A custom resource, e.g. `("TPU", 1.0)`.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.ask.custom.push((name.into(), amount));
        self
    }

    /// Retries after a system failure (lost worker or rank): default 3, -1 forever.
    /// With [`retry_exceptions`](Self::retry_exceptions) also the application-error retries.
    pub fn max_retries(mut self, n: i32) -> Self {
        self.max_retries = n;
        self
    }

    /// Retry on application errors (panics and `Err`) too, up to `max_retries`.
    pub fn retry_exceptions(mut self, yes: bool) -> Self {
        self.retry_on = if yes { RetryOn::All } else { RetryOn::Never };
        self
    }

    /// Retry on the application errors for which `pred` says yes.
    pub fn retry_when(mut self, pred: impl Fn(&TaskError) -> bool + Send + Sync + 'static) -> Self {
        self.retry_on = RetryOn::When(Arc::new(pred));
        self
    }

    /// An environment variable for the task (Ray's `runtime_env={"env_vars": ...}`),
    /// read inside with [`env_var`](crate::env_var).
    pub fn env_var(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Run the task on rank `rank` (like Ray's node-affinity strategy, hard):
    /// a rank that does not exist is an error at `.remote()`.
    pub fn on_rank(mut self, rank: u32) -> Self {
        self.rank = Some(rank);
        self
    }

    /// Runs the task in bundle `index` of placement group `pg` (Ray's
    /// `PlacementGroupSchedulingStrategy`): on the bundle's rank, holding
    /// its resources from the bundle, never from the rank's free pool.
    /// Submitting waits (bounded) for the group to be placed, and fails at
    /// once with [`Error::PlacementGroup`](crate::Error::PlacementGroup)
    /// when the index is out of range, the ask cannot fit in the bundle, or
    /// the group was removed. (Ray's `placement_group_bundle_index=-1`, any
    /// bundle, has no counterpart: name the bundle.)
    pub fn placement_group(mut self, pg: &PlacementGroup, index: u32) -> Self {
        self.ask.bundle = Some(BundleRef {
            group: pg.id,
            index,
        });
        self
    }

    /// A name for the task in errors and listings (default: the function's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// For a streaming task (`num_returns = "streaming"`): the producer
    /// pauses when `n` items are produced and not yet taken by the caller,
    /// and goes on as the caller takes them (Ray's
    /// `_generator_backpressure_num_objects`; default 16; 0 counts as 1).
    ///
    /// ```
    /// use ferry_core::{DEFAULT_BACKPRESSURE, TaskOptions};
    /// assert_eq!(TaskOptions::default().backpressure(), DEFAULT_BACKPRESSURE);
    /// let o = TaskOptions::default().generator_backpressure_num_objects(4);
    /// assert_eq!(o.backpressure(), 4);
    /// ```
    pub fn generator_backpressure_num_objects(mut self, n: u64) -> Self {
        self.backpressure = n;
        self
    }

    /// The backpressure of a streaming task (see
    /// [`generator_backpressure_num_objects`](Self::generator_backpressure_num_objects)).
    pub fn backpressure(&self) -> u64 {
        self.backpressure
    }

    /// The CPUs asked for.
    pub fn cpus(&self) -> f64 {
        self.ask.cpus
    }

    pub(crate) fn request(&self, what: &str, ledger: &Ledger) -> Result<Request> {
        self.ask.request(what, ledger)
    }
}

/// Options of an actor (Ray's `@ray.remote` on a class and `.options(...)`).
///
/// ```
/// let o = ferry_core::ActorOptions::default().num_cpus(1.0).max_restarts(2);
/// assert_eq!(o.restarts(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ActorOptions {
    pub(crate) name: Option<String>,
    pub(crate) ask: ResourceAsk,
    pub(crate) max_restarts: i32,
    pub(crate) max_task_retries: i32,
    pub(crate) checkpoint_every: u64,
    pub(crate) env: Vec<(String, String)>,
    /// Create the actor on this rank (Ray's node-affinity scheduling strategy).
    pub(crate) rank: Option<u32>,
    /// Run the actor on a thread bound to this core or NUMA node.
    pub(crate) pin: Option<Pin>,
    /// With a name: give the existing actor's handle if the name is taken.
    pub(crate) get_if_exists: bool,
    /// With a name: live until killed, not until the last handle is gone.
    pub(crate) detached: bool,
    /// Calls that may run at once (`None`: 1, or 1000 for an async actor).
    pub(crate) max_concurrency: Option<u32>,
}

impl ActorOptions {
    /// Logical CPUs the actor holds for its lifetime (default 0, as in Ray).
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.ask.cpus = n;
        self
    }

    /// Logical GPUs the actor holds for its lifetime.
    pub fn num_gpus(mut self, n: f64) -> Self {
        self.ask.gpus = n;
        self
    }

    /// Memory in bytes the actor reserves.
    pub fn memory(mut self, bytes: f64) -> Self {
        self.ask.memory = bytes;
        self
    }

    /// A custom resource the actor holds.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.ask.custom.push((name.into(), amount));
        self
    }

    /// How many times the actor is re-created by re-running its
    /// constructor after a panic in a method or the loss of its rank
    /// (default 0; -1 forever). After the loss of its rank the actor is
    /// re-created on another live rank that has its resources, by the rank
    /// that created it.
    pub fn max_restarts(mut self, n: i32) -> Self {
        self.max_restarts = n;
        self
    }

    /// How many times a call in flight when the actor's rank was lost is
    /// sent again to the restarted actor (Ray's `max_task_retries`; default
    /// 0: such calls fail with [`Error::ActorDied`](crate::Error::ActorDied);
    /// -1 forever). The setting travels with the actor's handles, so calls
    /// from every rank holding one are retried. A call that never reached
    /// the lost rank is always sent again.
    pub fn max_task_retries(mut self, n: i32) -> Self {
        self.max_task_retries = n;
        self
    }

    /// Checkpoints the actor's state every `n` calls that return, counted
    /// from the last checkpoint written (0, the default: only on
    /// [`ActorHandle::checkpoint`](crate::ActorHandle::checkpoint)). A due
    /// checkpoint that cannot be written fails the call that made it due
    /// with [`Error::Checkpoint`](crate::Error::Checkpoint) (its result is
    /// not returned; the actor keeps its state) and every later call tries
    /// again until one is written.
    /// The class must be marked `#[ferry::actor(checkpoint)]` and the actor
    /// named (checkpoints are kept by name, per job, under
    /// `Config::checkpoint_dir`). An actor with a checkpoint starts from it,
    /// not from its constructor: in a job started again with the same job
    /// id, and when it is re-created after a panic or the loss of its rank.
    pub fn checkpoint_every(mut self, n: u64) -> Self {
        self.checkpoint_every = n;
        self
    }

    /// Creates the actor on this rank (Ray's node-affinity scheduling
    /// strategy); by default it goes where its resources are free, this
    /// rank first.
    pub fn on_rank(mut self, rank: u32) -> Self {
        self.rank = Some(rank);
        self
    }

    /// An environment variable for the actor's calls.
    pub fn env_var(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the actor on a thread bound to one core or to a NUMA node's
    /// cores, with the memory it allocates on that NUMA node (preferred
    /// policy: explicit, not first touch). The core or node must be one of
    /// the rank's (the rank it is created on: this one, or
    /// [`on_rank`](Self::on_rank)'s); otherwise creating the actor fails with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument). Actors
    /// that ask for GPUs and no pin are bound near their first GPU.
    ///
    /// ```
    /// use ferry_core::{ActorOptions, Pin};
    /// let near_gpu = ActorOptions::default().num_gpus(1.0).pin(Pin::NumaNode(0));
    /// # let _ = near_gpu;
    /// ```
    pub fn pin(mut self, pin: Pin) -> Self {
        self.pin = Some(pin);
        self
    }

    /// Names the actor (Ray's `name=`): the name is unique in the job, any
    /// rank and any thread finds the actor by it with
    /// [`get_actor`](crate::get_actor), and it shows in errors, listings and
    /// checkpoint file names. Creating an actor with a name a live actor of
    /// the job holds fails with
    /// [`Error::ActorNameTaken`](crate::Error::ActorNameTaken) (the
    /// constructor does not run), unless [`get_if_exists`](Self::get_if_exists)
    /// is set. The name is freed when the actor is killed, dies without
    /// restarts left, or stops because no rank holds a handle to it.
    ///
    /// Differences from Ray: there are no namespaces (the job is the
    /// namespace, as Ray's default anonymous namespace is per job), and
    /// names are freed when the actor's rank has stopped it, so a lookup
    /// racing a `kill` from another rank may still find it (its calls then
    /// fail with [`Error::ActorDied`](crate::Error::ActorDied)).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// With a [`name`](Self::name): when an actor of the job holds it
    /// already, creating gives that actor's handle instead of an error
    /// (Ray's `get_if_exists=True`); the constructor does not run and the
    /// other options are not applied. The holder must be of the same class,
    /// else [`Error::ActorNameOtherClass`](crate::Error::ActorNameOtherClass).
    pub fn get_if_exists(mut self) -> Self {
        self.get_if_exists = true;
        self
    }

    /// With a [`name`](Self::name): the actor lives on when every handle to
    /// it is dropped, until [`ActorHandle::kill`](crate::ActorHandle::kill)
    /// (found again with [`get_actor`](crate::get_actor)); Ray's
    /// `lifetime="detached"`.
    ///
    /// Difference from Ray: a Ferry job ends with its runtime (rank 0's
    /// `shutdown`), and detached actors end with it; Ray's detached actors
    /// outlive the driver's job and live until the Ray cluster stops. An
    /// actor restarted after the loss of its rank is re-created by its
    /// creator only while the creator holds a handle to it.
    pub fn lifetime_detached(mut self) -> Self {
        self.detached = true;
        self
    }

    /// Creates the actor in bundle `index` of placement group `pg`: on the
    /// bundle's rank, holding its resources from the bundle for its
    /// lifetime; removing the group kills it (see
    /// [`TaskOptions::placement_group`]).
    pub fn placement_group(mut self, pg: &PlacementGroup, index: u32) -> Self {
        self.ask.bundle = Some(BundleRef {
            group: pg.id,
            index,
        });
        self
    }

    /// How many calls may run at once (Ray's `max_concurrency`; default 1,
    /// and 1000 for an actor with `async fn` methods).
    ///
    /// Above 1, an actor without async methods is *threaded*: up to `n`
    /// calls of its `&self` methods run at once on `n` threads of its own,
    /// so its class must be `Sync` (creating one that is not fails with
    /// [`Error::NotSync`](crate::Error::NotSync)); a `&mut self` call waits
    /// until those running finish and runs alone, and calls are started in
    /// the order they were made. An async actor keeps up to `n` of its
    /// `async fn` calls in flight on its one thread, interleaved at `.await`.
    ///
    /// ```
    /// let o = ferry_core::ActorOptions::default().max_concurrency(4);
    /// # let _ = o;
    /// ```
    pub fn max_concurrency(mut self, n: u32) -> Self {
        self.max_concurrency = Some(n.max(1));
        self
    }

    /// The restarts allowed.
    pub fn restarts(&self) -> i32 {
        self.max_restarts
    }

    pub(crate) fn request(&self, what: &str, ledger: &Ledger) -> Result<Request> {
        self.ask.request(what, ledger)
    }
}

/// What a task or an actor asks of the rank it runs on: logical CPUs, GPUs,
/// memory and custom resources. Task options, actor options and their wire
/// forms all carry one.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub(crate) struct ResourceAsk {
    pub(crate) cpus: f64,
    pub(crate) gpus: f64,
    pub(crate) memory: f64,
    pub(crate) custom: Vec<(String, f64)>,
    /// The placement-group bundle to run in, if any.
    pub(crate) bundle: Option<BundleRef>,
}

impl ResourceAsk {
    /// The ledger's request for it (an error naming `what` if no rank of
    /// this ledger's kind could ever grant it).
    pub(crate) fn request(&self, what: &str, ledger: &Ledger) -> Result<Request> {
        if self.custom.is_empty() && self.bundle.is_none() {
            return ledger.request_base(what, [self.cpus, self.gpus, self.memory]);
        }
        let base = [
            ("CPU", self.cpus),
            ("GPU", self.gpus),
            ("memory", self.memory),
        ];
        let with_custom: Vec<(&str, f64)>;
        let asks: &[(&str, f64)] = if self.custom.is_empty() {
            &base
        } else {
            with_custom = base
                .into_iter()
                .chain(self.custom.iter().map(|(n, a)| (n.as_str(), *a)))
                .collect();
            &with_custom
        };
        match self.bundle {
            Some(at) => ledger.request_in(what, asks, at),
            None => ledger.request(what, asks),
        }
    }

    /// What it asks for that `bundle` does not hold: `(resource, asked,
    /// held)`.
    pub(crate) fn beyond(
        &self,
        bundle: &crate::resources::bundles::Bundle,
    ) -> Option<(String, f64, f64)> {
        let mut asks: Vec<(&str, f64)> = vec![
            ("CPU", self.cpus),
            ("GPU", self.gpus),
            ("memory", self.memory),
        ];
        asks.extend(self.custom.iter().map(|(n, a)| (n.as_str(), *a)));
        let mut sum: BTreeMap<&str, f64> = BTreeMap::new();
        for (n, a) in asks {
            *sum.entry(n).or_insert(0.0) += a;
        }
        sum.into_iter()
            .find(|(n, a)| *a > 0.0 && bundle.get(n) + 1e-9 < *a)
            .map(|(n, a)| (n.to_string(), a, bundle.get(n)))
    }

    /// Whether a rank with `totals` could ever grant it.
    pub(crate) fn fits_in(&self, totals: &BTreeMap<String, f64>) -> bool {
        let has = |name: &str, amount: f64| {
            amount <= 0.0 || totals.get(name).is_some_and(|t| *t >= amount)
        };
        has("CPU", self.cpus)
            && has("GPU", self.gpus)
            && has("memory", self.memory)
            && self.custom.iter().all(|(n, a)| has(n, *a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ask_fits_a_rank_that_has_all_of_it_and_nothing_is_asked_of_what_is_zero() {
        let totals: BTreeMap<String, f64> = [("CPU".to_string(), 2.0), ("disk".to_string(), 1.0)]
            .into_iter()
            .collect();
        let mut ask = ResourceAsk {
            cpus: 2.0,
            ..ResourceAsk::default()
        };
        assert!(
            ask.fits_in(&totals),
            "GPU and memory asked at 0 need no entry"
        );
        ask.custom.push(("disk".into(), 1.0));
        assert!(ask.fits_in(&totals));
        ask.cpus = 2.5;
        assert!(!ask.fits_in(&totals), "more CPUs than the rank has");
        ask.cpus = 1.0;
        ask.gpus = 1.0;
        assert!(!ask.fits_in(&totals), "a GPU the rank does not have");
        ask.gpus = 0.0;
        ask.custom.push(("tape".into(), 0.5));
        assert!(
            !ask.fits_in(&totals),
            "a custom resource the rank does not have"
        );
    }
}
