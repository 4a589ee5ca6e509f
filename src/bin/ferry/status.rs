//! `ferry status`: prints the state tables a running job writes to its
//! status file (`Config::status_file` / `FERRY_STATUS_FILE`), asking the
//! job for fresh ones first when given its process id.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::CliError;

/// `ferry status` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The job's status file (its FERRY_STATUS_FILE).
    file: PathBuf,
    /// The process id of the job's rank 0: it is sent SIGUSR1 and the
    /// tables it writes then are printed (waiting up to 15 s). A positive
    /// process id only: 0 and negative numbers (which kill(2) reads as
    /// process groups) are refused.
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(i32).range(1..))]
    pid: Option<i32>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `ferry status`.
pub(crate) fn run(args: Args) -> Result<(), CliError> {
    if let Some(pid) = args.pid {
        // kill(2) reads 0 as this process group and negative pids as
        // groups (-1: every process we may signal): only one process here.
        if pid <= 0 {
            return Err(
                format!("--pid {pid}: give the process id of the job's rank 0 (above 0)").into(),
            );
        }
        if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
            return Err(format!("--pid {pid} is this `ferry status` process itself").into());
        }
        let before = modified(&args.file);
        // SAFETY: kill(2) with a caller-given pid and a fixed signal; it
        // touches no memory of this process.
        if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
            return Err(format!(
                "cannot signal process {pid}: {}",
                std::io::Error::last_os_error()
            )
            .into());
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while modified(&args.file) == before {
            if Instant::now() >= deadline {
                return Err(format!(
                    "process {pid} did not write {} within 15 s (is it a Ferry job's rank 0 \
                     started with FERRY_STATUS_FILE set to this path?)",
                    args.file.display()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let text = std::fs::read_to_string(&args.file).map_err(|e| {
        format!(
            "cannot read {}: {e} (start the job with FERRY_STATUS_FILE={} to have it written)",
            args.file.display(),
            args.file.display()
        )
    })?;
    let age = modified(&args.file)
        .and_then(|m| m.elapsed().ok())
        .map_or_else(String::new, |d| format!(" ({:.1} s ago)", d.as_secs_f64()));
    println!("{}{age}:", args.file.display());
    print!("{text}");
    Ok(())
}
