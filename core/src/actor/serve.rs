//! What every way of serving an actor's mailbox shares (one call at a
//! time in `thread`, several threads in `threaded`, an executor in
//! `async_serve`): waiting for work, settling a call's outcome (its
//! checkpoint, its result or error) and restarting after a panic.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::actor::checkpoint::{self, Restored};
use crate::actor::engine::{Call, Core, MailboxItem};
use crate::actor::host::ActorHost;
use crate::error::{Error, FailureKind, Result, TaskError};
use crate::object::cell::{Slot, Stored};
use crate::signal;
use crate::task::cell::{Outcome, panic_message};
use crate::task::context::TaskCtx;

/// How many calls of an actor may run at once, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One call at a time, in mailbox order (the default).
    Serial,
    /// Up to n `&self` calls at once on n threads; `&mut self` calls alone.
    Threaded(usize),
    /// Up to n `async fn` calls in flight on the actor's own executor.
    Async(usize),
}

/// Ray's default `max_concurrency` for async actors.
pub(crate) const ASYNC_DEFAULT: u32 = 1000;

impl Mode {
    /// The mode of an actor of a class (async or not) created with
    /// `max_concurrency` (`None`: Ray's default, 1 or 1000 for async).
    pub(crate) fn of(is_async: bool, max_concurrency: Option<u32>) -> Mode {
        if is_async {
            return Mode::Async(max_concurrency.unwrap_or(ASYNC_DEFAULT).max(1) as usize);
        }
        match max_concurrency.unwrap_or(1) {
            0 | 1 => Mode::Serial,
            n => Mode::Threaded(n as usize),
        }
    }
}

/// An actor thread's part in serving: the actor, its context, and how its
/// state is made again after a panic.
pub(crate) struct Serve<'a, A, H: ActorHost> {
    pub(crate) host: &'a Arc<H>,
    pub(crate) core: &'a Arc<Core<A, H>>,
    pub(crate) ctx: &'a Rc<TaskCtx>,
    pub(crate) restarts_left: i32,
    /// Makes the state (from its checkpoint or constructor); the argument
    /// says when, for the error.
    pub(crate) make: &'a mut dyn FnMut(&str) -> std::result::Result<A, String>,
}

impl<A: Send + 'static, H: ActorHost> Serve<'_, A, H> {
    /// Waits for `ready`: spins (taking in what arrives from other ranks),
    /// then parks until a push, a wake-up or a nap.
    pub(crate) fn idle(&self, mut ready: impl FnMut() -> bool) {
        let core = self.core;
        signal::spin_then_park(
            self.host.spin(),
            self.host.pool().sched.first_pauses(),
            || {
                self.host.pool().sched.poll_idle();
                ready()
            },
            || {
                self.host.pool().sched.poll_before_sleep();
                core.parked.store(true, Ordering::SeqCst);
            },
            || core.parked.store(false, Ordering::SeqCst),
        );
    }

    /// Waits until `ready` holds.
    pub(crate) fn idle_until(&self, mut ready: impl FnMut() -> bool) {
        while !ready() {
            self.idle(&mut ready);
        }
    }

    /// Step 3 of the engine's protocol: a call panicked, the state is
    /// gone; a new one while restarts remain, else the actor dies (`None`).
    pub(crate) fn restart(&mut self, method: &str, message: &str) -> Option<A> {
        let core = self.core;
        if self.restarts_left == 0 {
            core.kill(&format!(
                "{}.{method} panicked and no restarts are left: {message}",
                core.class.name
            ));
            return None;
        }
        self.restarts_left -= 1;
        core.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(actor = %core.name, "restarting after a panic in {method}");
        match (self.make)(" on restart") {
            Ok(a) => Some(a),
            Err(why) => {
                core.kill(&why);
                None
            }
        }
    }
}

