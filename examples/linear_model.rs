//! "Activity: linear model inference" of "8. Ray Actors" (seed 004): an actor
//! that holds model weights and converts Celsius to Fahrenheit.
//!
//! Run it with `cargo run --example linear_model`.

/// A linear model `w1 * x + w0` whose weights are actor state.
#[ferry::actor]
struct LinearModel {
    w0: f64,
    w1: f64,
}

#[ferry::actor]
impl LinearModel {
    fn new(w0: f64, w1: f64) -> Self {
        LinearModel { w0, w1 }
    }

    fn convert(&self, celsius: f64) -> f64 {
        self.w1 * celsius + self.w0
    }
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    // model = LinearModel.remote(w1=9/5, w0=32)
    let model = LinearModel::remote(&rt, 32.0, 9.0 / 5.0)?;
    // ray.get(model.convert.remote(100))
    let f = rt.get(&model.convert(100.0).remote()?)?.to_native();
    assert_eq!(f, 212.0);
    println!("100 C = {f:?} F");
    Ok(())
}
