//! An infeasible request says what no single rank has, what the largest rank
//! has, and how to give a rank more: a task runs on one rank, so CPUs spread
//! over several ranks are no help (observed: "the cluster has 1" under
//! `mpirun -n 4`, where the cluster had 4, one per rank).

use ferry::{Config, Error};

#[ferry::remote]
fn wide() -> u64 {
    1
}

#[ferry::actor]
struct Wide;

#[ferry::actor]
impl Wide {
    fn new() -> Self {
        Wide
    }
}

fn cfg() -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(16 << 20)
}

#[test]
fn one_rank_names_its_own_cpus_and_how_to_get_more() -> ferry::Result<()> {
    let rt = ferry::init(cfg())?;
    let err = wide::options().num_cpus(2.0).remote(&rt).unwrap_err();
    match &err {
        Error::Infeasible {
            resource,
            asked,
            largest,
            largest_rank,
            total,
            ..
        } => {
            assert_eq!((resource.as_str(), *asked), ("CPU", 2.0));
            assert_eq!((*largest, *largest_rank, *total), (1.0, 0, 1.0));
        }
        other => panic!("expected Infeasible, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("no rank has that much"), "{msg}");
    assert!(msg.contains("FERRY_NUM_CPUS"), "{msg}");
    assert!(msg.contains("srun -c"), "{msg}");
    rt.shutdown()
}

#[test]
fn across_ranks_the_largest_rank_is_named_not_the_sum() -> ferry::Result<()> {
    ferry::loopback::run(3, cfg(), |rt, _world| -> ferry::Result<()> {
        // Three CPUs in the cluster, one per rank: two on one rank is infeasible.
        assert_eq!(rt.cluster_resources()["CPU"], 3.0);
        for err in [
            wide::options().num_cpus(2.0).remote(&rt).unwrap_err(),
            Wide::options()
                .num_cpus(2.0)
                .remote(&rt)
                .map(|_| ())
                .unwrap_err(),
        ] {
            match &err {
                Error::Infeasible {
                    resource,
                    asked,
                    largest,
                    total,
                    ..
                } => {
                    assert_eq!((resource.as_str(), *asked), ("CPU", 2.0), "{err}");
                    assert_eq!((*largest, *total), (1.0, 3.0), "{err}");
                }
                other => panic!("expected Infeasible, got {other:?}"),
            }
            assert!(err.to_string().contains("3 in the whole cluster"), "{err}");
        }
        Ok(())
    })?
}
