//! Streaming returns (Ray's `num_returns="streaming"`):
//! `#[ferry::remote(num_returns = "streaming")]` on a function returning an
//! iterator gives an `ObjectRefGenerator`, one ref per item as the task
//! produces it. One rank, then loopback ranks where the producer's rank is
//! lost.

mod common;
use common::{BOUND, Gate, start, wait_until};

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use ferry::{Config, Error, FailureKind, GeneratorNext, ObjectRef, Runtime};

/// Items produced so far, per test key (tests run at once).
static PRODUCED: Mutex<Option<HashMap<u64, u64>>> = Mutex::new(None);

fn produced(key: u64) -> u64 {
    PRODUCED
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .get(&key)
        .copied()
        .unwrap_or(0)
}

fn note_produced(key: u64) {
    *PRODUCED
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_default() += 1;
}

#[ferry::remote(num_returns = "streaming")]
fn count(n: u64) -> impl Iterator<Item = u64> {
    0..n
}

/// A concrete iterator type.
#[ferry::remote(num_returns = "streaming")]
fn squares(xs: Vec<u64>) -> std::vec::IntoIter<u64> {
    xs.into_iter()
        .map(|x| x * x)
        .collect::<Vec<_>>()
        .into_iter()
}

/// Item `at` waits at gate `key` before it is produced.
#[ferry::remote(num_returns = "streaming")]
fn gated(n: u64, at: u64, key: u64) -> impl Iterator<Item = String> {
    (0..n).map(move |i| {
        if i == at {
            Gate::pass(key, 0);
        }
        note_produced(key);
        format!("item {i}")
    })
}

/// Counts what it produces under `key`.
#[ferry::remote(num_returns = "streaming")]
fn counted(n: u64, key: u64) -> impl Iterator<Item = u64> {
    (0..n).inspect(move |_| note_produced(key))
}

#[ferry::remote(num_returns = "streaming")]
fn until_bad(n: u64, bad: u64) -> impl Iterator<Item = Result<u64, String>> {
    (0..n).map(move |i| {
        if i == bad {
            Err(format!("item {i} is bad"))
        } else {
            Ok(i * 10)
        }
    })
}

#[ferry::remote(num_returns = "streaming")]
fn panics_at(n: u64, at: u64) -> impl Iterator<Item = u64> {
    (0..n).inspect(move |&i| {
        if i == at {
            panic!("no item {i}");
        }
    })
}

#[ferry::remote(num_returns = "streaming")]
fn maybe(n: u64) -> Result<impl Iterator<Item = u64>, String> {
    if n == 0 {
        return Err("nothing to stream".into());
    }
    Ok(0..n)
}

static FLAKY_RUNS: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);

/// Fails at item 2 on its first run (per key), then streams all `n`.
#[ferry::remote(num_returns = "streaming")]
fn flaky(n: u64, key: u64) -> impl Iterator<Item = Result<u64, String>> {
    let run = {
        let mut runs = FLAKY_RUNS.lock().unwrap();
        let r = runs
            .get_or_insert_with(HashMap::new)
            .entry(key)
            .or_default();
        *r += 1;
        *r
    };
    (0..n).map(move |i| {
        if run == 1 && i == 2 {
            Err("first run fails at item 2".to_string())
        } else {
            Ok(i)
        }
    })
}

fn values(rt: &Runtime, refs: &[ObjectRef<u64>]) -> ferry::Result<Vec<u64>> {
    refs.iter().map(|r| rt.get_value(r)).collect()
}

#[test]
fn every_item_comes_as_its_own_ref_in_order() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let refs: Vec<ObjectRef<u64>> = count::remote(&rt, 20)?.collect::<ferry::Result<_>>()?;
    assert_eq!(values(&rt, &refs)?, (0..20).collect::<Vec<_>>());
    let ids: std::collections::HashSet<_> = refs.iter().map(ObjectRef::id).collect();
    assert_eq!(ids.len(), 20, "each item is its own object");
    let mut g = squares::remote(&rt, vec![1u64, 2, 3])?;
    let got: Vec<u64> = g
        .by_ref()
        .map(|r| rt.get_value(&r?))
        .collect::<ferry::Result<_>>()?;
    assert_eq!(got, [1, 4, 9]);
    assert!(g.is_finished());
    assert_eq!(rt.get_value(g.completed())?, 3);
    assert!(g.next().is_none(), "a finished generator stays finished");
    rt.shutdown()
}

