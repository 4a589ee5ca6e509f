//! File reads and writes straight between files and store memory:
//! io_uring, with a `pread`/`pwrite` fallback.
//!
//! [`read_exact_at`] fills a buffer (normally a fresh arena block) from a
//! file; [`run`] carries out a batch of reads and writes (the spiller's
//! objects), several requests in flight on one ring. Where io_uring is not
//! allowed (a seccomp profile such as Docker's default, the
//! `kernel.io_uring_disabled` sysctl, an old kernel) or `FERRY_IO_URING=0`
//! asks, plain `pread`/`pwrite` do the work, and the log says so once.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Once;

use io_uring::{IoUring, opcode, types};

/// Requests in flight at most (the ring's size).
const DEPTH: usize = 32;

/// How a batch is cut into requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Bytes per request: larger transfers are split.
    chunk: usize,
    /// Bytes in flight at most.
    in_flight: usize,
}

impl Shape {
    /// Through the page cache: two requests of 16 MiB (more in flight
    /// defeats the readahead of a sequential read, measured on the
    /// development VM: 8 x 4 MiB read 0.57-0.85 of `cat`, 2 x 16 MiB
    /// 0.88-1.05).
    pub(crate) const BUFFERED: Shape = Shape {
        chunk: 16 << 20,
        in_flight: 32 << 20,
    };

    /// Direct I/O: no readahead to keep, so more requests in flight (4 x
    /// 16 MiB; 8 x 4 MiB and 16 x 1 MiB measured no better on the
    /// development VM's virtio disk, within its large run-to-run noise).
    pub(crate) const DIRECT: Shape = Shape {
        chunk: 16 << 20,
        in_flight: 64 << 20,
    };
}

/// How an I/O was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoPath {
    /// Through io_uring.
    IoUring,
    /// With `pread` / `pwrite` (io_uring refused or switched off).
    Pread,
}

/// One transfer of a batch given to [`run`].
#[derive(Debug)]
pub(crate) struct Op<'a> {
    pub(crate) file: &'a File,
    pub(crate) offset: u64,
    pub(crate) buf: Buf<'a>,
}

/// Which way an [`Op`] moves bytes.
#[derive(Debug)]
pub(crate) enum Buf<'a> {
    /// File to memory.
    Read(&'a mut [u8]),
    /// Memory to file.
    Write(&'a [u8]),
}

impl Buf<'_> {
    fn len(&self) -> usize {
        match self {
            Buf::Read(b) => b.len(),
            Buf::Write(b) => b.len(),
        }
    }
}

static FALLBACK_SAID: Once = Once::new();

fn uring_wanted() -> bool {
    std::env::var("FERRY_IO_URING").map_or(true, |v| v != "0")
}

thread_local! {
    /// Each thread's ring, made on first use and kept: setting one up costs
    /// a few system calls, too much for every spilled object.
    static RING: RefCell<Option<IoUring>> = const { RefCell::new(None) };
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
    run(&mut [Op {
        file,
        offset,
        buf: Buf::Read(dst),
    }])
}

/// Writes all of `src` into `file` at `offset` (through io_uring where the
/// system allows, else `pwrite`).
///
/// # Errors
///
/// The OS error of a failed write; `WriteZero` when a write makes no
/// progress.
///
/// ```
/// let path = std::env::temp_dir().join(format!("ferry-doc-write-{}", std::process::id()));
/// let file = std::fs::File::create(&path)?;
/// ferry_store::write_all_at(&file, 0, b"hello, disk")?;
/// assert_eq!(std::fs::read(&path)?, b"hello, disk");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_all_at(file: &File, offset: u64, src: &[u8]) -> io::Result<IoPath> {
    run(&mut [Op {
        file,
        offset,
        buf: Buf::Write(src),
    }])
}

