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

use crate::actor::checkpoint::{self, Schedule};
use crate::actor::engine::{Call, Class, Core, Link, Run};
use crate::actor::host::ActorHost;
use crate::actor::serve::{Mode, Serve, Taken, restore, settle, take};
use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::resources::bundles::BundleMember;
use crate::resources::ledger::Request;
use crate::resources::options::ActorOptions;
use crate::resources::pinning::Pin;
use crate::resources::placement::StartGate;
use crate::task::cell::{Outcome, panic_message};
use crate::task::context::{self, TaskCtx};
use crate::uncounted::List;

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
    let mode = Mode::of(class.is_async, opts.max_concurrency);
    if matches!(mode, Mode::Threaded(_)) && class.share.is_none() {
        return Err(Error::NotSync {
            class: class.name.to_string(),
        });
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
        name: name.into(),
        env: opts.env.clone().into(),
        gpu_ids: List::empty(),
        held: request.clone(),
        is_task: false,
        may_retry: std::cell::Cell::new(false),
        cancel: None,
        spent: Default::default(),
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
    let binds_itself = pin.is_some() || request.gpus() > 0;
    let gate = StartGate::default();
    let gate2 = gate.clone();
    let spawned = thread::Builder::new()
        .name(format!("ferry-actor-{class_name}"))
        .spawn(move || {
            gate2.wait();
            let factory: &mut dyn FnMut() -> A = &mut factory;
            actor_main(
                host2,
                core2,
                ctx,
                request2,
                granted,
                Placing {
                    restarts,
                    pin,
                    mode,
                },
                factory,
            )
        });
    let handle = match spawned {
        Ok(h) => {
            host.pool()
                .pinning
                .place_new_thread(&h, &gate, binds_itself);
            h
        }
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
    mode: Mode,
}

fn actor_main<A: Send + 'static, H: ActorHost>(
    host: Arc<H>,
    core: Arc<Core<A, H>>,
    ctx: TaskCtx,
    request: Request,
    granted: Option<List<u32>>,
    Placing {
        restarts,
        pin,
        mode,
    }: Placing,
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
    let state = match make(factory, "") {
        Ok(a) => Some(a),
        Err(why) => {
            core.kill(&why);
            None
        }
    };
    let Some(state) = state else {
        return finish_actor(&host, &core, Some((&request, &gpu_ids)));
    };
    let mut make = |when: &str| make(factory, when);
    let mut serve = Serve {
        host: &host,
        core: &core,
        ctx: &ctx,
        restarts_left: restarts,
        make: &mut make,
    };
    // Step 2: serve calls, in order (or several at once; see `serve::Mode`).
    match mode {
        Mode::Serial => serial(&mut serve, &cx, state),
        Mode::Threaded(n) => match core.class.share {
            Some(share) => crate::actor::threaded::serve(&mut serve, &cx, share, n, state),
            // `start` refused it.
            None => serial(&mut serve, &cx, state),
        },
        Mode::Async(n) => crate::actor::async_serve::serve(&mut serve, &cx, n, state),
    }
    finish_actor(&host, &core, Some((&request, &gpu_ids)));
}

/// Serves the mailbox one call at a time, in order (the default mode).
fn serial<A: Send + 'static, H: ActorHost>(serve: &mut Serve<'_, A, H>, cx: &H::CallCx, state: A) {
    let (host, core) = (serve.host, serve.core);
    let mut state = Some(state);
    while let Some(actor) = state.as_mut() {
        let msg = match core.pop() {
            Some(m) => m,
            None => {
                serve.idle(|| core.queued.load(Ordering::SeqCst) > 0);
                continue;
            }
        };
        let call = match take(core, msg) {
            Taken::Run(call) => call,
            Taken::Skip => continue,
            Taken::Stop => break,
        };
        let Call {
            method,
            run,
            output,
        } = call;
        let started = host.pool().timeline.start();
        let outcome = context::with_task(serve.ctx.clone(), || {
            panic::catch_unwind(AssertUnwindSafe(|| match run {
                Run::Exclusive(f) => f(actor, cx),
                Run::Shared(f) => f(actor, cx),
                Run::Async(_) => {
                    Outcome::Error(crate::actor::serve::not_async(core.class.name, method))
                }
            }))
        });
        if let Some(message) = settle(&**host, core, method, started, outcome, &output, actor) {
            // Step 3: a panic leaves the state unknown: restart or die.
            drop(state.take());
            state = serve.restart(method, &message);
        }
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
