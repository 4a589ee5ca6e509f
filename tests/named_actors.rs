//! Named actors on one rank (Ray's `name=`, `ray.get_actor`,
//! `get_if_exists=True`, `lifetime="detached"`).

mod common;
use common::{start, wait_until};

use ferry::Error;

#[ferry::actor]
struct Counter {
    value: u64,
}

#[ferry::actor]
impl Counter {
    fn new(start: u64) -> Self {
        Counter { value: start }
    }

    fn increment(&mut self) -> u64 {
        self.value += 1;
        self.value
    }

    fn get(&self) -> u64 {
        self.value
    }

    fn explode(&mut self) -> u64 {
        panic!("state lost")
    }
}

#[ferry::actor]
struct Other {}

#[ferry::actor]
impl Other {
    fn new() -> Self {
        Other {}
    }

    fn ping(&self) -> u8 {
        1
    }
}

#[test]
fn a_named_actor_is_found_by_its_name_from_another_thread() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Counter::options().name("counter").remote(&rt, 10)?;
    rt.get_value(&c.increment().remote()?)?;
    let rt2 = rt.clone();
    let found = std::thread::spawn(move || -> ferry::Result<u64> {
        let h = ferry::get_actor::<Counter>(&rt2, "counter")?;
        rt2.get_value(&h.increment().remote()?)
    })
    .join()
    .expect("the thread ran")?;
    assert_eq!(found, 12);
    let again = ferry::get_actor::<Counter>(&rt, "counter")?;
    assert_eq!(again.id(), c.id());
    let listed = rt.state();
    assert!(
        listed
            .ranks
            .iter()
            .flat_map(|r| &r.actors)
            .any(|a| a.name == "counter"),
        "rt.state() lists the actor by its name"
    );
    drop((c, again));
    rt.shutdown()
}

#[test]
fn a_name_nobody_holds_is_a_typed_error() -> ferry::Result<()> {
    let rt = start(1.0)?;
    match ferry::get_actor::<Counter>(&rt, "nobody") {
        Err(Error::ActorNameNotFound { name }) => assert_eq!(name, "nobody"),
        other => panic!("expected ActorNameNotFound, got {other:?}"),
    }
    rt.shutdown()
}

#[test]
fn getting_a_named_actor_as_another_class_is_a_typed_error() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let c = Counter::options().name("typed").remote(&rt, 0)?;
    match ferry::get_actor::<Other>(&rt, "typed") {
        Err(Error::ActorNameOtherClass { name, actor, class }) => {
            assert_eq!(
                (name.as_str(), actor, class.as_str()),
                ("typed", c.id(), "Other")
            );
        }
        other => panic!("expected ActorNameOtherClass, got {other:?}"),
    }
    // get_if_exists with another class: the same error, nothing created.
    match Other::options().name("typed").get_if_exists().remote(&rt) {
        Err(Error::ActorNameOtherClass { .. }) => {}
        other => panic!("expected ActorNameOtherClass, got {other:?}"),
    }
    drop(c);
    rt.shutdown()
}

#[test]
fn a_taken_name_cannot_be_given_twice() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let c = Counter::options().name("once").remote(&rt, 0)?;
    match Counter::options().name("once").remote(&rt, 5) {
        Err(Error::ActorNameTaken { name, actor }) => {
            assert_eq!((name.as_str(), actor), ("once", c.id()));
        }
        other => panic!("expected ActorNameTaken, got {other:?}"),
    }
    // Another class cannot take it either.
    assert!(matches!(
        Other::options().name("once").remote(&rt),
        Err(Error::ActorNameTaken { .. })
    ));
    // The holder is untouched.
    assert_eq!(rt.get_value(&c.get().remote()?)?, 0);
    rt.shutdown()
}

#[test]
fn get_if_exists_gives_the_same_actor() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let a = Counter::options()
        .name("shared")
        .get_if_exists()
        .remote(&rt, 100)?;
    // The constructor's argument is not used: the actor exists.
    let b = Counter::options()
        .name("shared")
        .get_if_exists()
        .remote(&rt, 0)?;
    assert_eq!(a.id(), b.id());
    assert_eq!(rt.get_value(&a.increment().remote()?)?, 101);
    assert_eq!(rt.get_value(&b.increment().remote()?)?, 102);
    assert_eq!(rt.get_value(&a.get().remote()?)?, 102);
    rt.shutdown()
}

