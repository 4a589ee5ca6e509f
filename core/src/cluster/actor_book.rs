//! What a rank keeps about actors across ranks (see `remote_actor`): its
//! links to actors that live on other ranks ([`RemoteActor`], one per actor
//! per rank, shared by every handle there) and its [`ActorBook`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use ferry_transport::Rank;

use crate::cluster::lent::Lent;
use crate::cluster::sent::Sent;
use crate::cluster::shared::ClusterHost;
use crate::cluster::wire::{Msg, WireError};
use crate::ids::ActorId;
use crate::object::cell::KeepAlive;
use crate::resources::options::ActorOptions;
use crate::sync::lock;

/// A handle's link to an actor on another rank (one per actor per rank,
/// shared by every handle there).
pub(crate) struct RemoteActor<H: ClusterHost> {
    pub(crate) id: ActorId,
    /// The rank the actor lives on (another one after a restart).
    pub(super) host: AtomicU32,
    pub(crate) name: Arc<str>,
    pub(crate) rt: Weak<H>,
    /// Set once the host has counted this rank as a holder.
    pub(super) acked: AtomicBool,
    /// Set when this rank learnt that the actor died, with why.
    pub(crate) dead: OnceLock<String>,
    /// `Some` while its host is lost and this rank waits to hear from the
    /// creator where the actor went: the calls to send (or resend) then.
    pub(super) waiting: Mutex<Option<Vec<(u64, Sent)>>>,
    /// How often a call in flight when the host was lost is resent (-1:
    /// always); the creator knows it from the options, others from
    /// `ActorRestarted`.
    pub(super) task_retries: AtomicI32,
    /// On the creator: what re-creates the actor elsewhere.
    pub(super) restart: Option<Mutex<Restart>>,
    /// CPUs this rank counts as held on `host` by an actor it created there.
    pub(super) reserved: f64,
    /// Refs and handles among the constructor's arguments: kept while the
    /// creator's handle lives (restarts re-run the constructor with them).
    pub(super) _ctor_args: Vec<KeepAlive>,
}

/// What the creator of an actor on another rank keeps to re-create it.
pub(crate) struct Restart {
    pub(super) class: u64,
    pub(super) args: Vec<u8>,
    pub(super) opts: ActorOptions,
    /// Restarts left (-1: no limit).
    pub(super) left: i32,
    /// Times it was re-created after the loss of its rank.
    pub(super) restarted: u32,
}

impl<H: ClusterHost> RemoteActor<H> {
    /// The rank the actor lives on now.
    pub(crate) fn host(&self) -> Rank {
        self.host.load(Ordering::Acquire)
    }

    /// Its `max_task_retries`, as far as this rank knows.
    pub(crate) fn task_retries(&self) -> i32 {
        self.task_retries.load(Ordering::Relaxed)
    }

