//! Objects sent under a tag when the sending rank is lost, which only the
//! loopback transport can show (the rest of `send_to`/`receive_from` is in
//! the multi-rank suite, `tests/multirank/channels.rs`, over loopback and
//! real `mpirun`): what came before the loss is kept, a receive waiting
//! for more fails typed, as do later ones, and nothing can be sent there.

use std::time::Duration;

use ferry::{Config, Error, Runtime};

/// Sends rank 0 the number 41 under tag 5, from the rank it runs on.
#[ferry::remote]
fn send_41(rt: &Runtime) -> ferry::Result<u32> {
    rt.send_to(&rt.put(&41u64)?, 0, 5)?;
    Ok(rt.rank())
}

#[test]
fn receives_from_a_lost_rank_fail_typed_and_what_came_stays() -> ferry::Result<()> {
    let cfg = Config::default()
        .num_cpus(1.0)
        .object_store_memory(64 << 20);
    ferry::loopback::run(3, cfg, |rt, world| -> ferry::Result<()> {
        let limit = Duration::from_secs(30);
        // #0 under tag 5: received as it comes.
        let first = rt.receive_from::<u64>(2, 5)?;
        let sender = send_41::options().on_rank(2).remote(&rt)?;
        assert_eq!(rt.get_value(&sender)?, 2);
        assert_eq!(rt.get_timeout(&first, limit)?.to_native(), 41);
        // #1: sent (its frame handled before the task's end, which comes
        // after it from the same rank), not received yet.
        let sender = send_41::options().on_rank(2).remote(&rt)?;
        assert_eq!(rt.get_value(&sender)?, 2);
        // Under tag 6 nothing is ever sent: this receive waits.
        let waiting = rt.receive_from::<u64>(2, 6)?;
        assert!(!waiting.is_ready());

        world.kill(2, "killed by the test")?;
        match rt.get_timeout(&waiting, limit) {
            Err(Error::OwnerLost { rank, reason, .. }) => {
                assert_eq!(rank, 2);
                assert!(reason.contains("killed by the test"), "{reason}");
            }
            other => panic!("expected OwnerLost, got {:?}", other.map(|v| *v)),
        }
        // What came before the loss is still there: #1, received only now.
        let second = rt.receive_from::<u64>(2, 5)?;
        assert_eq!(rt.get_timeout(&second, limit)?.to_native(), 41);
        // Nothing more comes from rank 2, and nothing can go to it.
        match rt.get_timeout(&rt.receive_from::<u64>(2, 5)?, limit) {
            Err(Error::OwnerLost { rank: 2, .. }) => {}
            other => panic!("expected OwnerLost, got {:?}", other.map(|v| *v)),
        }
        assert!(matches!(
            rt.send_to(&first, 2, 5),
            Err(Error::InvalidArgument(_))
        ));
        // The other ranks are unaffected.
        let r1 = send_41::options().on_rank(1).remote(&rt)?;
        let from_1 = rt.receive_from::<u64>(1, 5)?;
        assert_eq!(rt.get_value(&r1)?, 1);
        assert_eq!(rt.get_timeout(&from_1, limit)?.to_native(), 41);
        Ok(())
    })?
}
