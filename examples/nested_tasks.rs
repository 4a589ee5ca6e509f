//! "6. Nested Tasks" of the Ray Core advanced tutorial (seed 004): a task
//! that submits tasks and waits for them. With a single CPU this only works
//! because a task blocked in `get` gives its CPU back while it waits.
//!
//! Run it with `cargo run --example nested_tasks`.

use std::time::Duration;

use ferry::Runtime;

#[ferry::remote]
fn remote_add(a: u64, b: u64) -> u64 {
    a + b
}

#[ferry::remote]
fn expensive_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(50));
    x * x
}

/// The tutorial's `main` task.
#[ferry::remote]
fn main_task(rt: &Runtime) -> ferry::Result<u64> {
    let square_ref_1 = expensive_square::remote(rt, 1)?;
    let square_ref_2 = expensive_square::remote(rt, 2)?;
    let add_ref = remote_add::remote(rt, square_ref_1, square_ref_2)?;
    Ok(rt.get(&add_ref)?.to_native())
}

/// Deeper nesting: every call below 2 submits two tasks and waits for both.
#[ferry::remote]
fn fib(rt: &Runtime, n: u64) -> ferry::Result<u64> {
    if n < 2 {
        return Ok(n);
    }
    let a = fib::remote(rt, n - 1)?;
    let b = fib::remote(rt, n - 2)?;
    Ok(rt.get(&a)?.to_native() + rt.get(&b)?.to_native())
}

fn main() -> ferry::Result<()> {
    let rt = ferry::init(ferry::Config::default().num_cpus(1.0))?;
    let limit = Duration::from_secs(30);

    // ray.get(main.remote())
    let r = main_task::remote(&rt)?;
    let v = rt.get_timeout(&r, limit)?.to_native();
    assert_eq!(v, 5);
    println!("main task on 1 CPU: expensive_square(1) + expensive_square(2) = {v}");

    let r = fib::remote(&rt, 10)?;
    let v = rt.get_timeout(&r, limit)?.to_native();
    assert_eq!(v, 55);
    println!("fib(10) as nested tasks on 1 CPU = {v}");
    // The CPU comes back once the last task has released it (the result can
    // be seen a moment before that, as with Ray's `available_resources`).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let total = rt.cluster_resources()["CPU"]; // 1 per rank
    while rt.available_resources()["CPU"] != total {
        assert!(
            std::time::Instant::now() < deadline,
            "the CPU did not come back"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    rt.shutdown()
}
