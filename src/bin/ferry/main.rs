//! The `ferry` command-line tool.
//!
//! * `ferry info [-n N] [--json]`: this node's topology and the binding plan
//!   for `N` ranks per node.
//! * `ferry bench [--filter S] [--json FILE] [--quick] [--num-cpus N]`: Ferry
//!   versions of Ray's single-process microbenchmark (`ray microbenchmark`,
//!   python/ray/_private/ray_perf.py), printed the way Ray prints them, then
//!   compared with Ray's figures measured on a 2-core machine.
//!
//! This file parses the arguments and dispatches to one module per
//! subcommand.

mod bench;
mod info;
mod sbatch;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ferry: Ray Core for HPC.
#[derive(Parser, Debug)]
#[command(name = "ferry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show this node's topology and how N ranks per node would be bound.
    Info {
        /// Ranks per node to plan for (1 to 65536).
        #[arg(short = 'n', long = "ranks", default_value_t = 1, value_parser = ranks_per_node())]
        ranks: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove shared-memory files and spill directories that crashed ranks
    /// left behind: only names Ferry gives them (`ferry-<job>-r<rank>`,
    /// `ferry-<job>-r<rank>.spill`), owned by you, never through a symbolic
    /// link, and only those no live rank holds (live jobs' are never touched).
    Clean {
        /// Only this job's files (`ferry-ID-r<rank>` and its spill
        /// directory `ferry-ID-r<rank>.spill`).
        #[arg(long, value_name = "ID")]
        job: Option<String>,
        /// The directory holding the segments.
        #[arg(long, value_name = "DIR", default_value = "/dev/shm")]
        dir: PathBuf,
        /// The directory holding the ranks' spill directories (default:
        /// FERRY_SPILL_DIR, else the user's private spill directory, as the
        /// runtime's default).
        #[arg(long, value_name = "DIR")]
        spill_dir: Option<PathBuf>,
    },
    /// Write a Slurm batch script that runs PROGRAM on NODES x RANKS_PER_NODE
    /// ranks, each with the CPUs and GPUs Ferry's binding plan gives it (the
    /// plan for this node unless --cpus-per-rank / --gpus-per-rank say), and
    /// with --submit hand it to sbatch.
    Sbatch(sbatch::Args),
    /// Print the tasks, actors, objects and resources of a running job, from
    /// the status file its rank 0 writes (FERRY_STATUS_FILE); with --pid,
    /// ask it for fresh ones first (SIGUSR1).
    Status(status::Args),
    /// Run Ferry's versions of Ray's single-process microbenchmarks.
    Bench {
        /// Run only the metrics whose name contains this substring.
        #[arg(long)]
        filter: Option<String>,
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Short trials (0.1 s warm-up, 2 trials of 0.2 s) for smoke runs.
        #[arg(long)]
        quick: bool,
        /// Logical CPUs of the runtime (default: the cores this process may
        /// use; more than 0, at most 1048576).
        #[arg(long, value_name = "N", value_parser = cpu_amount)]
        num_cpus: Option<f64>,
    },
}

/// The most ranks of one node a command plans for (`--ranks`,
/// `--ranks-per-node`).
pub(crate) const MAX_RANKS_PER_NODE: u32 = ferry::parts::launcher::plan::MAX_RANKS_PER_NODE;

/// The parser of a ranks-per-node argument: 1 to [`MAX_RANKS_PER_NODE`].
pub(crate) fn ranks_per_node() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(MAX_RANKS_PER_NODE))
}

/// The parser of a logical CPU amount: a finite number above 0 and at most
/// 2^20 (a number of CPUs no node has is a typo).
fn cpu_amount(s: &str) -> Result<f64, String> {
    const MAX: f64 = (1u32 << 20) as f64;
    match s.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n <= MAX => Ok(n),
        Ok(n) => Err(format!("{n} is not a CPU amount above 0 and at most {MAX}")),
        Err(e) => Err(format!("not a number ({e})")),
    }
}

/// Checks that `value` of the argument `what` is a plain one-line value:
/// not empty and without control characters (newlines, tabs, escapes),
/// which could end a line of a generated file or a terminal's. The error
/// names the argument and shows the value escaped, on one line.
pub(crate) fn plain_text(what: &str, value: &str) -> Result<(), CliError> {
    if value.is_empty() {
        return Err(format!("{what} is empty").into());
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{what} {value:?} contains a control character ({}): give it on one line, \
             without control characters",
            c.escape_unicode()
        )
        .into());
    }
    Ok(())
}

/// `ferry clean`.
fn clean(
    job: Option<&str>,
    dir: &std::path::Path,
    spill_dir: Option<PathBuf>,
) -> Result<(), CliError> {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if let Some(job) = job {
        plain_text("--job", job)?;
        if job.contains('/') {
            return Err(format!("--job {job:?} contains '/': give a job id, not a path").into());
        }
    }
    let removed = ferry::parts::store::clean(dir, job)?;
    for path in &removed {
        println!("removed {}", path.display());
    }
    println!(
        "{} stale file{} removed from {}",
        removed.len(),
        plural(removed.len()),
        dir.display()
    );
    let root = spill_dir
        .or_else(|| std::env::var_os("FERRY_SPILL_DIR").map(PathBuf::from))
        .unwrap_or_else(ferry::parts::store::default_spill_root);
    let spills = match ferry::parts::store::clean_spill(&root, job) {
        Ok(r) => r,
        // No spill directory yet: nothing was ever spilled there.
        Err(ferry::parts::store::StoreError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    for path in &spills {
        println!("removed {}", path.display());
    }
    println!(
        "{} stale spill director{} removed from {}",
        spills.len(),
        if spills.len() == 1 { "y" } else { "ies" },
        root.display()
    );
    Ok(())
}

/// An error that ends the program with exit code 1.
pub(crate) type CliError = Box<dyn std::error::Error + Send + Sync>;

/// Parses the arguments and runs the subcommand.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { ranks, json } => info::run(ranks, json),
        Command::Clean {
            job,
            dir,
            spill_dir,
        } => clean(job.as_deref(), &dir, spill_dir),
        Command::Sbatch(args) => sbatch::run(args),
        Command::Status(args) => status::run(args),
        Command::Bench {
            filter,
            json,
            quick,
            num_cpus,
        } => bench::run(&bench::BenchArgs {
            filter,
            json,
            quick,
            num_cpus,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: error: {e}");
            ExitCode::from(1)
        }
    }
}
