//! A soak of Ferry's fault tolerance: mixed tasks, nested tasks whose refs
//! are rebuilt from lineage, actors re-created from their constructor or
//! their checkpoint, puts and gets of objects from 64 B to 1 MiB, and
//! `wait`, for minutes, while ranks are lost. Every result is checked
//! against a value computed here, and one line says how many were.
//!
//! Two modes:
//!
//! - `soak loopback --ranks 4 --minutes 10 --kill-every 3` (with no
//!   arguments: a short run of this mode). Ranks are threads of this process
//!   (the loopback transport); one of ranks 1.. is killed every few seconds
//!   while work is in flight; a world with fewer than two live ranks is
//!   ended and a fresh one started.
//! - `mpirun -n 3 soak mpi --minutes 5 --state FILE` (built with
//!   `--features mpi`). No rank is killed inside (under MPI a dead rank ends
//!   the job): tasks run across the ranks, and a named actor with a
//!   checkpoint counts. Each job writes to FILE the count it saw
//!   acknowledged (written to a checkpoint before the job saw it), and the
//!   next job with the same `FERRY_JOB_ID` and `FERRY_CHECKPOINT_DIR` checks
//!   that the actor comes back from its checkpoint at that count or later,
//!   with a state that is not damaged. `scripts/soak.sh` runs such jobs one
//!   after another, and kills one of them with SIGKILL mid-run.
//!
//! What counts: a result equal to the value computed here is good. A result
//! that fails with an error Ferry documents for a lost rank (README, "When
//! a rank is lost") is "reported lost", counted by reason: an object `put`
//! on a rank that was lost before anyone read it (nothing can rebuild it),
//! a call in flight to an actor without `max_task_retries`, an actor out of
//! restarts. Tasks have enough retries, and the other actors enough
//! restarts, that a loss within one world never makes them fail: for them
//! any error is a failure. A wrong value, an undocumented error, a `get`
//! that times out or a soak that stops making progress is a failure, and
//! the exit status is 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use ferry::loopback::World;
use ferry::{ActorHandle, Config, Error, ObjectRef, Runtime, View};

/// Elements (u64) of the objects: 64 B (inline in messages), 16 KiB, 1 MiB.
const SIZES: [u64; 3] = [8, 2048, 131_072];

/// Each loopback rank's store: a round's objects fit many times over.
const STORE_BYTES: usize = 64 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "soak",
    about = "A soak of Ferry's fault tolerance",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Without a mode: the loopback soak with these settings.
    #[command(flatten)]
    loopback: LoopbackArgs,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Loopback ranks in this process, one killed every few seconds (the
    /// default, with a short duration).
    Loopback(LoopbackArgs),
    /// Ranks under mpirun, with a checkpointed actor restored from the job
    /// before.
    Mpi(MpiArgs),
}

#[derive(clap::Args, Debug)]
struct LoopbackArgs {
    /// Ranks per world (2 or more: rank 0 drives, the others are killed).
    #[arg(long, default_value_t = 4)]
    ranks: u32,
    /// How long to soak, in minutes (fractions allowed).
    #[arg(long, default_value_t = 0.13)]
    minutes: f64,
    /// Seconds between rank kills.
    #[arg(long = "kill-every", default_value_t = 1.2)]
    kill_every: f64,
    /// Seed of the workload's random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The bound on every get and wait, in seconds: past it, a failure.
    #[arg(long = "get-timeout", default_value_t = 60.0)]
    get_timeout: f64,
}

#[derive(clap::Args, Debug)]
struct MpiArgs {
    /// How long to soak, in minutes (fractions allowed).
    #[arg(long, default_value_t = 0.25)]
    minutes: f64,
    /// The file that carries the acknowledged count from job to job
    /// (default: `soak-ack` in the job's checkpoint directory).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The ledger actor checkpoints every this many calls.
    #[arg(long = "checkpoint-every", default_value_t = 10)]
    checkpoint_every: u64,
    /// Each rank writes its pid to `DIR/rank<R>.pid` (for a script that
    /// kills one).
    #[arg(long = "pid-dir")]
    pid_dir: Option<PathBuf>,
    /// Seed of the workload's random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The bound on every get, in seconds: past it, a failure.
    #[arg(long = "get-timeout", default_value_t = 60.0)]
    get_timeout: f64,
}

// ---------------------------------------------------------------------------
// Deterministic values, computed the same way by the workers and here.

/// SplitMix64's finaliser: a cheap, well-mixed function of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The object `seed` names, `len` elements long.
fn block(seed: u64, len: u64) -> Vec<u64> {
    let base = mix(seed);
    (0..len).map(|i| mix(base ^ i)).collect()
}

/// A digest of a block's elements.
fn digest_of(xs: &[u64]) -> u64 {
    xs.iter().fold(xs.len() as u64, |h, &x| mix(h ^ x))
}

/// A small pseudo-random generator for the workload's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// An object size: mostly small and 16 KiB, one in five 1 MiB.
    fn size(&mut self) -> u64 {
        match self.below(10) {
            0..=3 => SIZES[0],
            4..=7 => SIZES[1],
            _ => SIZES[2],
        }
    }
}

// ---------------------------------------------------------------------------
// The workload's tasks and actors.

/// `mix(x)`, after a nap of `nap_us` microseconds (work in flight when a
/// rank is killed).
#[ferry::remote]
fn work(x: u64, nap_us: u64) -> u64 {
    if nap_us > 0 {
        std::thread::sleep(Duration::from_micros(nap_us));
    }
    mix(x)
}

