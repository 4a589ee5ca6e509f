//! Who am I? Rank discovery from the launcher's environment variables.
//!
//! [`discover_from`] is pure in the environment: it reads variables only
//! through the closure it is given, so every launcher can be tested with a
//! synthetic map. [`discover`] calls it with [`std::env::var`].

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::LaunchError;

/// The program that started this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Launcher {
    /// No launcher: a plain process (`cargo run`), one rank.
    Single,
    /// Open MPI's `mpirun`/`mpiexec` (`OMPI_COMM_WORLD_*` variables).
    OpenMpi,
    /// MPICH's Hydra `mpiexec`, Intel MPI, or another PMI-1/2 launcher
    /// (`PMI_RANK` or `MPI_LOCALRANKID`).
    Mpich,
    /// Slurm's `srun` (`SLURM_PROCID`).
    Slurm,
    /// A PMIx launcher such as `prterun` or `srun --mpi=pmix`
    /// (`PMIX_RANK`).
    Pmix,
}

impl Launcher {
    /// The launcher in words, as used in messages.
    ///
    /// ```
    /// assert_eq!(ferry_launcher::Launcher::OpenMpi.describe(), "mpirun (Open MPI)");
    /// ```
    pub fn describe(self) -> &'static str {
        match self {
            Launcher::Single => "a single process (no launcher)",
            Launcher::OpenMpi => "mpirun (Open MPI)",
            Launcher::Mpich => "mpiexec (MPICH/Hydra PMI)",
            Launcher::Slurm => "srun (Slurm)",
            Launcher::Pmix => "a PMIx launcher",
        }
    }
}

impl fmt::Display for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// This process's place among the ranks of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    /// This process's rank, `0..size`.
    pub rank: u32,
    /// The number of ranks in the job.
    pub size: u32,
    /// This process's rank among the ranks of its node, `0..local_size`.
    pub local_rank: u32,
    /// The number of ranks on this node.
    pub local_size: u32,
    /// The number of nodes, when the launcher says.
    pub node_count: Option<u32>,
    /// An identifier of the job, the same on every rank of a node (and of
    /// the job where the launcher provides one), made only of
    /// `[A-Za-z0-9._-]` so it is safe in file names.
    pub job_id: String,
    /// The launcher that started this process.
    pub launcher: Launcher,
}

impl World {
    /// Whether this is a one-rank job.
    ///
    /// ```
    /// let world = ferry_launcher::discover_from(|_| None)?;
    /// assert!(world.is_single());
    /// # Ok::<(), ferry_launcher::LaunchError>(())
    /// ```
    pub fn is_single(&self) -> bool {
        self.size == 1
    }
}

/// Turns any string into a job id that is safe in a file name: every
/// character outside `[A-Za-z0-9._-]` becomes `_`, a leading `.` is
/// prefixed with `_` (no hidden files, no `..`), an empty id becomes `_`, and
/// the result is cut to 128 characters.
///
/// ```
/// use ferry_launcher::sanitize_job_id;
/// assert_eq!(sanitize_job_id("prterun-host-1234@1"), "prterun-host-1234_1");
/// assert_eq!(sanitize_job_id("../etc/passwd"), "_.._etc_passwd");
/// assert_eq!(sanitize_job_id(""), "_");
/// ```
pub fn sanitize_job_id(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out.truncate(MAX_JOB_ID);
    out
}

/// Why a job id was refused by [`check_job_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobIdError {
    /// The id as given.
    pub id: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl std::fmt::Display for JobIdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "job id {:?} is not a plain name: {}; {JOB_ID_RULE}",
            self.id, self.why
        )
    }
}

impl std::error::Error for JobIdError {}

/// The longest job id, in bytes.
pub const MAX_JOB_ID: usize = 128;

/// What a job id may be, in words.
const JOB_ID_RULE: &str = "a job id is 1 to 128 characters of A-Z a-z 0-9 . _ - (not . or ..)";

