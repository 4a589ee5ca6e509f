//! The `ferry` command line refuses numbers out of bounds and process ids
//! that name groups with a one-line error, before doing anything: never an
//! allocation abort, a panic or a signal to the wrong processes.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output};

/// Runs `ferry args` in a process group of its own, so that a signal sent
/// to "its own group" could reach no one but itself.
fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .process_group(0)
        .output()
        .unwrap()
}

/// Checks `out` is a usage error (exit code 2, not a signal) whose first
/// line is clap's `error:` naming `flag`; returns stderr.
fn usage_error(out: &Output, flag: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.signal(), None, "killed by a signal: {err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error:") && first.contains(flag),
        "{flag} not named on the first line: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn info_refuses_a_huge_or_zero_rank_count() {
    for n in ["4294967295", "65537", "0", "-1", "99999999999999999999999"] {
        let long = format!("--ranks={n}");
        let mut forms = vec![vec!["info", long.as_str()]];
        if !n.starts_with('-') {
            forms.push(vec!["info", "-n", n]);
        }
        for args in forms {
            let out = ferry(&args);
            usage_error(&out, "--ranks");
            assert!(out.stdout.is_empty(), "{args:?}");
        }
    }
}

#[test]
fn info_still_plans_a_sane_rank_count() {
    let out = ferry(&["info", "-n", "3", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ranks"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["ranks_per_node"], 3);
}

#[test]
fn status_refuses_pid_zero_and_negative_pids_without_signalling() {
    let file = std::env::temp_dir().join(format!("ferry-cli-status-{}", std::process::id()));
    let file = file.to_string_lossy().into_owned();
    // kill(2) reads 0 as the caller's process group, negative numbers as
    // groups; -999999999 names no group that can exist, so even a ferry
    // that sent it would hurt no one.
    for pid in ["--pid=0", "--pid=-999999999", "--pid=-0"] {
        let out = ferry(&["status", &file, pid]);
        usage_error(&out, "--pid");
    }
    let out = ferry(&["status", &file, "--pid", "0"]);
    usage_error(&out, "--pid");
}

#[test]
fn bench_refuses_a_cpu_count_that_is_not_a_sane_amount() {
    for n in ["nan", "inf", "0", "-1", "1e300", "2000000", "lots"] {
        // --filter matches nothing and --quick: a ferry that took the
        // number would end quickly, and be caught by the exit code.
        let out = ferry(&[
            "bench",
            "--quick",
            "--filter",
            "no-such-metric",
            &format!("--num-cpus={n}"),
        ]);
        usage_error(&out, "--num-cpus");
    }
}

#[test]
fn bench_filter_naming_one_cross_rank_metric_reaches_it() {
    // A filter naming one metric of the cross-rank group in full used to
    // skip the whole group ("no metric matches"); on one rank the group
    // says why it does not run, and the command succeeds.
    let out = ferry(&[
        "bench",
        "--quick",
        "--num-cpus=1",
        "--filter",
        "cross-rank task round trip",
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("cross-rank metrics skipped: one rank"),
        "{text}"
    );
}

#[test]
fn clean_refuses_a_job_id_that_is_not_a_plain_name() {
    let dir = std::env::temp_dir().join(format!("ferry-cli-cleanjob-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_string_lossy().into_owned();
    for job in ["a\nb", "", "../x", "a\x1b[2J"] {
        let out = ferry(&[
            "clean",
            "--dir",
            &dir_arg,
            "--spill-dir",
            &dir_arg,
            "--job",
            job,
        ]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{job:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
        assert!(err.contains("--job"), "{err}");
        assert!(out.stdout.is_empty(), "{job:?}: it cleaned");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
