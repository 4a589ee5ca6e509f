//! Remote tasks, on the owner: sending a task to the rank placement chose
//! (`Submit`, protocol step 2), and sending it again while its retries
//! allow when that rank is lost (step 4).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use ferry_transport::{Rank, TransportError};

use crate::cluster::actor_restart;
use crate::cluster::lent_args::{after_submit, lend, made_elsewhere};
use crate::cluster::rank_host::RankHost;
use crate::cluster::send_ahead::Held;
use crate::cluster::sent::{Sent, TaskSpec, Work};
use crate::cluster::shared::{Cluster, ClusterHost, send_error};
use crate::cluster::wire::{self, Msg, WireLent, WireOptions};
use crate::error::{Error, FailureKind, Result, TaskError};
use crate::object::cell::{DepWaiter, Slot, Stored, TypeTag, Waiter};
use crate::object::codec::EncodedCall;
use crate::object::object_ref::ObjectRef;
use crate::resources::options::{RetryOn, TaskOptions};
use crate::sync::lock;
use crate::values::Object;

/// Arguments at least this large pull their task to the rank that holds
/// them (smaller ones travel as cheaply as the task).
const LOCALITY_MIN: usize = 64 * 1024;

/// The rank holding the largest of a task's top-level ref arguments whose
/// size is known here, and that size: this rank for its own objects and
/// for borrowed ones already copied or mapped here, the owner for borrowed
/// ones whose place its `BorrowAck` told.
fn largest_arg<H: ClusterHost>(c: &Cluster<H>, deps: &[Arc<Slot>]) -> Option<(Rank, usize)> {
    deps.iter()
        .filter_map(|s| match (s.get(), s.borrow()) {
            (Some(Stored::Value(v)), _) => Some((c.rank, v.block.len())),
            (None, Some(b)) => b.at.get().map(|(_, len, _)| (b.owner, *len as usize)),
            _ => None,
        })
        .max_by_key(|(_, len)| *len)
}

/// Step 2 for generated code: sends the task to another rank when it should
/// run there; `None` means "run it here".
pub(crate) fn try_remote<R: Object, H: RankHost>(
    inner: &Arc<H>,
    fn_name: &'static str,
    opts: &TaskOptions,
    deps: &[Arc<Slot>],
    fn_id: u64,
    encode: impl FnOnce() -> Result<EncodedCall>,
) -> Option<Result<ObjectRef<R>>> {
    if let Some(r) = opts.rank {
        let size = inner.cluster().map_or(1, Cluster::size);
        if r >= size {
            return Some(Err(Error::InvalidArgument(format!(
                "{fn_name}: on_rank({r}), but the job has {size} rank(s)"
            ))));
        }
    }
    if opts.pinned_here {
        return None;
    }
    // In a placement group: on the bundle's rank, once the group is placed.
    let in_bundle = match opts.ask.bundle {
        None => None,
        Some(at) => match crate::cluster::groups::bundle_rank(inner, fn_name, &opts.ask, at) {
            Err(e) => return Some(Err(e)),
            Ok(r) if r == inner.rank() => return None,
            Ok(r) => Some(r),
        },
    };
    let c = inner.cluster()?;
    if in_bundle.is_none() && matches!(opts.retry_on, RetryOn::When(_)) {
        return None;
    }
    // A large argument on another rank that has room: run it there.
    let near_data = largest_arg(c, deps)
        .filter(|_| in_bundle.is_none())
        .filter(|&(r, len)| r != c.rank && len >= LOCALITY_MIN)
        .map(|(r, _)| r)
        .filter(|&r| c.has_room(r, opts));
    let rank = match (in_bundle.or(opts.rank), near_data) {
        (Some(r), _) if r == c.rank => return None,
        (Some(r), _) | (None, Some(r)) => r,
        (None, None) => {
            let local = opts.request(fn_name, &inner.pool().ledger);
            let local_can_run = local.is_ok();
            if let Ok(req) = &local
                && inner.pool().ledger.fits_now(req)
            {
                return None;
            }
            c.pick(opts, local_can_run)?
        }
    };
    let call = match encode() {
        Ok(call) => call,
        Err(e) => return Some(Err(e)),
    };
    let (args, kept) = call.into_parts();
    let slot = inner.store().new_output();
    let sent = Sent {
        slot: slot.clone(),
        rank,
        type_tag: TypeTag::of::<R>(),
        type_name: std::any::type_name::<R>(),
        work: Work::Task(TaskSpec {
            fn_id,
            args: args.to_vec(),
            deps: deps.iter().map(|s| s.id.as_u64()).collect(),
            opts: WireOptions::from_options(opts),
            max_retries: opts.max_retries,
            attempts: 1,
        }),
        _kept: kept,
    };
    inner.pool().tasks.submitted();
    let makers = makers_of(c, deps, rank);
    let pending = deps
        .iter()
        .filter(|s| s.borrow().is_none() && !s.is_ready())
        .cloned()
        .collect();
    submit(inner, c, slot.id.as_u64(), sent, makers, pending, fn_name);
    Some(Ok(ObjectRef::from_slot(slot)))
}

