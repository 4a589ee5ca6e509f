//! The job's placement-group registry, held on rank 0: every group, where
//! its bundles are, and what the groups hold of each rank's totals. The
//! placement itself is [`place`]; the messages that carry its decisions
//! are `groups`'.
//!
//! # Protocol (on rank 0)
//!
//! 1. `create`: a group no placement could fit on the ranks' totals is
//!    refused at once. Otherwise it is queued `Pending` and the queue is
//!    tried: each group in order is placed on what the ranks have left
//!    after the groups placed before it, all bundles or none (atomic).
//! 2. A placed group's bundles are held on their ranks (`PgHold`); when
//!    every rank has said so (`PgHeld`) it is `Created` and its `ready`
//!    refs resolve.
//! 3. `remove` frees its bundles on their ranks (`PgFree`), fails its
//!    `ready` refs, and tries the queue again.
//! 4. A rank lost: every group with bundles there is `Rescheduling` and
//!    queued, its lost bundles placed again beside its others as its
//!    strategy allows; a group that could never be re-placed fails
//!    (`Removed`, with the reason).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::error::PlacementGroupError;
use crate::object::cell::Slot;
use crate::resources::bundles::Bundle;
use crate::resources::ledger::to_fixed;
use crate::state::{PlacementGroupInfo, PlacementGroupState, PlacementStrategy};
use crate::sync::lock;

/// How many removed groups the registry keeps listing (Ray's GCS keeps
/// the last 1000 removed ones too); older ones are forgotten.
const REMOVED_KEPT: usize = 1000;

/// Amounts in fixed point, by resource name.
type Amounts = BTreeMap<String, i64>;

/// Bundles to hold on one rank: `(bundle index, amounts)`.
pub(crate) type Holds = Vec<(u32, Vec<(String, f64)>)>;

/// A `ready` ref, with what it resolves to: the bundles' ranks, or why not.
pub(crate) type Resolve = (Arc<Slot>, Result<Vec<u32>, PlacementGroupError>);

/// The live ranks' totals, by rank.
pub(crate) type Capacity = BTreeMap<u32, BTreeMap<String, f64>>;

/// What the registry's caller must send or complete after a change.
#[derive(Default)]
pub(crate) struct Work {
    /// `(rank, group, [(bundle index, amounts)])` to hold (step 2).
    pub(crate) holds: Vec<(u32, u64, Holds)>,
    /// `(rank, group)` to free (step 3).
    pub(crate) frees: Vec<(u32, u64)>,
    /// `ready` refs to resolve: the bundles' ranks, or why not.
    pub(crate) ready: Vec<Resolve>,
}

struct Group {
    strategy: PlacementStrategy,
    bundles: Vec<Bundle>,
    ranks: Vec<Option<u32>>,
    state: PlacementGroupState,
    /// Ranks that have not yet said they hold their bundles.
    holding: BTreeSet<u32>,
    ready: Vec<Arc<Slot>>,
    reason: Option<String>,
}

impl Group {
    fn info(&self, id: u64) -> PlacementGroupInfo {
        PlacementGroupInfo {
            id,
            strategy: self.strategy,
            bundles: self
                .bundles
                .iter()
                .map(|b| b.iter().map(|(k, v)| (k.to_string(), v)).collect())
                .collect(),
            ranks: self.ranks.clone(),
            state: self.state,
            reason: self.reason.clone(),
        }
    }

    fn placed(&self) -> Option<Vec<u32>> {
        self.ranks.iter().copied().collect()
    }
}

#[derive(Default)]
struct Book {
    next: u64,
    groups: BTreeMap<u64, Group>,
    /// What placed bundles hold of each rank.
    reserved: BTreeMap<u32, Amounts>,
    /// Groups waiting to be placed, oldest first.
    queue: Vec<u64>,
    /// Removed groups still listed, oldest first.
    removed: std::collections::VecDeque<u64>,
}

/// The registry (rank 0's).
#[derive(Default)]
pub(crate) struct GroupRegistry {
    book: Mutex<Book>,
    changed: Condvar,
}

fn fixed(b: &Bundle) -> Amounts {
    b.iter()
        .map(|(k, v)| (k.to_string(), to_fixed(v)))
        .collect()
}

fn fits(free: &Amounts, ask: &Amounts) -> bool {
    ask.iter()
        .all(|(k, v)| *v <= 0 || free.get(k).is_some_and(|f| f >= v))
}

