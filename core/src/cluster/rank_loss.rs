//! A lost rank (protocol step 4): the objects it owned that this rank
//! borrows end (those not here yet are rebuilt or fail), the work in
//! flight to it is sent again or fails, the actors it hosted restart
//! elsewhere, and the borrows it held end.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use ferry_transport::Rank;

use crate::cluster::actor_restart;
use crate::cluster::latch::Latch;
use crate::cluster::rank_host::RankHost;
use crate::cluster::rebuild::rebuild;
use crate::cluster::remote_task::orphan;
use crate::cluster::sent::Sent;
use crate::cluster::shared::Cluster;
use crate::error::Error;
use crate::object::cell::Slot;
use crate::sync::lock;

/// Step 4: a rank is gone.
pub(super) fn rank_lost<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, rank: Rank, reason: &str) {
    tracing::error!("rank {}: rank {rank} was lost: {reason}", c.rank);
    lock(&c.lost).push(rank);
    // A start-up waiting for every rank's hello stops waiting for this one
    // (the lock orders this wake-up after its check, so it is not missed).
    drop(lock(&c.totals));
    c.heard.notify_all();
    // Objects it owned: their borrows end here (work waiting for their
    // acks goes on), and those not here yet are rebuilt or fail.
    let orphaned: Vec<Arc<Slot>> = lock(&c.borrowed)
        .values()
        .filter_map(Weak::upgrade)
        .filter(|s| s.borrow().is_some_and(|b| b.owner == rank))
        .collect();
    let latches: Vec<Arc<Latch>> = {
        let mut awaiting = lock(&c.awaiting);
        orphaned
            .iter()
            .flat_map(|s| {
                if let Some(b) = s.borrow() {
                    b.acked.store(true, Ordering::Release);
                }
                awaiting.remove(&s.id.as_u64()).unwrap_or_default()
            })
            .collect()
    };
    for l in latches {
        l.hit();
    }
    let missing: Vec<Arc<Slot>> = orphaned.into_iter().filter(|s| !s.is_ready()).collect();
    if !missing.is_empty() {
        rebuild(inner, c, rank, reason, missing);
    }
    crate::cluster::makers::maker_lost(c, rank);
    c.send_releases(c.releases.rank_lost(rank));
    actor_restart::rank_lost(c, rank, reason);
    crate::cluster::names::rank_lost(inner, c, rank);
    crate::cluster::channels::rank_lost(inner, rank, reason);
    crate::cluster::groups::rank_lost(inner, c, rank);
    // Its borrows end: what only it held is freed (outside the locks).
    for slot in c.lent.drop_rank(rank) {
        slot.unlend();
    }
    if rank == 0 && c.rank != 0 {
        c.end(Err(Error::DriverLost {
            reason: reason.to_string(),
        }));
        return;
    }
    c.ahead.rank_lost(rank);
    let orphans: Vec<(u64, Sent)> = {
        let mut sent = lock(&c.sent);
        let ids: Vec<u64> = sent
            .iter()
            .filter(|(_, s)| s.rank == rank)
            .map(|(k, _)| *k)
            .collect();
        // In the order they were made (ids grow per rank): resent calls to
        // one actor must keep their caller's order (HashMap order does not).
        let mut ids = ids;
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|k| sent.remove(&k).map(|s| (k, *s)))
            .collect()
    };
    for (object, s) in orphans {
        orphan(c, object, s, rank, reason);
    }
}
