//! Placement groups across ranks (see `group_registry` for the protocol):
//! rank 0 holds the registry; other ranks ask it with `PgAsk`, which it
//! answers with `PgAnswer`; it tells ranks to hold and free bundles with
//! `PgHold` / `PgFree`, and they say they hold them with `PgHeld`.
//!
//! Every wait is bounded: it ends with [`Error::DriverLost`] as soon as
//! rank 0 is known lost, with [`Error::Shutdown`] when this rank stops, and
//! with [`PlacementGroupError::Registry`] after [`REPLY_WAIT`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_transport::Rank;

use crate::cluster::group_registry::{Capacity, Work};
use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::Cluster;
use crate::cluster::wire::{Msg, WirePgAnswer, WirePgOp};
use crate::error::{Error, PlacementGroupError, Result};
use crate::object::cell::{Slot, Stored};
use crate::resources::bundles::{Bundle, BundleRef};
use crate::resources::ledger::Request;
use crate::resources::options::ResourceAsk;
use crate::state::{PlacementGroupInfo, PlacementGroupState, PlacementStrategy};
use crate::sync::lock;

/// How long a rank waits for the registry's answer while rank 0 lives.
pub(crate) const REPLY_WAIT: Duration = Duration::from_secs(60);

/// How long a submission into a group waits for the group to be placed.
pub(crate) const PLACE_WAIT: Duration = Duration::from_secs(60);

/// The registry rank.
const REGISTRY: Rank = 0;

/// The live ranks' totals.
fn capacity<H: RankHost>(inner: &H) -> Capacity {
    match inner.cluster() {
        None => [(inner.rank(), inner.pool().ledger.totals())]
            .into_iter()
            .collect(),
        Some(c) => {
            let lost = lock(&c.lost).clone();
            lock(&c.totals)
                .iter()
                .enumerate()
                .filter(|(r, _)| !lost.contains(&(*r as Rank)))
                .filter_map(|(r, t)| t.clone().map(|t| (r as Rank, t)))
                .collect()
        }
    }
}

/// The cluster, when this rank is not the registry.
fn remote<H: RankHost>(inner: &H) -> Option<&Cluster<H>> {
    inner.cluster().filter(|c| c.rank != REGISTRY)
}

/// Creates a group (step 1 of `group_registry`): its id.
pub(crate) fn create<H: RankHost>(
    inner: &Arc<H>,
    bundles: Vec<Bundle>,
    strategy: PlacementStrategy,
) -> Result<u64> {
    if let Some(c) = remote(&**inner) {
        let op = WirePgOp::Create {
            bundles: bundles.iter().map(Bundle::to_pairs).collect(),
            strategy,
        };
        return match ask(c, op)? {
            WirePgAnswer::Created(id) => Ok(id),
            other => Err(unexpected(other)),
        };
    }
    let (id, work) = inner
        .groups()
        .create(bundles, strategy, &capacity(&**inner))?;
    perform(inner, work);
    Ok(id)
}

/// Removes a group (step 3).
pub(crate) fn remove<H: RankHost>(inner: &Arc<H>, group: u64) -> Result<()> {
    if let Some(c) = remote(&**inner) {
        return match ask(c, WirePgOp::Remove { group })? {
            WirePgAnswer::Done => Ok(()),
            other => Err(unexpected(other)),
        };
    }
    let reason = "removed by remove_placement_group";
    let work = inner.groups().remove(group, reason, &capacity(&**inner))?;
    perform(inner, work);
    Ok(())
}

/// Every group of the job.
pub(crate) fn table<H: RankHost>(inner: &Arc<H>) -> Result<Vec<PlacementGroupInfo>> {
    match remote(&**inner) {
        None => Ok(inner.groups().table()),
        Some(c) => match ask(c, WirePgOp::Table)? {
            WirePgAnswer::Groups(g) => Ok(g),
            other => Err(unexpected(other)),
        },
    }
}

