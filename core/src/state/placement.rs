//! Placement groups as listings show them (Ray's `placement_group_table`).

use std::collections::BTreeMap;
use std::fmt;

use rkyv::{Archive, Deserialize, Serialize};

/// How a group's bundles are spread over ranks (Ray's `strategy=`).
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PlacementStrategy {
    /// As few ranks as possible (best effort; Ray's `PACK`, the default).
    #[default]
    Pack,
    /// Over as many ranks as possible (best effort; `SPREAD`).
    Spread,
    /// All bundles on one rank, or not at all (`STRICT_PACK`).
    StrictPack,
    /// Each bundle on a different rank, or not at all (`STRICT_SPREAD`).
    StrictSpread,
}

impl fmt::Display for PlacementStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlacementStrategy::Pack => "PACK",
            PlacementStrategy::Spread => "SPREAD",
            PlacementStrategy::StrictPack => "STRICT_PACK",
            PlacementStrategy::StrictSpread => "STRICT_SPREAD",
        })
    }
}

/// Where a placement group stands (Ray's states, less `PREPARED`).
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementGroupState {
    /// Waiting for its bundles to fit (resources held by other groups).
    Pending,
    /// Every bundle is held on its rank.
    Created,
    /// Removed by the user, or failed (its `reason` says).
    Removed,
    /// A rank holding some of its bundles was lost; they are being placed
    /// again.
    Rescheduling,
}

/// One placement group in a listing.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PlacementGroupInfo {
    /// The group's id.
    pub id: u64,
    /// Its strategy.
    pub strategy: PlacementStrategy,
    /// Its bundles: resource name → amount.
    pub bundles: Vec<BTreeMap<String, f64>>,
    /// The rank holding each bundle (`None` while not placed).
    pub ranks: Vec<Option<u32>>,
    /// Where it stands.
    pub state: PlacementGroupState,
    /// Why it was removed or failed, when it was.
    pub reason: Option<String>,
}

impl fmt::Display for PlacementGroupInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranks: Vec<String> = self
            .ranks
            .iter()
            .map(|r| r.map_or("-".to_string(), |r| r.to_string()))
            .collect();
        write!(
            f,
            "{:>6}  {:<13}  {:<12}  bundles {}  ranks [{}]",
            self.id,
            self.strategy.to_string(),
            format!("{:?}", self.state),
            self.bundles.len(),
            ranks.join(", ")
        )
    }
}
