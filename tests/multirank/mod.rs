//! The multi-rank suite: scenarios that need only the driver's runtime, so
//! that the same code runs over the loopback transport (`cluster_suite.rs`,
//! ranks as threads) and under real `mpirun` (`mpi_suite.rs`, ranks as
//! processes). Each runs on 2 ranks or more with one logical CPU per rank,
//! and adapts the ranks it names to the world's size.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use ferry::{ActorHandle, Error, ObjectRef, Runtime, View};

mod actor_pool;
mod channels;
mod concurrency;
mod gpu_objects;
mod multiple_returns;
mod named_actors;
mod placement_groups;
mod send_ahead;
mod streaming_returns;
use actor_pool::an_actor_pool_spreads_calls_over_actors_on_several_ranks;
use channels::objects_sent_under_a_tag_arrive_in_order;
use concurrency::{
    a_threaded_actor_on_another_rank_runs_calls_at_once,
    an_async_actor_on_another_rank_interleaves_its_calls,
};
use gpu_objects::a_gpu_object_made_on_another_rank_is_read_here;
use multiple_returns::a_task_with_two_returns_on_another_rank_gives_two_objects;
use named_actors::{
    a_detached_actor_outlives_its_creator_s_handles,
    a_name_is_free_once_a_caller_on_another_rank_hears_its_actor_died,
    a_named_actor_is_found_from_every_rank,
};
use placement_groups::placement_groups_reserve_bundles_over_ranks;
use send_ahead::tasks_sent_ahead_of_their_inputs_are_bounded;
use streaming_returns::a_streaming_task_on_another_rank_streams_its_items_back;

/// A scenario: its name and its body, run on rank 0.
pub(crate) type Scenario = (&'static str, fn(&Runtime) -> ferry::Result<()>);

/// Every scenario, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[
    ("resources_add_up_over_ranks", resources_add_up_over_ranks),
    (
        "objects_of_other_ranks_are_read_the_way_the_path_says",
        objects_are_read_the_way_the_path_says,
    ),
    (
        "each_rank_runs_where_its_binding_says",
        each_rank_runs_where_its_binding_says,
    ),
    ("a_task_runs_on_every_rank", a_task_runs_on_every_rank),
    (
        "objects_sent_under_a_tag_arrive_in_order",
        objects_sent_under_a_tag_arrive_in_order,
    ),
    (
        "the_timeline_shows_every_rank_s_tasks",
        the_timeline_shows_every_rank_s_tasks,
    ),
    (
        "a_saturated_rank_sends_work_to_the_others",
        a_saturated_rank_sends_work_to_the_others,
    ),
    ("large_results_come_back", large_results_come_back),
    (
        "a_task_goes_to_the_rank_holding_its_large_argument",
        task_goes_to_its_large_argument,
    ),
    (
        "remote_errors_come_back_typed",
        remote_errors_come_back_typed,
    ),
    (
        "a_task_with_two_returns_on_another_rank_gives_two_objects",
        a_task_with_two_returns_on_another_rank_gives_two_objects,
    ),
    (
        "a_streaming_task_on_another_rank_streams_its_items_back",
        a_streaming_task_on_another_rank_streams_its_items_back,
    ),
    (
        "ref_arguments_are_borrowed_by_the_rank_that_runs_the_task",
        ref_arguments_are_borrowed,
    ),
    (
        "refs_returned_from_another_rank_stay_alive",
        refs_returned_from_another_rank_stay_alive,
    ),
    (
        "small_results_from_another_rank_are_kept_out_of_the_arena",
        small_results_from_another_rank_are_kept_out_of_the_arena,
    ),
    (
        "a_ref_dropped_as_its_thread_ends_is_released",
        a_ref_dropped_as_its_thread_ends_is_released,
    ),
    (
        "refs_inside_a_borrowed_object_outlive_it",
        refs_inside_a_borrowed_object_outlive_it,
    ),
    (
        "an_actor_on_another_rank_runs_calls_in_order",
        an_actor_on_another_rank_runs_calls_in_order,
    ),
    (
        "actors_go_where_their_resources_are_free",
        actors_go_where_their_resources_are_free,
    ),
    (
        "a_task_calls_an_actor_on_a_third_rank_with_a_ref_of_a_fourth",
        task_calls_actor_with_ref,
    ),
    (
        "a_handle_returned_from_another_rank_reaches_its_actor",
        handle_returned_from_another_rank,
    ),
    (
        "an_actor_stops_when_no_rank_holds_a_handle",
        an_actor_stops_when_no_rank_holds_a_handle,
    ),
    (
        "killing_through_a_remote_handle_fails_later_calls",
        killing_through_a_remote_handle,
    ),
    (
        "an_actor_pool_spreads_calls_over_actors_on_several_ranks",
        an_actor_pool_spreads_calls_over_actors_on_several_ranks,
    ),
    (
        "a_named_actor_is_found_from_every_rank",
        a_named_actor_is_found_from_every_rank,
    ),
    (
        "a_detached_actor_outlives_its_creator_s_handles",
        a_detached_actor_outlives_its_creator_s_handles,
    ),
    (
        "a_name_is_free_once_a_caller_on_another_rank_hears_its_actor_died",
        a_name_is_free_once_a_caller_on_another_rank_hears_its_actor_died,
    ),
    (
        "remote_actor_errors_and_restarts",
        remote_actor_errors_and_restarts,
    ),
    (
        "a_million_cross_rank_refs_leak_nothing",
        a_million_cross_rank_refs_leak_nothing,
    ),
    (
        "a_chain_on_one_rank_reads_its_own_results_there",
        a_chain_on_one_rank_reads_its_own_results_there,
    ),
    (
        "a_task_s_inputs_are_lent_with_it",
        a_task_s_inputs_are_lent_with_it,
    ),
    (
        "a_task_s_input_borrows_end_with_its_done",
        a_task_s_input_borrows_end_with_its_done,
    ),
    (
        "a_failed_task_s_error_reaches_the_task_after_it_on_its_rank",
        a_failed_task_s_error_reaches_the_task_after_it_on_its_rank,
    ),
    (
        "frames_keep_each_sender_s_order_across_rings_and_mpi",
        frames_keep_each_sender_s_order_across_rings_and_mpi,
    ),
    ("idle_ranks_spend_no_core", idle_ranks_spend_no_core),
    (
        "a_task_reads_its_input_from_the_rank_making_it",
        a_task_reads_its_input_from_the_rank_making_it,
    ),
    (
        "tasks_sent_ahead_of_their_inputs_are_bounded",
        tasks_sent_ahead_of_their_inputs_are_bounded,
    ),
    (
        "placement_groups_reserve_bundles_over_ranks",
        placement_groups_reserve_bundles_over_ranks,
    ),
    (
        "a_threaded_actor_on_another_rank_runs_calls_at_once",
        a_threaded_actor_on_another_rank_runs_calls_at_once,
    ),
    (
        "an_async_actor_on_another_rank_interleaves_its_calls",
        an_async_actor_on_another_rank_interleaves_its_calls,
    ),
    (
        "a_gpu_object_made_on_another_rank_is_read_here",
        a_gpu_object_made_on_another_rank_is_read_here,
    ),
];