/// The group's listing once it is created or removed, or at `deadline`.
fn settled<H: RankHost>(
    inner: &Arc<H>,
    group: u64,
    deadline: Instant,
) -> Result<PlacementGroupInfo> {
    let Some(c) = remote(&**inner) else {
        return inner
            .groups()
            .wait_settled(group, deadline)
            .ok_or_else(|| PlacementGroupError::NotFound { group }.into());
    };
    // Asks again after 1 ms, then twice as long each time, up to 50 ms.
    let mut pause = Duration::from_millis(1);
    loop {
        let info = match ask(c, WirePgOp::Lookup { group })? {
            WirePgAnswer::Groups(mut g) if !g.is_empty() => g.remove(0),
            WirePgAnswer::Groups(_) => return Err(PlacementGroupError::NotFound { group }.into()),
            other => return Err(unexpected(other)),
        };
        let done = matches!(
            info.state,
            PlacementGroupState::Created | PlacementGroupState::Removed
        );
        if done || Instant::now() >= deadline {
            return Ok(info);
        }
        std::thread::sleep(pause.min(deadline - Instant::now()));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A `ready` ref of `group`: resolves to each bundle's rank once the group
/// is created; fails when it is removed. On rank 0 it resolves when the
/// registry says; elsewhere this waits (bounded) for the group to settle.
pub(crate) fn ready<H: RankHost>(inner: &Arc<H>, group: u64) -> Result<Arc<Slot>> {
    let slot = inner.store().new_output();
    if remote(&**inner).is_none() {
        if let Some((s, r)) = inner.groups().add_ready(group, slot.clone()) {
            resolve(&**inner, &s, r);
        }
        return Ok(slot);
    }
    let info = settled(inner, group, Instant::now() + PLACE_WAIT)?;
    resolve(&**inner, &slot, outcome(group, &info, PLACE_WAIT));
    Ok(slot)
}

/// The bundles' ranks of a settled group, or why there are none.
fn outcome(
    group: u64,
    info: &PlacementGroupInfo,
    waited: Duration,
) -> std::result::Result<Vec<u32>, PlacementGroupError> {
    match info.state {
        PlacementGroupState::Removed => Err(PlacementGroupError::Removed {
            group,
            reason: info.reason.clone().unwrap_or_default(),
        }),
        PlacementGroupState::Created => info
            .ranks
            .iter()
            .copied()
            .collect::<Option<Vec<u32>>>()
            .ok_or(PlacementGroupError::NotPlaced { group, waited }),
        _ => Err(PlacementGroupError::NotPlaced { group, waited }),
    }
}

fn resolve<H: RankHost>(
    inner: &H,
    slot: &Slot,
    r: std::result::Result<Vec<u32>, PlacementGroupError>,
) {
    let stored = match r
        .map_err(Error::from)
        .and_then(|ranks| inner.store().store_value(&ranks))
    {
        Ok(v) => Stored::Value(v),
        Err(e) => Stored::Error(e),
    };
    slot.complete(stored);
}

/// The rank a task or actor asking for bundle `at` runs on, once its
/// group is placed; an error at once when the index is out of range, the
/// ask cannot fit in the bundle, or the group is gone.
pub(crate) fn bundle_rank<H: RankHost>(
    inner: &Arc<H>,
    what: &str,
    ask: &ResourceAsk,
    at: BundleRef,
) -> Result<Rank> {
    let group = at.group;
    let info = settled(inner, group, Instant::now() + PLACE_WAIT)?;
    let ranks = outcome(group, &info, PLACE_WAIT);
    if let Err(e @ PlacementGroupError::Removed { .. }) = ranks {
        return Err(e.into());
    }
    let Some(bundle) = info.bundles.get(at.index as usize) else {
        return Err(PlacementGroupError::BundleIndex {
            group,
            index: at.index,
            bundles: info.bundles.len(),
        }
        .into());
    };
    if let Some((resource, asked, has)) = ask.beyond(&Bundle::from(bundle.clone())) {
        return Err(PlacementGroupError::DoesNotFit {
            what: what.to_string(),
            group,
            index: at.index,
            resource,
            asked,
            has,
        }
        .into());
    }
    Ok(ranks?[at.index as usize])
}

/// Carries out what the registry decided (on rank 0).
fn perform<H: RankHost>(inner: &Arc<H>, work: Work) {
    for (s, r) in work.ready {
        resolve(&**inner, &s, r);
    }
    for (rank, group) in work.frees {
        match inner.cluster() {
            Some(c) if rank != c.rank => {
                if !lock(&c.lost).contains(&rank) {
                    let _ = c.send(rank, &Msg::PgFree { group });
                }
            }
            _ => free_here(inner, group),
        }
    }
    for (rank, group, bundles) in work.holds {
        match inner.cluster() {
            Some(c) if rank != c.rank => {
                if let Err(e) = c.send(rank, &Msg::PgHold { group, bundles }) {
                    tracing::warn!("placement group {group}: rank {rank}: {e}");
                }
            }
            _ => {
                hold_here(&**inner, group, &bundles);
                let more = inner.groups().held(group, inner.rank());
                perform(inner, more);
            }
        }
    }
}

/// Holds bundles of `group` on this rank (step 1 of `bundles`).
fn hold_here<H: RankHost>(inner: &H, group: u64, bundles: &[(u32, Vec<(String, f64)>)]) {
    for (index, amounts) in bundles {
        inner.pool().ledger.hold_bundle(group, *index, amounts);
    }
}

/// Frees every bundle of `group` on this rank: its tasks are cancelled,
/// its actors killed, and what it held goes to waiting tasks.
fn free_here<H: RankHost>(inner: &Arc<H>, group: u64) {
    let pool = inner.pool();
    let members = pool.ledger.bundles.remove_group(&pool.ledger, group);
    let reason = format!("its placement group {group} was removed");
    for m in members {
        m.evict(&reason);
    }
    pool.release(&Request::default(), &[]);
}

fn unexpected(answer: WirePgAnswer) -> Error {
    match answer {
        WirePgAnswer::Failed {
            kind,
            group,
            reason,
        } => WirePgAnswer::error(kind, group, reason).into(),
        other => PlacementGroupError::Registry {
            reason: format!("unexpected answer {other:?}"),
        }
        .into(),
    }
}

/// Sends `op` to the registry and waits for its answer.
fn ask<H: RankHost>(c: &Cluster<H>, op: WirePgOp) -> Result<WirePgAnswer> {
    let req = c.groups.next.fetch_add(1, Ordering::Relaxed);
    lock(&c.groups.replies).insert(req, None);
    let give_up = |e: Error| {
        if lock(&c.groups.replies).remove(&req).is_some() {
            c.transport.expect_reply(false);
        }
        Err(e)
    };
    let registry = |reason: String| Error::from(PlacementGroupError::Registry { reason });
    c.transport.expect_reply(true);
    if let Err(e) = c.send(REGISTRY, &Msg::PgAsk { req, op }) {
        return give_up(registry(e.to_string()));
    }
    let deadline = Instant::now() + REPLY_WAIT;
    loop {
        {
            let mut replies = lock(&c.groups.replies);
            if matches!(replies.get(&req), Some(Some(_)))
                && let Some(Some(answer)) = replies.remove(&req)
            {
                return Ok(answer);
            }
        }
        if lock(&c.lost).contains(&REGISTRY) {
            return give_up(Error::DriverLost {
                reason: "while asking rank 0 about a placement group".into(),
            });
        }
        if c.stop.load(Ordering::Acquire) {
            return give_up(Error::Shutdown);
        }
        let now = Instant::now();
        if now >= deadline {
            return give_up(registry(format!("no answer in {REPLY_WAIT:?}")));
        }
        // Polls this thread's frames (MPI), then waits a bounded slice.
        c.transport.poll();
        let replies = lock(&c.groups.replies);
        if matches!(replies.get(&req), Some(Some(_))) {
            continue;
        }
        let slice = (deadline - now).min(Duration::from_millis(20));
        drop(c.groups.arrived.wait_timeout(replies, slice));
    }
}

/// The receive loop's handler of placement-group messages.
pub(super) fn on_group_message<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, from: Rank, msg: Msg) {
    match msg {
        Msg::PgAsk { req, op } => {
            let answer = match answer(inner, op) {
                Ok(a) => a,
                Err(e) => WirePgAnswer::failed(&e),
            };
            let _ = c.send(from, &Msg::PgAnswer { req, answer });
        }
        Msg::PgAnswer { req, answer } => {
            let mut replies = lock(&c.groups.replies);
            if let Some(slot) = replies.get_mut(&req) {
                *slot = Some(answer);
                c.transport.expect_reply(false);
                c.groups.arrived.notify_all();
            }
        }
        Msg::PgHold { group, bundles } => {
            hold_here(&**inner, group, &bundles);
            let _ = c.send(from, &Msg::PgHeld { group });
        }
        Msg::PgHeld { group } => {
            let work = inner.groups().held(group, from);
            perform(inner, work);
        }
        Msg::PgFree { group } => free_here(inner, group),
        _ => {}
    }
}

/// On the registry: what another rank asked.
fn answer<H: RankHost>(
    inner: &Arc<H>,
    op: WirePgOp,
) -> std::result::Result<WirePgAnswer, PlacementGroupError> {
    let cap = capacity(&**inner);
    Ok(match op {
        WirePgOp::Create { bundles, strategy } => {
            let bundles = bundles.into_iter().map(Bundle::new).collect();
            let (id, work) = inner.groups().create(bundles, strategy, &cap)?;
            perform(inner, work);
            WirePgAnswer::Created(id)
        }
        WirePgOp::Remove { group } => {
            let work = inner
                .groups()
                .remove(group, "removed by remove_placement_group", &cap)?;
            perform(inner, work);
            WirePgAnswer::Done
        }
        WirePgOp::Lookup { group } => {
            WirePgAnswer::Groups(inner.groups().lookup(group).into_iter().collect())
        }
        WirePgOp::Table => WirePgAnswer::Groups(inner.groups().table()),
    })
}

/// On the registry: rank `rank` was lost (step 4); on other ranks nothing
/// (the registry frees and re-places).
pub(super) fn rank_lost<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, rank: Rank) {
    if c.rank != REGISTRY {
        return;
    }
    let work = inner.groups().rank_lost(rank, &capacity(&**inner));
    perform(inner, work);
}
