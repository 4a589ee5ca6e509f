//! Support for the code the macros generate. Not a public API: names here
//! may change at any release.

#[cfg(test)]
mod busy_poll_tests;
mod returns;
mod run_by_id;
mod streaming;
mod sync_probe;

use std::fmt::Display;
use std::sync::{Arc, OnceLock, Weak};

use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::object::cell::Producer;
use crate::object::object_ref::ObjectRef;
use crate::resources::options::{ActorOptions, TaskOptions};
use crate::runtime::Runtime;
use crate::runtime::arg::{Arg, Args};
use crate::task::cell::{Job, NewTask, Outcome, RetryPolicy, TaskCell};
use crate::task::context;
use crate::uncounted::{List, Name};
use crate::values::Object;

pub use crate::actor::checkpoint::Codec;
pub use crate::object::codec::{EncodedCall, Untyped};
pub use crate::runtime::actor_handle::{create_hosted, hosted_handle};
pub use crate::runtime::call_result::Failure;
use crate::runtime::call_result::finish;
pub use crate::runtime::method_body::{AsyncBody, AsyncResult, Exclusive, MethodBody, Shared};
pub use returns::project;
pub use streaming::{
    ActorStreamCall, OpenStream, StreamTarget, drain, generator, items_fallible, items_ok,
    open_stream,
};
pub use sync_probe::{ShareFn, SyncProbe, ViaNoSync, ViaSync};

/// Turns a function's return value into a call result: infallible returns.
pub fn ok<R>(value: R) -> std::result::Result<R, Failure> {
    Ok(value)
}

/// Turns a function's return value into a call result: `Result` returns.
pub fn fallible<R, E: Display>(
    value: std::result::Result<R, E>,
) -> std::result::Result<R, Failure> {
    value.map_err(|e| Failure::App(e.to_string()))
}

/// The top-level ref arguments a call waits for.
#[derive(Default)]
pub struct Deps {
    slots: crate::task::cell::Inputs,
    /// Where the first list argument keeps its refs (address, bytes): the
    /// task's thread prefetches it (see `DepWaiter::warm`).
    list: (usize, usize),
}

impl Deps {
    /// Notes `arg` if it is a ref.
    pub fn add<T>(&mut self, arg: &Arg<T>) {
        if let Some(s) = arg.dep() {
            self.slots.push(s.clone());
        }
    }

    /// Notes every ref in the list `args`.
    pub fn add_each<T>(&mut self, args: &Args<T>) {
        if self.list.1 == 0 {
            self.list = args.region();
        }
        self.slots.extend(args.deps().cloned());
    }

    /// Starts fetching the borrowed ones, for a call that runs on this rank
    /// (after placement: a call sent to another rank leaves them be).
    pub fn prefetch(&self) {
        for s in &self.slots {
            s.start_fetch();
        }
    }
}

/// Submits a task whose body is `body` (it resolves its arguments and calls
/// the function).
pub fn submit<R, F>(
    rt: &Runtime,
    fn_name: &'static str,
    opts: &TaskOptions,
    deps: Deps,
    mut body: F,
) -> Result<ObjectRef<R>>
where
    R: Object,
    F: FnMut(&Runtime) -> std::result::Result<R, Failure> + Send + 'static,
{
    let name = task_name(opts, fn_name);
    let task_name = name.clone();
    submit_job(rt, name, fn_name, opts, deps, move |rt| {
        let result = body(rt);
        finish(rt, &|| task_name.to_string(), result)
    })
}

/// The name a task goes by: its options' name, or its function's (which
/// costs nothing to copy).
fn task_name(opts: &TaskOptions, fn_name: &'static str) -> Name {
    match &opts.name {
        Some(n) => Name::Shared(n.as_str().into()),
        None => Name::Static(fn_name),
    }
}

