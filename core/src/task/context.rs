//! What the current thread is doing: which task or actor call it is
//! running, so that a blocking `get` inside a task can give its CPU back,
//! and the task's environment variables and GPU ids can be read. (Which
//! runtime the thread belongs to is the runtime layer's: `runtime::current`.)

use std::cell::RefCell;
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
