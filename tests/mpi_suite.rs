//! The multi-rank suite (`tests/multirank`) under real `mpirun`, on 2, 3
//! and 4 ranks (frames between the ranks through shared-memory rings), and
//! on 2 ranks with one-sided reads forced and the rings off
//! (`FERRY_FORCE_RMA=1 FERRY_SHM_RINGS=0`: objects and frames both by MPI):
//! the same scenarios `cluster_suite.rs` runs over loopback.
//!
//! Run by `cargo test --features mpi --test mpi_suite`, this program starts
//! itself under `mpirun` once per run and checks that every scenario
//! passed; started by `mpirun` (it sees the launcher's variables), it is
//! one rank of the job: rank 0 runs the scenarios, the others serve. Every
//! `mpirun` runs under a bound ([`LIMIT`]); one that hangs is stopped and
//! the scenario it hung in is named. Without the `mpi` feature or without
//! `mpirun` it says why it skips.

mod common;
mod multirank;

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// How long one `mpirun` may take before it is stopped.
const LIMIT: Duration = Duration::from_secs(600);

/// One `mpirun` of the suite.
struct Run {
    ranks: u32,
    /// `FERRY_FORCE_RMA=1 FERRY_SHM_RINGS=0`: objects move by one-sided
    /// reads and frames by MPI on one node too.
    one_sided: bool,
}

const RUNS: [Run; 4] = [
    Run {
        ranks: 2,
        one_sided: false,
    },
    Run {
        ranks: 3,
        one_sided: false,
    },
    Run {
        ranks: 4,
        one_sided: false,
    },
    Run {
        ranks: 2,
        one_sided: true,
    },
];