#[test]
fn the_caller_reads_item_0_while_item_1_is_not_made() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let gate = Gate::new();
    let mut g = gated::remote(&rt, 3, 1, gate.key())?;
    let first = match g.next_timeout(BOUND) {
        GeneratorNext::Item(r) => r,
        other => panic!("item 0 did not come: {other:?}"),
    };
    assert_eq!(rt.get(&first)?.as_str(), "item 0");
    // Item 1 waits at the gate: it is not made yet.
    gate.wait_arrived(1, "the producer to reach item 1");
    assert_eq!(produced(gate.key()), 1);
    assert!(matches!(g.try_next(), GeneratorNext::Pending));
    assert!(!g.is_finished());
    gate.open();
    let rest: Vec<String> = g
        .by_ref()
        .map(|r| Ok(rt.get(&r?)?.as_str().to_string()))
        .collect::<ferry::Result<_>>()?;
    assert_eq!(rest, ["item 1", "item 2"]);
    assert!(g.is_finished());
    assert!(matches!(g.try_next(), GeneratorNext::Finished));
    rt.shutdown()
}

#[test]
fn backpressure_pauses_the_producer_until_the_caller_reads() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let key = Gate::new().key();
    let mut g = counted::options()
        .generator_backpressure_num_objects(3)
        .remote(&rt, 100, key)?;
    // Nothing read: the producer stops at 3 items (it waits before making
    // the 4th, so it makes no more however long it waits).
    wait_until("3 items ready", || g.num_ready() == 3);
    assert_eq!(produced(key), 3);
    // Reading one lets exactly one more be made.
    let r = g.next().expect("an item")?;
    assert_eq!(rt.get_value(&r)?, 0);
    wait_until("the 4th item", || produced(key) == 4 && g.num_ready() == 3);
    // Dropping it stops the producer at its next item: the task ends with
    // what it made.
    let done = g.completed().clone();
    drop(g);
    assert_eq!(rt.get_value(&done)?, 4);
    assert_eq!(produced(key), 4);
    rt.shutdown()
}

#[test]
fn an_err_item_ends_the_stream_with_the_task_s_error() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let mut g = until_bad::remote(&rt, 5, 2)?;
    let a = g.next().expect("item 0")?;
    let b = g.next().expect("item 1")?;
    assert_eq!(values(&rt, &[a, b])?, [0, 10]);
    let e = g.next().expect("the error").unwrap_err();
    let t = e.task_error().expect("a task error");
    assert_eq!(
        (t.task.as_str(), t.kind, t.message.as_str()),
        ("until_bad", FailureKind::Application, "item 2 is bad")
    );
    assert!(g.next().is_none(), "the stream ends after its error");
    assert!(g.is_finished());
    assert!(rt.get(g.completed()).unwrap_err().task_error().is_some());
    rt.shutdown()
}

#[test]
fn a_panic_ends_the_stream_after_the_items_before_it() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let mut got = Vec::new();
    let mut err = None;
    for item in panics_at::remote(&rt, 5, 3)? {
        match item {
            Ok(r) => got.push(rt.get_value(&r)?),
            Err(e) => err = Some(e),
        }
    }
    assert_eq!(got, [0, 1, 2]);
    let e = err.expect("the panic as an error");
    assert!(
        e.task_error()
            .is_some_and(|t| t.message.contains("no item 3")),
        "{e}"
    );
    // A function returning Err before it streams anything: the error, then the end.
    let mut g = maybe::remote(&rt, 0)?;
    let e = g.next().expect("the error").unwrap_err();
    assert_eq!(e.task_error().unwrap().message, "nothing to stream");
    assert!(g.next().is_none());
    let ok: Vec<_> = maybe::remote(&rt, 2)?.collect::<ferry::Result<_>>()?;
    assert_eq!(values(&rt, &ok)?, [0, 1]);
    rt.shutdown()
}

#[test]
fn a_retry_re_runs_the_task_but_skips_the_items_already_reported() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let key = Gate::new().key();
    let mut g = flaky::options()
        .retry_exceptions(true)
        .max_retries(2)
        .remote(&rt, 5, key)?;
    let refs: Vec<_> = g.by_ref().collect::<ferry::Result<_>>()?;
    assert_eq!(values(&rt, &refs)?, [0, 1, 2, 3, 4]);
    assert_eq!(
        g.repeats_dropped(),
        0,
        "a retry on the same rank skips them"
    );
    assert_eq!(FLAKY_RUNS.lock().unwrap().as_ref().unwrap()[&key], 2);
    assert_eq!(rt.get_value(g.completed())?, 5);
    rt.shutdown()
}