/// The task's ref arguments of this rank's that are still being made on a
/// rank other than `to` (and this one), with that rank: `to` asks it for
/// them directly.
fn makers_of<H: ClusterHost>(c: &Cluster<H>, deps: &[Arc<Slot>], to: Rank) -> Vec<(u64, u32)> {
    let pending: Vec<u64> = deps
        .iter()
        .filter(|s| s.borrow().is_none() && !s.is_ready())
        .map(|s| s.id.as_u64())
        .collect();
    if pending.is_empty() {
        return Vec::new();
    }
    let sent = lock(&c.sent);
    pending
        .into_iter()
        .filter_map(|id| {
            let s = sent.get(&id)?;
            (matches!(s.work, Work::Task(_)) && s.rank != to && s.rank != c.rank)
                .then_some((id, s.rank))
        })
        .collect()
}

/// Sends (or re-sends) a task to `sent.rank`, with the ranks making its
/// arguments (`makers`; none is always correct, only slower).
pub(crate) fn dispatch<H: ClusterHost>(
    c: &Cluster<H>,
    object: u64,
    sent: Sent,
    makers: Vec<(u64, u32)>,
) {
    let Work::Task(task) = &sent.work else {
        return;
    };
    let rank = sent.rank;
    let (lent, lending) = lend(c, rank, &task.deps, &sent._kept, |id| {
        made_elsewhere(&lock(&c.sent), id)
    });
    let msg = submit_msg(object, task, makers, lent);
    record(c, object, sent);
    let went = post(c, rank, object, &msg);
    after_submit(c, rank, lending, went);
}

/// The `Submit` that carries `task`.
fn submit_msg(object: u64, task: &TaskSpec, makers: Vec<(u64, u32)>, lent: Vec<WireLent>) -> Msg {
    Msg::Submit {
        object,
        fn_id: task.fn_id,
        args: task.args.clone(),
        opts: Box::new(task.opts.clone()),
        makers,
        lent,
    }
}

/// Sends a task [`record`]ed and held back until now (see `send_ahead`),
/// unless it is gone meanwhile (cancelled, or sent again elsewhere).
pub(crate) fn dispatch_held<H: ClusterHost>(c: &Cluster<H>, object: u64, makers: Vec<(u64, u32)>) {
    let (rank, msg, lending) = {
        let sent = lock(&c.sent);
        let Some(s) = sent.get(&object) else {
            return;
        };
        let Work::Task(task) = &s.work else {
            return;
        };
        let (lent, lending) = lend(c, s.rank, &task.deps, &s._kept, |id| {
            made_elsewhere(&sent, id)
        });
        (s.rank, submit_msg(object, task, makers, lent), lending)
    };
    let went = post(c, rank, object, &msg);
    after_submit(c, rank, lending, went);
}

/// Sends `msg` (a `Submit` or `ActorCall`) for `sent`, which then waits
/// for its `Done`.
pub(crate) fn send_awaiting_done<H: ClusterHost>(
    c: &Cluster<H>,
    object: u64,
    sent: Sent,
    msg: &Msg,
) -> bool {
    let rank = sent.rank;
    record(c, object, sent);
    post(c, rank, object, msg)
}

/// Records `sent` as out to its rank, awaiting `Done` (before its message
/// leaves, which may be later: see `send_ahead`).
pub(crate) fn record<H: ClusterHost>(c: &Cluster<H>, object: u64, sent: Sent) {
    if matches!(sent.work, Work::Task { .. }) {
        c.in_flight[sent.rank as usize].fetch_add(1, Ordering::Relaxed);
    }
    // Boxed (outside the lock): the map moves 16-byte entries when it grows,
    // not whole records.
    let sent = Box::new(sent);
    lock(&c.sent).insert(object, sent);
    c.transport.expect_reply(true);
}

/// Sends `msg` for the [`record`]ed work `object` to `rank`, saying
/// whether it went; a failure completes it (or leaves it to `rank_lost`).
fn post<H: ClusterHost>(c: &Cluster<H>, rank: Rank, object: u64, msg: &Msg) -> bool {
    let task = matches!(msg, Msg::Submit { .. });
    match wire::send(&*c.transport, rank, msg) {
        Ok(()) => return true,
        // Lost before this rank heard: `rank_lost` handles it as in flight
        // (or has run already: then it is handled here).
        Err(TransportError::RankLost { reason, .. }) => {
            // An actor call that never got there may always go again.
            if let Msg::ActorCall { args: a, .. } = msg
                && let Some(Sent {
                    work: Work::ActorCall { args, attempts, .. },
                    ..
                }) = lock(&c.sent).get_mut(&object).map(|s| &mut **s)
            {
                *args = Some(a.clone());
                *attempts = 0;
            }
            let known = lock(&c.lost).contains(&rank);
            let taken = known
                .then(|| lock(&c.sent).remove(&object))
                .flatten()
                .map(|s| *s);
            if let Some(s) = taken {
                orphan(c, object, s, rank, &reason);
            }
        }
        Err(e) => {
            let taken = lock(&c.sent).remove(&object);
            if let Some(s) = taken {
                if task {
                    c.in_flight[rank as usize].fetch_sub(1, Ordering::Relaxed);
                    on_done(c, rank, object);
                }
                c.transport.expect_reply(false);
                s.slot.complete(Stored::Error(send_error(rank, &e)));
            }
        }
    }
    false
}

