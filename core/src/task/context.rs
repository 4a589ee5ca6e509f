//! What the current thread is doing: which task or actor call it is
//! running, so that a blocking `get` inside a task can give its CPU back,
//! and the task's environment variables and GPU ids can be read. (Which
//! runtime the thread belongs to is the runtime layer's: `runtime::current`.)

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::resources::ledger::Request;
use crate::task::spent::Spent;
use crate::uncounted::{List, Name};

/// The task or actor call running on this thread.
pub(crate) struct TaskCtx {
    pub(crate) name: Name,
    pub(crate) env: List<(String, String)>,
    pub(crate) gpu_ids: List<u32>,
    /// Resources this call holds while it runs (given back while it blocks).
    pub(crate) held: Request,
    /// True for tasks run by a scheduler worker or inline; false for actor calls.
    pub(crate) is_task: bool,
    /// Set while a retry is still possible for this attempt.
    pub(crate) may_retry: std::cell::Cell<bool>,
    /// The running task's cancellation, reached through its cell (`None`
    /// for actor calls).
    pub(crate) cancel: Option<Arc<dyn crate::task::cancel::Cancellable>>,
    /// Memory the call emptied that its submitter allocated, to go back
    /// with the task's remains (see `task::spent`).
    pub(crate) spent: std::cell::Cell<Option<Spent>>,
}

/// Whether the task running on this thread was cancelled
/// ([`Runtime::cancel`](crate::Runtime::cancel)): a long task checks it and
/// returns early; its result is a [`Cancelled`](crate::Error::Cancelled)
/// error either way. False outside tasks.
///
/// ```
/// assert!(!ferry_core::is_cancelled());
/// ```
pub fn is_cancelled() -> bool {
    current_task()
        .and_then(|t| t.cancel.as_ref().map(|c| c.cancel_state().is_set()))
        .unwrap_or(false)
}

/// The task's environment plus `CUDA_VISIBLE_DEVICES` naming its GPUs, as
/// Ray sets it for a task or actor that was given GPUs.
pub(crate) fn env_with_gpus(
    env: &List<(String, String)>,
    gpus: &[u32],
    pinning: &crate::resources::pinning::Pinning,
) -> List<(String, String)> {
    if gpus.is_empty() {
        return env.clone();
    }
    let mut v = env.to_vec();
    v.push((
        "CUDA_VISIBLE_DEVICES".to_string(),
        pinning.visible_ids(gpus),
    ));
    v.into()
}

thread_local! {
    static TASKS: RefCell<Vec<Rc<TaskCtx>>> = const { RefCell::new(Vec::new()) };
    /// A finished task's context box, emptied, for this thread's next task.
    static SPARE: Cell<Option<Rc<TaskCtx>>> = const { Cell::new(None) };
}

impl TaskCtx {
    /// A context that holds nothing (what a kept box holds between tasks).
    fn empty() -> TaskCtx {
        TaskCtx {
            name: Name::Static(""),
            env: List::empty(),
            gpu_ids: List::empty(),
            held: Request::default(),
            is_task: false,
            may_retry: Cell::new(false),
            cancel: None,
            spent: Cell::new(None),
        }
    }
}

/// `ctx`, boxed for [`with_task`]: in the box this thread's last task left
/// (see [`recycle`]) when it has one, so that a worker running task after
/// task allocates (and frees) no box per task.
pub(crate) fn boxed(ctx: TaskCtx) -> Rc<TaskCtx> {
    if let Ok(Some(mut kept)) = SPARE.try_with(Cell::take)
        && let Some(inner) = Rc::get_mut(&mut kept)
    {
        *inner = ctx;
        return kept;
    }
    Rc::new(ctx)
}

/// The end of a context from [`boxed`]: what it holds is dropped now and,
/// when nothing else refers to it, its box is kept for the thread's next
/// task.
pub(crate) fn recycle(mut ctx: Rc<TaskCtx>) {
    if let Some(inner) = Rc::get_mut(&mut ctx) {
        *inner = TaskCtx::empty();
        // While the thread's locals are destroyed the box is simply freed.
        let _ = SPARE.try_with(move |s| s.set(Some(ctx)));
    }
}

/// Runs `f` with `ctx` as the current task.
pub(crate) fn with_task<R>(ctx: Rc<TaskCtx>, f: impl FnOnce() -> R) -> R {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            TASKS.with(|t| t.borrow_mut().pop());
        }
    }
    TASKS.with(|t| t.borrow_mut().push(ctx));
    let _pop = Pop;
    f()
}

