//! Actor checkpoints: state written every N calls or on request, restored
//! when a job with the same id creates the actor again (and said so); a
//! damaged checkpoint stops the actor with an error naming the file; a
//! checkpoint asked for through a handle on another rank.

use std::path::PathBuf;

use ferry::{Config, Error};

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("ferry-ckpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cfg(dir: &Dir, job: &str) -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(16 << 20)
        .job_id(format!("{job}-{}", std::process::id()))
        .checkpoint_dir(&dir.0)
}

#[ferry::actor(checkpoint)]
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Sim {
    step: u64,
    history: Vec<u64>,
}

#[ferry::actor]
impl Sim {
    fn new() -> Self {
        Sim {
            step: 0,
            history: Vec::new(),
        }
    }

    fn advance(&mut self, by: u64) -> u64 {
        self.step += by;
        self.history.push(self.step);
        self.step
    }

    fn history(&self) -> Vec<u64> {
        self.history.clone()
    }
}

#[ferry::actor]
struct Plain;

#[ferry::actor]
impl Plain {
    fn new() -> Self {
        Plain
    }
}

#[test]
fn a_job_started_again_with_its_id_restores_the_last_checkpoint() -> ferry::Result<()> {
    let dir = Dir::new("every");
    {
        let rt = ferry::init(cfg(&dir, "every"))?;
        let sim = Sim::options().name("sim").checkpoint_every(2).remote(&rt)?;
        for _ in 0..5 {
            rt.get_value(&sim.advance(10).remote()?)?;
        }
        assert!(rt.restored_actors().is_empty());
        rt.shutdown()?;
    }
    // The same job again: the checkpoint after 4 calls comes back.
    let rt = ferry::init(cfg(&dir, "every"))?;
    let sim = Sim::options().name("sim").checkpoint_every(2).remote(&rt)?;
    assert_eq!(rt.get_value(&sim.history().remote()?)?, [10, 20, 30, 40]);
    assert_eq!(rt.get_value(&sim.advance(1).remote()?)?, 41);
    let restored = rt.restored_actors();
    assert_eq!(restored.len(), 1);
    assert_eq!((restored[0].name.as_str(), restored[0].calls), ("sim", 4));
    assert!(restored[0].path.starts_with(&dir.0));
    // An unnamed actor of the class, and another job: fresh state.
    let other = Sim::options().remote(&rt)?;
    assert_eq!(rt.get_value(&other.advance(1).remote()?)?, 1);
    rt.shutdown()?;
    let rt = ferry::init(cfg(&dir, "another-job"))?;
    let sim = Sim::options().name("sim").remote(&rt)?;
    assert_eq!(rt.get_value(&sim.advance(1).remote()?)?, 1);
    assert!(rt.restored_actors().is_empty());
    rt.shutdown()
}

#[test]
fn a_checkpoint_on_request_holds_the_state_of_that_moment() -> ferry::Result<()> {
    let dir = Dir::new("request");
    {
        let rt = ferry::init(cfg(&dir, "request"))?;
        let sim = Sim::options().name("sim").remote(&rt)?;
        rt.get_value(&sim.advance(3).remote()?)?;
        rt.get_value(&sim.advance(4).remote()?)?;
        let written = rt.get_value(&sim.checkpoint()?)?;
        assert!(written > 16, "{written}");
        rt.get_value(&sim.advance(100).remote()?)?;
        rt.shutdown()?;
    }
    let rt = ferry::init(cfg(&dir, "request"))?;
    let sim = Sim::options().name("sim").remote(&rt)?;
    assert_eq!(rt.get_value(&sim.history().remote()?)?, [3, 7]);
    rt.shutdown()
}

#[test]
fn a_damaged_checkpoint_stops_the_actor_and_names_the_file() -> ferry::Result<()> {
    let dir = Dir::new("bad");
    let path = {
        let rt = ferry::init(cfg(&dir, "bad"))?;
        let sim = Sim::options().name("sim").remote(&rt)?;
        rt.get_value(&sim.advance(1).remote()?)?;
        rt.get_value(&sim.checkpoint()?)?;
        let p = rt.checkpoint_dir().join("sim.ckpt");
        rt.shutdown()?;
        p
    };
    let mut bytes = std::fs::read(&path).expect("written");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("writable");
    let rt = ferry::init(cfg(&dir, "bad"))?;
    let sim = Sim::options().name("sim").remote(&rt)?;
    match rt.get_value(&sim.advance(1).remote()?) {
        Err(Error::ActorDied { reason, .. }) => {
            assert!(
                reason.contains("sim.ckpt") && reason.contains("checksum"),
                "{reason}"
            );
        }
        other => panic!("expected ActorDied, got {other:?}"),
    }
    assert!(path.exists(), "the damaged file is kept");
    rt.shutdown()
}

