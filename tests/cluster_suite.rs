//! The multi-rank suite (`tests/multirank`) over the loopback transport, on
//! 2, 3 and 4 ranks. `mpi_suite.rs` runs the same scenarios under `mpirun`.

mod multirank;

use ferry::Config;

fn cfg() -> Config {
    Config::default()
        .num_cpus(1.0)
        .object_store_memory(256 << 20)
        .timeline(true)
}

fn run_suite(n: u32) {
    let failures = ferry::loopback::run(n, cfg(), |rt, _| {
        let mut failures = Vec::new();
        for (name, scenario) in multirank::SCENARIOS {
            let start = std::time::Instant::now();
            match scenario(&rt) {
                Ok(()) => eprintln!("ok {name} on {n} loopback ranks ({:?})", start.elapsed()),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        failures
    })
    .expect("the loopback world started and stopped");
    assert!(failures.is_empty(), "on {n} ranks: {failures:#?}");
}

#[test]
fn suite_on_2_loopback_ranks() {
    run_suite(2);
}

#[test]
fn suite_on_3_loopback_ranks() {
    run_suite(3);
}

#[test]
fn suite_on_4_loopback_ranks() {
    run_suite(4);
}
