//! Every `FERRY_*` variable and every `Config` value is parsed with
//! bounds: out of range is a one-line `InvalidArgument` naming the setting
//! and the range, never a panic or an allocation abort; a timeout too long
//! for a deadline (`Duration::MAX`, `FERRY_PUT_TIMEOUT=1e19`) means "no
//! timeout"; `SIGUSR1` never ends a Ferry process.
//!
//! Environment variables are process-wide, so each case runs in a child
//! process (this binary, run again on one test with the variables set);
//! this process never changes its own environment.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry::{Config, Error};

/// Set in a child process this file starts; the value says what to do.
const CHILD: &str = "FERRY_CFG_BOUNDS_CHILD";

/// Every variable the runtime reads, cleared in children so that the
/// parent's environment does not leak into a case.
const ALL: &[&str] = &[
    "FERRY_NUM_CPUS",
    "FERRY_NUM_GPUS",
    "FERRY_OBJECT_STORE_MEMORY",
    "FERRY_JOB_ID",
    "FERRY_FORCE_RMA",
    "FERRY_PIN_THREADS",
    "FERRY_SPILL_DIR",
    "FERRY_SPILL",
    "FERRY_PUT_TIMEOUT",
    "FERRY_TIMELINE",
    "FERRY_STATUS_FILE",
    "FERRY_STATUS_EVERY",
    "FERRY_CHECKPOINT_DIR",
    "FERRY_IGNORE_UNHANDLED_ERRORS",
    "FERRY_IO_URING",
];

fn child_role() -> Option<String> {
    std::env::var(CHILD).ok()
}

/// This binary again, on `test` only, as a child with `CHILD=role` and
/// `env` set over a clean Ferry environment.
fn child_command(test: &str, role: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, role);
    for k in ALL {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn child(test: &str, role: &str, env: &[(&str, &str)]) -> Output {
    child_command(test, role, env)
        .output()
        .expect("the test binary runs")
}

/// What the SIGUSR1 child prints once its runtime is up.
const READY: &str = "child ready";

/// The line a child prints with what `init` gave.
const RESULT: &str = "child result: ";

/// Starts a runtime the way `#[ferry::main]` does (`role` "from_env"), or
/// from the defaults, which read the launcher's and a few switches'
/// variables only ("default"); prints the outcome on one line.
fn child_start(role: &str) {
    let started = match role {
        "from_env" => Config::from_env().and_then(|mut cfg| {
            if std::env::var_os("FERRY_OBJECT_STORE_MEMORY").is_none() {
                cfg = cfg.object_store_memory(16 << 20);
            }
            ferry::init(cfg)
        }),
        _ => ferry::init(Config::default().object_store_memory(16 << 20)),
    };
    match started {
        Ok(rt) => {
            println!("{RESULT}ok");
            rt.shutdown().expect("shutdown");
        }
        Err(Error::InvalidArgument(m)) => println!("{RESULT}invalid: {m}"),
        Err(e) => println!("{RESULT}other error: {e:?}"),
    }
}

/// The child's one result line.
fn result_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child did not end normally ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    let mut lines = stdout
        .lines()
        .filter_map(|l| l.find(RESULT).map(|at| &l[at + RESULT.len()..]));
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("no result line:\n{stdout}\n{stderr}"))
        .to_string();
    assert!(lines.next().is_none(), "one line:\n{stdout}");
    line
}

