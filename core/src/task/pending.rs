//! The tasks waiting for resources, grouped by what they ask.
//!
//! A task whose resources are not free when it becomes ready waits here
//! until a release grants it. Every release (and every task that joins the
//! wait) looks for what fits now: oldest first, passing over a task whose
//! request cannot be granted to reach younger ones that ask for less
//! (backfilling), and, past the first request that does not fit, looking at
//! a bounded number more.
//!
//! The tasks are kept in classes, one FIFO queue per distinct request, as
//! Ray keeps its scheduling classes: a request that does not fit fails once
//! for its whole class. Looking at the waiting tasks one by one instead, a
//! lone worker finishing one of thousands of waiting 1-CPU tasks compared
//! the next 64 requests with the one that failed, under the lock the
//! submitting thread needed for its next task: a third of the worker's time
//! in a run of small independent tasks (Task Bench's `trivial` on one CPU).
//!
//! The order is the one a single queue would give: classes are visited by
//! the age of their oldest task (a list of the classes' oldest tasks' numbers,
//! kept sorted), so grants still go oldest first among the requests that fit.

use std::collections::{HashMap, VecDeque};

use crate::resources::ledger::Request;
use crate::uncounted::List;

/// How many classes are kept once empty, so that a run of tasks that wait
/// one at a time does not make and unmake its class each time.
const KEPT_EMPTY: usize = 16;

/// A waiting task: what it asks for.
pub(crate) trait Asks {
    fn asks(&self) -> &Request;
}

/// One class: the tasks asking for `request`, oldest first, each with its
/// number in the order the tasks came.
struct Class<T> {
    request: Request,
    tasks: VecDeque<(u64, T)>,
}

/// Tasks waiting for resources (see the module).
pub(crate) struct Pending<T> {
    /// The classes that hold tasks, by index (`None`: a free index).
    classes: Vec<Option<Class<T>>>,
    free: Vec<usize>,
    by_request: HashMap<Request, usize>,
    /// The class the last task pushed went to: tasks come in runs of one
    /// request, and comparing with it costs less than hashing.
    last: usize,
    /// Each class's oldest task's number with its class, youngest first
    /// (the oldest is popped, a class's next task is younger).
    heads: Vec<(u64, usize)>,
    next: u64,
    len: usize,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            classes: Vec::new(),
            free: Vec::new(),
            by_request: HashMap::new(),
            last: usize::MAX,
            heads: Vec::new(),
            next: 0,
            len: 0,
        }
    }
}

impl<T: Asks> Pending<T> {
    /// How many tasks wait.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The number of the oldest task waiting (tasks are numbered in the
    /// order they come, from 0), `u64::MAX` when none does.
    pub(crate) fn oldest(&self) -> u64 {
        self.heads.last().map_or(u64::MAX, |&(n, _)| n)
    }

    /// The number the next task to come will have.
    pub(crate) fn next_number(&self) -> u64 {
        self.next
    }

    /// Adds `task` as the youngest.
    pub(crate) fn push(&mut self, task: T) {
        let n = self.next;
        self.next += 1;
        self.len += 1;
        let known = match self.classes.get_mut(self.last) {
            Some(Some(class)) if class.request == *task.asks() => Some(self.last),
            _ => self.by_request.get(task.asks()).copied(),
        };
        if let Some(c) = known {
            let class = self.classes[c].as_mut().expect("listed classes exist");
            if class.tasks.is_empty() {
                // A kept empty class: its task is the youngest of all.
                self.heads.insert(0, (n, c));
            }
            class.tasks.push_back((n, task));
            self.last = c;
            return;
        }
        let request = task.asks().clone();
        let class = Class {
            request: request.clone(),
            tasks: VecDeque::from([(n, task)]),
        };
        let c = match self.free.pop() {
            Some(c) => {
                self.classes[c] = Some(class);
                c
            }
            None => {
                self.classes.push(Some(class));
                self.classes.len() - 1
            }
        };
        self.by_request.insert(request, c);
        self.last = c;
        // The youngest task of all: the front of the list.
        self.heads.insert(0, (n, c));
    }

    /// Takes the tasks that `try_grant` grants, oldest first, into
    /// `granted` with what each grant gave; a class whose request is
    /// refused keeps its tasks, and after `most_refused` refusals the
    /// search stops.
    pub(crate) fn grant(
        &mut self,
        most_refused: usize,
        mut try_grant: impl FnMut(&Request) -> Option<List<u32>>,
        granted: &mut Vec<(T, List<u32>)>,
    ) {
        let mut refused = 0;
        // The classes at `heads[at..]` are the oldest and were refused (a
        // granted class's next task is younger than its last, so it moves
        // towards the front, past them).
        let mut at = self.heads.len();
        while at > 0 {
            let (_, c) = self.heads[at - 1];
            let class = self.classes[c].as_ref().expect("listed classes exist");
            let Some(gpus) = try_grant(&class.request) else {
                refused += 1;
                if refused >= most_refused {
                    return;
                }
                at -= 1;
                continue;
            };
            let (task, emptied) = self.pop_head(at - 1);
            if emptied {
                at -= 1;
            }
            granted.push((task, gpus));
        }
    }