pub(crate) fn current_task() -> Option<Rc<TaskCtx>> {
    TASKS.with(|t| t.borrow().last().cloned())
}

/// Keeps `spent` with the running task's remains, to be freed by the
/// thread that submitted it; outside a task it is freed now.
pub(crate) fn hand_back(spent: Option<Spent>) {
    if spent.is_some() {
        with_current_task(|t| t.spent.set(spent));
    }
}

/// `f` of the current task, if any, without taking a reference to it.
pub(crate) fn with_current_task<R>(f: impl FnOnce(&TaskCtx) -> R) -> Option<R> {
    TASKS.with(|t| t.borrow().last().map(|c| f(c)))
}

/// An environment variable as the running task sees it: the task's
/// `runtime_env` variables first, then the process environment.
///
/// Tasks are threads of one process, so `std::env::var` sees only the
/// process environment; read task variables through this function, and use
/// [`command`] to start a child process with them.
///
/// ```
/// assert_eq!(ferry_core::env_var("FERRY_SURELY_UNSET_VARIABLE"), None);
/// ```
pub fn env_var(name: &str) -> Option<String> {
    if let Some(ctx) = current_task()
        && let Some((_, v)) = ctx.env.iter().rev().find(|(k, _)| k == name)
    {
        return Some(v.clone());
    }
    std::env::var(name).ok()
}

/// A `std::process::Command` with the running task's environment variables set.
///
/// ```
/// let out = ferry_core::command("true").status().unwrap();
/// assert!(out.success());
/// ```
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    if let Some(ctx) = current_task() {
        cmd.envs(ctx.env.iter().map(|(k, v)| (k, v)));
    }
    cmd
}

/// The GPU ids assigned to the running task or actor (like `ray.get_gpu_ids()`);
/// empty outside a task or when it asked for no GPU.
///
/// ```
/// assert!(ferry_core::gpu_ids().is_empty());
/// ```
pub fn gpu_ids() -> Vec<u32> {
    current_task()
        .map(|c| c.gpu_ids.to_vec())
        .unwrap_or_default()
}

/// The name of the running task or actor call, if any.
///
/// ```
/// assert_eq!(ferry_core::task_name(), None);
/// ```
pub fn task_name() -> Option<String> {
    current_task().map(|c| c.name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::cancel::{Cancel, Cancellable};

    struct Task(Cancel);

    impl Cancellable for Task {
        fn cancel_state(&self) -> &Cancel {
            &self.0
        }
    }

    fn ctx_of(name: &'static str, cancel: Option<Arc<dyn Cancellable>>) -> TaskCtx {
        TaskCtx {
            name: Name::Static(name),
            env: vec![("K".to_string(), name.to_string())].into(),
            cancel,
            ..TaskCtx::empty()
        }
    }

    #[test]
    fn a_recycled_context_lets_go_of_its_task_at_once_and_its_box_serves_the_next() {
        let task: Arc<dyn Cancellable> = Arc::new(Task(Cancel::default()));
        let first = boxed(ctx_of("first", Some(task.clone())));
        let first_box = Rc::as_ptr(&first);
        with_task(first.clone(), || {
            assert_eq!(
                current_task().map(|c| c.name.to_string()),
                Some("first".into())
            );
        });
        assert_eq!(Arc::strong_count(&task), 2);
        recycle(first);
        // Nothing of the first task is held by the kept box.
        assert_eq!(Arc::strong_count(&task), 1);
        let second = boxed(ctx_of("second", None));
        assert_eq!(Rc::as_ptr(&second), first_box, "the kept box is reused");
        assert_eq!(second.name.to_string(), "second");
        assert_eq!(second.env[0].1, "second");
        assert!(second.cancel.is_none());
        recycle(second);
    }

    #[test]
    fn a_context_still_referred_to_is_neither_emptied_nor_kept() {
        let kept = boxed(ctx_of("kept", None));
        let held = boxed(ctx_of("held", None));
        let kept_box = Rc::as_ptr(&kept);
        recycle(kept);
        let other = held.clone();
        recycle(held);
        assert_eq!(
            Rc::strong_count(&other),
            1,
            "recycle let go of its reference"
        );
        assert_eq!(
            other.name.to_string(),
            "held",
            "a context in use is left whole"
        );
        // The spare is still the first box, not the one in use.
        assert_eq!(Rc::as_ptr(&boxed(ctx_of("next", None))), kept_box);
    }
}
