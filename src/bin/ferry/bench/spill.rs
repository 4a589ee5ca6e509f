//! `ferry bench`'s memory-pressure measurements:
//!
//! - `spill`: spilling objects of 1 MiB … 1 GiB to the spill directory and
//!   reading them back, beside `dd` with direct I/O writing and reading the
//!   same number of bytes in the same directory, in the same run;
//! - `million results`: the seed's anti-pattern (a million small results
//!   fetched with one `get_all`) in a child process whose store is capped at
//!   256 MiB, with its peak RSS.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry::Runtime;
use ferry::parts::store::{Arena, StoreConfig};

use super::runner::Runner;
use super::timeit::{median, say};

/// Set in the child process that runs the anti-pattern.
const CHILD: &str = "FERRY_BENCH_MILLION_CHILD";

fn bench_err(what: &str, e: impl std::fmt::Display) -> ferry::Error {
    ferry::Error::Init(format!("{what}: {e}"))
}

/// Seconds `dd` takes with these arguments.
fn dd(args: &[String]) -> ferry::Result<f64> {
    let t = Instant::now();
    let status = Command::new("dd")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| bench_err("spill bench: cannot run dd", e))?;
    let s = t.elapsed().as_secs_f64();
    if !status.success() {
        return Err(bench_err("spill bench", format!("dd {args:?} failed")));
    }
    Ok(s)
}

/// One size: seconds to spill and to restore `total` bytes in objects of
/// `size`, and for dd to write and read them, medians of `runs`.
fn one_size(root: &Path, size: usize, total: usize, runs: usize) -> ferry::Result<[f64; 4]> {
    let count = total / size;
    let mut cfg = StoreConfig::new(
        format!("bench-spill-{}-{size}", std::process::id()),
        0,
        total + (4 << 20),
    );
    cfg.spill_root = Some(root.to_path_buf());
    cfg.put_timeout = Duration::from_secs(30);
    let arena = Arena::create(&cfg).map_err(|e| bench_err("spill bench", e))?;
    let store = |e| bench_err("spill bench", e);
    let objects = (0..count)
        .map(|i| {
            let mut b = arena.alloc(size)?;
            b.fill(i as u8 | 1);
            Ok(arena.seal(b.freeze()))
        })
        .collect::<Result<Vec<_>, ferry::parts::store::StoreError>>()
        .map_err(store)?;
    let ddfile = arena
        .spill_dir()
        .map(|d| d.with_extension("dd"))
        .unwrap_or_else(|| root.join("ferry-bench.dd"));
    let bs = size.min(64 << 20);
    let dd_count = total / bs;
    let mut times: [Vec<f64>; 4] = Default::default();
    let of = format!("of={}", ddfile.display());
    let iff = format!("if={}", ddfile.display());
    let bs = format!("bs={bs}");
    let dd_count = format!("count={dd_count}");
    let dd_write = || {
        dd(&[
            "if=/dev/zero".into(),
            of.clone(),
            bs.clone(),
            dd_count.clone(),
            "oflag=direct".into(),
        ])
    };
    let dd_read = || {
        dd(&[
            iff.clone(),
            "of=/dev/null".into(),
            bs.clone(),
            dd_count.clone(),
            "iflag=direct".into(),
        ])
    };
    let spill = || -> ferry::Result<f64> {
        // Everything is idle: a block the size of all of it spills all.
        let t = Instant::now();
        let all = arena.alloc(total).map_err(store)?;
        let s = t.elapsed().as_secs_f64();
        drop(all);
        Ok(s)
    };
    let restore = || -> ferry::Result<f64> {
        let t = Instant::now();
        for o in &objects {
            drop(o.pin().map_err(store)?);
        }
        Ok(t.elapsed().as_secs_f64())
    };
    for run in 0..runs {
        // Who goes first alternates: the disk's write cache favours neither.
        if run % 2 == 0 {
            times[0].push(spill()?);
            times[2].push(dd_write()?);
            times[1].push(restore()?);
            times[3].push(dd_read()?);
        } else {
            times[2].push(dd_write()?);
            times[0].push(spill()?);
            times[3].push(dd_read()?);
            times[1].push(restore()?);
        }
        let _ = std::fs::remove_file(&ddfile);
    }
    let direct = arena.spill_stats().direct_objects > 0;
    drop(objects);
    drop(arena);
    if !direct && size >= 1 << 20 {
        say(&format!(
            "spill: note: {} refuses O_DIRECT, objects were spilled through the page cache",
            root.display()
        ));
    }
    Ok(times.map(median))
}