std::thread_local! {
    /// Whether the harness started the world with one-sided reads forced
    /// (`Config::force_rma`, `FERRY_FORCE_RMA=1`); set on the thread that
    /// runs the scenarios, as worlds of different kinds may run at once.
    static ONE_SIDED_FORCED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tells the scenarios run on this thread whether one-sided reads are forced.
pub(crate) fn set_one_sided_forced(forced: bool) {
    ONE_SIDED_FORCED.with(|f| f.set(forced));
}

/// The last rank, and the one before it (or the last again on 2 ranks).
fn last(rt: &Runtime) -> u32 {
    rt.world_size() - 1
}

fn here() -> u32 {
    ferry::current().map_or(u32::MAX, |rt| rt.rank())
}

/// How long a scenario waits for an event before it fails naming it: far
/// above anything a loaded 2-core machine needs.
const BOUND: u64 = 30;

/// Polls `cond` every 5 ms for up to `secs` seconds.
fn eventually(secs: u64, mut cond: impl FnMut() -> ferry::Result<bool>) -> ferry::Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond()? {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[ferry::remote]
fn rank_of() -> u32 {
    here()
}

/// Polls `cond` until it holds; fails naming `what` after [`BOUND`] seconds.
fn wait_until(what: &str, cond: impl FnMut() -> ferry::Result<bool>) -> ferry::Result<()> {
    assert!(
        eventually(BOUND, cond)?,
        "gave up after {BOUND} s waiting for {what}"
    );
    Ok(())
}

/// Waits until rank `rank` lists object `id` (as owner or borrower) and
/// `pred` holds for its entry: the way to wait for a message between ranks
/// (a borrow's answer, a borrow counted) instead of sleeping.
fn wait_listed(
    rt: &Runtime,
    rank: u32,
    id: &str,
    what: &str,
    pred: impl Fn(&ferry::ObjectState) -> bool,
) -> ferry::Result<()> {
    wait_until(what, || {
        let s = rt.state();
        Ok(s.ranks
            .iter()
            .filter(|r| r.rank == rank)
            .flat_map(|r| &r.objects)
            .any(|o| o.id == id && pred(o)))
    })
}

/// Gates for tasks that run on rank 0, the driver's process under `mpirun`
/// too: a task arrives (`arrived`), then holds its CPU until the scenario
/// opens its gate. Keys are unique, so worlds running at once never share.
static GATES: Mutex<Vec<(u64, bool, bool)>> = Mutex::new(Vec::new());
static GATES_MOVED: Condvar = Condvar::new();

/// Waits (at most [`BOUND`] seconds) until `pick` holds for gate `key`'s
/// (arrived, open); false when it never did.
fn wait_gate(key: u64, pick: impl Fn(bool, bool) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(BOUND);
    let mut g = GATES.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let (arrived, open) = g
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or((false, false), |(_, a, o)| (*a, *o));
        if pick(arrived, open) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        g = GATES_MOVED
            .wait_timeout(g, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

fn set_gate(key: u64, arrived: bool, open: bool) {
    let mut g = GATES.lock().unwrap_or_else(|e| e.into_inner());
    match g.iter_mut().find(|(k, _, _)| *k == key) {
        Some(e) => {
            e.1 |= arrived;
            e.2 |= open;
        }
        None => g.push((key, arrived, open)),
    }
    GATES_MOVED.notify_all();
}

/// Holds a CPU of rank 0 (without blocking in `get`, which would give it
/// back) until gate `key` opens: true when it did.
#[ferry::remote]
fn hold_rank_0(key: u64) -> bool {
    set_gate(key, true, false);
    wait_gate(key, |_, open| open)
}

/// Holds its CPU's place until `gate[0]` (a ref nested in a vector, so
/// that it does not hold the task back before it starts) is ready; where it
/// ran. A task blocked in `get` gives its CPU back to its rank, but the
/// submitter counts it as in flight until it ends.
#[ferry::remote]
fn busy_until(rt: &Runtime, gate: Vec<ObjectRef<bool>>) -> ferry::Result<u32> {
    assert!(rt.get_value(&gate[0])?, "the gate never opened");
    Ok(rt.rank())
}

/// Bytes in use in the store of the rank this runs on.
#[ferry::remote]
fn store_used_here(rt: &Runtime) -> u64 {
    rt.store_used() as u64
}

fn store_used_on(rt: &Runtime, rank: u32) -> ferry::Result<u64> {
    let r = store_used_here::options()
        .num_cpus(0.0)
        .on_rank(rank)
        .remote(rt)?;
    rt.get_value(&r)
}

#[ferry::remote]
fn big(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[ferry::remote]
fn fails(msg: String) -> Result<u64, String> {
    Err(msg)
}

/// [`make_refs`] with values too big to be kept inline (see
/// `ferry_store::INLINE_MAX`): eight copies of `i * 10` each, in the arena,
/// where `store_used` sees whether they live.
#[ferry::remote]
fn make_big_refs(rt: &Runtime, n: u64) -> ferry::Result<(Vec<ObjectRef<Vec<u64>>>, u32)> {
    let refs = (0..n)
        .map(|i| rt.put(&vec![i * 10; 8]))
        .collect::<ferry::Result<_>>()?;
    Ok((refs, rt.rank()))
}

#[ferry::remote]
fn make_refs(rt: &Runtime, n: u64) -> ferry::Result<(Vec<ObjectRef<u64>>, u32)> {
    let refs = (0..n)
        .map(|i| rt.put(&(i * 10)))
        .collect::<ferry::Result<_>>()?;
    Ok((refs, rt.rank()))
}

#[ferry::remote]
fn sum_on_rank(xs: View<Vec<u64>>) -> (u64, u32) {
    (xs.iter().map(|x| x.to_native()).sum(), here())
}

fn resources_add_up_over_ranks(rt: &Runtime) -> ferry::Result<()> {
    let n = f64::from(rt.world_size());
    let cluster = rt.cluster_resources();
    assert_eq!(cluster["CPU"], n * rt.rank_resources()["CPU"]);
    Ok(())
}

/// A megabyte owned by another rank: read in place from its store when the
/// two share a host (zero copy), copied here by a one-sided read when they
/// do not or when one-sided reads are forced. Prints the path it saw (the
/// MPI suite checks that its forced run took the one-sided one).
fn objects_are_read_the_way_the_path_says(rt: &Runtime) -> ferry::Result<()> {
    let owner = last(rt);
    let n = 1u64 << 17; // 1 MiB
    let made = make_vec::options().on_rank(owner).remote(rt, n)?;
    let refs: Vec<ObjectRef<Vec<u64>>> = rt.get_value(&made)?;
    let s = rt.state();
    let host = |r: u32| s.ranks.iter().find(|x| x.rank == r).map(|x| x.host.clone());
    let same_host = host(0).is_some() && host(0) == host(owner);
    let before = rt.store_used();
    let v = rt.get(&refs[0])?;
    assert_eq!(v.len() as u64, n);
    assert!(v.iter().enumerate().all(|(i, x)| *x == i as u64));
    let grown = rt.store_used() as i64 - before as i64;
    let forced = ONE_SIDED_FORCED.with(|f| f.get());
    if forced || !same_host {
        assert!(
            grown >= 8 * n as i64,
            "a one-sided read copies the object here: rank 0's store grew by {grown} bytes \
             (forced: {forced}, same host: {same_host})"
        );
        println!("object path: one-sided reads ({grown} bytes copied to rank 0)");
    } else {
        assert_eq!(
            grown, 0,
            "a neighbour on this host is read in place: rank 0's store grew by {grown} bytes"
        );
        println!("object path: in place (same host, zero copy)");
    }
    // `ferry bench`'s raw baseline reads the same bytes by hand: where the
    // owner keeps them, one-sidedly, into a plain buffer.
    let (from, offset) = ferry::__private::borrowed_place(&refs[0]).ok_or_else(|| {
        ferry::Error::InvalidArgument("a borrowed 1 MiB object has no place".into())
    })?;
    assert_eq!(from, owner, "the place is the owner's");
    let mut raw = vec![0u8; 8 * n as usize];
    ferry::__private::raw_read(rt, from, offset as usize, &mut raw)?;
    assert!(
        raw.chunks_exact(8)
            .enumerate()
            .all(|(i, x)| u64::from_le_bytes(x.try_into().unwrap_or_default()) == i as u64),
        "a raw read at the object's place gives its elements"
    );
    drop(v);
    drop(made);
    Ok(())
}

fn a_task_runs_on_every_rank(rt: &Runtime) -> ferry::Result<()> {
    for r in (0..rt.world_size()).rev() {
        let x = rank_of::options().on_rank(r).remote(rt)?;
        assert_eq!(rt.get_value(&x)?, r);
    }
    match rank_of::options().on_rank(rt.world_size()).remote(rt) {
        Err(Error::InvalidArgument(_)) => Ok(()),
        other => panic!("expected InvalidArgument for a rank past the end, got {other:?}"),
    }
}

/// Rank 0's one CPU is held until every task is submitted, and no task
/// ends before then: each lands on the least loaded rank as the scheduler
/// sees it at submission, however slowly the submissions go.
fn a_saturated_rank_sends_work_to_the_others(rt: &Runtime) -> ferry::Result<()> {
    let n = rt.world_size();
    let key = unique_first();
    let blocker = hold_rank_0::options().on_rank(0).remote(rt, key)?;
    let started = wait_gate(key, |arrived, _| arrived);
    assert!(started, "the task holding rank 0's CPU did not start");
    let submitted = (0..3 * n)
        .map(|_| busy_until::remote(rt, vec![blocker.clone()]))
        .collect::<ferry::Result<Vec<_>>>();
    set_gate(key, true, true);
    let refs = submitted?;
    assert!(rt.get_value(&blocker)?, "rank 0's CPU was never released");
    let ranks = refs
        .iter()
        .map(|r| rt.get_value(r))
        .collect::<ferry::Result<Vec<u32>>>()?;
    // Every other rank took one while rank 0 was full; once all were
    // full, the rest waited on rank 0.
    for r in 0..n {
        assert!(ranks.contains(&r), "rank {r} got no work: {ranks:?}");
    }
    Ok(())
}

fn large_results_come_back(rt: &Runtime) -> ferry::Result<()> {
    // 800 KB: more than travels inside a message.
    let r = big::options().on_rank(last(rt)).remote(rt, 100_000)?;
    let v = rt.get(&r)?;
    assert_eq!(v.len(), 100_000);
    assert!(v.iter().enumerate().all(|(i, x)| *x == i as u64));
    Ok(())
}

/// A vector of `n` numbers made (and owned) where this runs.
#[ferry::remote]
fn make_vec(rt: &Runtime, n: u64) -> ferry::Result<Vec<ObjectRef<Vec<u64>>>> {
    Ok(vec![rt.put(&(0..n).collect::<Vec<u64>>())?])
}

fn task_goes_to_its_large_argument(rt: &Runtime) -> ferry::Result<()> {
    let owner = last(rt);
    let made = make_vec::options().on_rank(owner).remote(rt, 1 << 17)?; // 1 MiB
    let refs: Vec<ObjectRef<Vec<u64>>> = rt.get_value(&made)?;
    drop(made);
    // The owner's answer to rank 0's borrow says where the object lies and
    // how large it is; placement goes by what rank 0 knows.
    wait_listed(
        rt,
        0,
        &refs[0].id().to_string(),
        "rank 0 to learn the megabyte's size",
        |o| o.size.is_some(),
    )?;
    // Rank 0 has a free CPU, but the megabyte is on the owner: run there.
    let r = sum_on_rank::remote(rt, &refs[0])?;
    let n = 1u64 << 17;
    assert_eq!(rt.get_value(&r)?, (n * (n - 1) / 2, owner));
    // A small argument does not pull its task away from a rank with room.
    let small = make_refs::options().on_rank(owner).remote(rt, 1)?;
    let (tiny, _) = rt.get_value(&small)?;
    wait_listed(
        rt,
        0,
        &tiny[0].id().to_string(),
        "rank 0 to learn the small object's size",
        |o| o.size.is_some(),
    )?;
    #[ferry::remote]
    fn where_with(_x: u64) -> u32 {
        here()
    }
    assert_eq!(rt.get_value(&where_with::remote(rt, &tiny[0])?)?, 0);
    Ok(())
}

fn remote_errors_come_back_typed(rt: &Runtime) -> ferry::Result<()> {
    let r = fails::options()
        .on_rank(last(rt))
        .remote(rt, "boom on another rank".to_string())?;
    let err = rt.get(&r).unwrap_err();
    let t = err.task_error().expect("a task error");
    assert_eq!(t.kind, ferry::FailureKind::Application);
    assert_eq!(t.message, "boom on another rank");
    assert_eq!(t.rank, last(rt));
    Ok(())
}

fn ref_arguments_are_borrowed(rt: &Runtime) -> ferry::Result<()> {
    let base = store_used_on(rt, 0)?;
    let data = rt.put(&(1..=1000u64).collect::<Vec<_>>())?;
    let r = sum_on_rank::options().on_rank(1).remote(rt, &data)?;
    assert_eq!(rt.get_value(&r)?, (500_500, 1));
    // Rank 1's borrow ended with the task: dropping rank 0's ref frees it.
    drop(r);
    drop(data);
    assert!(
        eventually(BOUND, || Ok(store_used_on(rt, 0)? <= base))?,
        "the argument was not freed on rank 0"
    );
    Ok(())
}

/// Results of tasks run on another rank that are small enough to be kept
/// inline (`ferry_store::INLINE_MAX`) take no room in their owner's arena
/// when they come back, and read as any other.
fn small_results_from_another_rank_are_kept_out_of_the_arena(rt: &Runtime) -> ferry::Result<()> {
    let there = last(rt);
    let input = rt.put(&vec![1u64, 2, 3])?;
    let base = rt.store_used();
    let results = (0..100)
        .map(|_| {
            sum_on_rank::options()
                .on_rank(there)
                .remote(rt, input.clone())
        })
        .collect::<ferry::Result<Vec<_>>>()?;
    for r in &results {
        assert_eq!(rt.get_value(r)?, (6, there));
    }
    assert!(
        rt.store_used() <= base,
        "100 small results took {} arena bytes",
        rt.store_used() - base
    );
    Ok(())
}

fn refs_returned_from_another_rank_stay_alive(rt: &Runtime) -> ferry::Result<()> {
    let maker = last(rt);
    let base = store_used_on(rt, maker)?;
    let r = make_big_refs::options().on_rank(maker).remote(rt, 5)?;
    let (refs, made_on) = rt.get_value(&r)?;
    assert_eq!(made_on, maker);
    drop(r); // the maker may now free its copy of the result
    // The maker counts rank 0 as a borrower of each: from then on nothing
    // but rank 0's refs keeps them.
    for x in &refs {
        wait_listed(
            rt,
            maker,
            &x.id().to_string(),
            &format!("rank {maker} to count rank 0's borrow of {}", x.id()),
            |o| o.borrowers.contains(&0),
        )?;
    }
    let values: Vec<u64> = refs
        .iter()
        .map(|x| Ok(rt.get(x)?.as_slice()[0]))
        .collect::<ferry::Result<_>>()?;
    assert_eq!(values, vec![0, 10, 20, 30, 40]);
    assert!(store_used_on(rt, maker)? > base, "the five objects live on");
    drop(refs);
    assert!(
        eventually(BOUND, || Ok(store_used_on(rt, maker)? <= base))?,
        "rank {maker} kept objects nobody holds"
    );
    Ok(())
}

std::thread_local! {
    /// A ref a thread keeps until it ends.
    static KEPT_UNTIL_EXIT: std::cell::RefCell<Option<ObjectRef<u64>>> =
        const { std::cell::RefCell::new(None) };
}

/// A borrowed ref kept in a thread-local is dropped while the thread's
/// locals are destroyed, after those the runtime uses to send (set up
/// later, so destroyed first): its borrow still ends, and nothing aborts.
fn a_ref_dropped_as_its_thread_ends_is_released(rt: &Runtime) -> ferry::Result<()> {
    let maker = last(rt);
    let r = make_refs::options().on_rank(maker).remote(rt, 1)?;
    let (mut refs, _) = rt.get_value(&r)?;
    drop(r);
    let x = refs.pop().expect("one ref");
    let id = x.id().to_string();
    wait_listed(rt, maker, &id, "the maker to count rank 0's borrow", |o| {
        o.borrowers.contains(&0)
    })?;
    let thread_rt = rt.clone();
    let ended = std::thread::spawn(move || -> ferry::Result<u32> {
        // The ref's thread-local first, then a send from this thread
        // (which sets up the runtime's own thread-locals).
        KEPT_UNTIL_EXIT.with(|k| *k.borrow_mut() = Some(x));
        thread_rt.get_value(&rank_of::options().on_rank(maker).remote(&thread_rt)?)
    })
    .join()
    .expect("the thread ended without a panic")?;
    assert_eq!(ended, maker);
    // Let go: listed no more with rank 0 borrowing (or not listed at all,
    // once freed).
    wait_until("the maker to hear rank 0 let go", || {
        let s = rt.state();
        Ok(!s
            .ranks
            .iter()
            .filter(|r| r.rank == maker)
            .flat_map(|r| &r.objects)
            .any(|o| o.id == id && o.borrowers.contains(&0)))
    })
}

/// On one rank: asks `maker` for `n` refs it owns, and wraps them in an
/// object owned here.
#[ferry::remote]
fn wrap_refs_of(
    rt: &Runtime,
    maker: u32,
    n: u64,
) -> ferry::Result<Vec<ObjectRef<Vec<ObjectRef<u64>>>>> {
    let made = make_refs::options().on_rank(maker).remote(rt, n)?;
    let (refs, _) = rt.get_value(&made)?;
    Ok(vec![rt.put(&refs)?])
}

/// Rank 0 reads an object owned by rank 1 that holds refs owned by rank 2,
/// and drops the object at once: the refs it took out stay valid, however
/// the three ranks' messages race (rank 0 ends its borrow of the outer
/// object only after rank 2 has counted its borrows of the inner ones).
fn refs_inside_a_borrowed_object_outlive_it(rt: &Runtime) -> ferry::Result<()> {
    let n = rt.world_size();
    let (wrapper, maker) = (1, 2 % n);
    for round in 0..50u64 {
        let w = wrap_refs_of::options()
            .on_rank(wrapper)
            .remote(rt, maker, 3)?;
        let outer: Vec<ObjectRef<Vec<ObjectRef<u64>>>> = rt.get_value(&w)?;
        drop(w);
        let inner: Vec<ObjectRef<u64>> = rt.get_value(&outer[0])?;
        drop(outer); // the wrapper may now free its object and its borrows
        let values: Vec<u64> = inner
            .iter()
            .map(|r| rt.get_value(r))
            .collect::<ferry::Result<_>>()?;
        assert_eq!(values, vec![0, 10, 20], "round {round}");
    }
    Ok(())
}

/// The first entries of the `Ledger`s dropped in this process (the ranks
/// of a loopback world, and the worlds of tests running at once, share it).
static LEDGERS_DROPPED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// A first entry no other ledger of this run has.
fn unique_first() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos << 8) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Whether the ledger that started with `first` was dropped where this runs.
#[ferry::remote]
fn ledger_dropped(first: u64) -> bool {
    LEDGERS_DROPPED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&first)
}

fn ledger_dropped_on(rt: &Runtime, rank: u32, first: u64) -> ferry::Result<bool> {
    let r = ledger_dropped::options()
        .num_cpus(0.0)
        .on_rank(rank)
        .remote(rt, first)?;
    rt.get_value(&r)
}

#[ferry::actor]
struct Ledger {
    first: u64,
    entries: Vec<u64>,
}

#[ferry::actor]
impl Ledger {
    fn new(first: u64) -> Self {
        Ledger {
            first,
            entries: vec![first],
        }
    }

    fn push(&mut self, x: u64) -> Vec<u64> {
        self.entries.push(x);
        self.entries.clone()
    }

    fn rank(&self) -> u32 {
        here()
    }

    fn push_view(&mut self, x: View<u64>) -> Vec<u64> {
        self.push(x.to_native())
    }

    fn total(&self) -> u64 {
        self.entries.iter().sum()
    }

    fn explode(&mut self, why: String) -> u64 {
        self.entries.clear();
        panic!("{why}")
    }

    fn refuse(&self) -> Result<u64, String> {
        Err("refused".into())
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        LEDGERS_DROPPED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.first);
    }
}

fn an_actor_on_another_rank_runs_calls_in_order(rt: &Runtime) -> ferry::Result<()> {
    let a = Ledger::options().on_rank(last(rt)).remote(rt, 7)?;
    assert_eq!(a.actor_rank(), last(rt));
    assert_eq!(rt.get_value(&a.rank().remote()?)?, last(rt));
    let refs: Vec<ObjectRef<Vec<u64>>> = (0..200)
        .map(|i| a.push(i).remote())
        .collect::<ferry::Result<_>>()?;
    // Every call saw exactly the calls made before it.
    for (i, r) in refs.iter().enumerate() {
        let seen = rt.get_value(r)?;
        assert_eq!(seen.len(), i + 2);
        assert_eq!(seen[0], 7);
        assert_eq!(seen.last().copied(), Some(i as u64));
    }
    assert_eq!(*rt.get(&a.total().remote()?)?, 7 + (0..200u64).sum::<u64>());
    Ok(())
}

fn actors_go_where_their_resources_are_free(rt: &Runtime) -> ferry::Result<()> {
    let n = rt.world_size();
    let cpus = rt.rank_resources()["CPU"];
    let actors: Vec<ActorHandle<Ledger>> = (0..n)
        .map(|i| Ledger::options().num_cpus(cpus).remote(rt, u64::from(i)))
        .collect::<ferry::Result<_>>()?;
    let mut ranks: Vec<u32> = actors
        .iter()
        .map(|a| rt.get_value(&a.rank().remote()?))
        .collect::<ferry::Result<_>>()?;
    ranks.sort_unstable();
    assert_eq!(ranks, (0..n).collect::<Vec<_>>(), "one actor per rank");
    let mut handles: Vec<u32> = actors.iter().map(|a| a.actor_rank()).collect();
    handles.sort_unstable();
    assert_eq!(handles, ranks, "handles know where their actors are");
    // An actor no rank could hold fails at once, naming the resource.
    match Ledger::options().resource("TPU", 1.0).remote(rt, 0) {
        Err(Error::Infeasible { resource, .. }) => assert_eq!(resource, "TPU"),
        other => panic!("expected Infeasible, got {other:?}"),
    }
    Ok(())
}

#[ferry::actor]
struct Summer {
    sum: u64,
}

#[ferry::actor]
impl Summer {
    fn new() -> Self {
        Summer { sum: 0 }
    }

    fn add(&mut self, x: u64) -> (u64, u32) {
        self.sum += x;
        (self.sum, here())
    }
}

/// Calls `s` (an actor elsewhere) with each of `x` (refs owned by another
/// rank) and says where it ran.
#[ferry::remote]
fn call_with_refs(
    rt: &Runtime,
    s: ActorHandle<Summer>,
    x: Vec<ObjectRef<u64>>,
) -> ferry::Result<(u64, u32, u32)> {
    let mut last = (0, u32::MAX);
    for r in &x {
        last = rt.get_value(&s.add(r).remote()?)?;
    }
    Ok((last.0, last.1, rt.rank()))
}

/// On 4 ranks: a task on rank 3 calls an actor on rank 1 with refs owned
/// by rank 2 (on fewer ranks some of them coincide).
fn task_calls_actor_with_ref(rt: &Runtime) -> ferry::Result<()> {
    let n = rt.world_size();
    let (actor_on, owner, caller) = (1, 2 % n, 3 % n);
    let s = Summer::options().on_rank(actor_on).remote(rt)?;
    let made = make_refs::options().on_rank(owner).remote(rt, 10)?;
    let (refs, made_on) = rt.get_value(&made)?;
    assert_eq!(made_on, owner);
    assert!(refs.iter().all(|r| r.id().rank() == owner));
    let out = call_with_refs::options()
        .on_rank(caller)
        .remote(rt, s.clone(), refs)?;
    let (sum, actor_rank, task_rank) = rt.get_value(&out)?;
    assert_eq!(sum, (0..10u64).map(|i| i * 10).sum::<u64>());
    assert_eq!((actor_rank, task_rank), (actor_on, caller));
    // Rank 0's handle still works after the caller let go of its own.
    assert_eq!(rt.get_value(&s.add(1).remote()?)?.0, sum + 1);
    Ok(())
}

/// Creates a `Ledger` on the rank it runs on and returns the handle, with
/// padding that makes the result too big to be kept inline (see
/// `ferry_store::INLINE_MAX`): the maker's store bytes show whether it
/// lives.
#[ferry::remote]
fn make_ledger(rt: &Runtime, first: u64) -> ferry::Result<(ActorHandle<Ledger>, Vec<u64>)> {
    Ok((Ledger::remote(rt, first)?, vec![0; 8]))
}

fn handle_returned_from_another_rank(rt: &Runtime) -> ferry::Result<()> {
    let maker = last(rt);
    let base = store_used_on(rt, maker)?;
    let made = make_ledger::options().on_rank(maker).remote(rt, 5)?;
    let (a, _): (ActorHandle<Ledger>, _) = rt.get_value(&made)?;
    drop(made); // rank 0's handle alone keeps the actor once the maker lets go
    assert_eq!(a.actor_rank(), maker);
    // The maker freed its copy of the result (and the handle inside it).
    wait_until(
        &format!("rank {maker} to free its copy of the result"),
        || Ok(store_used_on(rt, maker)? <= base),
    )?;
    assert_eq!(rt.get_value(&a.push(6).remote()?)?, vec![5, 6]);
    assert_eq!(rt.get_value(&a.rank().remote()?)?, last(rt));
    Ok(())
}

#[ferry::remote]
fn total_via(h: ActorHandle<Ledger>) -> ferry::Result<u64> {
    let rt = ferry::current()?;
    rt.get_value(&h.total().remote()?)
}

fn an_actor_stops_when_no_rank_holds_a_handle(rt: &Runtime) -> ferry::Result<()> {
    let host = 1;
    let first = unique_first();
    let a = Ledger::options().on_rank(host).remote(rt, first)?;
    // A copy inside an object on rank 0, and a call through a task elsewhere.
    let boxed = rt.put(&vec![a.clone()])?;
    let t = total_via::options()
        .on_rank(last(rt))
        .remote(rt, a.clone())?;
    assert_eq!(rt.get_value(&t)?, first);
    drop(a);
    // A call through the copy inside the object: it leaves rank 0 after
    // anything dropping `a` could have sent to the host, so an actor that
    // `a` wrongly took along would answer it `ActorDied`.
    let inner: Vec<ActorHandle<Ledger>> = rt.get_value(&boxed)?;
    assert_eq!(rt.get_value(&inner[0].push(2).remote()?)?, vec![first, 2]);
    assert!(
        !ledger_dropped_on(rt, host, first)?,
        "the handle inside the object keeps the actor"
    );
    drop(inner);
    drop(boxed);
    assert!(
        eventually(BOUND, || ledger_dropped_on(rt, host, first))?,
        "the actor on rank {host} did not stop after every handle was dropped"
    );
    Ok(())
}

#[ferry::remote]
fn ask_total(h: ActorHandle<Ledger>) -> ferry::Result<String> {
    let rt = ferry::current()?;
    Ok(match rt.get_value(&h.total().remote()?) {
        Err(Error::ActorDied { .. }) => "died".to_string(),
        other => format!("{other:?}"),
    })
}

fn killing_through_a_remote_handle(rt: &Runtime) -> ferry::Result<()> {
    let a = Ledger::options().on_rank(1).remote(rt, 1)?;
    assert_eq!(rt.get_value(&a.total().remote()?)?, 1);
    a.kill();
    assert!(!a.is_alive());
    match rt.get_value(&a.total().remote()?) {
        Err(Error::ActorDied { .. }) => {}
        other => panic!("expected ActorDied, got {other:?}"),
    }
    // A handle on another rank learns it from the actor's rank.
    let r = ask_total::options()
        .on_rank(last(rt))
        .remote(rt, a.clone())?;
    assert_eq!(rt.get_value(&r)?, "died");
    Ok(())
}

fn remote_actor_errors_and_restarts(rt: &Runtime) -> ferry::Result<()> {
    let host = last(rt);
    let a = Ledger::options()
        .on_rank(host)
        .max_restarts(1)
        .remote(rt, 10)?;
    assert_eq!(rt.get_value(&a.push(1).remote()?)?, vec![10, 1]);
    match rt.get_value(&a.refuse().remote()?) {
        Err(Error::Task(t)) => {
            assert_eq!(t.kind, ferry::FailureKind::Application);
            assert_eq!(t.rank, host);
            assert!(t.message.contains("refused"), "{t:?}");
        }
        other => panic!("expected an application error, got {other:?}"),
    }
    match rt.get_value(&a.explode("boom".to_string()).remote()?) {
        Err(Error::Task(t)) => {
            assert_eq!(t.kind, ferry::FailureKind::Panic);
            assert!(t.message.contains("boom"), "{t:?}");
            assert!(t.task.contains("explode"), "{t:?}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    // Restarted: the constructor ran again on its rank.
    assert_eq!(rt.get_value(&a.push(2).remote()?)?, vec![10, 2]);
    assert_eq!(rt.get_value(&a.rank().remote()?)?, host);
    // Out of restarts: the actor dies and says why.
    let _ = rt.get_value(&a.explode("again".to_string()).remote()?);
    match rt.get_value(&a.total().remote()?) {
        Err(Error::ActorDied { reason, .. }) => assert!(reason.contains("again"), "{reason}"),
        other => panic!("expected ActorDied, got {other:?}"),
    }
    Ok(())
}

/// A million refs to objects owned by another rank pass through rank 0
/// (each one borrowed from its owner, a sample of them read, all dropped);
/// afterwards neither rank holds more than before.
fn a_million_cross_rank_refs_leak_nothing(rt: &Runtime) -> ferry::Result<()> {
    const BATCH: u64 = 5_000; // 40 KB of refs: one message
    const BATCHES: u64 = 200;
    let owner = last(rt);
    let (base0, base_owner) = (store_used_on(rt, 0)?, store_used_on(rt, owner)?);
    // Objects too big to be kept inline, so that the stores' bytes show a leak.
    let mut next = make_big_refs::options().on_rank(owner).remote(rt, BATCH)?;
    for b in 0..BATCHES {
        let (refs, _) = rt.get_value(&next)?;
        if b + 1 < BATCHES {
            next = make_big_refs::options().on_rank(owner).remote(rt, BATCH)?;
        }
        assert_eq!(refs.len() as u64, BATCH);
        let k = (b * 37) % BATCH;
        assert_eq!(rt.get(&refs[k as usize])?.as_slice(), &[k * 10; 8][..]);
    }
    drop(next);
    assert!(
        eventually(BOUND, || Ok(
            store_used_on(rt, 0)? <= base0 && store_used_on(rt, owner)? <= base_owner
        ))?,
        "leaked: rank 0 {base0} -> {}, rank {owner} {base_owner} -> {}",
        store_used_on(rt, 0)?,
        store_used_on(rt, owner)?
    );
    Ok(())
}

/// A rank's binding and where its worker runs: (local rank, CPUs, shares
/// CPUs, pins threads, the worker thread's CPUs).
#[ferry::remote]
fn binding_here(rt: &Runtime) -> (u32, Vec<u32>, bool, bool, Vec<u32>) {
    let b = rt.binding();
    let cpus = |v: Vec<usize>| v.into_iter().map(|c| c as u32).collect();
    let thread = ferry::parts::launcher::affinity::current_thread_cpus().unwrap_or_default();
    (
        b.local_rank,
        cpus(b.cpus),
        b.shares_cpus,
        rt.pins_threads(),
        cpus(thread),
    )
}

#[ferry::remote]
fn timeline_probe(x: u64) -> u64 {
    x + 1
}

/// A timeline written on rank 0 (the suite records one) is Chrome trace
/// JSON holding every rank as a process and the tasks each ran.
fn the_timeline_shows_every_rank_s_tasks(rt: &Runtime) -> ferry::Result<()> {
    let n = rt.world_size();
    for r in 0..n {
        let t = timeline_probe::options().on_rank(r).remote(rt, r as u64)?;
        rt.wait(std::slice::from_ref(&t), 1, None)?;
        assert_eq!(rt.get_value(&t)?, r as u64 + 1);
    }
    // Unique per call: worlds of the same size run at once in one process
    // (with and without one-sided reads), and one's file must not be the
    // other's.
    let path = std::env::temp_dir().join(format!(
        "ferry-suite-timeline-{}-{n}-{}.json",
        std::process::id(),
        unique_first()
    ));
    rt.timeline(&path)?;
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Init(e.to_string()))?;
    let _ = std::fs::remove_file(&path);
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Init(format!("the timeline is not JSON: {e}")))?;
    let events = json["traceEvents"]
        .as_array()
        .ok_or_else(|| Error::Init("no traceEvents".into()))?;
    for r in 0..n {
        let named = events.iter().any(|e| {
            e["name"] == "process_name" && e["pid"] == r && e["args"]["name"] == format!("rank {r}")
        });
        let ran = events.iter().any(|e| {
            e["ph"] == "X"
                && e["pid"] == r
                && e["name"]
                    .as_str()
                    .is_some_and(|s| s.contains("timeline_probe"))
        });
        assert!(named && ran, "rank {r} missing from the timeline: {text}");
    }
    Ok(())
}

/// Ranks that bind get CPUs no other rank has, and their workers run there;
/// ranks that share CPUs (more ranks than CPUs, or loopback ranks in one
/// process) leave their threads unbound.
fn each_rank_runs_where_its_binding_says(rt: &Runtime) -> ferry::Result<()> {
    let n = rt.world_size();
    let refs = (0..n)
        .map(|r| binding_here::options().on_rank(r).remote(rt))
        .collect::<ferry::Result<Vec<_>>>()?;
    let mut all = Vec::new();
    for r in &refs {
        // Let a worker run it (a getter would run a queued task itself).
        rt.wait(std::slice::from_ref(r), 1, None)?;
        all.push(rt.get_value(r)?);
    }
    // Real ranks of one node (distinct local ranks; loopback ranks are each
    // alone in their plan) with a CPU each: every one binds.
    let locals: std::collections::HashSet<u32> = all.iter().map(|b| b.0).collect();
    let cpus_here = ferry::parts::launcher::affinity::allowed_cpus()
        .map(|c| c.len())
        .unwrap_or(0);
    if locals.len() == n as usize && n > 1 && n as usize <= cpus_here {
        assert!(all.iter().all(|b| b.3), "a rank left unbound: {all:?}");
    }
    let mut taken = std::collections::HashSet::new();
    for (rank, (_local, cpus, shares, pins, thread)) in all.iter().enumerate() {
        assert!(!cpus.is_empty(), "rank {rank} has no CPU");
        if *pins {
            assert!(!shares, "rank {rank} pins CPUs it shares");
            assert!(
                thread.iter().all(|c| cpus.contains(c)),
                "rank {rank}: a worker on {thread:?}, binding {cpus:?}"
            );
            for c in cpus {
                assert!(taken.insert(*c), "CPU {c} bound by two ranks: {all:?}");
            }
        }
    }
    Ok(())
}

/// CPU time this process has used so far, every thread counted (also the
/// ones that ended), in seconds; and its pid.
#[ferry::remote]
fn process_cpu() -> Result<(f64, u32), String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // Fields after the command name (which may hold spaces) in parentheses:
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| format!("no field {i} in /proc/self/stat: {stat}"))
    };
    // /proc counts in USER_HZ ticks: 100 per second on Linux (kernel ABI).
    Ok(((ticks(11)? + ticks(12)?) / 100.0, std::process::id()))
}

