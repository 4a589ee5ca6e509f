//! `taskbench-mpi` under real `mpirun`: every dependence type on 1, 2 and 3
//! ranks reports the graph's task and dependency counts, a bad flag exits 2
//! with its message, and a damaged output is caught (exit 1). Each run is
//! killed, failing the test, after two minutes.
//!
//! Needs `--features mpi` (the binary exists only then) and `mpirun` on the
//! `PATH`; otherwise every test says why it skips and passes.

#[cfg(feature = "mpi")]
mod real {
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use ferry_taskbench::{DependenceType, TaskGraph, report};

    /// How long one run may take before it counts as hung.
    pub(crate) const LIMIT: Duration = Duration::from_secs(120);

    const BIN: &str = env!("CARGO_BIN_EXE_taskbench-mpi");

    /// What a finished run left.
    pub(crate) struct Run {
        pub(crate) code: Option<i32>,
        pub(crate) stdout: String,
        pub(crate) stderr: String,
    }

    /// Whether `mpirun` can be started; prints the skip when not.
    pub(crate) fn have_mpirun(test: &str) -> bool {
        let ok = Command::new("mpirun")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped {test}: mpirun not found on the PATH");
        }
        ok
    }

    /// Runs `taskbench-mpi args` under `mpirun -n ranks` (directly when
    /// `ranks` is 0), with `env` set, killing it after [`LIMIT`].
    pub(crate) fn run(ranks: usize, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = if ranks == 0 {
            Command::new(BIN)
        } else {
            let mut c = Command::new("mpirun");
            c.args(["--oversubscribe", "-n", &ranks.to_string(), BIN]);
            c
        };
        cmd.args(args)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("-n {ranks} taskbench-mpi {}", args.join(" "));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_string(&mut s);
                }
                s
            })
        };
        let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() > LIMIT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{what} still running after {LIMIT:?}; killed");
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("waiting for {what}: {e}"),
            }
        };
        Run {
            code: status.code(),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }
    }

    /// The flags of a small graph of type `d` (radix and period where the
    /// type takes them, an output that is not a multiple of 16).
    pub(crate) fn flags(d: DependenceType, width: usize) -> Vec<String> {
        let mut f: Vec<String> = [
            "-steps",
            "6",
            "-width",
            &width.to_string(),
            "-type",
            d.name(),
        ]
        .map(String::from)
        .to_vec();
        f.extend(["-output", "40", "-kernel", "compute_bound", "-iter", "3"].map(String::from));
        let radix = width.min(3);
        if d.uses_radix() {
            f.extend(["-radix".to_owned(), radix.to_string()]);
        }
        if d.needs_period() {
            let period = width.div_ceil(radix).min(2);
            f.extend(["-period".to_owned(), period.to_string()]);
        }
        if d == DependenceType::RandomNearest {
            f.extend(["-fraction", "0.5"].map(String::from));
        }
        f
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
