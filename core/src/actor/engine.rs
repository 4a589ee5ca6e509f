//! Actors: stateful workers, each on its own thread.
//!
//! # Protocol
//!
//! 1. `create` checks the actor's resources are feasible, starts its thread
//!    and returns a handle at once. The thread waits until the resources are
//!    free, then runs the constructor.
//! 2. Calls go into one FIFO mailbox, so calls from one caller run in the
//!    order they were made, one at a time; different actors run in parallel.
//!    The thread spins briefly on an empty mailbox, then parks; a sender
//!    unparks it only when it has parked (SeqCst fences on both sides).
//! 3. A call that panics fails; the actor is then re-created by re-running
//!    its constructor while restarts remain (`max_restarts`), else it dies.
//!    A call returning `Err` fails that call only.
//! 4. When the last handle is dropped the actor finishes the calls already
//!    queued, then stops. `kill` stops it now: queued calls fail with
//!    [`Error::ActorDied`].
//! 5. An actor lives on one rank. A handle on another rank is a
//!    [`RemoteActor`]: its calls are encoded (method id and archived
//!    arguments) and sent to the actor's rank, which runs them in arrival
//!    order; handles on other ranks keep the actor alive like local ones
//!    (see `remote_actor`).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use rkyv::rancor::{Fallible, Source};
use rkyv::rend::{u32_le, u64_le};
use rkyv::{Archive, Deserialize, Place, Portable, Serialize};

use crate::cluster::remote_actor::{self, RemoteActor};
use crate::error::{Error, FailureKind, Result, TaskError};
use crate::ids::ActorId;
use crate::object::cell::{KeepAlive, Slot, Stored};
use crate::object::exports::{self, NotInRuntime};
use crate::object::object_ref::ObjectRef;
use crate::private::EncodedCall;
use crate::resources::ledger::Request;
use crate::resources::options::ActorOptions;
use crate::runtime::{Inner, Runtime};
use crate::signal;
use crate::task::cell::{Outcome, panic_message};
use crate::task::context::{self, TaskCtx};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An actor class: implemented by `#[ferry::actor]`.
pub trait ActorClass: Sized + Send + 'static {
    /// The generated handle type whose methods make remote calls.
    type Handle: From<ActorRef<Self>> + AsRef<ActorRef<Self>>;
    /// The class name, for errors and listings.
    const NAME: &'static str;
    /// The class's stable id (a hash of its path), the same in every copy of
    /// the binary: how another rank finds its constructor.
    const ID: u64;
    /// How its state is checkpointed (`#[ferry::actor(checkpoint)]`).
    #[doc(hidden)]
    const CHECKPOINT: Option<crate::actor::checkpoint::Codec<Self>> = None;
}

/// The method id a checkpoint request travels under to another rank.
pub(crate) const CHECKPOINT_METHOD: u64 = u64::MAX;

type CallFn<A> = Box<dyn FnOnce(&mut A, &Runtime) -> Outcome + Send>;

struct Call<A> {
    method: &'static str,
    run: CallFn<A>,
    output: Arc<Slot>,
}

enum Msg<A> {
    Call(Call<A>),
    /// The last handle is gone: finish what is queued, then stop.
    Drain,
}

struct Core<A> {
    id: ActorId,
    /// The rank the actor lives on.
    rank: u32,
    name: Arc<str>,
    mailbox: Mutex<Mailbox<A>>,
    queued: AtomicUsize,
    parked: AtomicBool,
    thread: OnceLock<Thread>,
    dead: OnceLock<String>,
    /// Set (before the `Drain` message is sent) when the last handle is gone.
    orphaned: AtomicBool,
    /// Times the constructor ran again after a panic.
    restarts: AtomicUsize,
    /// Where its checkpoints go and how often (see `checkpoint`).
    ckpt: Option<Arc<crate::actor::checkpoint::Schedule>>,
    /// Its `max_task_retries`, told to other ranks with its handles.
    task_retries: i32,
    /// Calls that returned, for `checkpoint_every`.
    calls: Arc<std::sync::atomic::AtomicU64>,
    rt: Weak<Inner>,
}

struct Mailbox<A> {
    queue: VecDeque<Msg<A>>,
    /// Set when the actor thread has finished: later calls fail at once.
    closed: bool,
}