    /// A handle that arrived says the actor's `max_task_retries` (kept
    /// unless this rank knows it already).
    pub(crate) fn learn_task_retries(&self, n: i32) {
        let _ = self
            .task_retries
            .compare_exchange(0, n, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(super) fn retries_allowed(&self, attempts: u32) -> bool {
        let n = self.task_retries.load(Ordering::Relaxed);
        n < 0 || attempts <= n as u32
    }
}

impl<H: ClusterHost> Drop for RemoteActor<H> {
    fn drop(&mut self) {
        let Some(inner) = self.rt.upgrade() else {
            return;
        };
        let Some(c) = inner.cluster() else { return };
        let id = self.id.as_u64();
        {
            let mut map = lock(&c.actors.remote);
            if map.get(&id).is_some_and(|w| w.strong_count() == 0) {
                map.remove(&id);
            }
        }
        let host = self.host();
        if self.reserved > 0.0
            && let Some(r) = lock(&c.actors.reserved).get_mut(host as usize)
        {
            *r = (*r - self.reserved).max(0.0);
        }
        if !c.stop.load(Ordering::Acquire) {
            let msg = Msg::RemoveActorBorrow { actor: id };
            c.send_releases(c.releases.release(host, msg));
        }
    }
}

/// One rank's bookkeeping of actors across ranks.
pub(crate) struct ActorBook<H: ClusterHost> {
    /// Actors living here that other ranks hold handles to: a strong handle
    /// and which ranks hold one.
    pub(super) lent: Lent<KeepAlive>,
    /// This rank's links to actors on other ranks.
    pub(super) remote: Mutex<HashMap<u64, Weak<RemoteActor<H>>>>,
    /// Messages for actors created elsewhere whose `CreateActor` is still
    /// on its way (step 4).
    pub(super) early: Mutex<HashMap<u64, Vec<(Rank, Msg)>>>,
    /// Actors created here for other ranks that are gone, and why.
    pub(super) gone: Mutex<HashMap<u64, String>>,
    /// CPUs held on each rank by the actors this rank created there.
    pub(super) reserved: Mutex<Vec<f64>>,
    /// Actors this rank created on other ranks, with their host: those it
    /// still holds a handle to it re-creates when their host is lost, the
    /// others it declares gone (so that no rank waits for news of them).
    pub(super) created: Mutex<HashMap<u64, Rank>>,
    /// Actors re-created on another rank, and where: for handles archived
    /// before the restart (they name the old host).
    pub(super) moved: Mutex<HashMap<u64, Rank>>,
    /// The latest actors a call's `Done` said died, newest last (see
    /// `names::register`).
    died: Mutex<VecDeque<u64>>,
}

/// How many of the actors heard dead [`ActorBook`] keeps.
const DIED_KEPT: usize = 64;

impl<H: ClusterHost> ActorBook<H> {
    pub(crate) fn new(size: u32) -> ActorBook<H> {
        ActorBook {
            lent: Lent::new(),
            remote: Mutex::new(HashMap::new()),
            early: Mutex::new(HashMap::new()),
            gone: Mutex::new(HashMap::new()),
            reserved: Mutex::new(vec![0.0; size as usize]),
            created: Mutex::new(HashMap::new()),
            moved: Mutex::new(HashMap::new()),
            died: Mutex::new(VecDeque::new()),
        }
    }

    /// The latest actors this rank heard died (at most [`DIED_KEPT`]).
    pub(crate) fn recently_died(&self) -> Vec<u64> {
        lock(&self.died).iter().copied().collect()
    }

    /// This rank's handles to actors on other ranks, for state listings.
    pub(crate) fn states(&self) -> Vec<crate::state::ActorState> {
        let links: Vec<Arc<RemoteActor<H>>> = lock(&self.remote)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        links
            .iter()
            .map(|r| {
                let state = match r.dead.get() {
                    Some(why) => format!("dead: {why}"),
                    None if lock(&r.waiting).is_some() => "restarting".to_string(),
                    None => "alive".to_string(),
                };
                let restarts = r.restart.as_ref().map_or(0, |x| lock(x).restarted);
                crate::state::ActorState {
                    id: r.id.to_string(),
                    name: r.name.to_string(),
                    rank: r.host(),
                    state,
                    restarts,
                    queued: 0,
                    lives_here: false,
                }
            })
            .collect()
    }

    /// Lets go of every actor lent to other ranks (at shutdown).
    pub(crate) fn clear(&self) {
        let lent = self.lent.clear();
        lock(&self.early).clear();
        drop(lent); // outside the lock: this may stop actors
    }

    /// False while `id` is an actor handle here whose host has not acked it.
    pub(crate) fn acked(&self, id: u64) -> bool {
        lock(&self.remote)
            .get(&id)
            .and_then(Weak::upgrade)
            .is_none_or(|r| r.acked.load(Ordering::Acquire))
    }

    /// A `BorrowAck` for `id` arrived (it may name an object instead).
    pub(crate) fn ack(&self, id: u64, ok: bool, from: Rank) {
        let Some(r) = lock(&self.remote).get(&id).and_then(Weak::upgrade) else {
            return;
        };
        if !ok {
            let _ = r.dead.set(format!(
                "it was stopped on rank {from} before this rank could hold a handle"
            ));
        }
        r.acked.store(true, Ordering::Release);
    }

    /// A call's `Done` said actor `actor` died: later calls from here fail
    /// at once.
    pub(crate) fn call_failed(&self, actor: u64, e: &WireError) {
        let Some(reason) = e.actor_died_reason() else {
            return;
        };
        if let Some(r) = lock(&self.remote).get(&actor).and_then(Weak::upgrade) {
            let _ = r.dead.set(reason.to_string());
        }
        let mut died = lock(&self.died);
        if !died.contains(&actor) {
            if died.len() == DIED_KEPT {
                died.pop_front();
            }
            died.push_back(actor);
        }
    }
}
