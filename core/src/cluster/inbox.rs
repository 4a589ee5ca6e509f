//! The shared-memory inboxes the ranks of a node send frames through
//! (feature `mpi`): this rank's own, and its neighbours', as the
//! transport's rings see them.

use std::path::PathBuf;
use std::sync::Arc;

use ferry_store::{Segment, SharedSegment};
use ferry_transport::SharedBytes;

/// This rank's inbox of rings (its own segment).
pub(crate) struct OwnInbox(pub(crate) Segment);

// SAFETY: the segment's mapping is fixed, page-aligned and its pages
// reserved for its lifetime, which this value holds; only the transport's
// rings write it once formatted.
unsafe impl SharedBytes for OwnInbox {
    fn base(&self) -> *mut u8 {
        self.0.as_ptr()
    }

    fn len(&self) -> usize {
        self.0.capacity()
    }
}

/// A neighbour's inbox, mapped to send frames into it.
pub(crate) struct PeerInbox(pub(crate) SharedSegment);

// SAFETY: as for `OwnInbox`: a fixed, page-aligned shared mapping of a file
// whose owner reserved its pages and never truncates it, held by this
// value; only the rings write it.
unsafe impl SharedBytes for PeerInbox {
    fn base(&self) -> *mut u8 {
        self.0.as_ptr()
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Creates this rank's inbox of rings beside its store (`<store>.ring`), for
/// `node_ranks` ranks; `None`, said in the log, when it cannot be made: its
/// neighbours then send to it by MPI (one rank failing alone must not stop
/// the others, which are already in the next exchange).
pub(crate) fn create(
    arena: &ferry_store::Arena,
    rank: u32,
    node_ranks: usize,
) -> Option<Arc<OwnInbox>> {
    let path = ferry_store::ring_path(arena.path());
    let made = ferry_store::Segment::create(&path, ferry_transport::inbox_len(node_ranks))
        .map_err(|e| e.to_string())
        .and_then(|seg| {
            let inbox = Arc::new(OwnInbox(seg));
            let shared: Arc<dyn SharedBytes> = inbox.clone();
            ferry_transport::format_inbox(&shared, rank, node_ranks)
                .map(|()| inbox)
                .map_err(|e| e.to_string())
        });
    match made {
        Ok(inbox) => Some(inbox),
        Err(e) => {
            tracing::warn!(
                "cannot make this rank's shared-memory inbox at {}, its neighbours send \
                 to it by MPI: {e}",
                path.display()
            );
            None
        }
    }
}

/// Opens the inboxes of the ranks of this node (`stores`: their store
/// paths), attaches the rings (collective) and removes this rank's inbox
/// name: from here on only mappings hold it, so nothing is left in
/// `/dev/shm` however the rank ends.
pub(crate) fn attach(
    transport: &ferry_transport::MpiTransport,
    rank: u32,
    inbox: Option<Arc<OwnInbox>>,
    stores: &[(u32, PathBuf)],
    rings: bool,
) -> Result<(), ferry_transport::TransportError> {
    let mut node_ranks: Vec<u32> = stores.iter().map(|(r, _)| *r).collect();
    node_ranks.push(rank);
    node_ranks.sort_unstable();
    let peers = if rings {
        stores
            .iter()
            .filter_map(|(r, store)| {
                let path = ferry_store::ring_path(store);
                match ferry_store::open_shared(&path) {
                    Ok(seg) => Some((*r, Arc::new(PeerInbox(seg)) as Arc<dyn SharedBytes>)),
                    Err(e) => {
                        tracing::warn!("cannot map rank {r}'s inbox, frames to it go by MPI: {e}");
                        None
                    }
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let attached = transport.attach_rings(ferry_transport::NodeRings {
        inbox: inbox.clone().map(|i| i as Arc<dyn SharedBytes>),
        node_ranks,
        peers,
    });
    // Every rank has opened its neighbours' inboxes (or failed to) once
    // the attach's exchanges are over: the name can go.
    if let Some(inbox) = &inbox
        && let Err(e) = inbox.0.unlink()
    {
        tracing::warn!("could not remove the shared-memory inbox's file name: {e}");
    }
    let report = attached?;
    for (r, e) in &report.refused {
        tracing::warn!("rank {r}'s inbox was refused, frames to it go by MPI: {e}");
    }
    tracing::debug!(to = ?report.to, from = ?report.from, "shared-memory rings attached");
    Ok(())
}