/// Submits a task named `name` to run here, whose body gives its attempt's
/// [`Outcome`] itself, as an `ObjectRef<R>` (the body stores an `R`).
fn submit_job<R>(
    rt: &Runtime,
    name: Name,
    fn_name: &'static str,
    opts: &TaskOptions,
    deps: Deps,
    mut body: impl FnMut(&Runtime) -> Outcome + Send + 'static,
) -> Result<ObjectRef<R>> {
    let inner = &rt.inner;
    if inner.is_shut() {
        return Err(Error::Shutdown);
    }
    inner.pool.tasks.submitted();
    // A finished task's remains for each one submitted: their memory
    // comes back to this thread's allocator (see `task::leftovers`).
    inner.pool.leftovers.drop_one();
    let request = opts
        .request(&name, &inner.pool.ledger)
        .map_err(|e| crate::cluster::explain_infeasible(inner, e))?;
    let env = List::from(opts.env.clone());
    // The body runs on whichever thread claims the task: it holds the
    // runtime weakly (a queued task must not keep a shut runtime alive).
    let weak = Arc::downgrade(inner);
    let job: Job = Box::new(move |_ctx| {
        if let Some(rt) = crate::runtime::current::serving(&weak) {
            return body(&rt);
        }
        let Some(inner) = weak.upgrade() else {
            return Outcome::Error(Error::Shutdown);
        };
        body(&Runtime::from_inner(inner))
    });
    let (cell, output) = TaskCell::new(
        &inner.pool,
        inner.store.ids.object(),
        &inner.store.unhandled,
        NewTask {
            name,
            label: fn_name,
            request,
            env,
            retry: RetryPolicy {
                max_retries: opts.max_retries,
                retry_on: opts.retry_on.clone(),
            },
            job,
        },
    );
    let out = ObjectRef::from_slot(output);
    // A task submitted by a task is cancelled with it (a recursive cancel).
    if let Some(parent) = crate::task::context::current_task().and_then(|t| t.cancel.clone())
        && !parent
            .cancel_state()
            .adopt(Arc::downgrade(&cell) as Weak<dyn Producer>)
    {
        cell.cancel(true);
        return Ok(out);
    }
    deps.prefetch();
    cell.submit(deps.slots, deps.list);
    help(inner);
    Ok(out)
}

/// Sends a task to another rank when it should run there (see `cluster`);
/// `None`: run it here.
pub fn try_remote<R: Object>(
    rt: &Runtime,
    fn_name: &'static str,
    opts: &TaskOptions,
    deps: &Deps,
    fn_id: u64,
    encode: impl FnOnce() -> Result<EncodedCall>,
) -> Option<Result<ObjectRef<R>>> {
    let sent = crate::cluster::try_remote(&rt.inner, fn_name, opts, &deps.slots, fn_id, encode);
    if sent.is_some() {
        help(&rt.inner);
    }
    sent
}

/// With `Config::submitter_help`, a thread that submits work, outside any
/// task or actor call, on a single CPU takes in what has come from other
/// ranks and runs a short ready task no worker has taken yet (see
/// `Scheduler::help`): the workers share that CPU (a rank per core) and
/// cannot run while it submits, so a result that came for a task here
/// would wait for the end of its submissions. A thread with CPUs of its
/// own leaves the tasks to the workers, which run beside it.
fn help(inner: &Arc<crate::runtime::Inner>) {
    thread_local! {
        static ONE_CPU: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
    }
    if !inner.pool.sched.helps()
        || crate::task::context::current_task().is_some()
        || !ONE_CPU.with(|one| {
            *one.get_or_init(|| {
                ferry_launcher::affinity::current_thread_cpus().is_ok_and(|c| c.len() == 1)
            })
        })
    {
        return;
    }
    let sched = &inner.pool.sched;
    if let Some(c) = &inner.cluster {
        c.transport.poll();
    }
    sched.help(&inner.pool, 1);
}

/// Where the owner of the borrowed object `r` keeps its bytes, as its
/// answer to this rank's borrow told: the owner's rank and the offset in
/// its arena (`None` for an object of this rank's own, or before the
/// answer came). For `ferry bench`, whose raw baseline reads the same
/// bytes as the object transfer it stands beside.
pub fn borrowed_place<T>(r: &crate::ObjectRef<T>) -> Option<(u32, u64)> {
    let b = r.slot.borrow()?;
    b.at.get().map(|(offset, _, _)| (b.owner, *offset))
}

/// A one-sided read of `dst.len()` bytes at `offset` of rank `from`'s arena,
/// straight through the transport: under MPI, an `MPI_Get` +
/// `MPI_Win_flush_local` issued by the calling thread itself (no other
/// thread in between), the raw baseline `ferry bench` prints beside object
/// transfers.
pub fn raw_read(rt: &Runtime, from: u32, offset: usize, dst: &mut [u8]) -> Result<()> {
    let c = rt
        .inner
        .cluster()
        .ok_or_else(|| Error::InvalidArgument("raw_read needs several ranks".into()))?;
    c.transport
        .read(from, offset, dst)
        .map_err(|source| Error::Transport {
            what: format!("raw read of {} bytes from rank {from}", dst.len()),
            source,
        })
}

