//! Ray's async-actor metrics, the Ferry way: the five metrics of
//! python/ray/_private/ray_perf.py named "… async-actor calls …", with the
//! same call counts and multipliers, against an actor whose methods are
//! `async fn` (run on the actor's own executor, as Ray's `AsyncActor` runs
//! on its asyncio loop).

use ferry::{ActorHandle, Runtime};

use super::fixtures::half_cpus;
use super::runner::Runner;

/// Ray: `@ray.remote class AsyncActor` (its `async def` methods).
#[ferry::actor]
struct AsyncServer;

#[ferry::actor]
impl AsyncServer {
    fn new() -> Self {
        AsyncServer
    }

    async fn small_value(&self) -> Vec<u8> {
        b"ok".to_vec()
    }

    async fn small_value_with_arg(&self, _x: u64) -> Vec<u8> {
        b"ok".to_vec()
    }
}

/// Ray's `Client(servers)` with async actors as its servers.
#[ferry::actor]
struct AsyncClient {
    servers: Vec<ActorHandle<AsyncServer>>,
}

#[ferry::actor]
impl AsyncClient {
    fn new(servers: Vec<ActorHandle<AsyncServer>>) -> Self {
        AsyncClient { servers }
    }

    /// `n` calls to each server, then one get of them all.
    fn small_value_batch(&self, rt: &Runtime, n: u64) -> ferry::Result<()> {
        let mut refs = Vec::with_capacity(n as usize * self.servers.len());
        for s in &self.servers {
            for _ in 0..n {
                refs.push(s.small_value().remote()?);
            }
        }
        rt.get_all(&refs)?;
        Ok(())
    }
}

/// Ray's `async_actor_work(actors)`: 5000 calls round-robin over the async
/// actors, then one get of them all.
#[ferry::remote]
fn async_actor_work(rt: &Runtime, actors: Vec<ActorHandle<AsyncServer>>) -> ferry::Result<()> {
    let refs = (0..5000)
        .map(|i| actors[i % actors.len()].small_value().remote())
        .collect::<ferry::Result<Vec<_>>>()?;
    rt.get_all(&refs)?;
    Ok(())
}

fn async_actors(rt: &Runtime, n: usize) -> ferry::Result<Vec<ActorHandle<AsyncServer>>> {
    (0..n).map(|_| AsyncServer::remote(rt)).collect()
}

/// Runs the metrics that pass `r`'s filter, in ray_perf.py's order.
pub(crate) fn run(rt: &Runtime, r: &mut Runner<'_>) -> ferry::Result<()> {
    let n_cpu = half_cpus();

    r.metric(
        "1:1 async-actor calls sync",
        1.0,
        || AsyncServer::remote(rt),
        |a| {
            rt.get(&a.small_value().remote()?)?;
            Ok(())
        },
    )?;

    r.metric(
        "1:1 async-actor calls async",
        1000.0,
        || AsyncServer::remote(rt),
        |a| {
            let refs = (0..1000)
                .map(|_| a.small_value().remote())
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;

    r.metric(
        "1:1 async-actor calls with args async",
        1000.0,
        || AsyncServer::remote(rt),
        |a| {
            let refs = (0..1000u64)
                .map(|i| a.small_value_with_arg(i).remote())
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;

    let n = 5000u64;
    r.metric(
        "1:n async-actor calls async",
        (n * n_cpu as u64) as f64,
        || AsyncClient::remote(rt, async_actors(rt, n_cpu)?),
        |client| {
            rt.get(&client.small_value_batch(n).remote()?)?;
            Ok(())
        },
    )?;

    let (n, m) = (5000u64, 4usize);
    r.metric(
        "n:n async-actor calls async",
        (n * m as u64) as f64,
        || async_actors(rt, n_cpu),
        |servers| {
            let refs = (0..m)
                .map(|_| async_actor_work::remote(rt, servers.clone()))
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;
    Ok(())
}
