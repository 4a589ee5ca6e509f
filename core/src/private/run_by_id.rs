//! This binary's registry as what runs the work other ranks send by id:
//! [`RunById`] for the runtime's [`Inner`] (the cluster calls it; the
//! registry is here, with the macros that fill it).

use std::sync::Arc;

use crate::cluster::RunById;
use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::object::codec::Untyped;
use crate::object::object_ref::ObjectRef;
use crate::private::{ActorMethodFn, build_id, invoke_with, lookup_ctor, lookup_method};
use crate::resources::options::{ActorOptions, TaskOptions};
use crate::runtime::{Inner, Runtime};

impl RunById for Inner {
    type Method = &'static ActorMethodFn;

    fn run_task(
        self: &Arc<Self>,
        fn_id: u64,
        opts: &TaskOptions,
        args: &[u8],
    ) -> Result<ObjectRef<Untyped>> {
        invoke_with(&Runtime::from_inner(self.clone()), fn_id, opts, args)
    }

    fn create_actor(
        self: &Arc<Self>,
        class: u64,
        id: ActorId,
        opts: &ActorOptions,
        args: &[u8],
    ) -> Result<()> {
        match lookup_ctor(class) {
            Some(f) => (f.create)(&Runtime::from_inner(self.clone()), opts, id, args),
            None => Err(Error::ActorClassNotInBinary { class }),
        }
    }

    fn actor_method(&self, id: u64) -> Option<(Self::Method, &'static str)> {
        lookup_method(id).map(|f| (f, f.path))
    }

    fn call_actor(
        self: &Arc<Self>,
        actor: ActorId,
        method: Self::Method,
        args: &[u8],
    ) -> Result<ObjectRef<Untyped>> {
        (method.invoke)(&Runtime::from_inner(self.clone()), actor, args)
    }

    fn build_id(&self) -> u64 {
        build_id()
    }
}
