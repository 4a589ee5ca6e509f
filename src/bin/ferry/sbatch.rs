//! `ferry sbatch`: a Slurm batch script that starts a Ferry program on
//! nodes × ranks per node, with the CPUs and GPUs of each rank matching the
//! launcher's binding plan (the plan for this node's topology, unless the
//! command line says otherwise), and, with `--submit`, hands it to `sbatch`.
//!
//! Nothing given on the command line can add a line to the script: every
//! text that goes into it (job name, time, partition, output, the program
//! and its arguments) is refused when it holds a newline or any other
//! control character, and the program and its arguments are shell-quoted
//! on the `srun` line. A script written to a file (`--script`) is created
//! new (`O_EXCL`, never through a symbolic link) with mode 0600; with
//! `--submit` alone it goes to `sbatch` on its standard input, so no file
//! is left behind.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{CliError, plain_text, ranks_per_node};

/// The most ranks a job may ask for in all (`--nodes` × `--ranks-per-node`).
const MAX_RANKS: u64 = 1 << 20;

/// The most CPUs or GPUs one rank may ask for.
const MAX_PER_RANK: i64 = 1 << 16;

/// What the script asks Slurm for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Job {
    pub(crate) name: String,
    pub(crate) nodes: u32,
    pub(crate) ranks_per_node: u32,
    /// CPUs (hardware threads) per rank.
    pub(crate) cpus_per_rank: usize,
    pub(crate) gpus_per_rank: usize,
    pub(crate) time: Option<String>,
    pub(crate) partition: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) program: Vec<String>,
}

/// Quotes `s` for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The batch script for `job`.
pub(crate) fn script(job: &Job) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let mut d = |line: String| {
        let _ = writeln!(s, "#SBATCH {line}");
    };
    d(format!("--job-name={}", shell_quote(&job.name)));
    d(format!("--nodes={}", job.nodes));
    d(format!("--ntasks-per-node={}", job.ranks_per_node));
    d(format!("--cpus-per-task={}", job.cpus_per_rank));
    if job.gpus_per_rank > 0 {
        d(format!("--gpus-per-task={}", job.gpus_per_rank));
    }
    if let Some(t) = &job.time {
        d(format!("--time={}", shell_quote(t)));
    }
    if let Some(p) = &job.partition {
        d(format!("--partition={}", shell_quote(p)));
    }
    if let Some(o) = &job.output {
        d(format!("--output={}", shell_quote(o)));
    }
    let _ = writeln!(
        s,
        "\n# Written by `ferry sbatch`: {} rank(s) per node, each {} CPU(s){}, as\n\
         # Ferry's binding plan splits a node. Slurm gives each rank its CPUs; the\n\
         # rank binds its workers to its cores and NUMA node within them.",
        job.ranks_per_node,
        job.cpus_per_rank,
        if job.gpus_per_rank > 0 {
            format!(" and {} GPU(s)", job.gpus_per_rank)
        } else {
            String::new()
        }
    );
    let _ = writeln!(s, "set -eu");
    let program: Vec<String> = job.program.iter().map(|a| shell_quote(a)).collect();
    // A rank that fails ends the job: its peers would otherwise wait for it.
    let _ = writeln!(
        s,
        "srun --mpi=pmix --kill-on-bad-exit=1 {}",
        program.join(" ")
    );
    s
}

/// The CPUs and GPUs per rank the plan gives `ranks_per_node` ranks on this
/// node.
fn planned(ranks_per_node: u32) -> Result<(usize, usize), CliError> {
    let topo = ferry::parts::launcher::Topology::detect()?;
    let plan = ferry::parts::launcher::plan(&topo, ranks_per_node)?;
    let cpus = plan.iter().map(|b| b.cpus.len()).min().unwrap_or(1).max(1);
    let gpus = plan.iter().map(|b| b.gpus.len()).min().unwrap_or(0);
    Ok((cpus, gpus))
}

/// The arguments of `ferry sbatch`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Nodes (at most 1048576 ranks in all).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_RANKS as i64))]
    pub(crate) nodes: u32,
    /// Ranks on each node (1 to 65536).
    #[arg(long, default_value_t = 1, value_parser = ranks_per_node())]
    pub(crate) ranks_per_node: u32,
    /// CPUs per rank, 1 to 65536 (default: from the binding plan of this
    /// node).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_PER_RANK))]
    pub(crate) cpus_per_rank: Option<u32>,
    /// GPUs per rank, 0 to 65536 (default: from the binding plan of this
    /// node).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=MAX_PER_RANK))]
    pub(crate) gpus_per_rank: Option<u32>,
    /// Time limit (Slurm's --time, e.g. 01:00:00).
    #[arg(long)]
    pub(crate) time: Option<String>,
    /// Partition.
    #[arg(long)]
    pub(crate) partition: Option<String>,
    /// Job name (default: the program's file name).
    #[arg(long)]
    pub(crate) job_name: Option<String>,
    /// Where Slurm writes the job's output (Slurm's --output).
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<String>,
    /// Write the script to this new file, mode 0600 (an existing file is
    /// never replaced). Default: standard output; with --submit, sbatch's
    /// standard input.
    #[arg(long, value_name = "FILE")]
    pub(crate) script: Option<PathBuf>,
    /// Submit the script with sbatch.
    #[arg(long)]
    pub(crate) submit: bool,
    /// With --submit: wait for the job to end (sbatch --wait) and fail if it
    /// failed.
    #[arg(long)]
    pub(crate) wait: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub(crate) program: Vec<String>,
}

