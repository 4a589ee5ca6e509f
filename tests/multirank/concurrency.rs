//! Concurrent and async actors on another rank: `max_concurrency` crosses
//! with the actor's options; calls meet inside the actor (ranks may be
//! processes, so the rendezvous is the actor's own state).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ferry::{Error, ObjectRef, Runtime};

use super::{BOUND, here, last};

/// A threaded actor: its `&self` calls meet inside it.
#[ferry::actor]
struct Meeting {
    arrived: Mutex<u64>,
    moved: Condvar,
    entries: Vec<u64>,
}

#[ferry::actor]
impl Meeting {
    fn new() -> Self {
        Meeting {
            arrived: Mutex::new(0),
            moved: Condvar::new(),
            entries: Vec::new(),
        }
    }

    /// Arrives and waits (at most [`BOUND`] seconds) until `n` calls have:
    /// true only when `n` calls ran at the same time; and the rank.
    fn meet(&self, n: u64) -> (bool, u32) {
        let deadline = Instant::now() + Duration::from_secs(BOUND);
        let mut a = self.arrived.lock().unwrap();
        *a += 1;
        self.moved.notify_all();
        while *a < n {
            let now = Instant::now();
            if now >= deadline {
                return (false, here());
            }
            a = self.moved.wait_timeout(a, deadline - now).unwrap().0;
        }
        (true, here())
    }

    fn push(&mut self, x: u64) -> u64 {
        self.entries.push(x);
        self.entries.len() as u64
    }

    fn entries(&self) -> Vec<u64> {
        self.entries.clone()
    }
}

/// An async actor whose calls meet at a latch inside it.
#[ferry::actor]
struct Loop {
    arrived: Cell<u64>,
    waiting: RefCell<Vec<Waker>>,
}

/// Pending until `n` calls have arrived.
struct Latch<'a> {
    at: &'a Loop,
    n: u64,
}

impl Future for Latch<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.at.arrived.get() >= self.n {
            self.at.waiting.borrow_mut().drain(..).for_each(Waker::wake);
            Poll::Ready(())
        } else {
            self.at.waiting.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[ferry::actor]
impl Loop {
    fn new() -> Self {
        Loop {
            arrived: Cell::new(0),
            waiting: RefCell::new(Vec::new()),
        }
    }

    async fn meet(&self, n: u64) -> u32 {
        self.arrived.set(self.arrived.get() + 1);
        Latch { at: self, n }.await;
        here()
    }

    /// Awaits an object owned by another rank.
    async fn relay(&self, refs: Vec<ObjectRef<u64>>) -> u64 {
        let v = refs[0].clone().await.expect("the awaited object");
        v.deserialize().expect("a u64") + 1
    }
}

/// Three `&self` calls run at once on the last rank (the default, 1, would
/// let none meet); `&mut self` calls there keep their order.
pub(super) fn a_threaded_actor_on_another_rank_runs_calls_at_once(
    rt: &Runtime,
) -> ferry::Result<()> {
    let host = last(rt);
    let m = Meeting::options()
        .on_rank(host)
        .max_concurrency(3)
        .remote(rt)?;
    assert_eq!(m.actor_rank(), host);
    let refs: Vec<_> = (0..3)
        .map(|_| m.meet(3).remote())
        .collect::<ferry::Result<_>>()?;
    for r in &refs {
        assert_eq!(rt.get_value(r)?, (true, host), "3 calls met on rank {host}");
    }
    let pushed: Vec<_> = (0..20)
        .map(|i| m.push(i).remote())
        .collect::<ferry::Result<_>>()?;
    for (i, r) in pushed.iter().enumerate() {
        assert_eq!(*rt.get(r)?, i as u64 + 1);
    }
    let all: Vec<u64> = (0..20).collect();
    assert_eq!(rt.get(&m.entries().remote()?)?.as_slice(), all.as_slice());
    m.kill();
    Ok(())
}

/// An async actor on the last rank keeps many calls in flight, awaits an
/// object of rank 0 there, and its `max_concurrency` crossed with it.
pub(super) fn an_async_actor_on_another_rank_interleaves_its_calls(
    rt: &Runtime,
) -> ferry::Result<()> {
    let host = last(rt);
    let l = Loop::options().on_rank(host).remote(rt)?;
    let refs: Vec<_> = (0..20)
        .map(|_| l.meet(20).remote())
        .collect::<ferry::Result<_>>()?;
    for r in &refs {
        assert_eq!(*rt.get(r)?, host);
    }
    let owned = rt.put(&41u64)?;
    assert_eq!(*rt.get(&l.relay(vec![owned]).remote()?)?, 42);
    l.kill();
    // With 2 in flight at most, 3 never meet.
    let bounded = Loop::options()
        .on_rank(host)
        .max_concurrency(2)
        .remote(rt)?;
    let refs: Vec<_> = (0..3)
        .map(|_| bounded.meet(3).remote())
        .collect::<ferry::Result<_>>()?;
    let (ready, _) = rt.wait(&refs, 1, Some(Duration::from_millis(300)))?;
    assert!(
        ready.is_empty(),
        "max_concurrency did not reach rank {host}"
    );
    bounded.kill();
    for r in &refs {
        match rt.get_timeout(r, Duration::from_secs(BOUND)) {
            Err(Error::ActorDied { .. }) => {}
            other => panic!("killed: expected ActorDied, got {:?}", other.map(|v| *v)),
        }
    }
    Ok(())
}
