//! Tasks and objects across ranks (DESIGN.md "Transfers", issue: Ferry
//! across ranks): a task placed on each rank, an object made on one rank
//! and summed by a task on another (the ref is borrowed from its owner and
//! the bytes move by a one-sided read), refs returned across ranks, and
//! actors: one on every rank, called from rank 0 and from a task on another
//! rank that passes it a ref owned by a third.
//!
//! Runs unchanged on one rank (`cargo run --example cross_rank`) and on many
//! (`mpirun -n 3 target/release/examples/cross_rank`, built with `--features mpi`).

use ferry::{ActorHandle, ObjectRef, Runtime, View};

/// A running total that lives on one rank.
#[ferry::actor]
struct Total {
    sum: u64,
    calls: u64,
}

#[ferry::actor]
impl Total {
    fn new(start: u64) -> Self {
        Total {
            sum: start,
            calls: 0,
        }
    }

    /// Adds `x` and says where the actor lives and how many calls it has had.
    fn add(&mut self, x: u64) -> (u64, u64, u32) {
        self.sum += x;
        self.calls += 1;
        let rank = ferry::current().map_or(u32::MAX, |rt| rt.rank());
        (self.sum, self.calls, rank)
    }
}

/// Calls `total` (an actor, maybe on another rank) with the first element
/// of `xs` (maybe owned by a third rank); says where this ran.
#[ferry::remote]
fn add_first(
    rt: &Runtime,
    total: ActorHandle<Total>,
    xs: Vec<ObjectRef<Vec<u64>>>,
) -> ferry::Result<((u64, u64, u32), u32)> {
    let first = rt.get(&xs[0])?.as_slice()[1];
    Ok((rt.get_value(&total.add(first).remote()?)?, rt.rank()))
}

/// The rank this runs on.
#[ferry::remote]
fn where_am_i(rt: &Runtime) -> u32 {
    rt.rank()
}

/// A vector of `n` numbers, made (and owned) where this runs.
#[ferry::remote]
fn make(rt: &Runtime, n: u64) -> ferry::Result<(Vec<ObjectRef<Vec<u64>>>, u32)> {
    let v = rt.put_vec_with::<u64>(n as usize, |xs| {
        for (i, x) in xs.iter_mut().enumerate() {
            *x = i as u64;
        }
    })?;
    Ok((vec![v], rt.rank()))
}

/// Sums a vector that may live on another rank.
#[ferry::remote]
fn sum(rt: &Runtime, xs: View<Vec<u64>>) -> (u64, u32) {
    (xs.as_slice().iter().sum(), rt.rank())
}

#[ferry::main]
fn main(rt: Runtime) -> ferry::Result<()> {
    let ranks = rt.world_size();
    println!(
        "{ranks} rank(s); cluster CPUs: {}",
        rt.cluster_resources()["CPU"]
    );

    // One task pinned on every rank.
    for r in 0..ranks {
        let at = where_am_i::options().on_rank(r).remote(&rt)?;
        assert_eq!(rt.get_value(&at)?, r);
    }
    println!("a task ran on each of the {ranks} rank(s)");

    // An object made on the last rank, summed on rank 1 (or 0), read here.
    let n = 1u64 << 20; // 8 MiB: moved by a one-sided read, not in a message
    let maker = ranks - 1;
    let summer = 1.min(ranks - 1);
    let made = make::options().on_rank(maker).remote(&rt, n)?;
    let (refs, made_on) = {
        let view = rt.get(&made)?;
        let refs: Vec<ObjectRef<Vec<u64>>> = view
            .0
            .iter()
            .map(|a| a.to_ref())
            .collect::<ferry::Result<_>>()?;
        (refs, view.1.to_native())
    };
    assert_eq!(made_on, maker);
    let data = &refs[0];
    let total = sum::options().on_rank(summer).remote(&rt, data)?;
    let (s, on) = rt.get_value(&total)?;
    assert_eq!(s, n * (n - 1) / 2);
    assert_eq!(on, summer);
    let here = rt.get(data)?;
    assert_eq!(here.as_slice().len() as u64, n);
    assert_eq!(here.as_slice()[12345], 12345);
    println!("{n} numbers made on rank {maker}, summed on rank {summer} ({s}), read on rank 0");

    // An actor on every rank; calls from rank 0 run in order on each.
    let totals: Vec<ActorHandle<Total>> = (0..ranks)
        .map(|r| Total::options().on_rank(r).remote(&rt, 100 * u64::from(r)))
        .collect::<ferry::Result<_>>()?;
    for (r, t) in totals.iter().enumerate() {
        assert_eq!(t.actor_rank(), r as u32);
        let calls: Vec<_> = (1..=10)
            .map(|x| t.add(x).remote())
            .collect::<ferry::Result<_>>()?;
        for (i, c) in calls.iter().enumerate() {
            let (sum, count, on) = rt.get_value(c)?;
            assert_eq!(count, i as u64 + 1, "calls run in the order made");
            assert_eq!(sum, 100 * r as u64 + (1..=i as u64 + 1).sum::<u64>());
            assert_eq!(on, r as u32);
        }
    }
    // A task on the last rank calls the actor on rank 1 (or 0) with a ref
    // owned by the rank before the last (on 4 ranks: a task on rank 3 calls
    // the actor on rank 1 with a ref owned by rank 2).
    let caller = ranks - 1;
    let owner = ranks.saturating_sub(2);
    let target = &totals[summer as usize];
    let made = make::options().on_rank(owner).remote(&rt, 16)?;
    let owned: Vec<ObjectRef<Vec<u64>>> = rt
        .get(&made)?
        .0
        .iter()
        .map(|a| a.to_ref())
        .collect::<ferry::Result<_>>()?;
    assert_eq!(owned[0].id().rank(), owner);
    let out = add_first::options()
        .on_rank(caller)
        .remote(&rt, target.clone(), owned)?;
    let ((sum, count, on), ran_on) = rt.get_value(&out)?;
    assert_eq!((count, on, ran_on), (11, summer, caller));
    assert_eq!(sum, 100 * u64::from(summer) + 55 + 1);
    println!(
        "an actor on each rank; a task on rank {caller} called the one on rank {summer} \
         with a ref owned by rank {owner}"
    );
    Ok(())
}
