//! `ActorPool` over actors on every rank.

use std::collections::BTreeSet;

use ferry::{ActorPool, Runtime};

use super::here;

/// Doubles values, saying on which rank.
#[ferry::actor]
struct Doubler {
    calls: u64,
}

#[ferry::actor]
impl Doubler {
    fn new() -> Self {
        Doubler { calls: 0 }
    }

    fn double(&mut self, x: u64) -> (u32, u64) {
        self.calls += 1;
        (here(), x * 2)
    }
}

/// One actor per rank in a pool: `map` keeps the order, `map_unordered`
/// returns every result once, and every rank's actor takes calls.
pub(super) fn an_actor_pool_spreads_calls_over_actors_on_several_ranks(
    rt: &Runtime,
) -> ferry::Result<()> {
    let n = rt.world_size();
    let actors = (0..n)
        .map(|r| Doubler::options().on_rank(r).remote(rt))
        .collect::<ferry::Result<Vec<_>>>()?;
    let mut pool = ActorPool::new(actors);
    let values = 0..u64::from(8 * n);
    let want: Vec<u64> = values.clone().map(|x| x * 2).collect();

    let got: Vec<(u32, u64)> = pool
        .map(|a, v| a.double(v).remote(), values.clone())
        .map(|r| r?.deserialize())
        .collect::<ferry::Result<_>>()?;
    assert_eq!(got.iter().map(|&(_, v)| v).collect::<Vec<_>>(), want);
    let ranks: BTreeSet<u32> = got.iter().map(|&(r, _)| r).collect();
    assert_eq!(ranks, (0..n).collect(), "every rank's actor took calls");

    let mut got: Vec<u64> = pool
        .map_unordered(|a, v| a.double(v).remote(), values)
        .map(|r| Ok(r?.deserialize()?.1))
        .collect::<ferry::Result<_>>()?;
    got.sort_unstable();
    assert_eq!(got, want);
    assert!(!pool.has_next());
    Ok(())
}