#[test]
fn every_ferry_variable_out_of_range_is_a_one_line_error() {
    if let Some(role) = child_role() {
        return child_start(&role);
    }
    let me = "every_ferry_variable_out_of_range_is_a_one_line_error";
    // (how the child starts, variable, value, what the error says)
    let refused: &[(&str, &str, &str, &str)] = &[
        ("from_env", "FERRY_NUM_CPUS", "1e9", "from 0 to 65536"),
        ("from_env", "FERRY_NUM_CPUS", "-1", "from 0 to 65536"),
        ("from_env", "FERRY_NUM_CPUS", "NaN", "from 0 to 65536"),
        ("from_env", "FERRY_NUM_CPUS", "inf", "from 0 to 65536"),
        ("from_env", "FERRY_NUM_CPUS", "two", "from 0 to 65536"),
        (
            "from_env",
            "FERRY_NUM_GPUS",
            "1e12",
            "whole number of GPUs from 0 to 4096",
        ),
        ("from_env", "FERRY_NUM_GPUS", "4097", "from 0 to 4096"),
        ("from_env", "FERRY_NUM_GPUS", "1.5", "whole number"),
        (
            "from_env",
            "FERRY_OBJECT_STORE_MEMORY",
            "0",
            "1048576 (1 MiB) or more",
        ),
        (
            "from_env",
            "FERRY_OBJECT_STORE_MEMORY",
            "1000",
            "1048576 (1 MiB) or more",
        ),
        (
            "from_env",
            "FERRY_OBJECT_STORE_MEMORY",
            "-5",
            "whole number of bytes",
        ),
        (
            "from_env",
            "FERRY_OBJECT_STORE_MEMORY",
            "99999999999999999999999",
            "whole number",
        ),
        ("from_env", "FERRY_JOB_ID", "..", "plain name"),
        ("from_env", "FERRY_JOB_ID", "a\nb", "plain name"),
        ("from_env", "FERRY_JOB_ID", "x/y", "plain name"),
        (
            "from_env",
            "FERRY_PUT_TIMEOUT",
            "-1",
            "give seconds, 0 or more",
        ),
        ("from_env", "FERRY_PUT_TIMEOUT", "NaN", "give seconds"),
        ("from_env", "FERRY_PUT_TIMEOUT", "soon", "give seconds"),
        ("from_env", "FERRY_STATUS_EVERY", "0", "0.01 or more"),
        ("from_env", "FERRY_STATUS_EVERY", "-1e19", "0.01 or more"),
        ("from_env", "FERRY_FORCE_RMA", "yes", "use 0 or 1"),
        ("from_env", "FERRY_PIN_THREADS", "2", "use 0 or 1"),
        ("from_env", "FERRY_SPILL", "off", "use 0 or 1"),
        ("from_env", "FERRY_TIMELINE", "true", "use 0 or 1"),
        (
            "from_env",
            "FERRY_IGNORE_UNHANDLED_ERRORS",
            "y",
            "use 0 or 1",
        ),
        ("from_env", "FERRY_IO_URING", "no", "use 0 or 1"),
        // Read at start whatever the config says.
        ("default", "FERRY_JOB_ID", "..", "plain name"),
        ("default", "FERRY_JOB_ID", "job\n2", "plain name"),
        ("default", "FERRY_FORCE_RMA", "yes", "use 0 or 1"),
        (
            "default",
            "FERRY_IGNORE_UNHANDLED_ERRORS",
            "y",
            "use 0 or 1",
        ),
        ("default", "FERRY_IO_URING", "no", "use 0 or 1"),
    ];
    for (role, var, value, says) in refused {
        let line = result_of(&child(me, role, &[(var, value)]));
        let m = line.strip_prefix("invalid: ").unwrap_or_else(|| {
            panic!("{var}={value:?} ({role}): expected InvalidArgument: {line}")
        });
        assert!(m.contains(var), "{var}={value:?}: the error names it: {m}");
        assert!(
            m.contains(says),
            "{var}={value:?}: the error says {says:?}: {m}"
        );
    }
    let accepted: &[(&str, &str)] = &[
        ("FERRY_NUM_CPUS", "0.5"),
        ("FERRY_NUM_GPUS", "4096"),
        ("FERRY_PUT_TIMEOUT", "2e19"),
        ("FERRY_PUT_TIMEOUT", "inf"),
        ("FERRY_STATUS_EVERY", "1e19"),
        ("FERRY_JOB_ID", ""),
        ("FERRY_SPILL", "0"),
    ];
    for (var, value) in accepted {
        let line = result_of(&child(me, "from_env", &[(var, value)]));
        assert_eq!(line, "ok", "{var}={value:?}");
    }
}

/// A put that does not fit goes the slow way (spill, wait): with a put
/// timeout too long for a deadline it computed `start + timeout` and
/// panicked ("overflow when adding duration to instant").
#[test]
fn a_put_timeout_too_long_for_a_deadline_is_no_timeout() {
    if child_role().is_some() {
        let cfg = Config::from_env()
            .expect("accepted")
            .num_cpus(1.0)
            .object_store_memory(8 << 20);
        let rt = ferry::init(cfg).expect("starts");
        let a = rt.put(&vec![1u8; 5 << 20]).expect("fits");
        // Does not fit beside `a`: `a` is spilled to make room.
        let b = rt.put(&vec![2u8; 5 << 20]).expect("fits after a spill");
        assert!(rt.get(&a).expect("back").iter().all(|x| *x == 1));
        assert!(rt.get(&b).expect("there").iter().all(|x| *x == 2));
        rt.shutdown().expect("shutdown");
        println!("{RESULT}ok");
        return;
    }
    for value in ["1e19", "2e19", "inf"] {
        let out = child(
            "a_put_timeout_too_long_for_a_deadline_is_no_timeout",
            "fill",
            &[("FERRY_PUT_TIMEOUT", value)],
        );
        assert_eq!(result_of(&out), "ok", "FERRY_PUT_TIMEOUT={value}");
    }
}

