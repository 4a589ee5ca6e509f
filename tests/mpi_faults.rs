//! Faults under real `mpirun`: each case starts a 2-rank job of this program
//! that misbehaves on purpose and checks that the job ends by itself within
//! a bound, saying why, and leaves no shared memory behind.
//!
//! | case | what a rank does | expected |
//! |---|---|---|
//! | `stop` | rank 1 stops itself (`SIGSTOP`) while rank 0 waits on it | rank 0's heartbeat (2 s here) names rank 1, the job ends (MPI_Abort) within 60 s |
//! | `exit0` | rank 0 calls `exit(0)` while rank 1 runs a task | the exit hook ends every rank (MPI_Abort) within 30 s; no rank outlives `mpirun` |
//! | `panic0` | rank 0's `main` panics while rank 1 runs a task | the unwinding runtime ends the job within 30 s, the panic message shown |
//! | `no_window` | the MPI library cannot make the RMA window (Open MPI with `--mca osc sm`) | every rank's start fails with a typed error naming `MPI_Win_create`, the job ends within 30 s without an MPI abort, and no store is left in `/dev/shm` |
//! | `kill9` | rank 1 is killed (`SIGKILL`) after frames went to it through its shared-memory ring | the job ends within 30 s, and neither rank's store nor ring inbox is left in `/dev/shm` |
//!
//! Run by `cargo test --features mpi --test mpi_faults`; without the `mpi`
//! feature or `mpirun` it says why it skips.

mod common;

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The cases and how long each job may take to end by itself.
const CASES: [(&str, Duration); 5] = [
    ("stop", Duration::from_secs(60)),
    ("no_window", Duration::from_secs(30)),
    ("exit0", Duration::from_secs(30)),
    ("panic0", Duration::from_secs(30)),
    ("kill9", Duration::from_secs(30)),
];

/// How long a rank may outlive `mpirun`.
const OUTLIVE: Duration = Duration::from_secs(5);

#[ferry::remote]
fn park_for(secs: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(secs));
    secs
}

#[ferry::remote]
fn die(signal: i32) -> u64 {
    // Signals itself through kill(1): the tests use no libc.
    let _ = Command::new("kill")
        .args([format!("-{signal}"), std::process::id().to_string()])
        .status();
    0
}

fn main() -> ExitCode {
    if let Ok(case) = std::env::var("FERRY_FAULT_CASE")
        && ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
    {
        return as_rank(&case);
    }
    if !cfg!(feature = "mpi") {
        println!("mpi_faults skipped: built without the `mpi` feature");
        return ExitCode::SUCCESS;
    }
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("mpirun").is_file()));
    if !found {
        println!("mpi_faults skipped: mpirun is not on PATH (install openmpi-bin)");
        return ExitCode::SUCCESS;
    }
    let mut failed = Vec::new();
    for (case, bound) in CASES {
        match run_case(case, bound) {
            Ok(took) => {
                println!("ok {case}: the job ended by itself in {took:.1?} (bound {bound:?})")
            }
            Err(why) => {
                println!("FAILED {case}: {why}");
                failed.push(case);
            }
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("mpi_faults: failed: {failed:?}");
        ExitCode::FAILURE
    }
}

/// One rank of a misbehaving job.
fn as_rank(case: &str) -> ExitCode {
    let rt = match common::start_mpi_rank("mpi_faults") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let wait = Duration::from_secs(600);
    match case {
        "stop" => {
            let r = die::options().on_rank(1).remote(&rt, 19).expect("submit");
            // Never answered: the heartbeat must end the job first.
            let _ = rt.get_timeout(&r, wait);
            eprintln!("rank 0: the stopped rank's task came back");
        }
        "kill9" => {
            // A round trip first: the ranks' rings are in use when rank 1 dies.
            let warm = park_for::options()
                .on_rank(1)
                .remote(&rt, 0)
                .expect("submit");
            let _ = rt.get_timeout(&warm, wait);
            let by_ring = rt
                .state()
                .ranks
                .iter()
                .find(|r| r.rank == 0)
                .map_or(0, |r| r.frames_by_ring);
            eprintln!("rank 0: {by_ring} frames went to rank 1 by ring");
            let r = die::options().on_rank(1).remote(&rt, 9).expect("submit");
            let _ = rt.get_timeout(&r, wait);
            eprintln!("rank 0: the killed rank's task came back");
        }
        "exit0" | "panic0" => {
            let r = park_for::options()
                .on_rank(1)
                .remote(&rt, 300)
                .expect("submit");
            // Rank 1 is busy with it (or about to be) when this rank leaves.
            let _ = &r;
            if case == "exit0" {
                std::process::exit(0);
            }
            panic!("rank 0 panics on purpose");
        }
        other => {
            eprintln!("unknown case {other}");
            return ExitCode::FAILURE;
        }
    }
    // Reaching this is a failure of the case: the job should have ended.
    std::thread::sleep(wait);
    ExitCode::SUCCESS
}

