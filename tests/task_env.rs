//! Runtime environment and initialisation: per-task environment variables,
//! `ferry::command`, `ferry::current`, configuration checks and two
//! runtimes in one process.

mod common;
use common::start;

use std::time::Duration;

use ferry::{Config, Error};

const VAR: &str = "FERRY_IT_RUNTIME_ENV_MARKER";

#[ferry::remote]
fn read_var(name: String) -> Option<String> {
    ferry::env_var(&name)
}

#[ferry::remote]
fn child_sees_var(name: String) -> ferry::Result<String> {
    let out = ferry::command("sh")
        .arg("-c")
        .arg(format!("printf '%s' \"${name}\""))
        .output()
        .map_err(|e| Error::InvalidArgument(format!("could not run sh: {e}")))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[ferry::remote]
fn my_task_name() -> Option<String> {
    ferry::task_name()
}

#[ferry::remote]
fn current_job() -> ferry::Result<String> {
    Ok(ferry::current()?.job_id().to_string())
}

#[ferry::remote]
fn put_via_current(x: u64) -> ferry::Result<u64> {
    let rt = ferry::current()?;
    let r = rt.put(&x)?;
    Ok(rt.get(&r)?.to_native() * 2)
}

#[ferry::remote]
fn square(x: u64) -> u64 {
    x * x
}

/// An actor that reads its environment.
#[ferry::actor]
struct EnvReader {
    calls: u32,
}

#[ferry::actor]
impl EnvReader {
    fn new() -> Self {
        EnvReader { calls: 0 }
    }

    fn read(&mut self, name: String) -> Option<String> {
        self.calls += 1;
        ferry::env_var(&name)
    }
}

#[test]
fn env_var_is_visible_only_in_its_task() -> ferry::Result<()> {
    assert!(std::env::var_os(VAR).is_none(), "{VAR} set in the test env");
    let rt = start(2.0)?;
    let with = read_var::options()
        .env_var(VAR, "prod")
        .remote(&rt, VAR.to_string())?;
    let without = read_var::remote(&rt, VAR.to_string())?;
    assert_eq!(rt.get_value(&with)?, Some("prod".to_string()));
    assert_eq!(rt.get_value(&without)?, None);
    assert_eq!(ferry::env_var(VAR), None, "leaked into the driver");
    assert!(
        std::env::var_os(VAR).is_none(),
        "leaked into the process env"
    );
    // The last setting of a variable wins.
    let twice = read_var::options()
        .env_var(VAR, "a")
        .env_var(VAR, "b")
        .remote(&rt, VAR.to_string())?;
    assert_eq!(rt.get_value(&twice)?, Some("b".to_string()));
    // Process variables show through.
    let path = read_var::remote(&rt, "PATH".to_string())?;
    assert_eq!(rt.get_value(&path)?, std::env::var("PATH").ok());
    rt.shutdown()
}

#[test]
fn command_passes_task_env_to_children() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = child_sees_var::options()
        .env_var(VAR, "from-task")
        .remote(&rt, VAR.to_string())?;
    assert_eq!(rt.get(&r)?.as_str(), "from-task");
    let plain = child_sees_var::remote(&rt, VAR.to_string())?;
    assert_eq!(rt.get(&plain)?.as_str(), "");
    rt.shutdown()
}

#[test]
fn actor_env_vars_are_seen_by_its_calls() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let a = EnvReader::options().env_var(VAR, "actor").remote(&rt)?;
    let b = EnvReader::remote(&rt)?;
    assert_eq!(
        rt.get_value(&a.read(VAR.to_string()).remote()?)?,
        Some("actor".to_string())
    );
    assert_eq!(rt.get_value(&b.read(VAR.to_string()).remote()?)?, None);
    rt.shutdown()
}

