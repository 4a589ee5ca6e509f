//! Placement-group requests and answers as they cross ranks inside
//! [`super::wire::Msg`] (`PgAsk`, `PgAnswer`; see `groups`).

use rkyv::{Archive, Deserialize, Serialize};

use crate::error::PlacementGroupError;
use crate::state::{PlacementGroupInfo, PlacementStrategy};

/// What a rank asks the registry on rank 0.
#[derive(Archive, Serialize, Deserialize, Debug, Clone)]
pub(crate) enum WirePgOp {
    /// Create a group of these bundles.
    Create {
        bundles: Vec<Vec<(String, f64)>>,
        strategy: PlacementStrategy,
    },
    /// Remove a group.
    Remove { group: u64 },
    /// List one group.
    Lookup { group: u64 },
    /// List every group.
    Table,
}

/// The registry's answer.
#[derive(Archive, Serialize, Deserialize, Debug, Clone)]
pub(crate) enum WirePgAnswer {
    /// The new group's id.
    Created(u64),
    /// Done (a removal).
    Done,
    /// Listings.
    Groups(Vec<PlacementGroupInfo>),
    /// Failed: the error's kind (see [`WirePgAnswer::error`]), group and text.
    Failed {
        kind: u8,
        group: u64,
        reason: String,
    },
}

impl WirePgAnswer {
    pub(crate) fn failed(e: &PlacementGroupError) -> WirePgAnswer {
        let (kind, group, reason) = match e {
            PlacementGroupError::Infeasible { reason } => (0, 0, reason.clone()),
            PlacementGroupError::NotFound { group } => (1, *group, String::new()),
            PlacementGroupError::Removed { group, reason } => (2, *group, reason.clone()),
            other => (3, 0, other.to_string()),
        };
        WirePgAnswer::Failed {
            kind,
            group,
            reason,
        }
    }

    /// The error a `Failed` answer stands for.
    pub(crate) fn error(kind: u8, group: u64, reason: String) -> PlacementGroupError {
        match kind {
            0 => PlacementGroupError::Infeasible { reason },
            1 => PlacementGroupError::NotFound { group },
            2 => PlacementGroupError::Removed { group, reason },
            _ => PlacementGroupError::Registry { reason },
        }
    }
}
