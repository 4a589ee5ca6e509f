//! The local actor engine: an actor's mailbox and state ([`Core`]), what
//! keeps it alive ([`Link`]), and the rank's table of live actors.
//!
//! # Protocol
//!
//! 1. The runtime starts an actor with `actor::thread::start`, which starts
//!    its thread and returns a [`Link`] at once. The thread waits until the
//!    actor's resources are free, then runs the constructor.
//! 2. Calls go into one FIFO mailbox, so calls from one caller run in the
//!    order they were made, one at a time; different actors run in parallel.
//!    The thread spins briefly on an empty mailbox, then parks; a sender
//!    unparks it only when it has parked (SeqCst fences on both sides).
//! 3. A call that panics fails; the actor is then re-created by re-running
//!    its constructor while restarts remain (`max_restarts`), else it dies.
//!    A call returning `Err` fails that call only.
//! 4. When the last [`Link`] is dropped the actor finishes the calls already
//!    queued, then stops. `kill` stops it now: queued calls fail with
//!    [`Error::ActorDied`].
//!
//! A call is a closure built above (it resolves its arguments and runs the
//! method), given the host's per-thread [`CallCx`](ActorHost::CallCx); the
//! engine never knows the runtime, only its [`ActorHost`] side.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::{JoinHandle, Thread};

use crate::actor::checkpoint::{Codec, Schedule};
use crate::actor::host::ActorHost;
use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::object::cell::{KeepAlive, Slot, Stored};
use crate::object::codec::Untyped;
use crate::object::object_ref::ObjectRef;
use crate::sync::lock;
use crate::task::cell::Outcome;

/// The method id a checkpoint request travels under to another rank.
pub(crate) const CHECKPOINT_METHOD: u64 = u64::MAX;

/// Why a killed actor died.
pub(crate) const KILLED: &str = "killed by ray.kill (ActorHandle::kill)";

/// What the engine knows of an actor's class.
pub(crate) struct Class<A> {
    /// The class name, for errors and the thread's name.
    pub(crate) name: &'static str,
    /// How its state is checkpointed, if it is.
    pub(crate) checkpoint: Option<Codec<A>>,
    /// How its state is shared by several threads; `Some` only for a class
    /// that is `Sync` (needed for `max_concurrency` above 1).
    pub(crate) share: Option<Share<A>>,
    /// Whether it has `async fn` methods: it then runs on its own executor.
    pub(crate) is_async: bool,
}

/// Puts an actor's state behind an `Arc` that other threads may read:
/// made (as `|a| Arc::new(a)`) only where `A: Sync` is known.
pub(crate) type Share<A> = fn(A) -> Arc<dyn Any + Send + Sync>;

/// A future run on an async actor's executor.
pub(crate) type LocalFuture = Pin<Box<dyn Future<Output = Outcome>>>;

/// A `&mut self` method's call.
pub(crate) type ExclusiveFn<A, C> = Box<dyn FnOnce(&mut A, &C) -> Outcome + Send>;
/// A `&self` method's call.
pub(crate) type SharedFn<A, C> = Box<dyn FnOnce(&A, &C) -> Outcome + Send>;
/// An `async fn` method's call: makes its future.
pub(crate) type AsyncFn<A, C> = Box<dyn FnOnce(Rc<A>, &C) -> LocalFuture + Send>;

/// One queued call: runs the method on the actor's state and gives its
/// outcome.
pub(crate) enum Run<A, C> {
    /// A `&mut self` method: runs alone.
    Exclusive(ExclusiveFn<A, C>),
    /// A `&self` method: may run beside other `&self` calls
    /// (`max_concurrency`).
    Shared(SharedFn<A, C>),
    /// An `async fn` method: makes a future for the actor's executor.
    Async(AsyncFn<A, C>),
}

pub(crate) struct Call<A, C> {
    pub(crate) method: &'static str,
    pub(crate) run: Run<A, C>,
    pub(crate) output: Arc<Slot>,
}

pub(crate) enum MailboxItem<A, C> {
    Call(Call<A, C>),
    /// The last handle is gone: finish what is queued, then stop.
    Drain,
}