#[test]
fn task_name_is_the_function_or_the_option() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let r = my_task_name::remote(&rt)?;
    let name = rt.get_value(&r)?.expect("a task has a name");
    assert!(name.contains("my_task_name"), "{name}");
    let named = my_task_name::options().name("renamed").remote(&rt)?;
    assert_eq!(rt.get_value(&named)?, Some("renamed".to_string()));
    assert_eq!(ferry::task_name(), None);
    rt.shutdown()
}

#[test]
fn current_returns_the_runtime_inside_tasks_and_on_the_driver() -> ferry::Result<()> {
    let rt = start(2.0)?;
    let j = current_job::remote(&rt)?;
    assert_eq!(rt.get(&j)?.as_str(), rt.job_id());
    let p = put_via_current::remote(&rt, 21)?;
    assert_eq!(*rt.get(&p)?, 42);
    assert_eq!(ferry::current()?.job_id(), rt.job_id());
    rt.shutdown()?;
    assert!(matches!(ferry::current(), Err(Error::NoRuntime)));
    Ok(())
}

#[test]
fn current_on_a_foreign_thread_is_no_runtime() -> ferry::Result<()> {
    let rt = start(1.0)?;
    let other = std::thread::spawn(|| matches!(ferry::current(), Err(Error::NoRuntime)))
        .join()
        .expect("thread");
    assert!(other);
    rt.shutdown()
}

#[test]
fn duplicate_builtin_resource_is_invalid() {
    for name in ["CPU", "GPU", "memory"] {
        let r = ferry::init(
            Config::default()
                .num_cpus(1.0)
                .resource(name, 1.0)
                .object_store_memory(8 << 20),
        );
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{name}: {r:?}");
    }
    let twice = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .resource("TPU", 1.0)
            .resource("TPU", 2.0)
            .object_store_memory(8 << 20),
    );
    assert!(matches!(twice, Err(Error::InvalidArgument(_))), "{twice:?}");
}

#[test]
fn two_runtimes_in_one_process_are_independent() -> ferry::Result<()> {
    let a = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(16 << 20),
    )?;
    let b = ferry::init(
        Config::default()
            .num_cpus(2.0)
            .resource("TPU", 1.0)
            .object_store_memory(32 << 20),
    )?;
    assert_ne!(a.store_path(), b.store_path());
    assert_eq!(a.cluster_resources()["CPU"], 1.0);
    assert_eq!(b.cluster_resources()["CPU"], 2.0);
    assert!(!a.cluster_resources().contains_key("TPU"));
    assert_eq!(
        a.cluster_resources()["object_store_memory"],
        (16 << 20) as f64
    );
    assert_eq!(
        b.cluster_resources()["object_store_memory"],
        (32 << 20) as f64
    );

    let ra = square::remote(&a, 3)?;
    let rb = square::remote(&b, 4)?;
    assert_eq!(*a.get(&ra)?, 9);
    assert_eq!(*b.get(&rb)?, 16);
    let used_b = b.store_used();
    let big = a.put_vec_with::<u8>(1 << 20, |xs| xs.fill(1))?;
    assert_eq!(
        b.store_used(),
        used_b,
        "a put on one runtime used the other's store"
    );
    // A TPU task runs on the runtime that has TPUs only.
    assert!(matches!(
        square::options().resource("TPU", 1.0).remote(&a, 1),
        Err(Error::Infeasible { .. })
    ));
    let tb = square::options().resource("TPU", 1.0).remote(&b, 5)?;
    assert_eq!(*b.get(&tb)?, 25);

    let a_path = a.store_path().to_path_buf();
    drop(big);
    a.shutdown()?;
    assert!(!a_path.exists());
    // The other keeps working.
    let rb2 = square::remote(&b, 6)?;
    assert_eq!(*b.get_timeout(&rb2, Duration::from_secs(10))?, 36);
    let put_b = b.put(&String::from("still here"))?;
    assert_eq!(b.get(&put_b)?.as_str(), "still here");
    b.shutdown()
}