    /// Takes the oldest waiting task of all if it asks for exactly `req`:
    /// the one a release of `req` would grant first (see
    /// `Scheduler::take_pending_for`).
    pub(crate) fn take_oldest_if(&mut self, req: &Request) -> Option<T> {
        let &(_, c) = self.heads.last()?;
        let class = self.classes[c].as_ref().expect("listed classes exist");
        if class.request != *req {
            return None;
        }
        Some(self.pop_head(self.heads.len() - 1).0)
    }

    /// Takes the oldest task of the class at `heads[i]`, and moves the
    /// class to its next task's place in `heads` (towards the front: it is
    /// younger), or drops it from `heads` when it is empty (true).
    fn pop_head(&mut self, i: usize) -> (T, bool) {
        let (_, c) = self.heads.remove(i);
        let class = self.classes[c].as_mut().expect("listed classes exist");
        let (_, task) = class.tasks.pop_front().expect("a listed class holds tasks");
        self.len -= 1;
        match class.tasks.front() {
            Some(&(younger, _)) => {
                let to = self.heads[..i].partition_point(|&(h, _)| h > younger);
                self.heads.insert(to, (younger, c));
                (task, false)
            }
            None => {
                if self.classes.len() - self.free.len() > KEPT_EMPTY {
                    self.close(c);
                }
                (task, true)
            }
        }
    }

    /// Takes every waiting task (shutdown).
    pub(crate) fn take_all(&mut self) -> Vec<T> {
        let tasks = self
            .classes
            .drain(..)
            .flatten()
            .flat_map(|c| c.tasks.into_iter().map(|(_, t)| t))
            .collect();
        *self = Pending {
            next: self.next,
            ..Pending::default()
        };
        tasks
    }

    /// Forgets class `c`, now empty.
    fn close(&mut self, c: usize) {
        if let Some(class) = self.classes[c].take() {
            self.by_request.remove(&class.request);
        }
        self.free.push(c);
    }

