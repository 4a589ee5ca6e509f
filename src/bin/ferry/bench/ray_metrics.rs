//! Ray's single-process microbenchmark metrics, the Ferry way.
//!
//! Each metric does what the metric of the same name does in Ray's
//! python/ray/_private/ray_perf.py: the same call counts, multipliers and
//! payloads, timed by the same `timeit` (see [`super::timeit`]). Ray's
//! async-actor metrics, which come next in ray_perf.py, are in
//! `async_metrics`; the placement-group metric is `super::placement`'s.

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;

use ferry::{ActorHandle, ObjectRef, Runtime};

use super::fixtures::{Server, do_put, do_put_small, half_cpus, small_value, work};
use super::runner::Runner;
use super::timeit::{py_round2, say};

// ---------------------------------------------------------------------------
// Remote functions and actors (ray_perf.py's helpers) only these metrics use.

/// Ray: `create_object_containing_ref`: a list of 10 000 refs to `ray.put(1)`.
#[ferry::remote]
fn create_object_containing_ref(rt: &Runtime) -> ferry::Result<Vec<ObjectRef<u64>>> {
    (0..10_000).map(|_| rt.put(&1u64)).collect()
}

/// Ray: `@ray.remote(num_cpus=0) class Client(servers)`.
#[ferry::actor]
struct Client {
    servers: Vec<ActorHandle<Server>>,
}