impl<A> Core<A> {
    fn push(&self, msg: Msg<A>) {
        {
            let mut mb = lock(&self.mailbox);
            if mb.closed {
                drop(mb);
                if let Msg::Call(c) = msg {
                    let reason = self.dead.get().map_or("it has stopped", |s| s.as_str());
                    c.output.complete(Stored::Error(self.died(reason)));
                }
                return;
            }
            mb.queue.push_back(msg);
            self.queued.fetch_add(1, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
    }

    fn pop(&self) -> Option<Msg<A>> {
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut mb = lock(&self.mailbox);
        let m = mb.queue.pop_front();
        if m.is_some() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
        m
    }

    /// Queues a checkpoint behind the calls already queued; the ref
    /// resolves to the bytes written.
    fn request_checkpoint(&self) -> Result<ObjectRef<u64>>
    where
        A: ActorClass,
    {
        let Some(codec) = A::CHECKPOINT else {
            return Err(Error::InvalidArgument(format!(
                "actor {} cannot be checkpointed: mark its class #[ferry::actor(checkpoint)] \
                 (its state must be rkyv archivable)",
                self.name
            )));
        };
        let Some(ckpt) = &self.ckpt else {
            return Err(Error::InvalidArgument(format!(
                "actor {} has no name: checkpoints are kept by name, give it one with .name(...)",
                self.name
            )));
        };
        let inner = self.rt.upgrade().ok_or(Error::Shutdown)?;
        let output = Slot::pending(inner.ids.object(), None, inner.unhandled.clone());
        let r = ObjectRef::from_slot(output.clone());
        if let Some(reason) = self.dead.get() {
            output.complete(Stored::Error(self.died(reason)));
            return Ok(r);
        }
        let (ckpt, calls, name) = (ckpt.clone(), self.calls.clone(), self.name.clone());
        let run: CallFn<A> = Box::new(move |actor, rt| {
            let n = calls.load(Ordering::Relaxed);
            match ckpt.take(rt, &codec, actor, n, &name) {
                Ok(bytes) => crate::private::finish(rt, &|| "checkpoint".into(), Ok(bytes)),
                Err(e) => Outcome::Error(e),
            }
        });
        self.push(Msg::Call(Call {
            method: "checkpoint",
            run,
            output,
        }));
        Ok(r)
    }

    fn died(&self, reason: &str) -> Error {
        Error::ActorDied {
            actor: self.name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Takes every queued call out of the mailbox (closing it if asked) and fails them.
    fn fail_queued(&self, close: bool) {
        let drained: Vec<_> = {
            let mut mb = lock(&self.mailbox);
            mb.closed |= close;
            let d: Vec<_> = mb.queue.drain(..).collect();
            self.queued.fetch_sub(d.len(), Ordering::AcqRel);
            d
        };
        let reason = self.dead.get().map_or("it has stopped", |s| s.as_str());
        for m in drained {
            if let Msg::Call(c) = m {
                c.output.complete(Stored::Error(self.died(reason)));
            }
        }
    }

    /// Marks the actor dead and fails every queued call.
    fn kill(&self, reason: &str) {
        let _ = self.dead.set(reason.to_string());
        self.fail_queued(false);
        self.push(Msg::Drain);
    }
}

/// What the runtime needs of every actor, whatever its class.
trait Control: Send + Sync {
    fn kill(&self, reason: &str);
    /// Asks for a checkpoint now (see `checkpoint`).
    fn checkpoint(&self) -> Result<ObjectRef<crate::private::Untyped>>;
    /// The actor's line in state listings.
    fn state(&self) -> crate::state::ActorState;
}

impl<A: ActorClass> Control for Core<A> {
    fn kill(&self, reason: &str) {
        Core::kill(self, reason);
    }

    fn checkpoint(&self) -> Result<ObjectRef<crate::private::Untyped>> {
        self.request_checkpoint().map(ObjectRef::cast)
    }

    fn state(&self) -> crate::state::ActorState {
        crate::state::ActorState {
            id: self.id.to_string(),
            name: self.name.to_string(),
            rank: self.rank,
            state: self
                .dead
                .get()
                .map_or_else(|| "alive".to_string(), |why| format!("dead: {why}")),
            restarts: self.restarts.load(Ordering::Relaxed) as u32,
            queued: self.queued.load(Ordering::Relaxed) as u64,
            lives_here: true,
        }
    }
}

/// The runtime's list of live actors.
#[derive(Default)]
pub(crate) struct ActorTable {
    live: Mutex<HashMap<ActorId, Arc<dyn Control>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl ActorTable {
    /// Asks actor `id`, which lives here, for a checkpoint.
    pub(crate) fn checkpoint(&self, id: ActorId) -> Result<ObjectRef<crate::private::Untyped>> {
        let found = lock(&self.live).get(&id).cloned();
        match found {
            Some(c) => c.checkpoint(),
            None => Err(Error::ActorDied {
                actor: id.to_string(),
                reason: "it is not on this rank any more".into(),
            }),
        }
    }

    /// The actors living here, for state listings.
    pub(crate) fn states(&self) -> Vec<crate::state::ActorState> {
        let live: Vec<Arc<dyn Control>> = lock(&self.live).values().cloned().collect();
        live.iter().map(|c| c.state()).collect()
    }

    /// Kills actor `id` if it lives here.
    pub(crate) fn kill(&self, id: ActorId, reason: &str) {
        let found = lock(&self.live).get(&id).cloned();
        if let Some(c) = found {
            c.kill(reason);
        }
    }

    pub(crate) fn shutdown(&self) {
        let live: Vec<_> = lock(&self.live).drain().collect();
        for (_, c) in &live {
            c.kill("the runtime shut down");
        }
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        crate::task::scheduler::join_with_grace(threads);
    }
}

/// Keeps an actor alive; the last one dropped lets it stop.
struct Link<A> {
    core: Arc<Core<A>>,
}

impl<A> Drop for Link<A> {
    fn drop(&mut self) {
        // Release pairs with the actor thread's Acquire load when it takes `Drain`.
        self.core.orphaned.store(true, Ordering::Release);
        if let Some(inner) = self.core.rt.upgrade() {
            inner.exports.forget_actor(self.core.id);
            remote_actor::no_more_handles(&inner, self.core.id);
        }
        self.core.push(Msg::Drain);
    }
}

/// What a serialized handle keeps alive inside the object (or call) that
/// holds it, and where the actor lives: the receiver of such an object
/// registers its own handle before the sender lets go (see `cluster`).
pub(crate) struct HeldHandle {
    pub(crate) id: ActorId,
    pub(crate) host: u32,
    _keep: KeepAlive,
}

impl HeldHandle {
    pub(crate) fn new(id: ActorId, host: u32, keep: KeepAlive) -> HeldHandle {
        HeldHandle {
            id,
            host,
            _keep: keep,
        }
    }
}

/// How a handle reaches its actor.
enum Reach<A> {
    /// The actor lives on this rank.
    Local(Arc<Link<A>>),
    /// The actor lives on another rank.
    Remote(Arc<RemoteActor>),
}

/// The class-independent part of an actor handle, used by generated code.
pub struct ActorRef<A> {
    reach: Reach<A>,
}

impl<A> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        ActorRef {
            reach: match &self.reach {
                Reach::Local(l) => Reach::Local(l.clone()),
                Reach::Remote(r) => Reach::Remote(r.clone()),
            },
        }
    }
}

impl<A: ActorClass> ActorRef<A> {
    /// The actor's id.
    pub fn id(&self) -> ActorId {
        match &self.reach {
            Reach::Local(l) => l.core.id,
            Reach::Remote(r) => r.id,
        }
    }

    /// The rank the actor lives on.
    pub fn rank(&self) -> u32 {
        match &self.reach {
            Reach::Local(l) => l.core.rank,
            Reach::Remote(r) => r.host(),
        }
    }

    /// The actor's `max_task_retries`, as far as this rank knows.
    fn task_retries(&self) -> i32 {
        match &self.reach {
            Reach::Local(l) => l.core.task_retries,
            Reach::Remote(r) => r.task_retries(),
        }
    }

    /// For a handle to an actor on another rank: the runtime to encode a
    /// call with (calls to a local actor are not encoded).
    #[doc(hidden)]
    pub fn remote_runtime(&self) -> Option<Runtime> {
        match &self.reach {
            Reach::Local(_) => None,
            Reach::Remote(r) => r.rt.upgrade().map(Runtime::from_inner),
        }
    }

    /// Submits a method call; `run` resolves the arguments and calls the method.
    #[doc(hidden)]
    pub fn call<R: crate::values::Object>(
        &self,
        method: &'static str,
        run: impl FnOnce(&mut A, &Runtime) -> std::result::Result<R, crate::private::Failure>
        + Send
        + 'static,
    ) -> Result<ObjectRef<R>> {
        let core = match &self.reach {
            Reach::Local(l) => &l.core,
            // The runtime is gone (so the call could not be encoded).
            Reach::Remote(_) => return Err(Error::Shutdown),
        };
        let inner = core.rt.upgrade().ok_or(Error::Shutdown)?;
        if inner.is_shut() {
            return Err(Error::Shutdown);
        }
        let output = Slot::pending(inner.ids.object(), None, inner.unhandled.clone());
        let r = ObjectRef::from_slot(output.clone());
        if let Some(reason) = core.dead.get() {
            output.complete(Stored::Error(core.died(reason)));
            return Ok(r);
        }
        let task_name = move || format!("{}.{method}", A::NAME);
        let run: CallFn<A> =
            Box::new(move |actor, rt| crate::private::finish(rt, &task_name, run(actor, rt)));
        core.push(Msg::Call(Call {
            method,
            run,
            output,
        }));
        Ok(r)
    }
}

/// A handle to an actor (Ray's `ActorHandle`). Its methods (from the
/// generated `A::Handle`, through `Deref`) make remote calls:
/// `counter.increment().remote()`. Clone it, pass it to tasks and other
/// actors, return it from them; the actor stops when the last handle is gone.
pub struct ActorHandle<A: ActorClass> {
    proxy: A::Handle,
}

impl<A: ActorClass> ActorHandle<A> {
    fn from_ref(r: ActorRef<A>) -> Self {
        ActorHandle { proxy: r.into() }
    }

    fn actor_ref(&self) -> &ActorRef<A> {
        self.proxy.as_ref()
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.actor_ref().id()
    }

    /// The rank the actor lives on (named so that it does not hide an
    /// actor method called `rank`).
    pub fn actor_rank(&self) -> u32 {
        self.actor_ref().rank()
    }

    /// Checkpoints the actor's state now, after the calls already made
    /// (see [`ActorOptions::checkpoint_every`](crate::ActorOptions::checkpoint_every));
    /// the ref resolves to the bytes written. The class must be marked
    /// `#[ferry::actor(checkpoint)]` and the actor named (`.name(...)`),
    /// else this is [`Error::InvalidArgument`].
    pub fn checkpoint(&self) -> Result<ObjectRef<u64>> {
        match &self.actor_ref().reach {
            Reach::Local(l) => l.core.request_checkpoint(),
            Reach::Remote(r) => {
                let call = EncodedCall::without_args(CHECKPOINT_METHOD);
                remote_actor::call::<u64>(r, "checkpoint", call)
            }
        }
    }

    /// Stops the actor now (Ray's `ray.kill`): the running call finishes,
    /// queued and later calls fail with [`Error::ActorDied`]; no restart.
    pub fn kill(&self) {
        match &self.actor_ref().reach {
            Reach::Local(l) => l.core.kill(KILLED),
            Reach::Remote(r) => remote_actor::kill(r),
        }
    }

    /// True while the actor has not died, as far as this rank knows (for an
    /// actor on another rank: until a call or `kill` from here found it dead).
    pub fn is_alive(&self) -> bool {
        match &self.actor_ref().reach {
            Reach::Local(l) => l.core.dead.get().is_none(),
            Reach::Remote(r) => r.dead.get().is_none(),
        }
    }
}

impl<A: ActorClass> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        ActorHandle::from_ref(self.actor_ref().clone())
    }
}

impl<A: ActorClass> std::ops::Deref for ActorHandle<A> {
    type Target = A::Handle;

