//! Real binding on this machine: the threads' affinity and memory policy are
//! what the rank's binding plan says.
//!
//! Expectations come from the topology (`Topology::detect`, hwloc when
//! built with it): on a machine with several NUMA nodes a rank's CPUs may
//! span them, and then nothing binds its memory to one.

use ferry::parts::launcher::Topology;
use ferry::parts::launcher::affinity::{allowed_cpus, current_thread_cpus};
use ferry::parts::launcher::membind::thread_memory_policy;
use ferry::{Config, Error, Pin, Runtime};

fn topology() -> Topology {
    Topology::detect().expect("this node's topology")
}

/// The NUMA node holding all of `cpus`, or `None` when they span several.
fn node_of(topo: &Topology, cpus: &[usize]) -> Option<u32> {
    let mut nodes: Vec<Option<u32>> = cpus.iter().map(|&c| topo.numa_of(c)).collect();
    nodes.sort_unstable();
    nodes.dedup();
    match nodes.as_slice() {
        [Some(node)] => Some(*node),
        _ => None,
    }
}

/// The memory policy a thread bound to `node` has (`Debug` of
/// `thread_memory_policy()`): preferred there, or the default when unbound.
fn policy_for(node: Option<u32>) -> String {
    match node {
        Some(node) => format!("Ok(Preferred([{node}]))"),
        None => "Ok(Default)".to_string(),
    }
}

/// Runs `r`'s task on a worker (a getter would run a queued task itself)
/// and returns its value.
fn on_worker<T: ferry::Remotable>(rt: &Runtime, r: ferry::ObjectRef<T>) -> T {
    let refs = vec![r];
    rt.wait(&refs, 1, None).unwrap();
    rt.get_value(&refs[0]).unwrap()
}

fn start(pin: Option<bool>) -> ferry::Result<Runtime> {
    let mut cfg = Config::default().object_store_memory(16 << 20);
    if let Some(pin) = pin {
        cfg = cfg.pin_threads(pin);
    }
    ferry::init(cfg)
}

#[ferry::remote]
fn where_am_i() -> Vec<usize> {
    current_thread_cpus().unwrap_or_default()
}

#[ferry::remote]
fn memory_policy() -> String {
    format!("{:?}", thread_memory_policy())
}

#[test]
fn one_rank_gets_every_allowed_cpu_and_binds_a_worker_per_core() {
    // A lone rank leaves its threads to the OS unless asked.
    assert!(!start(None).unwrap().pins_threads());
    let rt = start(Some(true)).unwrap();
    let binding = rt.binding();
    assert_eq!(binding.cpus, allowed_cpus().unwrap());
    assert_eq!(binding.local_rank, 0);
    assert!(!binding.shares_cpus);
    assert!(rt.pins_threads());
    // The default logical CPUs are the binding's CPUs.
    assert_eq!(
        rt.cluster_resources()["CPU"],
        binding.cpus.len() as f64,
        "{binding:?}"
    );
    // Tasks run on the base workers, each bound to one of the cores, or on
    // workers the pool adds while those are busy, bound to all the rank's
    // CPUs (tests/binding_threads.rs checks every thread by name).
    let mut on_one_core = 0;
    for _ in 0..32 {
        let cpus = on_worker(&rt, where_am_i::remote(&rt).unwrap());
        if binding.cores.contains(&cpus) {
            on_one_core += 1;
        } else {
            assert_eq!(cpus, binding.cpus, "cores {:?}", binding.cores);
        }
    }
    assert!(on_one_core > 0);
    // And its memory prefers the rank's NUMA node, when its CPUs are all
    // on one (a lone rank on a machine with several spans them all).
    let node = node_of(&topology(), &binding.cpus);
    assert_eq!(binding.numa_node, node, "{binding:?}");
    let policy = on_worker(&rt, memory_policy::remote(&rt).unwrap());
    assert_eq!(policy, policy_for(node));
}

#[test]
fn unpinned_workers_may_run_anywhere_the_process_may() {
    let rt = start(Some(false)).unwrap();
    assert!(!rt.pins_threads());
    let cpus = on_worker(&rt, where_am_i::remote(&rt).unwrap());
    assert_eq!(cpus, allowed_cpus().unwrap());
    let policy = on_worker(&rt, memory_policy::remote(&rt).unwrap());
    assert_eq!(policy, "Ok(Default)");
}