/// Every rank's process CPU time (seconds) and pid.
fn cpu_of_every_rank(rt: &Runtime) -> ferry::Result<Vec<(f64, u32)>> {
    let refs = (0..rt.world_size())
        .map(|r| process_cpu::options().on_rank(r).remote(rt))
        .collect::<ferry::Result<Vec<_>>>()?;
    refs.iter().map(|r| rt.get_value(r)).collect()
}

/// A rank with nothing to do spends no core: over 5 idle seconds, each
/// rank's process (workers, receiving and progress threads, heartbeat)
/// uses under 5% of one core. Measured where each rank is a process of its
/// own (MPI); loopback ranks share the test process with other worlds, so
/// there it says why it skips.
fn idle_ranks_spend_no_core(rt: &Runtime) -> ferry::Result<()> {
    const IDLE: Duration = Duration::from_secs(5);
    let before = cpu_of_every_rank(rt)?;
    if before.iter().any(|b| b.1 != before[0].1) || rt.world_size() == 1 {
        // One process per rank: measure.
    } else {
        println!(
            "skipped idle_ranks_spend_no_core: the ranks are threads of one test process, \
             whose CPU time includes other tests' worlds"
        );
        return Ok(());
    }
    let t0 = Instant::now();
    std::thread::sleep(IDLE);
    let after = cpu_of_every_rank(rt)?;
    let wall = t0.elapsed().as_secs_f64();
    for (rank, (b, a)) in before.iter().zip(&after).enumerate() {
        let used = a.0 - b.0;
        let share = used / wall;
        println!(
            "idle: rank {rank} used {:.0} ms CPU in {wall:.1} s: {:.1}% of a core",
            used * 1e3,
            share * 100.0
        );
        assert!(
            share < 0.05,
            "rank {rank} used {:.0} ms CPU in {wall:.1} s idle: {:.1}% of a core (limit 5%)",
            used * 1e3,
            share * 100.0
        );
    }
    Ok(())
}

