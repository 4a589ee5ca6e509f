//! `ferry bench`'s file-loading measurement: `put_file` of a large file
//! beside `cat FILE > /dev/null` of the same file, each from a cold-ish page
//! cache (the file's pages dropped with `posix_fadvise(DONTNEED)` before
//! every read), in the same run.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use ferry::Runtime;

use super::runner::Runner;
use super::timeit::{median, say};

/// Drops the file's pages from the page cache (after writing them back).
fn evict(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    file.sync_all()?;
    // SAFETY: fadvise on a descriptor we own; it only advises the kernel.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

fn write_file(path: &Path, bytes: usize) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let chunk: Vec<u8> = (0..1 << 20).map(|i: usize| (i % 251) as u8).collect();
    for _ in 0..bytes / chunk.len() {
        file.write_all(&chunk)?;
    }
    file.sync_all()
}

/// Runs the measurement when the filter wants "put file".
pub(crate) fn run(rt: &Runtime, r: &mut Runner<'_>, quick: bool) -> ferry::Result<()> {
    if !r.wants_printed("put file") {
        return Ok(());
    }
    let bytes: usize = if quick { 64 << 20 } else { 1 << 30 };
    let capacity = rt.rank_resources().get("object_store_memory").copied();
    if capacity.is_some_and(|c| (c as usize) < bytes + (16 << 20)) {
        say(&format!(
            "put file: skipped: the store ({:.0} MiB) is smaller than the {} MiB file",
            capacity.unwrap_or(0.0) / 1048576.0,
            bytes >> 20
        ));
        return Ok(());
    }
    let path: PathBuf =
        std::env::temp_dir().join(format!("ferry-bench-file-{}", std::process::id()));
    let io = |e: std::io::Error| ferry::Error::Init(format!("put file bench: {e}"));
    write_file(&path, bytes).map_err(io)?;
    let runs = 3;
    let (mut ferry_s, mut cat_s) = (Vec::new(), Vec::new());
    let result = (|| {
        for _ in 0..runs {
            evict(&path).map_err(io)?;
            let t = Instant::now();
            let obj = rt.put_file(&path)?;
            ferry_s.push(t.elapsed().as_secs_f64());
            drop(obj);
            evict(&path).map_err(io)?;
            let t = Instant::now();
            let status = Command::new("cat")
                .arg(&path)
                .stdout(Stdio::null())
                .status()
                .map_err(io)?;
            cat_s.push(t.elapsed().as_secs_f64());
            if !status.success() {
                return Err(ferry::Error::Init("put file bench: cat failed".into()));
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&path);
    result?;
    let (f, c) = (median(ferry_s), median(cat_s));
    let gbs = |s: f64| bytes as f64 / s / 1e9;
    say(&format!(
        "put file: {} MiB from {} (page cache dropped before each read), medians of {runs}: \
         put_file {:.2} GB/s, cat > /dev/null {:.2} GB/s, put_file/cat {:.2}",
        bytes >> 20,
        std::env::temp_dir().display(),
        gbs(f),
        gbs(c),
        c / f
    ));
    Ok(())
}
