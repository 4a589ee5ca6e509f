//! Remote actors, step 5 (see `remote_actor`): the rank an actor lives on
//! is lost. Its creator re-creates it elsewhere while `max_restarts`
//! allows and tells every rank where it went (or that it is gone); calls
//! in flight to the lost rank are sent again while `max_task_retries`
//! allows, and calls made meanwhile wait for the news.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use ferry_transport::Rank;

use crate::cluster::actor_book::RemoteActor;
use crate::cluster::placement::other_ranks_for;
use crate::cluster::remote_task::send_awaiting_done;
use crate::cluster::sent::{Sent, Work};
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::wire::{Msg, WireActorOptions};
use crate::error::Error;
use crate::ids::ActorId;
use crate::object::cell::Stored;
use crate::sync::lock;

/// Sends (or sends again) a call to its actor's new host; it fails if its
/// arguments were not kept.
fn resend<H: ClusterHost>(c: &Cluster<H>, object: u64, mut sent: Sent, host: Rank) {
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
        lent: Vec::new(),
    };
    sent.rank = host;
    send_awaiting_done(c, object, sent, &msg);
}

/// A call in flight to `lost`, its actor's host, when that rank was lost
/// (after [`rank_lost`] has restarted what it could): resent, held until
/// the creator says where the actor went, or failed.
pub(super) fn orphaned_call<H: ClusterHost>(
    c: &Cluster<H>,
    object: u64,
    sent: Sent,
    lost: Rank,
    reason: &str,
) {
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

/// Step 5: `rank` is gone.
pub(super) fn rank_lost<H: ClusterHost>(c: &Cluster<H>, rank: Rank, reason: &str) {
    let links: Vec<Arc<RemoteActor<H>>> = lock(&c.actors.remote)
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
fn restart_elsewhere<H: ClusterHost>(c: &Cluster<H>, r: &Arc<RemoteActor<H>>, lost_here: &str) {
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
            .is_some_and(|t| o.ask.fits_in(t))
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
        opts: Box::new(WireActorOptions::from_options(&opts)),
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
fn broadcast<H: ClusterHost>(c: &Cluster<H>, msg: &Msg) {
    let lost = lock(&c.lost).clone();
    for to in (0..c.size()).filter(|to| *to != c.rank && !lost.contains(to)) {
        let _ = c.send(to, msg);
    }
}

/// Actor `r` will not come back: its held calls fail, later ones too.
fn gone<H: ClusterHost>(c: &Cluster<H>, r: &RemoteActor<H>, why: &str) {
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
pub(super) fn heard_of_restart<H: ClusterHost>(
    c: &Cluster<H>,
    actor: u64,
    news: std::result::Result<(Rank, i32), String>,
) {
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
