//! [`ArchivedActorHandle`]: an [`ActorHandle`] inside an archived object
//! (the actor's id and rank), and how a handle is archived and turned back
//! into a live one on the receiving rank.

use std::marker::PhantomData;
use std::sync::Arc;

use rkyv::rancor::{Fallible, Source};
use rkyv::rend::{u32_le, u64_le};
use rkyv::{Archive, Deserialize, Place, Portable, Serialize};

use crate::actor::engine::HeldHandle;
use crate::cluster::remote_actor;
use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::object::cell::KeepAlive;
use crate::object::exports::{self, NotInRuntime};
use crate::runtime::actor_handle::{ActorClass, ActorHandle, ActorRef, Reach, local_handle};

/// An [`ActorHandle`] inside an archived object: the actor's id and the
/// rank it lives on.
#[repr(C)]
pub struct ArchivedActorHandle<A> {
    id: u64_le,
    host: u32_le,
    /// The actor's `max_task_retries` (as `i32` bits), for handles that
    /// reach other ranks.
    task_retries: u32_le,
    _a: PhantomData<fn() -> A>,
}

impl<A: ActorClass> ArchivedActorHandle<A> {
    /// The actor's id.
    pub fn id(&self) -> ActorId {
        ActorId::from_u64(self.id.to_native())
    }

    /// The rank the actor lives on.
    pub fn rank(&self) -> u32 {
        self.host.to_native()
    }

    /// The live handle, for this thread's runtime: the actor itself when it
    /// lives on this rank, else a handle that sends calls to its rank.
    pub fn to_handle(&self) -> Result<ActorHandle<A>> {
        let inner = crate::runtime::current::runtime_inner().ok_or(Error::NoRuntime)?;
        // An actor re-created elsewhere since this handle was archived.
        let host = remote_actor::current_host(&inner, self.id(), self.rank());
        if host == inner.rank {
            return local_handle(&inner, self.id());
        }
        let r = remote_actor::attach(&inner, self.id(), host, A::NAME.into())?;
        r.learn_task_retries(self.task_retries.to_native() as i32);
        Ok(ActorHandle::from_ref(ActorRef {
            reach: Reach::Remote(r),
        }))
    }
}

// SAFETY: `repr(C)` of little-endian integers (and a zero-sized marker),
// which are portable.
unsafe impl<A> Portable for ArchivedActorHandle<A> {}
// SAFETY: as above; 8 + 4 + 4 bytes with 8-byte alignment leave no padding.
unsafe impl<A> rkyv::traits::NoUndef for ArchivedActorHandle<A> {}
// SAFETY: every bit pattern is a valid id (unknown ids fail at lookup).
unsafe impl<A, C: Fallible + ?Sized> rkyv::bytecheck::CheckBytes<C> for ArchivedActorHandle<A> {
    unsafe fn check_bytes(_value: *const Self, _context: &mut C) -> Result<(), C::Error> {
        Ok(())
    }
}

impl<A: ActorClass> Archive for ActorHandle<A> {
    type Archived = ArchivedActorHandle<A>;
    type Resolver = ();

    fn resolve(&self, _resolver: (), out: Place<Self::Archived>) {
        out.write(ArchivedActorHandle {
            id: u64_le::from_native(self.id().as_u64()),
            host: u32_le::from_native(self.actor_rank()),
            task_retries: u32_le::from_native(self.actor_ref().task_retries() as u32),
            _a: PhantomData,
        });
    }
}

impl<A: ActorClass, S> Serialize<S> for ActorHandle<A>
where
    S: Fallible + ?Sized,
    S::Error: Source,
{
    fn serialize(&self, _serializer: &mut S) -> std::result::Result<(), S::Error> {
        let id = self.id();
        let host = self.actor_rank();
        let keep: KeepAlive = match &self.actor_ref().reach {
            Reach::Local(l) => l.clone(),
            Reach::Remote(r) => r.clone(),
        };
        let local = matches!(self.actor_ref().reach, Reach::Local(_));
        let noted = exports::note(move |ex| {
            if local {
                ex.export_actor(id, &keep);
            }
            Arc::new(HeldHandle::new(id, host, keep)) as KeepAlive
        });
        if noted {
            Ok(())
        } else {
            Err(S::Error::new(NotInRuntime("ActorHandle")))
        }
    }
}

impl<A: ActorClass, D> Deserialize<ActorHandle<A>, D> for ArchivedActorHandle<A>
where
    D: Fallible + ?Sized,
    D::Error: Source,
{
    fn deserialize(&self, _deserializer: &mut D) -> std::result::Result<ActorHandle<A>, D::Error> {
        self.to_handle().map_err(D::Error::new)
    }
}