    fn deref(&self) -> &A::Handle {
        &self.proxy
    }
}

impl<A: ActorClass> std::fmt::Debug for ActorHandle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ActorHandle<{}>({})", A::NAME, self.id())
    }
}

/// Why a killed actor died.
pub(crate) const KILLED: &str = "killed by ray.kill (ActorHandle::kill)";

/// Creates an actor; used by the code `#[ferry::actor]` generates. The
/// actor goes to this rank when its resources are free here (or it has
/// none), else to a rank where they are (`encode` then archives the
/// constructor's arguments for that rank); `on_rank` picks the rank.
#[doc(hidden)]
pub fn create<A: ActorClass>(
    rt: &Runtime,
    opts: &ActorOptions,
    encode: impl FnOnce(&Runtime) -> Result<EncodedCall>,
    factory: impl FnMut() -> A + Send + 'static,
) -> Result<ActorHandle<A>> {
    let inner = &rt.inner;
    if inner.is_shut() {
        return Err(Error::Shutdown);
    }
    let name: Arc<str> = opts.name.as_deref().unwrap_or(A::NAME).into();
    let what = format!("actor {name}");
    let local = opts
        .request(&what, &inner.pool.ledger)
        .map_err(|e| crate::cluster::explain_infeasible(inner, e));
    match remote_actor::place(inner, opts, &local)? {
        Some(host) => {
            let call = encode(rt)?;
            let r = remote_actor::create_on(inner, host, A::ID, name, opts, call)?;
            Ok(ActorHandle::from_ref(ActorRef {
                reach: Reach::Remote(r),
            }))
        }
        None => {
            let link = create_here(inner, opts, inner.ids.actor(), local?, factory)?;
            Ok(ActorHandle::from_ref(ActorRef {
                reach: Reach::Local(link),
            }))
        }
    }
}

