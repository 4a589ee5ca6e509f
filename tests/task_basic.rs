//! Tasks: remote functions, argument passing (values, top-level refs, refs
//! nested in values, zero-copy views), chaining (a chain's steps run on the
//! worker that made their input), fan-out, nested submission, runtime
//! injection and stable function ids.

mod common;
use common::{Gate, start};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry::{ObjectRef, Runtime, View};

#[ferry::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[ferry::remote]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Set by `slow_value` just before it returns.
static SLOW_DONE: AtomicBool = AtomicBool::new(false);

#[ferry::remote]
fn slow_value(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    SLOW_DONE.store(true, Ordering::SeqCst);
    x
}

#[ferry::remote]
fn after_slow(x: u64) -> (u64, bool) {
    (x + 1, SLOW_DONE.load(Ordering::SeqCst))
}

#[ferry::remote]
fn sum_refs(rt: &Runtime, refs: Vec<ObjectRef<u64>>) -> ferry::Result<u64> {
    let mut total = 0;
    for r in &refs {
        total += rt.get(r)?.to_native();
    }
    Ok(total)
}

#[ferry::remote]
fn echo_refs(refs: Vec<ObjectRef<u64>>) -> Vec<ObjectRef<u64>> {
    refs
}

#[ferry::remote]
fn make_refs(rt: &Runtime, n: u64) -> ferry::Result<Vec<ObjectRef<u64>>> {
    (0..n).map(|i| rt.put(&(i * 10))).collect()
}

#[ferry::remote]
fn view_addr(v: View<Vec<f64>>) -> u64 {
    v.as_slice().as_ptr() as u64
}

#[ferry::remote]
fn view_sum(v: View<Vec<f64>>) -> f64 {
    v.as_slice().iter().sum()
}

#[ferry::remote]
fn nested(rt: &Runtime, depth: u64) -> ferry::Result<u64> {
    if depth == 0 {
        let r = square::remote(rt, 3)?;
        return Ok(rt.get(&r)?.to_native());
    }
    let r = nested::remote(rt, depth - 1)?;
    Ok(rt.get(&r)?.to_native() + 1)
}

#[ferry::remote]
fn wait_on_children(rt: &Runtime, n: u64) -> ferry::Result<u64> {
    let refs: Vec<_> = (0..n)
        .map(|i| square::remote(rt, i))
        .collect::<ferry::Result<_>>()?;
    let (ready, rest) = rt.wait(&refs, refs.len(), Some(Duration::from_secs(20)))?;
    if !rest.is_empty() {
        return Ok(u64::MAX);
    }
    Ok(rt.get_all(&ready)?.iter().map(|v| v.to_native()).sum())
}

#[ferry::remote]
fn hold_cpu(key: u64) -> u64 {
    Gate::pass(key, 0);
    key
}

#[ferry::remote]
fn same_runtime(rt: &Runtime) -> ferry::Result<(bool, bool)> {
    let cur = ferry::current()?;
    let inner = cur.put(&5u64)?;
    let ok = rt.get(&inner)?.to_native() == 5;
    Ok((
        cur.job_id() == rt.job_id() && cur.store_path() == rt.store_path(),
        ok,
    ))
}

#[ferry::remote]
fn job_of_current() -> ferry::Result<String> {
    Ok(ferry::current()?.job_id().to_string())
}

#[ferry::remote]
fn unit_task() {}

#[ferry::remote]
fn plus_one(x: u64) -> u64 {
    x + 1
}

/// Runs a producer inline (its `get` finds it queued on this thread's one
/// CPU), whose completion makes `add`'s input ready: the dependent must still
/// run.
#[ferry::remote]
fn produce_inline_then_read_dependent(rt: &Runtime) -> ferry::Result<u64> {
    let a = square::remote(rt, 3)?;
    let b = add::remote(rt, &a, 1)?;
    let va = *rt.get(&a)?;
    let vb = *rt.get(&b)?;
    Ok(va * 100 + vb)
}

#[test]
fn remote_fn_returns_its_result() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = square::remote(&rt, 7)?;
    assert_eq!(*rt.get(&r)?, 49);
    assert_eq!(rt.get_value(&r)?, 49);
    let u = unit_task::remote(&rt)?;
    rt.get(&u)?;
    rt.shutdown()
}

#[test]
fn top_level_ref_argument_is_resolved() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let sq = square::remote(&rt, 4)?;
    let sum = add::remote(&rt, 1, &sq)?;
    assert_eq!(*rt.get(&sum)?, 17);
    // A chain of refs, each the next task's argument; by value too.
    let mut r = rt.put(&1u64)?;
    for _ in 0..10 {
        r = add::remote(&rt, r, 1)?;
    }
    assert_eq!(*rt.get(&r)?, 11);
    // Both arguments refs, one of them a put.
    let p = rt.put(&100u64)?;
    let both = add::remote(&rt, &p, &sq)?;
    assert_eq!(*rt.get(&both)?, 116);
    rt.shutdown()
}