#[test]
fn checkpoints_need_a_marked_class_and_a_name() -> ferry::Result<()> {
    let dir = Dir::new("refuse");
    let rt = ferry::init(cfg(&dir, "refuse"))?;
    let plain = Plain::options().name("p").remote(&rt)?;
    match plain.checkpoint() {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("#[ferry::actor(checkpoint)]"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let unnamed = Sim::options().remote(&rt)?;
    match unnamed.checkpoint() {
        Err(Error::InvalidArgument(m)) => assert!(m.contains(".name("), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    rt.shutdown()
}

#[test]
fn an_actor_on_another_rank_checkpoints_on_request_from_here() -> ferry::Result<()> {
    let dir = Dir::new("remote");
    ferry::loopback::run(2, cfg(&dir, "remote"), |rt, _world| -> ferry::Result<()> {
        let sim = Sim::options().name("far").on_rank(1).remote(&rt)?;
        rt.get_value(&sim.advance(5).remote()?)?;
        let written = rt.get_value(&sim.checkpoint()?)?;
        assert!(written > 16);
        assert!(rt.checkpoint_dir().join("far.ckpt").exists());
        Ok(())
    })?
}

#[test]
fn an_actor_re_created_after_its_rank_is_lost_resumes_from_its_checkpoint() -> ferry::Result<()> {
    let dir = Dir::new("lost");
    ferry::loopback::run(3, cfg(&dir, "lost"), |rt, world| -> ferry::Result<()> {
        let sim = Sim::options()
            .name("resumed")
            .on_rank(2)
            .checkpoint_every(1)
            .max_restarts(1)
            .remote(&rt)?;
        for _ in 0..3 {
            rt.get_value(&sim.advance(2).remote()?)?;
        }
        world.kill(2, "killed by the test")?;
        // A call made while rank 0 has not yet heard of the loss may be
        // taken as sent to the dying rank, which max_task_retries (0) does
        // not let go again: call once rank 0 knows.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !rt.state().lost.contains(&2) {
            assert!(
                std::time::Instant::now() < deadline,
                "rank 0 never heard that rank 2 was lost"
            );
            std::thread::yield_now();
        }
        // Re-created elsewhere from the checkpoint after 3 calls.
        assert_eq!(rt.get_value(&sim.advance(2).remote()?)?, 8);
        assert_ne!(sim.actor_rank(), 2);
        Ok(())
    })?
}

#[test]
fn periodic_checkpoints_count_from_the_last_one_written() -> ferry::Result<()> {
    let dir = Dir::new("cadence");
    // Runs the job again: `calls` calls, then a checkpoint on request if
    // asked; what it restored at start.
    let run = |calls: usize, on_request: bool| -> ferry::Result<Option<u64>> {
        let rt = ferry::init(cfg(&dir, "cadence"))?;
        let sim = Sim::options().name("sim").checkpoint_every(3).remote(&rt)?;
        for _ in 0..calls {
            rt.get_value(&sim.advance(1).remote()?)?;
        }
        if on_request {
            rt.get_value(&sim.checkpoint()?)?;
        }
        let restored = rt.restored_actors().first().map(|r| r.calls);
        rt.shutdown()?;
        Ok(restored)
    };
    assert_eq!(run(4, true)?, None); // periodic after 3; on request after 4
    assert_eq!(run(2, false)?, Some(4)); // calls 5, 6: none due yet
    assert_eq!(run(3, false)?, Some(4)); // calls 5, 6, 7: due after 7
    assert_eq!(run(1, false)?, Some(7)); // (a call, so that it has started)
    Ok(())
}

#[test]
fn a_checkpoint_that_cannot_be_written_on_another_rank_fails_the_caller_s_call() -> ferry::Result<()>
{
    let dir = Dir::new("far-fail");
    std::fs::create_dir_all(&dir.0).expect("dir");
    let blocker = dir.0.join("a-file");
    std::fs::write(&blocker, b"x").expect("writable");
    let c = cfg(&dir, "far-fail").checkpoint_dir(blocker.join("under"));
    ferry::loopback::run(2, c, |rt, _world| -> ferry::Result<()> {
        let sim = Sim::options()
            .name("far")
            .on_rank(1)
            .checkpoint_every(1)
            .remote(&rt)?;
        let e = rt
            .get_value(&sim.advance(5).remote()?)
            .expect_err("the checkpoint cannot be written");
        let m = e.to_string();
        assert!(
            m.contains("far.ckpt") && m.contains("Not a directory"),
            "{m}"
        );
        // The actor lives on with its state.
        std::fs::remove_file(&blocker).expect("removable");
        assert_eq!(rt.get_value(&sim.advance(5).remote()?)?, 10);
        Ok(())
    })?
}