/// `iters` raw round trips of an 8-byte message with rank `peer` through the
/// transport's library (MPI send and receive), the baseline `ferry bench`
/// prints beside cross-rank calls; each round trip's time, or `None` where
/// the transport has no such library (loopback).
pub fn raw_ping_pong(
    rt: &Runtime,
    peer: u32,
    iters: usize,
) -> Result<Option<Vec<std::time::Duration>>> {
    let c = rt
        .inner
        .cluster()
        .ok_or_else(|| Error::InvalidArgument("raw_ping_pong needs several ranks".into()))?;
    if peer == c.rank || peer >= c.size() {
        return Err(Error::InvalidArgument(format!(
            "raw_ping_pong: no rank {peer} to play with (this is rank {} of {})",
            c.rank,
            c.size()
        )));
    }
    c.send(
        peer,
        &crate::cluster::wire::Msg::PingPong {
            iters: iters as u64,
        },
    )?;
    c.transport
        .raw_ping_pong(peer, iters, true)
        .map_err(|source| Error::Transport {
            what: format!("raw ping-pong with rank {peer}"),
            source,
        })
}

/// True while the running attempt can still be retried (so arguments must be
/// kept for the next attempt).
pub fn may_retry() -> bool {
    context::with_current_task(|c| c.may_retry.get()).unwrap_or(false)
}

/// Clones a value when its type is `Clone` (autoref specialization: call as
/// `(&&CloneProbe(&v)).maybe_clone()` on a concrete type).
pub struct CloneProbe<'a, T>(pub &'a T);

/// The `Clone` arm of [`CloneProbe`].
pub trait ViaClone<T> {
    /// A clone.
    fn maybe_clone(&self) -> Option<T>;
}

impl<T: Clone> ViaClone<T> for &CloneProbe<'_, T> {
    fn maybe_clone(&self) -> Option<T> {
        Some(self.0.clone())
    }
}

/// The fallback arm of [`CloneProbe`].
pub trait ViaNoClone<T> {
    /// None: the type cannot be cloned.
    fn maybe_clone(&self) -> Option<T>;
}

impl<T> ViaNoClone<T> for CloneProbe<'_, T> {
    fn maybe_clone(&self) -> Option<T> {
        None
    }
}

/// Takes a call's arguments for one attempt: a clone while a retry is
/// possible (when they can be cloned), the originals otherwise.
pub fn args_for_attempt<T>(
    stash: &mut Option<T>,
    clone: impl FnOnce(&T) -> Option<T>,
) -> std::result::Result<T, Failure> {
    if may_retry()
        && let Some(c) = stash.as_ref().and_then(clone)
    {
        return Ok(c);
    }
    stash.take().ok_or_else(|| {
        Failure::App(
            "cannot retry: the arguments were used by the first attempt and are not Clone"
                .to_string(),
        )
    })
}

/// What `#[ferry::main]` functions may return: `()`, `Result<(), E>`, an
/// `ExitCode` (a program's own status, e.g. 2 for bad flags), or
/// `Result<ExitCode, E>`.
pub trait MainResult {
    /// The status to end with, or the error to report (status 1).
    fn into_exit(self) -> std::result::Result<std::process::ExitCode, String>;
}

impl MainResult for () {
    fn into_exit(self) -> std::result::Result<std::process::ExitCode, String> {
        Ok(std::process::ExitCode::SUCCESS)
    }
}

impl MainResult for std::process::ExitCode {
    fn into_exit(self) -> std::result::Result<std::process::ExitCode, String> {
        Ok(self)
    }
}

impl<T: MainResult, E: Display> MainResult for std::result::Result<T, E> {
    fn into_exit(self) -> std::result::Result<std::process::ExitCode, String> {
        self.map_err(|e| e.to_string())?.into_exit()
    }
}