#[ferry::remote]
fn fill(seed: u64, len: u64) -> Vec<u64> {
    block(seed, len)
}

/// Makes one object per length on its own rank (which owns them): nested
/// tasks for all but the last, a `put` for the last; hands back the refs.
#[ferry::remote]
fn fan_out(rt: &Runtime, seed: u64, lens: Vec<u64>) -> ferry::Result<Vec<ObjectRef<Vec<u64>>>> {
    let Some((&last, nested)) = lens.split_last() else {
        return Ok(Vec::new());
    };
    let mut refs = nested
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            fill::options()
                .on_rank(rt.rank())
                .remote(rt, seed + i as u64, len)
        })
        .collect::<ferry::Result<Vec<_>>>()?;
    refs.push(rt.put(&block(seed + nested.len() as u64, last))?);
    Ok(refs)
}

/// The digest of an object, read where the task runs.
#[ferry::remote]
fn digest(v: View<Vec<u64>>) -> u64 {
    digest_of(v.as_slice())
}

/// Constructions of `Acc` in this process: each incarnation has its own.
static INCARNATIONS: AtomicU64 = AtomicU64::new(0);

/// Adds up `mix(k)` of the ks it is given, from `start`.
#[ferry::actor]
struct Acc {
    incarnation: u64,
    calls: u64,
    total: u64,
}

#[ferry::actor]
impl Acc {
    fn new(start: u64) -> Self {
        Acc {
            incarnation: INCARNATIONS.fetch_add(1, Ordering::Relaxed) + 1,
            calls: 0,
            total: start,
        }
    }

    /// (incarnation, calls of this incarnation, total).
    fn add(&mut self, k: u64) -> (u64, u64, u64) {
        self.calls += 1;
        self.total = self.total.wrapping_add(mix(k));
        (self.incarnation, self.calls, self.total)
    }

    /// A `put` on the actor's rank, handed over in the call's result:
    /// nothing can rebuild it if that rank is lost before it is read.
    fn make(&self, rt: &Runtime, seed: u64, len: u64) -> ferry::Result<Vec<ObjectRef<Vec<u64>>>> {
        Ok(vec![rt.put(&block(seed, len))?])
    }
}

/// A count and the sum of `mix(1..=count)`: a state whose damage shows.
#[ferry::actor(checkpoint)]
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Ledger {
    count: u64,
    sum: u64,
}

#[ferry::actor]
impl Ledger {
    fn new() -> Self {
        Ledger { count: 0, sum: 0 }
    }

    /// One more: (count, sum).
    fn step(&mut self) -> (u64, u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(mix(self.count));
        (self.count, self.sum)
    }
}

/// The ledger's sum after `count` steps, kept incrementally.
struct LedgerSums(Vec<u64>);

impl LedgerSums {
    fn new() -> Self {
        LedgerSums(vec![0])
    }

    fn at(&mut self, count: u64) -> u64 {
        while (self.0.len() as u64) <= count {
            let n = self.0.len() as u64;
            let prev = self.0[self.0.len() - 1];
            self.0.push(prev.wrapping_add(mix(n)));
        }
        self.0[count as usize]
    }
}

// ---------------------------------------------------------------------------
// Counting.

/// What the soak counted: results checked, failures, documented losses.
#[derive(Default)]
struct Tally {
    checked: u64,
    wrong: u64,
    /// The first failures, for the report.
    failures: Vec<String>,
    /// Documented losses by reason, with one example message each.
    lost: BTreeMap<&'static str, (u64, String)>,
    kills: u64,
    worlds: u64,
    /// `Acc` re-creations seen (a new incarnation answering).
    restarts: u64,
    /// Ledger calls applied twice (sent again after a loss, by design).
    replayed: u64,
    /// Objects read after the rank that owned them was lost (rebuilt).
    rebuilt_reads: u64,
    /// Bumped at every result: the watchdog's sign of progress.
    progress: Arc<AtomicU64>,
}

impl Tally {
    fn ok(&mut self) {
        self.checked += 1;
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    fn fail(&mut self, what: impl std::fmt::Display) {
        self.checked += 1;
        self.wrong += 1;
        self.progress.fetch_add(1, Ordering::Relaxed);
        let line = what.to_string();
        eprintln!("soak: FAILURE: {line}");
        if self.failures.len() < 20 {
            self.failures.push(line);
        }
    }

    fn reported(&mut self, reason: &'static str, message: String) {
        self.checked += 1;
        self.progress.fetch_add(1, Ordering::Relaxed);
        self.lost.entry(reason).or_insert((0, message)).0 += 1;
    }

    fn lost_total(&self) -> u64 {
        self.lost.values().map(|(n, _)| n).sum()
    }

    fn lost_summary(&self) -> String {
        if self.lost.is_empty() {
            return "0 reported lost".into();
        }
        let parts: Vec<String> = self
            .lost
            .iter()
            .map(|(why, (n, _))| format!("{n} {why}"))
            .collect();
        format!("{} reported lost ({})", self.lost_total(), parts.join(", "))
    }
}

/// Which documented losses an operation may report (README, "When a rank
/// is lost"); anything else it reports is a failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MayLose {
    /// Tasks with enough retries, lineage-rebuilt objects, actors with
    /// unbounded restarts and call retries, the driver's own puts.
    Nothing,
    /// An object `put` on another rank and handed over by an actor call.
    Put,
    /// A call to an actor with bounded restarts and no call retries.
    ActorCall,
}

