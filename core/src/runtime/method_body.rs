//! A method's body as generated code hands it over: a `&mut self` method
//! ([`Exclusive`]), a `&self` method ([`Shared`]) or an `async fn`
//! ([`AsyncBody`]); each becomes the engine's [`Run`] for its kind (see
//! `actor::serve::Mode` for how each kind runs).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use crate::actor::engine::Run;
use crate::error::{Error, Result};
use crate::object::object_ref::ObjectRef;
use crate::runtime::Runtime;
use crate::runtime::actor_handle::{ActorClass, ActorRef, Reach};
use crate::runtime::call_result::{Failure, finish};
use crate::values::Object;

/// What an `async fn` method's body gives back.
pub type AsyncResult<R> = Pin<Box<dyn Future<Output = std::result::Result<R, Failure>>>>;

/// A method body that can be queued on an actor on this rank; implemented
/// by [`Exclusive`], [`Shared`] and [`AsyncBody`].
pub trait MethodBody<A: ActorClass, R: Object>: Send + 'static {
    /// Queues the call of `method` on `actor`, which lives on this rank.
    #[doc(hidden)]
    fn submit(self, actor: &ActorRef<A>, method: &'static str) -> Result<ObjectRef<R>>;
}

/// The body of a `&mut self` method: runs alone.
pub struct Exclusive<F>(pub F);

/// The body of a `&self` method: may run beside other `&self` calls.
pub struct Shared<F>(pub F);

/// The body of an `async fn` method: a future for the actor's executor.
pub struct AsyncBody<F>(pub F);

/// Queues `run` on the local actor behind `actor`.
fn queue<A: ActorClass, R: Object>(
    actor: &ActorRef<A>,
    method: &'static str,
    run: Run<A, Runtime>,
) -> Result<ObjectRef<R>> {
    match &actor.reach {
        Reach::Local(l) => l.core().call(method, run),
        // The runtime is gone (so the call could not be encoded).
        Reach::Remote(_) => Err(Error::Shutdown),
    }
}

fn task_name<A: ActorClass>(method: &'static str) -> impl Fn() -> String {
    move || format!("{}.{method}", A::NAME)
}

impl<A, R, F> MethodBody<A, R> for Exclusive<F>
where
    A: ActorClass,
    R: Object,
    F: FnOnce(&mut A, &Runtime) -> std::result::Result<R, Failure> + Send + 'static,
{
    fn submit(self, actor: &ActorRef<A>, method: &'static str) -> Result<ObjectRef<R>> {
        let f = self.0;
        let name = task_name::<A>(method);
        let run = Run::Exclusive(Box::new(move |a: &mut A, rt: &Runtime| {
            finish(rt, &name, f(a, rt))
        }));
        queue(actor, method, run)
    }
}

impl<A, R, F> MethodBody<A, R> for Shared<F>
where
    A: ActorClass,
    R: Object,
    F: FnOnce(&A, &Runtime) -> std::result::Result<R, Failure> + Send + 'static,
{
    fn submit(self, actor: &ActorRef<A>, method: &'static str) -> Result<ObjectRef<R>> {
        let f = self.0;
        let name = task_name::<A>(method);
        let run = Run::Shared(Box::new(move |a: &A, rt: &Runtime| {
            finish(rt, &name, f(a, rt))
        }));
        queue(actor, method, run)
    }
}

impl<A, R, F> MethodBody<A, R> for AsyncBody<F>
where
    A: ActorClass,
    R: Object,
    F: FnOnce(Rc<A>, &Runtime) -> AsyncResult<R> + Send + 'static,
{
    fn submit(self, actor: &ActorRef<A>, method: &'static str) -> Result<ObjectRef<R>> {
        let f = self.0;
        let name = task_name::<A>(method);
        let run = Run::Async(Box::new(move |a: Rc<A>, rt: &Runtime| {
            let body = f(a, rt);
            let rt = rt.clone();
            Box::pin(async move {
                let result = body.await;
                finish(&rt, &name, result)
            })
        }));
        queue(actor, method, run)
    }
}