/// Carries out every transfer of `ops` completely (short transfers are
/// resumed), on this thread's io_uring or with `pread`/`pwrite`.
///
/// # Errors
///
/// The first OS error; `UnexpectedEof` when a file ends before a read is
/// complete, `WriteZero` when a write makes no progress. Every request has
/// completed when this returns, failed or not.
pub(crate) fn run(ops: &mut [Op<'_>]) -> io::Result<IoPath> {
    run_shaped(ops, Shape::BUFFERED)
}

/// [`run`], with requests cut as `shape` says.
pub(crate) fn run_shaped(ops: &mut [Op<'_>], shape: Shape) -> io::Result<IoPath> {
    if ops.iter().all(|o| o.buf.len() == 0) {
        return Ok(IoPath::Pread);
    }
    if uring_wanted() {
        let done = RING.with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return None;
            };
            if slot.is_none() {
                match IoUring::new(DEPTH as u32) {
                    Ok(r) => *slot = Some(r),
                    Err(e) => {
                        FALLBACK_SAID.call_once(|| {
                            tracing::info!(
                                "io_uring is not available here ({e}); \
                                 file and spill I/O use pread/pwrite"
                            );
                        });
                        return None;
                    }
                }
            }
            let r = slot.as_mut().map(|ring| uring_run(ring, ops, shape));
            if matches!(r, Some(Err(_))) {
                // A fresh ring next time: nothing of a failed batch lingers.
                *slot = None;
            }
            r
        });
        if let Some(r) = done {
            return r.map(|()| IoPath::IoUring);
        }
    }
    for op in ops.iter_mut() {
        match &mut op.buf {
            Buf::Read(b) => op.file.read_exact_at(b, op.offset)?,
            Buf::Write(b) => op.file.write_all_at(b, op.offset)?,
        }
    }
    Ok(IoPath::Pread)
}

/// `user_data` of a cancellation request (slots are numbered below DEPTH).
const CANCEL: u64 = u64::MAX;

/// Whether a failed `io_uring_enter` is worth trying again: interrupted
/// (`EINTR`), or the kernel short of room or memory for a moment (`EBUSY`,
/// `EAGAIN`). Anything else means a broken ring.
fn retryable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
    )
}

/// One outstanding request: which op, and the part of its buffer.
#[derive(Clone, Copy)]
struct Pending {
    op: usize,
    at: usize,
    len: usize,
}

/// The requests of one batch that the kernel may still be working on.
///
/// # Protocol
///
/// Every request points into a buffer of the batch, which its caller frees
/// (or hands to another object) as soon as [`uring_run`] returns. So
/// `uring_run` returns only once no request is left in the kernel, on every
/// path:
///
/// 1. Requests are queued, submitted and reaped; a short transfer is queued
///    again for the rest.
/// 2. On the first failure (an error completion, a full queue) nothing new
///    is queued, and every request still out is cancelled
///    (`IORING_OP_ASYNC_CANCEL`): a request that waits (a pipe, a socket)
///    then completes at once with `ECANCELED`; one already running on a
///    file completes as it would have. The batch returns when the last has
///    been reaped.
/// 3. If the kernel refuses `io_uring_enter` itself (a broken ring, never
///    seen in practice), the requests it never took (still in the
///    submission queue) are dropped with the ring, and those it took are
///    waited for by watching the completion queue, which the kernel fills
///    without being entered. The ring is then discarded by the caller.
struct Flight {
    /// By slot: the request the kernel may hold (its `user_data` is the
    /// slot's index).
    slots: Vec<Option<Pending>>,
    /// Requests out: the `Some`s of `slots`.
    count: usize,
    /// Bytes they move.
    bytes: usize,
    /// `user_data` of the entries pushed onto the submission queue and not
    /// yet consumed by the kernel, oldest first (it consumes in order).
    unsubmitted: std::collections::VecDeque<u64>,
    failure: Option<io::Error>,
    /// Cancellations were queued for the requests out at the failure.
    cancelled: bool,
}

impl Flight {
    fn new() -> Flight {
        Flight {
            slots: vec![None; DEPTH],
            count: 0,
            bytes: 0,
            unsubmitted: std::collections::VecDeque::new(),
            failure: None,
            cancelled: false,
        }
    }

    fn fail(&mut self, e: io::Error) {
        self.failure.get_or_insert(e);
    }

