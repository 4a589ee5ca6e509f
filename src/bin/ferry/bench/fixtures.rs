//! The tasks and the actor that several `ferry bench` groups share, after
//! ray_perf.py's helpers: the `small_value` task, the `do_put` /
//! `do_put_small` clients, the n:n client task `work` and the `Server` actor.

use ferry::{ActorHandle, Runtime};

/// `ray_perf.py`'s `n_cpu = multiprocessing.cpu_count() // 2` (at least 1).
pub(super) fn half_cpus() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / 2).max(1)
}

/// Ray: `@ray.remote def small_value(): return b"ok"` (1 CPU).
#[ferry::remote]
pub(super) fn small_value() -> Vec<u8> {
    b"ok".to_vec()
}

/// Ray: `do_put_small`: 100 puts of a small integer.
#[ferry::remote]
pub(super) fn do_put_small(rt: &Runtime) -> ferry::Result<()> {
    for _ in 0..100 {
        drop(rt.put(&0u64)?);
    }
    Ok(())
}

/// Ray: `do_put`: 10 puts of `np.zeros(10 * 1024 * 1024, dtype=np.int64)`.
#[ferry::remote]
pub(super) fn do_put(rt: &Runtime) -> ferry::Result<()> {
    for _ in 0..10 {
        let arr = numpy_zeros(10 * 1024 * 1024);
        drop(rt.put(&arr)?);
    }
    Ok(())
}

/// A fresh zeroed array the way numpy makes one: calloc'd (untouched) pages,
/// with transparent huge pages asked for (numpy's `madvise(MADV_HUGEPAGE)`
/// on large arrays), so the first read faults once per 2 MiB, not per 4 KiB.
fn numpy_zeros(n: usize) -> Vec<i64> {
    let v = vec![0i64; n];
    let page = 4096usize;
    let start = v.as_ptr() as usize & !(page - 1);
    let end = v.as_ptr() as usize + n * std::mem::size_of::<i64>();
    // SAFETY: [start, end) lies within the pages of `v`'s allocation (start is
    // rounded down to the page that holds v's first byte); MADV_HUGEPAGE is
    // advice only and changes no contents. A failure is harmless: ignored.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
    v
}

/// Ray's n:n client task `work(actors)`: 5000 calls round-robin over the
/// actors, then one get of them all.
#[ferry::remote]
pub(super) fn work(rt: &Runtime, actors: Vec<ActorHandle<Server>>) -> ferry::Result<()> {
    let refs = (0..5000)
        .map(|i| actors[i % actors.len()].small_value().remote())
        .collect::<ferry::Result<Vec<_>>>()?;
    rt.get_all(&refs)?;
    Ok(())
}

/// Ray: `@ray.remote(num_cpus=0) class Actor` (Ferry actors default to 0 CPUs).
/// Named `Server` because a class `Actor` would generate a proxy type
/// `ActorHandle` that shadows `ferry::ActorHandle`.
#[ferry::actor]
pub(super) struct Server;

#[ferry::actor]
impl Server {
    fn new() -> Self {
        Server
    }

    fn small_value(&self) -> Vec<u8> {
        b"ok".to_vec()
    }

    fn small_value_arg(&self, _x: u64) -> Vec<u8> {
        b"ok".to_vec()
    }

    /// Submits `n` `small_value` **tasks** and gets them.
    fn small_value_batch(&self, rt: &Runtime, n: u64) -> ferry::Result<()> {
        let refs = (0..n)
            .map(|_| small_value::remote(rt))
            .collect::<ferry::Result<Vec<_>>>()?;
        rt.get_all(&refs)?;
        Ok(())
    }
}
