//! The thread's current runtime: installed on every thread the runtime
//! starts (through the hooks the lower layers run as a thread starts and
//! stops), so that code on it reaches its rank's runtime.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use crate::error::{Error, Result};
use crate::runtime::{Inner, Runtime};
use crate::task::pool::ThreadHooks;

thread_local! {
    static RUNTIME: RefCell<Option<Arc<Inner>>> = const { RefCell::new(None) };
    /// On a worker thread: the runtime whose pool it belongs to, lent to
    /// each task it runs. Lending it is an `Rc` clone, which only this
    /// thread counts; taking the runtime from the task's own `Weak` would
    /// update a count every thread shares, once per task.
    static SERVING: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
}

/// The hooks a worker thread of `inner`'s task pool runs: it serves
/// `inner` while it lives.
pub(crate) fn worker_hooks(inner: &Arc<Inner>) -> ThreadHooks {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    ThreadHooks {
        start: Box::new(move || {
            let inner = weak.upgrade();
            let serving = inner.clone().map(|i| Rc::new(Runtime::from_inner(i)));
            SERVING.with(|s| *s.borrow_mut() = serving);
            set_runtime(inner);
        }),
        stop: Box::new(|| {
            // Dropped outside the borrow: dropping a runtime runs no user
            // code, but it need not run under this thread's cell either.
            let serving = SERVING.with(|s| s.borrow_mut().take());
            drop(serving);
            set_runtime(None);
        }),
    }
}

/// The runtime `inner` points to, when this thread is one of its workers
/// (see `SERVING`); `None` on any other thread, or once the worker stops.
pub(crate) fn serving(inner: &Weak<Inner>) -> Option<Rc<Runtime>> {
    SERVING
        .try_with(|s| {
            s.borrow()
                .as_ref()
                .filter(|rt| std::ptr::eq(Arc::as_ptr(&rt.inner), inner.as_ptr()))
                .cloned()
        })
        .ok()
        .flatten()
}

/// Makes `inner` this thread's runtime (the driver thread, workers, actors).
pub(crate) fn set_runtime(inner: Option<Arc<Inner>>) {
    crate::log::set_runtime_rank(inner.as_ref().map(|i| i.rank));
    RUNTIME.with(|r| *r.borrow_mut() = inner);
}

pub(crate) fn runtime_inner() -> Option<Arc<Inner>> {
    RUNTIME.with(|r| r.borrow().clone())
}

/// Runs `f` with `inner` as this thread's runtime, then restores the previous one.
pub(crate) fn with_runtime<R>(inner: &Arc<Inner>, f: impl FnOnce() -> R) -> R {
    let prev = RUNTIME.with(|r| r.borrow_mut().replace(inner.clone()));
    let prev_rank = crate::log::set_runtime_rank(Some(inner.rank));
    let out = f();
    crate::log::set_runtime_rank(prev_rank);
    RUNTIME.with(|r| *r.borrow_mut() = prev);
    out
}

/// Forgets this thread's runtime if it is `inner`.
pub(crate) fn clear_runtime_if(inner: &Arc<Inner>) {
    RUNTIME.with(|r| {
        let mut r = r.borrow_mut();
        if r.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, inner)) {
            *r = None;
            crate::log::set_runtime_rank(None);
        }
    });
}

/// The runtime of the calling thread: the one `init` started on it, or the
/// one whose task or actor is running on it.
///
/// ```
/// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
/// assert!(ferry_core::current().is_ok());
/// rt.shutdown()?;
/// assert!(ferry_core::current().is_err());
/// # Ok::<(), ferry_core::Error>(())
/// ```
pub fn current() -> Result<Runtime> {
    runtime_inner()
        .map(Runtime::from_inner)
        .ok_or(Error::NoRuntime)
}