#[test]
fn dropping_the_generator_frees_the_items_not_taken() -> ferry::Result<()> {
    let rt = start(1.0)?;
    #[ferry::remote(num_returns = "streaming")]
    fn blocks(n: u64) -> impl Iterator<Item = Vec<u8>> {
        (0..n).map(|_| vec![7u8; 1 << 20])
    }
    let before = rt.store_used();
    let g = blocks::options()
        .generator_backpressure_num_objects(4)
        .remote(&rt, 8)?;
    wait_until("4 items ready", || g.num_ready() == 4);
    assert!(rt.store_used() >= before + (4 << 20));
    let done = g.completed().clone();
    drop(g);
    assert_eq!(rt.get_value(&done)?, 4, "the producer stopped");
    wait_until("the items to be freed", || {
        rt.store_used() < before + (1 << 20)
    });
    rt.shutdown()
}

fn cluster_cfg() -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(32 << 20)
}

fn here() -> u32 {
    ferry::current().map_or(u32::MAX, |rt| rt.rank())
}

static LOST_RUNS: AtomicU32 = AtomicU32::new(0);

/// Item 2 waits at gate `key`; each item says where it was made.
#[ferry::remote(num_returns = "streaming")]
fn from_afar(n: u64, key: u64) -> impl Iterator<Item = (u64, u32)> {
    LOST_RUNS.fetch_add(1, Ordering::SeqCst);
    (0..n).map(move |i| {
        if i == 2 {
            Gate::pass(key, here());
        }
        (i, here())
    })
}

#[test]
fn a_producer_rank_lost_mid_stream_runs_again_and_skips_what_came() -> ferry::Result<()> {
    ferry::loopback::run(3, cluster_cfg(), |rt, world| -> ferry::Result<()> {
        let gate = Gate::new();
        let mut g = from_afar::options()
            .on_rank(2)
            .max_retries(1)
            .remote(&rt, 5, gate.key())?;
        let first: Vec<(u64, u32)> = (0..2)
            .map(|_| rt.get_value(&g.next().expect("an item")?))
            .collect::<ferry::Result<_>>()?;
        assert_eq!(first, [(0, 2), (1, 2)]);
        gate.wait_arrived_on(2, "the producer at item 2 on rank 2");
        world.kill(2, "killed by the test")?;
        gate.open();
        let rest: Vec<(u64, u32)> = g
            .by_ref()
            .map(|r| rt.get_value(&r?))
            .collect::<ferry::Result<_>>()?;
        let idx: Vec<u64> = rest.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, [2, 3, 4], "each item once, in order");
        assert!(rest.iter().all(|(_, r)| *r != 2), "made again elsewhere");
        assert_eq!(g.repeats_dropped(), 2, "items 0 and 1 came again");
        assert_eq!(rt.get_value(g.completed())?, 5);
        assert_eq!(LOST_RUNS.load(Ordering::SeqCst), 2);
        // Without retries the stream ends with the typed rank-lost error.
        let gate = Gate::new();
        let mut g = from_afar::options()
            .on_rank(1)
            .max_retries(0)
            .remote(&rt, 5, gate.key())?;
        for i in 0..2 {
            assert_eq!(rt.get_value(&g.next().expect("an item")?)?, (i, 1));
        }
        gate.wait_arrived_on(1, "the producer at item 2 on rank 1");
        world.kill(1, "killed by the test")?;
        let e = g.next().expect("the error").unwrap_err();
        match &e {
            Error::Task(t) => assert_eq!((t.kind, t.rank), (FailureKind::System, 1), "{e}"),
            other => panic!("not a task error: {other}"),
        }
        assert!(g.next().is_none());
        Ok(())
    })?
}

#[ferry::actor]
struct Source {
    next: u64,
}

#[ferry::actor]
impl Source {
    fn new(start: u64) -> Self {
        Source { next: start }
    }

    /// The next `n` numbers of the source (its state moves on).
    fn take(&mut self, n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(move |_| {
            self.next += 1;
            self.next - 1
        })
    }

    fn checked(
        &self,
        n: u64,
        bad: u64,
    ) -> Result<impl Iterator<Item = Result<u64, String>>, String> {
        if n == 0 {
            return Err("no items asked for".into());
        }
        Ok((0..n).map(move |i| {
            if i == bad {
                Err(format!("bad {i}"))
            } else {
                Ok(i)
            }
        }))
    }

