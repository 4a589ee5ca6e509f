//! `ferry sbatch`: a Slurm batch script that starts a Ferry program on
//! nodes × ranks per node, with the CPUs and GPUs of each rank matching the
//! launcher's binding plan (the plan for this node's topology, unless the
//! command line says otherwise), and, with `--submit`, hands it to `sbatch`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use super::CliError;

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
    let _ = writeln!(s, "srun --mpi=pmix {}", program.join(" "));
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
    /// Nodes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) nodes: u32,
    /// Ranks on each node.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) ranks_per_node: u32,
    /// CPUs per rank (default: from the binding plan of this node).
    #[arg(long, value_name = "N")]
    pub(crate) cpus_per_rank: Option<usize>,
    /// GPUs per rank (default: from the binding plan of this node).
    #[arg(long, value_name = "N")]
    pub(crate) gpus_per_rank: Option<usize>,
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
    /// Write the script here (default: standard output; a temporary file
    /// with --submit).
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

/// `ferry sbatch`.
pub(crate) fn run(a: Args) -> Result<(), CliError> {
    let Some(first) = a.program.first() else {
        return Err("name the program to run after `--`".into());
    };
    let (cpus, gpus) = match (a.cpus_per_rank, a.gpus_per_rank) {
        (Some(c), Some(g)) => (c, g),
        (c, g) => {
            let (pc, pg) = planned(a.ranks_per_node)?;
            (c.unwrap_or(pc), g.unwrap_or(pg))
        }
    };
    if cpus == 0 {
        return Err("--cpus-per-rank must be at least 1".into());
    }
    let name = a.job_name.unwrap_or_else(|| {
        std::path::Path::new(first)
            .file_name()
            .map_or_else(|| "ferry".into(), |n| n.to_string_lossy().into_owned())
    });
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
    let path = match (&a.script, a.submit) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(std::env::temp_dir().join(format!(
            "ferry-{}-{}.sbatch",
            job.name,
            std::process::id()
        ))),
        (None, false) => None,
    };
    match &path {
        Some(p) => {
            std::fs::write(p, &text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            println!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    if !a.submit {
        return Ok(());
    }
    let path = path.expect("a script path when submitting");
    let mut cmd = Command::new("sbatch");
    if a.wait {
        cmd.arg("--wait");
    }
    let out = cmd.arg(&path).output().map_err(|e| {
        format!(
            "cannot run sbatch ({e}): is Slurm installed here? The script is {}",
            path.display()
        )
    })?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(format!(
            "sbatch failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
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
            "srun --mpi=pmix ./train --lr '0.1 0.2' 'it'\\''s'",
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