/// Sorts an error: `Ok(reason)` for a documented loss, `Err(why)` for a
/// failure. `killed`: the ranks lost in this world so far.
fn judge(may: MayLose, e: &Error, killed: &[u32]) -> Result<&'static str, String> {
    if let Error::Timeout(d) = e {
        return Err(format!("hung: no result within {d:?}"));
    }
    match (may, e) {
        (MayLose::Put, Error::OwnerLost { rank, .. }) if killed.contains(rank) => {
            Ok("puts on lost ranks")
        }
        (MayLose::ActorCall, Error::ActorDied { reason, .. })
            if !killed.is_empty() && !reason.trim().is_empty() =>
        {
            Ok(if reason.contains("restarts") {
                "actor calls after the actor ran out of restarts"
            } else if reason.contains("max_task_retries") {
                "actor calls in flight without max_task_retries"
            } else {
                "actor calls to a lost actor"
            })
        }
        _ => Err(format!("undocumented error (may lose: {may:?}): {e}")),
    }
}

/// What a check needs to know: where to get, for how long, and which
/// ranks this world has lost so far.
struct Ctx<'a> {
    rt: &'a Runtime,
    timeout: Duration,
    killed: &'a [u32],
}

impl Ctx<'_> {
    /// Records the outcome of an operation that gives no value to compare
    /// (a submission, a `to_ref`) if it failed; `Some(v)` to go on with.
    fn go_on<T>(
        &self,
        tally: &mut Tally,
        what: &str,
        may: MayLose,
        r: ferry::Result<T>,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                match judge(may, &e, self.killed) {
                    Ok(reason) => tally.reported(reason, format!("{what}: {e}")),
                    Err(why) => tally.fail(format!("{what}: {why}")),
                }
                None
            }
        }
    }

    /// Gets `r` within the bound and checks it with `check` (which says
    /// what is wrong, if anything); whether it was right.
    fn get<T: ferry::Object>(
        &self,
        tally: &mut Tally,
        what: &str,
        may: MayLose,
        r: &ObjectRef<T>,
        check: impl FnOnce(&View<T>) -> Result<(), String>,
    ) -> bool {
        let got = self.rt.get_timeout(r, self.timeout);
        let Some(v) = self.go_on(tally, what, may, got) else {
            return false;
        };
        match check(&v) {
            Ok(()) => {
                tally.ok();
                true
            }
            Err(why) => {
                tally.fail(format!("{what}: wrong value: {why}"));
                false
            }
        }
    }
}

/// `Ok` if `got` is `want`.
fn equal<A: PartialEq<B> + std::fmt::Display, B: std::fmt::Display>(
    got: &A,
    want: &B,
) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{got} != {want}"))
    }
}

fn same_block(v: &[u64], seed: u64, len: u64) -> Result<(), String> {
    let want = block(seed, len);
    if v == want.as_slice() {
        return Ok(());
    }
    let first = v.iter().zip(&want).position(|(a, b)| a != b);
    Err(format!(
        "block {seed} of {len}: got {} elements, first difference at {first:?}",
        v.len()
    ))
}

/// Fails the process if no result has been counted for `limit`: a hang
/// that no `get` bound caught (a world that does not start or stop).
fn watchdog(progress: Arc<AtomicU64>, limit: Duration) {
    let spawned = std::thread::Builder::new()
        .name("soak-watchdog".into())
        .spawn(move || {
            let mut seen = progress.load(Ordering::Relaxed);
            let mut since = Instant::now();
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let now = progress.load(Ordering::Relaxed);
                if now != seen {
                    (seen, since) = (now, Instant::now());
                } else if since.elapsed() > limit {
                    eprintln!(
                        "soak: FAILURE: no result for {} s after {seen} results: hung",
                        limit.as_secs()
                    );
                    std::process::exit(1);
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("soak: no watchdog thread ({e}); the gets' own bounds still hold");
    }
}

fn seconds(name: &str, v: f64, min: f64, max: f64) -> Result<Duration, String> {
    if v.is_finite() && v >= min && v <= max {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("--{name} {v}: give a number from {min} to {max}"))
    }
}

// ---------------------------------------------------------------------------
// Loopback mode.

/// An `Acc` and what its calls should give.
struct Tracked {
    handle: ActorHandle<Acc>,
    start: u64,
    /// `prefix[i]`: the sum of `mix(k)` over the first `i` calls' ks.
    prefix: Vec<u64>,
    /// (incarnation, its calls, call index) of the last result checked.
    last: Option<(u64, u64, usize)>,
    incarnations: u64,
    may: MayLose,
}

impl Tracked {
    fn new(handle: ActorHandle<Acc>, start: u64, may: MayLose) -> Self {
        Tracked {
            handle,
            start,
            prefix: vec![0],
            last: None,
            incarnations: 0,
            may,
        }
    }

    /// Calls `add(k)`; the call's index and ref.
    fn add(&mut self, k: u64) -> (usize, ferry::Result<AddRef>) {
        let i = self.prefix.len() - 1;
        let last = self.prefix[i];
        self.prefix.push(last.wrapping_add(mix(k)));
        (i, self.handle.add(k).remote())
    }

    /// Checks call `i`'s result: an incarnation runs a contiguous run of
    /// calls in order, from `start`; a new one only after a rank was lost.
    fn verify(&mut self, i: usize, got: (u64, u64, u64), kills: usize) -> Result<bool, String> {
        let (inc, n, total) = got;
        if n == 0 || n as usize > i + 1 {
            return Err(format!("call {i} says it is call {n} of its incarnation"));
        }
        let want = self
            .start
            .wrapping_add(self.prefix[i + 1].wrapping_sub(self.prefix[i + 1 - n as usize]));
        if total != want {
            return Err(format!(
                "call {i} (call {n} of incarnation {inc}): total {total}, expected {want}"
            ));
        }
        let mut restarted = false;
        match self.last {
            Some((last_inc, last_n, last_i)) if last_inc == inc => {
                if n != last_n + (i - last_i) as u64 {
                    return Err(format!(
                        "call {i} is call {n} of incarnation {inc}, \
                         but call {last_i} was its call {last_n}"
                    ));
                }
            }
            Some(_) => {
                self.incarnations += 1;
                restarted = true;
                if self.incarnations > kills as u64 + 1 {
                    return Err(format!(
                        "{} incarnations after {kills} lost ranks",
                        self.incarnations
                    ));
                }
            }
            None => self.incarnations = 1,
        }
        self.last = Some((inc, n, i));
        Ok(restarted)
    }
}

/// A ref to what `Acc::add` returns: (incarnation, calls, total).
type AddRef = ObjectRef<(u64, u64, u64)>;

/// The named, checkpointed ledger and what its results should give.
struct LedgerTrack {
    handle: ActorHandle<Ledger>,
    sums: LedgerSums,
    submitted: u64,
    last: u64,
    /// The last counts seen, for a failure's message.
    recent: std::collections::VecDeque<u64>,
}

/// One loopback world, from its start until fewer than two ranks live.
struct WorldSoak<'a> {
    rt: Runtime,
    world: &'a World,
    ranks: u32,
    /// Live ranks other than 0.
    alive: Vec<u32>,
    killed: Vec<u32>,
    next_kill: Instant,
    kill_every: Duration,
    timeout: Duration,
    steady: Tracked,
    limited: Option<Tracked>,
    ledger: LedgerTrack,
    round: u64,
}

