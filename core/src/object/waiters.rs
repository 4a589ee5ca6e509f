//! The waiters of one object: the first two kept inline, since most
//! objects have one or two consumers (a task's output read by the next
//! step's tasks), so registering them allocates nothing; later ones go in a
//! list.

/// Waiters in the order they were added.
pub(crate) struct Waiters<T> {
    inline: [Option<T>; 2],
    more: Vec<T>,
}

impl<T> Waiters<T> {
    pub(crate) const fn new() -> Self {
        Waiters {
            inline: [None, None],
            more: Vec::new(),
        }
    }

    /// Calls `f` on the waiters kept inline (the first ones).
    pub(crate) fn for_each_first(&self, f: impl FnMut(&T)) {
        self.inline.iter().flatten().for_each(f);
    }

    pub(crate) fn push(&mut self, w: T) {
        match self.inline.iter_mut().find(|s| s.is_none()) {
            // Inline places fill first, and only `take` empties them, so
            // nothing in `more` was added before this.
            Some(free) => *free = Some(w),
            None => self.more.push(w),
        }
    }

    /// Takes every waiter out, in the order they were added.
    pub(crate) fn take(&mut self) -> impl Iterator<Item = T> + use<T> {
        let inline = std::mem::take(&mut self.inline);
        let more = std::mem::take(&mut self.more);
        inline.into_iter().flatten().chain(more)
    }
}

#[cfg(test)]
mod tests {
    use super::Waiters;

    #[test]
    fn waiters_come_out_in_the_order_they_went_in() {
        for n in 0..6 {
            let mut w = Waiters::new();
            for i in 0..n {
                w.push(i);
            }
            assert_eq!(w.take().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
            // Taken: empty again, and usable again.
            assert_eq!(w.take().count(), 0);
            w.push(7);
            assert_eq!(w.take().collect::<Vec<_>>(), vec![7]);
        }
    }

    #[test]
    fn the_first_waiters_are_visited_in_order_and_kept() {
        let mut w = Waiters::new();
        for i in 0..5 {
            w.push(i);
        }
        let mut seen = Vec::new();
        w.for_each_first(|&i| seen.push(i));
        assert_eq!(seen, vec![0, 1]);
        assert_eq!(w.take().collect::<Vec<_>>(), (0..5).collect::<Vec<_>>());
    }
}