/// Checks that `id` is a plain name that can be part of a file name: 1 to
/// [`MAX_JOB_ID`] characters of `[A-Za-z0-9._-]`, and not `.` or `..`.
/// Job ids that a user gives (`FERRY_JOB_ID`, `Config::job_id`) are held
/// to it; ids made from a launcher's variables go through
/// [`sanitize_job_id`] instead.
///
/// ```
/// use ferry_launcher::check_job_id;
/// assert!(check_job_id("slurm12.3").is_ok());
/// assert!(check_job_id("..").is_err());
/// assert!(check_job_id("a/b").is_err());
/// assert!(check_job_id("run\n2").is_err());
/// assert!(check_job_id("").is_err());
/// ```
pub fn check_job_id(id: &str) -> Result<(), JobIdError> {
    let why = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_JOB_ID {
        Some("it is too long")
    } else if id == "." || id == ".." {
        Some("it names a directory")
    } else if id.contains('/') {
        Some("it contains '/'")
    } else if id.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if id.chars().any(char::is_whitespace) {
        Some("it contains white space")
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Some("it contains a character outside A-Z a-z 0-9 . _ -")
    } else {
        None
    };
    match why {
        Some(why) => Err(JobIdError {
            id: id.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// Reads the world from this process's environment: [`discover_from`] with
/// [`std::env::var`].
pub fn discover() -> Result<World, LaunchError> {
    discover_from(|name| std::env::var(name).ok())
}

/// Reads the world through `env`, which returns a variable's value or `None`
/// when it is unset.
///
/// Launchers are tried in this order, the first whose marker variable is
/// set wins:
///
/// 1. Open MPI (`OMPI_COMM_WORLD_RANK`, `_SIZE`, `_LOCAL_RANK`,
///    `_LOCAL_SIZE`; `OMPI_COMM_WORLD_NODE_RANK` stands in for a missing
///    local rank; job id from `OMPI_MCA_ess_base_jobid` or
///    `OMPI_MCA_orte_ess_jobid`, as `ompi<jobid>`).
/// 2. PMIx (`PMIX_RANK`, job id from `PMIX_NAMESPACE`; the world size and
///    node layout come from Slurm's variables when present).
/// 3. MPICH/Hydra and Intel MPI (`PMI_RANK`, `PMI_SIZE`, `MPI_LOCALRANKID`,
///    `MPI_LOCALNRANKS`; job id `pmi` + `PMI_PORT` or `PMI_HOSTNAME`).
/// 4. Slurm's `srun` (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`,
///    tasks per node from `SLURM_STEP_TASKS_PER_NODE`,
///    `SLURM_TASKS_PER_NODE` (e.g. `2(x3),1`, indexed by `SLURM_NODEID`) or
///    `SLURM_NTASKS_PER_NODE`, `SLURM_NNODES`; job id
///    `slurm<SLURM_JOB_ID>.<SLURM_STEP_ID>`).
/// 5. None of them: a single rank with job id `p<pid>-<unix nanos>`.
///
/// `FERRY_JOB_ID`, when set and not empty, overrides the job id; it must
/// pass [`check_job_id`] as it is ([`LaunchError::BadVar`] otherwise). Where a
/// multi-rank launcher gives no job id, the id is `<launcher>-ppid<parent
/// pid>`, which is shared by the ranks of one node. When a launcher gives no
/// per-node layout, every rank is assumed to be on one node. Job ids made
/// from a launcher's variables are passed through [`sanitize_job_id`]. Apart from the single-rank and
/// fallback ids (which use the process ids and the clock) the result depends
/// on `env` only.
///
/// # Errors
///
/// [`LaunchError::BadVar`] naming the variable and its value when a number
/// is not a number, a rank is not below its size, or a variable that the
/// launcher always sets is missing.
///
/// ```
/// use std::collections::HashMap;
/// use ferry_launcher::{discover_from, Launcher};
///
/// let env: HashMap<&str, &str> = [
///     ("SLURM_PROCID", "4"), ("SLURM_NTASKS", "6"), ("SLURM_LOCALID", "0"),
///     ("SLURM_NODEID", "2"), ("SLURM_TASKS_PER_NODE", "2(x3)"),
///     ("SLURM_NNODES", "3"), ("SLURM_JOB_ID", "777"), ("SLURM_STEP_ID", "0"),
/// ].into_iter().collect();
/// let world = discover_from(|k| env.get(k).map(|v| v.to_string()))?;
/// assert_eq!((world.rank, world.size, world.local_rank, world.local_size), (4, 6, 0, 2));
/// assert_eq!(world.node_count, Some(3));
/// assert_eq!(world.launcher, Launcher::Slurm);
/// assert_eq!(world.job_id, "slurm777.0");
/// # Ok::<(), ferry_launcher::LaunchError>(())
/// ```
pub fn discover_from(env: impl Fn(&str) -> Option<String>) -> Result<World, LaunchError> {
    let env = Env(&env);
    let mut world = if env.get("OMPI_COMM_WORLD_RANK").is_some() {
        open_mpi(&env)?
    } else if env.get("PMIX_RANK").is_some() {
        pmix(&env)?
    } else if env.get("PMI_RANK").is_some() || env.get("MPI_LOCALRANKID").is_some() {
        mpich(&env)?
    } else if env.get("SLURM_PROCID").is_some() {
        slurm(&env)?
    } else {
        single()
    };
    world.job_id = sanitize_job_id(&world.job_id);
    // A job id the user gives is taken as it is or refused, never mended
    // (an empty value counts as unset, as for every variable here).
    if let Some(id) = (env.0)("FERRY_JOB_ID").filter(|v| !v.is_empty()) {
        check_job_id(&id).map_err(|e| {
            bad(
                "FERRY_JOB_ID",
                &id,
                format!("not a plain name: {}; {JOB_ID_RULE}", e.why),
            )
        })?;
        world.job_id = id;
    }
    validate(&world)?;
    Ok(world)
}

/// Fails with [`LaunchError::MpiRequired`] when `world` has more than one
/// rank: for programs built without MPI support.
///
/// ```
/// use ferry_launcher::{require_single_rank, Launcher, World};
///
/// let mut world = ferry_launcher::discover_from(|_| None)?;
/// assert!(require_single_rank(&world).is_ok());
///
/// world.size = 4;
/// world.launcher = Launcher::OpenMpi;
/// let err = require_single_rank(&world).unwrap_err();
/// assert!(err.to_string().starts_with("started as 4 ranks by mpirun"));
/// # Ok::<(), ferry_launcher::LaunchError>(())
/// ```
pub fn require_single_rank(world: &World) -> Result<(), LaunchError> {
    if world.size > 1 {
        return Err(LaunchError::MpiRequired {
            size: world.size,
            launcher: world.launcher.describe().to_string(),
        });
    }
    Ok(())
}

/// The environment, with empty values treated as unset.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set, with its name.
    fn first(&self, names: &[&'static str]) -> Option<(&'static str, String)> {
        names
            .iter()
            .find_map(|&name| self.get(name).map(|value| (name, value)))
    }

    fn num(&self, name: &str) -> Result<Option<u32>, LaunchError> {
        self.get(name).map(|v| parse_u32(name, &v)).transpose()
    }

    fn required(&self, name: &str, because: &str) -> Result<u32, LaunchError> {
        self.num(name)?.ok_or_else(|| LaunchError::BadVar {
            name: name.to_string(),
            value: String::new(),
            why: format!("it is not set, although {because} is"),
        })
    }
}

fn parse_u32(name: &str, value: &str) -> Result<u32, LaunchError> {
    value.parse::<u32>().map_err(|_| LaunchError::BadVar {
        name: name.to_string(),
        value: value.to_string(),
        why: "expected a non-negative integer".to_string(),
    })
}

fn bad(name: &str, value: impl ToString, why: String) -> LaunchError {
    LaunchError::BadVar {
        name: name.to_string(),
        value: value.to_string(),
        why,
    }
}

fn fallback_job_id(prefix: &str) -> String {
    format!("{prefix}-ppid{}", std::os::unix::process::parent_id())
}

fn single() -> World {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    World {
        rank: 0,
        size: 1,
        local_rank: 0,
        local_size: 1,
        node_count: Some(1),
        job_id: format!("p{}-{nanos}", std::process::id()),
        launcher: Launcher::Single,
    }
}

fn open_mpi(env: &Env<'_>) -> Result<World, LaunchError> {
    let marker = "OMPI_COMM_WORLD_RANK";
    let rank = env.required(marker, marker)?;
    let size = env.required("OMPI_COMM_WORLD_SIZE", marker)?;
    let local_rank = match env.num("OMPI_COMM_WORLD_LOCAL_RANK")? {
        Some(r) => Some(r),
        None => env.num("OMPI_COMM_WORLD_NODE_RANK")?,
    };
    let local_size = env.num("OMPI_COMM_WORLD_LOCAL_SIZE")?;
    let (local_rank, local_size) = match (local_rank, local_size) {
        (Some(r), Some(s)) => (r, s),
        // No per-node layout: assume one node.
        _ => (rank, size),
    };
    let job_id = match env.first(&["OMPI_MCA_ess_base_jobid", "OMPI_MCA_orte_ess_jobid"]) {
        Some((_, id)) => format!("ompi{id}"),
        None => match env.get("PMIX_NAMESPACE") {
            Some(ns) => ns,
            None => fallback_job_id("ompi"),
        },
    };
    Ok(World {
        rank,
        size,
        local_rank,
        local_size,
        node_count: None,
        job_id,
        launcher: Launcher::OpenMpi,
    })
}

/// Slurm's per-node layout, when Slurm's variables are there.
struct SlurmLayout {
    local_rank: u32,
    local_size: u32,
    node_count: Option<u32>,
}

fn slurm_layout(env: &Env<'_>) -> Result<Option<SlurmLayout>, LaunchError> {
    let Some(local_rank) = env.num("SLURM_LOCALID")? else {
        return Ok(None);
    };
    let node_id = env.num("SLURM_NODEID")?;
    let local_size = match env.first(&["SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"]) {
        Some((name, value)) => Some(tasks_on_node(name, &value, node_id)?),
        None => env.num("SLURM_NTASKS_PER_NODE")?,
    };
    let Some(local_size) = local_size else {
        return Ok(None);
    };
    let node_count = match env.num("SLURM_STEP_NUM_NODES")? {
        Some(n) => Some(n),
        None => env.num("SLURM_NNODES")?,
    };
    Ok(Some(SlurmLayout {
        local_rank,
        local_size,
        node_count,
    }))
}

/// Parses Slurm's compressed tasks-per-node list (`2(x3),1` means nodes of
/// 2, 2, 2 and 1 tasks) and picks the entry of node `node_id`.
fn tasks_on_node(name: &str, value: &str, node_id: Option<u32>) -> Result<u32, LaunchError> {
    let malformed = || bad(name, value, "expected a list like `2(x3),1`".to_string());
    let mut counts: Vec<(u32, u32)> = Vec::new(); // (tasks, repeat)
    for part in value.split(',') {
        let part = part.trim();
        let (tasks, repeat) = match part.split_once('(') {
            Some((tasks, rest)) => {
                let repeat = rest
                    .strip_prefix('x')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(malformed)?;
                (tasks, repeat.parse::<u32>().map_err(|_| malformed())?)
            }
            None => (part, 1),
        };
        counts.push((tasks.parse::<u32>().map_err(|_| malformed())?, repeat));
    }
    match node_id {
        Some(node) => {
            let mut seen: u64 = 0;
            for &(tasks, repeat) in &counts {
                seen += u64::from(repeat);
                if u64::from(node) < seen {
                    return Ok(tasks);
                }
            }
            Err(bad(
                name,
                value,
                format!("it lists {seen} nodes, but SLURM_NODEID is {node}"),
            ))
        }
        None => match counts.as_slice() {
            [(tasks, _), rest @ ..] if rest.iter().all(|(t, _)| t == tasks) => Ok(*tasks),
            _ => Err(bad(
                name,
                value,
                "nodes run different numbers of tasks and SLURM_NODEID is not set".to_string(),
            )),
        },
    }
}

fn slurm(env: &Env<'_>) -> Result<World, LaunchError> {
    let marker = "SLURM_PROCID";
    let rank = env.required(marker, marker)?;
    let size = match env.num("SLURM_NTASKS")? {
        Some(s) => s,
        None => env.required("SLURM_NPROCS", marker)?,
    };
    let layout = slurm_layout(env)?;
    let (local_rank, local_size, node_count) = match layout {
        Some(l) => (l.local_rank, l.local_size, l.node_count),
        None => (rank, size, None),
    };
    let job_id = match env.first(&["SLURM_JOB_ID", "SLURM_JOBID"]) {
        Some((_, job)) => match env.first(&["SLURM_STEP_ID", "SLURM_STEPID"]) {
            Some((_, step)) => format!("slurm{job}.{step}"),
            None => format!("slurm{job}"),
        },
        None => fallback_job_id("slurm"),
    };
    Ok(World {
        rank,
        size,
        local_rank,
        local_size,
        node_count,
        job_id,
        launcher: Launcher::Slurm,
    })
}

fn pmix(env: &Env<'_>) -> Result<World, LaunchError> {
    let marker = "PMIX_RANK";
    let rank = env.required(marker, marker)?;
    let size = match env.num("SLURM_NTASKS")? {
        Some(s) => s,
        None => env.num("PMIX_SIZE")?.ok_or_else(|| {
            bad(
                marker,
                rank,
                "PMIx gives no world size in the environment and neither SLURM_NTASKS nor \
                 PMIX_SIZE is set"
                    .to_string(),
            )
        })?,
    };
    let layout = slurm_layout(env)?;
    let (local_rank, local_size, node_count) = match layout {
        Some(l) => (l.local_rank, l.local_size, l.node_count),
        None => (rank, size, None),
    };
    let job_id = env
        .get("PMIX_NAMESPACE")
        .unwrap_or_else(|| fallback_job_id("pmix"));
    Ok(World {
        rank,
        size,
        local_rank,
        local_size,
        node_count,
        job_id,
        launcher: Launcher::Pmix,
    })
}

fn mpich(env: &Env<'_>) -> Result<World, LaunchError> {
    let marker = if env.get("PMI_RANK").is_some() {
        "PMI_RANK"
    } else {
        "MPI_LOCALRANKID"
    };
    let rank = env.required("PMI_RANK", marker)?;
    let size = env.required("PMI_SIZE", marker)?;
    let (local_rank, local_size) = match (env.num("MPI_LOCALRANKID")?, env.num("MPI_LOCALNRANKS")?)
    {
        (Some(r), Some(s)) => (r, s),
        _ => (rank, size),
    };
    let job_id = match env.first(&["PMI_PORT", "PMI_HOSTNAME"]) {
        Some((_, id)) => format!("pmi{id}"),
        None => fallback_job_id("pmi"),
    };
    Ok(World {
        rank,
        size,
        local_rank,
        local_size,
        node_count: None,
        job_id,
        launcher: Launcher::Mpich,
    })
}

/// The variables that gave each number, for error messages.
fn var_names(launcher: Launcher) -> [&'static str; 4] {
    match launcher {
        Launcher::Single => ["rank", "size", "local rank", "local size"],
        Launcher::OpenMpi => [
            "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_SIZE",
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "OMPI_COMM_WORLD_LOCAL_SIZE",
        ],
        Launcher::Mpich => ["PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"],
        Launcher::Slurm => [
            "SLURM_PROCID",
            "SLURM_NTASKS",
            "SLURM_LOCALID",
            "SLURM_TASKS_PER_NODE",
        ],
        Launcher::Pmix => [
            "PMIX_RANK",
            "SLURM_NTASKS",
            "SLURM_LOCALID",
            "SLURM_TASKS_PER_NODE",
        ],
    }
}

fn validate(w: &World) -> Result<(), LaunchError> {
    let [rank_var, size_var, local_rank_var, local_size_var] = var_names(w.launcher);
    if w.size == 0 {
        return Err(bad(
            size_var,
            w.size,
            "the world size must be at least 1".into(),
        ));
    }
    if w.rank >= w.size {
        return Err(bad(
            rank_var,
            w.rank,
            format!(
                "rank {} is not below the world size {} ({size_var})",
                w.rank, w.size
            ),
        ));
    }
    if w.local_size == 0 || w.local_size > w.size {
        return Err(bad(
            local_size_var,
            w.local_size,
            format!("ranks per node must be in 1..={} ({size_var})", w.size),
        ));
    }
    if w.local_rank >= w.local_size {
        return Err(bad(
            local_rank_var,
            w.local_rank,
            format!(
                "local rank {} is not below the ranks per node {} ({local_size_var})",
                w.local_rank, w.local_size
            ),
        ));
    }
    if w.node_count == Some(0) {
        return Err(bad(
            "SLURM_NNODES",
            0,
            "the node count must be at least 1".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_per_node_forms() {
        assert_eq!(tasks_on_node("X", "4", None).unwrap(), 4);
        assert_eq!(tasks_on_node("X", "2(x3)", None).unwrap(), 2);
        assert_eq!(tasks_on_node("X", "2(x3),1", Some(3)).unwrap(), 1);
        assert_eq!(tasks_on_node("X", "2(x3),1", Some(2)).unwrap(), 2);
        assert!(tasks_on_node("X", "2(x3),1", None).is_err());
        assert!(tasks_on_node("X", "2(x3),1", Some(4)).is_err());
        assert!(tasks_on_node("X", "2(3)", None).is_err());
        assert!(tasks_on_node("X", "two", None).is_err());
    }

    #[test]
    fn sanitize_keeps_safe_and_caps_length() {
        assert_eq!(sanitize_job_id("slurm12.3"), "slurm12.3");
        assert_eq!(sanitize_job_id("a b/c\\d:e"), "a_b_c_d_e");
        assert_eq!(sanitize_job_id(".hidden"), "_.hidden");
        assert_eq!(sanitize_job_id("é"), "_");
        assert_eq!(sanitize_job_id(&"x".repeat(500)).len(), 128);
    }

    #[test]
    fn ferry_job_id_is_taken_as_given_or_refused() {
        let with = |id: &'static str| {
            discover_from(move |k| (k == "FERRY_JOB_ID").then(|| id.to_string()))
        };
        assert_eq!(with("run-7.a_b").unwrap().job_id, "run-7.a_b");
        assert_ne!(with("").unwrap().job_id, "", "empty counts as unset");
        for bad_id in ["..", ".", "a/b", "a\nb", "a\n", " a", "a b", "é", "a\0b"] {
            match with(bad_id) {
                Err(LaunchError::BadVar { name, value, why }) => {
                    assert_eq!((name.as_str(), value.as_str()), ("FERRY_JOB_ID", bad_id));
                    assert!(why.contains("A-Z a-z 0-9 . _ -"), "{why}");
                }
                other => panic!("{bad_id:?}: expected BadVar, got {other:?}"),
            }
        }
        let long = "x".repeat(MAX_JOB_ID + 1);
        assert!(check_job_id(&long).is_err());
        assert!(check_job_id(&long[1..]).is_ok());
    }
}