/// Creates an actor on this rank for another rank that asked (`CreateActor`);
/// used by the code `#[ferry::actor]` generates.
#[doc(hidden)]
pub fn create_hosted<A: ActorClass>(
    rt: &Runtime,
    opts: &ActorOptions,
    id: ActorId,
    factory: impl FnMut() -> A + Send + 'static,
) -> Result<()> {
    let inner = &rt.inner;
    let name = opts.name.as_deref().unwrap_or(A::NAME);
    let request = opts.request(&format!("actor {name}"), &inner.pool.ledger)?;
    let link = create_here(inner, opts, id, request, factory)?;
    let keep: Arc<dyn Any + Send + Sync> = link;
    inner.exports.export_actor(id, &keep);
    remote_actor::lend_new(inner, id, keep);
    Ok(())
}

/// The handle of actor `id`, which lives on this rank; used by the code
/// `#[ferry::actor]` generates to run a call that came from another rank.
#[doc(hidden)]
pub fn hosted_handle<A: ActorClass>(rt: &Runtime, id: ActorId) -> Result<ActorHandle<A>> {
    local_handle(&rt.inner, id)
}

fn local_handle<A: ActorClass>(inner: &Inner, id: ActorId) -> Result<ActorHandle<A>> {
    let any = inner
        .exports
        .actor(id)
        .ok_or_else(|| Error::Unknown(id.to_string()))?;
    let link = any
        .downcast::<Link<A>>()
        .map_err(|_| Error::Unknown(format!("{id} as a {}", A::NAME)))?;
    Ok(ActorHandle::from_ref(ActorRef {
        reach: Reach::Local(link),
    }))
}