/// One actor on this rank: its mailbox and what the runtime knows of it.
pub(crate) struct Core<A, H: ActorHost> {
    pub(crate) id: ActorId,
    /// The rank the actor lives on.
    pub(crate) rank: u32,
    pub(crate) name: Arc<str>,
    pub(crate) class: Class<A>,
    mailbox: Mutex<Mailbox<A, H::CallCx>>,
    pub(crate) queued: AtomicUsize,
    pub(crate) parked: AtomicBool,
    pub(crate) thread: OnceLock<Thread>,
    pub(crate) dead: OnceLock<String>,
    /// Set (before the `Drain` message is sent) when the last handle is gone.
    pub(crate) orphaned: AtomicBool,
    /// Times the constructor ran again after a panic.
    pub(crate) restarts: AtomicUsize,
    /// Where its checkpoints go and how often (see `checkpoint`).
    pub(crate) ckpt: Option<Arc<Schedule>>,
    /// Its `max_task_retries`, told to other ranks with its handles.
    pub(crate) task_retries: i32,
    /// Calls that returned, for `checkpoint_every`.
    pub(crate) calls: Arc<AtomicU64>,
    pub(crate) host: Weak<H>,
}

struct Mailbox<A, C> {
    queue: VecDeque<MailboxItem<A, C>>,
    /// Set when the actor thread has finished: later calls fail at once.
    closed: bool,
}

impl<A, H: ActorHost> Core<A, H> {
    /// A new actor `id` on `host`'s rank, with nothing queued.
    pub(crate) fn new(
        host: &Arc<H>,
        id: ActorId,
        name: Arc<str>,
        class: Class<A>,
        ckpt: Option<Arc<Schedule>>,
        task_retries: i32,
    ) -> Core<A, H> {
        Core {
            id,
            rank: host.rank(),
            name,
            class,
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
            ckpt,
            task_retries,
            calls: Default::default(),
            host: Arc::downgrade(host),
        }
    }

