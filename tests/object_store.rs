//! Objects: put/get of plain and derived types, owned copies, zero-copy
//! construction, timeouts, type mismatches, corrupt archives, freeing,
//! views outliving refs, a full store and shutdown.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use ferry::{Config, Error, Runtime, StoreError, View};

fn start(cpus: f64, store: usize) -> ferry::Result<Runtime> {
    ferry::init(Config::default().num_cpus(cpus).object_store_memory(store))
}

/// A user type stored through rkyv's derives.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq)]
struct Particle {
    id: u32,
    name: String,
    pos: [f64; 3],
    tags: Vec<u16>,
    parent: Option<u64>,
}

fn particle() -> Particle {
    Particle {
        id: 7,
        name: "muon".into(),
        pos: [1.0, -2.5, 3.25],
        tags: vec![1, 2, 3],
        parent: Some(99),
    }
}

#[ferry::remote]
fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[ferry::remote]
fn too_big() -> Vec<u8> {
    vec![1u8; 16 << 20]
}

#[ferry::remote]
fn particle_name(p: Particle) -> String {
    p.name
}

#[ferry::remote]
fn byte_sum(xs: View<Vec<u8>>) -> u64 {
    xs.as_slice().iter().map(|&x| u64::from(x)).sum()
}

/// Opened by the test that waits on it (see [`gated`]).
static GATE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Waits for [`GATE`] to open (60 s at most): whether it opened.
#[ferry::remote]
fn gated() -> bool {
    let (open, cv) = &GATE;
    let open = open.lock().unwrap_or_else(|e| e.into_inner());
    let (open, _) = cv
        .wait_timeout_while(open, Duration::from_secs(60), |o| !*o)
        .unwrap_or_else(|e| e.into_inner());
    *open
}

/// A task that blocks in `get` on [`gated`].
#[ferry::remote]
fn waits_for_gate(rt: &Runtime) -> ferry::Result<bool> {
    let r = gated::remote(rt)?;
    Ok(*rt.get(&r)?)
}

#[test]
fn put_get_roundtrip_of_plain_types() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let a = rt.put(&0xdead_beef_u64)?;
    assert_eq!(*rt.get(&a)?, 0xdead_beef_u64);
    assert!(a.is_ready());

    let s = rt.put(&String::from("héllo ferry"))?;
    assert_eq!(rt.get(&s)?.as_str(), "héllo ferry");

    let xs: Vec<f64> = (0..1000).map(|i| i as f64 * 0.5).collect();
    let v = rt.put(&xs)?;
    assert_eq!(rt.get(&v)?.as_slice(), xs.as_slice());

    let empty = rt.put(&Vec::<f64>::new())?;
    assert!(rt.get(&empty)?.as_slice().is_empty());

    let t = rt.put(&(3u8, -4i64, true))?;
    assert_eq!(rt.get_value(&t)?, (3u8, -4i64, true));
    rt.shutdown()
}

#[test]
fn put_get_roundtrip_of_a_derived_struct() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let p = particle();
    let r = rt.put(&p)?;
    let view = rt.get(&r)?;
    assert_eq!(view.id, 7);
    assert_eq!(view.name.as_str(), "muon");
    assert_eq!(view.tags.len(), 3);
    assert_eq!(view.deserialize()?, p);
    // A derived struct as a task argument, by ref.
    let n = particle_name::remote(&rt, &r)?;
    assert_eq!(rt.get(&n)?.as_str(), "muon");
    rt.shutdown()
}

#[test]
fn get_value_is_an_owned_copy() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let r = rt.put(&vec![1u32, 2, 3])?;
    let mut owned: Vec<u32> = rt.get_value(&r)?;
    owned.push(4);
    assert_eq!(owned, vec![1, 2, 3, 4]);
    assert_eq!(rt.get(&r)?.as_slice(), &[1, 2, 3], "the object changed");
    let p = rt.put(&particle())?;
    let q: Particle = rt.get_value(&p)?;
    assert_eq!(q, particle());
    rt.shutdown()
}