/// Starts the actor's thread on this rank. Resources free now are taken at
/// once (so actors created one after another see each other's share);
/// otherwise the thread waits for them.
fn create_here<A: ActorClass>(
    inner: &Arc<Inner>,
    opts: &ActorOptions,
    id: ActorId,
    request: Request,
    mut factory: impl FnMut() -> A + Send + 'static,
) -> Result<Arc<Link<A>>> {
    if let Some(pin) = opts.pin {
        inner.pool.pinning.check(pin)?;
    }
    let pin = opts.pin;
    let name: Arc<str> = opts.name.as_deref().unwrap_or(A::NAME).into();
    let core = Arc::new(Core::<A> {
        id,
        rank: inner.rank,
        name: name.clone(),
        mailbox: Mutex::new(Mailbox {
            queue: VecDeque::new(),
            closed: false,
        }),
        queued: AtomicUsize::new(0),
        parked: AtomicBool::new(false),
        thread: OnceLock::new(),
        dead: OnceLock::new(),
        orphaned: AtomicBool::new(false),
        restarts: AtomicUsize::new(0),
        ckpt: A::CHECKPOINT.as_ref().and(opts.name.as_deref()).map(|n| {
            Arc::new(crate::actor::checkpoint::Schedule::new(
                crate::actor::checkpoint::path(&inner.checkpoint_dir, n),
                opts.checkpoint_every,
            ))
        }),
        calls: Default::default(),
        task_retries: opts.max_task_retries,
        rt: Arc::downgrade(inner),
    });
    let ctx = TaskCtx {
        name,
        env: Arc::from(opts.env.clone()),
        gpu_ids: Arc::from([]),
        held: request.clone(),
        is_task: false,
        may_retry: std::cell::Cell::new(false),
        cancel: None,
    };
    let restarts = opts.max_restarts;
    let granted = inner.pool.try_grant(&request);
    let kept_grant = granted.clone();
    let core2 = core.clone();
    let inner2 = inner.clone();
    let request2 = request.clone();
    let spawned = thread::Builder::new()
        .name(format!("ferry-actor-{}", A::NAME))
        .spawn(move || {
            let factory: &mut dyn FnMut() -> A = &mut factory;
            actor_main(
                inner2,
                core2,
                ctx,
                request2,
                granted,
                Placing { restarts, pin },
                factory,
            )
        });
    let handle = match spawned {
        Ok(h) => h,
        Err(e) => {
            if let Some(gpus) = &kept_grant {
                inner.pool.release_grant(&request, gpus);
            }
            return Err(Error::Init(format!("could not start an actor thread: {e}")));
        }
    };
    let _ = core.thread.set(handle.thread().clone());
    lock(&inner.actors.threads).push(handle);
    lock(&inner.actors.live).insert(id, core.clone() as Arc<dyn Control>);
    Ok(Arc::new(Link { core }))
}

