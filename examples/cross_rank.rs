//! Tasks and objects across ranks (DESIGN.md "Transfers", issue: Ferry
//! across ranks): a task placed on each rank, an object made on one rank
//! and summed by a task on another (the ref is borrowed from its owner and
//! the bytes move by a one-sided read), and refs returned across ranks.
//!
//! Runs unchanged on one rank (`cargo run --example cross_rank`) and on many
//! (`mpirun -n 3 target/release/examples/cross_rank`, built with `--features mpi`).

use ferry::{ObjectRef, Runtime, View};

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
    Ok(())
}
