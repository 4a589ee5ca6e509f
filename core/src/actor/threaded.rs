//! Serving a threaded actor (Ray's `max_concurrency` on a sync actor): up
//! to n `&self` calls at once on n threads of the actor's own, `&mut self`
//! calls alone.
//!
//! # Protocol
//!
//! 1. The state lives behind an `Arc` (the class is `Sync`, see
//!    `engine::Share`). The actor's thread (the dispatcher) takes calls
//!    from the mailbox in order.
//! 2. A `&self` call waits for a free slot (fewer than n in flight), then
//!    goes to the workers with a clone of the `Arc`. A worker runs it,
//!    settles it, drops its clone, and only then gives the slot back
//!    (Release) and unparks the dispatcher.
//! 3. A `&mut self` call waits until nothing is in flight (Acquire), then
//!    the dispatcher runs it with the `Arc`'s only reference. So `&mut
//!    self` calls run alone and in the order they were made, like a
//!    RwLock's writer; `&self` calls start in order but may finish in any.
//! 4. A panic in a worker is noted before its call's error is stored; the
//!    dispatcher looks for it after each pop, and then starts no more calls
//!    until nothing is in flight, restarts the actor or lets it die, and
//!    runs the popped call after that.
//! 5. At the end the dispatcher waits for the calls in flight, closes the
//!    workers' queue and joins them.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle, Thread};

use crate::actor::engine::{Call, MailboxItem, Run, Share};
use crate::actor::host::ActorHost;
use crate::actor::serve::{Serve, Taken, settle, take};
use crate::object::cell::Stored;
use crate::sync::lock;
use crate::task::cell::panic_message;
use crate::task::context::{self, TaskCtx};

/// A call handed to a worker, given the worker's own context.
type Job<C> = Box<dyn FnOnce(&C) + Send>;

/// The workers' side: their queue, the slots in flight, a panic noted.
struct Workers<C> {
    queue: Mutex<(VecDeque<Job<C>>, bool)>,
    more: Condvar,
    in_flight: AtomicUsize,
    panicked: Mutex<Option<(&'static str, String)>>,
    dispatcher: Thread,
}

impl<C> Workers<C> {
    fn submit(&self, job: Job<C>) {
        lock(&self.queue).0.push_back(job);
        self.more.notify_one();
    }

    /// The next job; `None` once the queue is closed and empty.
    fn next(&self) -> Option<Job<C>> {
        let mut q = lock(&self.queue);
        loop {
            if let Some(j) = q.0.pop_front() {
                return Some(j);
            }
            if q.1 {
                return None;
            }
            q = self.more.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn close(&self) {
        lock(&self.queue).1 = true;
        self.more.notify_all();
    }

    /// Step 2's end: a slot is free again.
    fn finished(&self) {
        // Release: the worker's drop of its `Arc` clone comes before the
        // dispatcher's Acquire load that finds nothing in flight.
        self.in_flight.fetch_sub(1, Ordering::Release);
        self.dispatcher.unpark();
    }
}

/// Serves the mailbox with up to `n` `&self` calls at once (steps 1 to 5).
pub(crate) fn serve<A: Send + 'static, H: ActorHost>(
    serve: &mut Serve<'_, A, H>,
    cx: &H::CallCx,
    share: Share<A>,
    n: usize,
    state: A,
) {
    let (host, core) = (serve.host, serve.core);
    let workers = Arc::new(Workers {
        queue: Mutex::new((VecDeque::new(), false)),
        more: Condvar::new(),
        in_flight: AtomicUsize::new(0),
        panicked: Mutex::new(None),
        dispatcher: thread::current(),
    });
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for i in 0..n {
        let (w, h, ctx) = (workers.clone(), host.clone(), copy_ctx(serve.ctx));
        let spawned = thread::Builder::new()
            .name(format!("ferry-actor-{}-{i}", core.class.name))
            .spawn(move || {
                let cx = h.actor_thread_started();
                let ctx = Rc::new(ctx);
                while let Some(job) = w.next() {
                    context::with_task(ctx.clone(), || job(&cx));
                }
                h.actor_thread_stopped();
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                core.kill(&format!("could not start its threads: {e}"));
                break;
            }
        }
    }
    let mut state: Option<Arc<dyn Any + Send + Sync>> = Some(share(state));
    // A call taken out of the mailbox before a restart, to run after it.
    let mut next = None;
    while let Some(shared) = &mut state {
        let msg = next.take().or_else(|| core.pop());
        // Looked at after the pop: a call made after its caller saw a panic's
        // error finds the panic noted (it was noted before the error was
        // stored), so it runs on the restarted state.
        let noted = lock(&workers.panicked).take();
        if let Some((method, message)) = noted {
            // Step 4.
            next = msg;
            serve.idle_until(|| workers.in_flight.load(Ordering::Acquire) == 0);
            drop(state.take());
            state = serve.restart(method, &message).map(share);
            continue;
        }
        let Some(msg) = msg else {
            serve.idle(|| {
                core.queued.load(Ordering::SeqCst) > 0 || lock(&workers.panicked).is_some()
            });
            continue;
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
        match run {
            Run::Shared(f) => {
                // Step 2.
                serve.idle_until(|| workers.in_flight.load(Ordering::Acquire) < n);
                workers.in_flight.fetch_add(1, Ordering::Relaxed);
                let (st, w, h, c) = (shared.clone(), workers.clone(), host.clone(), core.clone());
                workers.submit(Box::new(move |cx: &H::CallCx| {
                    let actor = st
                        .downcast_ref::<A>()
                        .expect("the shared state is the actor's");
                    let started = h.pool().timeline.start();
                    let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(actor, cx)));
                    if let Err(p) = &outcome {
                        // Noted before its error is stored (step 4).
                        let m = panic_message(p.as_ref());
                        lock(&w.panicked).get_or_insert((method, m));
                    }
                    settle(&*h, &c, method, started, outcome, &output, actor);
                    drop(st);
                    w.finished();
                }));
            }
            Run::Exclusive(f) => {
                // Step 3.
                serve.idle_until(|| workers.in_flight.load(Ordering::Acquire) == 0);
                let actor = Arc::get_mut(shared)
                    .and_then(|a| a.downcast_mut::<A>())
                    .expect("nothing in flight holds the state");
                let started = host.pool().timeline.start();
                let outcome = context::with_task(serve.ctx.clone(), || {
                    panic::catch_unwind(AssertUnwindSafe(|| f(actor, cx)))
                });
                if let Some(m) = settle(&**host, core, method, started, outcome, &output, actor) {
                    lock(&workers.panicked).get_or_insert((method, m));
                }
            }
            Run::Async(_) => {
                let e = crate::actor::serve::not_async(core.class.name, method);
                output.complete(Stored::Error(e));
            }
        }
    }
    // Step 5 (a call popped before a restart that failed fails too).
    if let Some(MailboxItem::Call(c)) = next {
        let reason = core.dead.get().map_or("it has stopped", |s| s.as_str());
        c.output.complete(Stored::Error(core.died(reason)));
    }
    serve.idle_until(|| workers.in_flight.load(Ordering::Acquire) == 0);
    drop(state);
    workers.close();
    for t in threads {
        let _ = t.join();
    }
}

/// A worker's own copy of the actor's context.
fn copy_ctx(ctx: &TaskCtx) -> TaskCtx {
    TaskCtx {
        name: ctx.name.clone(),
        env: ctx.env.clone(),
        gpu_ids: ctx.gpu_ids.clone(),
        held: ctx.held.clone(),
        is_task: false,
        may_retry: std::cell::Cell::new(false),
        cancel: None,
        spent: Default::default(),
    }
}