/// The body of a `#[ferry::main]` program: start, run, shut down, report.
pub fn run_main<R: MainResult>(body: impl FnOnce(Runtime) -> R) -> std::process::ExitCode {
    let started = crate::config::Config::from_env().and_then(crate::runtime::init);
    let rt = match started {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Rank 0 runs the body; the other ranks serve until it ends the job.
    let (outcome, stopped) = if rt.rank() == 0 {
        let outcome = body(rt.clone()).into_exit();
        (outcome, rt.shutdown())
    } else {
        (
            rt.serve()
                .map(|()| std::process::ExitCode::SUCCESS)
                .map_err(|e| format!("rank {}: {e}", rt.rank())),
            Ok(()),
        )
    };
    match (outcome, stopped) {
        (Ok(code), Ok(())) => code,
        (Err(e), _) => {
            eprintln!("Error: {e}");
            std::process::ExitCode::FAILURE
        }
        (Ok(_), Err(e)) => {
            eprintln!("ferry: shutdown: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Builder methods of every generated options type (a field `opts`).
#[macro_export]
#[doc(hidden)]
macro_rules! __builder_methods {
    (task) => {
        $crate::__builder_methods!(common $crate::TaskOptions);
        /// Retries after a system failure (default 3; -1 forever), and after
        /// application errors when `retry_exceptions` is set.
        pub fn max_retries(mut self, n: i32) -> Self { self.opts = self.opts.max_retries(n); self }
        /// Retry on application errors (panics and `Err`) too.
        pub fn retry_exceptions(mut self, yes: bool) -> Self { self.opts = self.opts.retry_exceptions(yes); self }
        /// Retry on the application errors for which `pred` says yes.
        pub fn retry_when(mut self, pred: impl Fn(&$crate::TaskError) -> bool + Send + Sync + 'static) -> Self { self.opts = self.opts.retry_when(pred); self }
        /// Run on this rank (Ray's node-affinity scheduling strategy).
        pub fn on_rank(mut self, rank: u32) -> Self { self.opts = self.opts.on_rank(rank); self }
        /// For a streaming task: items produced and not yet taken at which the producer pauses (default 16).
        pub fn generator_backpressure_num_objects(mut self, n: u64) -> Self { self.opts = self.opts.generator_backpressure_num_objects(n); self }
    };
    (actor) => {
        $crate::__builder_methods!(common $crate::ActorOptions);
        /// Restarts after a panic or the loss of its rank, re-running the constructor (default 0; -1 forever).
        pub fn max_restarts(mut self, n: i32) -> Self { self.opts = self.opts.max_restarts(n); self }
        /// Resends of a call in flight when the actor's rank was lost (default 0; -1 forever).
        pub fn max_task_retries(mut self, n: i32) -> Self { self.opts = self.opts.max_task_retries(n); self }
        /// Checkpoints every `n` calls (see [`ActorOptions::checkpoint_every`](::ferry::ActorOptions::checkpoint_every)).
        pub fn checkpoint_every(mut self, n: u64) -> Self { self.opts = self.opts.checkpoint_every(n); self }
        /// Create the actor on this rank (Ray's node-affinity scheduling strategy).
        pub fn on_rank(mut self, rank: u32) -> Self { self.opts = self.opts.on_rank(rank); self }
        /// Run the actor on a thread bound to a core or NUMA node (see [`ActorOptions::pin`](::ferry::ActorOptions::pin)).
        pub fn pin(mut self, pin: ::ferry::Pin) -> Self { self.opts = self.opts.pin(pin); self }
        /// With a name: give the existing actor's handle if the name is taken (Ray's `get_if_exists=True`).
        pub fn get_if_exists(mut self) -> Self { self.opts = self.opts.get_if_exists(); self }
        /// With a name: live until killed, even with no handle left (Ray's `lifetime="detached"`, within the job).
        pub fn lifetime_detached(mut self) -> Self { self.opts = self.opts.lifetime_detached(); self }
        /// Calls that may run at once (Ray's `max_concurrency`; see [`ActorOptions::max_concurrency`](::ferry::ActorOptions::max_concurrency)).
        pub fn max_concurrency(mut self, n: u32) -> Self { self.opts = self.opts.max_concurrency(n); self }
    };
    (common $opts:ty) => {
        /// Logical CPUs (fractional and 0 allowed).
        pub fn num_cpus(mut self, n: f64) -> Self { self.opts = self.opts.num_cpus(n); self }
        /// Logical GPUs.
        pub fn num_gpus(mut self, n: f64) -> Self { self.opts = self.opts.num_gpus(n); self }
        /// Memory in bytes (logical).
        pub fn memory(mut self, bytes: f64) -> Self { self.opts = self.opts.memory(bytes); self }
        /// A custom resource.
        pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self { self.opts = self.opts.resource(name, amount); self }
        /// An environment variable (runtime_env env_vars).
        pub fn env_var(mut self, key: impl Into<String>, value: impl Into<String>) -> Self { self.opts = self.opts.env_var(key, value); self }
        /// A name for errors and listings.
        pub fn name(mut self, name: impl Into<String>) -> Self { self.opts = self.opts.name(name); self }
        /// Runs in bundle `index` of placement group `pg`, on its rank and from its resources.
        pub fn placement_group(mut self, pg: &$crate::PlacementGroup, index: u32) -> Self { self.opts = self.opts.placement_group(pg, index); self }
        /// Replaces all options at once.
        pub fn with(mut self, opts: $opts) -> Self { self.opts = opts; self }
    };
}

pub use inventory;

/// A remote function, listed at link time so any rank of the same binary
/// can find it by its stable id and run it from encoded arguments.
#[derive(Debug)]
pub struct RemoteFn {
    /// [`stable_id`] of `path`.
    pub id: u64,
    /// `module::path::name`.
    pub path: &'static str,
    /// Decodes arguments made by the function's `encode` and submits the task.
    pub invoke: fn(&Runtime, &TaskOptions, &[u8]) -> Result<ObjectRef<Untyped>>,
}

/// Encodes a call's argument tuple (made by generated `encode` functions).
pub fn encode_call<T: ferry_store::Storable>(
    rt: &Runtime,
    id: u64,
    args: &T,
) -> Result<EncodedCall> {
    crate::object::codec::encode(&rt.inner.store.exports, id, args)
}

/// Decodes an argument tuple: validated, then deserialized with refs looked
/// up in `rt`. Bytes that are not a valid archive are an error.
pub fn decode_args<T: crate::values::Remotable>(rt: &Runtime, bytes: &[u8]) -> Result<T> {
    crate::runtime::current::with_runtime(&rt.inner, || crate::object::codec::decode(bytes))
}

/// Runs an encoded call: finds the function by id and submits it with `opts`.
pub fn invoke_with(
    rt: &Runtime,
    id: u64,
    opts: &TaskOptions,
    args: &[u8],
) -> Result<ObjectRef<Untyped>> {
    let f = lookup_remote(id).ok_or(Error::FunctionNotInBinary { id })?;
    (f.invoke)(rt, opts, args)
}

/// Runs an encoded call with default options.
pub fn invoke(rt: &Runtime, call: &EncodedCall) -> Result<ObjectRef<Untyped>> {
    invoke_with(rt, call.id, &TaskOptions::default(), &call.args)
}

inventory::collect!(RemoteFn);

/// FNV-1a of a function's path (the macros name it here).
pub use crate::ids::stable_id;

/// This build of the program as far as ranks must agree on it: Ferry's
/// version and every remote function, actor class and method it links
/// (FNV-1a over their sorted ids). Two ranks with different build ids could
/// not run each other's tasks, so they refuse to start together.
pub(crate) fn build_id() -> u64 {
    static ID: OnceLock<u64> = OnceLock::new();
    *ID.get_or_init(|| {
        let mut ids: Vec<u64> = inventory::iter::<RemoteFn>()
            .map(|f| f.id)
            .chain(inventory::iter::<ActorCtorFn>().map(|f| f.class))
            .chain(inventory::iter::<ActorMethodFn>().map(|f| f.id))
            .collect();
        ids.sort_unstable();
        let mut text = String::from(env!("CARGO_PKG_VERSION"));
        for id in ids {
            text.push_str(&format!(",{id:x}"));
        }
        stable_id(&text)
    })
}

/// Finds a remote function by its stable id (a table built on first use).
pub fn lookup_remote(id: u64) -> Option<&'static RemoteFn> {
    static TABLE: OnceLock<crate::ids::IdMap<u64, &'static RemoteFn>> = OnceLock::new();
    TABLE
        .get_or_init(|| inventory::iter::<RemoteFn>().map(|f| (f.id, f)).collect())
        .get(&id)
        .copied()
}

/// An actor class's constructor, listed at link time so any rank of the same
/// binary can create the actor from encoded constructor arguments.
#[derive(Debug)]
pub struct ActorCtorFn {
    /// The class's [`ActorClass::ID`](crate::ActorClass::ID).
    pub class: u64,
    /// `module::path::Class`.
    pub path: &'static str,
    /// Decodes the arguments and creates the actor on this rank, under `id`.
    pub create: fn(&Runtime, &ActorOptions, ActorId, &[u8]) -> Result<()>,
}

/// An actor method, listed at link time so a call made on another rank can
/// run here from its encoded arguments.
#[derive(Debug)]
pub struct ActorMethodFn {
    /// [`stable_id`] of `Class::method` (with its module path).
    pub id: u64,
    /// `module::path::Class::method`.
    pub path: &'static str,
    /// Decodes the arguments and submits the call to the actor `id`, which
    /// lives on this rank.
    pub invoke: fn(&Runtime, ActorId, &[u8]) -> Result<ObjectRef<Untyped>>,
}

inventory::collect!(ActorCtorFn);
inventory::collect!(ActorMethodFn);

/// Finds an actor class's constructor by the class id.
pub(crate) fn lookup_ctor(class: u64) -> Option<&'static ActorCtorFn> {
    static TABLE: OnceLock<crate::ids::IdMap<u64, &'static ActorCtorFn>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            inventory::iter::<ActorCtorFn>()
                .map(|f| (f.class, f))
                .collect()
        })
        .get(&class)
        .copied()
}

/// Finds an actor method by its id.
pub(crate) fn lookup_method(id: u64) -> Option<&'static ActorMethodFn> {
    static TABLE: OnceLock<crate::ids::IdMap<u64, &'static ActorMethodFn>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            inventory::iter::<ActorMethodFn>()
                .map(|f| (f.id, f))
                .collect()
        })
        .get(&id)
        .copied()
}

