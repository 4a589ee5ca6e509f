//! Named actors (Ray's `name=`, `get_if_exists=`, `lifetime="detached"`):
//! the job's name registry and what a rank keeps of the named actors that
//! live on it.
//!
//! # Protocol
//!
//! 1. The registry is one [`Registry`], on rank 0 (as Ray keeps names in
//!    its GCS); every other rank reaches it by message (`cluster::names`).
//!    A name maps to its actor's class id, actor id, host rank and
//!    `max_task_retries`: enough to make a handle anywhere, as an archived
//!    handle does.
//! 2. Creating a named actor places it first, mints its id, then registers
//!    the name ([`Registry::register`]) before the actor exists; while that
//!    answer is out, the host queues messages about the id (a lookup from
//!    another rank may overtake the creation). A taken name fails the
//!    creation (or, with `get_if_exists`, gives the holder's handle) and
//!    the constructor never runs.
//! 3. The host keeps a [`Here`] for each named actor living on it: the name
//!    to free, and for a detached actor a strong handle, so that the rule
//!    "the actor stops when no rank holds a handle" never sees it unheld.
//! 4. When a named actor stops for good (killed, dead without restarts
//!    left, its last handle dropped, or the runtime shut down) its host
//!    drops the [`Here`] and frees the name, by actor id (a name taken
//!    again since is left alone): at once on rank 0, by `NameFree` from
//!    other ranks. A lost host frees its names on
//!    rank 0 unless the actor's creator may re-create it elsewhere.
//! 5. A caller hears of the death by its call's `ActorDied`, which comes
//!    from the host by another way than the host's `NameFree` to rank 0:
//!    so a registration carries the actors its rank last heard died, and
//!    the registry takes a name from such a holder at once.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::ids::ActorId;
use crate::object::cell::KeepAlive;
use crate::sync::lock;

/// What the registry knows of a named actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Named {
    /// The class's stable id.
    pub(crate) class: u64,
    pub(crate) actor: ActorId,
    /// The rank it was created on (see `remote_actor::current_host` after a
    /// restart elsewhere).
    pub(crate) host: u32,
    pub(crate) task_retries: i32,
}

/// The registry's answer to a registration.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Registered {
    /// The name is the new actor's.
    Fresh,
    /// The name was taken by this actor (the caller asked to get it).
    Existing(Named),
    /// The name is taken by this actor.
    Taken(Named),
}

/// The job's names (used on rank 0).
#[derive(Default)]
pub(crate) struct Registry {
    names: Mutex<HashMap<String, Named>>,
}

impl Registry {
    /// Gives `name` to `new` if it is free; else says who holds it.
    pub(crate) fn register(
        &self,
        name: &str,
        new: Named,
        get_if_exists: bool,
        died: impl Fn(ActorId) -> bool,
    ) -> Registered {
        let mut names = lock(&self.names);
        // A holder the asker knows died holds nothing (its `NameFree` may
        // still be on its way).
        if names.get(name).is_some_and(|old| died(old.actor)) {
            names.remove(name);
        }
        match names.get(name) {
            Some(old) if get_if_exists => Registered::Existing(*old),
            Some(old) => Registered::Taken(*old),
            None => {
                names.insert(name.to_string(), new);
                Registered::Fresh
            }
        }
    }

    /// The actor holding `name`.
    pub(crate) fn lookup(&self, name: &str) -> Option<Named> {
        lock(&self.names).get(name).copied()
    }

    /// Frees `name` if `actor` still holds it.
    pub(crate) fn free(&self, name: &str, actor: ActorId) {
        let mut names = lock(&self.names);
        if names.get(name).is_some_and(|n| n.actor == actor) {
            names.remove(name);
        }
    }

    /// Frees every name actor `actor` holds (it is gone).
    pub(crate) fn free_actor(&self, actor: ActorId) {
        lock(&self.names).retain(|_, n| n.actor != actor);
    }

    /// Frees the names of actors `gone` says are gone.
    pub(crate) fn free_where(&self, gone: impl Fn(&Named) -> bool) {
        lock(&self.names).retain(|_, n| !gone(n));
    }
}

/// A named actor living on this rank.
pub(crate) struct Here {
    pub(crate) name: String,
    /// For a detached actor: what keeps it alive without handles.
    pub(crate) _keep: Option<KeepAlive>,
}

/// One rank's part in naming: the registry (used on rank 0) and the named
/// actors living here.
#[derive(Default)]
pub(crate) struct NameBook {
    pub(crate) registry: Registry,
    here: Mutex<HashMap<ActorId, Here>>,
    /// Actors whose creation waits for the registry's answer (step 2).
    pending: Mutex<Vec<ActorId>>,
}

impl NameBook {
    /// A named actor started here.
    pub(crate) fn live_here(&self, id: ActorId, here: Here) {
        lock(&self.here).insert(id, here);
    }

    /// Actor `id` stopped for good: its name (to free) and its keep, if
    /// it was named here. Drop the result outside any lock.
    pub(crate) fn stopped(&self, id: ActorId) -> Option<Here> {
        lock(&self.here).remove(&id)
    }

    /// Every named actor here (at shutdown).
    pub(crate) fn clear(&self) -> Vec<Here> {
        lock(&self.here).drain().map(|(_, h)| h).collect()
    }

    /// Actor `id` waits for its name (step 2).
    pub(crate) fn pend(&self, id: ActorId) {
        lock(&self.pending).push(id);
    }

    /// Actor `id` no longer waits for its name.
    pub(crate) fn unpend(&self, id: ActorId) {
        lock(&self.pending).retain(|p| *p != id);
    }

    /// Whether actor `id` waits for its name.
    pub(crate) fn is_pending(&self, id: ActorId) -> bool {
        lock(&self.pending).contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(seq: u64) -> Named {
        Named {
            class: 7,
            actor: ActorId::from_u64(seq),
            host: 0,
            task_retries: 0,
        }
    }

    #[test]
    fn a_name_is_given_once_and_freed_only_by_its_holder() {
        let r = Registry::default();
        assert_eq!(
            r.register("n", named(1), false, |_| false),
            Registered::Fresh
        );
        assert_eq!(
            r.register("n", named(2), false, |_| false),
            Registered::Taken(named(1))
        );
        assert_eq!(
            r.register("n", named(2), true, |_| false),
            Registered::Existing(named(1))
        );
        r.free("n", ActorId::from_u64(2));
        assert_eq!(r.lookup("n"), Some(named(1)), "not the holder");
        r.free("n", ActorId::from_u64(1));
        assert_eq!(r.lookup("n"), None);
        assert_eq!(
            r.register("n", named(2), false, |_| false),
            Registered::Fresh
        );
        r.free_actor(ActorId::from_u64(2));
        assert_eq!(r.lookup("n"), None);
    }

    #[test]
    fn a_holder_the_asker_heard_died_holds_its_name_no_more() {
        let r = Registry::default();
        assert_eq!(
            r.register("n", named(1), false, |_| false),
            Registered::Fresh
        );
        let one_died = |a: ActorId| a == ActorId::from_u64(1);
        let other_died = |a: ActorId| a == ActorId::from_u64(9);
        assert_eq!(
            r.register("n", named(2), false, other_died),
            Registered::Taken(named(1))
        );
        assert_eq!(
            r.register("n", named(2), false, one_died),
            Registered::Fresh
        );
        // Its host's `NameFree` comes late: the new holder keeps the name.
        r.free("n", ActorId::from_u64(1));
        assert_eq!(r.lookup("n"), Some(named(2)));
    }
}
