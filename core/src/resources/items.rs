//! A request's amounts per resource, kept inline when there are few.
//!
//! Most tasks ask for one or two resources (CPU, perhaps a GPU); a list on
//! the heap for each task, and another for the copy its running context
//! holds, were two of the allocations every task made.

use std::ops::{Deref, DerefMut};

/// Amounts kept inline up to this many.
const INLINE: usize = 3;

/// (resource index, fixed-point amount) pairs.
#[derive(Clone)]
pub(crate) enum Items {
    Inline { len: u8, at: [(usize, i64); INLINE] },
    Heap(Vec<(usize, i64)>),
}

impl Default for Items {
    fn default() -> Items {
        Items::Inline {
            len: 0,
            at: [(0, 0); INLINE],
        }
    }
}

impl Items {
    pub(crate) fn push(&mut self, item: (usize, i64)) {
        match self {
            Items::Inline { len, at } if usize::from(*len) < INLINE => {
                at[usize::from(*len)] = item;
                *len += 1;
            }
            Items::Inline { len, at } => {
                let mut v = at[..usize::from(*len)].to_vec();
                v.push(item);
                *self = Items::Heap(v);
            }
            Items::Heap(v) => v.push(item),
        }
    }
}

impl Deref for Items {
    type Target = [(usize, i64)];

    fn deref(&self) -> &[(usize, i64)] {
        match self {
            Items::Inline { len, at } => &at[..usize::from(*len)],
            Items::Heap(v) => v,
        }
    }
}

impl DerefMut for Items {
    fn deref_mut(&mut self) -> &mut [(usize, i64)] {
        match self {
            Items::Inline { len, at } => &mut at[..usize::from(*len)],
            Items::Heap(v) => v,
        }
    }
}

impl<'a> IntoIterator for &'a Items {
    type Item = &'a (usize, i64);
    type IntoIter = std::slice::Iter<'a, (usize, i64)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl FromIterator<(usize, i64)> for Items {
    fn from_iter<I: IntoIterator<Item = (usize, i64)>>(iter: I) -> Items {
        let mut items = Items::default();
        for item in iter {
            items.push(item);
        }
        items
    }
}

impl PartialEq for Items {
    fn eq(&self, other: &Items) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Items {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_stay_in_order_past_the_inline_ones() {
        let mut items = Items::default();
        assert!(items.is_empty());
        for i in 0..5 {
            items.push((i, i as i64 * 10));
            assert!(matches!(items, Items::Inline { .. }) == (i < INLINE));
        }
        assert_eq!(&*items, &[(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]);
        items.sort_unstable_by_key(|&(_, a)| -a);
        assert_eq!(items[0], (4, 40));
        let few: Items = [(2, 5), (1, 7)].into_iter().collect();
        let copy = few.clone();
        assert_eq!(few, copy);
        assert_eq!(format!("{few:?}"), "[(2, 5), (1, 7)]");
    }
}
