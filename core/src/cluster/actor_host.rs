//! Remote actors on the rank they live on (see `remote_actor`): creating
//! one another rank asked for, running the calls other ranks send it,
//! counting which ranks hold handles, and holding back messages that
//! overtook the actor's `CreateActor` (step 4).

use std::sync::Arc;

use ferry_transport::Rank;

use crate::actor::engine::{CHECKPOINT_METHOD, KILLED};
use crate::cluster::actor_restart::heard_of_restart;
use crate::cluster::executor::{CallName, execute, fail_call};
use crate::cluster::lent_args::with_lent;
use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::Cluster;
use crate::cluster::wire::{Msg, WireError};
use crate::error::Error;
use crate::ids::ActorId;
use crate::sync::lock;

/// Whether a message about unknown actor `id` should wait for its
/// `CreateActor` (step 4), and if not, why the actor is not here.
fn missing<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    id: u64,
) -> std::result::Result<(), String> {
    let aid = ActorId::from_u64(id);
    if let Some(why) = lock(&c.actors.gone).get(&id) {
        return Err(why.clone());
    }
    if inner.names().is_pending(aid) {
        // Created here once the registry gives it its name.
        return Ok(());
    }
    if aid.rank() == inner.rank() || lock(&c.lost).contains(&aid.rank()) {
        return Err("it is not on this rank any more".to_string());
    }
    Ok(())
}

/// The receive loop's handler of actor messages.
pub(super) fn on_actor_message<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, from: Rank, msg: Msg) {
    match msg {
        Msg::ActorRestarted {
            actor,
            host,
            max_task_retries,
        } => return heard_of_restart(c, actor, Ok((host, max_task_retries))),
        Msg::ActorGone { actor, reason } => {
            crate::cluster::names::actor_gone(inner, c, actor);
            return heard_of_restart(c, actor, Err(reason));
        }
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
    if !matches!(msg, Msg::CreateActor { .. }) && inner.store().exports.actor(id).is_none() {
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
            let made = inner.create_actor(class, id, &(*opts).into_options(), &args);
            if let Err(e) = made {
                tracing::warn!("rank {}: creating {id} for rank {from}: {e}", c.rank);
                lock(&c.actors.gone).insert(
                    actor,
                    format!("it could not be created on rank {}: {e}", c.rank),
                );
            }
            replay_early(inner, c, id);
        }
        Msg::ActorCall {
            method,
            object,
            args,
            lent,
            ..
        } => {
            with_lent(c, from, lent, || {
                if method == CHECKPOINT_METHOD {
                    let task = CallName::Text(format!("{id}.checkpoint"));
                    return execute(inner, c, from, object, task, || {
                        inner.actors().checkpoint(id)
                    });
                }
                let f = inner.actor_method(method);
                let task = f.map_or(CallName::Method(method), |(_, path)| CallName::Static(path));
                execute(inner, c, from, object, task, || match f {
                    Some((f, _)) => inner.call_actor(id, f, &args),
                    None => Err(Error::ActorMethodNotInBinary { method }),
                })
            });
        }
        Msg::AddActorBorrow { .. } => {
            if let Some(keep) = inner.store().exports.actor(id) {
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
            inner.actors().kill(id, KILLED);
        }
        _ => {}
    }
}

/// Handles the messages about actor `id` that waited for it to exist
/// here (or to be known gone).
pub(crate) fn replay_early<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, id: ActorId) {
    let queued = lock(&c.actors.early)
        .remove(&id.as_u64())
        .unwrap_or_default();
    for (f, m) in queued {
        on_actor_message(inner, c, f, m);
    }
}

/// Answers a message about an actor that is not here.
fn refuse<H: RankHost>(c: &Cluster<H>, from: Rank, id: ActorId, msg: Msg, why: &str) {
    match msg {
        // The counts lent with it go back.
        Msg::ActorCall { object, lent, .. } => with_lent(c, from, lent, || {
            fail_call(c, from, object, WireError::actor_died(&id.to_string(), why))
        }),
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
