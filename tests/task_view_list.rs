//! `Vec<View<T>>` parameters: a list of top-level arguments (Ray's
//! `f.remote(*refs)`). Every ref in the list is a dependency the task waits
//! for, on any rank; the body gets one view per element, in order.

mod common;
use common::{BOUND, Gate, start};

use ferry::{Arg, Config, Error, IntoArg, ObjectRef, Runtime, View};

/// The sum of every element of every input, and the rank it ran on.
#[ferry::remote]
fn total(rt: &Runtime, xs: Vec<View<Vec<u64>>>) -> (u64, u32) {
    let sum = xs.iter().flat_map(|x| x.as_slice()).sum();
    (sum, rt.rank())
}

/// The first element of each input, in the order they were passed, plus
/// `extra` (a plain parameter beside the list).
#[ferry::remote]
fn firsts(extra: u64, xs: Vec<View<Vec<u64>>>, last: View<Vec<u64>>) -> Vec<u64> {
    let mut out: Vec<u64> = xs.iter().map(|x| x.as_slice()[0]).collect();
    out.push(last.as_slice()[0]);
    out.push(extra);
    out
}

/// `value`, once gate `key` is open (a producer still pending when its
/// consumers are submitted).
#[ferry::remote]
fn gated(rt: &Runtime, key: u64, value: Vec<u64>) -> Vec<u64> {
    Gate::pass(key, rt.rank());
    value
}

/// `value` (a producer on another rank).
#[ferry::remote]
fn make(value: Vec<u64>) -> Vec<u64> {
    value
}

/// Fails with `message` (an input whose producer failed).
#[ferry::remote]
fn fails(message: String) -> Result<Vec<u64>, String> {
    Err(message)
}

/// Adds what it is given to its sum.
#[ferry::actor]
struct Summer {
    sum: u64,
}

#[ferry::actor]
impl Summer {
    fn new() -> Self {
        Summer { sum: 0 }
    }

    fn add(&mut self, xs: Vec<View<Vec<u64>>>) -> u64 {
        self.sum += xs.iter().flat_map(|x| x.as_slice()).sum::<u64>();
        self.sum
    }
}

fn puts(rt: &Runtime, lists: &[&[u64]]) -> ferry::Result<Vec<ObjectRef<Vec<u64>>>> {
    lists.iter().map(|l| rt.put(&l.to_vec())).collect()
}

#[test]
fn a_list_of_refs_arrives_as_views_in_order() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let refs = puts(&rt, &[&[1, 2], &[3], &[4, 5, 6]])?;
    // A slice of refs, a Vec of refs, a Vec of `&ObjectRef`s.
    assert_eq!(rt.get_value(&total::remote(&rt, &refs[..])?)?.0, 21);
    assert_eq!(rt.get_value(&total::remote(&rt, refs.clone())?)?.0, 21);
    assert_eq!(rt.get_value(&total::remote(&rt, refs.iter().rev())?)?.0, 21);
    let last = rt.put(&vec![9u64])?;
    let order = firsts::remote(&rt, 7, refs.iter().rev(), &last)?;
    assert_eq!(rt.get_value(&order)?, vec![4, 3, 1, 9, 7]);
    rt.shutdown()
}

#[test]
fn an_empty_list_is_fine() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let none: Vec<ObjectRef<Vec<u64>>> = Vec::new();
    assert_eq!(rt.get_value(&total::remote(&rt, none)?)?.0, 0);
    let last = rt.put(&vec![1u64])?;
    let empty: &[ObjectRef<Vec<u64>>] = &[];
    assert_eq!(
        rt.get_value(&firsts::remote(&rt, 2, empty, last)?)?,
        vec![1, 2]
    );
    rt.shutdown()
}

#[test]
fn values_mix_with_refs() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = rt.put(&vec![10u64])?;
    let mixed: Vec<Arg<Vec<u64>>> =
        vec![vec![1u64].into_arg(), (&r).into_arg(), vec![100].into_arg()];
    let order = firsts::remote(&rt, 0, mixed, vec![5u64])?;
    assert_eq!(rt.get_value(&order)?, vec![1, 10, 100, 5, 0]);
    // A list of plain values.
    let values = vec![vec![1u64, 1], vec![2]];
    assert_eq!(rt.get_value(&total::remote(&rt, values)?)?.0, 4);
    rt.shutdown()
}

#[test]
fn the_task_waits_for_every_pending_ref() -> ferry::Result<()> {
    let rt = start(3.0)?;
    let (g1, g2) = (Gate::new(), Gate::new());
    let a = gated::remote(&rt, g1.key(), vec![1, 2])?;
    let b = gated::remote(&rt, g2.key(), vec![3])?;
    let ready = rt.put(&vec![4u64])?;
    g1.wait_arrived(1, "the first producer to start");
    g2.wait_arrived(1, "the second producer to start");
    // Both producers are running and held at their gates: still pending.
    let sum = total::remote(&rt, [a.clone(), b, ready])?;
    g1.open();
    // One input of three is still pending: the task cannot have run.
    let (done, _) = rt.wait(std::slice::from_ref(&a), 1, Some(BOUND))?;
    assert_eq!(done.len(), 1);
    let (done, _) = rt.wait(
        std::slice::from_ref(&sum),
        1,
        Some(std::time::Duration::ZERO),
    )?;
    assert!(done.is_empty(), "ran before its second input was ready");
    g2.open();
    assert_eq!(rt.get_value(&sum)?.0, 10);
    rt.shutdown()
}

