//! Multiple returns (Ray's `num_returns`): one object per element of the
//! tuple a task returns.
//!
//! # How
//!
//! 1. The task runs as any task does (here or on another rank, with its
//!    options and retries) and stores its whole tuple as one object, which
//!    no user ref names.
//! 2. For each element, [`project`] submits a small task on the submitting
//!    rank (no CPU, waiting on the tuple as on any top-level argument) that
//!    copies its element out of the stored tuple into an object of its own;
//!    on the submitting rank, since that rank owns the tuple (a task's
//!    result is copied to its owner when the task is done).
//! 3. Each element is then an ordinary object with its own id, refcount and
//!    lifetime: dropping one ref frees that element only. The tuple lives
//!    until the last projection has run (the projections hold it), then is
//!    freed.
//! 4. When the task fails, every projection fails with the task's very
//!    error (not wrapped as a dependency's), so all N refs give it at `get`.
//!
//! Retries (`max_retries`, `retry_exceptions`, a rank lost while the task
//! runs) act on the task that makes the tuple, as on any task: the
//! projections wait for its last attempt. Elements owned by a rank that is
//! lost are rebuilt as any object it owned: the task whose result handed
//! out their refs runs again, making the call (tuple and projections)
//! again.
//!
//! The cost: each element is copied once (deserialized from the tuple and
//! stored again), and N small tasks run after the task. A rank that runs
//! the function by id (`encode`, or another rank's `Submit`) makes the
//! tuple: that is the object a task sent to another rank brings back.

use crate::error::{Error, Result};
use crate::object::object_ref::ObjectRef;
use crate::resources::options::TaskOptions;
use crate::runtime::Runtime;
use crate::task::cell::Outcome;
use crate::values::{Object, Remotable};

use super::{Deps, submit_job};

/// Step 2: a ref to the element of `whole` that `pick` selects in its
/// archive, made by a task named `label` (`f[i]`) on this rank.
pub fn project<T: Object, R: Remotable>(
    rt: &Runtime,
    label: &'static str,
    whole: &ObjectRef<T>,
    pick: fn(&T::Archived) -> &R::Archived,
) -> Result<ObjectRef<R>> {
    // No CPU (it never waits behind other tasks for one) and no retries:
    // the only way it fails is the task's failure, which it passes on.
    let opts = TaskOptions::default().num_cpus(0.0).max_retries(0);
    let mut deps = Deps::default();
    deps.slots.push(whole.slot.clone());
    let whole = whole.clone();
    submit_job(rt, label.into(), label, &opts, deps, move |rt| {
        match copy_out::<T, R>(rt, &whole, pick) {
            Ok(v) => match rt.inner.store.store_value(&v) {
                Ok(stored) => Outcome::Value(stored),
                Err(e) => Outcome::Error(e),
            },
            // The task's own error (step 4), or a corrupt tuple.
            Err(e) => Outcome::Error(e),
        }
    })
}

/// The element `pick` selects in `whole`, deserialized (refs in it looked
/// up in `rt`).
fn copy_out<T: Object, R: Remotable>(
    rt: &Runtime,
    whole: &ObjectRef<T>,
    pick: fn(&T::Archived) -> &R::Archived,
) -> Result<R> {
    let view = rt.get(whole)?;
    crate::runtime::current::with_runtime(&rt.inner, || ferry_store::deserialize::<R>(pick(&view)))
        .map_err(|e| Error::Corrupt {
            object: whole.id().to_string(),
            reason: e.to_string(),
        })
}
