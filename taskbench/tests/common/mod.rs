//! Running a Task Bench binary from a test: directly or under `mpirun`,
//! with its output captured, and killed (failing the test) past a bound.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_taskbench::DependenceType;

/// How long one run may take before it counts as hung.
pub(crate) const LIMIT: Duration = Duration::from_secs(120);

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

/// Runs `bin args` under `mpirun -n ranks` (directly when `ranks` is 0),
/// with `env` set, killing it after [`LIMIT`].
pub(crate) fn run<S: AsRef<str>>(bin: &str, ranks: usize, args: &[S], env: &[(&str, &str)]) -> Run {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let mut cmd = if ranks == 0 {
        Command::new(bin)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["--oversubscribe", "-n", &ranks.to_string(), bin]);
        c
    };
    cmd.args(&args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let name = std::path::Path::new(bin)
        .file_name()
        .map_or(bin.into(), |n| n.to_string_lossy());
    let what = format!("-n {ranks} {name} {}", args.join(" "));
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

/// The flags of a small graph of type `d`, 6 steps of `width` points
/// (radix and period where the type takes them, an output that is not a
/// multiple of 16, a little compute per task).
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
