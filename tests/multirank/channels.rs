//! Objects sent to a rank under a tag (`Runtime::send_to`,
//! `Runtime::receive_from`): matched in order per sender and tag whether
//! the receive comes first or the object does, failures included, large
//! ones too, typed, and usable as any ref (a task's argument, sent on
//! again); an object holding refs, or another rank's, is not sent.

use std::time::Duration;

use ferry::{Error, ObjectRef, Runtime};

use super::{BOUND, big, fails, last, make_refs, sum_on_rank};

const TAG: u64 = 0xC4A0;

/// Sends rank 0 the numbers `0, 3, 6, …` (`n` of them) under `TAG`, a
/// failed object under `TAG + 1` and `big(len)` under `TAG + 2`.
#[ferry::remote]
fn send_to_rank_0(rt: &Runtime, n: u64, len: u64) -> ferry::Result<u32> {
    for i in 0..n {
        rt.send_to(&rt.put(&(i * 3))?, 0, TAG)?;
    }
    let failed = fails::options()
        .on_rank(rt.rank())
        .remote(rt, "sent broken".to_string())?;
    rt.send_to(&failed, 0, TAG + 1)?;
    rt.send_to(&rt.put(&big(len))?, 0, TAG + 2)?;
    rt.send_to(&rt.put(&7u64)?, 0, TAG + 5)?;
    Ok(rt.rank())
}

/// The sum of what rank 0 sends this rank under `tag` (a `Vec<u64>`).
#[ferry::remote]
fn sum_received(rt: &Runtime, tag: u64) -> ferry::Result<u64> {
    let r: ObjectRef<Vec<u64>> = rt.receive_from(0, tag)?;
    let v = rt.get_timeout(&r, Duration::from_secs(BOUND))?;
    Ok(v.iter().map(|x| x.to_native()).sum())
}

/// The error of what rank 0 sends this rank under `tag`, as text (or
/// "a value").
#[ferry::remote]
fn error_received(rt: &Runtime, tag: u64) -> ferry::Result<String> {
    let r: ObjectRef<u64> = rt.receive_from(0, tag)?;
    Ok(match rt.get_timeout(&r, Duration::from_secs(BOUND)) {
        Ok(_) => "a value".into(),
        Err(e @ Error::InvalidArgument(_)) => e.to_string(),
        Err(e) => format!("not InvalidArgument: {e}"),
    })
}

/// What rank 0 sends this rank under `tag` (a `(u64, u32)`).
#[ferry::remote]
fn pair_received(rt: &Runtime, tag: u64) -> ferry::Result<(u64, u32)> {
    let r: ObjectRef<(u64, u32)> = rt.receive_from(0, tag)?;
    let v = rt.get_timeout(&r, Duration::from_secs(BOUND))?;
    Ok((v.0.to_native(), v.1.to_native()))
}

pub(super) fn objects_sent_under_a_tag_arrive_in_order(rt: &Runtime) -> ferry::Result<()> {
    let there = last(rt);
    let limit = Duration::from_secs(BOUND);
    // Two receives posted before anything is sent, the rest after.
    let early: Vec<ObjectRef<u64>> = (0..2)
        .map(|_| rt.receive_from(there, TAG))
        .collect::<ferry::Result<_>>()?;
    // A task on rank 1 reads the large one as soon as it comes, and its
    // result, not made yet, is sent on to the last rank.
    let large = rt.receive_from::<Vec<u64>>(there, TAG + 2)?;
    let summed = sum_on_rank::options().on_rank(1).remote(rt, &large)?;
    assert!(!summed.is_ready());
    rt.send_to(&summed, there, TAG + 4)?;
    let forwarded = pair_received::options()
        .on_rank(there)
        .remote(rt, TAG + 4)?;

    let sender = send_to_rank_0::options()
        .on_rank(there)
        .remote(rt, 5, 200_000)?;
    assert_eq!(rt.get_value(&sender)?, there);
    let late: Vec<ObjectRef<u64>> = (0..3)
        .map(|_| rt.receive_from(there, TAG))
        .collect::<ferry::Result<_>>()?;
    let got: Vec<u64> = early
        .iter()
        .chain(&late)
        .map(|r| Ok(rt.get_timeout(r, limit)?.to_native()))
        .collect::<ferry::Result<_>>()?;
    assert_eq!(got, [0, 3, 6, 9, 12], "in the order sent");

    let failed = rt.receive_from::<u64>(there, TAG + 1)?;
    match rt.get_timeout(&failed, limit) {
        Err(e) => assert!(e.to_string().contains("sent broken"), "{e}"),
        Ok(v) => panic!("a failed object arrived as {}", v.to_native()),
    }
    // Received as the wrong type: the get says which it is.
    let wrong = rt.receive_from::<Vec<u64>>(there, TAG + 5)?;
    match rt.get_timeout(&wrong, limit) {
        Err(Error::TypeMismatch { stored, .. }) => assert_eq!(stored, "u64"),
        Err(e) => panic!("expected a type mismatch, got {e}"),
        Ok(v) => panic!("a u64 was read as a vector of {}", v.len()),
    }
    let total = (0..200_000u64).sum::<u64>();
    assert_eq!(rt.get_value(&summed)?, (total, 1));
    assert_eq!(rt.get_value(&forwarded)?, (total, 1));

    // From rank 0 to a task of the last rank's, received there first.
    let task = sum_received::options().on_rank(there).remote(rt, TAG + 3)?;
    rt.send_to(&rt.put(&big(1000))?, there, TAG + 3)?;
    assert_eq!(rt.get_value(&task)?, (0..1000u64).sum::<u64>());

    // An object holding refs is not sent (its copy would not keep them
    // alive): the receive, here or there, gets why.
    let holder = rt.put(&vec![early[0].clone()])?;
    rt.send_to(&holder, 0, TAG + 6)?;
    match rt.get_timeout(&rt.receive_from::<Vec<ObjectRef<u64>>>(0, TAG + 6)?, limit) {
        Err(e @ Error::InvalidArgument(_)) => assert!(e.to_string().contains("holds refs"), "{e}"),
        other => panic!("expected InvalidArgument, got {:?}", other.map(|v| v.len())),
    }
    let told = error_received::options()
        .on_rank(there)
        .remote(rt, TAG + 6)?;
    rt.send_to(&holder, there, TAG + 6)?;
    let told = rt.get_value(&told)?;
    assert!(told.contains("holds refs"), "{told}");
    // Another rank's object is its owner's to send.
    let (theirs, maker) = rt.get_value(&make_refs::options().on_rank(there).remote(rt, 1)?)?;
    assert_eq!(maker, there);
    assert!(matches!(
        rt.send_to(&theirs[0], there, TAG + 7),
        Err(Error::InvalidArgument(_))
    ));

    // To and from no rank of the job.
    let n = rt.world_size();
    assert!(matches!(
        rt.send_to(&early[0], n, TAG),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        rt.receive_from::<u64>(n, TAG),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}
