//! An actor's thread: waiting for its resources, constructing (or restoring)
//! the actor, serving its mailbox in order, restarting it after a panic,
//! checkpointing after calls, and giving everything back at the end (steps
//! 1 to 4 of the protocol in `engine`).
//!
//! The host's start and exit hooks ([`ActorHost::actor_thread_started`],
//! [`ActorHost::actor_thread_stopped`]) run first and last on the thread.

use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use crate::actor::checkpoint::{self, Restored, Schedule};
use crate::actor::engine::{Call, Class, Core, Link, MailboxItem};
use crate::actor::host::ActorHost;
use crate::error::{Error, FailureKind, Result, TaskError};
use crate::ids::ActorId;
use crate::object::cell::Stored;
use crate::resources::bundles::BundleMember;
use crate::resources::ledger::Request;
use crate::resources::options::ActorOptions;
use crate::resources::pinning::Pin;
use crate::signal;
use crate::task::cell::{Outcome, panic_message};
use crate::task::context::{self, TaskCtx};

/// Starts actor `id` of `class` on `host`'s rank, holding `request`, and
/// its thread. Resources free now are taken at once (so actors created one
/// after another see each other's share); otherwise the thread waits for
/// them.
pub(crate) fn start<A: Send + 'static, H: ActorHost>(
    host: &Arc<H>,
    class: Class<A>,
    opts: &ActorOptions,
    id: ActorId,
    request: Request,
    mut factory: impl FnMut() -> A + Send + 'static,
) -> Result<Arc<Link<A, H>>> {
    if let Some(pin) = opts.pin {
        host.pool().pinning.check(pin)?;
    }
    let pin = opts.pin;
    let class_name = class.name;
    let name: Arc<str> = opts.name.as_deref().unwrap_or(class_name).into();
    let ckpt = class
        .checkpoint
        .as_ref()
        .and(opts.name.as_deref())
        .map(|n| {
            Arc::new(Schedule::new(
                checkpoint::path(host.checkpoint_dir(), n),
                opts.checkpoint_every,
                host.rank(),
            ))
        });
    let core = Arc::new(Core::new(
        host,
        id,
        name.clone(),
        class,
        ckpt,
        opts.max_task_retries,
    ));
    let ctx = TaskCtx {
        name,
        env: Arc::from(opts.env.clone()),
        gpu_ids: Arc::from([]),
        held: request.clone(),
        is_task: false,
        may_retry: std::cell::Cell::new(false),
        cancel: None,
    };
    if let Some(b) = request.bundle() {
        let me: std::sync::Weak<dyn BundleMember> = Arc::downgrade(&core) as _;
        if !b.enlist(me) {
            return Err(Error::PlacementGroup(
                crate::error::PlacementGroupError::Removed {
                    group: b.group,
                    reason: format!("actor {} was created in it after", core.name),
                },
            ));
        }
    }
    let restarts = opts.max_restarts;
    let granted = host.pool().try_grant(&request);
    let kept_grant = granted.clone();
    let core2 = core.clone();
    let host2 = host.clone();
    let request2 = request.clone();
    let spawned = thread::Builder::new()
        .name(format!("ferry-actor-{class_name}"))
        .spawn(move || {
            let factory: &mut dyn FnMut() -> A = &mut factory;
            actor_main(
                host2,
                core2,
                ctx,
                request2,
                granted,
                Placing { restarts, pin },
                factory,
            )
        });
    let handle = match spawned {
        Ok(h) => h,
        Err(e) => {
            if let Some(gpus) = &kept_grant {
                host.pool().release_grant(&request, gpus);
            }
            return Err(Error::Thread {
                what: "an actor thread".into(),
                source: Arc::new(e),
            });
        }
    };
    let _ = core.thread.set(handle.thread().clone());
    host.actors().add(&core, handle);
    Ok(Arc::new(Link::new(core)))
}

/// How an actor thread lives: its restarts and where it is pinned.
struct Placing {
    restarts: i32,
    pin: Option<Pin>,
}

