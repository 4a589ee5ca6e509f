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
//!
//! This file holds what a handle's rank does (steps 1 to 3, from the
//! caller's side); `actor_book` the links and bookkeeping, `actor_host`
//! what the actor's rank does, `actor_restart` step 5.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use ferry_transport::Rank;

use crate::actor::engine::{HeldHandle, KILLED};
pub(crate) use crate::cluster::actor_book::RemoteActor;
use crate::cluster::actor_book::Restart;
use crate::cluster::borrowing::note_new_borrow;
use crate::cluster::lent_args::{after_submit, lend};
use crate::cluster::placement::other_ranks_for;
use crate::cluster::rank_host::RankHost;
use crate::cluster::remote_task::send_awaiting_done;
use crate::cluster::sent::{Sent, Work};
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::wire::{Msg, WireActorOptions};
use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::object::cell::{KeepAlive, Stored, TypeTag};
use crate::object::codec::EncodedCall;
use crate::object::object_ref::ObjectRef;
use crate::resources::ledger::Request;
use crate::resources::options::ActorOptions;
use crate::sync::lock;
use crate::values::Object;

/// Step 1: where a new actor goes. `None`: this rank (the actor waits here
/// for its resources, or `local` is the error that it never could).
pub(crate) fn place<H: RankHost>(
    inner: &Arc<H>,
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
        && inner.pool().ledger.fits_now(req)
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

/// Step 1 on the creator: asks `host` to create actor `id` (minted here); returns the
/// creator's link to it.
pub(crate) fn create_on<H: RankHost>(
    inner: &Arc<H>,
    host: Rank,
    id: ActorId,
    class: u64,
    name: Arc<str>,
    opts: &ActorOptions,
    ctor: EncodedCall,
) -> Result<Arc<RemoteActor<H>>> {
    let c = inner.cluster().ok_or(Error::Shutdown)?;
    let (args, kept) = ctor.into_parts();
    let args = args.to_vec();
    c.send(
        host,
        &Msg::CreateActor {
            actor: id.as_u64(),
            class,
            args: args.clone(),
            opts: Box::new(WireActorOptions::from_options(opts)),
        },
    )?;
    lock(&c.actors.created).insert(id.as_u64(), host);
    let reserved = opts.ask.cpus.max(0.0);
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
pub(crate) fn attach<H: RankHost>(
    inner: &Arc<H>,
    id: ActorId,
    host: Rank,
    name: Arc<str>,
) -> Result<Arc<RemoteActor<H>>> {
    let c = inner.cluster().ok_or_else(|| Error::ActorNotFound {
        actor: id,
        reason: format!("it lives on rank {host}, but this job has one rank"),
    })?;
    if host >= c.size() {
        return Err(Error::ActorNotFound {
            actor: id,
            reason: format!(
                "it lives on rank {host}, but the job has {} ranks",
                c.size()
            ),
        });
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
    note_new_borrow(id.as_u64());
    c.releases.borrowing(id.as_u64(), host);
    let _ = c.send(host, &Msg::AddActorBorrow { actor: id.as_u64() });
    Ok(link)
}

/// What keeps actor `id` (on `host`) alive inside a result received from
/// another rank.
pub(crate) fn keep<H: RankHost>(inner: &Arc<H>, id: u64, host: Rank) -> Option<KeepAlive> {
    let aid = ActorId::from_u64(id);
    let host = current_host(inner, aid, host);
    let keep: KeepAlive = if host == inner.rank() {
        inner.store().exports.actor(aid)?
    } else {
        attach(inner, aid, host, format!("actor {aid}").into()).ok()?
    };
    Some(Arc::new(HeldHandle::new(aid, host, keep)))
}

/// Step 2 on the caller.
pub(crate) fn call<R: Object>(
    link: &RemoteActor<impl RankHost>,
    method: &'static str,
    call: EncodedCall,
) -> Result<ObjectRef<R>> {
    let inner = link.rt.upgrade().ok_or(Error::Shutdown)?;
    if inner.is_shut() {
        return Err(Error::Shutdown);
    }
    let c = inner.cluster().ok_or(Error::Shutdown)?;
    let slot = inner.store().new_output();
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
    let host = sent.rank;
    let (lent, lending) = lend(c, host, &[], &sent._kept, |_| false);
    let msg = Msg::ActorCall {
        actor: link.id.as_u64(),
        method: method_id,
        object,
        args: args.to_vec(),
        lent,
    };
    if let Work::ActorCall { attempts, .. } = &mut sent.work {
        *attempts = 1;
    }
    let went = send_awaiting_done(c, object, sent, &msg);
    after_submit(c, host, lending, went);
    Ok(out)
}

/// Where actor `id`, last known on `host`, lives now.
pub(crate) fn current_host<H: ClusterHost>(inner: &Arc<H>, id: ActorId, host: Rank) -> Rank {
    inner
        .cluster()
        .and_then(|c| lock(&c.actors.moved).get(&id.as_u64()).copied())
        .unwrap_or(host)
}

/// `kill` through a handle on another rank.
pub(crate) fn kill<H: ClusterHost>(link: &RemoteActor<H>) {
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

/// An actor created here for another rank (by `create_hosted`): the
/// creator is its first holder.
pub(crate) fn lend_new<H: ClusterHost>(inner: &Arc<H>, id: ActorId, keep: KeepAlive) {
    if let Some(c) = inner.cluster() {
        // The creator minted the id.
        c.actors.lent.add(id.as_u64(), id.rank(), keep);
    }
}

/// The last handle to actor `id` on this rank is gone.
pub(crate) fn no_more_handles<H: RankHost>(inner: &H, id: ActorId) {
    if id.rank() == inner.rank() {
        return;
    }
    if let Some(c) = inner.cluster() {
        lock(&c.actors.gone).insert(
            id.as_u64(),
            "it was stopped (all handles dropped)".to_string(),
        );
    }
}
