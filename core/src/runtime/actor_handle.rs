//! Actor handles: the public face of an actor, wherever it lives.
//!
//! # Protocol
//!
//! 1. `create` checks the actor's resources are feasible and places it
//!    (see `cluster::remote_actor`): on this rank the local engine
//!    (`actor::thread::start`) starts its thread and the handle is returned
//!    at once; on another rank the constructor's arguments are encoded and
//!    sent there.
//! 2. A method call is a closure built here: it resolves the arguments,
//!    runs the method and stores its value. A handle to an actor on this
//!    rank queues it in the actor's mailbox (calls run in order, one at a
//!    time; see `actor::engine`).
//! 3. An actor lives on one rank. A handle on another rank is a
//!    [`RemoteActor`]: its calls are encoded (method id and archived
//!    arguments) and sent to the actor's rank, which runs them in arrival
//!    order; handles on other ranks keep the actor alive like local ones
//!    (see `remote_actor`).
//! 4. A handle inside an object is archived as the actor's id and rank
//!    ([`ArchivedActorHandle`](crate::ArchivedActorHandle)); the receiver turns it back into a live
//!    handle for its own runtime.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::actor::checkpoint::Codec;
use crate::actor::engine::{CHECKPOINT_METHOD, Class, KILLED, Link};
use crate::cluster::remote_actor::{self, RemoteActor};
use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::object::codec::EncodedCall;
use crate::object::object_ref::ObjectRef;
use crate::resources::options::ActorOptions;
use crate::runtime::method_body::MethodBody;
use crate::runtime::named;
use crate::runtime::{Inner, Runtime};

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
    const CHECKPOINT: Option<Codec<Self>> = None;
    /// Whether the class has `async fn` methods (an async actor).
    #[doc(hidden)]
    const ASYNC: bool = false;
    /// Puts the state behind an `Arc` for several threads: `Some` only for
    /// a class that is `Sync` (`max_concurrency` above 1 needs it).
    #[doc(hidden)]
    fn share() -> Option<fn(Self) -> Arc<dyn Any + Send + Sync>> {
        None
    }
}

/// What the local engine knows of class `A`.
fn class_of<A: ActorClass>() -> Class<A> {
    Class {
        name: A::NAME,
        checkpoint: A::CHECKPOINT,
        share: A::share(),
        is_async: A::ASYNC,
    }
}

/// An actor living on this rank, as its handles hold it.
type LocalActor<A> = Link<A, Inner>;

/// How a handle reaches its actor.
pub(crate) enum Reach<A> {
    /// The actor lives on this rank.
    Local(Arc<LocalActor<A>>),
    /// The actor lives on another rank.
    Remote(Arc<RemoteActor<Inner>>),
}

/// The class-independent part of an actor handle, used by generated code.
pub struct ActorRef<A> {
    pub(crate) reach: Reach<A>,
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
            Reach::Local(l) => l.core().id,
            Reach::Remote(r) => r.id,
        }
    }

    /// The rank the actor lives on.
    pub fn rank(&self) -> u32 {
        match &self.reach {
            Reach::Local(l) => l.core().rank,
            Reach::Remote(r) => r.host(),
        }
    }

    /// The actor's `max_task_retries`, as far as this rank knows.
    pub(crate) fn task_retries(&self) -> i32 {
        match &self.reach {
            Reach::Local(l) => l.core().task_retries,
            Reach::Remote(r) => r.task_retries(),
        }
    }

    /// The runtime of the rank holding this handle (`None` once it is gone).
    pub(crate) fn runtime(&self) -> Option<Runtime> {
        match &self.reach {
            Reach::Local(l) => l.core().host.upgrade(),
            Reach::Remote(r) => r.rt.upgrade(),
        }
        .map(Runtime::from_inner)
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
}

/// A handle to an actor (Ray's `ActorHandle`). Its methods (from the
/// generated `A::Handle`, through `Deref`) make remote calls:
/// `counter.increment().remote()`. Clone it, pass it to tasks and other
/// actors, return it from them; the actor stops when the last handle is gone
/// (unless it is [detached](crate::ActorOptions::lifetime_detached)).
pub struct ActorHandle<A: ActorClass> {
    proxy: A::Handle,
}

impl<A: ActorClass> ActorHandle<A> {
    pub(crate) fn from_ref(r: ActorRef<A>) -> Self {
        ActorHandle { proxy: r.into() }
    }