#[test]
fn task_waits_for_slow_upstream_ref() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let up = slow_value::remote(&rt, 41)?;
    let down = after_slow::remote(&rt, &up)?;
    let v = rt.get_value(&down)?;
    assert_eq!(
        v,
        (42, true),
        "downstream ran before its argument was ready"
    );
    rt.shutdown()
}

#[test]
fn refs_nested_in_a_vec_are_passed_as_refs() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let refs: Vec<ObjectRef<u64>> = (1..=4u64)
        .map(|i| rt.put(&i))
        .collect::<ferry::Result<_>>()?;
    // The task receives the refs themselves and gets them.
    let total = sum_refs::remote(&rt, refs.clone())?;
    assert_eq!(*rt.get(&total)?, 10);

    // A Vec of refs put into the store comes back as refs too.
    let stored = rt.put(&refs)?;
    let total2 = sum_refs::remote(&rt, &stored)?;
    assert_eq!(*rt.get(&total2)?, 10);

    // A task returning the refs: the caller turns them back into live refs.
    let echoed = echo_refs::remote(&rt, refs.clone())?;
    let view = rt.get(&echoed)?;
    assert_eq!(view.len(), 4);
    for (i, archived) in view.iter().enumerate() {
        let r = archived.to_ref()?;
        assert_eq!(r.id(), refs[i].id());
        assert_eq!(*rt.get(&r)?, i as u64 + 1);
    }
    let owned: Vec<ObjectRef<u64>> = view.deserialize()?;
    assert_eq!(owned, refs);
    rt.shutdown()
}

#[test]
fn refs_created_inside_a_task_outlive_it() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = make_refs::remote(&rt, 3)?;
    let refs: Vec<ObjectRef<u64>> = rt.get_value(&r)?;
    drop(r);
    let vals: Vec<u64> = refs
        .iter()
        .map(|x| rt.get(x).map(|v| v.to_native()))
        .collect::<ferry::Result<_>>()?;
    assert_eq!(vals, vec![0, 10, 20]);
    rt.shutdown()
}

#[test]
fn fan_out_of_1000_tasks_is_all_correct() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let refs: Vec<_> = (0..1000u64)
        .map(|i| square::remote(&rt, i))
        .collect::<ferry::Result<_>>()?;
    let views = rt.get_all(&refs)?;
    for (i, v) in views.iter().enumerate() {
        assert_eq!(v.to_native(), (i as u64) * (i as u64));
    }
    // Fan in: one task per pair.
    let sums: Vec<_> = refs
        .chunks(2)
        .map(|c| add::remote(&rt, &c[0], &c[1]))
        .collect::<ferry::Result<_>>()?;
    let total: u64 = rt.get_all(&sums)?.iter().map(|v| v.to_native()).sum();
    assert_eq!(total, (0..1000u64).map(|i| i * i).sum::<u64>());
    rt.shutdown()
}

#[test]
fn chain_of_1000_dependent_tasks_runs_on_the_completing_worker() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let gate = Gate::new();
    // The one CPU is held by the chain's head until every step is submitted,
    // so each step becomes ready only when its producer completes.
    let mut last = hold_cpu::remote(&rt, gate.key())?;
    gate.wait_arrived(1, "the chain's head to start");
    for _ in 0..1000 {
        last = plus_one::remote(&rt, &last)?;
    }
    let before = rt.state().ranks[0].tasks;
    gate.open();
    assert_eq!(*rt.get_timeout(&last, common::BOUND)?, gate.key() + 1000);
    let after = rt.state().ranks[0].tasks;
    // Every step but possibly the last (which the waiting `get` may claim
    // and run inline) starts on the worker that completed its input.
    let by_producer = after.started_by_producer - before.started_by_producer;
    assert!(
        by_producer >= 999,
        "only {by_producer} of 1000 steps started straight after their producer: {after:?}"
    );
    rt.shutdown()
}

#[test]
fn a_dependent_of_a_producer_run_inline_still_runs() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let r = produce_inline_then_read_dependent::remote(&rt)?;
    assert_eq!(*rt.get_timeout(&r, common::BOUND)?, 9 * 100 + 10);
    // And from the driver: the getter runs the producer inline if it can.
    let a = square::remote(&rt, 4)?;
    let b = add::remote(&rt, &a, 2)?;
    assert_eq!(*rt.get_timeout(&a, common::BOUND)?, 16);
    assert_eq!(*rt.get_timeout(&b, common::BOUND)?, 18);
    rt.shutdown()
}