/// What one round submitted, to check after the kill.
#[derive(Default)]
struct Round {
    works: Vec<(ObjectRef<u64>, u64)>,
    /// Refs a nested task made, and (seed, len) of each.
    fans: Vec<(ObjectRef<Vec<u64>>, u64, u64, u32)>,
    /// (which actor: 0 steady, 1 limited; call index; ref).
    adds: Vec<(usize, usize, AddRef)>,
    /// A put on an actor's rank: ref, seed, len.
    made: Vec<(ObjectRef<Vec<u64>>, u64, u64)>,
    /// The driver's puts and a digest of each read on another rank.
    puts: Vec<(ObjectRef<Vec<u64>>, u64, u64)>,
    digests: Vec<(ObjectRef<u64>, u64)>,
    steps: Vec<ObjectRef<(u64, u64)>>,
}

impl WorldSoak<'_> {
    fn any_rank(&self, rng: &mut Rng) -> u32 {
        if rng.below(self.alive.len() as u64 + 1) == 0 {
            0
        } else {
            rng.pick(&self.alive)
        }
    }

    fn new_limited(&self, rng: &mut Rng) -> ferry::Result<Tracked> {
        let start = rng.next();
        let h = Acc::options()
            .on_rank(rng.pick(&self.alive))
            .max_restarts(1)
            .max_task_retries(0)
            .remote(&self.rt, start)?;
        Ok(Tracked::new(h, start, MayLose::ActorCall))
    }

    /// One round: submit a mix of work, kill a rank if it is time, check
    /// every result.
    fn round(&mut self, tally: &mut Tally, rng: &mut Rng) -> ferry::Result<()> {
        self.round += 1;
        let rt = self.rt.clone();
        // Enough retries that the losses of one world cannot use them up.
        let retries = self.ranks as i32;
        let killed = self.killed.clone();
        let cx = Ctx {
            rt: &rt,
            timeout: self.timeout,
            killed: &killed,
        };
        let nothing = MayLose::Nothing;
        let mut r = Round::default();

        for _ in 0..12 {
            let x = rng.next();
            let nap = if rng.below(4) == 0 {
                rng.below(3000)
            } else {
                0
            };
            let opts = work::options().max_retries(retries);
            let opts = if rng.below(2) == 0 {
                opts.on_rank(self.any_rank(rng))
            } else {
                opts
            };
            if let Some(w) = cx.go_on(tally, "submit work", nothing, opts.remote(&rt, x, nap)) {
                r.works.push((w, mix(x)));
            }
        }

        // Nested tasks on a rank that may be lost before their objects are
        // read: rebuilt from lineage by re-running `fan_out`.
        let seed = rng.next() >> 8;
        let lens: Vec<u64> = (0..1 + rng.below(3)).map(|_| rng.size()).collect();
        let fan_rank = rng.pick(&self.alive);
        let fan = fan_out::options()
            .on_rank(fan_rank)
            .max_retries(retries)
            .remote(&rt, seed, lens.clone());
        if let Some(f) = cx.go_on(tally, "submit fan_out", nothing, fan) {
            let got = rt.get_timeout(&f, self.timeout);
            if let Some(v) = cx.go_on(tally, "fan_out", nothing, got) {
                if v.len() == lens.len() {
                    tally.ok();
                    for (i, (a, &len)) in v.iter().zip(&lens).enumerate() {
                        if let Some(rf) = cx.go_on(tally, "fan_out ref", nothing, a.to_ref()) {
                            r.fans.push((rf, seed + i as u64, len, fan_rank));
                        }
                    }
                } else {
                    tally.fail(format!(
                        "fan_out: {} refs for {} lengths",
                        v.len(),
                        lens.len()
                    ));
                }
            }
        }

        for _ in 0..4 {
            let (i, a) = self.steady.add(rng.next());
            if let Some(a) = cx.go_on(tally, "submit steady add", nothing, a) {
                r.adds.push((0, i, a));
            }
        }
        if self.limited.is_none() {
            self.limited = Some(self.new_limited(rng)?);
        }
        if let Some(l) = &mut self.limited {
            for _ in 0..3 {
                let (i, a) = l.add(rng.next());
                if let Some(a) = cx.go_on(tally, "submit limited add", l.may, a) {
                    r.adds.push((1, i, a));
                }
            }
        }
        for _ in 0..2 {
            self.ledger.submitted += 1;
            let s = self.ledger.handle.step().remote();
            if let Some(s) = cx.go_on(tally, "submit ledger step", nothing, s) {
                r.steps.push(s);
            }
        }

        // A put on the steady actor's rank, handed back in a call's result.
        let (mseed, mlen) = (rng.next() >> 8, rng.size());
        let m = self.steady.handle.make(mseed, mlen).remote();
        if let Some(m) = cx.go_on(tally, "submit make", nothing, m) {
            let got = rt.get_timeout(&m, self.timeout);
            if let Some(v) = cx.go_on(tally, "make", nothing, got) {
                tally.ok();
                for a in v.iter() {
                    if let Some(rf) = cx.go_on(tally, "make ref", MayLose::Put, a.to_ref()) {
                        r.made.push((rf, mseed, mlen));
                    }
                }
            }
        }

        // The driver's puts, read here and by a task on another rank.
        for _ in 0..3 {
            let (pseed, plen) = (rng.next() >> 8, rng.size());
            if let Some(p) = cx.go_on(tally, "put", nothing, rt.put(&block(pseed, plen))) {
                let d = digest::options()
                    .on_rank(self.any_rank(rng))
                    .max_retries(retries)
                    .remote(&rt, &p);
                if let Some(d) = cx.go_on(tally, "submit digest", nothing, d) {
                    r.digests.push((d, digest_of(&block(pseed, plen))));
                }
                r.puts.push((p, pseed, plen));
            }
        }

        // Kill a rank while all of this is in flight.
        if Instant::now() >= self.next_kill && !self.alive.is_empty() {
            let victim = rng.pick(&self.alive);
            self.world.kill(
                victim,
                &format!("killed by the soak in round {}", self.round),
            )?;
            self.alive.retain(|&a| a != victim);
            self.killed.push(victim);
            tally.kills += 1;
            self.next_kill = Instant::now() + self.kill_every;
        }
        self.check(tally, r);
        Ok(())
    }

    fn check(&mut self, tally: &mut Tally, r: Round) {
        let rt = self.rt.clone();
        let killed = self.killed.clone();
        let cx = Ctx {
            rt: &rt,
            timeout: self.timeout,
            killed: &killed,
        };
        let nothing = MayLose::Nothing;
        let refs: Vec<ObjectRef<u64>> = r.works.iter().map(|(w, _)| w.clone()).collect();
        let half = refs.len() / 2;
        match rt.wait(&refs, half, Some(self.timeout)) {
            Ok((ready, _)) if ready.len() == half && ready.iter().all(|x| x.is_ready()) => {
                tally.ok()
            }
            Ok((ready, _)) => tally.fail(format!(
                "wait: {} of {half} ready within {:?}: hung",
                ready.len(),
                self.timeout
            )),
            Err(e) => tally.fail(format!("wait: {e}")),
        }
        for (w, want) in &r.works {
            cx.get(tally, "work", nothing, w, |v| equal(&**v, want));
        }
        for (f, seed, len, owner) in &r.fans {
            let read = cx.get(tally, "nested object", nothing, f, |v| {
                same_block(v.as_slice(), *seed, *len)
            });
            if read && killed.contains(owner) {
                tally.rebuilt_reads += 1;
            }
        }
        for (which, i, a) in &r.adds {
            let (tracked, what) = if *which == 0 {
                (Some(&mut self.steady), "steady add")
            } else {
                (self.limited.as_mut(), "limited add")
            };
            let Some(tr) = tracked else { continue };
            let mut restarted = false;
            cx.get(tally, what, tr.may, a, |v| {
                let got = (v.0.to_native(), v.1.to_native(), v.2.to_native());
                tr.verify(*i, got, killed.len()).map(|re| restarted = re)
            });
            if restarted {
                tally.restarts += 1;
            }
        }
        // A limited actor out of restarts is replaced next round.
        if self.limited.as_ref().is_some_and(|l| !l.handle.is_alive()) {
            self.limited = None;
        }
        for s in &r.steps {
            let l = &mut self.ledger;
            let kills = killed.len() as u64;
            let mut replayed = 0;
            cx.get(tally, "ledger step", nothing, s, |v| {
                let (count, sum) = (v.0.to_native(), v.1.to_native());
                if l.recent.len() == 8 {
                    l.recent.pop_front();
                }
                l.recent.push_back(count);
                if count <= l.last {
                    return Err(format!(
                        "count {count} after {} (the last counts: {:?}; ranks lost: {killed:?}; \
                         the actor is on rank {}): the ledger went back (its calls ran out \
                         of order, or a state it had checkpointed was lost)",
                        l.last,
                        l.recent,
                        l.handle.actor_rank()
                    ));
                }
                // A call in flight when the actor's rank was lost is sent
                // again; if its checkpoint was written, it counts twice.
                if count > l.last + 1 && kills == 0 {
                    return Err(format!("count {count} after {} with no rank lost", l.last));
                }
                if count > l.submitted + 2 * kills {
                    return Err(format!("count {count} after {} calls", l.submitted));
                }
                if sum != l.sums.at(count) {
                    return Err(format!("count {count} with a damaged sum {sum}"));
                }
                replayed = count - l.last - 1;
                l.last = count;
                Ok(())
            });
            tally.replayed += replayed;
        }
        for (m, seed, len) in &r.made {
            cx.get(tally, "put on an actor's rank", MayLose::Put, m, |v| {
                same_block(v.as_slice(), *seed, *len)
            });
        }
        for (p, seed, len) in &r.puts {
            cx.get(tally, "put", nothing, p, |v| {
                same_block(v.as_slice(), *seed, *len)
            });
        }
        for (d, want) in &r.digests {
            cx.get(tally, "digest", nothing, d, |v| equal(&**v, want));
        }
    }
}

