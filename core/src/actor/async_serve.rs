//! Serving an async actor (Ray's async actors): its `async fn` calls run
//! as futures on the actor's own executor, on the actor's one thread, and
//! interleave where they `.await`.
//!
//! # Protocol
//!
//! 1. The state is kept in an `Rc`; each `async fn` call's future holds a
//!    clone while it is in flight. Calls are taken from the mailbox in
//!    order while fewer than `max_concurrency` are in flight.
//! 2. A `&self` method that is not async runs at once on the thread (it
//!    blocks the others, as a sync method of a Ray async actor does).
//! 3. A `&mut self` method is held (and no call is taken after it) until
//!    the calls in flight have finished; then it runs alone, with the
//!    state's only `Rc`.
//! 4. A panic in a call fails that call; no call is taken until those in
//!    flight finish, then the actor is restarted or dies (as in `serve`).
//! 5. When the actor dies (`kill`), the calls in flight are dropped and
//!    fail with [`Error::ActorDied`](crate::error::Error::ActorDied); when
//!    its last handle is gone, they finish first.

use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::actor::engine::{Call, MailboxItem, Run};
use crate::actor::executor::Executor;
use crate::actor::host::ActorHost;
use crate::actor::serve::{Serve, settle};
use crate::object::cell::{Slot, Stored};
use crate::task::cell::Outcome;
use crate::task::context;

/// What a call in flight is known by: its method, its result's slot, when
/// it started (for the timeline).
type Tag = (&'static str, Arc<Slot>, Option<Instant>);

/// Serves the mailbox with up to `n` async calls in flight (steps 1 to 5).
pub(crate) fn serve<A: Send + 'static, H: ActorHost>(
    serve: &mut Serve<'_, A, H>,
    cx: &H::CallCx,
    n: usize,
    state: A,
) {
    let (host, core) = (serve.host, serve.core);
    let mut exec: Executor<Tag, Outcome> = Executor::new(std::thread::current());
    let mut state = Some(Rc::new(state));
    // Step 3: a `&mut self` call waiting for the calls in flight.
    let mut held: Option<Call<A, H::CallCx>> = None;
    // Step 4: a call panicked; restart once nothing is in flight.
    let mut panicked: Option<(&'static str, String)> = None;
    let mut stopping = false;
    loop {
        let done = context::with_task(serve.ctx.clone(), || exec.run_ready());
        for ((method, output, started), outcome) in done {
            let Some(actor) = state.as_deref() else { break };
            let failed = settle(&**host, core, method, started, outcome, &output, actor);
            if panicked.is_none() {
                panicked = failed.map(|m| (method, m));
            }
        }
        if let Some(reason) = core.dead.get() {
            // Step 5: killed; what is in flight or held fails.
            let mut outputs: Vec<Arc<Slot>> = exec.cancel_all().into_iter().map(|t| t.1).collect();
            outputs.extend(held.take().map(|c| c.output));
            for output in outputs {
                output.complete(Stored::Error(core.died(reason)));
            }
            break;
        }
        if exec.is_empty() {
            if let Some((method, message)) = panicked.take() {
                state = None;
                match serve.restart(method, &message) {
                    Some(a) => state = Some(Rc::new(a)),
                    None => continue,
                }
            }
            if let Some(call) = held.take() {
                exclusive(serve, cx, &mut state, &mut panicked, call);
                continue;
            }
            if stopping {
                break;
            }
        }
        let taking = held.is_none() && panicked.is_none() && !stopping && exec.len() < n;
        if taking && let Some(msg) = core.pop() {
            let call = match msg {
                MailboxItem::Call(c) => c,
                MailboxItem::Drain => {
                    stopping = core.orphaned.load(Ordering::Acquire);
                    continue;
                }
            };
            let Some(rc) = &state else { break };
            let started = host.pool().timeline.start();
            match call.run {
                Run::Async(f) => {
                    let future = f(rc.clone(), cx);
                    exec.spawn((call.method, call.output, started), future);
                }
                Run::Shared(f) => {
                    let actor = &**rc;
                    let outcome = context::with_task(serve.ctx.clone(), || {
                        panic::catch_unwind(AssertUnwindSafe(|| f(actor, cx)))
                    });
                    let failed = settle(
                        &**host,
                        core,
                        call.method,
                        started,
                        outcome,
                        &call.output,
                        actor,
                    );
                    panicked = failed.map(|m| (call.method, m));
                }
                Run::Exclusive(_) => held = Some(call),
            }
            continue;
        }
        serve.idle(|| {
            exec.has_ready()
                || core.dead.get().is_some()
                || (taking && core.queued.load(Ordering::SeqCst) > 0)
        });
    }
}

/// Step 3: runs a `&mut self` call alone (nothing is in flight).
fn exclusive<A: Send + 'static, H: ActorHost>(
    serve: &mut Serve<'_, A, H>,
    cx: &H::CallCx,
    state: &mut Option<Rc<A>>,
    panicked: &mut Option<(&'static str, String)>,
    call: Call<A, H::CallCx>,
) {
    let (host, core) = (serve.host, serve.core);
    let Some(rc) = state.as_mut() else {
        return;
    };
    let Call {
        method,
        run,
        output,
    } = call;
    let Run::Exclusive(f) = run else { return };
    // The futures in flight held the other clones; none is left.
    let Some(actor) = Rc::get_mut(rc) else {
        output.complete(Stored::Error(crate::error::Error::InvalidArgument(
            format!("{}.{method}: the actor's state is still shared", core.name),
        )));
        return;
    };
    let started = host.pool().timeline.start();
    let outcome = context::with_task(serve.ctx.clone(), || {
        panic::catch_unwind(AssertUnwindSafe(|| f(actor, cx)))
    });
    if let Some(m) = settle(&**host, core, method, started, outcome, &output, actor) {
        *panicked = Some((method, m));
    }
}
