//! Errors: task panics and `Err` returns as they come back from `get`,
//! failed dependencies, retries (`max_retries`, `retry_exceptions`,
//! `retry_when`) and the count of failed objects nobody looked at.

mod common;
use common::{start, wait_until};

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferry::{Error, FailureKind};

fn task_error(e: &Error) -> &ferry::TaskError {
    match e {
        Error::Task(t) => t,
        other => panic!("expected Error::Task, got {other:?}"),
    }
}

#[ferry::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[ferry::remote]
fn square_panics(x: u64) -> u64 {
    if x > 0 {
        panic!("square refuses {x}");
    }
    0
}

#[ferry::remote]
fn check_even(x: u64) -> Result<u64, String> {
    if x.is_multiple_of(2) {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

#[ferry::remote]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

static FLAKY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Fails the first `fail_times` attempts with `Err`, then succeeds.
#[ferry::remote]
fn flaky(fail_times: u32) -> Result<u32, String> {
    let n = FLAKY_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= fail_times {
        Err(format!("transient failure {n}"))
    } else {
        Ok(n)
    }
}

static PANICKY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Panics the first `fail_times` attempts, then succeeds.
#[ferry::remote]
fn panicky(fail_times: u32) -> u32 {
    let n = PANICKY_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= fail_times {
        panic!("panicky attempt {n}");
    }
    n
}

static NORETRY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[ferry::remote]
fn fails_once_no_retry() -> Result<u32, String> {
    let n = NORETRY_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        Err("first attempt fails".into())
    } else {
        Ok(n)
    }
}

static ALWAYS_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[ferry::remote]
fn always_fails() -> Result<u32, String> {
    ALWAYS_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    Err("always broken".into())
}

static TRANSIENT_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[ferry::remote]
fn transient_then_ok() -> Result<u32, String> {
    let n = TRANSIENT_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= 2 {
        Err(format!("transient: try again ({n})"))
    } else {
        Ok(n)
    }
}

static FATAL_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[ferry::remote]
fn fatal_error() -> Result<u32, String> {
    FATAL_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    Err("fatal: do not retry".into())
}

#[ferry::remote]
fn always_err() -> Result<u64, String> {
    Err("nobody will look at this".into())
}

#[test]
fn panic_in_task_is_a_panic_error_with_name_and_message() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = square_panics::remote(&rt, 3)?;
    let e = rt.get(&r).expect_err("a panicking task must fail");
    let t = task_error(&e);
    assert_eq!(t.kind, FailureKind::Panic);
    assert!(t.task.contains("square_panics"), "task name: {}", t.task);
    assert!(
        t.message.contains("square refuses 3"),
        "message: {}",
        t.message
    );
    assert_eq!(t.attempts, 1);
    assert_eq!(t.rank, 0);
    let text = e.to_string();
    assert!(text.contains("square refuses 3"), "{text}");
    // A second get reports the same error.
    assert_eq!(task_error(&rt.get(&r).unwrap_err()), t);
    // The runtime keeps working.
    let ok = square::remote(&rt, 5)?;
    assert_eq!(*rt.get(&ok)?, 25);
    rt.shutdown()
}

#[test]
fn err_return_is_an_application_error_with_display_text() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = check_even::remote(&rt, 7)?;
    let e = rt.get(&r).expect_err("Err must fail the task");
    let t = task_error(&e);
    assert_eq!(t.kind, FailureKind::Application);
    assert_eq!(t.message, "7 is odd");
    assert!(t.task.contains("check_even"), "{}", t.task);
    assert_eq!(t.attempts, 1);
    // Ok returns the Ok value; the runtime keeps working.
    let good = check_even::remote(&rt, 8)?;
    assert_eq!(*rt.get(&good)?, 4);
    let sq = square::remote(&rt, 6)?;
    assert_eq!(*rt.get(&sq)?, 36);
    rt.shutdown()
}

#[test]
fn task_options_name_is_used_in_errors() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = check_even::options().name("my-checker").remote(&rt, 1)?;
    let e = rt.get(&r).unwrap_err();
    assert_eq!(task_error(&e).task, "my-checker");
    rt.shutdown()
}

#[test]
fn failed_dependency_fails_downstream_with_its_cause() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let up = square_panics::remote(&rt, 2)?;
    let down = add::remote(&rt, 1, &up)?;
    let e = rt
        .get(&down)
        .expect_err("downstream of a failure must fail");
    match &e {
        Error::Dependency { task, cause } => {
            assert!(task.contains("add"), "downstream name: {task}");
            let t = task_error(cause);
            assert_eq!(t.kind, FailureKind::Panic);
            assert!(t.task.contains("square_panics"), "{}", t.task);
            assert!(t.message.contains("square refuses 2"), "{}", t.message);
        }
        other => panic!("expected Error::Dependency, got {other:?}"),
    }
    // task_error() sees through the dependency.
    assert_eq!(
        e.task_error().map(|t| t.kind),
        Some(FailureKind::Panic),
        "{e}"
    );
    // Two levels down: still a Dependency whose root cause is the panic.
    let down2 = add::remote(&rt, &down, 1)?;
    let e2 = rt.get(&down2).unwrap_err();
    assert!(matches!(e2, Error::Dependency { .. }), "{e2:?}");
    assert!(
        e2.task_error()
            .is_some_and(|t| t.message.contains("square refuses 2")),
        "{e2}"
    );
    rt.shutdown()
}

