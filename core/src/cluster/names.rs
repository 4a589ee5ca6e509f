//! The name registry across ranks (see `actor::names` for the protocol):
//! rank 0 holds it; other ranks ask with `NameRegister` and `NameLookup`,
//! which rank 0 answers with `NameReply`, and free names with `NameFree`.
//!
//! Every wait for an answer is bounded: it ends with
//! [`Error::DriverLost`] as soon as rank 0 is known lost, with
//! [`Error::Shutdown`] when this rank stops, and with
//! [`Error::NameRegistry`] after [`REPLY_WAIT`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_transport::Rank;

use crate::actor::names::{Named, Registered};
use crate::cluster::name_requests::Reply;
use crate::cluster::rank_host::RankHost;
use crate::cluster::remote_actor::current_host;
use crate::cluster::shared::Cluster;
use crate::cluster::wire::{Msg, WireNamed};
use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::sync::lock;

/// How long a rank waits for the registry's answer while rank 0 lives.
pub(crate) const REPLY_WAIT: Duration = Duration::from_secs(60);

/// The registry rank.
const REGISTRY: Rank = 0;

/// Gives `name` to `named` unless an actor holds it (step 2).
pub(crate) fn register<H: RankHost>(
    inner: &Arc<H>,
    name: &str,
    named: Named,
    get_if_exists: bool,
) -> Result<Registered> {
    // A caller that heard an actor died may make a new one of its name at
    // once: the registry must not wait for the host's `NameFree`, which
    // goes by another way (protocol step 4).
    let dead = inner
        .cluster()
        .map_or_else(Vec::new, |c| c.actors.recently_died());
    let Some(c) = inner.cluster().filter(|c| c.rank != REGISTRY) else {
        return Ok(inner
            .names()
            .registry
            .register(name, named, get_if_exists, |a| dead.contains(&a.as_u64())));
    };
    let (fresh, holder) = ask(c, name, |req| Msg::NameRegister {
        req,
        name: name.to_string(),
        named: WireNamed::from_named(&named),
        get_if_exists,
        dead,
    })?;
    Ok(match holder.map(WireNamed::into_named) {
        _ if fresh => Registered::Fresh,
        Some(h) if get_if_exists => Registered::Existing(h),
        Some(h) => Registered::Taken(h),
        None => Registered::Fresh,
    })
}

/// The actor holding `name`, with the rank it lives on now.
pub(crate) fn lookup<H: RankHost>(inner: &Arc<H>, name: &str) -> Result<Option<Named>> {
    let Some(c) = inner.cluster().filter(|c| c.rank != REGISTRY) else {
        return Ok(here(inner, name));
    };
    let (_, holder) = ask(c, name, |req| Msg::NameLookup {
        req,
        name: name.to_string(),
    })?;
    Ok(holder.map(WireNamed::into_named))
}

/// Frees `name` if `actor` still holds it (step 4); best effort.
pub(crate) fn free<H: RankHost>(inner: &H, name: &str, actor: ActorId) {
    match inner.cluster().filter(|c| c.rank != REGISTRY) {
        None => inner.names().registry.free(name, actor),
        Some(c) => {
            if !lock(&c.lost).contains(&REGISTRY) {
                let _ = c.send(
                    REGISTRY,
                    &Msg::NameFree {
                        name: name.to_string(),
                        actor: actor.as_u64(),
                    },
                );
            }
        }
    }
}

/// On the registry: the holder of `name`, at the rank it lives on now.
fn here<H: RankHost>(inner: &Arc<H>, name: &str) -> Option<Named> {
    let mut n = inner.names().registry.lookup(name)?;
    n.host = current_host(inner, n.actor, n.host);
    Some(n)
}

