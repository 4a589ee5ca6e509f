//! Warnings and errors from the runtime reach standard error by default,
//! each line prefixed with the rank; `FERRY_LOG` (or `RUST_LOG`) filters; a
//! program's own subscriber wins; a malformed filter is an error at start.
//!
//! Each case runs in a child process (this test binary again, with
//! `FERRY_LOG_TEST_CHILD` naming the case): the global subscriber can be set
//! once per process.

use std::process::{Command, Output};

const CHILD: &str = "FERRY_LOG_TEST_CHILD";

/// What a child does: start a runtime (after its own subscriber, for
/// "own"), log one warning and one info line, shut down.
fn child(case: &str) {
    if case == "own" {
        struct Quiet;
        impl tracing::Subscriber for Quiet {
            fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
                tracing::span::Id::from_u64(1)
            }
            fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
            fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
            fn event(&self, _: &tracing::Event<'_>) {
                eprintln!("the program's own subscriber");
            }
            fn enter(&self, _: &tracing::span::Id) {}
            fn exit(&self, _: &tracing::span::Id) {}
        }
        tracing::subscriber::set_global_default(Quiet).expect("first subscriber");
    }
    let cfg = ferry::Config::default()
        .num_cpus(1.0)
        .object_store_memory(8 << 20);
    match ferry::init(cfg) {
        Ok(rt) => {
            tracing::warn!("a warning from the test");
            tracing::info!("an info line from the test");
            rt.shutdown().expect("shutdown");
        }
        Err(e) => {
            eprintln!("init failed: {e}");
            std::process::exit(3);
        }
    }
}

fn run(case: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.args(["--exact", "children", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .env_remove("FERRY_LOG")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the test binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The entry point of the children (a no-op in the parent).
#[test]
fn children() {
    if let Ok(case) = std::env::var(CHILD) {
        child(&case);
    }
}

#[test]
fn warnings_reach_stderr_with_the_rank_and_info_is_filtered_out() {
    let o = run("default", &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("ferry[rank 0] WARN a warning from the test"),
        "{err}"
    );
    assert!(
        !err.contains("an info line"),
        "default filter is warn: {err}"
    );
}

#[test]
fn ferry_log_filters_and_wins_over_rust_log() {
    let o = run("info", &[("FERRY_LOG", "info"), ("RUST_LOG", "error")]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("ferry[rank 0] INFO an info line from the test"),
        "{err}"
    );
    let o = run("error", &[("RUST_LOG", "error")]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("a warning from the test"), "{err}");
}

#[test]
fn the_programs_own_subscriber_is_kept() {
    let o = run("own", &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("the program's own subscriber"), "{err}");
    assert!(!err.contains("ferry[rank 0]"), "{err}");
}

#[test]
fn a_malformed_filter_is_an_error_at_start() {
    let o = run("bad", &[("FERRY_LOG", "ferry_core=notalevel")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("FERRY_LOG"), "{err}");
    assert!(err.contains("not a log filter"), "{err}");
}
