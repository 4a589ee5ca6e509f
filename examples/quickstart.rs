//! The quick start: tasks, an actor, put/get, wait, and a 1 GiB object.
//!
//! Run it with `cargo run --release --example quickstart`.

#[ferry::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[ferry::remote]
fn sum(v: ferry::View<Vec<f64>>) -> f64 {
    v.as_slice().iter().sum()
}

/// A counter actor.
#[ferry::actor]
struct Counter {
    value: u64,
}

#[ferry::actor]
impl Counter {
    fn new(start: u64) -> Self {
        Counter { value: start }
    }

    fn increment(&mut self) -> u64 {
        self.value += 1;
        self.value
    }
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let r = square::remote(&rt, 4)?;
    assert_eq!(*rt.get(&r)?, 16);
    println!("square(4) = {}", *rt.get(&r)?);

    let c = Counter::remote(&rt, 0)?;
    let refs: Vec<_> = (0..5)
        .map(|_| c.increment().remote())
        .collect::<Result<_, _>>()?;
    let (ready, pending) = rt.wait(&refs, 2, None)?;
    // Without a timeout, wait returns once 2 are ready, and exactly 2; calls
    // to one actor end in the order they were made, so they are the first 2.
    assert_eq!((ready.len(), pending.len()), (2, 3));
    assert!(ready[..] == refs[..2], "the first two calls end first");
    let counts: Vec<u64> = refs
        .iter()
        .map(|r| rt.get(r).map(|v| v.to_native()))
        .collect::<Result<_, _>>()?;
    assert_eq!(counts, vec![1, 2, 3, 4, 5]);
    println!("counter: {counts:?}");

    let n = 1usize << 27; // 1 GiB of f64
    let big = rt.put_vec_with::<f64>(n, |xs| xs.fill(1.0))?;
    // A task runs on one rank, so it may ask for at most what one rank has:
    // under `mpirun` that is often a single core (more: FERRY_NUM_CPUS, or
    // a binding with more cores per rank).
    let s = sum::options()
        .num_cpus(1.0)
        .max_retries(5)
        .remote(&rt, &big)?;
    assert_eq!(*rt.get(&s)?, n as f64);
    println!("sum of 1 GiB of ones = {}", *rt.get(&s)?);
    Ok(())
}
