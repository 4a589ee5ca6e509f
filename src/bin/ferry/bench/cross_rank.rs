//! `ferry bench` metrics that need several ranks (run under `mpirun -n 2`
//! or more): the round trip of an empty task and of an actor call on
//! another rank beside a raw MPI ping-pong, cross-rank actor call
//! throughput, Ray's multi-client metrics spread over the ranks, and the
//! transfer of objects owned by another rank beside a raw one-sided read
//! of the same sizes (`MPI_Get` + `MPI_Win_flush_local` issued by the
//! measuring thread itself on the transport's window, under MPI), all in
//! the same run.

use std::time::Instant;

use ferry::{ActorHandle, ObjectRef, Runtime};

use super::fixtures::{Server, do_put, do_put_small, work};
use super::runner::Runner;
use super::timeit::{median, say};

/// An empty task.
#[ferry::remote]
fn empty() {}

/// `count` objects of `size` bytes, owned by the rank that runs this.
#[ferry::remote]
fn blobs(rt: &Runtime, size: u64, count: u64) -> ferry::Result<Vec<ObjectRef<Vec<u8>>>> {
    (0..count)
        .map(|i| rt.put_vec_with::<u8>(size as usize, |b| b.fill(i as u8)))
        .collect()
}

/// Transfer sizes and how many objects to time for each.
const SIZES: [(u64, usize, &str); 6] = [
    (8, 200, "8 B"),
    (1 << 10, 200, "1 KiB"),
    (64 << 10, 100, "64 KiB"),
    (1 << 20, 50, "1 MiB"),
    (64 << 20, 6, "64 MiB"),
    (256 << 20, 3, "256 MiB"),
];