/// Waits on rank 0's gate (nested in a vector, so that it does not hold the
/// task back before it starts), then starts a chain with `x`.
#[ferry::remote]
fn chain_start(rt: &Runtime, gate: Vec<ObjectRef<bool>>, x: u64) -> ferry::Result<u64> {
    assert!(rt.get_value(&gate[0])?, "the gate never opened");
    Ok(x)
}

/// As [`chain_start`], but fails with `msg`.
#[ferry::remote]
fn chain_fail(rt: &Runtime, gate: Vec<ObjectRef<bool>>, msg: String) -> Result<u64, String> {
    match rt.get_value(&gate[0]) {
        Ok(true) => Err(msg),
        other => Err(format!("the gate never opened: {other:?}")),
    }
}

/// One link of a chain: its argument is a top-level ref, resolved before
/// it runs.
#[ferry::remote]
fn chain_step(x: View<u64>) -> u64 {
    x.to_native() + 1
}

/// Borrowed objects `rank` filled itself from a task it had just run for
/// their owner (`RankState::borrows_filled_here`).
fn filled_on(rt: &Runtime, rank: u32) -> u64 {
    rt.state()
        .ranks
        .iter()
        .find(|r| r.rank == rank)
        .map_or(0, |r| r.borrows_filled_here)
}