#[test]
fn view_params_are_zero_copy() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let data = rt.put_vec_with::<f64>(1 << 16, |xs| xs.fill(0.5))?;
    let driver_addr = rt.get(&data)?.as_slice().as_ptr() as u64;
    let task_addr = view_addr::remote(&rt, &data)?;
    assert_eq!(
        *rt.get(&task_addr)?,
        driver_addr,
        "the task's view is not the driver's bytes"
    );
    let s = view_sum::remote(&rt, &data)?;
    assert_eq!(*rt.get(&s)?, (1 << 15) as f64);
    // A plain value for a View parameter works too.
    let s2 = view_sum::remote(&rt, vec![1.0, 2.0, 3.5])?;
    assert_eq!(*rt.get(&s2)?, 6.5);
    rt.shutdown()
}

#[test]
fn nested_tasks_with_one_cpu_do_not_deadlock() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let r = nested::remote(&rt, 5)?;
    let v = rt.get_timeout(&r, Duration::from_secs(30))?;
    assert_eq!(*v, 9 + 5);
    // Several nested trees at once on the single CPU.
    let many: Vec<_> = (0..4)
        .map(|_| nested::remote(&rt, 3))
        .collect::<ferry::Result<_>>()?;
    for r in &many {
        assert_eq!(*rt.get_timeout(r, Duration::from_secs(30))?, 12);
    }
    rt.shutdown()
}

#[test]
fn wait_inside_a_task_with_one_cpu_does_not_deadlock() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let r = wait_on_children::remote(&rt, 5)?;
    assert_eq!(*rt.get_timeout(&r, Duration::from_secs(30))?, 30);
    rt.shutdown()
}

#[test]
fn shutdown_with_queued_tasks_does_not_hang() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let gate = Gate::new();
    let refs: Vec<_> = (0..5)
        .map(|_| hold_cpu::remote(&rt, gate.key()))
        .collect::<ferry::Result<_>>()?;
    // One runs (held at the gate), four wait for the one CPU.
    gate.wait_arrived(1, "the first task to take the CPU");
    rt.shutdown()?;
    gate.open();
    // The queued ones never ran: Shutdown. The one that was running ends
    // too (its value, or Shutdown: what it ran into is not specified), and
    // nothing hangs.
    let running = rt.get_timeout(&refs[0], Duration::from_secs(30));
    assert!(
        matches!(&running, Ok(v) if **v == gate.key())
            || matches!(running, Err(ferry::Error::Shutdown)),
        "{:?}",
        running.map(|v| *v)
    );
    for (i, r) in refs.iter().enumerate().skip(1) {
        match rt.get_timeout(r, Duration::from_secs(30)) {
            Err(ferry::Error::Shutdown) => {}
            other => panic!(
                "queued task {i}: expected Shutdown, got {:?}",
                other.map(|v| *v)
            ),
        }
    }
    Ok(())
}

#[test]
fn runtime_param_is_injected_and_current_works_in_tasks() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = same_runtime::remote(&rt)?;
    assert_eq!(rt.get_value(&r)?, (true, true));
    let j = job_of_current::remote(&rt)?;
    assert_eq!(rt.get(&j)?.as_str(), rt.job_id());
    rt.shutdown()
}

#[test]
fn remote_fns_have_stable_ids() {
    assert_eq!(
        square::ID,
        ferry::__private::stable_id(concat!(module_path!(), "::square"))
    );
    assert_ne!(square::ID, add::ID);
    let found = ferry::__private::lookup_remote(square::ID).expect("square is registered");
    assert!(found.path.ends_with("::square"), "{}", found.path);
    assert_eq!(found.id, square::ID);
    let found_add = ferry::__private::lookup_remote(add::ID).expect("add is registered");
    assert!(found_add.path.ends_with("::add"), "{}", found_add.path);
    assert!(ferry::__private::lookup_remote(square::ID ^ 1).is_none());
}

#[ferry::remote]
fn bump(prev: View<Vec<u8>>) -> Vec<u8> {
    let mut next = prev.as_slice().to_vec();
    next[0] = next[0].wrapping_add(1);
    next
}

/// A worker hands a finished task's light remains (its body and input refs)
/// back to the submitting thread to drop, in batches; nothing may be held
/// back once the refs are gone and the rank is idle, for light inputs (a
/// chain of 100 leaves a batch part-collected on the worker) or heavy ones.
#[test]
fn a_chain_s_objects_are_all_freed_once_its_refs_are_gone() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let base = rt.store_used();
    for size in [1 << 10, 16 << 10, 2 << 20] {
        let mut r = rt.put(&vec![0u8; size])?;
        for _ in 0..100 {
            r = bump::remote(&rt, &r)?;
        }
        let last = rt.get(&r)?;
        assert_eq!((last.len(), last[0]), (size, 100));
        drop(last);
        drop(r);
        common::wait_until("every object of the chain to be freed", || {
            rt.store_used() <= base
        });
    }
    rt.shutdown()
}