/// Runs the cross-rank metrics (rank 0 drives, rank 1 serves).
pub(crate) fn run(rt: &Runtime, r: &mut Runner<'_>) -> ferry::Result<()> {
    if !r.wants_group("cross-rank") && !r.wants_group("across ranks") {
        return Ok(());
    }
    if rt.world_size() < 2 {
        say("cross-rank metrics skipped: one rank (run under `mpirun -n 2 ferry bench`)");
        r.printed = true;
        return Ok(());
    }
    let size = rt.world_size();
    raw_ping_pong(rt, r);
    r.metric(
        "cross-rank task round trip",
        1.0,
        || Ok(()),
        |_| {
            rt.get(&empty::options().on_rank(1).remote(rt)?)?;
            Ok(())
        },
    )?;
    r.metric(
        "cross-rank tasks async",
        1000.0,
        || Ok(()),
        |_| {
            let refs = (0..1000)
                .map(|_| empty::options().on_rank(1).remote(rt))
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;
    r.metric(
        "cross-rank actor call round trip",
        1.0,
        || Server::options().on_rank(1).remote(rt),
        |server| {
            rt.get(&server.small_value().remote()?)?;
            Ok(())
        },
    )?;
    r.metric(
        "cross-rank actor calls async",
        1000.0,
        || Server::options().on_rank(1).remote(rt),
        |server| {
            let refs = (0..1000)
                .map(|_| server.small_value().remote())
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;
    frame_paths(rt);
    // Ray's n:n actor calls async with one server actor and one client task
    // per rank: each client's 5000 calls go round-robin to every rank's
    // server, so most of them cross ranks.
    r.metric(
        "n:n actor calls across ranks async",
        5000.0 * f64::from(size),
        || servers_on_every_rank(rt),
        |servers| {
            let refs = (0..size)
                .map(|c| work::options().on_rank(c).remote(rt, servers.clone()))
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;
    // Ray's multi-client put metrics with the 10 clients spread over the
    // ranks (each rank puts into its own store).
    r.metric(
        "multi client put calls across ranks (Plasma Store)",
        1000.0,
        || Ok(()),
        |_| {
            let refs = (0..10)
                .map(|i| do_put_small::options().on_rank(i % size).remote(rt))
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;
    r.metric(
        "multi client put gigabytes across ranks",
        10.0 * 8.0 * 0.1,
        || Ok(()),
        |_| {
            let refs = (0..10)
                .map(|i| do_put::options().on_rank(i % size).remote(rt))
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
            Ok(())
        },
    )?;
    if !r.wants_printed("cross-rank get") {
        return Ok(());
    }
    if std::env::var("FERRY_FORCE_RMA").is_ok_and(|v| v == "1") {
        say("cross-rank get path: one-sided reads (FERRY_FORCE_RMA=1)");
    } else {
        say(
            "cross-rank get path: ranks on one node map each other's stores (zero copy; FERRY_FORCE_RMA=1 forces one-sided reads)",
        );
    }
    for (size, count, label) in SIZES {
        let made = blobs::options().on_rank(1).remote(rt, size, count as u64)?;
        let refs: Vec<ObjectRef<Vec<u8>>> = rt
            .get(&made)?
            .iter()
            .map(|a| a.to_ref())
            .collect::<ferry::Result<_>>()?;
        // The list holds the refs too (and so their copies here): let it go.
        drop(made);
        // Each copy is dropped after its get, as a running job frees what it
        // has used: the next one lands in the same, already mapped, pages
        // (a first touch of shared memory costs more than the transfer).
        let mut ferry_s = Vec::with_capacity(count);
        // Where each object lies on rank 1 (known once it was borrowed and
        // read): the raw reads below read the same bytes, in the same order.
        let mut places = Vec::with_capacity(count);
        for x in refs {
            let t = Instant::now();
            let v = rt.get(&x)?;
            ferry_s.push(t.elapsed().as_secs_f64());
            assert_eq!(v.len() as u64, size);
            places.extend(ferry::__private::borrowed_place(&x));
        }
        let mut buf = vec![0u8; size as usize];
        let mut raw_s = Vec::with_capacity(count);
        for i in 0..count {
            // The object's own bytes where known (its archive: the vector's
            // bytes, then its root), else the start of rank 1's store.
            let (from, offset) = places.get(i).copied().unwrap_or((1, 0));
            let t = Instant::now();
            ferry::__private::raw_read(rt, from, offset as usize, &mut buf)?;
            raw_s.push(t.elapsed().as_secs_f64());
        }
        let (f, raw) = (median(ferry_s), median(raw_s));
        say(&format!(
            "cross-rank get {label}: median {:.1} us, {:.2} GB/s | raw MPI_Get + flush from this thread: {:.1} us, {:.2} GB/s | raw/ferry {:.2}",
            f * 1e6,
            size as f64 / f / 1e9,
            raw * 1e6,
            size as f64 / raw / 1e9,
            raw / f
        ));
    }
    Ok(())
}

/// One `Server` actor on every rank.
fn servers_on_every_rank(rt: &Runtime) -> ferry::Result<Vec<ActorHandle<Server>>> {
    (0..rt.world_size())
        .map(|r| Server::options().on_rank(r).remote(rt))
        .collect()
}

/// Prints the raw MPI ping-pong between ranks 0 and 1: the floor under
/// every cross-rank round trip below.
fn raw_ping_pong(rt: &Runtime, r: &mut Runner<'_>) {
    if !r.wants("cross-rank task round trip") && !r.wants("cross-rank actor call round trip") {
        return;
    }
    r.printed = true;
    match ferry::__private::raw_ping_pong(rt, 1, 10_000) {
        Ok(Some(rtts)) => {
            let us = median(rtts.iter().map(|d| d.as_secs_f64() * 1e6).collect());
            say(&format!(
                "raw MPI ping-pong with rank 1 (8 B, blocking send + receive): median {us:.2} us per round trip"
            ));
        }
        Ok(None) => say("raw ping-pong: not measured (no MPI under this transport)"),
        Err(e) => say(&format!("raw ping-pong failed: {e}")),
    }
}

/// Prints, for ranks 0 and 1, how many control frames to ranks on their
/// node went through the shared-memory rings and how many by MPI (a frame
/// too large for a ring, or one that met its ring full) so far.
fn frame_paths(rt: &Runtime) {
    for rank in rt.state().ranks.iter().filter(|r| r.rank < 2) {
        say(&format!(
            "rank {} frames to its node so far: {} through rings, {} by MPI",
            rank.rank, rank.frames_by_ring, rank.frames_by_mpi_to_node
        ));
    }
}
