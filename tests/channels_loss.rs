//! Objects sent under a tag when the sending rank is lost, which only the
//! loopback transport can show (the rest of `send_to`/`receive_from` is in
//! the multi-rank suite, `tests/multirank/channels.rs`, over loopback and
//! real `mpirun`): what came before the loss is kept, a receive waiting
//! for more fails typed, and the lost rank cannot be named again.

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
        let first = rt.receive_from::<u64>(2, 5)?;
        let second = rt.receive_from::<u64>(2, 5)?; // never sent
        let sender = send_41::options().on_rank(2).remote(&rt)?;
        assert_eq!(rt.get_value(&sender)?, 2);
        assert_eq!(rt.get_timeout(&first, limit)?.to_native(), 41);
        assert!(!second.is_ready());

        world.kill(2, "killed by the test")?;
        match rt.get_timeout(&second, limit) {
            Err(Error::OwnerLost { rank, reason, .. }) => {
                assert_eq!(rank, 2);
                assert!(reason.contains("killed by the test"), "{reason}");
            }
            other => panic!("expected OwnerLost, got {:?}", other.map(|v| *v)),
        }
        // The value that came before the loss is still there to read.
        assert_eq!(rt.get_timeout(&first, limit)?.to_native(), 41);
        // Rank 2 can no longer be sent to or received from.
        assert!(matches!(
            rt.receive_from::<u64>(2, 5),
            Err(Error::InvalidArgument(_))
        ));
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