#[test]
fn put_vec_with_fills_in_place() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let n = 100_000;
    let r = rt.put_vec_with::<f64>(n, |xs| {
        assert_eq!(xs.len(), n);
        for (i, x) in xs.iter_mut().enumerate() {
            *x = i as f64;
        }
    })?;
    let v = rt.get(&r)?;
    let s = v.as_slice();
    assert_eq!(s.len(), n);
    assert_eq!(s[0], 0.0);
    assert_eq!(s[n - 1], (n - 1) as f64);
    // The view is into the store's shared memory: the same bytes every get.
    let again = rt.get(&r)?;
    assert_eq!(again.as_slice().as_ptr(), s.as_ptr());
    let ints = rt.put_vec_with::<u32>(4, |xs| xs.copy_from_slice(&[4, 3, 2, 1]))?;
    assert_eq!(rt.get_value(&ints)?, vec![4, 3, 2, 1]);
    let none = rt.put_vec_with::<u8>(0, |_| {})?;
    assert!(rt.get(&none)?.as_slice().is_empty());
    rt.shutdown()
}

#[test]
fn get_timeout_on_a_slow_task_times_out() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let r = sleepy::remote(&rt, 5_000)?;
    let t0 = Instant::now();
    let got = rt.get_timeout(&r, Duration::from_millis(50)).map(|v| *v);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "get_timeout(50 ms) returned after {took:?} with {got:?}"
    );
    assert!(matches!(got, Err(Error::Timeout(_))), "{got:?}");
    assert!(!r.is_ready());
    rt.shutdown()
}

#[test]
fn get_through_a_wrong_type_is_a_type_mismatch() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let r = rt.put(&5u64)?;
    let wrong = r.clone().cast::<String>();
    assert_eq!(wrong.id(), r.id());
    match rt.get(&wrong) {
        Err(Error::TypeMismatch { stored, asked, .. }) => {
            assert!(stored.contains("u64"), "{stored}");
            assert!(asked.contains("String"), "{asked}");
        }
        Err(e) => panic!("expected TypeMismatch, got {e:?}"),
        Ok(v) => panic!("a u64 was read as a String: {:?}", v.as_str()),
    }
    assert!(matches!(
        rt.get(&r.clone().cast::<u32>()),
        Err(Error::TypeMismatch { .. })
    ));
    // The object itself is intact.
    assert_eq!(*rt.get(&r)?, 5);
    rt.shutdown()
}

#[test]
fn corrupt_archive_is_an_error_not_a_crash() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let v: Vec<u64> = (0..32).collect();
    let good = rkyv::to_bytes::<rkyv::rancor::Error>(&v).expect("serialize");
    // A valid archive goes through put_archive and reads back.
    let ok = rt.put_archive::<Vec<u64>>(&good)?;
    assert_eq!(rt.get(&ok)?.as_slice(), v.as_slice());
    assert_eq!(rt.get_value(&ok)?, v);

    // The root (offset and length of the vec) is at the end of the archive.
    let mut bad = good.to_vec();
    let n = bad.len();
    for (i, b) in bad[n - 16..].iter_mut().enumerate() {
        *b = 0xA5 ^ (i as u8).wrapping_mul(37);
    }
    let r = rt.put_archive::<Vec<u64>>(&bad)?;
    let e = rt.get(&r).expect_err("garbage offsets must not validate");
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    // Asking again still fails cleanly.
    assert!(matches!(rt.get(&r), Err(Error::Corrupt { .. })));

    // A huge length pointing past the end.
    let mut long = good.to_vec();
    long[n - 8..].copy_from_slice(&u64::MAX.to_le_bytes());
    let r2 = rt.put_archive::<Vec<u64>>(&long)?;
    assert!(matches!(rt.get(&r2), Err(Error::Corrupt { .. })));

    // Too short to hold a root at all, and empty.
    let r3 = rt.put_archive::<Vec<u64>>(&good[..4])?;
    assert!(matches!(rt.get(&r3), Err(Error::Corrupt { .. })));
    // Empty bytes: refused at put, or corrupt at get.
    if let Ok(r4) = rt.put_archive::<Vec<u64>>(&[]) {
        assert!(matches!(rt.get(&r4), Err(Error::Corrupt { .. })));
    }

    // A String archive with invalid UTF-8.
    let s = rkyv::to_bytes::<rkyv::rancor::Error>(&String::from("abcdefghijklmnopqrstuvwxyz"))
        .expect("serialize");
    let mut bad_s = s.to_vec();
    bad_s[0] = 0xFF;
    bad_s[1] = 0xFE;
    let r5 = rt.put_archive::<String>(&bad_s)?;
    assert!(matches!(rt.get(&r5), Err(Error::Corrupt { .. })));

    // The runtime still works.
    let after = rt.put(&1u64)?;
    assert_eq!(*rt.get(&after)?, 1);
    rt.shutdown()
}