#[test]
fn a_failed_input_fails_the_task() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let good = rt.put(&vec![1u64])?;
    let bad = fails::remote(&rt, "input 2 is broken".to_string())?;
    let r = total::remote(&rt, [good.clone(), bad, good])?;
    match rt.get(&r) {
        Err(e @ Error::Dependency { .. }) => {
            let text = e.to_string();
            assert!(text.contains("input 2 is broken"), "{text}");
            assert!(text.contains("total"), "{text}");
        }
        other => panic!("expected a dependency error, got {other:?}"),
    }
    rt.shutdown()
}

#[test]
fn an_encoded_call_with_a_list_runs_by_id() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let refs = puts(&rt, &[&[1, 2], &[3]])?;
    let call = total::encode(&rt, refs)?; // the refs move into the call
    let r = ferry::__private::invoke(&rt, &call)?.cast::<(u64, u32)>();
    assert_eq!(rt.get_value(&r)?.0, 6);
    let call = total::encode(&rt, Vec::<ObjectRef<Vec<u64>>>::new())?;
    let r = ferry::__private::invoke(&rt, &call)?.cast::<(u64, u32)>();
    assert_eq!(rt.get_value(&r)?.0, 0);
    rt.shutdown()
}

#[test]
fn an_actor_method_takes_a_list() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let s = Summer::remote(&rt)?;
    let refs = puts(&rt, &[&[1], &[2, 3]])?;
    assert_eq!(*rt.get(&s.add(&refs[..]).remote()?)?, 6);
    assert_eq!(*rt.get(&s.add(vec![vec![4u64]]).remote()?)?, 10);
    rt.shutdown()
}

fn world_cfg() -> Config {
    Config::default()
        .num_cpus(2.0)
        .object_store_memory(64 << 20)
}

#[test]
fn pending_refs_from_other_ranks_on_every_rank() -> ferry::Result<()> {
    ferry::loopback::run(3, world_cfg(), |rt, _world| -> ferry::Result<()> {
        let (g1, g2) = (Gate::new(), Gate::new());
        // Producers on ranks 1 and 2, held at their gates.
        let a = gated::options()
            .on_rank(1)
            .remote(&rt, g1.key(), vec![1, 2])?;
        let b = gated::options().on_rank(2).remote(&rt, g2.key(), vec![3])?;
        let here = rt.put(&vec![4u64])?;
        g1.wait_arrived_on(1, "the producer on rank 1 to start");
        g2.wait_arrived_on(2, "the producer on rank 2 to start");
        // One consumer on each rank, submitted while both are pending.
        let sums = (0..3)
            .map(|r| {
                total::options()
                    .on_rank(r)
                    .remote(&rt, [a.clone(), b.clone(), here.clone()])
            })
            .collect::<ferry::Result<Vec<_>>>()?;
        let order = firsts::options().on_rank(1).remote(
            &rt,
            5,
            vec![
                b.clone().into_arg(),
                vec![8u64].into_arg(),
                a.clone().into_arg(),
            ],
            &here,
        )?;
        let (done, _) = rt.wait(&sums, 1, Some(std::time::Duration::ZERO))?;
        assert!(
            done.is_empty(),
            "a consumer ran before its inputs were ready"
        );
        g1.open();
        g2.open();
        for (rank, s) in sums.iter().enumerate() {
            assert_eq!(rt.get_timeout(s, BOUND)?.deserialize()?, (10, rank as u32));
        }
        assert_eq!(
            rt.get_timeout(&order, BOUND)?.deserialize()?,
            vec![3, 8, 1, 4, 5]
        );
        Ok(())
    })?
}

#[test]
fn errors_and_encoded_calls_across_ranks() -> ferry::Result<()> {
    ferry::loopback::run(3, world_cfg(), |rt, _world| -> ferry::Result<()> {
        let good = make::options().on_rank(2).remote(&rt, vec![1])?;
        let bad = fails::options()
            .on_rank(1)
            .remote(&rt, "broken on rank 1".to_string())?;
        let r = total::options()
            .on_rank(2)
            .remote(&rt, [good.clone(), bad])?;
        // The producer's error (across ranks it arrives as the producer's
        // task error, as for a single ref argument; here, wrapped as a
        // dependency's).
        let e = rt
            .get_timeout(&r, BOUND)
            .expect_err("a failed input fails the task");
        let t = e.task_error().expect("the input's task error");
        assert_eq!((t.task.as_str(), t.rank), ("fails", 1), "{e}");
        assert_eq!(t.message, "broken on rank 1");
        // Encoded on rank 0, run by id on rank 1.
        let gate = Gate::new();
        let pending = gated::options()
            .on_rank(2)
            .remote(&rt, gate.key(), vec![20])?;
        let call = total::encode(&rt, [good, pending])?;
        let opts = ferry::TaskOptions::default().on_rank(1);
        let r =
            ferry::__private::invoke_with(&rt, call.id, &opts, &call.args)?.cast::<(u64, u32)>();
        gate.open();
        assert_eq!(rt.get_timeout(&r, BOUND)?.deserialize()?, (21, 1));
        // An actor on rank 2 takes a list of refs made on ranks 0 and 1.
        let s = Summer::options().on_rank(2).remote(&rt)?;
        let on1 = make::options().on_rank(1).remote(&rt, vec![5])?;
        let on0 = rt.put(&vec![6u64])?;
        assert_eq!(*rt.get_timeout(&s.add([on1, on0]).remote()?, BOUND)?, 11);
        Ok(())
    })?
}