    pub(crate) fn actor_ref(&self) -> &ActorRef<A> {
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
            Reach::Local(l) => l.core().request_checkpoint(),
            Reach::Remote(r) => {
                let call = EncodedCall::without_args(CHECKPOINT_METHOD);
                remote_actor::call::<u64>(r, "checkpoint", call)
            }
        }
    }

    /// Stops the actor now (Ray's `ray.kill`): the running call finishes,
    /// queued and later calls fail with [`Error::ActorDied`]; no restart.
    ///
    /// A named actor's name is free again once its rank has stopped it (at
    /// once when that is this rank); a [detached](crate::ActorOptions::lifetime_detached)
    /// actor is stopped only this way (or by the end of the job).
    pub fn kill(&self) {
        match &self.actor_ref().reach {
            Reach::Local(l) => {
                l.core().kill(KILLED);
                if let Some(inner) = l.core().host.upgrade() {
                    named::stopped(&inner, l.core().id);
                }
            }
            Reach::Remote(r) => remote_actor::kill(r),
        }
    }

    /// True while the actor has not died, as far as this rank knows (for an
    /// actor on another rank: until a call or `kill` from here found it dead).
    pub fn is_alive(&self) -> bool {
        match &self.actor_ref().reach {
            Reach::Local(l) => l.core().is_alive(),
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
    if opts.name.is_none() && (opts.get_if_exists || opts.detached) {
        return Err(Error::InvalidArgument(format!(
            "actor {}: get_if_exists and lifetime_detached need a name (.name(...))",
            A::NAME
        )));
    }
    let name: Arc<str> = opts.name.as_deref().unwrap_or(A::NAME).into();
    let what = format!("actor {name}");
    // In a placement group: on the bundle's rank, once the group is placed.
    let placed;
    let opts = match opts.ask.bundle {
        None => opts,
        Some(at) => {
            let rank = crate::cluster::groups::bundle_rank(inner, &what, &opts.ask, at)?;
            placed = opts.clone().on_rank(rank);
            &placed
        }
    };
    let local = opts
        .request(&what, &inner.pool.ledger)
        .map_err(|e| crate::cluster::explain_infeasible(inner, e));
    if !A::ASYNC && opts.max_concurrency.is_some_and(|n| n > 1) && A::share().is_none() {
        return Err(Error::NotSync {
            class: A::NAME.into(),
        });
    }
    let host = remote_actor::place(inner, opts, &local)?;
    let id = inner.store.ids.actor();
    let Some(registered) = opts.name.as_deref() else {
        return create_placed(rt, opts, id, host, name, local, encode, factory);
    };
    let on = host.unwrap_or(inner.rank);
    let retries = opts.max_task_retries;
    match named::claim::<A>(inner, registered, id, on, retries, opts.get_if_exists)? {
        named::Claim::Existing(h) => return Ok(h),
        named::Claim::Create => {}
    }
    let made = create_placed(rt, opts, id, host, name, local, encode, factory);
    if made.is_err() {
        named::unclaim(inner, registered, id);
    }
    named::created(inner, id);
    made
}

/// Creates actor `id` where `place` put it: on `host`, or here.
#[allow(clippy::too_many_arguments)]
fn create_placed<A: ActorClass>(
    rt: &Runtime,
    opts: &ActorOptions,
    id: ActorId,
    host: Option<u32>,
    name: Arc<str>,
    local: Result<crate::resources::ledger::Request>,
    encode: impl FnOnce(&Runtime) -> Result<EncodedCall>,
    factory: impl FnMut() -> A + Send + 'static,
) -> Result<ActorHandle<A>> {
    let inner = &rt.inner;
    match host {
        Some(host) => {
            let call = encode(rt)?;
            let r = remote_actor::create_on(inner, host, id, A::ID, name, opts, call)?;
            Ok(ActorHandle::from_ref(ActorRef {
                reach: Reach::Remote(r),
            }))
        }
        None => {
            let link =
                crate::actor::thread::start(inner, class_of::<A>(), opts, id, local?, factory)?;
            if let Some(n) = &opts.name {
                let keep: Arc<dyn Any + Send + Sync> = link.clone();
                named::lives_here(inner, id, n, opts.detached, keep);
            }
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
    let link = crate::actor::thread::start(inner, class_of::<A>(), opts, id, request, factory)?;
    let keep: Arc<dyn Any + Send + Sync> = link;
    inner.store.exports.export_actor(id, &keep);
    if let Some(n) = &opts.name {
        named::lives_here(inner, id, n, opts.detached, keep.clone());
    }
    remote_actor::lend_new(inner, id, keep);
    Ok(())
}

/// The handle of actor `id`, which lives on this rank; used by the code
/// `#[ferry::actor]` generates to run a call that came from another rank.
#[doc(hidden)]
pub fn hosted_handle<A: ActorClass>(rt: &Runtime, id: ActorId) -> Result<ActorHandle<A>> {
    local_handle(&rt.inner, id)
}

/// The handle of actor `id`, which lives on this rank.
pub(crate) fn local_handle<A: ActorClass>(inner: &Inner, id: ActorId) -> Result<ActorHandle<A>> {
    let any = inner
        .store
        .exports
        .actor(id)
        .ok_or_else(|| Error::ActorNotFound {
            actor: id,
            reason: "it is not on this rank (it has stopped, or never lived here)".into(),
        })?;
    let link = any
        .downcast::<LocalActor<A>>()
        .map_err(|_| Error::NotThisActorClass {
            actor: id,
            class: A::NAME.into(),
        })?;
    Ok(ActorHandle::from_ref(ActorRef {
        reach: Reach::Local(link),
    }))
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
    F: MethodBody<A, R>,
{
    /// Prepares a call; used by generated code. `encoded` is the call
    /// encoded for another rank (when the actor lives on one), `run` the
    /// call on this rank (its body, of one of the kinds in `method_body`).
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
            _ => self.run.submit(self.actor, self.method),
        }
    }
}
