//! Named actors across ranks: the registry on rank 0 answers every rank.

use ferry::{ActorId, Error, Runtime};

use super::{BOUND, eventually, here, last};

/// Counts, saying on which rank.
#[ferry::actor]
struct Tally {
    n: u64,
}

#[ferry::actor]
impl Tally {
    fn new(start: u64) -> Self {
        Tally { n: start }
    }

    fn add(&mut self, x: u64) -> (u32, u64) {
        self.n += x;
        (here(), self.n)
    }
}

/// Finds `name` from the rank this runs on and adds 1 through it.
#[ferry::remote]
fn add_by_name(name: String) -> ferry::Result<(u32, u32, u64)> {
    let rt = ferry::current()?;
    let t = ferry::get_actor::<Tally>(&rt, &name)?;
    let (host, n) = rt.get_value(&t.add(1).remote()?)?;
    Ok((rt.rank(), host, n))
}

/// Tries to create another `Tally` called `name` from the rank this runs
/// on: "taken" when the name is, or with `get_if_exists` the id of the
/// actor it got.
#[ferry::remote]
fn create_again(name: String, get_if_exists: bool) -> ferry::Result<String> {
    let rt = ferry::current()?;
    let opts = Tally::options().name(name);
    let made = if get_if_exists {
        opts.get_if_exists().remote(&rt, 0)
    } else {
        opts.remote(&rt, 0)
    };
    Ok(match made {
        Ok(t) => t.id().to_string(),
        Err(Error::ActorNameTaken { .. }) => "taken".to_string(),
        Err(e) => format!("{e:?}"),
    })
}

/// Creates a detached `Tally` called `name` from the rank this runs on (on
/// `host`), calls it, and lets go of its handle; its id.
#[ferry::remote]
fn create_detached(name: String, host: u32) -> ferry::Result<u64> {
    let rt = ferry::current()?;
    let t = Tally::options()
        .name(name)
        .on_rank(host)
        .lifetime_detached()
        .remote(&rt, 40)?;
    rt.get_value(&t.add(1).remote()?)?;
    Ok(t.id().as_u64())
}

/// Whether `name` is free, asked from rank 0.
fn name_is_free(rt: &Runtime, name: &str) -> ferry::Result<bool> {
    match ferry::get_actor::<Tally>(rt, name) {
        Err(Error::ActorNameNotFound { .. }) => Ok(true),
        Ok(_) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Created on one rank for another, found and called from every rank; a
/// second creation from another rank fails, or with `get_if_exists` gives
/// the same actor; killed, its name is free again.
pub(super) fn a_named_actor_is_found_from_every_rank(rt: &Runtime) -> ferry::Result<()> {
    let host = last(rt);
    let t = Tally::options().name("tally").on_rank(host).remote(rt, 0)?;
    let mut total = 0;
    for r in 0..rt.world_size() {
        let (ran_on, lives_on, n) = rt.get_value(
            &add_by_name::options()
                .on_rank(r)
                .remote(rt, "tally".to_string())?,
        )?;
        total += 1;
        assert_eq!((ran_on, lives_on, n), (r, host, total));
    }
    let from = 1;
    let again = create_again::options()
        .on_rank(from)
        .remote(rt, "tally".to_string(), false)?;
    assert_eq!(rt.get_value(&again)?, "taken");
    let got = create_again::options()
        .on_rank(from)
        .remote(rt, "tally".to_string(), true)?;
    assert_eq!(rt.get_value(&got)?, t.id().to_string());
    // One more call through rank 0's handle sees every rank's.
    assert_eq!(rt.get_value(&t.add(1).remote()?)?, (host, total + 1));
    t.kill();
    assert!(
        eventually(BOUND, || name_is_free(rt, "tally"))?,
        "the name of a killed actor was not freed"
    );
    Ok(())
}

/// A detached actor created from a task on another rank lives on when that
/// task's handle is gone, and when rank 0's is, until killed.
pub(super) fn a_detached_actor_outlives_its_creator_s_handles(rt: &Runtime) -> ferry::Result<()> {
    let creator = 1;
    let host = last(rt);
    let id = rt.get_value(&create_detached::options().on_rank(creator).remote(
        rt,
        "keeper".to_string(),
        host,
    )?)?;
    // The creator's handle is gone; give its release time to arrive.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let t = ferry::get_actor::<Tally>(rt, "keeper")?;
    assert_eq!(t.id(), ActorId::from_u64(id));
    assert_eq!(rt.get_value(&t.add(1).remote()?)?, (host, 42));
    drop(t);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (_, lives_on, n) = rt.get_value(
        &add_by_name::options()
            .on_rank(creator)
            .remote(rt, "keeper".to_string())?,
    )?;
    assert_eq!((lives_on, n), (host, 43), "still alive, state kept");
    let t = ferry::get_actor::<Tally>(rt, "keeper")?;
    t.kill();
    match rt.get_value(&t.add(1).remote()?) {
        Err(Error::ActorDied { .. }) => {}
        other => panic!("expected ActorDied after kill, got {other:?}"),
    }
    assert!(
        eventually(BOUND, || name_is_free(rt, "keeper"))?,
        "the name of a killed detached actor was not freed"
    );
    Ok(())
}

/// Dies on demand.
#[ferry::actor]
struct Fragile {
    round: u64,
}

#[ferry::actor]
impl Fragile {
    fn new(round: u64) -> Self {
        Fragile { round }
    }

    fn round(&self) -> u64 {
        self.round
    }

    fn explode(&mut self) -> u64 {
        panic!("round {} explodes on purpose", self.round)
    }
}

/// Rounds of: make the named actor on rank `host`, let it die, hear
/// `ActorDied`, make it again by the same name at once. Run on a rank that
/// is neither the host nor the registry when there are three ranks or more,
/// so that the host's `NameFree` and its `ActorDied` go different ways.
#[ferry::remote]
fn rebirths(name: String, host: u32, rounds: u64) -> ferry::Result<u64> {
    let rt = ferry::current()?;
    for round in 0..rounds {
        let f = Fragile::options()
            .name(&name)
            .on_rank(host)
            .remote(&rt, round)?;
        let boom = f.explode().remote()?;
        match rt.get_value(&boom) {
            Err(Error::ActorDied { .. } | Error::Task { .. }) => {}
            other => panic!("round {round}: expected the actor to die, got {other:?}"),
        }
        match f.round().remote().and_then(|r| rt.get_value(&r)) {
            Err(Error::ActorDied { .. }) => {}
            other => panic!("round {round}: expected ActorDied, got {other:?}"),
        }
        // Made again at once: the name must be free.
        let again = Fragile::options()
            .name(&name)
            .on_rank(host)
            .remote(&rt, rounds + round)?;
        assert_eq!(rt.get_value(&again.round().remote()?)?, rounds + round);
        again.kill();
        // Its name is freed by its host; wait until it is before the next
        // round makes one again (a kill is not a death heard by a call).
        let freed = eventually(BOUND, || {
            Ok(ferry::get_actor::<Fragile>(&rt, &name).is_err())
        })?;
        assert!(
            freed,
            "round {round}: the killed actor's name was never freed"
        );
    }
    Ok(rounds)
}

pub(super) fn a_name_is_free_once_a_caller_on_another_rank_hears_its_actor_died(
    rt: &Runtime,
) -> ferry::Result<()> {
    let host = last(rt);
    let caller = if rt.world_size() > 2 { 1 } else { 0 };
    let r = rebirths::options()
        .on_rank(caller)
        .remote(rt, "phoenix".to_string(), host, 10)?;
    assert_eq!(rt.get_value(&r)?, 10);
    Ok(())
}