    /// How many classes are kept (for tests).
    #[cfg(test)]
    fn classes(&self) -> usize {
        self.classes.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ledger::Ledger;

    /// A test task: its name and its request.
    struct Task(&'static str, Request);

    impl Asks for Task {
        fn asks(&self) -> &Request {
            &self.1
        }
    }

    fn ledger() -> Ledger {
        Ledger::new(vec![
            ("CPU".into(), 4.0),
            ("GPU".into(), 0.0),
            ("memory".into(), 0.0),
        ])
    }

    fn cpus(l: &Ledger, n: f64) -> Request {
        l.request("test", &[("CPU", n)]).unwrap()
    }

    /// Grants against `l`'s free amounts, as the scheduler does.
    fn grant_from(l: &Ledger, p: &mut Pending<Task>, most: usize) -> Vec<&'static str> {
        let mut out = Vec::new();
        p.grant(most, |r| l.try_acquire(r).then(List::empty), &mut out);
        out.into_iter().map(|(t, _)| t.0).collect()
    }

    #[test]
    fn only_the_oldest_task_is_taken_and_only_for_its_own_request() {
        let l = ledger();
        let (one, two) = (cpus(&l, 1.0), cpus(&l, 2.0));
        let mut p = Pending::default();
        assert!(p.take_oldest_if(&one).is_none(), "nothing waits");
        assert_eq!((p.oldest(), p.next_number()), (u64::MAX, 0));
        p.push(Task("b1", two.clone()));
        p.push(Task("a1", one.clone()));
        p.push(Task("a2", one.clone()));
        assert_eq!((p.oldest(), p.next_number()), (0, 3));
        // The oldest asks for two CPUs: one CPU handed on takes nothing,
        // though younger tasks ask for one.
        assert!(p.take_oldest_if(&one).is_none());
        assert_eq!(p.take_oldest_if(&two).map(|t| t.0), Some("b1"));
        assert_eq!(p.take_oldest_if(&one).map(|t| t.0), Some("a1"));
        assert_eq!(p.len(), 1);
        assert_eq!(p.oldest(), 2, "a2's number");
        // Those left are granted in their order, as before.
        p.push(Task("b2", two.clone()));
        assert_eq!(grant_from(&l, &mut p, 64), ["a2", "b2"]);
        assert_eq!(p.len(), 0);
        assert!(p.take_oldest_if(&one).is_none());
    }

    #[test]
    fn grants_go_oldest_first_and_pass_over_what_does_not_fit() {
        let l = ledger();
        let (one, two, three) = (cpus(&l, 1.0), cpus(&l, 2.0), cpus(&l, 3.0));
        let mut p = Pending::default();
        p.push(Task("a1", one.clone()));
        p.push(Task("c1", three.clone()));
        p.push(Task("b1", two.clone()));
        p.push(Task("a2", one.clone()));
        p.push(Task("a3", one.clone()));
        // 4 CPUs: a1 (3 left), c1 (0 left): nothing more fits.
        assert_eq!(grant_from(&l, &mut p, 64), ["a1", "c1"]);
        assert_eq!(p.len(), 3);
        // 3 CPUs back: b1 (the oldest left) then a2; a3 does not fit.
        l.release(&three);
        assert_eq!(grant_from(&l, &mut p, 64), ["b1", "a2"]);
        l.release(&one);
        l.release(&one);
        // 2 free: a3, the last.
        assert_eq!(grant_from(&l, &mut p, 64), ["a3"]);
        assert_eq!(p.len(), 0);
        assert_eq!(grant_from(&l, &mut p, 64), Vec::<&str>::new());
    }

    #[test]
    fn a_refused_request_is_refused_once_for_its_whole_class() {
        let l = ledger();
        let (one, three) = (cpus(&l, 1.0), cpus(&l, 3.0));
        assert!(l.try_acquire(&three));
        let mut p = Pending::default();
        for _ in 0..100 {
            p.push(Task("big", three.clone()));
        }
        p.push(Task("small", one.clone()));
        let mut asked = Vec::new();
        let mut out = Vec::new();
        p.grant(
            64,
            |r| {
                asked.push(r.clone());
                l.try_acquire(r).then(List::empty)
            },
            &mut out,
        );
        // One refusal for the 100 big ones, then the small one fits.
        assert_eq!(asked, [three.clone(), one.clone()]);
        assert_eq!(out.len(), 1);
        assert_eq!(p.len(), 100);
    }

    #[test]
    fn the_search_stops_after_the_most_refusals() {
        let l = ledger();
        assert!(l.try_acquire(&cpus(&l, 4.0)));
        let mut p = Pending::default();
        let asks: Vec<Request> = (1..=3).map(|i| cpus(&l, 0.25 * i as f64)).collect();
        for a in &asks {
            p.push(Task("waits", a.clone()));
        }
        let mut tries = 0;
        let mut out = Vec::new();
        p.grant(
            2,
            |_| {
                tries += 1;
                None
            },
            &mut out,
        );
        assert_eq!(tries, 2);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn an_emptied_class_is_made_again_behind_younger_ones() {
        let l = ledger();
        let (one, two) = (cpus(&l, 1.0), cpus(&l, 2.0));
        let mut p = Pending::default();
        p.push(Task("a1", one.clone()));
        assert_eq!(grant_from(&l, &mut p, 64), ["a1"]);
        assert!(l.try_acquire(&cpus(&l, 3.0)));
        p.push(Task("b1", two.clone()));
        p.push(Task("a2", one.clone()));
        l.release(&cpus(&l, 2.0));
        l.release(&one);
        // 3 free: b1 is older than the new a2.
        assert_eq!(grant_from(&l, &mut p, 64), ["b1", "a2"]);
    }

    #[test]
    fn empty_classes_are_kept_up_to_a_bound() {
        let l = ledger();
        let mut p = Pending::default();
        let asks: Vec<Request> = (1..=40).map(|i| cpus(&l, 0.001 * i as f64)).collect();
        for (i, a) in asks.iter().enumerate() {
            p.push(Task(["x", "y"][i % 2], a.clone()));
        }
        assert_eq!(p.classes(), 40);
        let granted = grant_from(&l, &mut p, 64);
        assert_eq!(granted.len(), 40);
        assert_eq!(p.len(), 0);
        assert_eq!(p.classes(), KEPT_EMPTY);
        for a in &asks {
            l.release(a);
        }
        // A kept class (the last ones emptied are kept) and a new one both
        // take tasks again, oldest first.
        assert!(l.try_acquire(&cpus(&l, 4.0)));
        p.push(Task("new", cpus(&l, 0.5)));
        p.push(Task("kept", asks[39].clone()));
        assert_eq!(p.classes(), KEPT_EMPTY + 1);
        l.release(&cpus(&l, 4.0));
        assert_eq!(grant_from(&l, &mut p, 64), ["new", "kept"]);
    }

    #[test]
    fn take_all_empties_every_class() {
        let l = ledger();
        let mut p = Pending::default();
        p.push(Task("a", cpus(&l, 1.0)));
        p.push(Task("b", cpus(&l, 2.0)));
        p.push(Task("c", cpus(&l, 1.0)));
        let mut all: Vec<_> = p.take_all().into_iter().map(|t| t.0).collect();
        all.sort_unstable();
        assert_eq!(all, ["a", "b", "c"]);
        assert_eq!(p.len(), 0);
        assert_eq!(grant_from(&l, &mut p, 64), Vec::<&str>::new());
        p.push(Task("d", cpus(&l, 1.0)));
        assert_eq!(grant_from(&l, &mut p, 64), ["d"]);
    }
}
