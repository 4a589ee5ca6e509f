//! Parameters of remote functions, actor constructors and actor methods may
//! have any name, including the names of the bindings the macros generate
//! (`rt`, `id`, `opts`, `options`, `actor`, `bytes`): a constructor taking
//! `id: u32` once failed to compile.

mod common;
use common::start;

/// Every parameter carries a name the generated code also uses.
#[ferry::remote]
fn combine(rt: u64, options: u64, bytes: u64, id: u64, actor: u64) -> u64 {
    rt * 10_000 + options * 1000 + bytes * 100 + id * 10 + actor
}

/// A pattern parameter next to named ones.
#[ferry::remote]
fn swap((a, b): (u64, u64), opts: u64) -> (u64, u64) {
    (b + opts, a + opts)
}

#[ferry::actor]
struct Tagged {
    id: u32,
    sum: u64,
}

#[ferry::actor]
impl Tagged {
    fn new(id: u32, rt: u64, opts: u64, bytes: Vec<u8>) -> Self {
        let sum = rt + opts + bytes.iter().map(|&b| u64::from(b)).sum::<u64>();
        Tagged { id, sum }
    }

    fn mix(&mut self, rt: u64, actor: u64, bytes: u64, id: u64) -> u64 {
        self.sum += rt + actor + bytes + id;
        self.sum * 100 + u64::from(self.id)
    }
}

#[test]
fn parameters_named_like_the_generated_bindings_work() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = combine::remote(&rt, 1, 2, 3, 4, 5)?;
    assert_eq!(rt.get_value(&r)?, 12_345);
    let s = swap::remote(&rt, (1, 2), 10)?;
    assert_eq!(rt.get_value(&s)?, (12, 11));

    let a = Tagged::options().remote(&rt, 7, 1, 2, vec![3, 4])?;
    // sum = 1 + 2 + 3 + 4 = 10, then + 1 + 2 + 3 + 4 = 20.
    let m = a.mix(1, 2, 3, 4).remote()?;
    assert_eq!(rt.get_value(&m)?, 20 * 100 + 7);
    Ok(())
}