/// Starts the case's job; Ok(how long it took) if it ended by itself in
/// time, said what it should, and left nothing behind.
fn run_case(case: &str, bound: Duration) -> Result<Duration, String> {
    let job = format!("fault-{case}-{}", std::process::id());
    let token = format!("ferry-fault-token-{job}");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut mpirun = Command::new("mpirun");
    if case == "no_window" {
        // Open MPI's `sm` component only makes windows it allocates itself:
        // `MPI_Win_create` over Ferry's store fails, as on a library built
        // without a usable one-sided component.
        mpirun.args(["--mca", "osc", "sm"]);
    }
    let mut child = mpirun
        .args(["--allow-run-as-root", "--oversubscribe", "-n", "2"])
        .args(["-x", "FERRY_FAULT_CASE", "-x", "FERRY_JOB_ID"])
        .args(["-x", "FERRY_HEARTBEAT_TIMEOUT", "-x", "FERRY_NUM_CPUS"])
        .arg(exe)
        .arg(&token)
        .env("FERRY_FAULT_CASE", case)
        .env("FERRY_JOB_ID", &job)
        .env("FERRY_HEARTBEAT_TIMEOUT", "2")
        .env("FERRY_NUM_CPUS", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start mpirun: {e}"))?;
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
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(s);
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            // Whatever is left of the job's ranks goes too.
            let _ = Command::new("pkill").args(["-KILL", "-f", &token]).status();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    let ended = Instant::now();
    let mut outlived = true;
    while ended.elapsed() < OUTLIVE {
        let alive = Command::new("pgrep")
            .args(["-f", &token])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty());
        if !alive {
            outlived = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if outlived {
        let _ = Command::new("pkill").args(["-KILL", "-f", &token]).status();
    }
    let mut output = String::new();
    for r in readers {
        output.push_str(&String::from_utf8_lossy(&r.join().unwrap_or_default()));
    }
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(&job))
                .collect()
        })
        .unwrap_or_default();
    let Some(status) = status else {
        return Err(format!(
            "the job did not end within {bound:?}; output:\n{output}"
        ));
    };
    if status.success() {
        return Err(format!(
            "mpirun succeeded, but the job failed on purpose; output:\n{output}"
        ));
    }
    if outlived {
        return Err(format!("a rank outlived mpirun by more than {OUTLIVE:?}"));
    }
    let said = match case {
        "stop" => "rank 1 stopped answering",
        "exit0" => "exited while the job was running",
        // The panic unwinds through the runtime, which ends the job itself.
        "panic0" => "rank 0 panics on purpose",
        "no_window" => "starting MPI: MPI: MPI_Win_create failed",
        _ => "",
    };
    if !output.contains(said) {
        return Err(format!("the output does not say {said:?}:\n{output}"));
    }
    if case == "no_window" && output.contains("MPI_ERRORS_ARE_FATAL") {
        return Err(format!(
            "the library's fatal handler ended the job, not Ferry's error:\n{output}"
        ));
    }
    if case == "kill9" {
        let by_ring = output.lines().find_map(|l| {
            l.strip_prefix("rank 0: ")?
                .strip_suffix(" frames went to rank 1 by ring")?
                .parse::<u64>()
                .ok()
        });
        if by_ring.unwrap_or(0) == 0 {
            return Err(format!(
                "no frame went through the ranks' shared-memory ring before the kill:\n{output}"
            ));
        }
    }
    if !left.is_empty() {
        return Err(format!("left in /dev/shm: {left:?}"));
    }
    Ok(took)
}
