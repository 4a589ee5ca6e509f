//! Loopback transport: frames, order, reads, failures, timeouts.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferry_transport::{Event, Loopback, Rank, Region, Transport, TransportError};

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

fn region_of(rank: Rank, len: usize) -> Region {
    Region::from_bytes(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(3) ^ rank as u8)
            .collect::<Vec<u8>>(),
    )
}

fn world(n: u32) -> Vec<Arc<Loopback>> {
    Loopback::world(n, (0..n).map(|r| region_of(r, 1000 + r as usize)).collect())
}

#[test]
fn all_to_all_keeps_per_pair_order() {
    const PER_PAIR: u32 = 500;
    for n in 1..=4u32 {
        let eps = world(n);
        let handles: Vec<_> = eps
            .iter()
            .cloned()
            .map(|ep| {
                thread::spawn(move || {
                    let me = ep.rank();
                    assert_eq!(ep.size(), n);
                    for seq in 0..PER_PAIR {
                        for to in 0..n {
                            let mut f = me.to_le_bytes().to_vec();
                            f.extend_from_slice(&seq.to_le_bytes());
                            ep.send(to, f).unwrap();
                        }
                    }
                    let mut next = vec![0u32; n as usize];
                    for _ in 0..PER_PAIR * n {
                        match ep.recv(WAIT).unwrap() {
                            Some(Event::Frame { from, bytes }) => {
                                assert_eq!(
                                    u32::from_le_bytes(bytes[..4].try_into().unwrap()),
                                    from
                                );
                                let seq = u32::from_le_bytes(bytes[4..].try_into().unwrap());
                                assert_eq!(
                                    seq, next[from as usize],
                                    "rank {me}: order from {from}"
                                );
                                next[from as usize] += 1;
                            }
                            other => panic!("rank {me}: unexpected {other:?}"),
                        }
                    }
                    assert!(next.iter().all(|&c| c == PER_PAIR));
                    assert_eq!(ep.recv(Some(Duration::ZERO)).unwrap(), None);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}

#[test]
fn read_copies_the_other_ranks_region() {
    let eps = world(3);
    for reader in &eps {
        for from in 0..3u32 {
            let len = 1000 + from as usize;
            let expected = region_of(from, len);
            let mut all = vec![0u8; len];
            expected.read_local(from, 0, &mut all).unwrap();
            let mut buf = vec![0u8; 100];
            reader.read(from, 17, &mut buf).unwrap();
            assert_eq!(buf, all[17..117]);
            let mut whole = vec![0u8; len];
            reader.read(from, 0, &mut whole).unwrap();
            assert_eq!(whole, all);
            reader.read(from, len, &mut []).unwrap();
        }
    }
}

#[test]
fn out_of_bounds_read_fails() {
    let eps = world(2);
    let mut buf = [0u8; 10];
    let err = eps[0].read(1, 995, &mut buf).unwrap_err();
    assert_eq!(
        err,
        TransportError::OutOfBounds {
            rank: 1,
            offset: 995,
            len: 10,
            region_len: 1001
        }
    );
    assert!(matches!(
        eps[0].read(1, usize::MAX, &mut buf),
        Err(TransportError::OutOfBounds { .. })
    ));
    assert!(matches!(
        eps[0].read(5, 0, &mut buf),
        Err(TransportError::UnknownRank { rank: 5, size: 2 })
    ));
    // A rank given no region exposes nothing.
    let bare = Loopback::world(2, Vec::new());
    assert!(matches!(
        bare[0].read(1, 0, &mut buf),
        Err(TransportError::OutOfBounds { .. })
    ));
}

#[test]
fn a_killed_rank_is_known_lost_before_its_event_is_received() {
    let eps = world(3);
    assert!(!eps[0].is_lost(1));
    eps[2].kill(1, "simulated crash").unwrap();
    // Every endpoint knows at once, before anyone took the `RankLost` event:
    // the runtime relies on this to never read a lost rank's memory in place.
    for ep in &eps {
        assert!(ep.is_lost(1));
    }
    assert!(!eps[0].is_lost(2));
    assert!(!eps[0].is_lost(7), "an unknown rank is not lost");
    eps[0].close().unwrap();
    assert!(!eps[1].is_lost(0), "a closed rank is not lost");
}

#[test]
fn only_a_live_rank_can_declare_another_lost() {
    let eps = world(3);
    eps[0].stop(2).unwrap();
    eps[2].declare_lost(0, "from a stopped rank").unwrap();
    assert!(!eps[1].is_lost(0), "a stopped rank has no say");
    eps[0].declare_lost(2, "silent").unwrap();
    assert!(eps[1].is_lost(2));
    eps[2].declare_lost(1, "from a lost rank").unwrap();
    assert!(!eps[0].is_lost(1), "a lost rank has no say");
}

#[test]
fn kill_reports_rank_lost_and_fails_sends() {
    let eps = world(3);
    eps[1].send(0, b"before".to_vec()).unwrap();
    eps[2].kill(1, "simulated crash").unwrap();
    // Frames sent before the death come first, then the loss.
    assert_eq!(
        eps[0].recv(WAIT).unwrap(),
        Some(Event::Frame {
            from: 1,
            bytes: b"before".to_vec()
        })
    );
    for ep in [&eps[0], &eps[2]] {
        assert_eq!(
            ep.recv(WAIT).unwrap(),
            Some(Event::RankLost {
                rank: 1,
                reason: "simulated crash".into()
            })
        );
        let err = ep.send(1, vec![1]).unwrap_err();
        assert_eq!(
            err,
            TransportError::RankLost {
                rank: 1,
                reason: "simulated crash".into()
            }
        );
        assert!(matches!(
            ep.read(1, 0, &mut [0u8; 4]),
            Err(TransportError::RankLost { rank: 1, .. })
        ));
    }
    // The dead rank itself can do nothing; killing it again does nothing.
    assert!(matches!(
        eps[1].send(0, vec![]),
        Err(TransportError::RankLost { rank: 1, .. })
    ));
    assert!(matches!(
        eps[1].recv(Some(Duration::ZERO)),
        Err(TransportError::RankLost { .. })
    ));
    eps[0].kill(1, "again").unwrap();
    assert_eq!(eps[0].recv(Some(Duration::from_millis(5))).unwrap(), None);
    // The survivors still talk.
    eps[0].send(2, b"still here".to_vec()).unwrap();
    assert!(matches!(
        eps[2].recv(WAIT).unwrap(),
        Some(Event::Frame { from: 0, .. })
    ));
}

#[test]
fn kill_wakes_a_blocked_receiver() {
    let eps = world(2);
    let ep0 = Arc::clone(&eps[0]);
    let waiter = thread::spawn(move || ep0.recv(None));
    thread::sleep(Duration::from_millis(30));
    eps[1].kill(1, "gone").unwrap();
    assert_eq!(
        waiter.join().unwrap().unwrap(),
        Some(Event::RankLost {
            rank: 1,
            reason: "gone".into()
        })
    );
}

#[test]
fn recv_timeout_returns_none() {
    let eps = world(2);
    let start = Instant::now();
    assert_eq!(eps[0].recv(Some(Duration::from_millis(50))).unwrap(), None);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(eps[0].recv(Some(Duration::ZERO)).unwrap(), None);
    // A timeout too large to add to now waits like `None`.
    eps[1].send(0, vec![7]).unwrap();
    assert_eq!(
        eps[0].recv(Some(Duration::MAX)).unwrap(),
        Some(Event::Frame {
            from: 1,
            bytes: vec![7]
        })
    );
}

#[test]
fn send_to_self_and_close() {
    let eps = world(2);
    eps[0].send(0, b"me".to_vec()).unwrap();
    eps[1].send(0, b"you".to_vec()).unwrap();
    eps[0].close().unwrap();
    eps[0].close().unwrap();
    // Events that arrived before close are still handed out, then Closed.
    let mut got = Vec::new();
    while let Ok(Some(ev)) = eps[0].recv(Some(Duration::ZERO)) {
        got.push(ev);
    }
    assert_eq!(got.len(), 2);
    assert_eq!(
        eps[0].recv(Some(Duration::ZERO)),
        Err(TransportError::Closed)
    );
    assert_eq!(eps[0].send(1, vec![]), Err(TransportError::Closed));
    assert_eq!(
        eps[1].send(0, vec![]),
        Err(TransportError::PeerClosed { rank: 0 })
    );
    assert!(matches!(
        eps[1].send(9, vec![]),
        Err(TransportError::UnknownRank { .. })
    ));
}

#[test]
fn close_wakes_a_blocked_receiver() {
    let eps = world(1);
    let ep = Arc::clone(&eps[0]);
    let waiter = thread::spawn(move || ep.recv(None));
    thread::sleep(Duration::from_millis(30));
    eps[0].close().unwrap();
    assert_eq!(waiter.join().unwrap(), Err(TransportError::Closed));
}