fn wait_for_used(rt: &Runtime, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let used = rt.store_used();
        if used == want || Instant::now() > deadline {
            return used;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A value whose archive is at most `ferry_store::INLINE_MAX` bytes (a
/// task's few numbers) is kept in its slot, not in the arena: it takes no
/// store space, and reads, views and task arguments see it as any other.
#[test]
fn small_values_are_kept_out_of_the_arena() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let before = rt.store_used();
    let small = rt.put(&vec![3u8; 16])?;
    let made = byte_sum::remote(&rt, small.clone())?;
    let pair = rt.put(&(7u32, String::from("hi")))?;
    assert_eq!(rt.get_value(&made)?, 48);
    assert_eq!(rt.get(&small)?.as_slice(), &[3u8; 16][..]);
    assert_eq!(rt.get_value(&pair)?, (7, "hi".to_string()));
    assert_eq!(rt.store_used(), before, "small objects take no arena space");
    // A bigger one goes to the arena, as before.
    let big = rt.put(&vec![1u8; ferry_store::INLINE_MAX])?;
    assert!(rt.store_used() > before);
    assert_eq!(rt.get(&big)?.len(), ferry_store::INLINE_MAX);
    rt.shutdown()
}

#[test]
fn objects_are_freed_when_the_last_ref_drops() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let before = rt.store_used();
    let r = rt.put_vec_with::<u8>(1 << 20, |xs| xs.fill(7))?;
    assert!(rt.store_used() >= before + (1 << 20), "{}", rt.store_used());
    let r2 = r.clone();
    drop(r);
    assert!(
        rt.store_used() >= before + (1 << 20),
        "freed while a clone lives"
    );
    drop(r2);
    assert_eq!(wait_for_used(&rt, before), before);

    // The same for a task's result.
    let t = sleepy::remote(&rt, 0)?;
    rt.get(&t)?;
    let base = rt.store_used();
    let big = rt.put(&vec![1u64; 1 << 17])?;
    assert!(rt.store_used() >= base + (1 << 20));
    drop(big);
    assert_eq!(wait_for_used(&rt, base), base);
    rt.shutdown()
}

/// Runs three tasks on a 4 KiB input the caller then holds no ref to, and
/// gets their results with a deadline: a getter with one never runs a task
/// itself, so the worker runs them all and holds their remains.
fn sums_on_a_worker(rt: &Runtime) -> ferry::Result<()> {
    let input = rt.put(&vec![3u8; 4096])?;
    let sums = (0..3)
        .map(|_| byte_sum::remote(rt, &input))
        .collect::<ferry::Result<Vec<_>>>()?;
    for s in &sums {
        let sum = rt.get_timeout(s, Duration::from_secs(60))?;
        assert_eq!(*sum, 3 * 4096);
    }
    Ok(())
}

/// A finished task's remains (its inputs' slots among them) wait a moment
/// for the thread that submitted it, so that their memory goes back to
/// that thread's allocator; once the rank is idle they are dropped, and an
/// input nobody else holds is freed without another submission or `get`.
#[test]
fn a_finished_tasks_light_input_is_freed_once_the_rank_is_idle() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let before = rt.store_used();
    sums_on_a_worker(&rt)?;
    assert_eq!(
        wait_for_used(&rt, before),
        before,
        "an idle rank still holds a finished task's input"
    );
    rt.shutdown()
}

/// A worker that blocks in `get` inside a task hands over the remains it
/// was collecting: they would otherwise wait, holding their inputs, for as
/// long as it blocks (here until the test opens the gate).
#[test]
fn a_worker_blocked_inside_a_task_holds_no_finished_tasks_inputs() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let before = rt.store_used();
    sums_on_a_worker(&rt)?;
    // The same worker takes this task next; it blocks until the gate opens.
    let blocked = waits_for_gate::remote(&rt)?;
    let freed = wait_for_used(&rt, before);
    {
        let (open, cv) = &GATE;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
    assert!(*rt.get_timeout(&blocked, Duration::from_secs(60))?);
    assert_eq!(
        freed, before,
        "a blocked worker held a finished task's input"
    );
    rt.shutdown()
}

#[test]
fn contained_refs_keep_inner_objects_alive_until_the_outer_is_freed() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let before = rt.store_used();
    let inner = rt.put_vec_with::<u8>(1 << 20, |xs| xs.fill(3))?;
    let inner_id = inner.id();
    let outer = rt.put(&vec![inner])?;
    // The only ref left to the inner object is inside the outer one.
    assert!(rt.store_used() >= before + (1 << 20));
    let view = rt.get(&outer)?;
    let again = view[0].to_ref()?;
    assert_eq!(again.id(), inner_id);
    assert_eq!(rt.get(&again)?.as_slice()[77], 3);
    drop(again);
    drop(view);
    drop(outer);
    assert_eq!(wait_for_used(&rt, before), before, "inner object leaked");
    rt.shutdown()
}