    fn position(&self) -> u64 {
        self.next
    }
}

#[test]
fn an_actor_method_streams_its_items() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let a = Source::remote(&rt, 100)?;
    let got: Vec<_> = a.take(3).remote()?.collect::<ferry::Result<_>>()?;
    assert_eq!(values(&rt, &got)?, [100, 101, 102]);
    let mut g = a.take(100).generator_backpressure_num_objects(2).remote()?;
    wait_until("2 items ready", || g.num_ready() == 2);
    let done = g.completed().clone();
    let first = g.next().expect("an item")?;
    assert_eq!(rt.get_value(&first)?, 103);
    // One read lets one more be made (and no more).
    wait_until("the 3rd item", || g.num_ready() == 2);
    drop(g);
    // Read 1, 2 ahead allowed: it made 3 and stopped; its state says so.
    assert_eq!(rt.get_value(&done)?, 3);
    assert_eq!(rt.get_value(&a.position().remote()?)?, 106);
    let mut g = a.checked(4, 2).remote()?;
    assert_eq!(rt.get_value(&g.next().expect("item 0")?)?, 0);
    assert_eq!(rt.get_value(&g.next().expect("item 1")?)?, 1);
    let e = g.next().expect("the error").unwrap_err();
    assert_eq!(e.task_error().expect("a task error").message, "bad 2");
    assert!(g.next().is_none());
    let e = a
        .checked(0, 0)
        .remote()?
        .next()
        .expect("the error")
        .unwrap_err();
    assert_eq!(e.task_error().unwrap().message, "no items asked for");
    rt.shutdown()
}

/// Two `&self` streams of a threaded actor run at once: both are open,
/// each paused by backpressure, while neither has ended.
#[test]
fn a_threaded_actor_streams_from_two_self_calls_at_once() -> ferry::Result<()> {
    let rt = start(4.0)?;
    let a = Source::options().max_concurrency(2).remote(&rt, 0)?;
    let mut g1 = a
        .checked(50, 99)
        .generator_backpressure_num_objects(1)
        .remote()?;
    let mut g2 = a
        .checked(50, 99)
        .generator_backpressure_num_objects(1)
        .remote()?;
    wait_until("an item from each stream", || {
        g1.num_ready() == 1 && g2.num_ready() == 1
    });
    assert!(!g1.is_finished() && !g2.is_finished());
    let firsts = (g1.next().expect("item")?, g2.next().expect("item")?);
    assert_eq!((rt.get_value(&firsts.0)?, rt.get_value(&firsts.1)?), (0, 0));
    drop((g1, g2));
    rt.shutdown()
}

#[test]
fn an_actor_on_another_rank_streams_its_items_back() -> ferry::Result<()> {
    ferry::loopback::run(2, cluster_cfg(), |rt, _| -> ferry::Result<()> {
        let a = Source::options().on_rank(1).remote(&rt, 10)?;
        let got: Vec<_> = a.take(4).remote()?.collect::<ferry::Result<_>>()?;
        assert_eq!(values(&rt, &got)?, [10, 11, 12, 13]);
        let g = a
            .take(1000)
            .generator_backpressure_num_objects(3)
            .remote()?;
        wait_until("3 items from rank 1", || g.num_ready() == 3);
        let done = g.completed().clone();
        drop(g);
        assert_eq!(rt.get_value(&done)?, 3);
        assert_eq!(rt.get_value(&a.position().remote()?)?, 17);
        Ok(())
    })?
}

/// Sums the first `n` items of `count`, read inside a task.
#[ferry::remote]
fn sum_of_stream(rt: &Runtime, n: u64) -> ferry::Result<u64> {
    let mut total = 0;
    for r in count::options()
        .generator_backpressure_num_objects(2)
        .remote(rt, n)?
    {
        total += rt.get_value(&r?)?;
    }
    Ok(total)
}

#[test]
fn a_task_reads_a_stream_on_a_rank_with_one_cpu() -> ferry::Result<()> {
    // The reading task holds the only CPU while it waits for items: its
    // wait gives it back, so the producer runs.
    let rt = start(1.0)?;
    let s = sum_of_stream::remote(&rt, 10)?;
    assert_eq!(*rt.get_timeout(&s, BOUND)?, 45);
    rt.shutdown()
}
