//! `ferry-transport-mpi-check`: every rank of an `mpirun` runs this to check
//! and measure [`MpiTransport`]: all-to-all frames, RMA reads of every other
//! rank's region, frame ping-pong latency against raw rsmpi send/receive,
//! and RMA read bandwidth. Prints `ok …` lines the integration test checks.
//!
//! Usage: `mpirun -n N ferry-transport-mpi-check [--region-mib M] [--quick]`
//! (`--quick`: fewer iterations, no 64 MiB measurement).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ferry_transport::rsmpi::traits::{Communicator, CommunicatorCollectives, Destination, Source};
use ferry_transport::{Event, MpiTransport, Rank, Region, Transport, TransportError};

/// Frames each rank sends to each rank in the all-to-all phase.
const FRAMES_PER_PAIR: u32 = 200;
/// Tag of the raw rsmpi ping-pong (anything but `FRAME_TAG`).
const RAW_TAG: i32 = 77;
/// How long any single wait may take before the check fails instead of hanging.
const WAIT: Duration = Duration::from_secs(60);

const PHASE_ALL_TO_ALL: u8 = 1;
const PHASE_PING: u8 = 2;
const PHASE_DONE: u8 = 3;
const PHASE_POLLED: u8 = 4;
const PHASE_PARKED: u8 = 5;

/// Frames each rank sends each other rank while the receivers poll.
const POLLED_FRAMES: u32 = 2000;

/// Byte `i` of rank `rank`'s region.
fn pattern(rank: Rank, i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 11) ^ (rank as usize).wrapping_mul(97).wrapping_add(13)) as u8
}

fn fail(rank: Rank, what: impl std::fmt::Display) -> ! {
    eprintln!("FAIL rank {rank}: {what}");
    std::process::exit(1);
}

fn next_frame(t: &MpiTransport) -> (Rank, Vec<u8>) {
    match t.recv(Some(WAIT)) {
        Ok(Some(Event::Frame { from, bytes })) => (from, bytes),
        Ok(Some(other)) => fail(t.rank(), format!("unexpected event {other:?}")),
        Ok(None) => fail(t.rank(), "timed out waiting for a frame"),
        Err(e) => fail(t.rank(), e),
    }
}

fn barrier(t: &MpiTransport) {
    if let Err(e) = t.with_world(|w| w.barrier()) {
        fail(t.rank(), e);
    }
}