    fn took(&mut self, slot: usize, p: Pending) {
        self.slots[slot] = Some(p);
        self.count += 1;
        self.bytes += p.len;
        self.unsubmitted.push_back(slot as u64);
    }

    fn done(&mut self, slot: usize) -> Option<Pending> {
        let p = self.slots.get_mut(slot).and_then(Option::take)?;
        self.count -= 1;
        self.bytes -= p.len;
        Some(p)
    }

    /// The kernel consumed submission entries: forget the oldest ones.
    fn consumed(&mut self, ring: &mut IoUring) {
        let left = ring.submission().len();
        while self.unsubmitted.len() > left {
            self.unsubmitted.pop_front();
        }
    }

    /// Queues a cancellation of every request out (best effort: a full
    /// submission queue leaves the rest to complete on their own).
    fn cancel_all(&mut self, ring: &mut IoUring) {
        self.cancelled = true;
        let out: Vec<usize> = (0..DEPTH).filter(|&s| self.slots[s].is_some()).collect();
        for slot in out {
            let entry = opcode::AsyncCancel::new(slot as u64)
                .build()
                .user_data(CANCEL);
            // SAFETY: a cancellation points at no memory; it names its
            // target by `user_data` only.
            if unsafe { ring.submission().push(&entry) }.is_err() {
                break;
            }
            self.unsubmitted.push_back(CANCEL);
        }
    }