/// A counter of `rank`'s `RankState`.
fn state_count(rt: &Runtime, rank: u32, of: impl Fn(&ferry::RankState) -> u64) -> u64 {
    rt.state()
        .ranks
        .iter()
        .find(|r| r.rank == rank)
        .map_or(0, of)
}

/// Issue 14, three ranks and up: a task sent ahead to one rank while its
/// input is still being made on another asks that rank (the maker) for the
/// value, not rank 0 (the owner): the value comes one hop sooner. A value
/// too large to travel inline comes from the owner after all. Then
/// everything is freed everywhere.
fn a_task_reads_its_input_from_the_rank_making_it(rt: &Runtime) -> ferry::Result<()> {
    if rt.world_size() < 3 {
        println!(
            "skipped a_task_reads_its_input_from_the_rank_making_it: it needs an owner, a \
             maker and a reader on three ranks; this world has {}",
            rt.world_size()
        );
        return Ok(());
    }
    let (maker, reader) = (1, last(rt));
    let base = (store_used_on(rt, 0)?, store_used_on(rt, reader)?);
    let from_makers = |rt: &Runtime| state_count(rt, reader, |r| r.values_from_makers);
    let asked = |rt: &Runtime| state_count(rt, maker, |r| r.asked_as_maker);
    let (got_before, asked_before) = (from_makers(rt), asked(rt));
    let key = unique_first();
    let opener = OpenOnDrop(key);
    let gate = hold_rank_0::options().on_rank(0).remote(rt, key)?;
    let made = chain_start::options()
        .on_rank(maker)
        .remote(rt, vec![gate.clone()], 41)?;
    // The maker has taken the task (it borrowed the gate while taking it).
    wait_listed(
        rt,
        maker,
        &gate.id().to_string(),
        &format!("rank {maker} to borrow the gate"),
        |o| o.owner == 0,
    )?;
    let read = chain_step::options().on_rank(reader).remote(rt, &made)?;
    // The reader asked the maker, which holds the request until the value
    // exists (the gate is still shut).
    wait_until(
        &format!("rank {reader} to ask rank {maker} for the value"),
        || Ok(asked(rt) > asked_before),
    )?;
    assert!(
        !made.is_ready(),
        "the maker's task ran before its gate opened"
    );
    drop(opener);
    assert_eq!(rt.get_value(&read)?, 42);
    assert_eq!(rt.get_value(&made)?, 41);
    assert_eq!(
        from_makers(rt) - got_before,
        1,
        "rank {reader} got the value from rank {maker}, which made it"
    );
    let mut ids = vec![made.id().to_string(), read.id().to_string()];
    drop((made, read, gate));

    // A value too large to travel inline: the maker says so, and the
    // reader gets it from the owner instead.
    let key = unique_first();
    let opener = OpenOnDrop(key);
    let gate = hold_rank_0::options().on_rank(0).remote(rt, key)?;
    let asked_before = asked(rt);
    let made = big_after_gate::options()
        .on_rank(maker)
        .remote(rt, vec![gate.clone()], 1 << 17)?;
    wait_listed(
        rt,
        maker,
        &gate.id().to_string(),
        &format!("rank {maker} to borrow the second gate"),
        |o| o.owner == 0,
    )?;
    let read = sum_on_rank::options().on_rank(reader).remote(rt, &made)?;
    wait_until(
        &format!("rank {reader} to ask rank {maker} for the large value"),
        || Ok(asked(rt) > asked_before),
    )?;
    drop(opener);
    let n: u64 = 1 << 17;
    assert_eq!(rt.get_value(&read)?, (n * (n - 1) / 2, reader));
    assert_eq!(
        from_makers(rt) - got_before,
        1,
        "rank {reader} got the large value from its owner"
    );
    ids.extend([made.id().to_string(), read.id().to_string()]);
    drop((made, read, gate));
    wait_all_freed(rt, &ids, reader, base)
}

