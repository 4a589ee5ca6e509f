//! The status file: rank 0 writes the job's state listings as tables to a
//! file at an interval and whenever the process gets `SIGUSR1`
//! (`Config::status_file`). The file is written under a temporary name and
//! renamed into place, so a reader never sees half of it. Every rank
//! catches `SIGUSR1` ([`catch_usr1`]), so the signal never ends a job.

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

/// Installs the `SIGUSR1` handler, once per process. Every rank calls it
/// at start, whether it writes a status file or not: the default action of
/// `SIGUSR1` ends the process (leaving its shared memory behind), and a
/// `kill -USR1` meant for rank 0 (`ferry status --pid`) must never end a
/// job. Only rank 0's status thread acts on it. A handler the program
/// installed itself, or `SIG_IGN`, is left in place.
pub(crate) fn catch_usr1() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid empty one; the first call
        // only reads the current action into `old`; the handler installed
        // only stores to an atomic, which is async-signal-safe; SA_RESTART
        // keeps interrupted system calls of other threads going.
        let installed = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut old) != 0 {
                -1
            } else if old.sa_sigaction != libc::SIG_DFL {
                // The program's own handler (or SIG_IGN): not ours to replace.
                1
            } else {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut())
            }
        };
        match installed {
            0 => {}
            1 => tracing::info!(
                "status: SIGUSR1 is handled by the program; the status file is written at \
                 its interval only"
            ),
            _ => tracing::warn!(
                "status: could not catch SIGUSR1 ({}); a SIGUSR1 would end this process",
                std::io::Error::last_os_error()
            ),
        }
    });
}

/// Writes `text` to `path` whole: a temporary file made with
/// `O_EXCL | O_NOFOLLOW`, mode 0600, then renamed into place.
pub(crate) fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
    };
    let mut file = match create() {
        // Left by an earlier write of this process that failed half way.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&tmp)?;
            create()?
        }
        other => other?,
    };
    let written = file.write_all(text.as_bytes());
    drop(file);
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Starts rank 0's status thread: it writes the tables every `every` and
/// on `SIGUSR1` until the runtime shuts down.
pub(crate) fn start(inner: &Arc<Inner>, path: PathBuf, every: Duration) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new()
        .name("ferry-status".into())
        .spawn(move || {
            // `None`: no write is due before a SIGUSR1 (an interval past
            // what an `Instant` holds, as `Duration::MAX`).
            let mut next = Some(Instant::now());
            let mut warned = false;
            loop {
                std::thread::sleep(Duration::from_millis(50).min(every));
                let Some(inner) = weak.upgrade() else { return };
                if inner.is_shut() {
                    return;
                }
                let asked = ASKED.swap(false, Ordering::Relaxed);
                if !asked && next.is_none_or(|n| Instant::now() < n) {
                    continue;
                }
                next = crate::config::deadline_after(every);
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