/// Encodes arguments when their type is archivable (autoref specialization:
/// call as `(&&EncodeProbe(&args)).maybe_encode(rt, id, what)` on a concrete
/// type). An actor whose constructor or method arguments cannot be archived
/// still works on its own rank; only crossing ranks needs the encoding.
pub struct EncodeProbe<'a, T>(pub &'a T);

/// The archivable arm of [`EncodeProbe`].
pub trait ViaEncode {
    /// The encoded arguments.
    fn maybe_encode(&self, rt: &Runtime, id: u64, what: &str) -> Result<EncodedCall>;
}

impl<T: ferry_store::Storable> ViaEncode for &EncodeProbe<'_, T> {
    fn maybe_encode(&self, rt: &Runtime, id: u64, _what: &str) -> Result<EncodedCall> {
        encode_call(rt, id, self.0)
    }
}

/// The fallback arm of [`EncodeProbe`].
pub trait ViaNoEncode {
    /// An error: the arguments cannot cross ranks.
    fn maybe_encode(&self, rt: &Runtime, id: u64, what: &str) -> Result<EncodedCall>;
}

impl<T> ViaNoEncode for EncodeProbe<'_, T> {
    fn maybe_encode(&self, _rt: &Runtime, _id: u64, what: &str) -> Result<EncodedCall> {
        Err(not_archivable(what))
    }
}