/// Sends the request `make(req)` to the registry and waits for its answer.
fn ask<H: RankHost>(c: &Cluster<H>, name: &str, make: impl FnOnce(u64) -> Msg) -> Result<Reply> {
    let req = c.names.next.fetch_add(1, Ordering::Relaxed);
    lock(&c.names.replies).insert(req, None);
    let give_up = |e: Error| {
        if lock(&c.names.replies).remove(&req).is_some() {
            c.transport.expect_reply(false);
        }
        Err(e)
    };
    c.transport.expect_reply(true);
    if let Err(e) = c.send(REGISTRY, &make(req)) {
        return give_up(Error::NameRegistry {
            name: name.to_string(),
            reason: e.to_string(),
        });
    }
    let deadline = Instant::now() + REPLY_WAIT;
    loop {
        {
            let mut replies = lock(&c.names.replies);
            if matches!(replies.get(&req), Some(Some(_)))
                && let Some(Some(reply)) = replies.remove(&req)
            {
                return Ok(reply);
            }
        }
        if lock(&c.lost).contains(&REGISTRY) {
            return give_up(Error::DriverLost {
                reason: format!("while asking rank 0 about the actor name {name:?}"),
            });
        }
        if c.stop.load(Ordering::Acquire) {
            return give_up(Error::Shutdown);
        }
        let now = Instant::now();
        if now >= deadline {
            return give_up(Error::NameRegistry {
                name: name.to_string(),
                reason: format!("no answer in {REPLY_WAIT:?}"),
            });
        }
        // Polls this thread's frames (MPI), then waits a bounded slice.
        c.transport.poll();
        let replies = lock(&c.names.replies);
        if matches!(replies.get(&req), Some(Some(_))) {
            continue;
        }
        let slice = (deadline - now).min(Duration::from_millis(20));
        drop(c.names.arrived.wait_timeout(replies, slice));
    }
}

/// The receive loop's handler of name messages.
pub(super) fn on_name_message<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, from: Rank, msg: Msg) {
    let answer = |req: u64, fresh: bool, holder: Option<Named>| {
        let holder = holder.as_ref().map(WireNamed::from_named);
        let _ = c.send(from, &Msg::NameReply { req, fresh, holder });
    };
    match msg {
        Msg::NameRegister {
            req,
            name,
            named,
            get_if_exists,
            dead,
        } => match inner
            .names()
            .registry
            .register(&name, named.into_named(), get_if_exists, |a| {
                dead.contains(&a.as_u64())
            }) {
            Registered::Fresh => answer(req, true, None),
            Registered::Existing(_) | Registered::Taken(_) => {
                answer(req, false, here(inner, &name))
            }
        },
        Msg::NameLookup { req, name } => answer(req, false, here(inner, &name)),
        Msg::NameReply { req, fresh, holder } => {
            let mut replies = lock(&c.names.replies);
            if let Some(slot) = replies.get_mut(&req) {
                *slot = Some((fresh, holder));
                c.transport.expect_reply(false);
                c.names.arrived.notify_all();
            }
        }
        Msg::NameFree { name, actor } => {
            inner.names().registry.free(&name, ActorId::from_u64(actor));
        }
        _ => {}
    }
}

/// On the registry: rank `rank` was lost (after its actors' restarts were
/// decided here). The names of actors it hosted are freed unless their
/// creator lives on elsewhere and may still re-create them (it then tells
/// every rank where, or that they are gone: `ActorRestarted`, `ActorGone`).
pub(super) fn rank_lost<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, rank: Rank) {
    if c.rank != REGISTRY {
        return;
    }
    let lost = lock(&c.lost).clone();
    inner.names().registry.free_where(|n| {
        let creator = n.actor.rank();
        current_host(inner, n.actor, n.host) == rank
            && (creator == c.rank || lost.contains(&creator))
    });
}

/// On the registry: the creator of actor `actor` will not re-create it.
pub(super) fn actor_gone<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, actor: u64) {
    if c.rank == REGISTRY {
        inner.names().registry.free_actor(ActorId::from_u64(actor));
    }
}
