//! Lineage reconstruction over loopback, where a rank can be killed: refs
//! to objects a lost rank owned (made by tasks it ran, handed back inside a
//! task's result) are rebuilt by re-running that task elsewhere, nested
//! tasks included; objects nothing can rebuild fail with an error that
//! says why.

use std::sync::atomic::{AtomicU32, Ordering};

use ferry::{Config, Error, ObjectRef, Runtime};

fn cfg() -> Config {
    Config::default()
        .num_cpus(2.0)
        .object_store_memory(32 << 20)
}

/// 16 KB, more than travels inside a borrow's ack: read only on `get`.
fn expected(seed: u64) -> Vec<u64> {
    (0..2000).map(|i| i * seed + 7).collect()
}

#[ferry::remote]
fn block(seed: u64) -> Vec<u64> {
    expected(seed)
}

/// Runs of `fan_out`, per test (tests run in parallel in one process).
static FAN_OUT_RUNS: [AtomicU32; 3] = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];

/// Makes `n` blocks with nested tasks on its own rank (which owns them)
/// and one more with `put`, and returns refs to all of them; counts its
/// runs under `test`.
#[ferry::remote]
fn fan_out(rt: &Runtime, test: u64, n: u64) -> ferry::Result<Vec<ObjectRef<Vec<u64>>>> {
    FAN_OUT_RUNS[test as usize].fetch_add(1, Ordering::SeqCst);
    let mut refs: Vec<_> = (1..=n)
        .map(|s| block::options().on_rank(rt.rank()).remote(rt, s))
        .collect::<ferry::Result<_>>()?;
    refs.push(rt.put(&expected(n + 1))?);
    Ok(refs)
}

#[ferry::actor]
struct Maker;

#[ferry::actor]
impl Maker {
    fn new() -> Self {
        Maker
    }

    /// A put on the actor's rank, handed over in an actor call's result.
    fn make(&self, rt: &Runtime, seed: u64) -> ferry::Result<Vec<ObjectRef<Vec<u64>>>> {
        Ok(vec![rt.put(&expected(seed))?])
    }
}

/// On `ranks` loopback ranks: `fan_out` (counted under `test`) makes `n`
/// objects and a put on the last rank, which is killed before any is read;
/// every object is rebuilt (the task runs once more) and reads right.
fn rebuilt_after_the_last_rank_dies(ranks: u32, test: u64, n: u64) -> ferry::Result<()> {
    ferry::loopback::run(ranks, cfg(), |rt, world| -> ferry::Result<()> {
        let lost = ranks - 1;
        let outer = fan_out::options().on_rank(lost).remote(&rt, test, n)?;
        let refs: Vec<ObjectRef<Vec<u64>>> = rt
            .get(&outer)?
            .iter()
            .map(|r| r.to_ref())
            .collect::<ferry::Result<_>>()?;
        assert_eq!(refs.len() as u64, n + 1);
        let runs_before = FAN_OUT_RUNS[test as usize].load(Ordering::SeqCst);
        // Nothing read yet: the only copies are on the last rank.
        world.kill(lost, "killed by the test")?;
        for (i, r) in refs.iter().enumerate() {
            let v = rt.get(r)?;
            assert_eq!(
                v.as_slice(),
                expected(i as u64 + 1).as_slice(),
                "object {i}"
            );
        }
        assert_eq!(
            FAN_OUT_RUNS[test as usize].load(Ordering::SeqCst),
            runs_before + 1,
            "the task ran once more"
        );
        Ok(())
    })?
}

#[test]
fn objects_a_lost_rank_owned_are_rebuilt_from_the_task_that_returned_them() -> ferry::Result<()> {
    rebuilt_after_the_last_rank_dies(3, 0, 4)
}

/// On 2 ranks the task that made the lost objects runs again on rank 0,
/// the rank rebuilding them: its new result refers only to rank 0's own
/// objects, whose list rank 0 must still keep to find them.
#[test]
fn objects_are_rebuilt_by_a_re_run_on_the_rebuilding_rank() -> ferry::Result<()> {
    rebuilt_after_the_last_rank_dies(2, 2, 2)
}

#[test]
fn a_task_out_of_retries_does_not_rebuild_and_says_so() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        let outer = fan_out::options()
            .on_rank(2)
            .max_retries(0)
            .remote(&rt, 1, 1)?;
        let first = rt.get(&outer)?[0].to_ref()?;
        world.kill(2, "killed by the test")?;
        match rt.get(&first) {
            Err(Error::OwnerLost {
                object,
                rank,
                reason,
            }) => {
                assert_eq!((object, rank), (first.id(), 2));
                assert!(reason.contains("cannot be rebuilt"), "{reason}");
                assert!(reason.contains("no retries left"), "{reason}");
            }
            other => panic!("expected a lost object, got {:?}", other.map(|v| v.len())),
        }
        Ok(())
    })?
}

#[test]
fn a_put_handed_over_by_an_actor_cannot_be_rebuilt_and_says_so() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        let maker = Maker::options().on_rank(2).remote(&rt)?;
        let made = rt.get(&maker.make(9).remote()?)?[0].to_ref()?;
        world.kill(2, "killed by the test")?;
        match rt.get(&made) {
            Err(e @ Error::OwnerLost { rank: 2, .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("cannot be rebuilt"), "{msg}");
                assert!(msg.contains("put"), "{msg}");
                assert!(msg.contains("rank 2"), "{msg}");
            }
            other => panic!("expected a lost object, got {:?}", other.map(|v| v.len())),
        }
        Ok(())
    })?
}