/// Decodes arguments when their type is archivable (the other half of
/// [`EncodeProbe`]: `(&&DecodeProbe::<T>::new()).maybe_decode(rt, bytes, what)`).
pub struct DecodeProbe<T>(std::marker::PhantomData<fn() -> T>);

impl<T> DecodeProbe<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        DecodeProbe(std::marker::PhantomData)
    }
}

/// The archivable arm of [`DecodeProbe`].
pub trait ViaDecode<T> {
    /// The decoded arguments.
    fn maybe_decode(&self, rt: &Runtime, bytes: &[u8], what: &str) -> Result<T>;
}

impl<T: crate::values::Remotable> ViaDecode<T> for &DecodeProbe<T> {
    fn maybe_decode(&self, rt: &Runtime, bytes: &[u8], _what: &str) -> Result<T> {
        decode_args(rt, bytes)
    }
}

/// The fallback arm of [`DecodeProbe`].
pub trait ViaNoDecode<T> {
    /// An error: the arguments cannot cross ranks.
    fn maybe_decode(&self, rt: &Runtime, bytes: &[u8], what: &str) -> Result<T>;
}

impl<T> ViaNoDecode<T> for DecodeProbe<T> {
    fn maybe_decode(&self, _rt: &Runtime, _bytes: &[u8], what: &str) -> Result<T> {
        Err(not_archivable(what))
    }
}

fn not_archivable(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "{what}: the arguments are not archivable (derive rkyv's Archive, Serialize and \
         Deserialize on them), so the actor cannot be reached from another rank"
    ))
}
