//! Named actors, the public side: [`get_actor`], and what creating a named
//! actor and stopping one do with the registry (the protocol is in
//! `actor::names`; the messages in `cluster::names`).

use std::sync::Arc;

use crate::actor::names::{Here, Named, Registered};
use crate::cluster::names;
use crate::cluster::remote_actor;
use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::object::cell::KeepAlive;
use crate::runtime::actor_handle::{ActorClass, ActorHandle, ActorRef, Reach, local_handle};
use crate::runtime::{Inner, Runtime};

/// The handle of the actor named `name` in this job (Ray's
/// `ray.get_actor(name)`), from any rank and any thread or task.
///
/// Errors: [`Error::ActorNameNotFound`] when no live actor has the name
/// (Ray's `ValueError`), [`Error::ActorNameOtherClass`] when it is of
/// another class than `A`, and, from a rank other than 0 (which keeps the
/// job's names), [`Error::DriverLost`] or [`Error::NameRegistry`] when
/// rank 0 is lost or does not answer in time.
///
/// Differences from Ray: no `namespace` argument (the job is the namespace);
/// the class is part of the call (`get_actor::<Counter>`) and checked, where
/// Ray's handle is untyped.
///
/// ```
/// use ferry_core::{ActorClass, ActorHandle, Error, Result, Runtime};
///
/// /// The actor named `name`, if there is one.
/// fn find<C: ActorClass>(rt: &Runtime, name: &str) -> Result<Option<ActorHandle<C>>> {
///     match ferry_core::get_actor::<C>(rt, name) {
///         Ok(h) => Ok(Some(h)),
///         Err(Error::ActorNameNotFound { .. }) => Ok(None),
///         Err(e) => Err(e),
///     }
/// }
/// ```
pub fn get_actor<A: ActorClass>(rt: &Runtime, name: &str) -> Result<ActorHandle<A>> {
    let inner = &rt.inner;
    if inner.is_shut() {
        return Err(Error::Shutdown);
    }
    match names::lookup(inner, name)? {
        Some(n) => handle_of(inner, name, n),
        None => Err(Error::ActorNameNotFound { name: name.into() }),
    }
}

/// A handle to named actor `n`, typed `A` if it is one.
fn handle_of<A: ActorClass>(inner: &Arc<Inner>, name: &str, n: Named) -> Result<ActorHandle<A>> {
    if n.class != A::ID {
        return Err(Error::ActorNameOtherClass {
            name: name.into(),
            actor: n.actor,
            class: A::NAME.into(),
        });
    }
    let host = remote_actor::current_host(inner, n.actor, n.host);
    if host == inner.rank {
        // Stopped since the registry answered (its name is being freed).
        return local_handle(inner, n.actor)
            .map_err(|_| Error::ActorNameNotFound { name: name.into() });
    }
    let r = remote_actor::attach(inner, n.actor, host, name.into())?;
    r.learn_task_retries(n.task_retries);
    Ok(ActorHandle::from_ref(ActorRef {
        reach: Reach::Remote(r),
    }))
}

/// What creating an actor does with its name.
pub(crate) enum Claim<A: ActorClass> {
    /// The name is the new actor's (or it has none): create it.
    Create,
    /// `get_if_exists` and the name is taken: this is the holder's handle.
    Existing(ActorHandle<A>),
}

/// Before a named actor `id` of class `A` is created on `host`: takes its
/// name in the registry (step 2). Messages about `id` that reach this rank
/// meanwhile wait for [`created`].
pub(crate) fn claim<A: ActorClass>(
    inner: &Arc<Inner>,
    name: &str,
    id: ActorId,
    host: u32,
    task_retries: i32,
    get_if_exists: bool,
) -> Result<Claim<A>> {
    let named = Named {
        class: A::ID,
        actor: id,
        host,
        task_retries,
    };
    inner.names.pend(id);
    let answer = names::register(inner, name, named, get_if_exists);
    let outcome = match answer {
        Ok(Registered::Fresh) => return Ok(Claim::Create),
        Ok(Registered::Existing(h)) => handle_of(inner, name, h).map(Claim::Existing),
        Ok(Registered::Taken(h)) => Err(Error::ActorNameTaken {
            name: name.into(),
            actor: h.actor,
        }),
        Err(e) => Err(e),
    };
    created(inner, id);
    outcome
}

/// Named actor `id` was created (or failed to be): the messages about it
/// that waited for it are handled.
pub(crate) fn created(inner: &Arc<Inner>, id: ActorId) {
    inner.names.unpend(id);
    if let Some(c) = inner.cluster() {
        crate::cluster::replay_early(inner, c, id);
    }
}

/// Named actor `id` now lives here (step 3); `keep` is one of its handles.
pub(crate) fn lives_here(inner: &Inner, id: ActorId, name: &str, detached: bool, keep: KeepAlive) {
    inner.store.exports.export_actor(id, &keep);
    inner.names.live_here(
        id,
        Here {
            name: name.to_string(),
            _keep: detached.then_some(keep),
        },
    );
}

/// Actor `id` stopped for good on this rank: if it was named here, its
/// name is freed and a detached actor's keep let go (step 4).
pub(crate) fn stopped(inner: &Inner, id: ActorId) {
    let Some(here) = inner.names.stopped(id) else {
        return;
    };
    if !inner.is_shut() {
        names::free(inner, &here.name, id);
    }
    drop(here); // outside the lock: may drop the actor's last handle
}

/// Frees a name claimed for an actor whose creation then failed.
pub(crate) fn unclaim(inner: &Inner, name: &str, id: ActorId) {
    names::free(inner, name, id);
}