/// [`big`] once `gate[0]` is ready.
#[ferry::remote]
fn big_after_gate(rt: &Runtime, gate: Vec<ObjectRef<bool>>, n: u64) -> ferry::Result<Vec<u64>> {
    assert!(rt.get_value(&gate[0])?, "the gate never opened");
    Ok((0..n).collect())
}

/// Opens gate `key` when dropped, so that a failed scenario never leaves
/// rank 0's CPU held.
struct OpenOnDrop(u64);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        set_gate(self.0, true, true);
    }
}

/// Waits until no rank lists any of `ids` and the stores of rank 0 and
/// `on` are back to `base`.
fn wait_all_freed(rt: &Runtime, ids: &[String], on: u32, base: (u64, u64)) -> ferry::Result<()> {
    wait_until("every rank to let go of the chain's objects", || {
        let s = rt.state();
        Ok(!s
            .ranks
            .iter()
            .flat_map(|r| &r.objects)
            .any(|o| ids.contains(&o.id)))
    })?;
    wait_until("the chain's objects to leave the stores", || {
        Ok(store_used_on(rt, 0)? <= base.0 && store_used_on(rt, on)? <= base.1)
    })
}

/// Issue 14: a chain of tasks on one rank, each taking the one before's
/// result (owned by rank 0, the submitter) as a top-level ref, all sent
/// before any runs. The rank that runs them fills its borrow of each result
/// from the task it has just run, without waiting for rank 0 to hear `Done`
/// and answer: counted in `borrows_filled_here`, once for each link but the
/// last (whose result nobody there waits for). Nor does it ask rank 0 for
/// those links (`fetches_sent`): only for the gate, and for one more link
/// too large to fill there, which it reads from rank 0 as before. Rank 0
/// still learns of every borrow and every result; everything is freed
/// everywhere at the end.
fn a_chain_on_one_rank_reads_its_own_results_there(rt: &Runtime) -> ferry::Result<()> {
    const N: usize = 8;
    let on = last(rt);
    let base = (store_used_on(rt, 0)?, store_used_on(rt, on)?);
    let filled_before = filled_on(rt, on);
    let fetches_before = state_count(rt, on, |r| r.fetches_sent);
    let key = unique_first();
    let opener = OpenOnDrop(key);
    let gate = hold_rank_0::options().on_rank(0).remote(rt, key)?;
    let mut refs = vec![
        chain_start::options()
            .on_rank(on)
            .remote(rt, vec![gate.clone()], 1)?,
    ];
    for i in 1..N {
        let next = chain_step::options().on_rank(on).remote(rt, &refs[i - 1])?;
        refs.push(next);
    }
    let big = chain_big::options().on_rank(on).remote(rt, &refs[N - 1])?;
    let big_len = chain_len::options().on_rank(on).remote(rt, &big)?;
    let mut ids: Vec<String> = refs.iter().map(|r| r.id().to_string()).collect();
    ids.extend([big.id().to_string(), big_len.id().to_string()]);
    // Every link but the last is borrowed there, and not there yet, before
    // the first runs; rank 0 counts each of those borrows.
    for id in &ids[..N - 1] {
        wait_listed(rt, on, id, &format!("rank {on} to borrow {id}"), |o| {
            o.owner == 0 && !o.here
        })?;
        wait_listed(
            rt,
            0,
            id,
            &format!("rank 0 to count rank {on}'s borrow of {id}"),
            |o| o.borrowers.contains(&on),
        )?;
    }
    drop(opener);
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(rt.get_value(r)?, i as u64 + 1, "link {i}");
    }
    assert!(rt.get_value(&gate)?, "rank 0's CPU was never released");
    let want = BIG_LINK as u64 + N as u64;
    assert_eq!(
        rt.get_value(&big_len)?,
        want,
        "the large link, read from rank 0"
    );
    assert_eq!(
        filled_on(rt, on) - filled_before,
        N as u64,
        "rank {on} filled each small borrowed link from the task it had just run"
    );
    assert_eq!(
        state_count(rt, on, |r| r.fetches_sent) - fetches_before,
        2,
        "rank {on} asked rank 0 for the gate and the large link only"
    );
    drop((refs, big, big_len));
    drop(gate);
    wait_all_freed(rt, &ids, on, base)
}

