//! Cancelling a task that runs on another rank: its owner sends `Cancel`,
//! and the rank running it cancels it there (recursively, if asked).

use std::sync::Weak;

use crate::cluster::sent::{Sent, Work};
use crate::cluster::shared::{Cluster, ClusterHost};
use crate::cluster::wire::Msg;
use crate::sync::lock;

/// Asks the rank running the task behind `object` (sent from here) to
/// cancel it; false when no task of this rank's is out there for it.
pub(crate) fn cancel_remote<H: ClusterHost>(c: &Cluster<H>, object: u64, recursive: bool) -> bool {
    if crate::cluster::remote_task::cancel_held(c, object) {
        return true;
    }
    let to = match lock(&c.sent).get(&object).map(|s| &**s) {
        Some(Sent {
            rank,
            work: Work::Task { .. },
            ..
        }) => *rank,
        _ => return false,
    };
    let _ = c.send(to, &Msg::Cancel { object, recursive });
    true
}

/// On the rank running it: the owner of `object` cancels its task.
pub(super) fn on_cancel<H: ClusterHost>(c: &Cluster<H>, object: u64, recursive: bool) {
    let slot = lock(&c.executing).get(&object).and_then(Weak::upgrade);
    if let Some(p) = slot.and_then(|s| s.producer()) {
        p.cancel(recursive);
    }
}
