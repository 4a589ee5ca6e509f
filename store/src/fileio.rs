//! Reading files straight into store memory: io_uring, with a `pread`
//! fallback.
//!
//! [`read_exact_at`] fills a buffer (normally a fresh arena block) from a
//! file with several reads in flight through io_uring. Where io_uring is
//! not allowed (a seccomp profile such as Docker's default, the
//! `kernel.io_uring_disabled` sysctl, an old kernel) or
//! `FERRY_IO_URING=0` asks, it reads with plain `pread`, and says so once in
//! the log.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Once;

use io_uring::{IoUring, opcode, types};

/// Bytes per read request.
const CHUNK: usize = 16 << 20;
/// Read requests in flight.
const DEPTH: usize = 2;

/// How a read was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoPath {
    /// Through io_uring.
    IoUring,
    /// With `pread` (io_uring refused or switched off).
    Pread,
}

static FALLBACK_SAID: Once = Once::new();

fn uring_wanted() -> bool {
    std::env::var("FERRY_IO_URING").map_or(true, |v| v != "0")
}

/// Fills `dst` with the bytes of `file` from `offset` on.
///
/// # Errors
///
/// The OS error of a failed read; `UnexpectedEof` when the file ends
/// before `dst` is full.
///
/// ```
/// use std::io::Write;
/// let path = std::env::temp_dir().join(format!("ferry-doc-read-{}", std::process::id()));
/// std::fs::File::create(&path)?.write_all(b"hello, store")?;
/// let file = std::fs::File::open(&path)?;
/// let mut buf = [0u8; 5];
/// ferry_store::read_exact_at(&file, 7, &mut buf)?;
/// assert_eq!(&buf, b"store");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_exact_at(file: &File, offset: u64, dst: &mut [u8]) -> io::Result<IoPath> {
    if dst.is_empty() {
        return Ok(IoPath::Pread);
    }
    if uring_wanted() {
        match IoUring::new(DEPTH as u32) {
            Ok(ring) => return uring_read(ring, file, offset, dst).map(|()| IoPath::IoUring),
            Err(e) => FALLBACK_SAID.call_once(|| {
                tracing::info!("io_uring is not available here ({e}); reading files with pread");
            }),
        }
    }
    file.read_exact_at(dst, offset)?;
    Ok(IoPath::Pread)
}

/// Submits what is queued and waits for one completion, retrying on
/// interruptions (`EINTR`) and a full completion queue (`EBUSY`,
/// `EAGAIN`): the only failures `io_uring_enter` has with requests in
/// flight short of a broken ring.
fn submit_and_wait(ring: &IoUring) -> io::Result<usize> {
    loop {
        match ring.submit_and_wait(1) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
                ) =>
            {
                std::thread::yield_now();
            }
            other => return other,
        }
    }
}

/// One outstanding read: the part of `dst` it fills.
#[derive(Clone, Copy)]
struct Pending {
    at: usize,
    len: usize,
}

fn uring_read(mut ring: IoUring, file: &File, offset: u64, dst: &mut [u8]) -> io::Result<()> {
    let fd = types::Fd(file.as_raw_fd());
    let base = dst.as_mut_ptr();
    let total = dst.len();
    let mut next = 0usize;
    let mut slots: Vec<Option<Pending>> = vec![None; DEPTH];
    let mut in_flight = 0usize;
    let queue = |ring: &mut IoUring, slot: usize, p: Pending| -> io::Result<()> {
        // `p.at + p.len <= total`, so the pointer stays inside `dst`.
        let entry = opcode::Read::new(fd, base.wrapping_add(p.at), p.len as u32)
            .offset(offset + p.at as u64)
            .build()
            .user_data(slot as u64);
        // SAFETY: the entry points into `dst`, which is exclusively borrowed
        // for this whole function and outlives every request: the function
        // returns only after each queued request has completed (the error
        // paths drain what is in flight first), and the file descriptor stays
        // open as `file` is borrowed.
        unsafe { ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))
    };
    let mut failure: Option<io::Error> = None;
    loop {
        while failure.is_none() && in_flight < DEPTH && next < total {
            let len = CHUNK.min(total - next);
            let slot = slots.iter().position(Option::is_none).unwrap_or(0);
            let p = Pending { at: next, len };
            if let Err(e) = queue(&mut ring, slot, p) {
                // Nothing was queued; drain what is in flight, then fail.
                failure = Some(e);
                break;
            }
            slots[slot] = Some(p);
            in_flight += 1;
            next += len;
        }
        if in_flight == 0 {
            return failure.map_or(Ok(()), Err);
        }
        submit_and_wait(&ring)?;
        let done: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (slot, res) in done {
            let slot = slot as usize;
            let Some(p) = slots.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            in_flight -= 1;
            if failure.is_some() {
                continue;
            }
            if res < 0 {
                failure = Some(io::Error::from_raw_os_error(-res));
            } else if res == 0 {
                failure = Some(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file ends at byte {} of the {total} asked for",
                        offset + p.at as u64
                    ),
                ));
            } else if (res as usize) < p.len {
                // A short read: ask for the rest.
                let rest = Pending {
                    at: p.at + res as usize,
                    len: p.len - res as usize,
                };
                match queue(&mut ring, slot, rest) {
                    Ok(()) => {
                        slots[slot] = Some(rest);
                        in_flight += 1;
                    }
                    Err(e) => failure = Some(e),
                }
            }
        }
    }
}