    /// Step 3: the kernel refused to be entered. Drops the requests it never
    /// took and waits, without entering it, for those it did.
    fn wait_without_entering(&mut self, ring: &mut IoUring, e: io::Error) {
        tracing::warn!("io_uring_enter failed with requests in flight ({e}); waiting for them");
        self.fail(e);
        self.consumed(ring);
        // Never taken by the kernel, never will be (the ring is discarded):
        // no request refers to their buffers.
        for user_data in std::mem::take(&mut self.unsubmitted) {
            if user_data != CANCEL {
                self.done(user_data as usize);
            }
        }
        let mut idle = 0u32;
        while self.count > 0 {
            let done: Vec<u64> = ring.completion().map(|c| c.user_data()).collect();
            if done.is_empty() {
                // Completions are posted as the kernel finishes the work;
                // each return from a system call lets it do so.
                idle += 1;
                if idle < 64 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            for user_data in done {
                if user_data != CANCEL {
                    self.done(user_data as usize);
                }
            }
        }
    }
}

fn uring_run(ring: &mut IoUring, ops: &mut [Op<'_>], shape: Shape) -> io::Result<()> {
    // Raw views of every buffer, taken once: the requests refer to them
    // while `ops` stays exclusively borrowed by this function.
    let bufs: Vec<(types::Fd, u64, *mut u8, usize, bool)> = ops
        .iter_mut()
        .map(|o| {
            let fd = types::Fd(o.file.as_raw_fd());
            match &mut o.buf {
                Buf::Read(b) => (fd, o.offset, b.as_mut_ptr(), b.len(), false),
                Buf::Write(b) => (fd, o.offset, b.as_ptr().cast_mut(), b.len(), true),
            }
        })
        .collect();
    let queue = |ring: &mut IoUring, slot: usize, p: Pending| -> io::Result<()> {
        let (fd, offset, base, _, write) = bufs[p.op];
        // `p.at + p.len <= len`, so the pointer stays inside the buffer.
        let ptr = base.wrapping_add(p.at);
        let entry = if write {
            opcode::Write::new(fd, ptr, p.len as u32)
                .offset(offset + p.at as u64)
                .build()
        } else {
            opcode::Read::new(fd, ptr, p.len as u32)
                .offset(offset + p.at as u64)
                .build()
        }
        .user_data(slot as u64);
        // SAFETY: the entry points into a buffer of `ops`, which is
        // exclusively borrowed for this whole function and outlives every
        // request: the function returns only after each request the kernel
        // took has completed, on every path (see `Flight`), and each file
        // descriptor stays open as its file is borrowed. A write only reads
        // its buffer, which is borrowed shared and not changed.
        unsafe { ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))
    };
    let mut next_op = 0usize;
    let mut next_at = 0usize;
    let mut f = Flight::new();
    loop {
        while f.failure.is_none()
            && f.count < DEPTH
            && f.bytes < shape.in_flight
            && next_op < bufs.len()
        {
            let total = bufs[next_op].3;
            if next_at >= total {
                next_op += 1;
                next_at = 0;
                continue;
            }
            let len = shape.chunk.min(total - next_at);
            let slot = f.slots.iter().position(Option::is_none).unwrap_or(0);
            let p = Pending {
                op: next_op,
                at: next_at,
                len,
            };
            if let Err(e) = queue(ring, slot, p) {
                // Nothing was queued; drain what is in flight, then fail.
                f.fail(e);
                break;
            }
            f.took(slot, p);
            next_at += len;
        }
        if f.count == 0 {
            return f.failure.map_or(Ok(()), Err);
        }
        if f.failure.is_some() && !f.cancelled {
            f.cancel_all(ring);
        }
        // Submits what is queued and waits for one completion.
        let entered = loop {
            match ring.submit_and_wait(1) {
                Err(e) if retryable(&e) => {
                    f.consumed(ring);
                    std::thread::yield_now();
                }
                other => break other,
            }
        };
        if let Err(e) = entered {
            f.wait_without_entering(ring, e);
            return f.failure.map_or(Ok(()), Err);
        }
        f.consumed(ring);
        let done: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (slot, res) in done {
            if slot == CANCEL {
                continue;
            }
            let slot = slot as usize;
            let Some(p) = f.done(slot) else {
                continue;
            };
            if f.failure.is_some() {
                continue;
            }
            let (_, offset, _, total, write) = bufs[p.op];
            if res < 0 {
                f.fail(io::Error::from_raw_os_error(-res));
            } else if res == 0 {
                f.fail(if write {
                    io::Error::new(io::ErrorKind::WriteZero, "a write made no progress")
                } else {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the file ends at byte {} of the {total} asked for",
                            offset + p.at as u64
                        ),
                    )
                });
            } else if (res as usize) < p.len {
                // A short transfer: ask for the rest.
                let rest = Pending {
                    op: p.op,
                    at: p.at + res as usize,
                    len: p.len - res as usize,
                };
                match queue(ring, slot, rest) {
                    Ok(()) => f.took(slot, rest),
                    Err(e) => f.fail(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    use std::time::Duration;

    fn pipe() -> (File, File) {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a live array of two ints for pipe2 to fill.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
        // SAFETY: pipe2 succeeded: both descriptors are open and owned by
        // nobody else.
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn a_failed_request_cancels_the_others_and_returns_once_they_are_reaped() {
        let mut ring = match IoUring::new(DEPTH as u32) {
            Ok(r) => r,
            Err(e) => {
                println!("skipped: io_uring is not available here ({e})");
                return;
            }
        };
        let (rx, mut tx) = pipe();
        let path = std::env::temp_dir().join(format!("ferry-fileio-cancel-{}", std::process::id()));
        std::fs::write(&path, b"read only").unwrap();
        let read_only = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut waiting = [0u8; 16];
            let data = [7u8; 16];
            // A read from an empty pipe waits for data that never comes; the
            // write to a read-only file fails at once.
            let r = uring_run(
                &mut ring,
                &mut [
                    Op {
                        file: &rx,
                        offset: u64::MAX, // the pipe's own position
                        buf: Buf::Read(&mut waiting),
                    },
                    Op {
                        file: &read_only,
                        offset: 0,
                        buf: Buf::Write(&data),
                    },
                ],
                Shape::BUFFERED,
            );
            let _ = done_tx.send((r, waiting, rx));
        });
        // Only a hang (the waiting read never cancelled) runs into this bound.
        let (r, waiting, mut rx) = done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the batch returned: the failed write cancelled the waiting read");
        let err = r.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        assert_eq!(waiting, [0u8; 16], "the cancelled read wrote nothing");
        // The read is gone from the kernel: what the pipe gets now stays
        // there for a plain read.
        tx.write_all(b"after").unwrap();
        let mut got = [0u8; 5];
        rx.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"after");
    }
}