/// Bytes of [`chain_big`]'s result: more than a rank fills a borrow with
/// from a task it has just run.
const BIG_LINK: usize = 100 * 1024;

/// A link too large to be filled where it is made.
#[ferry::remote]
fn chain_big(x: View<u64>) -> Vec<u8> {
    vec![x.to_native() as u8; BIG_LINK]
}

/// The length of a large link plus its first byte.
#[ferry::remote]
fn chain_len(v: View<Vec<u8>>) -> u64 {
    let bytes = v.as_slice();
    bytes.len() as u64 + bytes.first().map_or(0, |b| u64::from(*b))
}

/// The sum of three top-level refs.
#[ferry::remote]
fn add3(a: View<u64>, b: View<u64>, c: View<u64>) -> u64 {
    a.to_native() + b.to_native() + c.to_native()
}

/// Issue 14: a task sent to another rank with inputs of rank 0's. Rank 0
/// counts that rank's borrows before it sends the task (`lent_args`), so
/// that rank sends no frame to borrow them and asks for none of them
/// (`borrow_frames`, `fetches_sent`): inputs still being made on rank 0 are
/// pushed to it as they are made (`values_pushed`, on rank 0), and inputs
/// made already travel with the task (a small one inline, a large one as
/// the place rank 0 keeps it, read from there). A task whose inputs that
/// rank borrows already (a task there still waits on them) runs on the
/// values there, and the counts sent with it are given back. An actor call
/// there is lent its argument the same way. Then everything is freed
/// everywhere.
fn a_task_s_inputs_are_lent_with_it(rt: &Runtime) -> ferry::Result<()> {
    let on = last(rt);
    let base = (store_used_on(rt, 0)?, store_used_on(rt, on)?);
    let count = |rt: &Runtime| {
        (
            state_count(rt, on, |r| r.borrow_frames),
            state_count(rt, on, |r| r.fetches_sent),
            state_count(rt, 0, |r| r.values_pushed),
        )
    };
    let (opener, gate, made) = three_held_on_rank_0(rt)?;
    let before = count(rt);
    let sum = add3::options()
        .on_rank(on)
        .remote(rt, &made[0], &made[1], &made[2])?;
    let mut ids: Vec<String> = made.iter().map(|r| r.id().to_string()).collect();
    for id in &ids {
        wait_listed(
            rt,
            0,
            id,
            &format!("rank 0 to count rank {on}'s borrow of {id}"),
            |o| o.borrowers.contains(&on),
        )?;
    }
    // Made already: they travel with the task (a large one as where it is).
    let (small, one) = (rt.put(&40u64)?, rt.put(&1u64)?);
    let big = rt.put(&vec![2u8; BIG_LINK * 2])?;
    let len = chain_len::options().on_rank(on).remote(rt, &big)?;
    assert_eq!(rt.get_value(&len)?, BIG_LINK as u64 * 2 + 2);
    // `waits` waits there for `made[0]`, borrowed there already (by `sum`),
    // and holds `small` and `one`, which `again` then finds there.
    let waits = add3::options()
        .on_rank(on)
        .remote(rt, &small, &made[0], &one)?;
    let again = add3::options().on_rank(on).remote(rt, &small, &one, &one)?;
    assert_eq!(rt.get_value(&again)?, 42);
    // An actor call is lent its arguments too.
    let ledger = Ledger::options().on_rank(on).remote(rt, 0)?;
    let five = rt.put(&5u64)?;
    let seen = ledger.push_view(&five).remote()?;
    assert_eq!(rt.get_value(&seen)?, vec![0, 5]);
    let (frames, fetches, pushed) = count(rt);
    assert_eq!(
        (frames - before.0, fetches - before.1, pushed - before.2),
        (0, 0, 3),
        "rank {on} neither borrowed nor asked for an input; rank 0 promised the three being made"
    );
    drop(opener);
    assert_eq!(rt.get_value(&sum)?, 6);
    assert_eq!(rt.get_value(&waits)?, 42);
    assert!(rt.get_value(&gate)?, "rank 0's CPU was never released");
    let more = [
        small.id(),
        one.id(),
        big.id(),
        sum.id(),
        len.id(),
        waits.id(),
        again.id(),
        five.id(),
        seen.id(),
    ];
    ids.extend(more.iter().map(|i| i.to_string()));
    drop((made, small, one, big, sum, len, waits, again, gate));
    drop((ledger, five, seen));
    wait_all_freed(rt, &ids, on, base)
}

/// Three numbers (1, 2, 3) being made on rank 0 by tasks held back until
/// the returned opener is dropped, behind a gate task that holds rank 0's
/// CPU (its result says it was released).
fn three_held_on_rank_0(
    rt: &Runtime,
) -> ferry::Result<(OpenOnDrop, ObjectRef<bool>, Vec<ObjectRef<u64>>)> {
    let key = unique_first();
    let opener = OpenOnDrop(key);
    let gate = hold_rank_0::options().on_rank(0).remote(rt, key)?;
    let made = (1..=3)
        .map(|x| {
            chain_start::options()
                .on_rank(0)
                .remote(rt, vec![gate.clone()], x)
        })
        .collect::<ferry::Result<_>>()?;
    Ok((opener, gate, made))
}

