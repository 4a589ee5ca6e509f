//! "4. Task Runtime Environments" of the Ray Core advanced tutorial (seed
//! 004), and the `OMP_NUM_THREADS` runtime env of "5. Resource allocation".
//!
//! Tasks are threads of one process, so a task reads its `env_vars` through
//! `ferry::env_var` and hands them to child processes with `ferry::command`.
//!
//! Run it with `cargo run --example runtime_env`.

#[ferry::remote]
fn f() -> String {
    let env = ferry::env_var("MY_CUSTOM_ENV").unwrap_or_else(|| "<unset>".to_string());
    format!("My custom env is {env}")
}

#[ferry::remote]
fn sees_custom_env() -> Option<String> {
    ferry::env_var("MY_CUSTOM_ENV")
}

/// What a child process started by the task sees as `OMP_NUM_THREADS`.
#[ferry::remote]
fn omp_threads() -> Result<String, String> {
    let out = ferry::command("sh")
        .args(["-c", "echo $OMP_NUM_THREADS"])
        .output()
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() -> ferry::Result<()> {
    // Make sure the process itself does not set the variables.
    // SAFETY: no other thread exists yet (the runtime starts below).
    unsafe {
        std::env::remove_var("MY_CUSTOM_ENV");
        std::env::remove_var("OMP_NUM_THREADS");
    }
    let rt = ferry::init(ferry::Config::from_env()?)?;

    // @ray.remote(runtime_env={"env_vars": {"MY_CUSTOM_ENV": "prod"}})
    let r = f::options().env_var("MY_CUSTOM_ENV", "prod").remote(&rt)?;
    let s = rt.get(&r)?;
    assert_eq!(s.as_str(), "My custom env is prod");
    println!("{}", s.as_str());

    // A task without the runtime env does not see it.
    let none = rt.get_value(&sees_custom_env::remote(&rt)?)?;
    assert_eq!(none, None);
    let r = f::remote(&rt)?;
    assert_eq!(rt.get(&r)?.as_str(), "My custom env is <unset>");
    println!("without runtime_env: {none:?}");

    // mm.options(runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}) and "8".
    for n in ["1", "8"] {
        let r = omp_threads::options()
            .env_var("OMP_NUM_THREADS", n)
            .remote(&rt)?;
        let seen = rt.get(&r)?;
        assert_eq!(seen.as_str(), n);
        println!("child process sees OMP_NUM_THREADS={}", seen.as_str());
    }
    let unset = rt.get(&omp_threads::remote(&rt)?)?;
    assert_eq!(unset.as_str(), "");
    rt.shutdown()
}