#[test]
fn corrupt_argument_fails_the_task_as_a_dependency() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let bad = rt.put_archive::<u64>(&[0xff; 3])?;
    let r = add::remote(&rt, 1, &bad)?;
    match rt.get(&r) {
        Err(Error::Dependency { cause, .. }) => {
            assert!(matches!(*cause, Error::Corrupt { .. }), "{cause:?}")
        }
        other => panic!("expected Dependency(Corrupt), got {other:?}"),
    }
    rt.shutdown()
}

#[test]
fn retry_exceptions_retries_errors_until_success() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let k = 3;
    let r = flaky::options()
        .retry_exceptions(true)
        .max_retries(k)
        .remote(&rt, k as u32)?;
    let v = rt.get(&r)?;
    assert_eq!(*v, k as u32 + 1, "succeeds on attempt k+1");
    assert_eq!(FLAKY_ATTEMPTS.load(Ordering::SeqCst), k as u32 + 1);
    rt.shutdown()
}

#[test]
fn retry_exceptions_retries_panics_too() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = panicky::options()
        .retry_exceptions(true)
        .max_retries(2)
        .remote(&rt, 2)?;
    assert_eq!(*rt.get(&r)?, 3);
    assert_eq!(PANICKY_ATTEMPTS.load(Ordering::SeqCst), 3);
    rt.shutdown()
}

#[test]
fn application_errors_are_not_retried_by_default() -> ferry::Result<()> {
    let rt = start(2.0)?;
    // max_retries alone covers system failures only.
    let r = fails_once_no_retry::options().max_retries(5).remote(&rt)?;
    let e = rt.get(&r).unwrap_err();
    let t = task_error(&e);
    assert_eq!(t.attempts, 1);
    assert_eq!(t.kind, FailureKind::Application);
    assert_eq!(NORETRY_ATTEMPTS.load(Ordering::SeqCst), 1);
    rt.shutdown()
}

#[test]
fn retries_run_out_and_report_the_attempts() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = always_fails::options()
        .retry_exceptions(true)
        .max_retries(1)
        .remote(&rt)?;
    let e = rt.get(&r).unwrap_err();
    let t = task_error(&e);
    assert_eq!(t.attempts, 2);
    assert_eq!(t.message, "always broken");
    assert_eq!(ALWAYS_ATTEMPTS.load(Ordering::SeqCst), 2);
    assert!(e.to_string().contains("2 attempts"), "{e}");
    rt.shutdown()
}

#[test]
fn retry_when_selects_errors_by_message() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let is_transient = |e: &ferry::TaskError| e.message.starts_with("transient");
    let r = transient_then_ok::options()
        .max_retries(5)
        .retry_when(is_transient)
        .remote(&rt)?;
    assert_eq!(*rt.get(&r)?, 3);
    assert_eq!(TRANSIENT_ATTEMPTS.load(Ordering::SeqCst), 3);

    let f = fatal_error::options()
        .max_retries(5)
        .retry_when(is_transient)
        .remote(&rt)?;
    let e = rt.get(&f).unwrap_err();
    assert_eq!(task_error(&e).attempts, 1);
    assert_eq!(FATAL_ATTEMPTS.load(Ordering::SeqCst), 1);
    rt.shutdown()
}

#[test]
fn failed_ref_dropped_without_get_counts_as_unhandled() -> ferry::Result<()> {
    let rt = start(2.0)?;
    assert_eq!(rt.unhandled_errors(), 0);
    let r = always_err::remote(&rt)?;
    let (ready, _) = rt.wait(std::slice::from_ref(&r), 1, Some(Duration::from_secs(10)))?;
    assert_eq!(ready.len(), 1, "the task did not finish in 10 s");
    drop(ready);
    // `wait` is not a `get`: the error is still unhandled.
    assert_eq!(
        rt.unhandled_errors(),
        0,
        "counted before the ref was dropped"
    );
    drop(r);
    wait_until("the dropped failed ref to be counted", || {
        rt.unhandled_errors() == 1
    });

    // An error that was fetched is handled: the count does not move.
    let seen = always_err::remote(&rt)?;
    let e = rt.get(&seen).expect_err("always_err fails");
    let t = task_error(&e);
    assert_eq!(t.kind, FailureKind::Application, "{t:?}");
    assert_eq!(t.message, "nobody will look at this");
    // The worker lets go of a task's result before it gives the task's CPU
    // back: once both CPUs are free, `seen` is the last holder, and dropping
    // it counts (or not) there and then.
    wait_until("the worker to give its CPU back", || {
        rt.available_resources()["CPU"] == 2.0
    });
    drop(seen);
    assert_eq!(rt.unhandled_errors(), 1, "a handled error was counted");
    rt.shutdown()
}
