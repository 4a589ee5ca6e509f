//! Gathering from every rank: rank 0's timeline and any rank's state
//! listing ask every other live rank (`TimelineRequest`, `StateRequest`)
//! and collect the replies until a deadline.

use std::sync::Arc;
use std::time::Instant;

use ferry_transport::Rank;

use crate::cluster::rank_host::RankHost;
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::wire::Msg;
use crate::sync::lock;

/// Every other live rank's timeline events, asked for now (rank 0's
/// `timeline`); ranks that do not answer by `deadline` are left out, with a
/// warning.
pub(crate) fn gather_timelines<H: ClusterHost>(
    c: &Cluster<H>,
    deadline: Instant,
) -> Vec<crate::timeline::RankEvents> {
    gather(c, &c.timelines, &Msg::TimelineRequest, "timeline", deadline)
}

/// Every other live rank's state listing (see `state`).
pub(crate) fn gather_states<H: ClusterHost>(
    c: &Cluster<H>,
    deadline: Instant,
) -> Vec<crate::state::RankState> {
    gather(c, &c.states, &Msg::StateRequest, "state", deadline)
}

/// Sends `request` to every other live rank and collects their replies in
/// `replies` until all are in or `deadline` passes.
fn gather<T, H: ClusterHost>(
    c: &Cluster<H>,
    replies: &crate::timeline::Replies<T>,
    request: &Msg,
    what: &str,
    deadline: Instant,
) -> Vec<T> {
    let _one = lock(&replies.one);
    replies.clear();
    let lost = lock(&c.lost).clone();
    let mut asked = 0;
    for r in (0..c.size).filter(|r| *r != c.rank && !lost.contains(r)) {
        c.transport.expect_reply(true);
        if c.send(r, request).is_ok() {
            asked += 1;
        } else {
            c.transport.expect_reply(false);
        }
    }
    let got = replies.wait_for(asked, deadline);
    if got.len() < asked {
        tracing::warn!(
            "{what}: {} of {asked} ranks did not answer in time",
            asked - got.len()
        );
    }
    got
}

/// Answers a request of [`gather`], or takes in a reply to one.
pub(super) fn on_gather_message<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, from: Rank, msg: Msg) {
    match msg {
        Msg::TimelineRequest => {
            let events = inner.pool().timeline.snapshot();
            let _ = c.send(from, &Msg::TimelineReply { events });
        }
        Msg::TimelineReply { events } => {
            c.transport.expect_reply(false);
            c.timelines.deposit(events);
        }
        Msg::StateRequest => {
            let state = Box::new(inner.rank_state());
            let _ = c.send(from, &Msg::StateReply { state });
        }
        Msg::StateReply { state } => {
            c.transport.expect_reply(false);
            c.states.deposit(*state);
        }
        _ => {}
    }
}
