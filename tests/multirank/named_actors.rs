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
