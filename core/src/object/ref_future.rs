//! Awaiting an [`ObjectRef`]: `r.await` or `r.get_async().await` (Ray's
//! `await ref` in an async actor) gives the same zero-copy [`View`] as
//! `Runtime::get`, without blocking the thread that polls it.
//!
//! # Protocol
//!
//! 1. A poll of a ref whose object is ready gives its view (or its error).
//! 2. Otherwise it asks for a borrowed object's value (once, as `get`
//!    does) and registers the poller's `Waker` in the slot's waiter list,
//!    under the slot's lock after checking it again (`cell`, step 3); the
//!    completion of the slot wakes it. A later poll with another waker
//!    registers that one too; a poll with the same waker registers nothing.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::error::Result;
use crate::object::cell::Waiter;
use crate::object::object_ref::ObjectRef;
use crate::object::view::View;
use crate::values::Object;

/// The future of an [`ObjectRef`]'s value: made by
/// [`ObjectRef::get_async`] or `.await` on the ref.
#[must_use = "a future does nothing unless awaited"]
pub struct GetFuture<T> {
    r: ObjectRef<T>,
    /// The waker registered last (none yet).
    registered: Option<Waker>,
}

impl<T: Object> ObjectRef<T> {
    /// The object's value, awaited (Ray's `await ref`): a zero-copy view as
    /// [`Runtime::get`](crate::Runtime::get) gives, without blocking the
    /// thread. In an async actor method, other calls run meanwhile.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let r = rt.put(&5u32)?;
    /// let fut = r.get_async();
    /// # let _ = fut;
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn get_async(&self) -> GetFuture<T> {
        GetFuture {
            r: self.clone(),
            registered: None,
        }
    }
}

impl<T: Object> IntoFuture for ObjectRef<T> {
    type Output = Result<View<T>>;
    type IntoFuture = GetFuture<T>;

    fn into_future(self) -> GetFuture<T> {
        GetFuture {
            r: self,
            registered: None,
        }
    }
}

impl<T: Object> Future for GetFuture<T> {
    type Output = Result<View<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<View<T>>> {
        let this = self.get_mut();
        let slot = &this.r.slot;
        if slot.is_ready() {
            return Poll::Ready(View::of(slot.clone()));
        }
        slot.start_fetch();
        if this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        if !slot.add_waiter(Waiter::Future(cx.waker().clone())) {
            // Completed between the check and the registration.
            return Poll::Ready(View::of(slot.clone()));
        }
        this.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for GetFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GetFuture({:?})", self.r)
    }
}