#[ferry::actor]
impl Client {
    fn new(servers: Vec<ActorHandle<Server>>) -> Self {
        Client { servers }
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

    /// `x = put(0)`, then `n` calls with `x` (a ref) as the argument to each
    /// server, then one get of them all.
    fn small_value_batch_arg(&self, rt: &Runtime, n: u64) -> ferry::Result<()> {
        let x = rt.put(&0u64)?;
        let mut refs = Vec::with_capacity(n as usize * self.servers.len());
        for s in &self.servers {
            for _ in 0..n {
                refs.push(s.small_value_arg(&x).remote()?);
            }
        }
        rt.get_all(&refs)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------

/// Submits `n` `small_value` tasks.
fn small_values(rt: &Runtime, n: usize) -> ferry::Result<Vec<ObjectRef<Vec<u8>>>> {
    (0..n).map(|_| small_value::remote(rt)).collect()
}

fn actors(rt: &Runtime, n: usize) -> ferry::Result<Vec<ActorHandle<Server>>> {
    (0..n).map(|_| Server::remote(rt)).collect()
}

/// Client threads for `1:1 actor calls concurrent`.
///
/// Ray runs that metric against a threaded actor (`max_concurrency=16`) that
/// executes up to 16 calls at once. This metric was written before Ferry had
/// threaded actors (`ActorOptions::max_concurrency`) and is kept as it was,
/// so that its figures compare with earlier ones: the concurrency is on the
/// caller side: the 1000 calls of one round are submitted
/// by 16 long-lived threads at once (62 or 63 calls each, then each gets its
/// own results), all to the same actor. The threads live for the whole
/// metric, so thread start-up is not timed. This measures contention on the
/// actor's mailbox, which a single submitter (`1:1 actor calls async`) does
/// not.
struct ConcurrentCallers {
    go: Vec<mpsc::Sender<()>>,
    done: mpsc::Receiver<ferry::Result<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl ConcurrentCallers {
    const THREADS: usize = 16;
    const CALLS: usize = 1000;

    fn start(rt: &Runtime, actor: &ActorHandle<Server>) -> ConcurrentCallers {
        let (done_tx, done) = mpsc::channel();
        let mut go = Vec::new();
        let mut threads = Vec::new();
        for i in 0..Self::THREADS {
            let share = Self::CALLS / Self::THREADS + usize::from(i < Self::CALLS % Self::THREADS);
            let (tx, rx) = mpsc::channel::<()>();
            let rt = rt.clone();
            let actor = actor.clone();
            let done_tx = done_tx.clone();
            go.push(tx);
            threads.push(thread::spawn(move || {
                while rx.recv().is_ok() {
                    let r = (0..share)
                        .map(|_| actor.small_value().remote())
                        .collect::<ferry::Result<Vec<_>>>()
                        .and_then(|refs: Vec<_>| rt.get_all(&refs).map(drop));
                    if done_tx.send(r).is_err() {
                        break;
                    }
                }
            }));
        }
        ConcurrentCallers { go, done, threads }
    }

    fn round(&self) -> ferry::Result<()> {
        for tx in &self.go {
            tx.send(()).map_err(|_| {
                ferry::Error::Init("ray metrics bench: a caller thread stopped".into())
            })?;
        }
        let mut result = Ok(());
        for _ in 0..self.go.len() {
            let r = self.done.recv().map_err(|_| {
                ferry::Error::Init("ray metrics bench: a caller thread stopped".into())
            })?;
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl Drop for ConcurrentCallers {
    fn drop(&mut self) {
        self.go.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Ray's `np.zeros(100 * 1024 * 1024, dtype=np.int64)`: 800 MiB.
const BIG_LEN: usize = 100 * 1024 * 1024;

/// Runs the metrics that pass `r`'s filter, in ray_perf.py's order.
pub(crate) fn run(rt: &Runtime, r: &mut Runner<'_>) -> ferry::Result<()> {
    let n_cpu = half_cpus();

    r.metric(
        "single client get calls (Plasma Store)",
        1.0,
        || rt.put(&0u64),
        |value| {
            black_box(rt.get(value)?.to_native());
            Ok(())
        },
    )?;

    r.metric(
        "single client put calls (Plasma Store)",
        1.0,
        || Ok(()),
        |_| {
            drop(black_box(rt.put(&0u64)?));
            Ok(())
        },
    )?;

    r.metric(
        "multi client put calls (Plasma Store)",
        1000.0,
        || Ok(()),
        |_| {
            let refs = (0..10)
                .map(|_| do_put_small::remote(rt))
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;

    // The source is written once so that its pages are real memory (numpy's
    // zeros are untouched calloc pages that all read the one zero page); the
    // memcpy below copies the same buffer, so the two are comparable.
    let name = "single client put gigabytes";
    if r.wants(name) {
        let mut arr = vec![0i64; BIG_LEN];
        arr.fill(black_box(0));
        let put = r.measure(
            name,
            8.0 * 0.1,
            || Ok(()),
            |_| {
                // Freed at once, as the Python ref is dropped at once.
                drop(rt.put(&arr)?);
                Ok(())
            },
        )?;
        let mut dst = vec![1i64; BIG_LEN];
        // Runs whenever the put metric runs, whatever the filter.
        let memcpy = r.measure(
            "memcpy gigabytes",
            8.0 * 0.1,
            || Ok(()),
            |_| {
                dst.copy_from_slice(black_box(&arr));
                black_box(&mut dst);
                Ok(())
            },
        )?;
        say(&format!(
            "put / memcpy ratio {} (single-thread memcpy of the same 800 MiB buffer into a pre-touched destination)",
            py_round2(put.mean / memcpy.mean)
        ));
    }

    r.metric(
        "single client tasks and get batch",
        1.0,
        || Ok(()),
        |_| {
            rt.get_all(&small_values(rt, 1000)?)?;
            Ok(())
        },
    )?;

    r.metric(
        "multi client put gigabytes",
        10.0 * 8.0 * 0.1,
        || Ok(()),
        |_| {
            let refs = (0..10)
                .map(|_| do_put::remote(rt))
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;

    r.metric(
        "single client get object containing 10k refs",
        1.0,
        || {
            let obj = create_object_containing_ref::remote(rt)?;
            rt.get(&obj)?;
            Ok(obj)
        },
        |obj| {
            // Ray's get deserializes the list into 10 000 live ObjectRefs; so
            // does this (a zero-copy view alone would not touch them).
            let refs: Vec<ObjectRef<u64>> = rt.get_value(obj)?;
            debug_assert_eq!(refs.len(), 10_000);
            drop(black_box(refs));
            Ok(())
        },
    )?;

    r.metric(
        "single client wait 1k refs",
        1.0,
        || Ok(()),
        |_| {
            let mut not_ready = small_values(rt, 1000)?;
            for _ in 0..1000 {
                let (_ready, rest) = rt.wait(not_ready, 1, None)?;
                not_ready = rest;
            }
            Ok(())
        },
    )?;

    // `get` on a task that no worker has started yet runs it on the calling
    // thread (Ferry's getter-runs-it rule), so this round trip mostly stays
    // on the driver thread, where Ray's always crosses to a worker process.
    r.metric(
        "single client tasks sync",
        1.0,
        || Ok(()),
        |_| {
            rt.get(&small_value::remote(rt)?)?;
            Ok(())
        },
    )?;

    r.metric(
        "single client tasks async",
        1000.0,
        || Ok(()),
        |_| {
            rt.get_all(&small_values(rt, 1000)?)?;
            Ok(())
        },
    )?;

    let (n, m) = (10_000u64, 4usize);
    r.metric(
        "multi client tasks async",
        (n * m as u64) as f64,
        || actors(rt, m),
        |clients| {
            let refs = clients
                .iter()
                .map(|a| a.small_value_batch(n).remote())
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;

    r.metric(
        "1:1 actor calls sync",
        1.0,
        || Server::remote(rt),
        |a| {
            rt.get(&a.small_value().remote()?)?;
            Ok(())
        },
    )?;

    r.metric(
        "1:1 actor calls async",
        1000.0,
        || Server::remote(rt),
        |a| {
            let refs = (0..1000)
                .map(|_| a.small_value().remote())
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;

    r.metric(
        "1:1 actor calls concurrent",
        ConcurrentCallers::CALLS as f64,
        || {
            let a = Server::remote(rt)?;
            Ok(ConcurrentCallers::start(rt, &a))
        },
        |callers| callers.round(),
    )?;

    let n = 5000u64;
    r.metric(
        "1:n actor calls async",
        (n * n_cpu as u64) as f64,
        || Client::remote(rt, actors(rt, n_cpu)?),
        |client| {
            rt.get(&client.small_value_batch(n).remote()?)?;
            Ok(())
        },
    )?;

    let (n, m) = (5000u64, 4usize);
    r.metric(
        "n:n actor calls async",
        (n * m as u64) as f64,
        || actors(rt, n_cpu),
        |servers| {
            let refs = (0..m)
                .map(|_| work::remote(rt, servers.clone()))
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;

    let n = 1000u64;
    r.metric(
        "n:n actor calls with arg async",
        (n * n_cpu as u64) as f64,
        || {
            actors(rt, n_cpu)?
                .into_iter()
                .map(|a| Client::remote(rt, vec![a]))
                .collect::<ferry::Result<Vec<_>>>()
        },
        |clients| {
            let refs = clients
                .iter()
                .map(|c| c.small_value_batch_arg(n).remote())
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;
    Ok(())
}
