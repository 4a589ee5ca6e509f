//! The multi-rank suite (`tests/multirank`) under real `mpirun`, on 2, 3
//! and 4 ranks: the same scenarios `cluster_suite.rs` runs over loopback.
//!
//! Run by `cargo test --features mpi --test mpi_suite`, this program starts
//! itself under `mpirun` once per rank count and checks that every scenario
//! passed; started by `mpirun` (it sees the launcher's variables), it is
//! one rank of the job: rank 0 runs the scenarios, the others serve. Without
//! the `mpi` feature or without `mpirun` it says why it skips.

mod multirank;

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// How long one `mpirun` may take before it is stopped.
const LIMIT: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if launched {
        return as_rank();
    }
    if !cfg!(feature = "mpi") {
        println!(
            "mpi_suite skipped: built without the `mpi` feature \
             (run `cargo test --features mpi --test mpi_suite`)"
        );
        return ExitCode::SUCCESS;
    }
    let mpirun = mpirun();
    let found = mpirun.contains('/') && std::path::Path::new(&mpirun).is_file()
        || std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join(&mpirun).is_file())
        });
    if !found {
        println!("mpi_suite skipped: {mpirun} is not on PATH (install openmpi-bin or mpich)");
        return ExitCode::SUCCESS;
    }
    let mut ok = true;
    for n in [2, 3, 4] {
        let start = Instant::now();
        let (passed, output) = launch(n);
        let missing: Vec<&str> = multirank::SCENARIOS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !output.lines().any(|l| l == format!("ok {name}")))
            .collect();
        if passed && missing.is_empty() {
            println!(
                "mpi_suite: {} scenarios passed on {n} MPI ranks in {:.1} s",
                multirank::SCENARIOS.len(),
                start.elapsed().as_secs_f64()
            );
        } else {
            ok = false;
            println!("mpi_suite: FAILED on {n} MPI ranks; missing {missing:?}; output:\n{output}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One rank of the job.
fn as_rank() -> ExitCode {
    let rt = match ferry::Config::from_env().and_then(ferry::init) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mpi_suite: could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if rt.rank() != 0 {
        return match rt.serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mpi_suite: rank {}: {e}", rt.rank());
                ExitCode::FAILURE
            }
        };
    }
    let mut failed = 0;
    for (name, scenario) in multirank::SCENARIOS {
        let start = Instant::now();
        // A failed assertion is a panic: catch it so the job still ends cleanly.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&rt)));
        match outcome {
            Ok(Ok(())) => {
                println!("ok {name}");
                eprintln!("  {name}: {:.3} s", start.elapsed().as_secs_f64());
            }
            Ok(Err(e)) => {
                failed += 1;
                println!("FAILED {name}: {e}");
            }
            Err(_) => {
                failed += 1;
                println!("FAILED {name}: panicked (see above)");
            }
        }
    }
    let stopped = rt.shutdown();
    if failed == 0 && stopped.is_ok() {
        ExitCode::SUCCESS
    } else {
        if let Err(e) = stopped {
            println!("FAILED shutdown: {e}");
        }
        ExitCode::FAILURE
    }
}

/// The launcher to use: `FERRY_MPIRUN` (e.g. `mpirun.mpich`, to match a
/// build made with `MPICC=mpicc.mpich`) or `mpirun`.
fn mpirun() -> String {
    std::env::var("FERRY_MPIRUN")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "mpirun".to_string())
}

/// Whether `mpirun` is MPICH's Hydra, which rejects Open MPI's
/// `--allow-run-as-root`, `--oversubscribe` and `-x` (and needs none of
/// them: it runs as root, oversubscribes and passes the environment on).
fn is_hydra(mpirun: &str) -> bool {
    Command::new(mpirun)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("HYDRA"))
}

/// Runs this program under `mpirun -n n`; (success, stdout + stderr).
fn launch(n: u32) -> (bool, String) {
    let exe = std::env::current_exe().expect("the test's own path");
    let mpirun = mpirun();
    let launcher_args: &[&str] = if is_hydra(&mpirun) {
        &[]
    } else {
        &[
            "--allow-run-as-root",
            "--oversubscribe",
            "-x",
            "FERRY_NUM_CPUS=1",
            "-x",
            "FERRY_IGNORE_UNHANDLED_ERRORS=1",
            "-x",
            "FERRY_TIMELINE=1",
        ]
    };
    let mut child = Command::new(&mpirun)
        .args(launcher_args)
        .args(["-n", &n.to_string()])
        .arg(exe)
        .env("FERRY_NUM_CPUS", "1")
        .env("FERRY_IGNORE_UNHANDLED_ERRORS", "1")
        .env("FERRY_TIMELINE", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start mpirun");
    let readers = [
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    ]
    .map(|r| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            s
        })
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for mpirun") {
            break Some(status);
        }
        if start.elapsed() > LIMIT {
            // Ask mpirun to take its ranks down, then insist.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    for r in readers {
        output.push_str(&String::from_utf8_lossy(&r.join().unwrap_or_default()));
    }
    if status.is_none() {
        output.push_str(&format!("\n(stopped after {LIMIT:?})"));
    }
    (status.is_some_and(|s| s.success()), output)
}
