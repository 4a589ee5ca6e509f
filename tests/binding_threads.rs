//! Every thread of a rank, by name, bound where the plan says: worker `i`
//! to core `i`, the rest to the rank's CPUs. One test in its own process, so
//! no other runtime's threads share the names.

use std::collections::BTreeMap;

/// Each thread's name and allowed CPUs, from the kernel.
fn threads() -> BTreeMap<String, Vec<usize>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let dir = entry.path();
        let Ok(name) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let Some(list) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        else {
            continue;
        };
        out.insert(name.trim().to_string(), parse_list(list.trim()));
    }
    out
}

/// `0-2,5` -> [0, 1, 2, 5].
fn parse_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

#[test]
fn worker_threads_are_bound_to_their_cores() {
    let rt = ferry::init(
        ferry::Config::default()
            .max_threads(64)
            .pin_threads(true)
            .object_store_memory(16 << 20),
    )
    .unwrap();
    let binding = rt.binding();
    assert!(rt.pins_threads());
    // A worker takes its name when it starts and binds itself a moment
    // later: wait until every worker has bound (or the deadline passes, and
    // the assertions below say which did not).
    let bound = |seen: &BTreeMap<String, Vec<usize>>| {
        binding
            .cores
            .iter()
            .enumerate()
            .all(|(i, core)| seen.get(&format!("ferry-r0-w{i}")) == Some(core))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let seen = loop {
        let seen = threads();
        if bound(&seen) || std::time::Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    for (i, core) in binding.cores.iter().enumerate() {
        let name = format!("ferry-r0-w{i}");
        assert_eq!(seen.get(&name), Some(core), "{name}: {seen:?}");
    }
    // The main thread keeps the process's mask.
    assert_eq!(
        ferry::parts::launcher::affinity::current_thread_cpus().unwrap(),
        binding.cpus
    );
    rt.shutdown().unwrap();
}