/// Issue 14: the rank that ran a task for rank 0 ends its borrows of the
/// task's inputs (lent with the task, and still being made on rank 0 when
/// it arrived) in the task's `Done`, not in a `RemoveBorrow` frame each
/// (`borrow_ends_with_done`); rank 0 takes them as it would those frames,
/// and everything is freed everywhere. A ref the task keeps (here: returns
/// inside its result) stays borrowed until it is let go of, and ends then;
/// and the task rank 0 keeps to rebuild that result (lineage) does not keep
/// the ref's object for ever (it is rank 0's own: nothing to rebuild).
fn a_task_s_input_borrows_end_with_its_done(rt: &Runtime) -> ferry::Result<()> {
    let on = last(rt);
    let base = (store_used_on(rt, 0)?, store_used_on(rt, on)?);
    let ends = |rt: &Runtime| state_count(rt, on, |r| r.borrow_ends_with_done);
    let before = ends(rt);
    let (opener, gate, made) = three_held_on_rank_0(rt)?;
    let sum = add3::options()
        .on_rank(on)
        .remote(rt, &made[0], &made[1], &made[2])?;
    // The task waits there for its inputs (its `Done` is then due when it ends).
    let id = made[0].id().to_string();
    wait_listed(
        rt,
        0,
        &id,
        &format!("rank 0 to count rank {on}'s borrow of {id}"),
        |o| o.borrowers.contains(&on),
    )?;
    drop(opener);
    assert_eq!(rt.get_value(&sum)?, 6);
    assert!(rt.get_value(&gate)?, "rank 0's CPU was never released");
    // Each input the task let go of last ends in its `Done`; the thread
    // that delivered the last input may still hold that one as the task
    // ends, and then its end goes in a frame of its own, as before.
    let ended = ends(rt) - before;
    assert!(
        (1..=3).contains(&ended),
        "rank {on} ended {ended} of its three borrows in the task's Done"
    );
    let d = rt.put(&4u64)?;
    let kept = pass_refs::options()
        .on_rank(on)
        .remote(rt, vec![d.clone()])?;
    let back = rt.get_value(&kept)?;
    assert_eq!(rt.get_value(&back[0])?, 4);
    assert_eq!(
        ends(rt) - before,
        ended,
        "the ref the task returned is still borrowed on rank {on}"
    );
    let mut ids: Vec<String> = made.iter().map(|r| r.id().to_string()).collect();
    ids.extend([d.id(), sum.id(), kept.id()].iter().map(|i| i.to_string()));
    drop((made, gate, d, sum, kept, back));
    wait_all_freed(rt, &ids, on, base)
}

/// Its refs, returned: the rank that runs it keeps borrowing them.
#[ferry::remote]
fn pass_refs(refs: Vec<ObjectRef<u64>>) -> Vec<ObjectRef<u64>> {
    refs
}

/// Issue 14, failing: a task fails on its rank while the task after it,
/// there, waits for its result. That task fails with the same failure as
/// the one that waits for it on rank 0 (which hears it through `Done`), and
/// as rank 0's own copy; then everything is freed everywhere.
fn a_failed_task_s_error_reaches_the_task_after_it_on_its_rank(rt: &Runtime) -> ferry::Result<()> {
    let on = last(rt);
    let base = (store_used_on(rt, 0)?, store_used_on(rt, on)?);
    let filled_before = filled_on(rt, on);
    let key = unique_first();
    let opener = OpenOnDrop(key);
    let gate = hold_rank_0::options().on_rank(0).remote(rt, key)?;
    let bad = chain_fail::options().on_rank(on).remote(
        rt,
        vec![gate.clone()],
        "boom in a chain".to_string(),
    )?;
    let after_there = chain_step::options().on_rank(on).remote(rt, &bad)?;
    let after_here = chain_step::options().on_rank(0).remote(rt, &bad)?;
    let id = bad.id().to_string();
    wait_listed(rt, on, &id, &format!("rank {on} to borrow {id}"), |o| {
        o.owner == 0 && !o.here
    })?;
    drop(opener);
    let there = rt.get(&after_there).unwrap_err();
    let here = rt.get(&after_here).unwrap_err();
    let owner = rt.get(&bad).unwrap_err();
    let t = there.task_error().expect("a task error");
    assert_eq!(t.kind, ferry::FailureKind::Application);
    assert_eq!(t.message, "boom in a chain");
    assert_eq!(t.rank, on);
    // A task that did not run for a failed argument reaches rank 0 as that
    // argument's failure (the wire carries the cause), so rank 0's own
    // waiter says more in words; the failure itself is the same.
    assert_eq!(
        there.task_error(),
        here.task_error(),
        "the same failure as through rank 0"
    );
    assert_eq!(
        there.task_error(),
        owner.task_error(),
        "the same failure as rank 0's copy"
    );
    assert_eq!(
        there.to_string(),
        owner.to_string(),
        "the same error as rank 0's copy"
    );
    assert_eq!(
        filled_on(rt, on) - filled_before,
        1,
        "rank {on} filled its borrow with the error of the task it had just run"
    );
    assert!(rt.get_value(&gate)?, "rank 0's CPU was never released");
    let ids = vec![
        id,
        after_there.id().to_string(),
        after_here.id().to_string(),
    ];
    drop((bad, after_there, after_here, gate));
    wait_all_freed(rt, &ids, on, base)
}

/// Takes numbered calls and counts those that came out of order.
#[ferry::actor]
struct InOrder {
    next: u64,
    out_of_order: u64,
}

#[ferry::actor]
impl InOrder {
    fn new() -> Self {
        InOrder {
            next: 0,
            out_of_order: 0,
        }
    }

    fn take(&mut self, seq: u64, payload: Vec<u8>) -> bool {
        let ok = seq == self.next
            && payload.len() == payload_len(seq)
            && payload.iter().all(|&b| b == seq as u8);
        self.out_of_order += u64::from(!ok);
        self.next = seq + 1;
        ok
    }

    fn seen(&self) -> (u64, u64) {
        (self.next, self.out_of_order)
    }
}

/// Every tenth call carries 32 KiB: larger than a ring takes
/// (`ferry_transport::RING_FRAME_MAX`, 16 KiB), so it goes by MPI; the
/// others are small, and sent faster than the receiver drains its ring,
/// so some find it full and go by MPI too.
fn payload_len(seq: u64) -> usize {
    if seq.is_multiple_of(10) {
        32 << 10
    } else {
        (seq % 200) as usize
    }
}

/// One sender's frames to one receiver are handled in the order they were
/// sent, whether each went through the node's shared-memory ring or by MPI
/// (too large for the ring, or the ring full): 3,000 calls to an actor on
/// another rank, sent without waiting, each checked in turn. Says which
/// paths the frames took (`frame paths: ...`), for the suite to check
/// against what the run asked for.
fn frames_keep_each_sender_s_order_across_rings_and_mpi(rt: &Runtime) -> ferry::Result<()> {
    const CALLS: u64 = 3000;
    let a = InOrder::options().on_rank(last(rt)).remote(rt)?;
    let before = frame_paths_of(rt, 0);
    let refs: Vec<ObjectRef<bool>> = (0..CALLS)
        .map(|seq| a.take(seq, vec![seq as u8; payload_len(seq)]).remote())
        .collect::<ferry::Result<_>>()?;
    for (seq, r) in refs.iter().enumerate() {
        assert!(rt.get_value(r)?, "call {seq} came out of order");
    }
    assert_eq!(rt.get_value(&a.seen().remote()?)?, (CALLS, 0));
    let after = frame_paths_of(rt, 0);
    let (ring, mpi) = (after.0 - before.0, after.1 - before.1);
    if ring == 0 {
        assert_eq!(
            mpi, 0,
            "frames went by MPI to a ring peer, none by its ring"
        );
        println!("frame paths: MPI alone");
    } else {
        assert!(
            mpi >= CALLS / 10,
            "{mpi} frames by MPI to a ring peer: the {} large ones at least should be",
            CALLS / 10
        );
        println!("frame paths: rings and MPI ({ring} by ring, {mpi} by MPI)");
    }
    Ok(())
}

/// `rank`'s frames to its node so far: (by ring, by MPI).
fn frame_paths_of(rt: &Runtime, rank: u32) -> (u64, u64) {
    rt.state()
        .ranks
        .iter()
        .find(|r| r.rank == rank)
        .map_or((0, 0), |r| (r.frames_by_ring, r.frames_by_mpi_to_node))
}
