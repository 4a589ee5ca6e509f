//! What a rank lends to other ranks (its objects and actors that they hold
//! refs or handles to), and who borrows each, so that a lost rank's
//! borrows can be let go of.

use std::sync::Mutex;

use ferry_transport::Rank;

use crate::ids::IdMap;
use crate::sync::lock;

/// Lent things by id, each with the ranks that borrow it (a rank may be
/// listed twice for a moment: a new borrow can overtake the end of the old
/// one). The value keeps the thing alive while listed.
pub(crate) struct Lent<V> {
    map: Mutex<IdMap<u64, (V, Vec<Rank>)>>,
}

impl<V: Clone> Lent<V> {
    pub(crate) fn new() -> Lent<V> {
        Lent {
            map: Mutex::new(IdMap::default()),
        }
    }

    /// `by` borrows `id` (whose value is `value`, kept from now on if new);
    /// false when `by` was listed already (it borrows it still, or its
    /// `RemoveBorrow` is on the way).
    pub(crate) fn add(&self, id: u64, by: Rank, value: V) -> bool {
        let mut map = lock(&self.map);
        let ranks = &mut map.entry(id).or_insert_with(|| (value, Vec::new())).1;
        let first = !ranks.contains(&by);
        ranks.push(by);
        first
    }

    /// Every lent thing: (id, value, the ranks that borrow it).
    pub(crate) fn entries(&self) -> Vec<(u64, V, Vec<Rank>)> {
        lock(&self.map)
            .iter()
            .map(|(id, (v, by))| (*id, v.clone(), by.clone()))
            .collect()
    }

    /// The value lent as `id`, if it is.
    pub(crate) fn get(&self, id: u64) -> Option<V> {
        lock(&self.map).get(&id).map(|(v, _)| v.clone())
    }

    /// One borrow of `id` by `by` ended: the value when that was the last
    /// borrow (for the caller to drop outside the lock: it may free things).
    #[must_use]
    pub(crate) fn remove(&self, id: u64, by: Rank) -> Option<V> {
        let mut map = lock(&self.map);
        let (_, ranks) = map.get_mut(&id)?;
        if let Some(i) = ranks.iter().position(|r| *r == by) {
            ranks.swap_remove(i);
        }
        if ranks.is_empty() {
            map.remove(&id).map(|(v, _)| v)
        } else {
            None
        }
    }

    /// Rank `rank` is gone: its borrows end. The values no rank borrows any
    /// more, for the caller to drop outside the lock.
    #[must_use]
    pub(crate) fn drop_rank(&self, rank: Rank) -> Vec<V> {
        let mut map = lock(&self.map);
        let mut freed = Vec::new();
        map.retain(|_, (v, ranks)| {
            ranks.retain(|r| *r != rank);
            if ranks.is_empty() {
                freed.push(v.clone());
                false
            } else {
                true
            }
        });
        freed
    }

    /// Everything lent, taken out (at shutdown).
    #[must_use]
    pub(crate) fn clear(&self) -> Vec<V> {
        lock(&self.map).drain().map(|(_, (v, _))| v).collect()
    }

    /// How many things are lent.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_borrow_ending_gives_the_value_back() {
        let l = Lent::new();
        assert!(l.add(7, 1, "x"));
        assert!(l.add(7, 2, "x"));
        assert_eq!(l.remove(7, 1), None);
        assert_eq!(l.get(7), Some("x"));
        assert_eq!(l.remove(7, 2), Some("x"));
        assert_eq!(l.get(7), None);
        assert_eq!(l.remove(7, 2), None, "an unknown id is ignored");
    }

    #[test]
    fn a_borrow_that_overtook_the_end_of_the_old_one_keeps_the_value() {
        let l = Lent::new();
        assert!(l.add(7, 1, "x"));
        assert!(!l.add(7, 1, "x"), "rank 1 is listed already"); // the new borrow arrived first
        assert_eq!(l.remove(7, 1), None, "the old one's end");
        assert_eq!(l.remove(7, 1), Some("x"));
    }

    #[test]
    fn a_lost_rank_s_borrows_end() {
        let l = Lent::new();
        l.add(1, 3, "a");
        l.add(2, 3, "b");
        l.add(2, 4, "b");
        l.add(3, 4, "c");
        let mut freed = l.drop_rank(3);
        freed.sort_unstable();
        assert_eq!(freed, vec!["a"]);
        assert_eq!(l.len(), 2);
        assert_eq!(l.remove(2, 4), Some("b"));
    }
}
