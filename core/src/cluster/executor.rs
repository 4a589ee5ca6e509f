//! The executor's side of work other ranks send (protocol step 3): a task
//! (`Submit`) or an actor call (`ActorCall`) runs here, and its result goes
//! back in `Done` once it is ready and every borrow made while decoding its
//! arguments is acked; a large result stays here until the owner's `Free`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use ferry_transport::Rank;

use crate::cluster::borrowing::{after_acks, collect_borrows, ends_riding_along, fill_from_result};
use crate::cluster::held_adds::holding;
use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::wire::{Msg, WireError, WireRef, WireResult};
use crate::error::Result;
use crate::object::cell::{DepWaiter, KeepAlive, Slot, Stored, Waiter};
use crate::object::codec::Untyped;
use crate::object::lender::batching;
use crate::object::object_ref::ObjectRef;
use crate::sync::lock;

/// Step 3 on the executor: `invoke` decodes the call and submits it here
/// (a task, or a call of an actor that lives here); `Done` goes back to
/// `from` when its result is ready.
pub(crate) fn execute<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    object: u64,
    task: CallName,
    invoke: impl FnOnce() -> Result<ObjectRef<Untyped>>,
) {
    // The borrows made while decoding go to each owner in one frame. Run
    // here and now, the call's `Done` carries the ends of its inputs'
    // borrows (see `object::lender::batching`).
    batching(|| {
        let (invoked, borrows) = collect_borrows(|| holding(c, invoke));
        answer_when_done(inner, c, from, object, task, invoked, &borrows);
    });
}

/// The rest of [`execute`]: `Done` (or the failure to start) goes to `from`
/// once the call `invoked` is done and `borrows` are acked.
fn answer_when_done<H: RankHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    from: Rank,
    object: u64,
    task: CallName,
    invoked: Result<ObjectRef<Untyped>>,
    borrows: &[u64],
) {
    match invoked {
        Ok(out) => {
            lock(&c.executing).insert(object, Arc::downgrade(&out.slot));
            // `Done` goes out when the result is ready and every borrow made
            // while decoding the arguments is acked.
            let reply = Arc::new(Reply {
                rt: Arc::downgrade(inner),
                to: from,
                object,
                task,
                out: out.clone(),
                waiting: AtomicUsize::new(2),
            });
            let acked = reply.clone();
            after_acks(c, borrows, move || acked.hit());
            if !out.slot.add_waiter(Waiter::Task(reply.clone())) {
                reply.dep_ready();
            }
        }
        Err(e) => fail_call(
            c,
            from,
            object,
            WireError::from_error(&e, &task.to_string(), c.rank),
        ),
    }
}

/// What a call run here for another rank is called in its errors, made
/// into text only when an error needs it (a `format!` per task was ~3% of
/// an executor's time in a cross-rank round trip).
#[derive(Clone, Debug)]
pub(crate) enum CallName {
    /// A name given in full.
    Text(String),
    /// A name known to the binary (an actor method's path).
    Static(&'static str),
    /// A task without a name: its function's stable id.
    Function(u64),
    /// An actor method this binary does not have: its stable id.
    Method(u64),
}

impl std::fmt::Display for CallName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallName::Text(t) => f.write_str(t),
            CallName::Static(t) => f.write_str(t),
            CallName::Function(id) => write!(f, "function {id:016x}"),
            CallName::Method(id) => write!(f, "method {id:016x}"),
        }
    }
}

/// Answers a `Submit` or `ActorCall` that could not even start.
pub(crate) fn fail_call<H: ClusterHost>(c: &Cluster<H>, to: Rank, object: u64, error: WireError) {
    let _ = c.send(
        to,
        &Msg::Done {
            object,
            result: WireResult::failed(error),
            contained: Vec::new(),
            ended: Vec::new(),
        },
    );
}

/// Sends `Done` when a task run for another rank completes.
struct Reply<H> {
    rt: Weak<H>,
    to: Rank,
    object: u64,
    task: CallName,
    out: ObjectRef<Untyped>,
    /// Of the result and the acks, those still to come.
    waiting: AtomicUsize,
}

impl<H: RankHost> DepWaiter for Reply<H> {
    fn dep_ready(self: Arc<Self>) {
        // A task here that waits for this result runs now, not after
        // `Done` has gone to the owner and the owner has answered.
        if let Some(inner) = self.rt.upgrade()
            && let Some(c) = inner.cluster()
        {
            fill_from_result(&inner, c, self.object, &self.task, &self.out.slot);
        }
        self.hit();
    }
}

impl<H: RankHost> Reply<H> {
    /// The result, or the last ack, is in: `Done` goes once both are.
    fn hit(&self) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.send_done();
        }
    }

    fn send_done(&self) {
        let Some(inner) = self.rt.upgrade() else {
            return;
        };
        let Some(c) = inner.cluster() else { return };
        lock(&c.executing).remove(&self.object);
        let mut contained = Vec::new();
        let result = match self.out.slot.get() {
            Some(Stored::Value(v)) => {
                contained = v._contained.iter().filter_map(wire_ref).collect();
                let result = WireResult::of(v, &self.task, c.rank);
                if matches!(result, WireResult::At { .. }) || !contained.is_empty() {
                    // Kept (with the refs it holds) until the owner's `Free`.
                    lock(&c.held).insert(self.object, self.out.clone());
                }
                result
            }
            Some(Stored::Error(e)) => {
                WireResult::failed(WireError::from_error(e, &self.task.to_string(), c.rank))
            }
            None => return,
        };
        self.out.slot.mark_observed();
        let ended = ends_riding_along(&inner, c, self.to);
        let _ = c.send(
            self.to,
            &Msg::Done {
                object: self.object,
                result,
                contained,
                ended,
            },
        );
    }
}

/// The ref or handle a kept value stands for, if it names one.
fn wire_ref(k: &KeepAlive) -> Option<WireRef> {
    if let Some(s) = k.downcast_ref::<Slot>() {
        return Some(WireRef::Object(s.id.as_u64()));
    }
    k.downcast_ref::<crate::actor::engine::HeldHandle>()
        .map(|h| WireRef::Actor {
            id: h.id.as_u64(),
            host: h.host,
        })
}

/// The owner has read the result of `object` (`Free`): this rank lets go.
pub(super) fn free<H: ClusterHost>(c: &Cluster<H>, object: u64) {
    let freed = lock(&c.held).remove(&object);
    if let Some(r) = &freed {
        r.slot.unlend();
    }
    drop(freed); // outside the lock: this may free the result
}