/// Runs one world until fewer than two ranks live or the time is up.
fn loopback_world(
    rt: Runtime,
    world: &World,
    a: &LoopbackArgs,
    tally: &mut Tally,
    rng: &mut Rng,
    deadline: Instant,
) -> ferry::Result<()> {
    let alive: Vec<u32> = (1..a.ranks).collect();
    let start = rng.next();
    let steady = Acc::options()
        .on_rank(rng.pick(&alive))
        .max_restarts(-1)
        .max_task_retries(-1)
        .remote(&rt, start)?;
    let ledger = Ledger::options()
        .name("ledger")
        .checkpoint_every(1)
        .on_rank(rng.pick(&alive))
        .max_restarts(-1)
        .max_task_retries(-1)
        .remote(&rt)?;
    let mut w = WorldSoak {
        rt,
        world,
        ranks: a.ranks,
        alive,
        killed: Vec::new(),
        next_kill: Instant::now() + Duration::from_secs_f64(a.kill_every),
        kill_every: Duration::from_secs_f64(a.kill_every),
        timeout: Duration::from_secs_f64(a.get_timeout),
        steady: Tracked::new(steady, start, MayLose::Nothing),
        limited: None,
        ledger: LedgerTrack {
            handle: ledger,
            sums: LedgerSums::new(),
            submitted: 0,
            last: 0,
            recent: Default::default(),
        },
        round: 0,
    };
    while !w.alive.is_empty() && Instant::now() < deadline {
        w.round(tally, rng)?;
    }
    Ok(())
}