/// CPU time (ns) used so far by every thread of this process.
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn median_us(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2] * 1e6
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let region_mib: usize = args
        .iter()
        .position(|a| a == "--region-mib")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 2 } else { 64 });
    let region_len = region_mib << 20;

    // Our rank is not known before MPI starts: fill with the rank mpirun
    // announces, then verify it against MPI's.
    let env_rank: Rank = std::env::var("OMPI_COMM_WORLD_RANK")
        .or_else(|_| std::env::var("PMI_RANK"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let bytes: Vec<u8> = (0..region_len).map(|i| pattern(env_rank, i)).collect();
    let t = match MpiTransport::start(Region::from_bytes(bytes)) {
        Ok(t) => t,
        Err(e) => fail(env_rank, e),
    };
    let (me, n) = (t.rank(), t.size());
    if me != env_rank {
        fail(
            me,
            format!("MPI rank {me} differs from the launcher's {env_rank}"),
        );
    }
    println!(
        "rank {me}/{n}: thread level {}, {}",
        t.info().threading,
        t.info().library.lines().next().unwrap_or("")
    );

    // 1. All-to-all frames, per-pair order.
    for seq in 0..FRAMES_PER_PAIR {
        for to in 0..n {
            let mut f = vec![PHASE_ALL_TO_ALL];
            f.extend_from_slice(&me.to_le_bytes());
            f.extend_from_slice(&to.to_le_bytes());
            f.extend_from_slice(&seq.to_le_bytes());
            if let Err(e) = t.send(to, f) {
                fail(me, e);
            }
        }
    }
    let mut next = vec![0u32; n as usize];
    for _ in 0..FRAMES_PER_PAIR * n {
        let (from, f) = next_frame(&t);
        let word = |k: usize| u32::from_le_bytes(f[1 + 4 * k..5 + 4 * k].try_into().unwrap());
        if f.len() != 13 || f[0] != PHASE_ALL_TO_ALL || word(0) != from || word(1) != me {
            fail(me, format!("bad frame {f:?} from {from}"));
        }
        if word(2) != next[from as usize] {
            fail(
                me,
                format!(
                    "frame {} from {from} arrived when {} was due",
                    word(2),
                    next[from as usize]
                ),
            );
        }
        next[from as usize] += 1;
    }
    println!(
        "ok all-to-all rank {me}: {} frames from {n} ranks in order",
        FRAMES_PER_PAIR * n
    );
    barrier(&t);

    // 2. RMA reads of every rank's region (own included), checked.
    for from in 0..n {
        let len = t.region_lens()[from as usize];
        if len != region_len {
            fail(
                me,
                format!("rank {from} exposes {len} bytes, expected {region_len}"),
            );
        }
        for (offset, size) in [
            (0, 4096),
            (len / 2 + 3, 100_000),
            (len - 777, 777),
            (12345, 1 << 20),
        ] {
            let mut buf = vec![0u8; size];
            if let Err(e) = t.read(from, offset, &mut buf) {
                fail(me, format!("read {size} at {offset} of rank {from}: {e}"));
            }
            if let Some(i) = (0..size).find(|&i| buf[i] != pattern(from, offset + i)) {
                fail(
                    me,
                    format!("read of rank {from}: byte {} wrong", offset + i),
                );
            }
        }
        match t.read(from, len - 10, &mut [0u8; 11]) {
            Err(TransportError::OutOfBounds { .. }) => {}
            other => fail(me, format!("out-of-bounds read gave {other:?}")),
        }
    }
    println!("ok rma-read rank {me}: {n} regions of {region_mib} MiB");
    barrier(&t);

    // 3. Latency (ranks 0 and 1; the others sleep in `recv` until told).
    let iters = if quick { 300 } else { 3000 };
    let warmup = iters / 10;
    if n >= 2 && me < 2 {
        let peer = 1 - me;
        let mut rtts = Vec::with_capacity(iters);
        for i in 0..warmup + iters {
            let frame = vec![PHASE_PING, 0, 0, 0, 0, 0, 0, (i & 0xff) as u8];
            if me == 0 {
                let start = Instant::now();
                t.send(peer, frame).unwrap_or_else(|e| fail(me, e));
                let (from, back) = next_frame(&t);
                if from != peer || back.len() != 8 || back[0] != PHASE_PING {
                    fail(me, format!("bad pong {back:?} from {from}"));
                }
                if i >= warmup {
                    rtts.push(start.elapsed().as_secs_f64());
                }
            } else {
                let (from, ping) = next_frame(&t);
                if from != peer || ping.len() != 8 || ping[0] != PHASE_PING {
                    fail(me, format!("bad ping {ping:?} from {from}"));
                }
                t.send(peer, ping).unwrap_or_else(|e| fail(me, e));
            }
        }
        // Raw rsmpi blocking send/receive of 8 bytes on the progress thread.
        let raw = t
            .with_world(move |w| {
                let other = w.process_at_rank(peer as i32);
                let mut buf = [0u8; 8];
                let mut rtts = Vec::with_capacity(iters);
                for i in 0..warmup + iters {
                    if me == 0 {
                        let start = Instant::now();
                        other.send_with_tag(&buf[..], RAW_TAG);
                        other.receive_into_with_tag(&mut buf[..], RAW_TAG);
                        if i >= warmup {
                            rtts.push(start.elapsed().as_secs_f64());
                        }
                    } else {
                        other.receive_into_with_tag(&mut buf[..], RAW_TAG);
                        other.send_with_tag(&buf[..], RAW_TAG);
                    }
                }
                rtts
            })
            .unwrap_or_else(|e| fail(me, e));
        if me == 0 {
            println!(
                "latency: 8-byte frame round trip median {:.1} us (transport, {iters} iters); raw rsmpi send/recv {:.1} us",
                median_us(rtts),
                median_us(raw)
            );
        }
    }

    // 4. RMA read bandwidth, rank 0 reading rank 1.
    if n >= 2 && me == 0 {
        let mut sizes = vec![(1usize << 20, if quick { 20 } else { 200 })];
        if !quick && region_len >= 64 << 20 {
            sizes.push((64 << 20, 10));
        }
        for (size, reps) in sizes {
            let mut buf = vec![0u8; size];
            t.read(1, 0, &mut buf).unwrap_or_else(|e| fail(me, e)); // warm up, fault pages in
            let start = Instant::now();
            for _ in 0..reps {
                t.read(1, 0, &mut buf).unwrap_or_else(|e| fail(me, e));
            }
            let secs = start.elapsed().as_secs_f64() / reps as f64;
            if buf[size - 1] != pattern(1, size - 1) {
                fail(me, "bandwidth read returned wrong bytes");
            }
            let local: Vec<u8> = vec![7u8; size];
            let start = Instant::now();
            for _ in 0..reps {
                buf.copy_from_slice(&local);
                std::hint::black_box(&mut buf);
            }
            let memcpy = start.elapsed().as_secs_f64() / reps as f64;
            println!(
                "bandwidth: RMA read of {} MiB: {:.2} GB/s ({:.0} us per read; local memcpy {:.2} GB/s)",
                size >> 20,
                size as f64 / secs / 1e9,
                secs * 1e6,
                size as f64 / memcpy / 1e9
            );
        }
    }

    // 5. Idle cost: every rank waits 1 s for a frame that never comes.
    barrier(&t);
    let (cpu0, wall0) = (cpu_ns(), Instant::now());
    match t.recv(Some(Duration::from_secs(1))) {
        Ok(None) => {}
        other => fail(me, format!("idle wait gave {other:?}")),
    }
    println!(
        "idle: rank {me} used {:.1} ms CPU (all threads) during {:.0} ms of waiting",
        (cpu_ns() - cpu0) as f64 / 1e6,
        wall0.elapsed().as_secs_f64() * 1e3
    );
    barrier(&t);

    // 6. Frames handed to a handler on whichever thread receives them:
    // three threads of this rank poll (`Transport::poll`) beside the
    // progress thread while every other rank sends; each sender's frames
    // must be handled once each, in order. Then nobody polls: a frame
    // reaches a waiting (parked) thread through the progress thread.
    let (tx, rx) = std::sync::mpsc::channel::<(std::thread::ThreadId, Event)>();
    let tx = std::sync::Mutex::new(tx);
    if t.set_handler(Box::new(move |ev| {
        let me = std::thread::current().id();
        let _ = tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((me, ev.clone()));
    }))
    .is_err()
    {
        fail(me, "a handler was already set");
    }
    let handled =
        |rx: &std::sync::mpsc::Receiver<(std::thread::ThreadId, Event)>, phase: u8| match rx
            .recv_timeout(WAIT)
        {
            Ok((who, Event::Frame { from, bytes })) if bytes.first() == Some(&phase) => {
                (who, from, bytes)
            }
            Ok((_, other)) => fail(me, format!("unexpected event {other:?} in phase {phase}")),
            Err(e) => fail(me, format!("no frame in phase {phase}: {e}")),
        };
    barrier(&t);
    for seq in 0..POLLED_FRAMES {
        for to in (0..n).filter(|&to| to != me) {
            let mut f = vec![PHASE_POLLED];
            f.extend_from_slice(&seq.to_le_bytes());
            t.send(to, f).unwrap_or_else(|e| fail(me, e));
        }
    }
    let polling = std::sync::atomic::AtomicBool::new(true);
    let pollers: Vec<std::thread::ThreadId> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    while polling.load(std::sync::atomic::Ordering::Acquire) {
                        t.poll();
                    }
                    std::thread::current().id()
                })
            })
            .collect();
        let mut next = vec![0u32; n as usize];
        let mut by_pollers = 0u32;
        let mut ids = vec![std::thread::current().id()];
        let deadline = Instant::now() + WAIT;
        let expected = POLLED_FRAMES * (n - 1);
        let mut got = 0;
        while got < expected {
            t.poll();
            while let Ok((who, ev)) = rx.try_recv() {
                let Event::Frame { from, bytes } = ev else {
                    fail(me, format!("unexpected event {ev:?}"));
                };
                if bytes.len() != 5 || bytes[0] != PHASE_POLLED {
                    fail(me, format!("bad frame {bytes:?} from {from}"));
                }
                let seq = u32::from_le_bytes(bytes[1..5].try_into().unwrap_or([0; 4]));
                if seq != next[from as usize] {
                    fail(
                        me,
                        format!(
                            "frame {seq} from {from} handled when {} was due",
                            next[from as usize]
                        ),
                    );
                }
                next[from as usize] += 1;
                got += 1;
                by_pollers +=
                    u32::from(ids.contains(&who) || helpers.iter().any(|h| h.thread().id() == who));
            }
            if Instant::now() > deadline {
                fail(
                    me,
                    format!("{got} of {expected} frames handled in {WAIT:?}"),
                );
            }
        }
        polling.store(false, std::sync::atomic::Ordering::Release);
        for h in helpers {
            ids.push(
                h.join()
                    .unwrap_or_else(|_| fail(me, "a polling thread panicked")),
            );
        }
        println!(
            "ok polled rank {me}: {expected} frames from {} ranks handled once each, in order; \
             {by_pollers} by the polling threads, the rest by the progress thread",
            n - 1
        );
        ids
    });
    barrier(&t);
    // Nobody polls now: this thread waits (parks) on the channel.
    let to = (me + 1) % n;
    t.send(to, vec![PHASE_PARKED])
        .unwrap_or_else(|e| fail(me, e));
    let (who, from, _) = handled(&rx, PHASE_PARKED);
    if pollers.contains(&who) || from != (me + n - 1) % n {
        fail(
            me,
            format!("the parked-phase frame from {from} was handled by a waiting thread"),
        );
    }
    println!("ok parked rank {me}: a frame reached a parked waiter through the progress thread");
    barrier(&t);

    // 7. Rank 0 tells everybody to stop; then every rank closes (collective).
    if me == 0 {
        for to in 1..n {
            t.send(to, vec![PHASE_DONE]).unwrap_or_else(|e| fail(me, e));
        }
    } else {
        let (from, f, _) = {
            let (_, from, bytes) = handled(&rx, PHASE_DONE);
            (from, bytes, ())
        };
        if from != 0 || f != [PHASE_DONE] {
            fail(
                me,
                format!("expected the stop frame, got {f:?} from {from}"),
            );
        }
    }
    let start = Instant::now();
    if let Err(e) = t.close() {
        fail(me, e);
    }
    println!(
        "ok close rank {me} ({:.1} ms)",
        start.elapsed().as_secs_f64() * 1e3
    );
    ExitCode::SUCCESS
}
