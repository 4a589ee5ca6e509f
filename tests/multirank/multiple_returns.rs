//! Multiple returns (`num_returns`) of a task run on another rank.

use ferry::{ObjectRef, Runtime};

use super::{BOUND, eventually, here, last, store_used_on, sum_on_rank};

/// Where it ran, and the numbers below `n`, as two objects.
#[ferry::remote(num_returns = 2)]
fn rank_and_numbers(n: u64) -> (u32, Vec<u64>) {
    (here(), (0..n).collect())
}

/// Fails with `msg`, wherever it runs.
#[ferry::remote(num_returns = 2)]
fn both_fail(msg: String) -> Result<(u64, String), String> {
    Err(msg)
}

/// The task runs on the last rank; its tuple comes back to rank 0, which
/// owns the two elements: each readable, each feeding a task on another
/// rank, each freed on its own; a failure there fails both refs.
pub(super) fn a_task_with_two_returns_on_another_rank_gives_two_objects(
    rt: &Runtime,
) -> ferry::Result<()> {
    let there = last(rt);
    let (base_here, base_there) = (store_used_on(rt, 0)?, store_used_on(rt, there)?);
    let n = 1u64 << 17; // 1 MiB: read one-sidedly, not inside a message
    let (rank, numbers): (ObjectRef<u32>, ObjectRef<Vec<u64>>) =
        rank_and_numbers::options().on_rank(there).remote(rt, n)?;
    assert_ne!(rank.id(), numbers.id());
    assert_eq!(rt.get_value(&rank)?, there);
    assert_eq!(rt.get(&numbers)?.len(), n as usize);
    // An element is an argument like any object, here borrowed by rank 1.
    let s = sum_on_rank::options().on_rank(1).remote(rt, &numbers)?;
    assert_eq!(rt.get_value(&s)?, (n * (n - 1) / 2, 1));
    drop(s);
    // The tuple is freed once its elements are out, here and there; then
    // dropping the large element frees it while the small one lives.
    assert!(
        eventually(BOUND, || Ok(store_used_on(rt, 0)? < base_here + (3 << 19)))?,
        "rank 0 kept the tuple beside its elements"
    );
    assert!(
        eventually(BOUND, || Ok(store_used_on(rt, there)? <= base_there))?,
        "rank {there} kept its copy of the tuple"
    );
    drop(numbers);
    assert!(
        eventually(BOUND, || Ok(store_used_on(rt, 0)? < base_here + (1 << 18)))?,
        "dropping the large element did not free it"
    );
    assert_eq!(rt.get_value(&rank)?, there);
    // A failure on the other rank fails both refs with its error.
    let (a, b) = both_fail::options()
        .on_rank(there)
        .remote(rt, "no pair today".to_string())?;
    for e in [rt.get(&a).unwrap_err(), rt.get(&b).unwrap_err()] {
        let t = e.task_error().expect("a task error");
        assert_eq!(
            (t.task.as_str(), t.rank, t.message.as_str()),
            ("both_fail", there, "no pair today")
        );
    }
    Ok(())
}
