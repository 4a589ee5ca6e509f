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

#[test]
fn detected_topology_holds_exactly_the_allowed_cpus() {
    let topo = Topology::detect().unwrap();
    let mut cpus: Vec<usize> = topo
        .numa_nodes
        .iter()
        .flat_map(|n| n.cpus.clone())
        .collect();
    cpus.sort_unstable();
    assert_eq!(cpus, allowed_cpus().unwrap());
    for node in &topo.numa_nodes {
        let mut from_cores: Vec<usize> = node.cores.iter().flatten().copied().collect();
        from_cores.sort_unstable();
        assert_eq!(from_cores, node.cpus);
    }
    let expected = if cfg!(feature = "hwloc") {
        ferry_launcher::TopologySource::Hwloc
    } else {
        ferry_launcher::TopologySource::Affinity
    };
    assert_eq!(topo.source, expected);
}

#[test]
fn a_thread_bound_to_a_numa_node_allocates_there() {
    use ferry_launcher::membind::{MemPolicy, bind_thread_memory, thread_memory_policy};
    let topo = Topology::detect().unwrap();
    let node = topo.numa_nodes[0].os_index;
    let got = std::thread::spawn(move || {
        let before = thread_memory_policy().unwrap();
        bind_thread_memory(node).unwrap();
        (before, thread_memory_policy().unwrap())
    })
    .join()
    .unwrap();
    assert_eq!(got, (MemPolicy::Default, MemPolicy::Preferred(vec![node])));
    // A node the machine does not have is an error, not a silent no-op.
    let err = std::thread::spawn(|| bind_thread_memory(1000).unwrap_err())
        .join()
        .unwrap();
    assert_eq!(err.raw_os_error(), Some(22));
}

#[test]
fn an_area_is_bound_before_first_touch() {
    use ferry_launcher::membind::{MemPolicy, area_policy, bind_area};
    // Fresh pages, not yet touched (the arena test in ferry-core binds the
    // real shared arena).
    let area: Vec<u8> = Vec::with_capacity(8 << 20);
    let node = Topology::detect().unwrap().numa_nodes[0].os_index;
    bind_area(area.as_ptr(), area.capacity(), node).unwrap();
    assert_eq!(
        area_policy(area.as_ptr().wrapping_add(6 << 20)).unwrap(),
        MemPolicy::Preferred(vec![node])
    );
    assert!(bind_area(area.as_ptr(), area.capacity(), 1000).is_err());
}
