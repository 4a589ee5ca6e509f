//! A worker that goes from task to task offers its rank's transport a
//! receive between every two tasks (`task::receiving`), so a rank whose
//! workers are all busy still takes in the answers it waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_transport::{Loopback, Transport};

use crate::config::Config;
use crate::error::Result;
use crate::private::{Deps, ok, submit};
use crate::resources::options::TaskOptions;
use crate::runtime::arg::Arg;
use crate::runtime::loopback::run_over;
use crate::runtime::spy_transport::Spy;

#[test]
fn a_worker_offers_a_receive_after_every_task_of_a_chain() -> Result<()> {
    const CHAIN: usize = 40;
    let offered = Arc::new(AtomicUsize::new(0));
    let seen = offered.clone();
    let wrap = move |e: Arc<Loopback>| -> Arc<dyn Transport> {
        if e.rank() == 0 {
            Arc::new(Spy::counting_offers(e, seen.clone()))
        } else {
            e
        }
    };
    let cfg = Config::default()
        .num_cpus(1.0)
        .object_store_memory(16 << 20);
    run_over(2, cfg, wrap, |rt, _world| -> Result<()> {
        let before = offered.load(Ordering::SeqCst);
        // A chain on rank 0's one worker: each task waits for the one before.
        let opts = TaskOptions::default().on_rank(0);
        let mut last = submit(&rt, "link", &opts, Deps::default(), |_| ok(0u64))?;
        for i in 1..CHAIN as u64 {
            let mut deps = Deps::default();
            deps.add(&Arg::Ref(last.clone()));
            last = submit(&rt, "link", &opts, deps, move |_| ok(i))?;
        }
        let v = rt.get(&last)?;
        assert_eq!(*v, CHAIN as u64 - 1);
        // Every task but the last (which the getter may run itself) ran on
        // the worker, and each was followed by an offer to receive.
        let offers = offered.load(Ordering::SeqCst) - before;
        assert!(
            offers >= CHAIN - 1,
            "{offers} receives offered between {CHAIN} tasks"
        );
        Ok(())
    })?
}
