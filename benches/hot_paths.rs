//! Criterion benchmarks of Ferry's hot paths on one rank: small put/get,
//! task round trips, actor calls, and a 64 MiB put next to a plain memcpy.
//!
//! Run with `cargo bench --bench hot_paths` (`-- --quick` for a short run).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput};
use ferry::{ActorHandle, Runtime};

#[ferry::remote]
fn small_value() -> u64 {
    1
}

/// An actor whose method does nothing but answer.
#[ferry::actor]
struct Echo;

#[ferry::actor]
impl Echo {
    fn new() -> Self {
        Echo
    }

    fn ping(&self) -> u64 {
        1
    }
}

const MIB_64: usize = 64 << 20;

fn small_objects(c: &mut Criterion, rt: &Runtime) {
    c.benchmark_group("put small (u64)")
        .bench_function("put", |b| b.iter(|| rt.put(black_box(&7u64)).unwrap()));

    let r = rt.put(&7u64).unwrap();
    c.benchmark_group("get small").bench_function("get", |b| {
        b.iter(|| black_box(rt.get(&r).unwrap().to_native()))
    });
}

fn tasks(c: &mut Criterion, rt: &Runtime) {
    c.benchmark_group("submit+get one task (tasks sync)")
        .bench_function("task", |b| {
            b.iter(|| {
                rt.get(&small_value::remote(rt).unwrap())
                    .unwrap()
                    .to_native()
            })
        });

    let mut g = c.benchmark_group("1000 tasks async");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("submit 1000, get all", |b| {
        b.iter(|| {
            let refs = (0..1000)
                .map(|_| small_value::remote(rt))
                .collect::<ferry::Result<Vec<_>>>()
                .unwrap();
            rt.get_all(&refs).unwrap().len()
        })
    });
    g.finish();
}

fn actor_calls(c: &mut Criterion, rt: &Runtime) {
    let a: ActorHandle<Echo> = Echo::remote(rt).unwrap();
    c.benchmark_group("actor call sync")
        .bench_function("call", |b| {
            b.iter(|| rt.get(&a.ping().remote().unwrap()).unwrap().to_native())
        });

    let mut g = c.benchmark_group("actor call async batch");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000 calls, get all", |b| {
        b.iter(|| {
            let refs = (0..1000)
                .map(|_| a.ping().remote())
                .collect::<ferry::Result<Vec<_>>>()
                .unwrap();
            rt.get_all(&refs).unwrap().len()
        })
    });
    g.finish();
}

fn big_put(c: &mut Criterion, rt: &Runtime) {
    let n = MIB_64 / size_of::<f64>();
    let src: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut dst = vec![0.0f64; n];
    dst.fill(black_box(1.0));

    let mut g = c.benchmark_group("put 64 MiB Vec<f64> vs memcpy 64 MiB");
    g.throughput(Throughput::Bytes(MIB_64 as u64));
    g.sample_size(20);
    // The ref is dropped outside the timed part, so freeing is not measured.
    g.bench_function("put", |b| {
        b.iter_batched(
            || (),
            |()| rt.put(black_box(&src)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    g.finish();
}

fn main() {
    let rt = ferry::init(ferry::Config::default()).expect("start the Ferry runtime");
    let mut c = Criterion::default().configure_from_args();
    small_objects(&mut c, &rt);
    tasks(&mut c, &rt);
    actor_calls(&mut c, &rt);
    big_put(&mut c, &rt);
    c.final_summary();
    rt.shutdown().expect("shut the runtime down");
}