/// Runs the spill measurement when the filter wants "spill".
pub(crate) fn run(r: &mut Runner<'_>, quick: bool) -> ferry::Result<()> {
    if !r.wants_printed("spill") {
        return Ok(());
    }
    let root: PathBuf = std::env::var_os("FERRY_SPILL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let (sizes, floor, runs): (&[usize], usize, usize) = if quick {
        (&[1 << 20, 16 << 20], 32 << 20, 1)
    } else {
        (&[1 << 20, 16 << 20, 256 << 20, 1 << 30], 256 << 20, 5)
    };
    say(&format!(
        "spill: objects spilled to and read back from {} beside dd (direct I/O, same \
         bytes, same directory), medians of {runs}:",
        root.display()
    ));
    for &size in sizes {
        let total = size.max(floor);
        let progress =
            super::progress::Progress::start(&format!("spill {} MiB objects", size >> 20), 1);
        let [spill, restore, dd_w, dd_r] = one_size(&root, size, total, runs)?;
        progress.step();
        drop(progress);
        let gbs = |s: f64| total as f64 / s / 1e9;
        say(&format!(
            "spill {:>5} MiB objects ({} of them): spill {:.2} GB/s, dd write {:.2} GB/s, \
             spill/dd {:.2}; restore {:.2} GB/s, dd read {:.2} GB/s, restore/dd {:.2}",
            size >> 20,
            total / size,
            gbs(spill),
            gbs(dd_w),
            dd_w / spill,
            gbs(restore),
            gbs(dd_r),
            dd_r / restore
        ));
    }
    Ok(())
}

#[ferry::remote]
fn square(x: u64) -> u64 {
    x * x
}

/// The process's peak resident set (VmHWM), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs the anti-pattern when the filter wants "million results": here when
/// this is the child, else in a child with the store capped.
pub(crate) fn run_million(rt: &Runtime, r: &mut Runner<'_>, quick: bool) -> ferry::Result<()> {
    if !r.wants_printed("million results") {
        return Ok(());
    }
    let n: u64 = if quick { 100_000 } else { 1_000_000 };
    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().map_err(|e| bench_err("million results", e))?;
        let mut args = vec!["bench", "--filter", "million results"];
        if quick {
            args.push("--quick");
        }
        let status = Command::new(exe)
            .args(&args)
            .env(CHILD, "1")
            .env("FERRY_OBJECT_STORE_MEMORY", (256u64 << 20).to_string())
            .status()
            .map_err(|e| bench_err("million results", e))?;
        if !status.success() {
            return Err(bench_err("million results", format!("the child {status}")));
        }
        return Ok(());
    }
    let t = Instant::now();
    let refs = (0..n)
        .map(|i| square::remote(rt, i))
        .collect::<ferry::Result<Vec<_>>>()?;
    let submitted = t.elapsed().as_secs_f64();
    let views = rt.get_all(&refs)?;
    let sum: u128 = views.iter().map(|v| v.to_native() as u128).sum();
    let elapsed = t.elapsed().as_secs_f64();
    let n128 = n as u128;
    if sum != (n128 - 1) * n128 * (2 * n128 - 1) / 6 {
        return Err(bench_err("million results", "wrong sum"));
    }
    let used = rt.store_used();
    let stats = rt.spill_stats();
    drop(views);
    drop(refs);
    say(&format!(
        "million results: {n} tasks, all fetched with one get_all, store capped at 256 MiB: \
         {elapsed:.2} s ({submitted:.2} s to submit), {:.2} us/task, store {:.1} MiB in use at \
         the end, {} objects spilled, peak RSS {:.0} MiB",
        elapsed * 1e6 / n as f64,
        used as f64 / 1048576.0,
        stats.spilled_objects,
        peak_rss().unwrap_or(0) as f64 / 1048576.0
    ));
    Ok(())
}
