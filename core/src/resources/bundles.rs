//! Placement-group bundles (Ray's `ray.util.placement_group`): what a user
//! asks for ([`Bundle`], [`PlacementStrategy`]), the handle of a group
//! ([`PlacementGroup`]), and what a rank holds for the bundles placed on it
//! ([`BundleBook`]).
//!
//! # A bundle on a rank
//!
//! 1. The group's registry (rank 0, see `cluster::groups`) tells a rank to
//!    hold bundle `i` of group `g`: the rank takes the bundle's amounts out
//!    of its own [`Ledger`] (even past what is free: tasks running now keep
//!    theirs) and keeps them in a ledger of the bundle's own, a
//!    [`BundleSlot`].
//! 2. A task or actor asking for bundle `(g, i)` gets a [`Request`] that
//!    names the slot: the rank's ledger grants and takes back such
//!    requests from the slot's ledger, never from the rank's free pool.
//!    Each enlists itself in the slot ([`BundleMember`]).
//! 3. Removing the group takes the slots out of the book, gives their
//!    amounts back to the rank's ledger and evicts their members (tasks are
//!    cancelled, actors killed), as Ray does.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use rkyv::{Archive, Deserialize, Serialize};

use crate::resources::ledger::{Ledger, Request};
use crate::state::PlacementStrategy;
use crate::sync::lock;

/// One bundle of a placement group: resource name → amount (Ray's
/// `{"CPU": 1, "GPU": 1}`).
///
/// ```
/// use ferry_core::Bundle;
/// let b = Bundle::from([("CPU", 1.0), ("custom", 0.001)]);
/// assert_eq!(b.get("CPU"), 1.0);
/// assert_eq!(b.get("GPU"), 0.0);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bundle {
    items: BTreeMap<String, f64>,
}

impl Bundle {
    /// A bundle of the given amounts (a name given twice adds up).
    pub fn new<K: Into<String>>(items: impl IntoIterator<Item = (K, f64)>) -> Bundle {
        let mut b = Bundle::default();
        for (k, v) in items {
            *b.items.entry(k.into()).or_insert(0.0) += v;
        }
        b
    }

    /// How much of `resource` the bundle holds (0 when it names none).
    pub fn get(&self, resource: &str) -> f64 {
        self.items.get(resource).copied().unwrap_or(0.0)
    }

    /// The amounts, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.items.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Whether it names no resource.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn to_pairs(&self) -> Vec<(String, f64)> {
        self.items.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

impl<K: Into<String>, const N: usize> From<[(K, f64); N]> for Bundle {
    fn from(items: [(K, f64); N]) -> Bundle {
        Bundle::new(items)
    }
}

impl From<HashMap<String, f64>> for Bundle {
    fn from(items: HashMap<String, f64>) -> Bundle {
        Bundle::new(items)
    }
}

impl From<BTreeMap<String, f64>> for Bundle {
    fn from(items: BTreeMap<String, f64>) -> Bundle {
        Bundle { items }
    }
}

/// A placement group: bundles of resources reserved together over the
/// job's ranks (see [`Runtime::placement_group`](crate::Runtime::placement_group)).
/// Cheap to clone; it holds no resources itself (only
/// [`Runtime::remove_placement_group`](crate::Runtime::remove_placement_group)
/// frees them, as in Ray).
#[derive(Clone)]
pub struct PlacementGroup {
    pub(crate) id: u64,
    pub(crate) strategy: PlacementStrategy,
    pub(crate) bundles: Arc<[Bundle]>,
    /// The rank it was made on, held weakly by the layer above that made
    /// it (type-erased: this layer does not name it).
    pub(crate) home: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl fmt::Debug for PlacementGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlacementGroup")
            .field("id", &self.id)
            .field("strategy", &self.strategy)
            .field("bundles", &self.bundles)
            .finish()
    }
}

impl PlacementGroup {
    /// The group's id (unique in the job).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The bundles asked for, in order.
    pub fn bundles(&self) -> &[Bundle] {
        &self.bundles
    }