/// Refuses a text field that could change the script's lines: empty, or
/// holding a newline or another control character.
fn check_fields(a: &Args) -> Result<(), CliError> {
    for (what, value) in [
        ("--job-name", &a.job_name),
        ("--time", &a.time),
        ("--partition", &a.partition),
        ("--output", &a.output),
    ] {
        if let Some(v) = value {
            plain_text(what, v)?;
        }
    }
    for (i, arg) in a.program.iter().enumerate() {
        let what = if i == 0 {
            "the program".to_string()
        } else {
            format!("the program's argument {i}")
        };
        plain_text(&what, arg)?;
    }
    Ok(())
}

/// Writes `text` to the new file `path`: created exclusively (an existing
/// file or symbolic link there is an error, never replaced or followed),
/// mode 0600.
fn write_new(path: &Path, text: &str) -> Result<(), CliError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                ": remove it or choose another --script"
            } else {
                ""
            };
            format!("cannot create {}: {e}{hint}", path.display())
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// Runs `sbatch`, on the file `script` when given, else with `text` on its
/// standard input.
fn submit(script: Option<&Path>, text: &str, wait: bool) -> Result<(), CliError> {
    let mut cmd = Command::new("sbatch");
    if wait {
        cmd.arg("--wait");
    }
    match script {
        Some(p) => {
            cmd.arg(p).stdin(Stdio::null());
        }
        None => {
            cmd.stdin(Stdio::piped());
        }
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sbatch ({e}): is Slurm installed here?"))?;
    // Written whole, then closed, before sbatch's output is read: sbatch
    // reads the whole script before it writes more than a line, so this
    // cannot deadlock. An sbatch that ends without reading it says why on
    // stderr, which is reported before the broken pipe.
    let handed = child
        .stdin
        .take()
        .map_or(Ok(()), |mut stdin| stdin.write_all(text.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("sbatch: {e}"))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(format!(
            "sbatch failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    handed.map_err(|e| format!("cannot hand the script to sbatch: {e}").into())
}

/// `ferry sbatch`.
pub(crate) fn run(a: Args) -> Result<(), CliError> {
    let Some(first) = a.program.first() else {
        return Err("name the program to run after `--`".into());
    };
    check_fields(&a)?;
    let ranks = u64::from(a.nodes) * u64::from(a.ranks_per_node);
    if ranks > MAX_RANKS {
        return Err(format!(
            "--nodes {} × --ranks-per-node {} = {ranks} ranks: at most {MAX_RANKS} are supported",
            a.nodes, a.ranks_per_node
        )
        .into());
    }
    let (cpus, gpus) = match (a.cpus_per_rank, a.gpus_per_rank) {
        (Some(c), Some(g)) => (c as usize, g as usize),
        (c, g) => {
            let (pc, pg) = planned(a.ranks_per_node)?;
            (c.map_or(pc, |c| c as usize), g.map_or(pg, |g| g as usize))
        }
    };
    let name = match a.job_name {
        Some(n) => n,
        None => Path::new(first)
            .file_name()
            .map_or_else(|| "ferry".into(), |n| n.to_string_lossy().into_owned()),
    };
    let job = Job {
        name,
        nodes: a.nodes,
        ranks_per_node: a.ranks_per_node,
        cpus_per_rank: cpus,
        gpus_per_rank: gpus,
        time: a.time,
        partition: a.partition,
        output: a.output,
        program: a.program,
    };
    let text = script(&job);
    match &a.script {
        Some(p) => {
            write_new(p, &text)?;
            println!("wrote {}", p.display());
        }
        None if !a.submit => print!("{text}"),
        None => {}
    }
    if a.submit {
        submit(a.script.as_deref(), &text, a.wait)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            name: "train".into(),
            nodes: 2,
            ranks_per_node: 4,
            cpus_per_rank: 8,
            gpus_per_rank: 1,
            time: Some("01:00:00".into()),
            partition: None,
            output: Some("out-%j.txt".into()),
            program: vec![
                "./train".into(),
                "--lr".into(),
                "0.1 0.2".into(),
                "it's".into(),
            ],
        }
    }

    #[test]
    fn the_script_asks_for_what_the_plan_gives_each_rank() {
        let s = script(&job());
        assert!(s.starts_with("#!/bin/bash\n"));
        for line in [
            "#SBATCH --job-name=train",
            "#SBATCH --nodes=2",
            "#SBATCH --ntasks-per-node=4",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --time=01:00:00",
            "#SBATCH --output=out-%j.txt",
            "srun --mpi=pmix --kill-on-bad-exit=1 ./train --lr '0.1 0.2' 'it'\\''s'",
        ] {
            assert!(s.lines().any(|l| l == line), "no {line:?} in\n{s}");
        }
        assert!(!s.contains("--partition"));
    }

    #[test]
    fn no_gpu_line_without_gpus() {
        let mut j = job();
        j.gpus_per_rank = 0;
        assert!(!script(&j).contains("gpus-per-task"));
    }
}
