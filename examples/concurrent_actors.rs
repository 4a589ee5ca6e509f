//! "Threaded Actors" of Ray's documentation
//! (<https://docs.ray.io/en/latest/ray-core/actors/async_api.html#threaded-actors>):
//! `max_concurrency` above 1 on an actor without async methods runs its
//! calls on that many threads at once. In Ferry those are the `&self`
//! methods (the class must be `Sync`); `&mut self` methods still run alone,
//! in the order they were made.
//!
//! Run it with `cargo run --example concurrent_actors` (or under `mpirun`).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The documentation's threaded actor, with a rendezvous that only calls
/// running at the same time can pass.
#[ferry::actor]
struct ThreadedActor {
    arrived: Mutex<u32>,
    moved: Condvar,
    calls: u64,
}

impl ThreadedActor {
    /// Waits (at most 30 s) until `n` calls have arrived; whether they did.
    fn meet(&self, n: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut a = self.arrived.lock().unwrap();
        *a += 1;
        self.moved.notify_all();
        while *a < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            a = self.moved.wait_timeout(a, deadline - now).unwrap().0;
        }
        true
    }
}

#[ferry::actor]
impl ThreadedActor {
    fn new() -> Self {
        ThreadedActor {
            arrived: Mutex::new(0),
            moved: Condvar::new(),
            calls: 0,
        }
    }

    fn task_1(&self) -> String {
        assert!(self.meet(2), "task_2 did not run at the same time");
        println!("I'm running in a thread!");
        "task_1".to_string()
    }

    fn task_2(&self) -> String {
        assert!(self.meet(2), "task_1 did not run at the same time");
        println!("I'm running in another thread!");
        "task_2".to_string()
    }

    /// A `&mut self` method: runs alone, in order.
    fn count(&mut self) -> u64 {
        self.calls += 1;
        self.calls
    }
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let a = ThreadedActor::options().max_concurrency(2).remote(&rt)?;
    let refs = [a.task_1().remote()?, a.task_2().remote()?];
    let done: Vec<String> = refs
        .iter()
        .map(|r| rt.get_value(r))
        .collect::<ferry::Result<_>>()?;
    assert_eq!(done, ["task_1", "task_2"]);
    let counts: Vec<u64> = (0..5)
        .map(|_| a.count().remote())
        .collect::<ferry::Result<Vec<_>>>()?
        .iter()
        .map(|r| rt.get_value(r))
        .collect::<ferry::Result<_>>()?;
    println!("&mut self calls, in order: {counts:?}");
    assert_eq!(counts, [1, 2, 3, 4, 5]);

    // A class that is not Sync cannot run on several threads.
    let refused = NotSync::options().max_concurrency(2).remote(&rt);
    assert!(matches!(refused, Err(ferry::Error::NotSync { .. })));
    println!("a class that is not Sync: {}", refused.err().unwrap());
    Ok(())
}

/// Not `Sync` (a `Cell`).
#[ferry::actor]
struct NotSync {
    n: std::cell::Cell<u64>,
}

#[ferry::actor]
impl NotSync {
    fn new() -> Self {
        NotSync {
            n: std::cell::Cell::new(0),
        }
    }

    fn get(&self) -> u64 {
        self.n.get()
    }
}