fn take(free: &mut Amounts, ask: &Amounts) {
    for (k, v) in ask {
        *free.entry(k.clone()).or_insert(0) -= v;
    }
}

/// Places `todo` (bundle index, amounts) on ranks with `free` left, beside
/// the group's bundles already on `fixed`, as `strategy` says; all or
/// nothing. Greedy, lowest rank first.
pub(crate) fn place(
    strategy: PlacementStrategy,
    todo: &[(usize, Amounts)],
    fixed: &[u32],
    free: &BTreeMap<u32, Amounts>,
) -> Option<Vec<(usize, u32)>> {
    let mut free = free.clone();
    let mut used: BTreeMap<u32, usize> = BTreeMap::new();
    for r in fixed {
        *used.entry(*r).or_insert(0) += 1;
    }
    let one_rank = |free: &BTreeMap<u32, Amounts>, only: Option<u32>| {
        let mut sum = Amounts::new();
        for (_, a) in todo {
            for (k, v) in a {
                *sum.entry(k.clone()).or_insert(0) += v;
            }
        }
        free.iter()
            .filter(|(r, _)| only.is_none_or(|o| o == **r))
            .find(|(_, f)| fits(f, &sum))
            .map(|(r, _)| todo.iter().map(|(i, _)| (*i, *r)).collect::<Vec<_>>())
    };
    match strategy {
        PlacementStrategy::StrictPack => one_rank(&free, fixed.first().copied()),
        PlacementStrategy::Pack => {
            if let Some(p) = fixed.first().and_then(|r| one_rank(&free, Some(*r))) {
                return Some(p);
            }
            if let Some(p) = one_rank(&free, None) {
                return Some(p);
            }
            let mut out = Vec::new();
            for (i, a) in todo {
                // Ranks the group uses first, then the others.
                let r = used
                    .keys()
                    .copied()
                    .chain(free.keys().copied())
                    .find(|r| free.get(r).is_some_and(|f| fits(f, a)))?;
                take(free.get_mut(&r)?, a);
                *used.entry(r).or_insert(0) += 1;
                out.push((*i, r));
            }
            Some(out)
        }
        PlacementStrategy::Spread | PlacementStrategy::StrictSpread => {
            let strict = strategy == PlacementStrategy::StrictSpread;
            let mut out = Vec::new();
            for (i, a) in todo {
                let r = free
                    .iter()
                    .filter(|(r, f)| fits(f, a) && !(strict && used.contains_key(r)))
                    .min_by_key(|(r, _)| (used.get(r).copied().unwrap_or(0), **r))
                    .map(|(r, _)| *r)?;
                take(free.get_mut(&r)?, a);
                *used.entry(r).or_insert(0) += 1;
                out.push((*i, r));
            }
            Some(out)
        }
    }
}

fn as_fixed(cap: &Capacity) -> BTreeMap<u32, Amounts> {
    cap.iter()
        .map(|(r, t)| {
            (
                *r,
                t.iter().map(|(k, v)| (k.clone(), to_fixed(*v))).collect(),
            )
        })
        .collect()
}

impl Book {
    /// What the live ranks have left after the placed bundles.
    fn free(&self, cap: &Capacity) -> BTreeMap<u32, Amounts> {
        let mut free = as_fixed(cap);
        for (r, held) in &self.reserved {
            if let Some(f) = free.get_mut(r) {
                take(f, held);
            }
        }
        free
    }

    /// The bundles of `g` not placed, and the ranks of those that are.
    fn todo(g: &Group) -> (Vec<(usize, Amounts)>, Vec<u32>) {
        let todo = (0..g.bundles.len())
            .filter(|i| g.ranks[*i].is_none())
            .map(|i| (i, fixed(&g.bundles[i])))
            .collect();
        (todo, g.ranks.iter().flatten().copied().collect())
    }

    /// Steps 1 and 4: places what of the queue fits now, in order.
    fn try_queue(&mut self, cap: &Capacity, work: &mut Work) {
        let queue = std::mem::take(&mut self.queue);
        for id in queue {
            let free = self.free(cap);
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            let (todo, on) = Book::todo(g);
            let Some(placed) = place(g.strategy, &todo, &on, &free) else {
                self.queue.push(id);
                continue;
            };
            let mut by_rank: BTreeMap<u32, Holds> = BTreeMap::new();
            for (i, r) in placed {
                g.ranks[i] = Some(r);
                take(
                    self.reserved.entry(r).or_default(),
                    &fixed(&g.bundles[i])
                        .into_iter()
                        .map(|(k, v)| (k, -v))
                        .collect(),
                );
                by_rank
                    .entry(r)
                    .or_default()
                    .push((i as u32, g.bundles[i].to_pairs()));
            }
            for (r, bundles) in by_rank {
                g.holding.insert(r);
                work.holds.push((r, id, bundles));
            }
        }
    }