impl Run {
    fn describe(&self) -> String {
        let forced = if self.one_sided {
            " with FERRY_FORCE_RMA=1 FERRY_SHM_RINGS=0"
        } else {
            ""
        };
        format!("{} MPI ranks{forced}", self.ranks)
    }
}

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
    let mut failed = Vec::new();
    for run in &RUNS {
        let start = Instant::now();
        let what = run.describe();
        let (outcome, output) = launch(run);
        let lines: Vec<&str> = output.lines().collect();
        let missing: Vec<&str> = multirank::SCENARIOS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !lines.iter().any(|l| *l == format!("ok {name}")))
            .collect();
        let mut problems: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("FAILED "))
            .map(|l| l.to_string())
            .collect();
        match outcome {
            Outcome::Exited(true) => {}
            Outcome::Exited(false) => problems.push("mpirun exited with a failure".into()),
            Outcome::Stopped => problems.push(format!(
                "stopped after {LIMIT:?}, hung in {}",
                hung_in(&lines)
            )),
        }
        // The forced run must really have read by one-sided transfers.
        if run.one_sided
            && !lines
                .iter()
                .any(|l| l.starts_with("object path: one-sided reads"))
        {
            problems.push("FERRY_FORCE_RMA=1 did not reach rank 0: no one-sided read seen".into());
        }
        // Frames took the path the run asked for (the ordering scenario
        // says which it saw).
        let paths = if run.one_sided {
            "frame paths: MPI alone"
        } else {
            "frame paths: rings and MPI"
        };
        if !lines.iter().any(|l| l.starts_with(paths)) {
            problems.push(format!(
                "no line {paths:?}: frames did not take the path asked for"
            ));
        }
        if problems.is_empty() && missing.is_empty() {
            println!(
                "mpi_suite: {} scenarios passed on {what} in {:.1} s",
                multirank::SCENARIOS.len(),
                start.elapsed().as_secs_f64()
            );
        } else {
            println!(
                "mpi_suite: FAILED on {what}: {}; scenarios not passed: {missing:?}; \
                 output:\n{output}",
                problems.join("; ")
            );
            failed.push(what);
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("mpi_suite: FAILED on {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// The scenario rank 0 started last and never ended ("start-up" when it
/// started none).
fn hung_in(lines: &[&str]) -> String {
    let started = lines.iter().rev().find_map(|l| l.strip_prefix("start "));
    match started {
        Some(name)
            if !lines.iter().any(|l| {
                *l == format!("ok {name}") || l.starts_with(&format!("FAILED {name}:"))
            }) =>
        {
            format!("scenario {name}")
        }
        Some(_) => "the shutdown, after every scenario had ended".to_string(),
        None => "start-up (no scenario started)".to_string(),
    }
}

/// How an `mpirun` ended.
enum Outcome {
    /// It exited by itself: successfully or not.
    Exited(bool),
    /// It ran past [`LIMIT`] and was stopped.
    Stopped,
}

/// One rank of the job.
fn as_rank() -> ExitCode {
    let rt = match common::start_mpi_rank("mpi_suite") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    multirank::set_one_sided_forced(std::env::var("FERRY_FORCE_RMA").is_ok_and(|v| v == "1"));
    let mut failed = 0;
    for (name, scenario) in multirank::SCENARIOS {
        // Said before it runs, so a hang is named (stdout is line-buffered).
        println!("start {name}");
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
            Err(p) => {
                failed += 1;
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_string());
                println!("FAILED {name}: panicked: {why}");
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

/// Runs this program under `mpirun` for `run`; how it ended, and its
/// stdout and stderr. `mpirun` and its ranks form their own process group,
/// which is stopped as a whole (TERM, then KILL) past [`LIMIT`].
fn launch(run: &Run) -> (Outcome, String) {
    use std::os::unix::process::CommandExt;

    let exe = std::env::current_exe().expect("the test's own path");
    let mpirun = mpirun();
    let mut launcher_args: Vec<&str> = Vec::new();
    if !is_hydra(&mpirun) {
        launcher_args.extend([
            "--allow-run-as-root",
            "--oversubscribe",
            "-x",
            "FERRY_NUM_CPUS=1",
            "-x",
            "FERRY_IGNORE_UNHANDLED_ERRORS=1",
            "-x",
            "FERRY_TIMELINE=1",
        ]);
        if run.one_sided {
            launcher_args.extend(["-x", "FERRY_FORCE_RMA=1", "-x", "FERRY_SHM_RINGS=0"]);
        }
    }
    let mut cmd = Command::new(&mpirun);
    cmd.args(&launcher_args)
        .args(["-n", &run.ranks.to_string()])
        .arg(exe)
        .env("FERRY_NUM_CPUS", "1")
        .env("FERRY_IGNORE_UNHANDLED_ERRORS", "1")
        .env("FERRY_TIMELINE", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if run.one_sided {
        cmd.env("FERRY_FORCE_RMA", "1").env("FERRY_SHM_RINGS", "0");
    } else {
        cmd.env_remove("FERRY_FORCE_RMA")
            .env_remove("FERRY_SHM_RINGS");
    }
    let mut child = cmd.spawn().expect("cannot start mpirun");
    // Readers append as output comes, so what came is there even if a
    // stray rank keeps a pipe open after mpirun is gone.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let texts: Vec<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> = [
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .map(|r| {
        let text = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (sink, done) = (text.clone(), done_tx.clone());
        std::thread::spawn(move || {
            if let Some(mut r) = r {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = r.read(&mut buf) {
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            }
            let _ = done.send(());
        });
        text
    })
    .collect();
    drop(done_tx);
    let outcome = match wait_until(&mut child, Instant::now() + LIMIT) {
        Some(status) => Outcome::Exited(status.success()),
        None => {
            // Ask mpirun and its ranks to stop, then insist.
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            if wait_until(&mut child, Instant::now() + Duration::from_secs(10)).is_none() {
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                let _ = child.kill();
                let _ = child.wait();
            }
            Outcome::Stopped
        }
    };
    let drained_by = Instant::now() + Duration::from_secs(10);
    let mut drained = 0;
    while drained < texts.len() {
        let left = drained_by.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
        drained += 1;
    }
    let mut output = String::new();
    for t in &texts {
        output.push_str(&String::from_utf8_lossy(
            &t.lock().unwrap_or_else(|e| e.into_inner()),
        ));
    }
    if drained < texts.len() {
        output.push_str("\n(a rank still held mpirun's output open 10 s after it ended)");
    }
    if matches!(outcome, Outcome::Stopped) {
        output.push_str(&format!("\n(stopped after {LIMIT:?})"));
    }
    (outcome, output)
}

/// Waits for `child` to exit until `deadline`; its status, or `None`.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> Option<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("waiting for mpirun") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
