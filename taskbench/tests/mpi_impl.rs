//! `taskbench-mpi` under real `mpirun`: every dependence type on 1, 2 and 3
//! ranks reports the graph's task and dependency counts, a bad flag exits 2
//! with its message, and a damaged output is caught (exit 1). Each run is
//! killed, failing the test, after two minutes.
//!
//! Needs `--features mpi` (the binary exists only then) and `mpirun` on the
//! `PATH`; otherwise every test says why it skips and passes.

mod common;

#[cfg(feature = "mpi")]
mod real {
    pub(crate) use crate::common::{Run, flags, have_mpirun};
    use ferry_taskbench::{DependenceType, TaskGraph, report};

    const BIN: &str = env!("CARGO_BIN_EXE_taskbench-mpi");

    /// Runs `taskbench-mpi args` (see [`crate::common::run`]).
    pub(crate) fn run(ranks: usize, args: &[&str], env: &[(&str, &str)]) -> Run {
        crate::common::run(BIN, ranks, args, env)
    }

    /// Runs every type on `ranks` ranks and checks the summary's counts.
    pub(crate) fn every_type(ranks: usize, width: usize) {
        for d in DependenceType::ALL {
            let f = flags(d, width);
            let args: Vec<&str> = f.iter().map(String::as_str).collect();
            let g = TaskGraph::from_flags(&args).expect("valid flags");
            let r = run(ranks, &args, &[]);
            let what = format!("{d} on {ranks} ranks (width {width})");
            assert_eq!(
                r.code,
                Some(0),
                "{what} failed:\n{}\n{}",
                r.stdout,
                r.stderr
            );
            let s = report::Summary::parse(&r.stdout)
                .unwrap_or_else(|| panic!("{what}: no summary in:\n{}", r.stdout));
            assert_eq!(s.total_tasks, g.total_tasks(), "{what}");
            assert_eq!(s.total_dependencies, g.total_dependencies(), "{what}");
            assert_eq!(s.total_flops, g.total_flops(), "{what}");
            assert_eq!(
                s.total_bytes,
                g.total_dependencies() * g.output_bytes as u64,
                "{what}"
            );
            assert!(s.elapsed >= 0.0, "{what}: elapsed {}", s.elapsed);
        }
    }
}

/// Says why a test skips when the binary was not built.
#[cfg(not(feature = "mpi"))]
fn skip(test: &str) {
    eprintln!("skipped {test}: built without the mpi feature (cargo test --features mpi)");
}

macro_rules! mpi_test {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            #[cfg(feature = "mpi")]
            {
                if real::have_mpirun(stringify!($name)) {
                    $body;
                }
            }
            #[cfg(not(feature = "mpi"))]
            skip(stringify!($name));
        }
    };
}

mpi_test!(
    every_type_on_one_rank_without_mpirun,
    real::every_type(0, 8)
);
mpi_test!(every_type_on_one_rank, real::every_type(1, 8));
mpi_test!(every_type_on_two_ranks, real::every_type(2, 8));
mpi_test!(every_type_on_three_ranks, real::every_type(3, 8));
// More ranks than points: one rank owns nothing.
mpi_test!(every_type_with_an_idle_rank, real::every_type(3, 2));

mpi_test!(a_bad_flag_exits_2_with_its_message, {
    for ranks in [0, 2] {
        let r = real::run(ranks, &["-steps", "4", "-bogus", "1"], &[]);
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        assert!(r.stderr.contains("unknown flag \"-bogus\""), "{}", r.stderr);
        let r = real::run(ranks, &["-type", "spread", "-radix", "0"], &[]);
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        assert!(r.stderr.contains("-radix 0"), "{}", r.stderr);
    }
});

mpi_test!(a_damaged_output_is_caught, {
    // Point 3 of step 2 is on rank 1 of 2; its readers at step 3 are points
    // 2 (rank 0, across ranks) and 3, 4 (rank 1, in memory).
    for ranks in [0, 1, 2, 3] {
        let r = real::run(
            ranks,
            &["-steps", "6", "-width", "8", "-type", "stencil_1d"],
            &[("FERRY_TASKBENCH_CORRUPT", "2,3")],
        );
        assert_eq!(r.code, Some(1), "{ranks} ranks:\n{}", r.stderr);
        assert!(
            r.stderr.contains("expected the output of (2, 3)"),
            "{ranks} ranks:\n{}",
            r.stderr
        );
        assert!(!r.stdout.contains("Total Tasks"), "{}", r.stdout);
    }
});