    /// Gives back what `g`'s placed bundles reserve.
    fn unreserve(reserved: &mut BTreeMap<u32, Amounts>, g: &Group) -> BTreeSet<u32> {
        let mut ranks = BTreeSet::new();
        for (i, r) in g.ranks.iter().enumerate() {
            if let Some(r) = r {
                if let Some(held) = reserved.get_mut(r) {
                    take(held, &fixed(&g.bundles[i]));
                }
                ranks.insert(*r);
            }
        }
        ranks
    }

    /// Marks `id` removed for `reason`: frees its bundles, fails its refs.
    fn end(&mut self, id: u64, reason: String, work: &mut Work) {
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        if g.state == PlacementGroupState::Removed {
            return;
        }
        for r in Book::unreserve(&mut self.reserved, g) {
            work.frees.push((r, id));
        }
        g.state = PlacementGroupState::Removed;
        g.holding.clear();
        g.reason = Some(reason.clone());
        for s in g.ready.drain(..) {
            let err = PlacementGroupError::Removed {
                group: id,
                reason: reason.clone(),
            };
            work.ready.push((s, Err(err)));
        }
        self.queue.retain(|q| *q != id);
        self.removed.push_back(id);
        while self.removed.len() > REMOVED_KEPT {
            if let Some(old) = self.removed.pop_front() {
                self.groups.remove(&old);
            }
        }
    }
}

