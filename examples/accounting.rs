//! The `Accounting` actor of "8. Ray Actors" (seeds 003 and 004): a running
//! balance kept as actor state and mutated by messages.
//!
//! Run it with `cargo run --example accounting`.

/// An actor that maintains a running balance.
#[ferry::actor]
struct Accounting {
    total: i64,
}

#[ferry::actor]
impl Accounting {
    fn new() -> Self {
        Accounting { total: 0 }
    }

    fn add(&mut self, amount: i64) {
        self.total += amount;
    }

    fn remove(&mut self, amount: i64) {
        self.total -= amount;
    }

    fn total(&self) -> i64 {
        self.total
    }
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    // acc = Accounting.remote()
    let acc = Accounting::remote(&rt)?;

    // acc.total.remote() is an object ref; ray.get of it is 0.
    let r = acc.total().remote()?;
    println!("acc.total() -> {r:?}");
    assert_eq!(*rt.get(&r)?, 0);

    // Mutate the state inside the actor.
    let _ = acc.add(100).remote()?;
    let _ = acc.remove(10).remote()?;

    let total = rt.get(&acc.total().remote()?)?.to_native();
    assert_eq!(total, 90);
    println!("total after add(100), remove(10): {total}");
    Ok(())
}
