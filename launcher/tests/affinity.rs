//! Real CPU affinity on this machine.

use ferry_launcher::Topology;
use ferry_launcher::affinity::{
    allowed_cpus, bind_current_thread, current_thread_cpus, total_memory_bytes,
};

#[test]
fn bind_a_spawned_thread_to_one_cpu() {
    let allowed = allowed_cpus().unwrap();
    assert!(!allowed.is_empty());
    assert!(allowed.windows(2).all(|w| w[0] < w[1]));
    let target = *allowed.last().unwrap();
    let got = std::thread::spawn(move || {
        bind_current_thread(&[target]).unwrap();
        current_thread_cpus().unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(got, vec![target]);
    // Only that thread moved: the process's mask is unchanged.
    assert_eq!(allowed_cpus().unwrap(), allowed);
}

#[test]
fn bind_to_all_allowed_cpus_round_trips() {
    let allowed = allowed_cpus().unwrap();
    let got = std::thread::spawn(move || {
        bind_current_thread(&allowed).unwrap();
        (current_thread_cpus().unwrap(), allowed)
    })
    .join()
    .unwrap();
    assert_eq!(got.0, got.1);
}

#[test]
fn binding_to_a_cpu_outside_the_machine_fails() {
    let err = std::thread::spawn(|| bind_current_thread(&[100_000]).unwrap_err())
        .join()
        .unwrap();
    // EINVAL: the mask holds no CPU of this machine.
    assert_eq!(err.raw_os_error(), Some(22));
}

#[test]
fn detected_topology_matches_affinity() {
    let topo = Topology::detect().unwrap();
    assert_eq!(topo.numa_nodes.len(), 1);
    assert_eq!(topo.numa_nodes[0].cpus, allowed_cpus().unwrap());
    let bindings = ferry_launcher::plan_oversubscribed(&topo, 2).unwrap();
    assert_eq!(bindings.len(), 2);
    assert!(total_memory_bytes() > 1 << 20);
}