/// Stores a finished call's outcome in `output` (checkpointing first when
/// one is due) and records it on the timeline; the panic message when the
/// call panicked (the state is then unknown: restart or die).
pub(crate) fn settle<A: Send + 'static, H: ActorHost>(
    host: &H,
    core: &Core<A, H>,
    method: &str,
    started: Option<Instant>,
    outcome: std::thread::Result<Outcome>,
    output: &Slot,
    actor: &A,
) -> Option<String> {
    let timeline = &host.pool().timeline;
    if timeline.is_on() {
        timeline.record(
            started,
            crate::timeline::Kind::ActorCall,
            format!("{}.{method}", core.name),
            0,
        );
    }
    match outcome {
        Ok(Outcome::Value(v)) => {
            // Checkpointed before the caller sees the result: a result
            // seen is never lost to a restart from the checkpoint, and
            // one no checkpoint holds is not seen.
            let kept = if method == "checkpoint" {
                Ok(())
            } else {
                after_call(host, core, actor)
            };
            match kept {
                Ok(()) => output.complete(Stored::Value(v)),
                Err(e) => output.complete(Stored::Error(e)),
            }
            None
        }
        Ok(Outcome::Error(e)) => {
            output.complete(Stored::Error(e));
            None
        }
        Ok(Outcome::Failed { kind, message }) => {
            output.complete(Stored::Error(call_error(core, method, kind, message)));
            None
        }
        Err(p) => {
            let message = panic_message(p.as_ref());
            output.complete(Stored::Error(call_error(
                core,
                method,
                FailureKind::Panic,
                message.clone(),
            )));
            Some(message)
        }
    }
}

/// The actor's state from its checkpoint file, if it has one (`None`: no
/// checkpoint, construct it); a damaged file is an error.
pub(crate) fn restore<A: Send + 'static, H: ActorHost>(
    host: &H,
    core: &Core<A, H>,
) -> Option<std::result::Result<A, String>> {
    let (codec, ckpt) = (core.class.checkpoint.as_ref()?, core.ckpt.as_ref()?);
    let found = match checkpoint::restore(codec, ckpt.path()) {
        Ok(None) => return None,
        Ok(Some(found)) => Ok(found),
        Err(e) => Err(e),
    };
    Some(match found {
        Ok((calls, a)) => {
            core.calls.store(calls, Ordering::Relaxed);
            ckpt.restored(calls);
            host.note_restored(Restored {
                name: core.name.to_string(),
                path: ckpt.path().to_path_buf(),
                calls,
            });
            Ok(a)
        }
        Err(e) => Err(format!(
            "its checkpoint could not be restored (the file is kept): {e}"
        )),
    })
}

/// What a serving loop does with an item it took from the mailbox.
pub(crate) enum Taken<A, C> {
    /// Run this call.
    Run(Call<A, C>),
    /// Nothing to run: a drain with the actor still wanted, or a call the
    /// dead actor has already failed.
    Skip,
    /// Stop serving: drained, and the actor is dead or has no handle left.
    Stop,
}

/// Sorts `msg` for the thread and threaded serving loops (see [`Taken`]).
pub(crate) fn take<A: Send + 'static, H: ActorHost>(
    core: &Core<A, H>,
    msg: MailboxItem<A, H::CallCx>,
) -> Taken<A, H::CallCx> {
    let call = match msg {
        MailboxItem::Call(c) => c,
        MailboxItem::Drain => {
            return if core.dead.get().is_some() || core.orphaned.load(Ordering::Acquire) {
                Taken::Stop
            } else {
                Taken::Skip
            };
        }
    };
    match core.dead.get() {
        Some(reason) => {
            call.output.complete(Stored::Error(core.died(reason)));
            Taken::Skip
        }
        None => Taken::Run(call),
    }
}

/// Counts a call that returned and takes a checkpoint when one is due
/// (`checkpoint_every` calls after the last one written); an error when a
/// due checkpoint cannot be written (the call's result is then withheld).
fn after_call<A: Send + 'static, H: ActorHost>(
    host: &H,
    core: &Core<A, H>,
    actor: &A,
) -> Result<()> {
    let n = core.calls.fetch_add(1, Ordering::Relaxed) + 1;
    match (core.class.checkpoint.as_ref(), core.ckpt.as_ref()) {
        (Some(codec), Some(ckpt)) => {
            ckpt.after_call(&host.store().exports, codec, actor, n, &core.name)
        }
        _ => Ok(()),
    }
}

fn call_error<A: Send + 'static, H: ActorHost>(
    core: &Core<A, H>,
    method: &str,
    kind: FailureKind,
    message: String,
) -> Error {
    Error::Task(Box::new(TaskError {
        task: format!("{}.{method}", core.name),
        rank: core.rank,
        kind,
        message,
        attempts: 1,
    }))
}

/// An async method's call reached an actor that is not run by an executor
/// (never: a class with async methods always is).
pub(crate) fn not_async(class: &str, method: &str) -> Error {
    Error::InvalidArgument(format!(
        "{class}.{method} is async but the actor has no executor"
    ))
}