    pub(crate) fn push(&self, msg: MailboxItem<A, H::CallCx>) {
        {
            let mut mb = lock(&self.mailbox);
            if mb.closed {
                drop(mb);
                if let MailboxItem::Call(c) = msg {
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

    pub(crate) fn pop(&self) -> Option<MailboxItem<A, H::CallCx>> {
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

    /// Queues a call of `method`; the ref resolves to the value `run`
    /// stores (a call to a dead actor fails at once).
    pub(crate) fn call<R>(
        &self,
        method: &'static str,
        run: Run<A, H::CallCx>,
    ) -> Result<ObjectRef<R>> {
        let host = self.host.upgrade().ok_or(Error::Shutdown)?;
        if host.is_shut() {
            return Err(Error::Shutdown);
        }
        let output = host.store().new_output();
        let r = ObjectRef::from_slot(output.clone());
        if let Some(reason) = self.dead.get() {
            output.complete(Stored::Error(self.died(reason)));
            return Ok(r);
        }
        self.push(MailboxItem::Call(Call {
            method,
            run,
            output,
        }));
        Ok(r)
    }

    pub(crate) fn died(&self, reason: &str) -> Error {
        Error::ActorDied {
            actor: self.name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Takes every queued call out of the mailbox (closing it if asked) and fails them.
    pub(crate) fn fail_queued(&self, close: bool) {
        let drained: Vec<_> = {
            let mut mb = lock(&self.mailbox);
            mb.closed |= close;
            let d: Vec<_> = mb.queue.drain(..).collect();
            self.queued.fetch_sub(d.len(), Ordering::AcqRel);
            d
        };
        let reason = self.dead.get().map_or("it has stopped", |s| s.as_str());
        for m in drained {
            if let MailboxItem::Call(c) = m {
                c.output.complete(Stored::Error(self.died(reason)));
            }
        }
    }

    /// Marks the actor dead and fails every queued call. Its name is freed
    /// first: a caller that hears it died may at once make a new actor of
    /// that name (its thread, which frees it too, may still be stopping).
    pub(crate) fn kill(&self, reason: &str) {
        if let Some(host) = self.host.upgrade() {
            host.actor_stopped(self.id);
        }
        let _ = self.dead.set(reason.to_string());
        self.fail_queued(false);
        self.push(MailboxItem::Drain);
    }

    /// True until the actor died.
    pub(crate) fn is_alive(&self) -> bool {
        self.dead.get().is_none()
    }
}

impl<A: 'static, H: ActorHost> Core<A, H> {
    /// Queues a checkpoint behind the calls already queued; the ref
    /// resolves to the bytes written.
    pub(crate) fn request_checkpoint(&self) -> Result<ObjectRef<u64>> {
        let Some(codec) = self.class.checkpoint else {
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
        let host = self.host.upgrade().ok_or(Error::Shutdown)?;
        let output = host.store().new_output();
        let r = ObjectRef::from_slot(output.clone());
        if let Some(reason) = self.dead.get() {
            output.complete(Stored::Error(self.died(reason)));
            return Ok(r);
        }
        let (ckpt, calls, name) = (ckpt.clone(), self.calls.clone(), self.name.clone());
        // The actor thread holds its host while it runs calls.
        let host = Arc::downgrade(&host);
        let run = Run::Exclusive(Box::new(move |actor: &mut A, _: &H::CallCx| {
            let Some(host) = host.upgrade() else {
                return Outcome::Error(Error::Shutdown);
            };
            let n = calls.load(Ordering::Relaxed);
            match ckpt.take(&host.store().exports, &codec, actor, n, &name) {
                Ok(bytes) => match host.store().store_value(&bytes) {
                    Ok(stored) => Outcome::Value(stored),
                    Err(e) => Outcome::Error(e),
                },
                Err(e) => Outcome::Error(e),
            }
        }));
        self.push(MailboxItem::Call(Call {
            method: "checkpoint",
            run,
            output,
        }));
        Ok(r)
    }
}

impl<A: Send + 'static, H: ActorHost> crate::resources::bundles::BundleMember for Core<A, H> {
    fn evict(self: Arc<Self>, reason: &str) {
        Core::kill(&self, reason);
    }
}

/// What the runtime needs of every actor, whatever its class.
trait Control: Send + Sync {
    fn kill(&self, reason: &str);
    /// Asks for a checkpoint now (see `checkpoint`).
    fn checkpoint(&self) -> Result<ObjectRef<Untyped>>;
    /// The actor's line in state listings.
    fn state(&self) -> crate::state::ActorState;
}

impl<A: Send + 'static, H: ActorHost> Control for Core<A, H> {
    fn kill(&self, reason: &str) {
        Core::kill(self, reason);
    }

    fn checkpoint(&self) -> Result<ObjectRef<Untyped>> {
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
    /// Lists a started actor and its thread.
    pub(crate) fn add<A: Send + 'static, H: ActorHost>(
        &self,
        core: &Arc<Core<A, H>>,
        thread: JoinHandle<()>,
    ) {
        lock(&self.threads).push(thread);
        lock(&self.live).insert(core.id, core.clone() as Arc<dyn Control>);
    }

    /// Forgets actor `id`, whose thread has finished.
    pub(crate) fn remove(&self, id: ActorId) {
        lock(&self.live).remove(&id);
    }

    /// Asks actor `id`, which lives here, for a checkpoint.
    pub(crate) fn checkpoint(&self, id: ActorId) -> Result<ObjectRef<Untyped>> {
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
        crate::task::grace::join_with_grace(threads);
    }
}

/// Keeps an actor alive; the last one dropped lets it stop.
pub(crate) struct Link<A, H: ActorHost> {
    core: Arc<Core<A, H>>,
}

impl<A, H: ActorHost> Link<A, H> {
    pub(crate) fn new(core: Arc<Core<A, H>>) -> Link<A, H> {
        Link { core }
    }

    /// The actor.
    pub(crate) fn core(&self) -> &Core<A, H> {
        &self.core
    }
}

impl<A, H: ActorHost> Drop for Link<A, H> {
    fn drop(&mut self) {
        // Release pairs with the actor thread's Acquire load when it takes `Drain`.
        self.core.orphaned.store(true, Ordering::Release);
        if let Some(host) = self.core.host.upgrade() {
            host.last_handle_dropped(self.core.id);
        }
        self.core.push(MailboxItem::Drain);
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
