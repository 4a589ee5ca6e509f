//! Streaming returns (`num_returns = "streaming"`) of a task run on another
//! rank: its items come back to the caller's rank one by one.

use ferry::{GeneratorNext, ObjectRef, Runtime};

use super::{
    BOUND, OpenOnDrop, here, hold_rank_0, last, set_gate, sum_on_rank, unique_first, wait_until,
};

/// Item `i` is `(i, where it was made, i+1 numbers)`; item 1 is made only
/// once `gate[0]` is ready (a nested ref: the task starts at once).
#[ferry::remote(num_returns = "streaming")]
fn numbers_from(
    rt: &Runtime,
    n: u64,
    gate: Vec<ObjectRef<bool>>,
) -> impl Iterator<Item = (u64, u32, Vec<u64>)> {
    let rt = rt.clone();
    (0..n).map(move |i| {
        if i == 1 {
            assert!(rt.get_value(&gate[0]).unwrap_or(false), "the gate failed");
        }
        (i, here(), (0..=i * 5000).collect())
    })
}

/// Blocks of `len` numbers, block `i` starting at `i`.
#[ferry::remote(num_returns = "streaming")]
fn blocks(n: u64, len: u64) -> impl Iterator<Item = Vec<u64>> {
    (0..n).map(move |i| (i..i + len).collect())
}

#[ferry::remote(num_returns = "streaming")]
fn endless() -> impl Iterator<Item = u64> {
    0..
}

#[ferry::remote(num_returns = "streaming")]
fn fails_at(at: u64) -> impl Iterator<Item = Result<u64, String>> {
    (0..).map(move |i| {
        if i == at {
            Err(format!("item {i} failed"))
        } else {
            Ok(i)
        }
    })
}

#[ferry::actor]
struct Ticker {
    ticks: u64,
}

#[ferry::actor]
impl Ticker {
    fn new() -> Self {
        Ticker { ticks: 0 }
    }

    /// `n` ticks, each with the rank it was made on.
    fn ticks(&mut self, n: u64) -> impl Iterator<Item = (u64, u32)> {
        (0..n).map(move |_| {
            self.ticks += 1;
            (self.ticks, here())
        })
    }
}

/// The task streams from the last rank: the caller reads item 0 while the
/// task waits to make item 1 (behind a gate the caller opens), then the
/// rest, in order, large ones too; nothing read with a backpressure of 2
/// stops the producer at 2 items, and dropping the generator ends the task
/// there; an `Err` item ends the stream with the task's typed error, after
/// the items before it. An actor's streaming method does the same.
pub(super) fn a_streaming_task_on_another_rank_streams_its_items_back(
    rt: &Runtime,
) -> ferry::Result<()> {
    let there = last(rt);
    let key = unique_first();
    let _opener = OpenOnDrop(key);
    let gate = hold_rank_0::options()
        .num_cpus(0.0)
        .on_rank(0)
        .remote(rt, key)?;
    let mut g = numbers_from::options()
        .on_rank(there)
        .remote(rt, 4, vec![gate.clone()])?;
    let first = match g.next_timeout(std::time::Duration::from_secs(BOUND)) {
        GeneratorNext::Item(r) => r,
        other => panic!("item 0 did not come: {other:?}"),
    };
    let (i, made_on, xs) = rt.get_value(&first)?;
    assert_eq!((i, made_on, xs.len()), (0, there, 1));
    assert!(matches!(g.try_next(), GeneratorNext::Pending));
    assert!(!gate.is_ready(), "item 0 came while item 1 waited");
    set_gate(key, false, true);
    let rest: Vec<(u64, u32, usize)> = g
        .by_ref()
        .map(|r| {
            let (i, at, xs) = rt.get_value(&r?)?;
            assert_eq!(xs.iter().sum::<u64>(), (0..=i * 5000).sum::<u64>());
            Ok((i, at, xs.len()))
        })
        .collect::<ferry::Result<_>>()?;
    assert_eq!(
        rest,
        [(1, there, 5001), (2, there, 10001), (3, there, 15001)]
    );
    assert_eq!(rt.get_value(g.completed())?, 4);
    assert!(g.is_finished());
    assert!(rt.get_value(&gate)?);

    // An item is an object of the caller's rank like any: here read by a
    // task on rank 1 (which borrows it), and freed on its own.
    let items: Vec<ObjectRef<Vec<u64>>> = blocks::options()
        .on_rank(there)
        .remote(rt, 3, 1000)?
        .collect::<ferry::Result<_>>()?;
    for (i, item) in items.iter().enumerate() {
        let s = sum_on_rank::options().on_rank(1).remote(rt, item)?;
        let i = i as u64;
        assert_eq!(rt.get_value(&s)?, ((i..i + 1000).sum::<u64>(), 1));
    }
    drop(items);

    // Backpressure across ranks, then cancellation by drop.
    let g = endless::options()
        .on_rank(there)
        .generator_backpressure_num_objects(2)
        .remote(rt)?;
    wait_until("2 items from the last rank", || Ok(g.num_ready() == 2))?;
    let done = g.completed().clone();
    drop(g);
    assert_eq!(
        rt.get_value(&done)?,
        2,
        "the producer made 2 items, then stopped when the generator went"
    );

    // An error mid-stream, typed, with the rank it happened on.
    let mut g = fails_at::options().on_rank(there).remote(rt, 3)?;
    for want in 0..3 {
        assert_eq!(rt.get_value(&g.next().expect("an item")?)?, want);
    }
    let e = g.next().expect("the error").unwrap_err();
    let t = e.task_error().expect("a task error");
    assert_eq!(
        (t.task.as_str(), t.rank, t.message.as_str()),
        ("fails_at", there, "item 3 failed")
    );
    assert!(g.next().is_none());

    // A streaming method of an actor on the last rank.
    let a = Ticker::options().on_rank(there).remote(rt)?;
    let got: Vec<(u64, u32)> = a
        .ticks(3)
        .remote()?
        .map(|r| rt.get_value(&r?))
        .collect::<ferry::Result<_>>()?;
    assert_eq!(got, [(1, there), (2, there), (3, there)]);
    let g = a
        .ticks(1000)
        .generator_backpressure_num_objects(2)
        .remote()?;
    wait_until("2 ticks from the last rank", || Ok(g.num_ready() == 2))?;
    let done = g.completed().clone();
    drop(g);
    assert_eq!(rt.get_value(&done)?, 2);
    let next: Vec<(u64, u32)> = a
        .ticks(1)
        .remote()?
        .map(|r| rt.get_value(&r?))
        .collect::<ferry::Result<_>>()?;
    assert_eq!(next, [(6, there)], "the actor made 5 ticks before");
    Ok(())
}
