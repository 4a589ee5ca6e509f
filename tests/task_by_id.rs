//! Remote functions found by their stable id and run from encoded arguments,
//! as another rank of the same binary will run them.

use ferry::{Config, Error};

#[ferry::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[ferry::remote]
fn total(xs: ferry::View<Vec<u64>>, extra: u64) -> u64 {
    xs.iter().map(|x| x.to_native()).sum::<u64>() + extra
}

#[ferry::remote]
fn unit() {}

fn runtime() -> ferry::Result<ferry::Runtime> {
    ferry::init(
        Config::default()
            .num_cpus(2.0)
            .object_store_memory(32 << 20),
    )
}

#[test]
fn ids_are_stable_hashes_of_the_path() {
    assert_eq!(
        square::ID,
        ferry::__private::stable_id(concat!(module_path!(), "::square"))
    );
    let f = ferry::__private::lookup_remote(square::ID).expect("square is registered");
    assert!(f.path.ends_with("::square"), "{}", f.path);
    assert_ne!(square::ID, total::ID);
}

#[test]
fn an_encoded_call_runs_by_id() -> ferry::Result<()> {
    let rt = runtime()?;
    let call = square::encode(&rt, 7)?;
    let r = ferry::__private::invoke(&rt, &call)?.cast::<u64>();
    assert_eq!(*rt.get(&r)?, 49);
    let call = unit::encode(&rt)?;
    let r = ferry::__private::invoke(&rt, &call)?.cast::<()>();
    rt.get(&r)?;
    rt.shutdown()
}

#[test]
fn encoded_refs_are_resolved_and_kept_alive() -> ferry::Result<()> {
    let rt = runtime()?;
    let xs = rt.put(&vec![1u64, 2, 3])?;
    let call = total::encode(&rt, xs, 10)?; // the ref moves into the encoded call
    let r = ferry::__private::invoke(&rt, &call)?.cast::<u64>();
    assert_eq!(*rt.get(&r)?, 16);
    rt.shutdown()
}

#[test]
fn corrupt_encoded_arguments_are_an_error() -> ferry::Result<()> {
    let rt = runtime()?;
    let mut call = square::encode(&rt, 7)?;
    call.args.clear();
    call.args.extend_from_slice(&[0xff; 3]);
    assert!(matches!(
        ferry::__private::invoke(&rt, &call),
        Err(Error::Corrupt { .. })
    ));
    call.id = 12345;
    assert!(matches!(
        ferry::__private::invoke(&rt, &call),
        Err(Error::FunctionNotInBinary { id: 12345 })
    ));
    rt.shutdown()
}
