//! A one-thread executor for an async actor (Ray's asyncio event loop):
//! the futures of its `async fn` calls, polled on the actor's thread only
//! when their waker fired.
//!
//! # Protocol
//!
//! 1. `spawn` keeps a future under a new id, to be polled at the next
//!    `run_ready`.
//! 2. A future's waker (one per future, `std::task::Wake`) pushes its id to
//!    the ready list, sets `any` and unparks the actor thread; the thread
//!    looks at `any` before it parks, and an unpark that comes first makes
//!    the park return at once, so no wake-up is lost.
//! 3. `run_ready` clears `any`, takes the ready ids and polls each future
//!    still kept (a panic in a poll ends that future as its outcome); a
//!    future that finished is dropped and handed back with its tag.
//! 4. `cancel_all` drops every future still kept and hands back the tags
//!    (their calls are then failed by the caller).

use std::collections::HashMap;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use crate::sync::lock;

/// A future kept by the executor, with its tag and its waker.
struct Task<K, T> {
    tag: K,
    future: Pin<Box<dyn Future<Output = T>>>,
    waker: Waker,
}

/// The ids whose wakers fired.
struct Ready {
    ids: Mutex<Vec<u64>>,
    /// Set with every push (so the thread can look without the lock).
    any: AtomicBool,
    thread: Thread,
}

/// The waker of one future.
struct TaskWaker {
    id: u64,
    ready: Arc<Ready>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.ready.ids).push(self.id);
        // SeqCst: the actor thread's look at `any` before it parks pairs
        // with this store; the unpark below covers a park already begun.
        self.ready.any.store(true, Ordering::SeqCst);
        self.ready.thread.unpark();
    }
}

/// The futures in flight on one thread, each with a tag `K`; each ends in
/// a `T` (or the panic of its poll).
pub(crate) struct Executor<K, T> {
    tasks: HashMap<u64, Task<K, T>>,
    /// Spawned and not polled yet.
    fresh: Vec<u64>,
    next: u64,
    ready: Arc<Ready>,
}

impl<K, T> Executor<K, T> {
    /// An executor whose wakers unpark `thread` (the one that runs it).
    pub(crate) fn new(thread: Thread) -> Executor<K, T> {
        Executor {
            tasks: HashMap::new(),
            fresh: Vec::new(),
            next: 0,
            ready: Arc::new(Ready {
                ids: Mutex::new(Vec::new()),
                any: AtomicBool::new(false),
                thread,
            }),
        }
    }

    /// Futures in flight.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Whether some future is due a poll.
    pub(crate) fn has_ready(&self) -> bool {
        !self.fresh.is_empty() || self.ready.any.load(Ordering::SeqCst)
    }

    /// Step 1: keeps `future`, tagged `tag`, to be polled.
    pub(crate) fn spawn(&mut self, tag: K, future: Pin<Box<dyn Future<Output = T>>>) {
        let id = self.next;
        self.next += 1;
        let waker = Waker::from(Arc::new(TaskWaker {
            id,
            ready: self.ready.clone(),
        }));
        self.tasks.insert(id, Task { tag, future, waker });
        self.fresh.push(id);
    }

    /// Step 3: polls every future due a poll; those that finished, with
    /// their tags and outcomes.
    pub(crate) fn run_ready(&mut self) -> Vec<(K, std::thread::Result<T>)> {
        let mut due = std::mem::take(&mut self.fresh);
        if self.ready.any.swap(false, Ordering::SeqCst) {
            due.append(&mut lock(&self.ready.ids));
        }
        let mut done = Vec::new();
        for id in due {
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            let mut cx = Context::from_waker(&task.waker);
            let polled =
                panic::catch_unwind(AssertUnwindSafe(|| task.future.as_mut().poll(&mut cx)));
            let outcome = match polled {
                Ok(Poll::Pending) => continue,
                Ok(Poll::Ready(v)) => Ok(v),
                Err(p) => Err(p),
            };
            if let Some(task) = self.tasks.remove(&id) {
                // The future (and what it holds) is gone before the tag is handed back.
                drop(task.future);
                done.push((task.tag, outcome));
            }
        }
        done
    }

    /// Step 4: drops every future in flight; their tags.
    pub(crate) fn cancel_all(&mut self) -> Vec<K> {
        self.fresh.clear();
        self.tasks.drain().map(|(_, t)| t.tag).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// Pending until `open` is set, then woken by whoever sets it.
    struct Gate {
        open: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            *lock(&self.waker) = Some(cx.waker().clone());
            if self.open.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[test]
    fn a_future_is_polled_again_only_when_woken_and_its_tag_comes_back() {
        let mut ex: Executor<&str, u32> = Executor::new(std::thread::current());
        let open = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Mutex::new(None::<Waker>));
        let polls = Rc::new(Cell::new(0));
        let (o, w, p) = (open.clone(), waker.clone(), polls.clone());
        ex.spawn(
            "gated",
            Box::pin(async move {
                p.set(p.get() + 1);
                Gate { open: o, waker: w }.await;
                7
            }),
        );
        ex.spawn("at once", Box::pin(async { 1 }));
        let done = ex.run_ready();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, "at once");
        assert_eq!(ex.len(), 1);
        assert!(!ex.has_ready(), "nothing woke the gated future");
        assert!(ex.run_ready().is_empty());
        open.store(true, Ordering::SeqCst);
        let wk = lock(&waker).take().expect("the gate kept its waker");
        std::thread::spawn(move || wk.wake()).join().unwrap();
        assert!(ex.has_ready());
        let done = ex.run_ready();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, "gated");
        assert_eq!(*done[0].1.as_ref().unwrap(), 7);
        assert!(ex.is_empty());
        assert_eq!(polls.get(), 1);
    }

    #[test]
    fn a_panicking_future_ends_with_its_panic_and_cancel_hands_back_tags() {
        let mut ex: Executor<u8, ()> = Executor::new(std::thread::current());
        ex.spawn(1, Box::pin(async { panic!("boom") }));
        ex.spawn(2, Box::pin(std::future::pending()));
        let done = ex.run_ready();
        assert_eq!(done.len(), 1);
        assert!(done[0].1.is_err());
        assert_eq!(ex.cancel_all(), vec![2]);
        assert!(ex.is_empty());
    }
}