fn soak_loopback(a: &LoopbackArgs) -> ExitCode {
    let valid = (|| {
        if !(2..=64).contains(&a.ranks) {
            return Err(format!(
                "--ranks {}: give 2 to 64 (rank 0 drives, the others are killed)",
                a.ranks
            ));
        }
        let run = seconds("minutes", a.minutes, 0.001, 10_000.0)?.as_secs_f64() * 60.0;
        seconds("kill-every", a.kill_every, 0.01, 86_400.0)?;
        seconds("get-timeout", a.get_timeout, 1.0, 86_400.0)?;
        Ok(Duration::from_secs_f64(run))
    })();
    let run = match valid {
        Ok(d) => d,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let ckpt = std::env::temp_dir().join(format!("ferry-soak-{}", std::process::id()));
    if let Err(e) = private_dir(&ckpt) {
        eprintln!("soak: {}: {e}", ckpt.display());
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let deadline = started + run;
    let mut tally = Tally::default();
    watchdog(
        tally.progress.clone(),
        Duration::from_secs_f64(a.get_timeout) + Duration::from_secs(60),
    );
    let mut rng = Rng(a.seed);
    while Instant::now() < deadline {
        tally.worlds += 1;
        let cfg = Config::default()
            .num_cpus(2.0)
            .object_store_memory(STORE_BYTES)
            .checkpoint_dir(&ckpt)
            .job_id(format!("soak-{}-w{}", std::process::id(), tally.worlds));
        let worlds = tally.worlds;
        let out = ferry::loopback::run(a.ranks, cfg, |rt, world| {
            loopback_world(rt, world, a, &mut tally, &mut rng, deadline)
        });
        // A world ends its ranks before it returns: the next starts afresh.
        tally.progress.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = out.and_then(|r| r) {
            tally.fail(format!("world {worlds}: {e}"));
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&ckpt);
    println!(
        "soak: {} results checked, {} wrong, {}, {} ranks killed, {} worlds, {:.1} s",
        tally.checked,
        tally.wrong,
        tally.lost_summary(),
        tally.kills,
        tally.worlds,
        started.elapsed().as_secs_f64()
    );
    println!(
        "soak: {} objects read after their owner was lost (rebuilt from lineage), \
         {} actor re-creations seen, {} ledger calls applied twice (sent again after a loss)",
        tally.rebuilt_reads, tally.restarts, tally.replayed
    );
    for (why, (_, example)) in &tally.lost {
        println!("soak: reported lost, {why}, e.g.: {example}");
    }
    verdict(&tally)
}

fn verdict(tally: &Tally) -> ExitCode {
    if tally.wrong == 0 {
        println!("soak: PASS");
        ExitCode::SUCCESS
    } else {
        for f in &tally.failures {
            eprintln!("soak: failure: {f}");
        }
        println!("soak: FAIL ({} failures)", tally.wrong);
        ExitCode::FAILURE
    }
}

/// Creates `dir` (and its parents) for this user only.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

// ---------------------------------------------------------------------------
// MPI mode.

/// What one job leaves for the next: the count it saw acknowledged (a
/// checkpoint held it before the job saw it), and its settings.
#[derive(Debug, PartialEq, Eq)]
struct Ack {
    count: u64,
    every: u64,
    batch: u64,
}

impl Ack {
    fn read(path: &Path) -> Result<Option<Ack>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut fields = BTreeMap::new();
        for part in text.split_whitespace() {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{}: {part:?} is not key=value", path.display()))?;
            let v: u64 = v
                .parse()
                .map_err(|_| format!("{}: {part:?} is not a number", path.display()))?;
            fields.insert(k, v);
        }
        let field = |k: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| format!("{}: no {k}= in {text:?}", path.display()))
        };
        Ok(Some(Ack {
            count: field("ack")?,
            every: field("every")?,
            batch: field("batch")?,
        }))
    }

    /// Written whole (a temporary file, then a rename): a job killed while
    /// writing leaves the previous one.
    fn write(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("tmp");
        let text = format!(
            "ack={} every={} batch={}\n",
            self.count, self.every, self.batch
        );
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Ledger calls in flight at once.
const BATCH: u64 = 4;

fn soak_mpi(a: &MpiArgs) -> ExitCode {
    let valid = (|| {
        let run = seconds("minutes", a.minutes, 0.001, 10_000.0)?.as_secs_f64() * 60.0;
        seconds("get-timeout", a.get_timeout, 1.0, 86_400.0)?;
        if a.checkpoint_every == 0 || a.checkpoint_every > 1_000_000 {
            return Err(format!(
                "--checkpoint-every {}: give 1 to 1000000",
                a.checkpoint_every
            ));
        }
        Ok(Duration::from_secs_f64(run))
    })();
    let run = match valid {
        Ok(d) => d,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    // Before `init`: under MPI, ranks other than 0 serve inside it until
    // the job ends.
    if let Some(dir) = &a.pid_dir {
        match ferry::parts::launcher::discover() {
            Ok(w) => {
                let path = dir.join(format!("rank{}.pid", w.rank));
                if let Err(e) = std::fs::write(&path, format!("{}\n", std::process::id())) {
                    eprintln!("soak: rank {}: {}: {e}", w.rank, path.display());
                }
            }
            Err(e) => eprintln!("soak: no pid file: {e}"),
        }
    }
    let rt = match Config::from_env().and_then(ferry::init) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Under MPI only rank 0 returns from `init`; this is for a runtime that
    // hands every rank back.
    if rt.rank() != 0 {
        return match rt.serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("soak: rank {}: {e}", rt.rank());
                ExitCode::FAILURE
            }
        };
    }
    let started = Instant::now();
    let mut tally = Tally::default();
    watchdog(
        tally.progress.clone(),
        Duration::from_secs_f64(a.get_timeout) + Duration::from_secs(60),
    );
    let line = mpi_body(&rt, a, started + run, &mut tally);
    if let Err(e) = rt.shutdown() {
        tally.fail(format!("shutdown: {e}"));
    }
    match line {
        Ok(line) => println!(
            "soak mpi: {} results checked, {} wrong, {line}, {} ranks, {:.1} s",
            tally.checked,
            tally.wrong,
            rt.world_size(),
            started.elapsed().as_secs_f64()
        ),
        Err(e) => tally.fail(e),
    }
    verdict(&tally)
}

/// Rank 0's part of an MPI job; the ledger's part of the summary line.
fn mpi_body(
    rt: &Runtime,
    a: &MpiArgs,
    deadline: Instant,
    tally: &mut Tally,
) -> Result<String, String> {
    let ws = rt.world_size();
    if !cfg!(feature = "mpi") {
        println!("soak mpi: built without --features mpi: one rank");
    }
    let state = a
        .state
        .clone()
        .unwrap_or_else(|| rt.checkpoint_dir().join("soak-ack"));
    let before = Ack::read(&state)?;
    let cx = Ctx {
        rt,
        timeout: Duration::from_secs_f64(a.get_timeout),
        killed: &[],
    };
    let nothing = MayLose::Nothing;
    let mut rng = Rng(a.seed);
    // The ledger lives on the last rank: not the driver's.
    let host = ws - 1;
    let ledger = Ledger::options()
        .name("soak-ledger")
        .checkpoint_every(a.checkpoint_every)
        .on_rank(host)
        .remote(rt)
        .map_err(|e| format!("creating the ledger on rank {host}: {e}"))?;
    let mut sums = LedgerSums::new();
    let mut last: Option<u64> = None;
    let mut restored_at = None;
    let mut ack = Ack {
        count: before.as_ref().map_or(0, |b| b.count),
        every: a.checkpoint_every,
        batch: BATCH,
    };
    while Instant::now() < deadline {
        // Tasks on every rank.
        let works: Vec<_> = (0..2 * ws)
            .filter_map(|i| {
                let x = rng.next();
                let w = work::options().on_rank(i % ws).remote(rt, x, 0);
                cx.go_on(tally, "submit work", nothing, w)
                    .map(|w| (w, mix(x)))
            })
            .collect();
        // Nested tasks and a put on some rank, their objects read here.
        let (seed, lens) = (rng.next() >> 8, vec![rng.size(), rng.size()]);
        let fan = fan_out::options()
            .on_rank(rng.below(u64::from(ws)) as u32)
            .remote(rt, seed, lens.clone());
        let fan = cx.go_on(tally, "submit fan_out", nothing, fan);
        // A put here, read here and by a task on some rank.
        let (pseed, plen) = (rng.next() >> 8, rng.size());
        let p = cx.go_on(tally, "put", nothing, rt.put(&block(pseed, plen)));
        let d = p.as_ref().and_then(|p| {
            let d = digest::options()
                .on_rank(rng.below(u64::from(ws)) as u32)
                .remote(rt, p);
            cx.go_on(tally, "submit digest", nothing, d)
        });
        let steps: Vec<_> = (0..BATCH)
            .filter_map(|_| cx.go_on(tally, "submit step", nothing, ledger.step().remote()))
            .collect();

        for (w, want) in &works {
            cx.get(tally, "work", nothing, w, |v| equal(&**v, want));
        }
        if let Some(f) = fan {
            let got = rt.get_timeout(&f, cx.timeout);
            if let Some(v) = cx.go_on(tally, "fan_out", nothing, got) {
                tally.ok();
                for (i, (r, &len)) in v.iter().zip(&lens).enumerate() {
                    if let Some(r) = cx.go_on(tally, "fan_out ref", nothing, r.to_ref()) {
                        cx.get(tally, "nested object", nothing, &r, |v| {
                            same_block(v.as_slice(), seed + i as u64, len)
                        });
                    }
                }
            }
        }
        if let Some(p) = &p {
            cx.get(tally, "put", nothing, p, |v| {
                same_block(v.as_slice(), pseed, plen)
            });
        }
        if let Some(d) = &d {
            let want = digest_of(&block(pseed, plen));
            cx.get(tally, "digest", nothing, d, |v| equal(&**v, &want));
        }
        for s in &steps {
            let mut acked = false;
            let ok = cx.get(tally, "ledger step", nothing, s, |v| {
                let (count, sum) = (v.0.to_native(), v.1.to_native());
                if sum != sums.at(count) {
                    return Err(format!("count {count} with a damaged sum {sum}"));
                }
                match last {
                    Some(l) if count != l + 1 => {
                        return Err(format!("count {count} after {l} in one job"));
                    }
                    Some(_) => {}
                    None => {
                        // The job's first step: the ledger came back at
                        // count - 1.
                        let restored = count - 1;
                        restored_at = Some(restored);
                        last = Some(count);
                        check_restored(restored, before.as_ref())?;
                    }
                }
                last = Some(count);
                // Checkpointed before this result was handed over.
                acked = count.is_multiple_of(a.checkpoint_every);
                if acked {
                    ack.count = count;
                }
                Ok(())
            });
            if ok && acked {
                ack.write(&state)?;
            }
        }
    }
    // A checkpoint on request at the end: the next job starts from here.
    let written = ledger
        .checkpoint()
        .and_then(|r| rt.get_timeout(&r, cx.timeout).map(|v| v.to_native()));
    match (written, last) {
        (Ok(bytes), Some(l)) if bytes > 0 => {
            tally.ok();
            ack.count = l;
            ack.write(&state)?;
        }
        (Ok(bytes), _) => tally.fail(format!("checkpoint on request: {bytes} bytes")),
        (Err(e), _) => tally.fail(format!("checkpoint on request: {e}")),
    }
    for r in rt.restored_actors() {
        println!(
            "soak mpi: restored {} from {} (taken after {} calls)",
            r.name,
            r.path.display(),
            r.calls
        );
    }
    let restored = restored_at.map_or("never stepped".into(), |r| r.to_string());
    let before = before.map_or("nothing: first job".into(), |b| b.count.to_string());
    Ok(format!(
        "ledger restored at {restored} (the job before acknowledged {before}), \
         {} acknowledged now in {}",
        ack.count,
        state.display()
    ))
}

/// The ledger came back at `restored`: no older than what the job before
/// saw acknowledged, and no newer than it could have reached.
fn check_restored(restored: u64, before: Option<&Ack>) -> Result<(), String> {
    let Some(b) = before else {
        return if restored == 0 {
            Ok(())
        } else {
            Err(format!(
                "the ledger came back at {restored}, but no job before acknowledged anything"
            ))
        };
    };
    if restored < b.count {
        return Err(format!(
            "the ledger came back at {restored}, older than the {} the job before saw \
             acknowledged: a checkpoint was lost or stale",
            b.count
        ));
    }
    // The job before may have been killed after its last acknowledgement:
    // its actor ran at most a batch past what it saw, which was less than
    // a checkpoint interval past what it acknowledged, plus one interval
    // if it died between seeing and writing the acknowledgement.
    let most = b.count + 2 * b.every + b.batch;
    if restored > most {
        return Err(format!(
            "the ledger came back at {restored}, past the {most} the job before could have reached"
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.mode {
        Some(Mode::Loopback(a)) => soak_loopback(&a),
        Some(Mode::Mpi(a)) => soak_mpi(&a),
        None => soak_loopback(&cli.loopback),
    }
}
