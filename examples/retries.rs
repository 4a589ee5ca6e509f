//! "3. Task retries" of the Ray Core advanced tutorial (seed 004): a task that
//! fails half the time is not retried on application errors by default; with
//! `retry_exceptions` (or a `retry_when` filter on the error) it is.
//!
//! The "random" failures come from a hash of (trial, attempt), so the example
//! does the same thing on every run.
//!
//! Run it with `cargo run --example retries`.

use std::collections::HashMap;
use std::sync::Mutex;

use ferry::FailureKind;

/// How many times each trial has run so far.
static ATTEMPTS: Mutex<Option<HashMap<u64, u64>>> = Mutex::new(None);

/// A deterministic `random.random()`: uniform in [0, 1) from (trial, attempt).
fn random(trial: u64) -> f64 {
    let attempt = {
        let mut map = ATTEMPTS.lock().unwrap_or_else(|e| e.into_inner());
        let n = map
            .get_or_insert_with(HashMap::new)
            .entry(trial)
            .or_insert(0);
        *n += 1;
        *n
    };
    let mut z = trial
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(attempt.wrapping_mul(0xd1b5_4a32_d192_ed03));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[ferry::remote]
fn incorrect_square(x: u64, prob: f64, trial: u64) -> Result<u64, String> {
    // Simulate potential failures.
    if random(trial) < prob {
        return Err("Random failure".to_string());
    }
    Ok(x * x)
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    // Not retried by default: application errors are not retried.
    let refs: Vec<_> = (0..10)
        .map(|t| incorrect_square::remote(&rt, 4, 0.5, t))
        .collect::<ferry::Result<_>>()?;
    match rt.get_all(&refs) {
        Err(e) => println!("At least one of the tasks failed: {e}"),
        Ok(_) => panic!("expected at least one failure"),
    }
    let mut failed = 0;
    for r in &refs {
        match rt.get(r) {
            Ok(v) => assert_eq!(*v, 16),
            Err(e) => {
                let te = e.task_error().expect("a task error");
                assert_eq!(te.kind, FailureKind::Application);
                assert!(te.message.contains("Random failure"), "{te}");
                assert_eq!(te.attempts, 1);
                failed += 1;
            }
        }
    }
    assert!(failed >= 1);
    println!("without retries: {failed} of 10 failed");

    // correct_square_mod = correct_square.options(retry_exceptions=..., max_retries=10)
    let refs: Vec<_> = (100..110)
        .map(|t| {
            incorrect_square::options()
                .retry_exceptions(true)
                .max_retries(10)
                .remote(&rt, 4, 0.5, t)
        })
        .collect::<ferry::Result<_>>()?;
    let outputs: Vec<u64> = rt.get_all(&refs)?.iter().map(|v| v.to_native()).collect();
    assert_eq!(outputs, vec![16; 10]);
    println!("retry_exceptions(true): {outputs:?}");

    // retry_exceptions=[ValueError]: retry only errors that match.
    let refs: Vec<_> = (200..210)
        .map(|t| {
            incorrect_square::options()
                .retry_when(|e| e.message.contains("Random failure"))
                .max_retries(10)
                .remote(&rt, 4, 0.5, t)
        })
        .collect::<ferry::Result<_>>()?;
    let outputs: Vec<u64> = rt.get_all(&refs)?.iter().map(|v| v.to_native()).collect();
    assert_eq!(outputs, vec![16; 10]);
    println!("retry_when(message contains \"Random failure\"): {outputs:?}");

    // Every retried trial that failed at first did run more than once.
    let map = ATTEMPTS.lock().unwrap_or_else(|e| e.into_inner());
    let retried = map.as_ref().map_or(0, |m| {
        m.iter().filter(|(t, n)| **t >= 100 && **n > 1).count()
    });
    assert!(retried >= 1);
    println!("{retried} of the 20 retried tasks needed more than one attempt");
    Ok(())
}
