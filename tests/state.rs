//! State listings (`rt.state()`) over loopback ranks: tasks with their
//! failures, actors where they live, objects across ranks, resources, a
//! lost rank; and the status file a job writes, printed by `ferry status`.

mod common;
use common::{Gate, wait_until};

use std::time::Duration;

use ferry::{Config, Error, FailureKind, ObjectRef, Runtime};

fn cfg() -> Config {
    Config::default()
        .num_cpus(2.0)
        .object_store_memory(32 << 20)
}

#[ferry::remote]
fn ok(x: u64) -> u64 {
    x + 1
}

#[ferry::remote]
fn broken(x: u64) -> ferry::Result<u64> {
    Err(ferry::Error::InvalidArgument(format!("input {x} is bad")))
}

/// Runs until gate `key` opens (so the test sees it running).
#[ferry::remote]
fn held(key: u64) -> u64 {
    Gate::pass(key, ferry::current().map_or(u32::MAX, |rt| rt.rank()));
    key
}

/// The one outcome of `broken(x)`: its error, typed, from `rank`.
fn assert_broken(r: ferry::Result<impl std::fmt::Debug>, x: u64, rank: u32) {
    match r {
        Err(Error::Task(t)) => {
            assert_eq!((t.kind, t.rank), (FailureKind::Application, rank), "{t:?}");
            assert!(t.task.contains("broken"), "{t:?}");
            assert!(t.message.contains(&format!("input {x} is bad")), "{t:?}");
        }
        other => panic!("expected broken({x}) to fail as an application error, got {other:?}"),
    }
}

#[ferry::remote]
fn share(rt: &Runtime) -> ferry::Result<Vec<ObjectRef<Vec<u64>>>> {
    Ok(vec![rt.put(&vec![7u64; 4096])?])
}

#[ferry::actor]
struct Keeper;

#[ferry::actor]
impl Keeper {
    fn new() -> Self {
        Keeper
    }

    fn ping(&self) -> u32 {
        1
    }
}

#[test]
fn state_lists_every_rank_s_tasks_actors_objects_and_resources() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, world| -> ferry::Result<()> {
        for i in 0..4 {
            assert_eq!(
                rt.get_value(&ok::options().on_rank(1).remote(&rt, i)?)?,
                i + 1
            );
        }
        let bad = broken::options().on_rank(1).remote(&rt, 42)?;
        assert_broken(rt.get(&bad), 42, 1);
        let keeper = Keeper::options().on_rank(2).remote(&rt)?;
        assert_eq!(rt.get_value(&keeper.ping().remote()?)?, 1);
        let shared = rt.get(&share::options().on_rank(1).remote(&rt)?)?[0].to_ref()?;
        let gate = Gate::new();
        let slow = held::options().on_rank(1).remote(&rt, gate.key())?;
        gate.wait_arrived_on(1, "the held task to be running on rank 1");

        let s = rt.state();
        assert_eq!(
            s.ranks.iter().map(|r| r.rank).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(s.missing.is_empty() && s.lost.is_empty(), "{s:?}");
        let r1 = &s.ranks[1];
        assert_eq!(r1.tasks.finished, 5, "4 × ok and share: {:?}", r1.tasks);
        assert_eq!(r1.tasks.failed, 1);
        assert!(
            r1.failures
                .iter()
                .any(|f| f.error.contains("input 42 is bad")),
            "{:?}",
            r1.failures
        );
        assert!(
            r1.running.iter().any(|(name, _)| name.contains("held")),
            "{:?}",
            r1.running
        );
        assert!(s.ranks[0].sent.iter().any(|(to, n)| *to == 1 && *n >= 1));
        assert!(s.ranks[0].tasks.submitted >= 7, "{:?}", s.ranks[0].tasks);
        // The actor lives on rank 2; rank 0 holds a handle to it there.
        assert!(
            s.ranks[2]
                .actors
                .iter()
                .any(|a| a.lives_here && a.name == "Keeper")
        );
        assert!(
            s.ranks[0]
                .actors
                .iter()
                .any(|a| !a.lives_here && a.rank == 2 && a.state == "alive")
        );
        // Rank 1's object, borrowed by rank 0.
        let id = shared.id().to_string();
        let lent = r1
            .objects
            .iter()
            .find(|o| o.id == id)
            .expect("listed by its owner");
        assert_eq!(
            (lent.owner, lent.borrowers.as_slice(), lent.here),
            (1, &[0][..], true)
        );
        assert!(lent.size.is_some_and(|n| n >= 4096 * 8));
        let borrowed = s.ranks[0]
            .objects
            .iter()
            .find(|o| o.id == id)
            .expect("listed by its borrower");
        assert_eq!(borrowed.owner, 1);
        // Resources and stores.
        for r in &s.ranks {
            let cpu = r
                .resources
                .iter()
                .find(|(n, _, _)| n == "CPU")
                .expect("CPU");
            assert_eq!(cpu.1, 2.0);
            assert_eq!(r.store.capacity, 32 << 20);
        }
        let text = s.to_string();
        for want in [
            "Resources",
            "Tasks",
            "Running tasks",
            "Actors",
            "Keeper",
            "Objects across ranks",
            "input 42 is bad",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        gate.open();
        assert_eq!(rt.get_value(&slow)?, gate.key());

        world.kill(2, "killed by the test")?;
        let mut s = rt.state();
        wait_until("rank 0 to list rank 2 as lost", || {
            s = rt.state();
            !s.lost.is_empty()
        });
        assert_eq!(s.lost, [2]);
        assert_eq!(s.ranks.iter().map(|r| r.rank).collect::<Vec<_>>(), [0, 1]);
        assert!(s.to_string().contains("lost [2]"));
        Ok(())
    })?
}

#[test]
fn the_status_file_is_written_and_ferry_status_asks_for_fresh_tables() -> ferry::Result<()> {
    let path = std::env::temp_dir().join(format!("ferry-status-test-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let rt = ferry::init(
        cfg()
            .status_file(&path)
            .status_every(Duration::from_secs(3600)),
    )?;
    wait_until("the first tables to be written", || path.exists());
    let first = std::fs::read_to_string(&path).expect("readable");
    assert!(first.contains("ferry status: job"), "{first}");
    // Work done after the first write shows once the job is asked again.
    for i in 0..3 {
        rt.get_value(&ok::remote(&rt, i)?)?;
    }
    // Failed (and so in the rank's book: a task is booked before its
    // result is ready) before the job is asked for fresh tables.
    assert_broken(rt.get(&broken::remote(&rt, 7)?), 7, 0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("status")
        .arg(&path)
        .arg("--pid")
        .arg(std::process::id().to_string())
        .output()
        .expect("ferry runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    assert!(stdout.contains("input 7 is bad"), "{stdout}");
    assert!(stdout.contains("Tasks"), "{stdout}");
    rt.shutdown()?;
    let _ = std::fs::remove_file(&path);
    // A file nobody writes: a clear error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["status", "/nonexistent/ferry-status"])
        .output()
        .expect("ferry runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FERRY_STATUS_FILE"));
    Ok(())
}