    /// How many bundles the group has.
    pub fn bundle_count(&self) -> usize {
        self.bundles.len()
    }

    /// The strategy it was created with.
    pub fn strategy(&self) -> PlacementStrategy {
        self.strategy
    }
}

/// Bundle `index` of group `group`, as task and actor options ask for it
/// (and carry across ranks).
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BundleRef {
    pub(crate) group: u64,
    pub(crate) index: u32,
}

/// A task or actor running in a bundle: evicted when its group is removed.
pub(crate) trait BundleMember: Send + Sync {
    /// The group is gone: stop (a task is cancelled, an actor killed).
    fn evict(self: Arc<Self>, reason: &str);
}

/// One bundle held on this rank (step 1).
pub(crate) struct BundleSlot {
    pub(crate) group: u64,
    pub(crate) index: u32,
    /// What the bundle holds, and what of it is free now.
    pub(crate) ledger: Ledger,
    /// What it took out of the rank's ledger.
    held: Request,
    removed: AtomicBool,
    members: Mutex<Members>,
}

#[derive(Default)]
struct Members {
    list: Vec<Weak<dyn BundleMember>>,
    /// Length at which ended members are next dropped from `list`.
    prune_at: usize,
}

impl fmt::Debug for BundleSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BundleSlot({}, {})", self.group, self.index)
    }
}

impl BundleSlot {
    /// Enlists a task or actor (step 2); false when the group is removed
    /// already (the caller evicts it).
    pub(crate) fn enlist(&self, member: Weak<dyn BundleMember>) -> bool {
        let mut m = lock(&self.members);
        // Read under the lock `remove` takes before it drains the list.
        if self.removed.load(Ordering::Acquire) {
            return false;
        }
        if m.list.len() >= m.prune_at {
            m.list.retain(|w| w.strong_count() > 0);
            m.prune_at = (m.list.len() * 2).max(16);
        }
        m.list.push(member);
        true
    }

    /// Whether its group was removed.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Step 3 for this slot: its members, to evict.
    fn remove(&self) -> Vec<Arc<dyn BundleMember>> {
        let mut m = lock(&self.members);
        self.removed.store(true, Ordering::Release);
        m.list.drain(..).filter_map(|w| w.upgrade()).collect()
    }
}

/// The bundles held on one rank, by `(group, index)`.
#[derive(Default, Debug)]
pub(crate) struct BundleBook {
    slots: RwLock<HashMap<(u64, u32), Arc<BundleSlot>>>,
}

impl BundleBook {
    /// Bundle `index` of `group`, if this rank holds it.
    pub(crate) fn get(&self, group: u64, index: u32) -> Option<Arc<BundleSlot>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(group, index))
            .cloned()
    }

    /// Step 1: keeps a slot made by the ledger (a second hold of the same
    /// bundle gives the first back: the registry re-placed it here).
    pub(crate) fn insert(&self, ledger: &Ledger, group: u64, index: u32, l: Ledger, held: Request) {
        let slot = Arc::new(BundleSlot {
            group,
            index,
            ledger: l,
            held,
            removed: AtomicBool::new(false),
            members: Mutex::default(),
        });
        let old = self
            .slots
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((group, index), slot);
        if let Some(old) = old {
            ledger.release(&old.held);
        }
    }

    /// Step 3: takes every bundle of `group` out, gives their amounts back
    /// to `ledger`, and returns their members, to evict.
    pub(crate) fn remove_group(&self, ledger: &Ledger, group: u64) -> Vec<Arc<dyn BundleMember>> {
        let gone: Vec<Arc<BundleSlot>> = {
            let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
            let keys: Vec<_> = slots.keys().filter(|k| k.0 == group).copied().collect();
            keys.iter().filter_map(|k| slots.remove(k)).collect()
        };
        let mut members = Vec::new();
        for s in gone {
            ledger.release(&s.held);
            members.extend(s.remove());
        }
        members
    }
}
