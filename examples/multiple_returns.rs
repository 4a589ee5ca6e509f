//! Multiple returns, as in Ray's documentation for `num_returns` ("Tasks
//! → Multiple returns"): by default a task returns one ref, to its whole
//! return value; `#[ferry::remote(num_returns = 3)]` on a function that
//! returns a 3-tuple gives three refs, one object per element.
//!
//! Run it with `cargo run --example multiple_returns`.

// By default, a task returns a single ref.
#[ferry::remote]
fn return_single() -> (u64, u64, u64) {
    (0, 1, 2)
}

// However, you can configure a task to return multiple refs.
#[ferry::remote(num_returns = 3)]
fn return_multiple() -> (u64, u64, u64) {
    (0, 1, 2)
}

// Each element is an object of its own: its type, its consumers, its
// lifetime.
#[ferry::remote(num_returns = 2)]
fn mean_and_label(xs: Vec<f64>) -> (f64, String) {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    (mean, format!("{} samples", xs.len()))
}

#[ferry::remote]
fn double(x: f64) -> f64 {
    2.0 * x
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    let object_ref = return_single::remote(&rt)?;
    assert_eq!(rt.get_value(&object_ref)?, (0, 1, 2));

    let (object_ref0, object_ref1, object_ref2) = return_multiple::remote(&rt)?;
    assert_eq!(*rt.get(&object_ref0)?, 0);
    assert_eq!(*rt.get(&object_ref1)?, 1);
    assert_eq!(*rt.get(&object_ref2)?, 2);

    let (mean, label) = mean_and_label::remote(&rt, vec![1.0, 2.0, 3.0, 6.0])?;
    let doubled = double::remote(&rt, &mean)?; // waits for the mean only
    drop(mean); // frees the mean's object; the label lives on
    assert_eq!(*rt.get(&doubled)?, 6.0);
    println!(
        "mean doubled: {}, {}",
        *rt.get(&doubled)?,
        rt.get(&label)?.as_str()
    );
    Ok(())
}
