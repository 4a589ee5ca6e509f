//! Actors across ranks: creating an actor on another rank, calling it from
//! any rank, and keeping it alive while any rank holds a handle.
//!
//! # Protocol
//!
//! 1. `create` places an actor by its resources: this rank when they are
//!    free here (or it asks for none), else the rank with the most of them
//!    free (`on_rank` chooses). For another rank the creator mints the id,
//!    sends `CreateActor` with the class id and the encoded constructor
//!    arguments, and returns a handle at once; the host counts the creator
//!    as the actor's first holder.
//! 2. A call through a handle on another rank is encoded (method id and
//!    archived arguments) and sent as `ActorCall`; the host submits it to the
//!    actor's mailbox in arrival order (so calls from one caller run in the
//!    order they were made) and answers `Done` as for a task. The caller owns
//!    the result.
//! 3. A handle that reaches a new rank (inside task arguments, results or
//!    objects) registers there with `AddActorBorrow`; the host answers
//!    `BorrowAck`, and whoever handed the handle over keeps its own until
//!    then (the same rule, and the same ack bookkeeping, as for borrowed
//!    objects in `cluster`). The last handle on a rank going away sends
//!    `RemoveActorBorrow`; when no rank holds one the actor stops.
//! 4. Messages about an actor created elsewhere can overtake its
//!    `CreateActor` (they travel on other channels): the host queues them
//!    until the actor exists. An actor that is gone answers calls with
//!    [`Error::ActorDied`].
//! 5. A lost host: the actor's creator re-creates it on another live rank
//!    that has its resources, with the same id, while `max_restarts`
//!    allows (re-running the constructor from the arguments it kept), and
//!    tells every rank where it went (`ActorRestarted`) or that it is gone
//!    (`ActorGone`). Other ranks hold their calls to it until they hear,
//!    then re-register as holders with the new host. Calls in flight to the
//!    lost host are sent again while `max_task_retries` allows, else fail
//!    with [`Error::ActorDied`]; so do all calls once the actor is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use ferry_transport::Rank;

use crate::actor::engine::{HeldHandle, KILLED};
use crate::cluster::lent::Lent;
use crate::cluster::wire::{Msg, WireActorOptions, WireError};
use crate::cluster::{self, Cluster, Sent, Work};
use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::object::cell::{KeepAlive, Slot, Stored, TypeTag};
use crate::object::object_ref::ObjectRef;
use crate::private::{self, EncodedCall};
use crate::resources::ledger::Request;
use crate::resources::options::ActorOptions;
use crate::runtime::{Inner, Runtime};
use crate::values::Object;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handle's link to an actor on another rank (one per actor per rank,
/// shared by every handle there).
pub(crate) struct RemoteActor {
    pub(crate) id: ActorId,
    /// The rank the actor lives on (another one after a restart).
    host: AtomicU32,
    pub(crate) name: Arc<str>,
    pub(crate) rt: Weak<Inner>,
    /// Set once the host has counted this rank as a holder.
    acked: AtomicBool,
    /// Set when this rank learnt that the actor died, with why.
    pub(crate) dead: OnceLock<String>,
    /// `Some` while its host is lost and this rank waits to hear from the
    /// creator where the actor went: the calls to send (or resend) then.
    waiting: Mutex<Option<Vec<(u64, Sent)>>>,
    /// How often a call in flight when the host was lost is resent (-1:
    /// always); the creator knows it from the options, others from
    /// `ActorRestarted`.
    task_retries: AtomicI32,
    /// On the creator: what re-creates the actor elsewhere.
    restart: Option<Mutex<Restart>>,
    /// CPUs this rank counts as held on `host` by an actor it created there.
    reserved: f64,
    /// Refs and handles among the constructor's arguments: kept while the
    /// creator's handle lives (restarts re-run the constructor with them).
    _ctor_args: Vec<KeepAlive>,
}

/// What the creator of an actor on another rank keeps to re-create it.
pub(crate) struct Restart {
    class: u64,
    args: Vec<u8>,
    opts: ActorOptions,
    /// Restarts left (-1: no limit).
    left: i32,
    /// Times it was re-created after the loss of its rank.
    restarted: u32,
}

impl RemoteActor {
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

    fn retries_allowed(&self, attempts: u32) -> bool {
        let n = self.task_retries.load(Ordering::Relaxed);
        n < 0 || attempts <= n as u32
    }
}

