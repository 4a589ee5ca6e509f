//! Threads a rank starts for tasks and actors begin on another CPU than
//! their starter's, and parked workers are woken off their waker's (see
//! `resources::placement`); either way they may then run on every CPU they
//! could before, and a thread that binds itself keeps its binding. One
//! file, its own process: no other runtime's threads in it.

use ferry::parts::launcher::affinity;

#[ferry::remote]
fn my_cpus() -> Vec<u64> {
    my_cpus_now()
}

/// An actor that binds its thread to one CPU when it is made.
#[ferry::actor]
struct Bound {
    cpu: u64,
}

#[ferry::actor]
impl Bound {
    fn new(cpu: u64) -> Self {
        affinity::bind_current_thread(&[cpu as usize]).unwrap();
        Bound { cpu }
    }

    fn cpus(&self) -> Vec<u64> {
        let _ = self.cpu;
        my_cpus_now()
    }
}

/// An actor that leaves its thread alone.
#[ferry::actor]
struct Free {}

#[ferry::actor]
impl Free {
    fn new() -> Self {
        Free {}
    }

    fn cpus(&self) -> Vec<u64> {
        my_cpus_now()
    }
}

fn my_cpus_now() -> Vec<u64> {
    affinity::current_thread_cpus()
        .unwrap()
        .into_iter()
        .map(|c| c as u64)
        .collect()
}

#[test]
fn new_threads_may_run_on_every_cpu_and_keep_their_own_binding() {
    let rt = ferry::init(
        ferry::Config::default()
            .num_cpus(2.0)
            .pin_threads(false)
            .object_store_memory(16 << 20),
    )
    .unwrap();
    let mine: Vec<u64> = my_cpus_now();
    // Tasks run on workers started for them: each sees the process's CPUs.
    let refs: Vec<_> = (0..8).map(|_| my_cpus::remote(&rt).unwrap()).collect();
    for r in &refs {
        assert_eq!(rt.get(r).unwrap().as_slice().to_vec(), mine);
    }
    // Idle workers park, and a worker woken for a task is woken off the
    // submitter's CPU (see `Parked`): it has its own CPUs back before it
    // runs the task. (Whether a worker parked in the pause does not
    // change what is asserted.)
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let r = my_cpus::remote(&rt).unwrap();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        assert_eq!(rt.get(&r).unwrap().as_slice().to_vec(), mine);
    }
    let free = Free::remote(&rt).unwrap();
    assert_eq!(
        rt.get(&free.cpus().remote().unwrap())
            .unwrap()
            .as_slice()
            .to_vec(),
        mine
    );
    // A constructor's own binding is not undone by the thread's placement.
    let last = *mine.last().unwrap();
    let bound = Bound::remote(&rt, last).unwrap();
    assert_eq!(
        rt.get(&bound.cpus().remote().unwrap())
            .unwrap()
            .as_slice()
            .to_vec(),
        vec![last]
    );
    // The main thread was not moved or bound.
    assert_eq!(my_cpus_now(), mine);
    rt.shutdown().unwrap();
}