impl GroupRegistry {
    fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.book)
    }

    /// Step 1: a new group, or why it could never be placed.
    pub(crate) fn create(
        &self,
        bundles: Vec<Bundle>,
        strategy: PlacementStrategy,
        cap: &Capacity,
    ) -> Result<(u64, Work), PlacementGroupError> {
        let todo: Vec<(usize, Amounts)> = bundles.iter().map(fixed).enumerate().collect();
        if place(strategy, &todo, &[], &as_fixed(cap)).is_none() {
            // The ranks' totals of the resources the bundles name.
            let named = |k: &String| bundles.iter().any(|b| b.get(k) > 0.0);
            let has: BTreeMap<u32, BTreeMap<&String, f64>> = cap
                .iter()
                .map(|(r, t)| {
                    (
                        *r,
                        t.iter()
                            .filter(|(k, _)| named(k))
                            .map(|(k, v)| (k, *v))
                            .collect(),
                    )
                })
                .collect();
            return Err(PlacementGroupError::Infeasible {
                reason: format!(
                    "{} bundle(s) {:?} with {strategy} do not fit the {} live rank(s), \
                     which have {has:?}",
                    bundles.len(),
                    bundles.iter().map(Bundle::to_pairs).collect::<Vec<_>>(),
                    cap.len(),
                ),
            });
        }
        let mut book = self.book();
        book.next += 1;
        let id = book.next;
        let n = bundles.len();
        book.groups.insert(
            id,
            Group {
                strategy,
                bundles,
                ranks: vec![None; n],
                state: PlacementGroupState::Pending,
                holding: BTreeSet::new(),
                ready: Vec::new(),
                reason: None,
            },
        );
        book.queue.push(id);
        let mut work = Work::default();
        book.try_queue(cap, &mut work);
        Ok((id, work))
    }

    /// Step 2: rank `rank` holds its bundles of `group`.
    pub(crate) fn held(&self, group: u64, rank: u32) -> Work {
        let mut work = Work::default();
        let mut book = self.book();
        if let Some(g) = book.groups.get_mut(&group)
            && g.holding.remove(&rank)
            && g.holding.is_empty()
            && let Some(ranks) = g.placed()
        {
            g.state = PlacementGroupState::Created;
            for s in g.ready.drain(..) {
                work.ready.push((s, Ok(ranks.clone())));
            }
            self.changed.notify_all();
        }
        work
    }

    /// Step 3: removes `group` (`NotFound` if the job never had it).
    pub(crate) fn remove(
        &self,
        group: u64,
        reason: &str,
        cap: &Capacity,
    ) -> Result<Work, PlacementGroupError> {
        let mut book = self.book();
        if !book.groups.contains_key(&group) {
            return Err(PlacementGroupError::NotFound { group });
        }
        let mut work = Work::default();
        book.end(group, reason.to_string(), &mut work);
        book.try_queue(cap, &mut work);
        self.changed.notify_all();
        Ok(work)
    }

    /// Step 4: rank `rank` is lost; `cap` is what the live ranks have.
    pub(crate) fn rank_lost(&self, rank: u32, cap: &Capacity) -> Work {
        let mut work = Work::default();
        let mut book = self.book();
        book.reserved.remove(&rank);
        let hit: Vec<u64> = book
            .groups
            .iter()
            .filter(|(_, g)| {
                g.state != PlacementGroupState::Removed && g.ranks.contains(&Some(rank))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in hit {
            let Some(g) = book.groups.get_mut(&id) else {
                continue;
            };
            for r in g.ranks.iter_mut().filter(|r| **r == Some(rank)) {
                *r = None;
            }
            g.holding.remove(&rank);
            let (todo, on) = Book::todo(g);
            if place(g.strategy, &todo, &on, &as_fixed(cap)).is_none() {
                let why = format!(
                    "rank {rank} was lost and its bundles cannot be placed again with {}",
                    g.strategy
                );
                book.end(id, why, &mut work);
                continue;
            }
            g.state = PlacementGroupState::Rescheduling;
            if !book.queue.contains(&id) {
                book.queue.insert(0, id);
            }
        }
        book.try_queue(cap, &mut work);
        self.changed.notify_all();
        work
    }

    /// A `ready` ref of `group`: resolved now when it can be, else kept.
    pub(crate) fn add_ready(&self, group: u64, slot: Arc<Slot>) -> Option<Resolve> {
        let mut book = self.book();
        let Some(g) = book.groups.get_mut(&group) else {
            return Some((slot, Err(PlacementGroupError::NotFound { group })));
        };
        match (g.state, g.placed()) {
            (PlacementGroupState::Created, Some(ranks)) => Some((slot, Ok(ranks))),
            (PlacementGroupState::Removed, _) => {
                let reason = g.reason.clone().unwrap_or_default();
                Some((slot, Err(PlacementGroupError::Removed { group, reason })))
            }
            _ => {
                g.ready.push(slot);
                None
            }
        }
    }

    /// The group's listing, if the job has it.
    pub(crate) fn lookup(&self, group: u64) -> Option<PlacementGroupInfo> {
        self.book().groups.get(&group).map(|g| g.info(group))
    }

    /// Waits until `group` is created or removed, or `deadline` passes;
    /// its listing then.
    pub(crate) fn wait_settled(&self, group: u64, deadline: Instant) -> Option<PlacementGroupInfo> {
        let mut book = self.book();
        loop {
            let g = book.groups.get(&group)?;
            let now = Instant::now();
            if matches!(
                g.state,
                PlacementGroupState::Created | PlacementGroupState::Removed
            ) || now >= deadline
            {
                return Some(g.info(group));
            }
            book = self
                .changed
                .wait_timeout(book, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every group of the job, oldest first.
    pub(crate) fn table(&self) -> Vec<PlacementGroupInfo> {
        self.book()
            .groups
            .iter()
            .map(|(id, g)| g.info(*id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(ranks: &[f64]) -> Capacity {
        ranks
            .iter()
            .enumerate()
            .map(|(r, c)| (r as u32, [("CPU".to_string(), *c)].into_iter().collect()))
            .collect()
    }

    fn cpus(n: usize, each: f64) -> Vec<Bundle> {
        (0..n).map(|_| Bundle::from([("CPU", each)])).collect()
    }

    fn ranks_of(work: &Work) -> Vec<u32> {
        let mut out = Vec::new();
        for (r, _, b) in &work.holds {
            out.extend(b.iter().map(|_| *r));
        }
        out
    }

    #[test]
    fn each_strategy_places_as_it_says() {
        let reg = GroupRegistry::default();
        let c = cap(&[4.0, 4.0, 4.0]);
        let (_, w) = reg
            .create(cpus(3, 1.0), PlacementStrategy::Pack, &c)
            .unwrap();
        assert_eq!(ranks_of(&w), vec![0, 0, 0]);
        let (_, w) = reg
            .create(cpus(3, 1.0), PlacementStrategy::StrictSpread, &c)
            .unwrap();
        assert_eq!(ranks_of(&w), vec![0, 1, 2]);
        let (_, w) = reg
            .create(cpus(2, 1.0), PlacementStrategy::Spread, &c)
            .unwrap();
        assert_eq!(ranks_of(&w), vec![1, 2], "the least used ranks first");
        let (_, w) = reg
            .create(cpus(2, 1.0), PlacementStrategy::StrictPack, &c)
            .unwrap();
        assert_eq!(ranks_of(&w).len(), 2);
        assert_eq!(ranks_of(&w)[0], ranks_of(&w)[1]);
    }

    #[test]
    fn infeasible_groups_are_refused_and_full_ones_wait() {
        let reg = GroupRegistry::default();
        let c = cap(&[2.0, 2.0]);
        let e = reg.create(cpus(3, 1.0), PlacementStrategy::StrictPack, &c);
        assert!(matches!(e, Err(PlacementGroupError::Infeasible { .. })));
        let e = reg.create(cpus(3, 1.0), PlacementStrategy::StrictSpread, &c);
        assert!(matches!(e, Err(PlacementGroupError::Infeasible { .. })));
        let (a, w) = reg
            .create(cpus(4, 1.0), PlacementStrategy::Pack, &c)
            .unwrap();
        assert_eq!(ranks_of(&w), vec![0, 0, 1, 1]);
        let (b, w) = reg
            .create(cpus(1, 1.0), PlacementStrategy::Pack, &c)
            .unwrap();
        assert!(w.holds.is_empty(), "no room: pending");
        assert_eq!(reg.lookup(b).unwrap().state, PlacementGroupState::Pending);
        let w = reg.remove(a, "test", &c).unwrap();
        assert_eq!(w.frees, vec![(0, a), (1, a)]);
        assert_eq!(ranks_of(&w), vec![0], "the waiting group is placed");
    }

    #[test]
    fn a_group_is_created_when_every_rank_holds_its_bundles() {
        let reg = GroupRegistry::default();
        let c = cap(&[1.0, 1.0]);
        let (g, _) = reg
            .create(cpus(2, 1.0), PlacementStrategy::Spread, &c)
            .unwrap();
        assert!(reg.held(g, 0).ready.is_empty());
        assert_eq!(reg.lookup(g).unwrap().state, PlacementGroupState::Pending);
        reg.held(g, 1);
        assert_eq!(reg.lookup(g).unwrap().state, PlacementGroupState::Created);
    }

    #[test]
    fn a_lost_rank_re_places_its_bundles_or_fails_the_group() {
        let reg = GroupRegistry::default();
        let c = cap(&[2.0, 2.0, 2.0]);
        let (g, _) = reg
            .create(cpus(2, 1.0), PlacementStrategy::StrictSpread, &c)
            .unwrap();
        reg.held(g, 0);
        reg.held(g, 1);
        let mut live = c.clone();
        live.remove(&1);
        let w = reg.rank_lost(1, &live);
        assert_eq!(w.holds.len(), 1);
        assert_eq!(w.holds[0].0, 2, "not beside bundle 0 on rank 0");
        assert_eq!(
            reg.lookup(g).unwrap().state,
            PlacementGroupState::Rescheduling
        );
        reg.held(g, 2);
        assert_eq!(reg.lookup(g).unwrap().ranks, vec![Some(0), Some(2)]);
        live.remove(&2);
        let w = reg.rank_lost(2, &live);
        assert_eq!(w.frees, vec![(0, g)], "one rank left: strict spread fails");
        assert_eq!(reg.lookup(g).unwrap().state, PlacementGroupState::Removed);
    }

    #[test]
    fn only_the_last_removed_groups_stay_listed() {
        let reg = GroupRegistry::default();
        let c = cap(&[1.0]);
        let ids: Vec<u64> = (0..REMOVED_KEPT + 5)
            .map(|_| {
                let (g, _) = reg
                    .create(cpus(1, 1.0), PlacementStrategy::Pack, &c)
                    .unwrap();
                reg.remove(g, "test", &c).unwrap();
                g
            })
            .collect();
        assert_eq!(reg.table().len(), REMOVED_KEPT);
        assert!(reg.lookup(ids[0]).is_none());
        assert!(reg.lookup(ids[ids.len() - 1]).is_some());
        let e = reg.remove(ids[0], "again", &c);
        assert!(matches!(e, Err(PlacementGroupError::NotFound { .. })));
    }
}