impl Drop for RemoteActor {
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
pub(crate) struct Book {
    /// Actors living here that other ranks hold handles to: a strong handle
    /// and which ranks hold one.
    lent: Lent<KeepAlive>,
    /// This rank's links to actors on other ranks.
    remote: Mutex<HashMap<u64, Weak<RemoteActor>>>,
    /// Messages for actors created elsewhere whose `CreateActor` is still
    /// on its way (step 4).
    early: Mutex<HashMap<u64, Vec<(Rank, Msg)>>>,
    /// Actors created here for other ranks that are gone, and why.
    gone: Mutex<HashMap<u64, String>>,
    /// CPUs held on each rank by the actors this rank created there.
    reserved: Mutex<Vec<f64>>,
    /// Actors this rank created on other ranks, with their host: those it
    /// still holds a handle to it re-creates when their host is lost, the
    /// others it declares gone (so that no rank waits for news of them).
    created: Mutex<HashMap<u64, Rank>>,
    /// Actors re-created on another rank, and where: for handles archived
    /// before the restart (they name the old host).
    moved: Mutex<HashMap<u64, Rank>>,
}

impl Book {
    pub(crate) fn new(size: u32) -> Book {
        Book {
            lent: Lent::new(),
            remote: Mutex::new(HashMap::new()),
            early: Mutex::new(HashMap::new()),
            gone: Mutex::new(HashMap::new()),
            reserved: Mutex::new(vec![0.0; size as usize]),
            created: Mutex::new(HashMap::new()),
            moved: Mutex::new(HashMap::new()),
        }
    }

