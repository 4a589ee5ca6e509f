//! Several ranks in one process, over the loopback transport: the same
//! protocol as under `mpirun`, for tests and for trying multi-rank
//! behaviour (placement, transfers, a rank dying) on a laptop.
//!
//! ```
//! let cfg = ferry_core::Config::default().num_cpus(1.0).object_store_memory(16 << 20);
//! let cpus = ferry_core::loopback::run(3, cfg, |rt, _world| {
//!     assert_eq!(rt.world_size(), 3);
//!     rt.cluster_resources()["CPU"]
//! })?;
//! assert_eq!(cpus, 3.0);
//! # Ok::<(), ferry_core::Error>(())
//! ```

use std::sync::{Arc, Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_transport::{Loopback, Rank, Region, Transport};

use crate::cluster::arena_region::ArenaRegion;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::runtime::{Placement, Prepared, Runtime};
use crate::sync::lock;

/// Control of a loopback world, handed to the body of [`run`].
pub struct World {
    endpoints: Vec<Arc<Loopback>>,
    /// Per rank: `None` while starting, then `Some(rt)` while up, `Some(None)` after.
    runtimes: Mutex<Vec<Option<Option<Runtime>>>>,
    started: Condvar,
}

impl World {
    /// Rank `rank`'s runtime (to look at its store or resources in tests);
    /// `None` once it has stopped or if it failed to start.
    pub fn runtime(&self, rank: Rank) -> Option<Runtime> {
        let mut rts = lock(&self.runtimes);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while rts.get(rank as usize)?.is_none() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return None;
            }
            rts = self
                .started
                .wait_timeout(rts, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        rts[rank as usize].clone().flatten()
    }

    fn set_runtime(&self, rank: Rank, rt: Option<Runtime>) {
        let mut rts = lock(&self.runtimes);
        rts[rank as usize] = Some(rt);
        self.started.notify_all();
    }

    /// Sends `bytes` to rank `to` as one frame from rank `from`, outside the
    /// runtime's protocol: for tests of what a rank does with a frame it
    /// cannot decode (it declares the sender lost, so nobody waits forever).
    pub fn send_raw(&self, from: Rank, to: Rank, bytes: Vec<u8>) -> Result<()> {
        self.endpoints
            .get(from as usize)
            .ok_or_else(|| Error::InvalidArgument(format!("no rank {from}")))?
            .send(to, bytes)
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    /// Simulates rank `rank` being stopped (`SIGSTOP`) or hung: nothing it
    /// sends arrives and nothing reaches it, and nobody is told. Only the
    /// heartbeat ([`Config::heartbeat_timeout`], off by default for
    /// loopback ranks) finds out; it then declares the rank lost, as
    /// [`kill`](Self::kill) would.
    pub fn stop(&self, rank: Rank) -> Result<()> {
        self.endpoints[0]
            .stop(rank)
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    /// Simulates rank `rank` dying: the others see it lost (its tasks are
    /// retried elsewhere, as after a real failure) and it stops serving.
    pub fn kill(&self, rank: Rank, reason: &str) -> Result<()> {
        self.endpoints[0]
            .kill(rank, reason)
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }
}

/// Runs `body` on rank 0 of an `n`-rank world in this process; ranks
/// `1..n` serve until the body returns, then all shut down.
pub fn run<R>(n: u32, cfg: Config, body: impl FnOnce(Runtime, &World) -> R) -> Result<R> {
    run_over(n, cfg, |e| e, body)
}

/// [`run`], each rank talking through `wrap(its endpoint)` (tests put a
/// faulty transport between a rank and the world).
pub(crate) fn run_over<R>(
    n: u32,
    cfg: Config,
    wrap: impl Fn(Arc<Loopback>) -> Arc<dyn Transport>,
    body: impl FnOnce(Runtime, &World) -> R,
) -> Result<R> {
    if n == 0 {
        return Err(Error::InvalidArgument(
            "a world needs at least one rank".into(),
        ));
    }
    cfg.check()?;
    crate::log::install(0)?;
    let job_id = cfg.job_id.clone().unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("lb{}-{nanos}", std::process::id())
    });
    let mut prepared = Vec::new();
    let mut arenas = Vec::new();
    for rank in 0..n {
        // The ranks share this node: each store gets its share by default.
        let p = Prepared::new(&cfg, rank, job_id.clone(), Placement::Loopback { ranks: n })?;
        arenas.push(p.create_arena()?);
        prepared.push(p);
    }
    // Every rank reads the others' stores in place, through mappings made
    // from the open files now; then no name is needed any more (see the
    // start-up steps in `runtime`).
    let mapped = arenas
        .iter()
        .map(|a| a.map_readonly().map(Arc::new))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for a in &arenas {
        crate::runtime::unlink_named(a);
    }
    for (rank, p) in prepared.iter_mut().enumerate() {
        if !p.force_rma() {
            p.set_neighbours(
                (0..n)
                    .filter(|&r| r as usize != rank)
                    .map(|r| (r, mapped[r as usize].clone()))
                    .collect(),
            );
        }
    }
    let regions = arenas
        .iter()
        .map(|a| Region::new(ArenaRegion(a.clone())))
        .collect();
    let endpoints = Loopback::world(n, regions);
    let world = Arc::new(World {
        endpoints: endpoints.clone(),
        runtimes: Mutex::new(vec![None; n as usize]),
        started: Condvar::new(),
    });
    let mut ranks = prepared
        .into_iter()
        .zip(arenas)
        .zip(endpoints.into_iter().map(wrap));
    let ((p0, a0), e0) = ranks.next().expect("n >= 1");
    let servers: Vec<_> = ranks
        .enumerate()
        .map(|(i, ((p, a), e))| {
            let world = world.clone();
            std::thread::Builder::new()
                .name("ferry-loopback-rank".into())
                .spawn(move || {
                    let rank = i as Rank + 1;
                    let rt = p.start(a, Some(e));
                    let rt = match rt {
                        Ok(rt) => rt,
                        Err(e) => {
                            world.set_runtime(rank, None);
                            return Err(e);
                        }
                    };
                    world.set_runtime(rank, Some(rt.clone()));
                    let served = rt.serve();
                    world.set_runtime(rank, None);
                    served
                })
        })
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::Thread {
            what: "a rank thread".into(),
            source: Arc::new(e),
        })?;
    let started = p0.start(a0, Some(e0));
    let out = started.map(|rt| {
        world.set_runtime(0, Some(rt.clone()));
        // A panicking body (a failed assertion in a test) still ends every
        // rank, and is raised again once they have stopped and removed
        // their store files.
        let out =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(rt.clone(), &world)));
        world.set_runtime(0, None);
        let stopped = rt.shutdown();
        (out, stopped)
    });
    let mut first_err = None;
    for s in servers {
        match s.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(Error::Init("a rank thread panicked".into()));
            }
        }
    }
    let (out, stopped) = out?;
    let out = out.unwrap_or_else(|p| std::panic::resume_unwind(p));
    stopped?;
    if let Some(e) = first_err {
        tracing::warn!("a loopback rank ended with: {e}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_rank_stopped_before_greeting_another_is_lost_and_the_other_starts() -> Result<()> {
        let cfg = Config::default()
            .num_cpus(1.0)
            .object_store_memory(16 << 20)
            .heartbeat_timeout(Duration::from_secs(3));
        let wrap = |e: Arc<Loopback>| -> Arc<dyn Transport> {
            // Rank 2's first frame to rank 1 (its `Hello`) is lost: as if
            // rank 2 was stopped between greeting rank 0 and rank 1.
            if e.rank() == 2 {
                Arc::new(crate::runtime::spy_transport::Spy::losing_first_frame_to(
                    e, 1,
                ))
            } else {
                e
            }
        };
        run_over(3, cfg, wrap, |rt, world| {
            // Rank 1 waits for a greeting that will never come; rank 2 goes
            // silent; only rank 0's heartbeat can end the wait.
            world.stop(2)?;
            // Rank 1 starts once rank 2 is declared lost, well before its
            // 60 s start-up timeout, and is not itself taken for silent
            // while it waits (it beats).
            let one = world
                .runtime(1)
                .ok_or_else(|| Error::Init("rank 1 did not start within 30 s".into()))?;
            assert_eq!(rt.state().lost, vec![2], "{}", rt.state());
            assert_eq!(one.state().lost, vec![2], "{}", one.state());
            Ok(())
        })?
    }
}