/// Waits up to 30 s for `cond`, looking every 10 ms.
fn within_30s(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// `FERRY_STATUS_EVERY=1e19` made the status thread panic after its first
/// write (`Instant + Duration` overflow): no file was written again. Now
/// the file is written at start and on every SIGUSR1.
#[test]
fn a_status_interval_too_long_for_a_deadline_writes_on_sigusr1() {
    if child_role().is_some() {
        let path = std::path::PathBuf::from(std::env::var_os("FERRY_STATUS_FILE").expect("set"));
        let rt = ferry::init(
            Config::from_env()
                .expect("accepted")
                .num_cpus(1.0)
                .object_store_memory(16 << 20),
        )
        .expect("starts");
        assert!(within_30s(|| path.exists()), "written at start");
        std::fs::remove_file(&path).expect("removable");
        // SAFETY: kill(2) to this very process with a signal it handles.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) }, 0);
        assert!(within_30s(|| path.exists()), "written again on SIGUSR1");
        rt.shutdown().expect("shutdown");
        println!("{RESULT}ok");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ferry-cfgb-status-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("status.txt");
    let out = child(
        "a_status_interval_too_long_for_a_deadline_writes_on_sigusr1",
        "status",
        &[
            ("FERRY_STATUS_FILE", file.to_str().expect("UTF-8")),
            ("FERRY_STATUS_EVERY", "1e19"),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(result_of(&out), "ok");
}

/// A job without a status file that gets SIGUSR1 (a `ferry status --pid`
/// sent to the wrong process, a stray `kill -USR1`) keeps running: its
/// default action would end the process and leave its shared memory.
#[test]
fn sigusr1_never_ends_a_ferry_process() {
    if child_role().is_some() {
        let rt = ferry::init(
            Config::default()
                .num_cpus(1.0)
                .object_store_memory(16 << 20),
        )
        .expect("starts");
        println!("{READY}");
        std::io::stdout().flush().expect("stdout");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).expect("stdin");
        assert_eq!(line.trim(), "go");
        let r = rt.put(&7u64).expect("put");
        assert_eq!(*rt.get(&r).expect("get"), 7);
        rt.shutdown().expect("shutdown");
        println!("{RESULT}ok");
        return;
    }
    let mut proc = child_command("sigusr1_never_ends_a_ferry_process", "usr1", &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawned");
    let mut stdout = BufReader::new(proc.stdout.take().expect("piped"));
    let mut line = String::new();
    // libtest prints the test's name before it, on the same line.
    while !line.trim_end().ends_with(READY) {
        line.clear();
        let n = stdout.read_line(&mut line).expect("readable");
        assert!(n > 0, "the child ended before it was ready");
    }
    let pid = libc::pid_t::try_from(proc.id()).expect("a pid");
    // SAFETY: kill(2) to our own child, with a fixed signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0, "signalled");
    let mut stdin = proc.stdin.take().expect("piped");
    // A child the signal ended has closed its end: the write may fail.
    let _ = stdin.write_all(b"go\n");
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("readable");
    let status = proc.wait().expect("waited");
    assert!(
        status.success(),
        "SIGUSR1 ended the process: {status:?}\n{rest}"
    );
    assert!(rest.contains(&format!("{RESULT}ok")), "{rest}");
}

#[test]
fn config_values_out_of_range_are_refused_at_start() {
    if child_role().is_some() {
        return;
    }
    let base = || {
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(16 << 20)
    };
    let cases: Vec<(Config, &str)> = vec![
        (base().num_gpus(1e12), "Config::num_gpus"),
        (base().num_cpus(f64::INFINITY), "Config::num_cpus"),
        (base().object_store_memory(0), "Config::object_store_memory"),
        (base().max_threads(usize::MAX), "Config::max_threads"),
        (base().spin(Duration::MAX), "Config::spin"),
        (base().status_every(Duration::ZERO), "Config::status_every"),
        (base().memory(f64::NAN), "Config::memory"),
        (base().resource("TPU", -1.0), "Config::resource"),
        (base().job_id(".."), "Config::job_id"),
    ];
    for (cfg, names) in cases {
        for started in [
            ferry::init(cfg.clone()).map(drop),
            ferry::loopback::run(2, cfg, |_, _| ()),
        ] {
            match started {
                Err(Error::InvalidArgument(m)) => {
                    assert!(m.starts_with(names), "{m}");
                    assert!(!m.contains('\n'), "{m}");
                }
                other => panic!("{names}: expected InvalidArgument, got {other:?}"),
            }
        }
    }
}

/// `Duration::MAX` means "no timeout" wherever a timeout is taken (a ready
/// object's `get_timeout` panicked on `Instant + Duration`).
#[test]
fn duration_max_means_no_timeout() -> ferry::Result<()> {
    if child_role().is_some() {
        return Ok(());
    }
    let rt = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(16 << 20)
            .put_timeout(Duration::MAX)
            .status_every(Duration::MAX),
    )?;
    let r = rt.put(&42u64)?;
    assert_eq!(*rt.get_timeout(&r, Duration::MAX)?, 42);
    let refs = vec![r.clone(), rt.put(&43u64)?];
    let (ready, rest) = rt.wait(&refs, 2, Some(Duration::MAX))?;
    assert_eq!((ready.len(), rest.len()), (2, 0));
    rt.shutdown()
}
