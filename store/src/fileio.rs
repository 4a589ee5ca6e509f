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

/// One outstanding request: which op, and the part of its buffer.
#[derive(Clone, Copy)]
struct Pending {
    op: usize,
    at: usize,
    len: usize,
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
        // request: the function returns only after each queued request has
        // completed (the error paths drain what is in flight first), and
        // each file descriptor stays open as its file is borrowed. A write
        // only reads its buffer, which is borrowed shared and not changed.
        unsafe { ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))
    };
    let mut next_op = 0usize;
    let mut next_at = 0usize;
    let mut slots: Vec<Option<Pending>> = vec![None; DEPTH];
    let mut in_flight = 0usize;
    let mut bytes_in_flight = 0usize;
    let mut failure: Option<io::Error> = None;
    loop {
        while failure.is_none()
            && in_flight < DEPTH
            && bytes_in_flight < shape.in_flight
            && next_op < bufs.len()
        {
            let total = bufs[next_op].3;
            if next_at >= total {
                next_op += 1;
                next_at = 0;
                continue;
            }
            let len = shape.chunk.min(total - next_at);
            let slot = slots.iter().position(Option::is_none).unwrap_or(0);
            let p = Pending {
                op: next_op,
                at: next_at,
                len,
            };
            if let Err(e) = queue(ring, slot, p) {
                // Nothing was queued; drain what is in flight, then fail.
                failure = Some(e);
                break;
            }
            slots[slot] = Some(p);
            in_flight += 1;
            bytes_in_flight += len;
            next_at += len;
        }
        if in_flight == 0 {
            return failure.map_or(Ok(()), Err);
        }
        submit_and_wait(ring)?;
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
            bytes_in_flight -= p.len;
            if failure.is_some() {
                continue;
            }
            let (_, offset, _, total, write) = bufs[p.op];
            if res < 0 {
                failure = Some(io::Error::from_raw_os_error(-res));
            } else if res == 0 {
                failure = Some(if write {
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
                    Ok(()) => {
                        slots[slot] = Some(rest);
                        in_flight += 1;
                        bytes_in_flight += rest.len;
                    }
                    Err(e) => failure = Some(e),
                }
            }
        }
    }
}
