//! Runs `ferry-transport-mpi-check` under `mpirun` with 2, 3 and 4 ranks
//! (feature `mpi`; skipped when `mpirun` is not on `PATH`).
#![cfg(feature = "mpi")]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

fn mpirun_found() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("mpirun").is_file()))
}

/// Runs the check with `n` ranks; returns (success, stdout + stderr).
fn run(n: u32, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-n",
            &n.to_string(),
        ])
        .arg(env!("CARGO_BIN_EXE_ferry-transport-mpi-check"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start mpirun");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
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
    let mut text = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
    text.push_str(&String::from_utf8_lossy(&err_reader.join().unwrap()));
    match status {
        None => (false, format!("TIMED OUT after {LIMIT:?}\n{text}")),
        Some(s) => (s.success(), format!("{s}\n{text}")),
    }
}

#[test]
fn mpi_check_on_2_3_4_ranks() {
    if !mpirun_found() {
        println!("skipped: mpirun not found");
        return;
    }
    for n in [2, 3, 4] {
        let (ok, text) = run(n, &["--quick"]);
        println!("--- {n} ranks ---\n{text}");
        assert!(ok, "mpirun -n {n} failed:\n{text}");
        for what in [
            "ok all-to-all rank",
            "ok rma-read rank",
            "ok polled rank",
            "ok parked rank",
            "ok close rank",
        ] {
            let count = text.lines().filter(|l| l.starts_with(what)).count();
            assert_eq!(count, n as usize, "{what}: {count} of {n} ranks\n{text}");
        }
        assert!(
            text.contains("latency:") && text.contains("bandwidth:"),
            "{text}"
        );
    }
}
