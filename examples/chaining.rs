//! "2. Chaining Tasks and Passing Data" of the Ray Core advanced tutorial
//! (seed 004): pass an `ObjectRef` straight to the next task instead of
//! fetching it; refs nested in containers are passed as refs.
//!
//! Run it with `cargo run --example chaining`.

use std::time::{Duration, Instant};

use ferry::ObjectRef;

#[ferry::remote]
fn remote_add(a: u64, b: u64) -> u64 {
    a + b
}

#[ferry::remote]
fn expensive_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    x * x
}

/// `remote_add([ref], [ref])`: the lists hold refs, which are not resolved.
#[ferry::remote]
fn pass_refs(a: Vec<ObjectRef<u64>>, b: Vec<ObjectRef<u64>>) -> Vec<ObjectRef<u64>> {
    a.into_iter().chain(b).collect()
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    // Anti-pattern: fetch the intermediate result into the driver.
    let square_ref = expensive_square::remote(&rt, 2)?;
    let square_value = rt.get(&square_ref)?.to_native();
    let sum_ref = remote_add::remote(&rt, 1, square_value)?;
    assert_eq!(*rt.get(&sum_ref)?, 5);

    // Chain the tasks by passing the ObjectRef directly.
    let start = Instant::now();
    let square_ref = expensive_square::remote(&rt, 2)?;
    let sum_ref = remote_add::remote(&rt, 1, square_ref)?;
    let submitted = start.elapsed();
    let sum_value = rt.get(&sum_ref)?.to_native();
    assert_eq!(sum_value, 5);
    // Submitting did not wait for the square.
    assert!(submitted < Duration::from_millis(100), "{submitted:?}");
    println!("chained: remote_add(1, expensive_square(2)) = {sum_value}");

    // Nested refs: ref = expensive_square.remote(1); remote_add.remote([ref], [ref])
    let r = expensive_square::remote(&rt, 1)?;
    let out_ref = pass_refs::remote(&rt, vec![r.clone()], vec![r.clone()])?;
    let out = rt.get(&out_ref)?;
    println!("pass_refs([ref], [ref]) = {:?}", &*out);
    assert_eq!(out.len(), 2);
    for archived in out.iter() {
        assert_eq!(archived.id(), r.id());
        let back: ObjectRef<u64> = archived.to_ref()?;
        assert_eq!(back, r);
        assert_eq!(*rt.get(&back)?, 1);
    }
    println!("both nested refs name {:?}, whose value is 1", r);
    Ok(())
}