/// Sends the task `sent` (already encoded in it) to `sent.rank`, or holds
/// it back here when `pending` (its arguments still being made here) is
/// not empty and [`SEND_AHEAD`](crate::cluster::send_ahead::SEND_AHEAD)
/// such tasks are out to that rank already (see `send_ahead`).
fn submit<H: ClusterHost>(
    inner: &Arc<H>,
    c: &Cluster<H>,
    object: u64,
    sent: Sent,
    makers: Vec<(u64, u32)>,
    pending: Vec<Arc<Slot>>,
    name: &'static str,
) {
    let rank = sent.rank;
    if pending.is_empty() || c.ahead.admit(rank, object) {
        dispatch(c, object, sent, makers);
        return;
    }
    // Recorded before anything can send it.
    record(c, object, sent);
    c.ahead.hold(rank, object, Held { makers, name });
    let waiter = Arc::new(ArgsReady {
        rt: Arc::downgrade(inner),
        object,
        remaining: AtomicUsize::new(pending.len()),
    });
    for slot in pending {
        if !slot.add_waiter(Waiter::Task(waiter.clone())) {
            waiter.clone().dep_ready();
        }
    }
}

/// A counted task's `Done` arrived from `rank`: the next held task for that
/// rank goes.
pub(crate) fn on_done<H: ClusterHost>(c: &Cluster<H>, rank: Rank, object: u64) {
    if let Some((next, held)) = c.ahead.done(rank, object) {
        dispatch_held(c, next, held.makers);
    }
}

/// Cancels `object` if it is held here: its result becomes
/// [`Error::Cancelled`] and it is never sent. False when it is not held.
pub(crate) fn cancel_held<H: ClusterHost>(c: &Cluster<H>, object: u64) -> bool {
    let Some(held) = c.ahead.take(object) else {
        return false;
    };
    let taken = lock(&c.sent).remove(&object);
    if let Some(s) = taken {
        c.in_flight[s.rank as usize].fetch_sub(1, Ordering::Relaxed);
        c.transport.expect_reply(false);
        s.slot.complete(Stored::Error(Error::Cancelled {
            task: held.name.to_string(),
        }));
    }
    true
}

/// Forgets `object` if it is held (its rank was lost and it is being sent
/// elsewhere).
fn forget<H: ClusterHost>(c: &Cluster<H>, object: u64) {
    let _ = c.ahead.take(object);
}

/// Sends a held task once all its pending arguments are ready.
struct ArgsReady<H> {
    rt: Weak<H>,
    object: u64,
    remaining: AtomicUsize,
}

impl<H: ClusterHost> DepWaiter for ArgsReady<H> {
    fn dep_ready(self: Arc<Self>) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Some(inner) = self.rt.upgrade() else {
            return;
        };
        if let Some(c) = inner.cluster()
            && let Some(held) = c.ahead.take(self.object)
        {
            dispatch_held(c, self.object, held.makers);
        }
    }
}

/// Work that was in flight to `rank` when it was lost (taken out of
/// `sent`): a task is sent again while its retries allow, an actor call
/// goes to `remote_actor`.
pub(super) fn orphan<H: ClusterHost>(
    c: &Cluster<H>,
    object: u64,
    mut s: Sent,
    rank: Rank,
    reason: &str,
) {
    c.transport.expect_reply(false);
    forget(c, object);
    {
        let task = match &mut s.work {
            Work::Task(task) => task,
            Work::ActorCall { .. } => {
                actor_restart::orphaned_call(c, object, s, rank, reason);
                return;
            }
        };
        let (fn_id, opts) = (task.fn_id, task.opts.clone());
        c.in_flight[rank as usize].fetch_sub(1, Ordering::Relaxed);
        if task.may_run_again() {
            task.attempts += 1;
            let tries = task.attempts;
            s.rank = c.pick(&opts.into_options(), true).unwrap_or(c.rank);
            tracing::warn!(
                "resubmitting task {object:016x} to rank {} (attempt {tries})",
                s.rank
            );
            dispatch(c, object, s, Vec::new());
        } else {
            s.slot
                .complete(Stored::Error(Error::Task(Box::new(TaskError {
                    task: format!("function {fn_id:016x}"),
                    rank,
                    kind: FailureKind::System,
                    message: format!("rank {rank} was lost: {reason}"),
                    attempts: task.attempts,
                }))));
        }
    }
}