/// How an actor thread lives: its restarts and where it is pinned.
struct Placing {
    restarts: i32,
    pin: Option<crate::resources::pinning::Pin>,
}

fn actor_main<A: ActorClass>(
    inner: Arc<Inner>,
    core: Arc<Core<A>>,
    ctx: TaskCtx,
    request: Request,
    granted: Option<Arc<[u32]>>,
    Placing { restarts, pin }: Placing,
    factory: &mut dyn FnMut() -> A,
) {
    crate::runtime::current::set_runtime(Some(inner.clone()));
    let rt = Runtime::from_inner(inner.clone());
    // Step 1: wait for the resources (unless granted at creation), then construct.
    let mut waited = Duration::from_micros(50);
    let mut granted = granted;
    let gpu_ids = loop {
        if let Some(ids) = granted.take().or_else(|| inner.pool.try_grant(&request)) {
            break ids;
        }
        if core.dead.get().is_some() {
            return finish_actor(&inner, &core, None);
        }
        thread::park_timeout(waited);
        waited = (waited * 2).min(Duration::from_millis(20));
    };
    inner.pool.pinning.bind_actor(pin, &gpu_ids);
    let ctx = Rc::new(TaskCtx {
        env: context::env_with_gpus(&ctx.env, &gpu_ids, &inner.pool.pinning),
        gpu_ids: gpu_ids.clone(),
        ..ctx
    });
    let construct = |factory: &mut dyn FnMut() -> A| {
        context::with_task(ctx.clone(), || {
            panic::catch_unwind(AssertUnwindSafe(factory))
        })
    };
    // From its last checkpoint when it has one, else from the constructor.
    let make = |factory: &mut dyn FnMut() -> A, when: &str| -> std::result::Result<A, String> {
        match restore(&inner, &rt, &core) {
            Some(restored) => restored,
            None => construct(factory).map_err(|p| {
                format!(
                    "its constructor panicked{when}: {}",
                    panic_message(p.as_ref())
                )
            }),
        }
    };
    let mut state = match make(factory, "") {
        Ok(a) => Some(a),
        Err(why) => {
            core.kill(&why);
            None
        }
    };
    let mut restarts_left = restarts;
    // Step 2: serve calls in order.
    while let Some(actor) = state.as_mut() {
        let msg = match core.pop() {
            Some(m) => m,
            None => {
                if signal::spin_until(inner.spin, || core.queued.load(Ordering::Acquire) > 0) {
                    continue;
                }
                core.parked.store(true, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if core.queued.load(Ordering::SeqCst) == 0 {
                    thread::park_timeout(Duration::from_millis(500));
                }
                core.parked.store(false, Ordering::SeqCst);
                continue;
            }
        };
        let call = match msg {
            Msg::Call(c) => c,
            Msg::Drain => {
                if core.dead.get().is_some() || core.orphaned.load(Ordering::Acquire) {
                    break;
                }
                continue;
            }
        };
        if let Some(reason) = core.dead.get() {
            call.output.complete(Stored::Error(core.died(reason)));
            continue;
        }
        let Call {
            method,
            run,
            output,
        } = call;
        let started = inner.pool.timeline.start();
        let outcome = context::with_task(ctx.clone(), || {
            panic::catch_unwind(AssertUnwindSafe(|| run(actor, &rt)))
        });
        if inner.pool.timeline.is_on() {
            inner.pool.timeline.record(
                started,
                crate::timeline::Kind::ActorCall,
                format!("{}.{method}", core.name),
                0,
            );
        }
        match outcome {
            Ok(Outcome::Value(v)) => {
                // Checkpointed before the caller sees the result: a result
                // seen is never lost to a restart from the checkpoint, and
                // one no checkpoint holds is not seen.
                let kept = if method == "checkpoint" {
                    Ok(())
                } else {
                    after_call(&rt, &core, actor)
                };
                match kept {
                    Ok(()) => output.complete(Stored::Value(v)),
                    Err(e) => output.complete(Stored::Error(e)),
                }
            }
            Ok(Outcome::Error(e)) => output.complete(Stored::Error(e)),
            Ok(Outcome::Failed { kind, message }) => output.complete(Stored::Error(call_error(
                &core, &inner, method, kind, message,
            ))),
            Err(p) => {
                let message = panic_message(p.as_ref());
                output.complete(Stored::Error(call_error(
                    &core,
                    &inner,
                    method,
                    FailureKind::Panic,
                    message.clone(),
                )));
                // Step 3: a panic leaves the state unknown: restart or die.
                state = None;
                if restarts_left != 0 {
                    restarts_left -= 1;
                    core.restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(actor = %core.name, "restarting after a panic in {method}");
                    match make(factory, " on restart") {
                        Ok(a) => state = Some(a),
                        Err(why) => core.kill(&why),
                    }
                } else {
                    core.kill(&format!(
                        "{}.{method} panicked and no restarts are left: {message}",
                        A::NAME
                    ));
                }
            }
        }
    }
    drop(state);
    finish_actor(&inner, &core, Some((&request, &gpu_ids)));
}

/// The actor's state from its checkpoint file, if it has one (`None`: no
/// checkpoint, construct it); a damaged file is an error.
fn restore<A: ActorClass>(
    inner: &Inner,
    rt: &Runtime,
    core: &Core<A>,
) -> Option<std::result::Result<A, String>> {
    let (codec, ckpt) = (A::CHECKPOINT.as_ref()?, core.ckpt.as_ref()?);
    let found = match crate::actor::checkpoint::restore(rt, codec, ckpt.path()) {
        Ok(None) => return None,
        Ok(Some(found)) => Ok(found),
        Err(e) => Err(e),
    };
    Some(match found {
        Ok((calls, a)) => {
            core.calls.store(calls, Ordering::Relaxed);
            ckpt.restored(calls);
            inner.note_restored(crate::actor::checkpoint::Restored {
                name: core.name.to_string(),
                path: ckpt.path().to_path_buf(),
                calls,
            });
            Ok(a)
        }
        Err(e) => Err(format!(
            "its checkpoint could not be restored (the file is kept): {e}"
        )),
    })
}

/// Counts a call that returned and takes a checkpoint when one is due
/// (`checkpoint_every` calls after the last one written); an error when a
/// due checkpoint cannot be written (the call's result is then withheld).
fn after_call<A: ActorClass>(rt: &Runtime, core: &Core<A>, actor: &A) -> Result<()> {
    let n = core.calls.fetch_add(1, Ordering::Relaxed) + 1;
    match (A::CHECKPOINT.as_ref(), core.ckpt.as_ref()) {
        (Some(codec), Some(ckpt)) => ckpt.after_call(rt, codec, actor, n, &core.name),
        _ => Ok(()),
    }
}

fn finish_actor<A>(inner: &Arc<Inner>, core: &Arc<Core<A>>, held: Option<(&Request, &[u32])>) {
    let _ = core
        .dead
        .set("it was stopped (all handles dropped)".to_string());
    core.fail_queued(true);
    lock(&inner.actors.live).remove(&core.id);
    if let Some((req, gpus)) = held {
        inner.pool.release(req, gpus);
    }
    crate::runtime::current::set_runtime(None);
}

fn call_error<A>(
    core: &Core<A>,
    inner: &Inner,
    method: &str,
    kind: FailureKind,
    message: String,
) -> Error {
    Error::Task(Box::new(TaskError {
        task: format!("{}.{method}", core.name),
        rank: inner.rank,
        kind,
        message,
        attempts: 1,
    }))
}

/// An [`ActorHandle`] inside an archived object: the actor's id and the
/// rank it lives on.
#[repr(C)]
pub struct ArchivedActorHandle<A> {
    id: u64_le,
    host: u32_le,
    /// The actor's `max_task_retries` (as `i32` bits), for handles that
    /// reach other ranks.
    task_retries: u32_le,
    _a: PhantomData<fn() -> A>,
}

impl<A: ActorClass> ArchivedActorHandle<A> {
    /// The actor's id.
    pub fn id(&self) -> ActorId {
        ActorId::from_u64(self.id.to_native())
    }

    /// The rank the actor lives on.
    pub fn rank(&self) -> u32 {
        self.host.to_native()
    }

    /// The live handle, for this thread's runtime: the actor itself when it
    /// lives on this rank, else a handle that sends calls to its rank.
    pub fn to_handle(&self) -> Result<ActorHandle<A>> {
        let inner = crate::runtime::current::runtime_inner().ok_or(Error::NoRuntime)?;
        // An actor re-created elsewhere since this handle was archived.
        let host = remote_actor::current_host(&inner, self.id(), self.rank());
        if host == inner.rank {
            return local_handle(&inner, self.id());
        }
        let r = remote_actor::attach(&inner, self.id(), host, A::NAME.into())?;
        r.learn_task_retries(self.task_retries.to_native() as i32);
        Ok(ActorHandle::from_ref(ActorRef {
            reach: Reach::Remote(r),
        }))
    }
}

// SAFETY: `repr(C)` of little-endian integers (and a zero-sized marker),
// which are portable.
unsafe impl<A> Portable for ArchivedActorHandle<A> {}
// SAFETY: as above; 8 + 4 + 4 bytes with 8-byte alignment leave no padding.
unsafe impl<A> rkyv::traits::NoUndef for ArchivedActorHandle<A> {}
// SAFETY: every bit pattern is a valid id (unknown ids fail at lookup).
unsafe impl<A, C: Fallible + ?Sized> rkyv::bytecheck::CheckBytes<C> for ArchivedActorHandle<A> {
    unsafe fn check_bytes(_value: *const Self, _context: &mut C) -> Result<(), C::Error> {
        Ok(())
    }
}

impl<A: ActorClass> Archive for ActorHandle<A> {
    type Archived = ArchivedActorHandle<A>;
    type Resolver = ();

    fn resolve(&self, _resolver: (), out: Place<Self::Archived>) {
        out.write(ArchivedActorHandle {
            id: u64_le::from_native(self.id().as_u64()),
            host: u32_le::from_native(self.actor_rank()),
            task_retries: u32_le::from_native(self.actor_ref().task_retries() as u32),
            _a: PhantomData,
        });
    }
}

impl<A: ActorClass, S> Serialize<S> for ActorHandle<A>
where
    S: Fallible + ?Sized,
    S::Error: Source,
{
    fn serialize(&self, _serializer: &mut S) -> std::result::Result<(), S::Error> {
        let id = self.id();
        let host = self.actor_rank();
        let keep: KeepAlive = match &self.actor_ref().reach {
            Reach::Local(l) => l.clone(),
            Reach::Remote(r) => r.clone(),
        };
        let local = matches!(self.actor_ref().reach, Reach::Local(_));
        let noted = exports::note(move |ex| {
            if local {
                ex.export_actor(id, &keep);
            }
            Arc::new(HeldHandle {
                id,
                host,
                _keep: keep,
            }) as KeepAlive
        });
        if noted {
            Ok(())
        } else {
            Err(S::Error::new(NotInRuntime("ActorHandle")))
        }
    }
}

impl<A: ActorClass, D> Deserialize<ActorHandle<A>, D> for ArchivedActorHandle<A>
where
    D: Fallible + ?Sized,
    D::Error: Source,
{
    fn deserialize(&self, _deserializer: &mut D) -> std::result::Result<ActorHandle<A>, D::Error> {
        self.to_handle().map_err(D::Error::new)
    }
}

/// One method call being prepared: `handle.method(args)` makes it,
/// [`remote`](Self::remote) submits it (Ray's `actor.method.remote(...)`).
#[must_use = "an actor call does nothing until .remote() is called"]
pub struct ActorCall<'a, A: ActorClass, R, F> {
    actor: &'a ActorRef<A>,
    method: &'static str,
    /// The encoded call, for an actor on another rank.
    encoded: Option<Result<EncodedCall>>,
    run: F,
    _r: PhantomData<fn() -> R>,
}

impl<'a, A, R, F> ActorCall<'a, A, R, F>
where
    A: ActorClass,
    R: crate::values::Object,
    F: FnOnce(&mut A, &Runtime) -> std::result::Result<R, crate::private::Failure> + Send + 'static,
{
    /// Prepares a call; used by generated code. `encoded` is the call
    /// encoded for another rank (when the actor lives on one), `run` the
    /// call on this rank.
    #[doc(hidden)]
    pub fn new(
        actor: &'a ActorRef<A>,
        method: &'static str,
        encoded: Option<Result<EncodedCall>>,
        run: F,
    ) -> Self {
        ActorCall {
            actor,
            method,
            encoded,
            run,
            _r: PhantomData,
        }
    }

    /// Submits the call; the ref resolves to the method's return value.
    pub fn remote(self) -> Result<ObjectRef<R>> {
        match (&self.actor.reach, self.encoded) {
            (Reach::Remote(r), Some(call)) => remote_actor::call::<R>(r, self.method, call?),
            _ => self.actor.call(self.method, self.run),
        }
    }
}
