//! Issue 14: an owner sends only so many tasks ahead of their inputs to
//! one rank; later ones wait with the owner until one of those is done or
//! until their own inputs are ready (so holding one back never deadlocks),
//! and a held task can be cancelled before it is ever sent.

use ferry::{Error, Runtime};

use super::{OpenOnDrop, chain_step, state_count, unique_first, wait_gate};

/// Answers its gate's key once the gate opens, on the rank it lives on,
/// holding no CPU there (an actor asks for none).
#[ferry::actor]
struct Gatekeeper {
    served: u64,
}

#[ferry::actor]
impl Gatekeeper {
    fn new() -> Self {
        Gatekeeper { served: 0 }
    }

    fn open(&mut self, key: u64) -> u64 {
        assert!(wait_gate(key, |_, open| open), "gate {key} never opened");
        self.served += 1;
        key
    }
}

/// Tasks rank 0 held back so far (`RankState::tasks_held_back`).
fn held_back(rt: &Runtime) -> u64 {
    state_count(rt, 0, |r| r.tasks_held_back)
}

pub(super) fn tasks_sent_ahead_of_their_inputs_are_bounded(rt: &Runtime) -> ferry::Result<()> {
    if rt.world_size() < 2 {
        println!(
            "skipped tasks_sent_ahead_of_their_inputs_are_bounded: it sends tasks to another \
             rank; this world has {}",
            rt.world_size()
        );
        return Ok(());
    }
    let to = 1;
    let (k1, k2) = (unique_first(), unique_first());
    let (open1, open2) = (OpenOnDrop(k1), OpenOnDrop(k2));
    // Two values made on rank 0 only when the scenario says so.
    let g1 = Gatekeeper::options().on_rank(0).remote(rt)?;
    let g2 = Gatekeeper::options().on_rank(0).remote(rt)?;
    let first = g1.open(k1).remote()?;
    let second = g2.open(k2).remote()?;

    // Tasks for rank 1 that all wait for `first`: the owner sends some
    // ahead and then starts holding the rest back.
    let before = held_back(rt);
    let mut waiting = Vec::new();
    while held_back(rt) == before {
        assert!(
            waiting.len() < 10_000,
            "10,000 tasks waiting for one input all went to rank {to} at once"
        );
        waiting.push(chain_step::options().on_rank(to).remote(rt, &first)?);
    }
    let sent_ahead = waiting.len() - 1;
    assert!(sent_ahead >= 1, "no task was sent ahead of its input");

    // Two more are held back: one waiting for `second`, one to cancel.
    let late = chain_step::options().on_rank(to).remote(rt, &second)?;
    let cancelled = chain_step::options().on_rank(to).remote(rt, &first)?;
    assert_eq!(held_back(rt) - before, 3, "the tasks after the bound wait");
    rt.cancel(&cancelled)?;
    match rt.get_value(&cancelled) {
        Err(Error::Cancelled { .. }) => {}
        other => panic!("a held task cancelled before it was sent gave {other:?}"),
    }

    // `second` is made: `late` goes at once, although the tasks sent ahead
    // before it still wait for `first`.
    drop(open2);
    assert_eq!(rt.get_value(&late)?, k2 + 1);
    assert!(
        !first.is_ready() && waiting.iter().all(|w| !w.is_ready()),
        "the tasks waiting for the shut gate ran"
    );

    // `first` is made: every waiting task runs, those held back included.
    drop(open1);
    for w in &waiting {
        assert_eq!(rt.get_value(w)?, k1 + 1);
    }
    println!(
        "tasks_sent_ahead_of_their_inputs_are_bounded: {sent_ahead} sent ahead to rank {to}, \
         then held back"
    );
    Ok(())
}