    /// This rank's handles to actors on other ranks, for state listings.
    pub(crate) fn states(&self) -> Vec<crate::state::ActorState> {
        let links: Vec<Arc<RemoteActor>> = lock(&self.remote)
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
}

/// Step 1: where a new actor goes. `None`: this rank (the actor waits here
/// for its resources, or `local` is the error that it never could).
pub(crate) fn place(
    inner: &Inner,
    opts: &ActorOptions,
    local: &Result<Request>,
) -> Result<Option<Rank>> {
    let size = inner.cluster().map_or(1, Cluster::size);
    if let Some(r) = opts.rank
        && r >= size
    {
        return Err(Error::InvalidArgument(format!(
            "actor {}: on_rank({r}), but the job has {size} rank(s)",
            opts.name.as_deref().unwrap_or("?"),
        )));
    }
    let Some(c) = inner.cluster() else {
        return Ok(None);
    };
    if let Some(r) = opts.rank {
        return Ok((r != c.rank).then_some(r));
    }
    if let Ok(req) = local
        && inner.pool.ledger.fits_now(req)
    {
        return Ok(None);
    }
    let (free_best, any) = other_ranks_for(c, opts);
    Ok(match (free_best, local) {
        (Some(r), _) => Some(r),
        (None, Ok(_)) => None,
        (None, Err(_)) => any,
    })
}

/// Among the other live ranks that could ever hold an actor with `opts`:
/// the one with the most CPUs free (after this rank's tasks and actors
/// there) if any has enough, and the first one.
fn other_ranks_for(c: &Cluster, opts: &ActorOptions) -> (Option<Rank>, Option<Rank>) {
    let need = [opts.num_cpus, opts.num_gpus, opts.memory];
    let totals = lock(&c.totals);
    let lost = lock(&c.lost);
    let reserved = lock(&c.actors.reserved);
    let mut free_best: Option<(f64, Rank)> = None;
    let mut any: Option<Rank> = None;
    for (r, t) in totals.iter().enumerate() {
        let rank = r as Rank;
        let Some(t) = t else { continue };
        if rank == c.rank || lost.contains(&rank) || !cluster::rank_has(t, need, &opts.resources) {
            continue;
        }
        any.get_or_insert(rank);
        let busy = c.in_flight[r].load(Ordering::Relaxed) as f64 + reserved[r];
        let free = t.get("CPU").copied().unwrap_or(0.0) - busy;
        if free >= opts.num_cpus && free_best.is_none_or(|(b, _)| free > b) {
            free_best = Some((free, rank));
        }
    }
    (free_best.map(|(_, r)| r), any)
}

/// Step 1 on the creator: asks `host` to create the actor; returns the
/// creator's link to it.
pub(crate) fn create_on(
    inner: &Arc<Inner>,
    host: Rank,
    class: u64,
    name: Arc<str>,
    opts: &ActorOptions,
    ctor: EncodedCall,
) -> Result<Arc<RemoteActor>> {
    let c = inner.cluster().ok_or(Error::Shutdown)?;
    let id = inner.ids.actor();
    let (args, kept) = ctor.into_parts();
    let args = args.to_vec();
    c.send(
        host,
        &Msg::CreateActor {
            actor: id.as_u64(),
            class,
            args: args.clone(),
            opts: WireActorOptions::from_options(opts),
        },
    )?;
    lock(&c.actors.created).insert(id.as_u64(), host);
    let reserved = opts.num_cpus.max(0.0);
    if let Some(r) = lock(&c.actors.reserved).get_mut(host as usize) {
        *r += reserved;
    }
    let link = Arc::new(RemoteActor {
        id,
        host: AtomicU32::new(host),
        name,
        rt: Arc::downgrade(inner),
        acked: AtomicBool::new(true),
        dead: OnceLock::new(),
        waiting: Mutex::new(None),
        task_retries: AtomicI32::new(opts.max_task_retries),
        restart: Some(Mutex::new(Restart {
            class,
            args,
            opts: opts.clone(),
            left: opts.max_restarts,
            restarted: 0,
        })),
        reserved,
        _ctor_args: kept,
    });
    lock(&c.actors.remote).insert(id.as_u64(), Arc::downgrade(&link));
    Ok(link)
}

/// Step 3 on a receiver: this rank's link to actor `id` on `host`,
/// registering with the host on first sight.
pub(crate) fn attach(
    inner: &Arc<Inner>,
    id: ActorId,
    host: Rank,
    name: Arc<str>,
) -> Result<Arc<RemoteActor>> {
    let c = inner
        .cluster()
        .ok_or_else(|| Error::Unknown(format!("{id} (on rank {host}, but this job has one)")))?;
    if host >= c.size() {
        return Err(Error::Unknown(format!(
            "{id} on rank {host} (the job has {} ranks)",
            c.size()
        )));
    }
    let link = {
        let mut map = lock(&c.actors.remote);
        if let Some(r) = map.get(&id.as_u64()).and_then(Weak::upgrade) {
            return Ok(r);
        }
        let link = Arc::new(RemoteActor {
            id,
            host: AtomicU32::new(host),
            name,
            rt: Arc::downgrade(inner),
            acked: AtomicBool::new(false),
            dead: OnceLock::new(),
            waiting: Mutex::new(None),
            task_retries: AtomicI32::new(0),
            restart: None,
            reserved: 0.0,
            _ctor_args: Vec::new(),
        });
        map.insert(id.as_u64(), Arc::downgrade(&link));
        link
    };
    if lock(&c.lost).contains(&host) {
        let _ = link.dead.set(format!("its rank, {host}, was lost"));
        link.acked.store(true, Ordering::Release);
        return Ok(link);
    }
    cluster::note_new_borrow(id.as_u64());
    c.releases.borrowing(id.as_u64(), host);
    let _ = c.send(host, &Msg::AddActorBorrow { actor: id.as_u64() });
    Ok(link)
}

/// What keeps actor `id` (on `host`) alive inside a result received from
/// another rank.
pub(crate) fn keep(inner: &Arc<Inner>, id: u64, host: Rank) -> Option<KeepAlive> {
    let aid = ActorId::from_u64(id);
    let host = current_host(inner, aid, host);
    let keep: KeepAlive = if host == inner.rank {
        inner.exports.actor(aid)?
    } else {
        attach(inner, aid, host, format!("actor {aid}").into()).ok()?
    };
    Some(Arc::new(HeldHandle::new(aid, host, keep)))
}

/// Step 2 on the caller.
pub(crate) fn call<R: Object>(
    link: &RemoteActor,
    method: &'static str,
    call: EncodedCall,
) -> Result<ObjectRef<R>> {
    let inner = link.rt.upgrade().ok_or(Error::Shutdown)?;
    if inner.is_shut() {
        return Err(Error::Shutdown);
    }
    let c = inner.cluster().ok_or(Error::Shutdown)?;
    let slot = Slot::pending(inner.ids.object(), None, inner.unhandled.clone());
    let out = ObjectRef::from_slot(slot.clone());
    if let Some(reason) = link.dead.get() {
        slot.complete(Stored::Error(Error::ActorDied {
            actor: link.name.to_string(),
            reason: reason.clone(),
        }));
        return Ok(out);
    }
    let method_id = call.id;
    let (args, kept) = call.into_parts();
    let object = slot.id.as_u64();
    let _ = method;
    let mut sent = Sent {
        slot,
        rank: link.host(),
        type_tag: TypeTag::of::<R>(),
        type_name: std::any::type_name::<R>(),
        work: Work::ActorCall {
            actor: link.id.as_u64(),
            name: link.name.clone(),
            method: method_id,
            // Kept to send again only where a resend may come.
            args: (link.task_retries.load(Ordering::Relaxed) != 0).then(|| args.to_vec()),
            attempts: 0,
        },
        _kept: kept,
    };
    {
        let mut waiting = lock(&link.waiting);
        if let Some(queue) = waiting.as_mut() {
            // The host is lost: send it where the creator re-creates it.
            if let Work::ActorCall { args: a, .. } = &mut sent.work {
                *a = Some(args.to_vec());
            }
            queue.push((object, sent));
            return Ok(out);
        }
    }
    let msg = Msg::ActorCall {
        actor: link.id.as_u64(),
        method: method_id,
        object,
        args: args.to_vec(),
    };
    if let Work::ActorCall { attempts, .. } = &mut sent.work {
        *attempts = 1;
    }
    cluster::send_awaiting_done(c, object, sent, &msg);
    Ok(out)
}

/// Sends (or sends again) a call to its actor's new host; it fails if its
/// arguments were not kept.
fn resend(c: &Cluster, object: u64, mut sent: Sent, host: Rank) {
    let Work::ActorCall {
        actor,
        name,
        method,
        args,
        attempts,
    } = &mut sent.work
    else {
        return;
    };
    let Some(a) = args.clone() else {
        let e = Error::ActorDied {
            actor: name.to_string(),
            reason: "the call's arguments were not kept to send it again".into(),
        };
        sent.slot.complete(Stored::Error(e));
        return;
    };
    *attempts += 1;
    let msg = Msg::ActorCall {
        actor: *actor,
        method: *method,
        object,
        args: a,
    };
    sent.rank = host;
    cluster::send_awaiting_done(c, object, sent, &msg);
}

/// A call in flight to `lost`, its actor's host, when that rank was lost
/// (after [`rank_lost`] has restarted what it could): resent, held until
/// the creator says where the actor went, or failed.
pub(crate) fn orphaned_call(c: &Cluster, object: u64, sent: Sent, lost: Rank, reason: &str) {
    let Work::ActorCall {
        actor,
        name,
        attempts,
        ..
    } = &sent.work
    else {
        return;
    };
    let died = |why: String| Error::ActorDied {
        actor: name.to_string(),
        reason: why,
    };
    let link = lock(&c.actors.remote).get(actor).and_then(Weak::upgrade);
    let Some(link) = link.clone().filter(|l| l.dead.get().is_none()) else {
        let why = link.and_then(|l| l.dead.get().cloned());
        let e = died(why.unwrap_or_else(|| format!("its rank, {lost}, was lost: {reason}")));
        sent.slot.complete(Stored::Error(e));
        return;
    };
    {
        let mut waiting = lock(&link.waiting);
        if let Some(queue) = waiting.as_mut() {
            queue.push((object, sent));
            return;
        }
    }
    if *attempts == 0 || link.retries_allowed(*attempts) {
        resend(c, object, sent, link.host());
    } else {
        let e = died(format!(
            "its rank, {lost}, was lost while the call ran ({reason}); \
             it was restarted on rank {}, but max_task_retries does not allow sending the call again",
            link.host()
        ));
        sent.slot.complete(Stored::Error(e));
    }
}

/// Where actor `id`, last known on `host`, lives now.
pub(crate) fn current_host(inner: &Inner, id: ActorId, host: Rank) -> Rank {
    inner
        .cluster()
        .and_then(|c| lock(&c.actors.moved).get(&id.as_u64()).copied())
        .unwrap_or(host)
}

/// `kill` through a handle on another rank.
pub(crate) fn kill(link: &RemoteActor) {
    let _ = link.dead.set(KILLED.to_string());
    if let Some(inner) = link.rt.upgrade()
        && let Some(c) = inner.cluster()
    {
        if let Some(r) = &link.restart {
            lock(r).left = 0;
        }
        let _ = c.send(
            link.host(),
            &Msg::KillActor {
                actor: link.id.as_u64(),
            },
        );
    }
}

/// A call's `Done` said the actor died: later calls from here fail at once.
pub(crate) fn note_call_failed(c: &Cluster, actor: u64, e: &WireError) {
    if !e.is_actor_died() {
        return;
    }
    if let Some(r) = lock(&c.actors.remote).get(&actor).and_then(Weak::upgrade) {
        let _ = r.dead.set(e.message.clone());
    }
}

/// Step 5: `rank` is gone.
pub(crate) fn rank_lost(c: &Cluster, rank: Rank, reason: &str) {
    let links: Vec<Arc<RemoteActor>> = lock(&c.actors.remote)
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    let lost_here = format!("its rank, {rank}, was lost: {reason}");
    for r in &links {
        let creator = r.id.rank();
        if r.host() == rank {
            r.acked.store(true, Ordering::Release);
            if r.restart.is_some() {
                restart_elsewhere(c, r, &lost_here);
            } else if creator != rank && !lock(&c.lost).contains(&creator) {
                // The creator says where it went (or that it is gone).
                lock(&r.waiting).get_or_insert_with(Vec::new);
            } else {
                let _ = r.dead.set(lost_here.clone());
            }
        } else if creator == rank && lock(&r.waiting).is_some() {
            // Nobody is left to re-create it.
            gone(
                c,
                r,
                &format!("{lost_here} (and with it the actor's creator)"),
            );
        }
    }
    // Actors this rank created there that it no longer holds: gone.
    let unheld: Vec<u64> = {
        let mut created = lock(&c.actors.created);
        let ids: Vec<u64> = created
            .iter()
            .filter(|(id, host)| **host == rank && !links.iter().any(|l| l.id.as_u64() == **id))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            created.remove(id);
        }
        ids
    };
    for actor in unheld {
        broadcast(
            c,
            &Msg::ActorGone {
                actor,
                reason: lost_here.clone(),
            },
        );
    }
    // Actors that rank asked for and has not created yet never will be.
    lock(&c.actors.early).retain(|id, _| ActorId::from_u64(*id).rank() != rank);
    // Its handles are gone: actors only it held stop (outside the locks).
    drop(c.actors.lent.drop_rank(rank));
}

/// On the creator: re-creates actor `r`, whose host was lost, on another
/// rank while restarts are left (step 5).
fn restart_elsewhere(c: &Cluster, r: &Arc<RemoteActor>, lost_here: &str) {
    let Some(restart) = &r.restart else { return };
    let mut restart = lock(restart);
    let old = r.host();
    // Another rank if one can hold it, else this one (frames to itself go
    // through the transport like any other).
    let here = || {
        let totals = lock(&c.totals);
        let o = &restart.opts;
        totals[c.rank as usize]
            .as_ref()
            .is_some_and(|t| cluster::rank_has(t, [o.num_cpus, o.num_gpus, o.memory], &o.resources))
            .then_some(c.rank)
    };
    let host = match other_ranks_for(c, &restart.opts) {
        _ if restart.left == 0 => None,
        (Some(h), _) | (None, Some(h)) => Some(h),
        (None, None) => here(),
    };
    let Some(host) = host else {
        let why = if restart.left == 0 {
            format!("{lost_here} (no restarts left)")
        } else {
            format!("{lost_here} (no live rank can hold it)")
        };
        drop(restart);
        lock(&c.actors.created).remove(&r.id.as_u64());
        gone(c, r, &why);
        return;
    };
    if restart.left > 0 {
        restart.left -= 1;
    }
    restart.restarted += 1;
    let mut opts = restart.opts.clone();
    opts.max_restarts = restart.left;
    let create = Msg::CreateActor {
        actor: r.id.as_u64(),
        class: restart.class,
        args: restart.args.clone(),
        opts: WireActorOptions::from_options(&opts),
    };
    drop(restart);
    if let Err(e) = c.send(host, &create) {
        lock(&c.actors.created).remove(&r.id.as_u64());
        gone(
            c,
            r,
            &format!("{lost_here} (re-creating it on rank {host} failed: {e})"),
        );
        return;
    }
    tracing::warn!(
        "rank {}: {} ({}) re-created on rank {host}: {lost_here}",
        c.rank,
        r.name,
        r.id
    );
    {
        let mut reserved = lock(&c.actors.reserved);
        if let Some(x) = reserved.get_mut(old as usize) {
            *x = (*x - r.reserved).max(0.0);
        }
        if let Some(x) = reserved.get_mut(host as usize) {
            *x += r.reserved;
        }
    }
    r.host.store(host, Ordering::Release);
    lock(&c.actors.created).insert(r.id.as_u64(), host);
    lock(&c.actors.moved).insert(r.id.as_u64(), host);
    broadcast(
        c,
        &Msg::ActorRestarted {
            actor: r.id.as_u64(),
            host,
            max_task_retries: r.task_retries.load(Ordering::Relaxed),
        },
    );
}

/// Sends `msg` to every other live rank.
fn broadcast(c: &Cluster, msg: &Msg) {
    let lost = lock(&c.lost).clone();
    for to in (0..c.size()).filter(|to| *to != c.rank && !lost.contains(to)) {
        let _ = c.send(to, msg);
    }
}

/// Actor `r` will not come back: its held calls fail, later ones too.
fn gone(c: &Cluster, r: &RemoteActor, why: &str) {
    let _ = r.dead.set(why.to_string());
    let held = lock(&r.waiting).take().unwrap_or_default();
    for (_, sent) in held {
        sent.slot.complete(Stored::Error(Error::ActorDied {
            actor: r.name.to_string(),
            reason: why.to_string(),
        }));
    }
    if r.restart.is_some() {
        broadcast(
            c,
            &Msg::ActorGone {
                actor: r.id.as_u64(),
                reason: why.to_string(),
            },
        );
    }
}

/// On a rank other than the creator: the creator re-created actor `actor`
/// on `host` (or it is gone: `host` is `None`).
fn heard_of_restart(c: &Cluster, actor: u64, news: std::result::Result<(Rank, i32), String>) {
    let link = lock(&c.actors.remote).get(&actor).and_then(Weak::upgrade);
    let (host, retries) = match news {
        Ok(x) => x,
        Err(why) => {
            if let Some(r) = link {
                gone(c, &r, &why);
            }
            return;
        }
    };
    lock(&c.actors.moved).insert(actor, host);
    let Some(r) = link else { return };
    r.task_retries.store(retries, Ordering::Relaxed);
    r.host.store(host, Ordering::Release);
    let held = lock(&r.waiting).take().unwrap_or_default();
    // Hold it there too (the host answers `BorrowAck`).
    r.acked.store(false, Ordering::Release);
    c.releases.borrowing(actor, host);
    let _ = c.send(host, &Msg::AddActorBorrow { actor });
    for (object, sent) in held {
        let attempts = match &sent.work {
            Work::ActorCall { attempts, .. } => *attempts,
            Work::Task { .. } => continue,
        };
        // Never sent (made while waiting), or in flight when the host was lost.
        if attempts == 0 || r.retries_allowed(attempts) {
            resend(c, object, sent, host);
        } else {
            sent.slot.complete(Stored::Error(Error::ActorDied {
                actor: r.name.to_string(),
                reason: format!(
                    "its rank was lost while the call ran; it was restarted on rank {host}, \
                     but max_task_retries does not allow sending the call again"
                ),
            }));
        }
    }
}

/// An actor created here for another rank (by `create_hosted`): the
/// creator is its first holder.
pub(crate) fn lend_new(inner: &Inner, id: ActorId, keep: KeepAlive) {
    if let Some(c) = inner.cluster() {
        // The creator minted the id.
        c.actors.lent.add(id.as_u64(), id.rank(), keep);
    }
}

/// The last handle to actor `id` on this rank is gone.
pub(crate) fn no_more_handles(inner: &Inner, id: ActorId) {
    if id.rank() == inner.rank {
        return;
    }
    if let Some(c) = inner.cluster() {
        lock(&c.actors.gone).insert(
            id.as_u64(),
            "it was stopped (all handles dropped)".to_string(),
        );
    }
}

/// Whether a message about unknown actor `id` should wait for its
/// `CreateActor` (step 4), and if not, why the actor is not here.
fn missing(inner: &Inner, c: &Cluster, id: u64) -> std::result::Result<(), String> {
    let aid = ActorId::from_u64(id);
    if let Some(why) = lock(&c.actors.gone).get(&id) {
        return Err(why.clone());
    }
    if aid.rank() == inner.rank || lock(&c.lost).contains(&aid.rank()) {
        return Err("it is not on this rank any more".to_string());
    }
    Ok(())
}

/// The net thread's handler of actor messages.
pub(crate) fn handle(inner: &Arc<Inner>, c: &Cluster, from: Rank, msg: Msg) {
    match msg {
        Msg::ActorRestarted {
            actor,
            host,
            max_task_retries,
        } => return heard_of_restart(c, actor, Ok((host, max_task_retries))),
        Msg::ActorGone { actor, reason } => return heard_of_restart(c, actor, Err(reason)),
        _ => {}
    }
    let actor = match &msg {
        Msg::CreateActor { actor, .. }
        | Msg::ActorCall { actor, .. }
        | Msg::AddActorBorrow { actor }
        | Msg::RemoveActorBorrow { actor }
        | Msg::KillActor { actor } => *actor,
        _ => return,
    };
    let id = ActorId::from_u64(actor);
    if !matches!(msg, Msg::CreateActor { .. }) && inner.exports.actor(id).is_none() {
        match missing(inner, c, actor) {
            Ok(()) => lock(&c.actors.early)
                .entry(actor)
                .or_default()
                .push((from, msg)),
            Err(why) => refuse(c, from, id, msg, &why),
        }
        return;
    }
    match msg {
        Msg::CreateActor {
            class, args, opts, ..
        } => {
            let rt = Runtime::from_inner(inner.clone());
            let made = match private::lookup_ctor(class) {
                Some(f) => (f.create)(&rt, &opts.into_options(), id, &args),
                None => Err(Error::Unknown(format!(
                    "actor class {class:016x} (not in this rank's binary)"
                ))),
            };
            if let Err(e) = made {
                tracing::warn!("rank {}: creating {id} for rank {from}: {e}", c.rank);
                lock(&c.actors.gone).insert(
                    actor,
                    format!("it could not be created on rank {}: {e}", c.rank),
                );
            }
            let queued = lock(&c.actors.early).remove(&actor).unwrap_or_default();
            for (f, m) in queued {
                handle(inner, c, f, m);
            }
        }
        Msg::ActorCall {
            method,
            object,
            args,
            ..
        } => {
            if method == crate::actor::engine::CHECKPOINT_METHOD {
                let task = format!("{id}.checkpoint");
                cluster::execute(inner, c, from, object, task, |_| {
                    inner.actors.checkpoint(id)
                });
                return;
            }
            let f = private::lookup_method(method);
            let task = f.map_or_else(|| format!("method {method:016x}"), |f| f.path.to_string());
            cluster::execute(inner, c, from, object, task, |rt| match f {
                Some(f) => (f.invoke)(rt, id, &args),
                None => Err(Error::Unknown(format!(
                    "actor method {method:016x} (not in this rank's binary)"
                ))),
            });
        }
        Msg::AddActorBorrow { .. } => {
            if let Some(keep) = inner.exports.actor(id) {
                c.actors.lent.add(actor, from, keep);
            }
            let _ = c.send(
                from,
                &Msg::BorrowAck {
                    object: actor,
                    ok: true,
                    value: None,
                },
            );
        }
        Msg::RemoveActorBorrow { .. } => {
            let gone = c.actors.lent.remove(actor, from);
            drop(gone); // outside the lock: this may stop the actor
        }
        Msg::KillActor { .. } => {
            inner.actors.kill(id, KILLED);
        }
        _ => {}
    }
}

/// Answers a message about an actor that is not here.
fn refuse(c: &Cluster, from: Rank, id: ActorId, msg: Msg, why: &str) {
    match msg {
        Msg::ActorCall { object, .. } => cluster::fail_call(
            c,
            from,
            object,
            WireError::actor_died(&id.to_string(), why, c.rank),
        ),
        Msg::AddActorBorrow { actor } => {
            let _ = c.send(
                from,
                &Msg::BorrowAck {
                    object: actor,
                    ok: false,
                    value: None,
                },
            );
        }
        _ => {}
    }
}