#[test]
fn the_object_store_prefers_the_ranks_numa_node() {
    let rt = start(Some(true)).unwrap();
    let node = node_of(&topology(), &rt.binding().cpus);
    assert_eq!(rt.binding().numa_node, node);
    let path = rt.store_path().to_string_lossy().into_owned();
    // The kernel's own account of this process's mappings.
    let maps = std::fs::read_to_string("/proc/self/numa_maps").unwrap();
    let line = maps
        .lines()
        .find(|l| l.contains(&path))
        .unwrap_or_else(|| panic!("{path} not in numa_maps:\n{maps}"));
    match node {
        Some(node) => assert!(line.contains(&format!("prefer:{node}")), "{line}"),
        // CPUs on several nodes: the store is left to the default policy.
        None => assert!(
            !line.contains("prefer:") && !line.contains("bind:"),
            "{line}"
        ),
    }
}

/// An actor that reports where it runs.
#[ferry::actor]
struct Placed;

#[ferry::actor]
impl Placed {
    fn new() -> Self {
        Placed
    }

    fn cpus(&self) -> Vec<usize> {
        current_thread_cpus().unwrap_or_default()
    }

    fn memory(&self) -> String {
        format!("{:?}", thread_memory_policy())
    }
}

#[test]
fn an_actor_pinned_to_a_core_runs_there_with_its_memory_on_its_node() {
    let rt = start(Some(false)).unwrap();
    let binding = rt.binding();
    let cpu = *binding.cpus.last().unwrap();
    let actor = Placed::options().pin(Pin::Core(cpu)).remote(&rt).unwrap();
    let cpus = rt.get_value(&actor.cpus().remote().unwrap()).unwrap();
    assert_eq!(cpus, vec![cpu]);
    // Its memory on the core's own node (which may not be the rank's only one).
    let policy = rt.get_value(&actor.memory().remote().unwrap()).unwrap();
    assert_eq!(policy, policy_for(topology().numa_of(cpu)));
}

#[test]
fn an_actor_pinned_to_a_numa_node_runs_on_its_cpus() {
    let rt = start(Some(false)).unwrap();
    let binding = rt.binding();
    let topo = topology();
    // Every node holding some of the rank's CPUs: an actor pinned there runs
    // on the rank's CPUs of that node, with its memory there.
    let mut nodes: Vec<u32> = binding
        .cpus
        .iter()
        .filter_map(|&c| topo.numa_of(c))
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert!(
        !nodes.is_empty(),
        "no NUMA node holds CPUs {:?}",
        binding.cpus
    );
    for node in nodes {
        let want: Vec<usize> = binding
            .cpus
            .iter()
            .copied()
            .filter(|&c| topo.numa_of(c) == Some(node))
            .collect();
        let actor = Placed::options()
            .pin(Pin::NumaNode(node))
            .remote(&rt)
            .unwrap();
        let cpus = rt.get_value(&actor.cpus().remote().unwrap()).unwrap();
        assert_eq!(cpus, want, "pinned to NUMA node {node}");
        let policy = rt.get_value(&actor.memory().remote().unwrap()).unwrap();
        assert_eq!(policy, policy_for(Some(node)), "pinned to NUMA node {node}");
    }
    // An unpinned actor of an unpinned rank is left where the process may run.
    let free = Placed::remote(&rt).unwrap();
    assert_eq!(
        rt.get_value(&free.cpus().remote().unwrap()).unwrap(),
        allowed_cpus().unwrap()
    );
}

#[test]
fn a_pin_the_rank_cannot_honour_is_an_invalid_argument() {
    let rt = start(None).unwrap();
    for pin in [Pin::Core(100_000), Pin::NumaNode(77)] {
        let err = Placed::options()
            .pin(pin)
            .remote(&rt)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{pin}: {err}");
        let text = err.to_string();
        assert!(text.contains(&pin.to_string()), "{text}");
        assert!(text.contains("CPUs"), "{text}");
    }
    // The rank still works.
    assert!(
        !rt.get_value(&where_am_i::remote(&rt).unwrap())
            .unwrap()
            .is_empty()
    );
}
