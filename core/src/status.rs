//! The status file: rank 0 writes the job's state listings as tables to a
//! file at an interval and whenever the process gets `SIGUSR1`
//! (`Config::status_file`). The file is written under a temporary name and
//! renamed into place, so a reader never sees half of it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::runtime::{Inner, Runtime};

/// Set by the `SIGUSR1` handler; the status thread takes it.
static ASKED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    ASKED.store(true, Ordering::Relaxed);
}

/// Installs the `SIGUSR1` handler (once per process).
fn catch_usr1() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid empty one; the handler
        // only stores to an atomic, which is async-signal-safe; SA_RESTART
        // keeps interrupted system calls of other threads going.
        let installed = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut())
        };
        if installed != 0 {
            tracing::warn!(
                "status: could not catch SIGUSR1 ({}); the file is written at its interval only",
                std::io::Error::last_os_error()
            );
        }
    });
}

/// Writes `text` to `path` whole (temporary name, then rename).
pub(crate) fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Starts rank 0's status thread: it writes the tables every `every` and
/// on `SIGUSR1` until the runtime shuts down.
pub(crate) fn start(inner: &Arc<Inner>, path: PathBuf, every: Duration) {
    catch_usr1();
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new()
        .name("ferry-status".into())
        .spawn(move || {
            let mut next = Instant::now();
            let mut warned = false;
            loop {
                std::thread::sleep(Duration::from_millis(50).min(every));
                let Some(inner) = weak.upgrade() else { return };
                if inner.is_shut() {
                    return;
                }
                let asked = ASKED.swap(false, Ordering::Relaxed);
                if !asked && Instant::now() < next {
                    continue;
                }
                next = Instant::now() + every;
                let text = Runtime::from_inner(inner).state().to_string();
                if let Err(e) = write_whole(&path, &text)
                    && !warned
                {
                    warned = true;
                    tracing::warn!("status: cannot write {}: {e}", path.display());
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("status: could not start the status thread: {e}");
    }
}