#[test]
fn detached_and_get_if_exists_need_a_name() -> ferry::Result<()> {
    let rt = start(1.0)?;
    assert!(matches!(
        Counter::options().lifetime_detached().remote(&rt, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Counter::options().get_if_exists().remote(&rt, 0),
        Err(Error::InvalidArgument(_))
    ));
    rt.shutdown()
}

#[test]
fn a_detached_actor_outlives_its_handles_until_killed() -> ferry::Result<()> {
    let rt = start(1.0)?;
    {
        let c = Counter::options()
            .name("detached")
            .lifetime_detached()
            .remote(&rt, 0)?;
        rt.get_value(&c.increment().remote()?)?;
    } // every handle is gone
    std::thread::sleep(std::time::Duration::from_millis(50));
    let c = ferry::get_actor::<Counter>(&rt, "detached")?;
    assert_eq!(rt.get_value(&c.increment().remote()?)?, 2, "state kept");
    assert!(c.is_alive());
    drop(c);
    let c = ferry::get_actor::<Counter>(&rt, "detached")?;
    c.kill();
    assert!(matches!(
        ferry::get_actor::<Counter>(&rt, "detached"),
        Err(Error::ActorNameNotFound { .. })
    ));
    rt.shutdown()
}

#[test]
fn a_plain_named_actor_stops_with_its_last_handle_and_frees_its_name() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let c = Counter::options().name("plain").remote(&rt, 0)?;
    rt.get_value(&c.increment().remote()?)?;
    drop(c);
    wait_until("the name of a stopped actor is free", || {
        matches!(
            ferry::get_actor::<Counter>(&rt, "plain"),
            Err(Error::ActorNameNotFound { .. })
        )
    });
    let fresh = Counter::options().name("plain").remote(&rt, 7)?;
    assert_eq!(rt.get_value(&fresh.get().remote()?)?, 7);
    rt.shutdown()
}

#[test]
fn killing_a_named_actor_frees_its_name() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let c = Counter::options().name("victim").remote(&rt, 0)?;
    c.kill();
    assert!(matches!(
        ferry::get_actor::<Counter>(&rt, "victim"),
        Err(Error::ActorNameNotFound { .. })
    ));
    let again = Counter::options().name("victim").remote(&rt, 3)?;
    assert_ne!(again.id(), c.id());
    assert_eq!(rt.get_value(&again.get().remote()?)?, 3);
    assert!(matches!(
        rt.get_value(&c.get().remote()?),
        Err(Error::ActorDied { .. })
    ));
    rt.shutdown()
}

/// The bug CI met: an actor that died of a panic failed its queued calls
/// before its name was free, so a caller that heard `ActorDied` and made a
/// new actor of that name at once could get `ActorNameTaken`. Each round
/// queues calls behind the panic, so that they fail as the actor dies.
#[test]
fn a_name_is_free_once_a_caller_hears_its_actor_died() -> ferry::Result<()> {
    let rt = start(1.0)?;
    for round in 0..20 {
        let c = Counter::options().name("fragile").remote(&rt, round)?;
        let boom = c.explode().remote()?;
        let after: Vec<_> = (0..4)
            .map(|_| c.get().remote())
            .collect::<ferry::Result<_>>()?;
        assert!(
            rt.get_value(&boom).is_err(),
            "the panic is its call's error"
        );
        for r in &after {
            match rt.get_value(r) {
                Err(Error::ActorDied { .. }) => {}
                other => panic!("round {round}: expected ActorDied, got {other:?}"),
            }
        }
        let again = Counter::options().name("fragile").remote(&rt, 7)?;
        assert_eq!(rt.get_value(&again.get().remote()?)?, 7, "round {round}");
        again.kill();
    }
    rt.shutdown()
}

#[test]
fn a_named_actor_is_found_from_inside_a_task() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let c = Counter::options().name("from-task").remote(&rt, 0)?;
    let r = bump::remote(&rt, "from-task".to_string())?;
    assert_eq!(rt.get_value(&r)?, 1);
    assert_eq!(rt.get_value(&c.get().remote()?)?, 1);
    rt.shutdown()
}

#[ferry::remote]
fn bump(name: String) -> u64 {
    let rt = ferry::current().expect("a task has a runtime");
    let c = ferry::get_actor::<Counter>(&rt, &name).expect("found by name");
    rt.get_value(&c.increment().remote().expect("submitted"))
        .expect("the call ran")
}