fn actor_main<A: Send + 'static, H: ActorHost>(
    host: Arc<H>,
    core: Arc<Core<A, H>>,
    ctx: TaskCtx,
    request: Request,
    granted: Option<Arc<[u32]>>,
    Placing { restarts, pin }: Placing,
    factory: &mut dyn FnMut() -> A,
) {
    let cx = host.actor_thread_started();
    // Step 1: wait for the resources (unless granted at creation), then construct.
    let mut waited = Duration::from_micros(50);
    let mut granted = granted;
    let gpu_ids = loop {
        if let Some(ids) = granted.take().or_else(|| host.pool().try_grant(&request)) {
            break ids;
        }
        if core.dead.get().is_some() {
            return finish_actor(&host, &core, None);
        }
        thread::park_timeout(waited);
        waited = (waited * 2).min(Duration::from_millis(20));
    };
    host.pool().pinning.bind_actor(pin, &gpu_ids);
    let ctx = Rc::new(TaskCtx {
        env: context::env_with_gpus(&ctx.env, &gpu_ids, &host.pool().pinning),
        gpu_ids: gpu_ids.clone(),
        ..ctx
    });
    let construct = |factory: &mut dyn FnMut() -> A| {
        context::with_task(ctx.clone(), || {
            panic::catch_unwind(AssertUnwindSafe(factory))
        })
    };
    // From its last checkpoint when it has one, else from the constructor.
    let make = |factory: &mut dyn FnMut() -> A, when: &str| -> std::result::Result<A, String> {
        match restore(&*host, &core) {
            Some(restored) => restored,
            None => construct(factory).map_err(|p| {
                format!(
                    "its constructor panicked{when}: {}",
                    panic_message(p.as_ref())
                )
            }),
        }
    };
    let mut state = match make(factory, "") {
        Ok(a) => Some(a),
        Err(why) => {
            core.kill(&why);
            None
        }
    };
    let mut restarts_left = restarts;
    // Step 2: serve calls in order.
    while let Some(actor) = state.as_mut() {
        let msg = match core.pop() {
            Some(m) => m,
            None => {
                signal::spin_then_park(
                    host.spin(),
                    || {
                        // A call from another rank may be waiting to be
                        // received: take it in here, no thread to wake.
                        host.pool().sched.poll_idle();
                        core.queued.load(Ordering::SeqCst) > 0
                    },
                    || core.parked.store(true, Ordering::SeqCst),
                    || core.parked.store(false, Ordering::SeqCst),
                );
                continue;
            }
        };
        let call = match msg {
            MailboxItem::Call(c) => c,
            MailboxItem::Drain => {
                if core.dead.get().is_some() || core.orphaned.load(Ordering::Acquire) {
                    break;
                }
                continue;
            }
        };
        if let Some(reason) = core.dead.get() {
            call.output.complete(Stored::Error(core.died(reason)));
            continue;
        }
        let Call {
            method,
            run,
            output,
        } = call;
        let timeline = &host.pool().timeline;
        let started = timeline.start();
        let outcome = context::with_task(ctx.clone(), || {
            panic::catch_unwind(AssertUnwindSafe(|| run(actor, &cx)))
        });
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
                    after_call(&*host, &core, actor)
                };
                match kept {
                    Ok(()) => output.complete(Stored::Value(v)),
                    Err(e) => output.complete(Stored::Error(e)),
                }
            }
            Ok(Outcome::Error(e)) => output.complete(Stored::Error(e)),
            Ok(Outcome::Failed { kind, message }) => {
                output.complete(Stored::Error(call_error(&core, method, kind, message)))
            }
            Err(p) => {
                let message = panic_message(p.as_ref());
                output.complete(Stored::Error(call_error(
                    &core,
                    method,
                    FailureKind::Panic,
                    message.clone(),
                )));
                // Step 3: a panic leaves the state unknown: restart or die.
                state = None;
                if restarts_left != 0 {
                    restarts_left -= 1;
                    core.restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(actor = %core.name, "restarting after a panic in {method}");
                    match make(factory, " on restart") {
                        Ok(a) => state = Some(a),
                        Err(why) => core.kill(&why),
                    }
                } else {
                    core.kill(&format!(
                        "{}.{method} panicked and no restarts are left: {message}",
                        core.class.name
                    ));
                }
            }
        }
    }
    drop(state);
    finish_actor(&host, &core, Some((&request, &gpu_ids)));
}

/// The actor's state from its checkpoint file, if it has one (`None`: no
/// checkpoint, construct it); a damaged file is an error.
fn restore<A: Send + 'static, H: ActorHost>(
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

/// Step 4: the actor is gone; its queued calls fail, its resources go back,
/// and the thread leaves the runtime.
fn finish_actor<A: Send + 'static, H: ActorHost>(
    host: &Arc<H>,
    core: &Arc<Core<A, H>>,
    held: Option<(&Request, &[u32])>,
) {
    let _ = core
        .dead
        .set("it was stopped (all handles dropped)".to_string());
    core.fail_queued(true);
    host.actors().remove(core.id);
    if let Some((req, gpus)) = held {
        host.pool().release(req, gpus);
    }
    host.actor_stopped(core.id);
    host.actor_thread_stopped();
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