#[test]
fn views_keep_the_object_alive_after_the_ref_is_dropped() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let before = rt.store_used();
    let r = rt.put_vec_with::<u64>(1 << 17, |xs| {
        for (i, x) in xs.iter_mut().enumerate() {
            *x = i as u64;
        }
    })?;
    let view = rt.get(&r)?;
    drop(r);
    assert!(rt.store_used() >= before + (1 << 20), "freed under a view");
    // Allocate and free other objects to reuse any freed space.
    for _ in 0..4 {
        let other = rt.put_vec_with::<u64>(1 << 17, |xs| xs.fill(u64::MAX))?;
        drop(other);
    }
    let s = view.as_slice();
    assert_eq!(s.len(), 1 << 17);
    assert!(s.iter().enumerate().all(|(i, x)| *x == i as u64));
    let clone = view.clone();
    drop(view);
    assert_eq!(clone.as_slice()[12345], 12345);
    drop(clone);
    assert_eq!(wait_for_used(&rt, before), before);
    rt.shutdown()
}

#[test]
fn a_put_larger_than_the_store_fails_cleanly() -> ferry::Result<()> {
    let rt = start(1.0, 8 << 20)?;
    let big = vec![0u8; 16 << 20];
    // A full store is its own kind, apart from an I/O failure of the store.
    let err = match rt.put(&big) {
        Err(e @ Error::Store(_)) => e,
        Err(e) => panic!("expected Error::Store, got {e:?}"),
        Ok(_) => panic!("16 MiB fit in an 8 MiB store"),
    };
    match &err {
        Error::Store(e) => match **e {
            StoreError::Full {
                requested,
                capacity,
                ..
            } => assert!(requested > capacity, "{e}"),
            _ => panic!("expected StoreError::Full, got {e:?}"),
        },
        _ => unreachable!(),
    }
    assert!(err.is_store_full());
    assert!(
        err.to_string()
            .starts_with("object store: object store full"),
        "{err}"
    );
    // The store's error is the source, for reporters that walk the chain.
    let source = std::error::Error::source(&err).expect("a source");
    assert_eq!(
        source.to_string(),
        err.to_string()["object store: ".len()..]
    );
    match rt.put_vec_with::<f64>(2 << 20, |xs| xs.fill(1.0)) {
        Err(Error::Store(e)) if matches!(*e, StoreError::Full { .. }) => {}
        Err(e) => panic!("expected StoreError::Full, got {e:?}"),
        Ok(_) => panic!("16 MiB fit in an 8 MiB store"),
    }
    // Nothing leaked, and the store still works.
    let small = rt.put(&vec![1u8; 1 << 20])?;
    assert_eq!(rt.get(&small)?.len(), 1 << 20);
    let t = sleepy::remote(&rt, 1)?;
    assert_eq!(*rt.get(&t)?, 1);
    rt.shutdown()
}

#[test]
fn a_task_result_that_does_not_fit_fails_the_task() -> ferry::Result<()> {
    let rt = start(1.0, 8 << 20)?;
    let r = too_big::remote(&rt)?;
    let e = rt.get(&r).expect_err("16 MiB result in an 8 MiB store");
    assert!(e.to_string().contains("full"), "{e}");
    let ok = sleepy::remote(&rt, 1)?;
    assert_eq!(*rt.get(&ok)?, 1);
    rt.shutdown()
}

#[test]
fn shutdown_removes_the_store_file_and_refuses_new_work() -> ferry::Result<()> {
    let rt = start(1.0, 64 << 20)?;
    let path = rt.store_path().to_path_buf();
    let r = rt.put(&vec![1.0f64, 2.0])?;
    let view = rt.get(&r)?;
    // The name went at start (nothing is left if the job is killed); the
    // memory stays mapped.
    assert!(!path.exists(), "{} named while running", path.display());
    rt.shutdown()?;
    assert!(!path.exists(), "{} left behind", path.display());
    assert!(matches!(rt.put(&1u64), Err(Error::Shutdown)));
    assert!(matches!(
        rt.put_vec_with::<u8>(4, |_| {}),
        Err(Error::Shutdown)
    ));
    assert!(matches!(sleepy::remote(&rt, 1), Err(Error::Shutdown)));
    // What was already held stays readable.
    assert_eq!(view.as_slice(), &[1.0, 2.0]);
    // Shutting down again is fine.
    rt.shutdown()
}
