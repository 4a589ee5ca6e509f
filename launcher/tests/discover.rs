//! `discover_from` with synthetic environments, one per launcher.

use std::collections::HashMap;

use ferry_launcher::{LaunchError, Launcher, World, discover_from, require_single_rank};

fn world(vars: &[(&str, &str)]) -> Result<World, LaunchError> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    discover_from(|name| env.get(name).cloned())
}

fn bad_var(vars: &[(&str, &str)]) -> (String, String, String) {
    match world(vars) {
        Err(LaunchError::BadVar { name, value, why }) => (name, value, why),
        other => panic!("expected BadVar, got {other:?}"),
    }
}

fn is_safe(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[test]
fn open_mpi_four_ranks() {
    for rank in 0..4u32 {
        let r = rank.to_string();
        let local = (rank % 2).to_string();
        let w = world(&[
            ("OMPI_COMM_WORLD_RANK", &r),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", &local),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
            ("OMPI_COMM_WORLD_NODE_RANK", &local),
            ("OMPI_MCA_ess_base_jobid", "3141592653"),
            // Slurm variables of the allocation are ignored under mpirun.
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
        ])
        .unwrap();
        assert_eq!(
            w,
            World {
                rank,
                size: 4,
                local_rank: rank % 2,
                local_size: 2,
                node_count: None,
                job_id: "ompi3141592653".into(),
                launcher: Launcher::OpenMpi,
            }
        );
        let err = require_single_rank(&w).unwrap_err();
        assert!(matches!(err, LaunchError::MpiRequired { size: 4, .. }));
        assert_eq!(
            err.to_string(),
            "started as 4 ranks by mpirun (Open MPI), but this program was built without \
             Ferry's `mpi` feature: rebuild with `--features mpi`, or run it with one rank"
        );
    }
}

#[test]
fn open_mpi_old_jobid_var_and_node_rank_fallback() {
    let w = world(&[
        ("OMPI_COMM_WORLD_RANK", "1"),
        ("OMPI_COMM_WORLD_SIZE", "2"),
        ("OMPI_COMM_WORLD_NODE_RANK", "1"),
        ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
        ("OMPI_MCA_orte_ess_jobid", "99"),
    ])
    .unwrap();
    assert_eq!((w.local_rank, w.local_size), (1, 2));
    assert_eq!(w.job_id, "ompi99");
}

#[test]
fn open_mpi_without_job_id_falls_back_to_parent() {
    let w = world(&[("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "3")]).unwrap();
    // No per-node layout: one node assumed.
    assert_eq!((w.local_rank, w.local_size), (0, 3));
    assert_eq!(
        w.job_id,
        format!("ompi-ppid{}", std::os::unix::process::parent_id())
    );
}

#[test]
fn slurm_tasks_per_node_compressed() {
    // 6 tasks on 3 nodes, 2 per node: task 3 is local rank 1 on node 1.
    let w = world(&[
        ("SLURM_PROCID", "3"),
        ("SLURM_NTASKS", "6"),
        ("SLURM_LOCALID", "1"),
        ("SLURM_NODEID", "1"),
        ("SLURM_TASKS_PER_NODE", "2(x3)"),
        ("SLURM_NNODES", "3"),
        ("SLURM_JOB_ID", "123456"),
        ("SLURM_STEP_ID", "2"),
    ])
    .unwrap();
    assert_eq!(
        w,
        World {
            rank: 3,
            size: 6,
            local_rank: 1,
            local_size: 2,
            node_count: Some(3),
            job_id: "slurm123456.2".into(),
            launcher: Launcher::Slurm,
        }
    );
    assert!(
        require_single_rank(&w)
            .unwrap_err()
            .to_string()
            .contains("by srun (Slurm)")
    );
}

#[test]
fn slurm_uneven_nodes_and_ntasks_per_node() {
    let w = world(&[
        ("SLURM_PROCID", "6"),
        ("SLURM_NTASKS", "7"),
        ("SLURM_LOCALID", "0"),
        ("SLURM_NODEID", "3"),
        ("SLURM_TASKS_PER_NODE", "2(x3),1"),
        ("SLURM_JOB_ID", "5"),
    ])
    .unwrap();
    assert_eq!((w.local_rank, w.local_size), (0, 1));
    assert_eq!(w.job_id, "slurm5");

    let w = world(&[
        ("SLURM_PROCID", "2"),
        ("SLURM_NTASKS", "4"),
        ("SLURM_LOCALID", "0"),
        ("SLURM_NTASKS_PER_NODE", "2"),
        ("SLURM_JOB_ID", "5"),
        ("SLURM_STEP_ID", "0"),
    ])
    .unwrap();
    assert_eq!((w.local_rank, w.local_size), (0, 2));
}

#[test]
fn mpich_hydra() {
    let w = world(&[
        ("PMI_RANK", "2"),
        ("PMI_SIZE", "4"),
        ("MPI_LOCALRANKID", "0"),
        ("MPI_LOCALNRANKS", "2"),
        ("PMI_PORT", "node17:40123"),
    ])
    .unwrap();
    assert_eq!(
        w,
        World {
            rank: 2,
            size: 4,
            local_rank: 0,
            local_size: 2,
            node_count: None,
            job_id: "pminode17_40123".into(),
            launcher: Launcher::Mpich,
        }
    );
    assert!(
        require_single_rank(&w)
            .unwrap_err()
            .to_string()
            .contains("by mpiexec")
    );
}

#[test]
fn pmix_with_slurm_layout() {
    let w = world(&[
        ("PMIX_RANK", "1"),
        ("PMIX_NAMESPACE", "slurm.pmix.77.0"),
        ("SLURM_PROCID", "1"),
        ("SLURM_NTASKS", "2"),
        ("SLURM_LOCALID", "1"),
        ("SLURM_TASKS_PER_NODE", "2"),
        ("SLURM_NNODES", "1"),
    ])
    .unwrap();
    assert_eq!(w.launcher, Launcher::Pmix);
    assert_eq!((w.rank, w.size, w.local_rank, w.local_size), (1, 2, 1, 2));
    assert_eq!(w.node_count, Some(1));
    assert_eq!(w.job_id, "slurm.pmix.77.0");

    let w = world(&[
        ("PMIX_RANK", "0"),
        ("PMIX_SIZE", "2"),
        ("PMIX_NAMESPACE", "prterun-host-1234@1"),
    ])
    .unwrap();
    assert_eq!(w.job_id, "prterun-host-1234_1");
}

#[test]
fn no_launcher_is_single_rank() {
    let a = world(&[]).unwrap();
    assert_eq!(a.launcher, Launcher::Single);
    assert_eq!((a.rank, a.size, a.local_rank, a.local_size), (0, 1, 0, 1));
    assert!(a.is_single());
    assert!(require_single_rank(&a).is_ok());
    assert!(a.job_id.starts_with(&format!("p{}-", std::process::id())));
    assert!(is_safe(&a.job_id));
    // Unique per call too (the clock moves on).
    std::thread::sleep(std::time::Duration::from_millis(1));
    assert_ne!(a.job_id, world(&[]).unwrap().job_id);
    // A one-rank mpirun is fine without MPI.
    let one = world(&[("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "1")]).unwrap();
    assert!(require_single_rank(&one).is_ok());
}

#[test]
fn ferry_job_id_overrides_and_is_refused_unless_a_plain_name() {
    // A job id the user gives is not mended: it is refused.
    match world(&[("FERRY_JOB_ID", "my job/../x")]) {
        Err(LaunchError::BadVar { name, .. }) => assert_eq!(name, "FERRY_JOB_ID"),
        other => panic!("expected BadVar, got {other:?}"),
    }
    let w = world(&[
        ("FERRY_JOB_ID", "fixed"),
        ("SLURM_PROCID", "0"),
        ("SLURM_NTASKS", "1"),
        ("SLURM_JOB_ID", "9"),
    ])
    .unwrap();
    assert_eq!(w.job_id, "fixed");
    // Empty means unset.
    let w = world(&[("FERRY_JOB_ID", "")]).unwrap();
    assert!(w.job_id.starts_with('p'));
    // Launcher-provided ids are sanitized as well.
    let w = world(&[
        ("SLURM_PROCID", "0"),
        ("SLURM_NTASKS", "1"),
        ("SLURM_JOB_ID", "1 2;rm -rf"),
    ])
    .unwrap();
    assert_eq!(w.job_id, "slurm1_2_rm_-rf");
    assert!(is_safe(&w.job_id));
}

#[test]
fn malformed_variables_are_bad_vars() {
    let (name, value, why) = bad_var(&[
        ("OMPI_COMM_WORLD_RANK", "four"),
        ("OMPI_COMM_WORLD_SIZE", "4"),
    ]);
    assert_eq!(
        (name.as_str(), value.as_str()),
        ("OMPI_COMM_WORLD_RANK", "four")
    );
    assert!(why.contains("integer"));

    let (name, value, why) =
        bad_var(&[("OMPI_COMM_WORLD_RANK", "4"), ("OMPI_COMM_WORLD_SIZE", "4")]);
    assert_eq!(
        (name.as_str(), value.as_str()),
        ("OMPI_COMM_WORLD_RANK", "4")
    );
    assert!(why.contains("world size 4"), "{why}");

    let (name, ..) = bad_var(&[("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "0")]);
    assert_eq!(name, "OMPI_COMM_WORLD_SIZE");

    let (name, value, _) = bad_var(&[("OMPI_COMM_WORLD_RANK", "0")]);
    assert_eq!(
        (name.as_str(), value.as_str()),
        ("OMPI_COMM_WORLD_SIZE", "")
    );

    let (name, value, _) = bad_var(&[("PMI_RANK", "-1"), ("PMI_SIZE", "2")]);
    assert_eq!((name.as_str(), value.as_str()), ("PMI_RANK", "-1"));

    let (name, ..) = bad_var(&[("MPI_LOCALRANKID", "0")]);
    assert_eq!(name, "PMI_RANK");

    let (name, value, _) = bad_var(&[
        ("PMI_RANK", "0"),
        ("PMI_SIZE", "2"),
        ("MPI_LOCALRANKID", "2"),
        ("MPI_LOCALNRANKS", "2"),
    ]);
    assert_eq!((name.as_str(), value.as_str()), ("MPI_LOCALRANKID", "2"));

    let (name, value, _) = bad_var(&[
        ("SLURM_PROCID", "0"),
        ("SLURM_NTASKS", "2"),
        ("SLURM_LOCALID", "0"),
        ("SLURM_TASKS_PER_NODE", "2(3)"),
    ]);
    assert_eq!(
        (name.as_str(), value.as_str()),
        ("SLURM_TASKS_PER_NODE", "2(3)")
    );

    let (name, ..) = bad_var(&[
        ("SLURM_PROCID", "0"),
        ("SLURM_NTASKS", "4"),
        ("SLURM_LOCALID", "0"),
        ("SLURM_TASKS_PER_NODE", "3,1"),
    ]);
    assert_eq!(name, "SLURM_TASKS_PER_NODE");

    let (name, ..) = bad_var(&[("PMIX_RANK", "0")]);
    assert_eq!(name, "PMIX_RANK");

    let err = world(&[("SLURM_PROCID", "x"), ("SLURM_NTASKS", "2")]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("SLURM_PROCID") && msg.contains("\"x\""),
        "{msg}"
    );
}
