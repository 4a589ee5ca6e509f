//! Every `unsafe` line of the crate: raw copies out of [`Exposed`] memory
//! and, with feature `mpi`, the `mpi::ffi` calls rsmpi has no safe wrapper
//! for (the RMA window, non-blocking sends of owned buffers, reads into a
//! caller's buffer on the progress thread).

use crate::Exposed;

/// An owned, immutable byte buffer exposed as a region.
pub(crate) struct OwnedBytes {
    bytes: Box<[u8]>,
}

impl OwnedBytes {
    pub(crate) fn new(bytes: Box<[u8]>) -> OwnedBytes {
        OwnedBytes { bytes }
    }
}

// SAFETY: the boxed slice is owned, never written after construction and
// never moves while `self` lives (moving a `Box` does not move its heap
// allocation), so `base`/`len` are stable and the bytes stay readable with
// no concurrent writes.
unsafe impl Exposed for OwnedBytes {
    fn base(&self) -> *const u8 {
        self.bytes.as_ptr()
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// Copies `dst.len()` bytes at `offset` of `src` into `dst`.
///
/// # Panics
///
/// When `offset + dst.len() > src.len()` (callers check bounds first).
pub(crate) fn copy_out(src: &dyn Exposed, offset: usize, dst: &mut [u8]) {
    let end = offset.checked_add(dst.len()).expect("read range overflows");
    assert!(end <= src.len(), "read past the end of an exposed region");
    if dst.is_empty() {
        return;
    }
    // SAFETY: `Exposed` guarantees `base()..base()+len()` is mapped and
    // readable while `src` lives, and that the bytes being read are not
    // written concurrently; `offset..end` lies inside it (asserted above).
    // `dst` is a distinct `&mut` buffer of exactly `dst.len()` bytes, so the
    // ranges cannot overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(src.base().add(offset), dst.as_mut_ptr(), dst.len());
    }
}

#[cfg(feature = "mpi")]
pub(crate) use self::mpi_ffi::{
    MpiLock, PendingSend, ReadRequest, Serving, Window, abort_world, at_exit, serving,
};

#[cfg(feature = "mpi")]
mod mpi_ffi {
    use std::os::raw::{c_int, c_void};

    use crossbeam_channel::{Sender, bounded};
    use mpi::ffi;
    use mpi::raw::AsRaw;
    use mpi::topology::SimpleCommunicator;

    use crate::{Rank, Region, TransportError};

    /// `MPI_Abort` on `MPI_COMM_WORLD` with `code`: the launcher (`mpirun`,
    /// `srun`) ends every rank of the job. Called from whatever thread hit
    /// the fatal condition: MPI implementations accept `MPI_Abort` from any
    /// thread as a best effort, and nothing else may run afterwards, so the
    /// process exits here even if MPI returns.
    pub(crate) fn abort_world(code: c_int) -> ! {
        // SAFETY: MPI was initialized by this process's transport (callers
        // check); `RSMPI_COMM_WORLD` is a valid communicator handle for the
        // life of MPI. `MPI_Abort` takes no pointers.
        unsafe {
            ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, code);
        }
        std::process::exit(code)
    }

    /// Registers `hook` to run at process exit (`atexit`); false if the
    /// C library refused.
    pub(crate) fn at_exit(hook: extern "C" fn()) -> bool {
        // SAFETY: `hook` is a plain `extern "C" fn()` with no captured state,
        // valid for the life of the program.
        unsafe { libc::atexit(hook) == 0 }
    }

    /// Largest count handed to one MPI call (counts are `c_int`).
    const CHUNK: usize = 1 << 30;

    fn check(what: &str, code: c_int) -> Result<(), TransportError> {
        if code == ffi::MPI_SUCCESS as c_int {
            Ok(())
        } else {
            Err(TransportError::Mpi(format!(
                "{what} failed with error code {code}"
            )))
        }
    }

    /// `comm`'s error handler set to `MPI_ERRORS_RETURN` until dropped,
    /// when the one it had is put back.
    struct ReturnErrors {
        comm: ffi::MPI_Comm,
        before: Option<ffi::MPI_Errhandler>,
    }

    impl ReturnErrors {
        fn on(comm: &SimpleCommunicator) -> ReturnErrors {
            let comm = comm.as_raw();
            // SAFETY: an `MPI_Errhandler` is a plain handle (a pointer in
            // Open MPI, an integer in MPICH); all zeroes is a valid bit
            // pattern for it and is overwritten before it is read.
            let mut before: ffi::MPI_Errhandler = unsafe { std::mem::zeroed() };
            // SAFETY: `comm` is a live communicator and `before` a valid
            // out-pointer; `RSMPI_ERRORS_RETURN` is a predefined handler.
            let got = unsafe { ffi::MPI_Comm_get_errhandler(comm, &mut before) };
            if got != ffi::MPI_SUCCESS as c_int {
                return ReturnErrors { comm, before: None };
            }
            // SAFETY: as above.
            let set = unsafe { ffi::MPI_Comm_set_errhandler(comm, ffi::RSMPI_ERRORS_RETURN) };
            ReturnErrors {
                comm,
                before: (set == ffi::MPI_SUCCESS as c_int).then_some(before),
            }
        }
    }

    impl Drop for ReturnErrors {
        fn drop(&mut self) {
            if let Some(mut before) = self.before.take() {
                // SAFETY: `comm` is still live (the guard lives inside the
                // call that borrowed it) and `before` is the handler
                // `MPI_Comm_get_errhandler` gave, which this frees (the get
                // took a reference to it).
                unsafe {
                    ffi::MPI_Comm_set_errhandler(self.comm, before);
                    ffi::MPI_Errhandler_free(&mut before);
                }
            }
        }
    }

    /// A passive-target RMA window over this rank's [`Region`], locked
    /// (shared, `MPI_MODE_NOCHECK`) towards every rank for its whole life.
    ///
    /// Not `Send` (it holds an `MPI_Win` pointer): it lives on the progress
    /// thread. [`free`](Window::free) is collective and must be called by
    /// every rank; dropping a window without `free` leaks it.
    pub(crate) struct Window {
        win: ffi::MPI_Win,
        /// Keeps the exposed memory alive for as long as the window exists.
        region: Region,
        freed: bool,
    }

    impl Window {
        /// Creates the window over `region` (collective over `comm`:
        /// `MPI_Win_create`, displacement unit 1) and locks it towards all
        /// ranks (`MPI_Win_lock_all(MPI_MODE_NOCHECK)`).
        pub(crate) fn create(
            comm: &SimpleCommunicator,
            region: Region,
        ) -> Result<Window, TransportError> {
            let exposed = region.exposed();
            let size = ffi::MPI_Aint::try_from(exposed.len())
                .map_err(|_| TransportError::Mpi("region too large for MPI_Aint".into()))?;
            // SAFETY: `RSMPI_WIN_NULL` is a constant handle initialised by the
            // MPI library's static data; reading it has no side effect.
            let mut win = unsafe { ffi::RSMPI_WIN_NULL };
            // A library that cannot make the window reports it on `comm`,
            // whose handler aborts the job by default: have it return the
            // code for the length of this call instead.
            let returning = ReturnErrors::on(comm);
            // SAFETY: `base..base+size` is valid, stable memory for as long as
            // `region` lives (the `Exposed` contract), and `region` is stored in
            // the returned window, which must be freed (collectively) before
            // the memory can go. MPI only reads it: we issue no `MPI_Put` or
            // accumulate on this window. `comm` is a live communicator and
            // `win` a valid out-pointer.
            let code = unsafe {
                ffi::MPI_Win_create(
                    exposed.base() as *mut c_void,
                    size,
                    1,
                    ffi::RSMPI_INFO_NULL,
                    comm.as_raw(),
                    &mut win,
                )
            };
            drop(returning);
            if code != ffi::MPI_SUCCESS as c_int {
                return Err(TransportError::Mpi(format!(
                    "MPI_Win_create failed with error code {code}: this MPI library cannot \
                     expose memory for one-sided reads (with Open MPI, `--mca osc pt2pt` or \
                     `--mca osc rdma` may work)"
                )));
            }
            // Every call on the window checks its code: let them return it.
            // SAFETY: `win` is the window just created; `RSMPI_ERRORS_RETURN`
            // is a predefined handler.
            let code = unsafe { ffi::MPI_Win_set_errhandler(win, ffi::RSMPI_ERRORS_RETURN) };
            check("MPI_Win_set_errhandler", code)?;
            let mut window = Window {
                win,
                region,
                freed: false,
            };
            // SAFETY: `window.win` is the window just created; no lock epoch
            // is open on it yet.
            let code = unsafe { ffi::MPI_Win_lock_all(ffi::MPI_MODE_NOCHECK as c_int, window.win) };
            if let Err(e) = check("MPI_Win_lock_all", code) {
                // Do not leave a half-made window behind; freeing is collective
                // but so was creating, and every rank takes this same path.
                // SAFETY: `window.win` is a valid window with no open epoch.
                unsafe { ffi::MPI_Win_free(&mut window.win) };
                window.freed = true;
                return Err(e);
            }
            Ok(window)
        }

        /// The exposed region (for local reads).
        #[allow(dead_code)]
        pub(crate) fn region(&self) -> &Region {
            &self.region
        }

        /// Copies `dst.len()` bytes at `offset` of `target`'s window into `dst`
        /// and waits until they are there (see [`get_on`]).
        pub(crate) fn get(
            &self,
            target: Rank,
            offset: usize,
            dst: &mut [u8],
        ) -> Result<(), TransportError> {
            get_on(self.win, target, offset, dst)
        }

        /// Ends the lock_all epoch and frees the window (`MPI_Win_free` is
        /// collective: every rank must call it). Returns the region. Takes
        /// the window back from the MPI lock first, so no other thread can
        /// read from it once it is freed.
        pub(crate) fn free(mut self, mpi: &mut MpiGuard<'_>) -> Result<Region, TransportError> {
            mpi.unshare();
            // SAFETY: `self.win` is live with an open lock_all epoch (opened
            // in `create`); every get was flushed before its request returned.
            let unlock = unsafe { ffi::MPI_Win_unlock_all(self.win) };
            // SAFETY: `self.win` is live and its epoch is closed; after this
            // call it is `MPI_WIN_NULL` and never used again (`freed`).
            let free = unsafe { ffi::MPI_Win_free(&mut self.win) };
            self.freed = true;
            check("MPI_Win_unlock_all", unlock)?;
            check("MPI_Win_free", free)?;
            Ok(self.region.clone())
        }
    }

    impl Drop for Window {
        fn drop(&mut self) {
            if !self.freed {
                // Freeing is collective, so it cannot happen here: leak the
                // window and the memory MPI may still read through it.
                std::mem::forget(self.region.clone());
            }
        }
    }

    /// An `MPI_Isend` of an owned buffer, kept alive until the send completes.
    /// Copies `dst.len()` bytes at `offset` of `target`'s part of window
    /// `win` into `dst` and waits until they are there: `MPI_Get` (in
    /// chunks that fit a `c_int`) + `MPI_Win_flush_local`, which for a get
    /// means the bytes have arrived. The caller holds the MPI lock, `win` is
    /// open in a lock_all epoch, and the range was checked against the
    /// target's region length.
    fn get_on(
        win: ffi::MPI_Win,
        target: Rank,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<(), TransportError> {
        let target_c = c_int::try_from(target)
            .map_err(|_| TransportError::Mpi("rank exceeds c_int".into()))?;
        let mut done = 0;
        let mut failed = Ok(());
        while done < dst.len() {
            let n = (dst.len() - done).min(CHUNK);
            let Ok(disp) = ffi::MPI_Aint::try_from(offset + done) else {
                failed = Err(TransportError::Mpi("offset exceeds MPI_Aint".into()));
                break;
            };
            // SAFETY: `dst[done..done+n]` is a live, exclusively borrowed
            // buffer of `n` bytes (`n <= CHUNK` fits `c_int`); it stays
            // borrowed until the flush below completes the operation.
            // `win` is a live window with an open lock_all epoch (the
            // caller's contract: a `Window` or the MPI lock's shared handle).
            let code = unsafe {
                ffi::MPI_Get(
                    dst.as_mut_ptr().add(done) as *mut c_void,
                    n as c_int,
                    ffi::RSMPI_UINT8_T,
                    target_c,
                    disp,
                    n as c_int,
                    ffi::RSMPI_UINT8_T,
                    win,
                )
            };
            if let Err(e) = check("MPI_Get", code) {
                failed = Err(e);
                break;
            }
            done += n;
        }
        // SAFETY: as above; the flush completes every get issued above
        // before `dst` is released. It runs even when a get failed part-way,
        // so nothing is left writing into `dst`.
        let code = unsafe { ffi::MPI_Win_flush_local(target_c, win) };
        failed.and(check("MPI_Win_flush_local", code))
    }

    /// A window handle, shared through the MPI lock.
    struct WinHandle(ffi::MPI_Win);

    // SAFETY: an MPI handle is a plain value naming library state; at
    // `MPI_THREAD_SERIALIZED` any thread may use it as long as calls never
    // overlap, which the mutex of `MpiLock` (the only place a `WinHandle`
    // lives) guarantees.
    unsafe impl Send for WinHandle {}

    /// The lock that serializes this process's MPI calls (the library runs
    /// at `MPI_THREAD_SERIALIZED`): whichever thread needs MPI takes it and
    /// calls MPI itself. While the RMA window is open it carries the
    /// window, so a thread holding it reads another rank's region right
    /// there (`MpiGuard::get`), with no thread in between.
    pub(crate) struct MpiLock(std::sync::Mutex<Option<WinHandle>>);

    /// The MPI lock, held.
    pub(crate) struct MpiGuard<'a>(std::sync::MutexGuard<'a, Option<WinHandle>>);

    impl MpiLock {
        /// Unlocked, with no window.
        pub(crate) fn new() -> MpiLock {
            MpiLock(std::sync::Mutex::new(None))
        }

        /// Takes the lock (waiting for it).
        pub(crate) fn lock(&self) -> MpiGuard<'_> {
            MpiGuard(self.0.lock().unwrap_or_else(|e| e.into_inner()))
        }

        /// Takes the lock if it is free.
        pub(crate) fn try_lock(&self) -> Option<MpiGuard<'_>> {
            match self.0.try_lock() {
                Ok(g) => Some(MpiGuard(g)),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(MpiGuard(e.into_inner())),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }

    impl MpiGuard<'_> {
        /// Lets every thread that takes the lock read from `window` until
        /// the window is freed ([`Window::free`] takes it back).
        pub(crate) fn share(&mut self, window: &Window) {
            *self.0 = Some(WinHandle(window.win));
        }

        fn unshare(&mut self) {
            *self.0 = None;
        }

        /// Receives one frame with tag `tag` from any rank if one has
        /// arrived (`MPI_Improbe` + `MPI_Mrecv` on `MPI_COMM_WORLD`), from
        /// the calling thread. `None` when nothing is there, and also once
        /// the window is no longer shared (MPI is closing: no call is made).
        pub(crate) fn receive(
            &self,
            tag: c_int,
        ) -> Result<Option<(Rank, Vec<u8>)>, TransportError> {
            if self.0.is_none() {
                return Ok(None);
            }
            let mut flag: c_int = 0;
            // SAFETY: plain C structs/handles the calls below fill in.
            let mut message: ffi::MPI_Message = unsafe { ffi::RSMPI_MESSAGE_NULL };
            // SAFETY: `MPI_Status` is a plain C struct; all-zero is a valid
            // value, and MPI overwrites it.
            let mut status: ffi::MPI_Status = unsafe { std::mem::zeroed() };
            // SAFETY: MPI is initialized and not finalized (the window is
            // shared, see `share`/`Window::free`), this thread holds the MPI
            // lock (SERIALIZED), and every pointer is to a live local.
            let code = unsafe {
                ffi::MPI_Improbe(
                    ffi::RSMPI_ANY_SOURCE,
                    tag,
                    ffi::RSMPI_COMM_WORLD,
                    &mut flag,
                    &mut message,
                    &mut status,
                )
            };
            check("MPI_Improbe", code)?;
            if flag == 0 {
                return Ok(None);
            }
            let mut count: c_int = 0;
            // SAFETY: `status` was filled in by the successful probe above.
            let code = unsafe { ffi::MPI_Get_count(&status, ffi::RSMPI_UINT8_T, &mut count) };
            check("MPI_Get_count", code)?;
            let len = usize::try_from(count)
                .map_err(|_| TransportError::Mpi(format!("MPI_Get_count gave {count}")))?;
            let mut buf = vec![0u8; len];
            // SAFETY: `message` is the matched message of the probe (so
            // exactly one receive takes it), `buf` is a live buffer of
            // `count` bytes, and the lock is still held.
            let code = unsafe {
                ffi::MPI_Mrecv(
                    buf.as_mut_ptr() as *mut c_void,
                    count,
                    ffi::RSMPI_UINT8_T,
                    &mut message,
                    &mut status,
                )
            };
            check("MPI_Mrecv", code)?;
            let from = Rank::try_from(status.MPI_SOURCE).map_err(|_| {
                TransportError::Mpi(format!("frame from rank {}", status.MPI_SOURCE))
            })?;
            Ok(Some((from, buf)))
        }

        /// [`Window::get`] from the calling thread;
        /// [`TransportError::Closed`] once the window is no longer shared.
        pub(crate) fn get(
            &self,
            target: Rank,
            offset: usize,
            dst: &mut [u8],
        ) -> Result<(), TransportError> {
            match &*self.0 {
                // The handle is shared only between `share` and `free`: the
                // window is open with its lock_all epoch.
                Some(h) => get_on(h.0, target, offset, dst),
                None => Err(TransportError::Closed),
            }
        }
    }

    pub(crate) struct PendingSend {
        req: ffi::MPI_Request,
        buf: Vec<u8>,
        done: bool,
    }

    impl PendingSend {
        /// Starts sending `buf` to `to` with `tag` on `comm` (`MPI_Isend`).
        /// `buf.len()` must fit a `c_int` (the caller checks).
        pub(crate) fn start(
            comm: &SimpleCommunicator,
            to: Rank,
            tag: c_int,
            buf: Vec<u8>,
        ) -> Result<PendingSend, TransportError> {
            Self::start_raw(comm.as_raw(), to, tag, buf)
        }

        fn start_raw(
            comm: ffi::MPI_Comm,
            to: Rank,
            tag: c_int,
            buf: Vec<u8>,
        ) -> Result<PendingSend, TransportError> {
            let count = c_int::try_from(buf.len()).map_err(|_| TransportError::FrameTooLarge {
                len: buf.len(),
                max: c_int::MAX as usize,
            })?;
            let to = c_int::try_from(to)
                .map_err(|_| TransportError::Mpi("rank exceeds c_int".into()))?;
            // SAFETY: `RSMPI_REQUEST_NULL` is a constant handle from the MPI
            // library's static data.
            let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
            // SAFETY: `buf` holds `count` initialised bytes; its heap
            // allocation does not move when the `Vec` is moved into the
            // returned value, which keeps it until MPI reports completion (or
            // leaks it, see `Drop`). `comm` is live; `req` is an out-pointer.
            let code = unsafe {
                ffi::MPI_Isend(
                    buf.as_ptr() as *const c_void,
                    count,
                    ffi::RSMPI_UINT8_T,
                    to,
                    tag,
                    comm,
                    &mut req,
                )
            };
            check("MPI_Isend", code)?;
            Ok(PendingSend {
                req,
                buf,
                done: false,
            })
        }

        /// Whether the send has completed (`MPI_Test`); frees the buffer then.
        pub(crate) fn test(&mut self) -> Result<bool, TransportError> {
            if self.done {
                return Ok(true);
            }
            let mut flag: c_int = 0;
            // SAFETY: `self.req` is the live request from `MPI_Isend` (not yet
            // completed: `done` is false); `flag` is an out-pointer and the
            // status is ignored.
            let code = unsafe { ffi::MPI_Test(&mut self.req, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
            check("MPI_Test", code)?;
            if flag != 0 {
                self.done = true;
                self.buf = Vec::new();
            }
            Ok(self.done)
        }
    }

    // SAFETY: the request handle and buffer are plain data; the transport
    // only starts, tests and drops a `PendingSend` while it holds its MPI
    // lock, which serializes every MPI call of the process (the library
    // was initialized with at least `MPI_THREAD_SERIALIZED` before any
    // thread but the progress thread makes such calls).
    unsafe impl Send for PendingSend {}

    impl PendingSend {
        /// [`start`](Self::start) on `MPI_COMM_WORLD`, for a thread that is
        /// not the progress thread (which owns the rsmpi communicator) but
        /// holds the transport's MPI lock.
        pub(crate) fn start_on_world(
            to: Rank,
            tag: c_int,
            buf: Vec<u8>,
        ) -> Result<PendingSend, TransportError> {
            // SAFETY: `RSMPI_COMM_WORLD` is a constant handle from the MPI
            // library's static data, valid between init and finalize (the
            // transport is open, so MPI is initialized).
            let world = unsafe { ffi::RSMPI_COMM_WORLD };
            Self::start_raw(world, to, tag, buf)
        }
    }

    impl Drop for PendingSend {
        fn drop(&mut self) {
            if !self.done {
                // MPI may still read the buffer: leak it rather than free it
                // under the library's feet.
                std::mem::forget(std::mem::take(&mut self.buf));
            }
        }
    }

    /// A `read` waiting for the progress thread: carries the caller's buffer.
    pub(crate) struct ReadRequest {
        target: Rank,
        offset: usize,
        dst: *mut u8,
        len: usize,
        done: Sender<Result<(), TransportError>>,
    }

    // SAFETY: the raw `dst` pointer is only written through in `serve`, while
    // the thread that built the request (in `run`) is blocked holding the
    // exclusive borrow it came from; see `run`.
    unsafe impl Send for ReadRequest {}

    thread_local! {
        /// The window and communicator of the progress loop running on this
        /// thread (null elsewhere): set by [`Serving`], for work that a frame
        /// handler called on the progress thread must do right there.
        static SERVING: std::cell::Cell<(*const Window, *const SimpleCommunicator)> =
            const { std::cell::Cell::new((std::ptr::null(), std::ptr::null())) };
    }

    /// Marks the calling thread as the progress thread serving `window` over
    /// `world` until dropped.
    pub(crate) struct Serving<'a> {
        _borrows: std::marker::PhantomData<(&'a Window, &'a SimpleCommunicator)>,
    }

    impl<'a> Serving<'a> {
        pub(crate) fn new(window: &'a Window, world: &'a SimpleCommunicator) -> Serving<'a> {
            SERVING.with(|s| s.set((window, world)));
            Serving {
                _borrows: std::marker::PhantomData,
            }
        }
    }

    impl Drop for Serving<'_> {
        fn drop(&mut self) {
            SERVING.with(|s| s.set((std::ptr::null(), std::ptr::null())));
        }
    }

    /// Runs `f` with the window and communicator if the calling thread is
    /// the progress thread inside its loop; `None` on any other thread.
    pub(crate) fn serving<R>(f: impl FnOnce(&Window, &SimpleCommunicator) -> R) -> Option<R> {
        let (w, c) = SERVING.with(|s| s.get());
        if w.is_null() || c.is_null() {
            return None;
        }
        // SAFETY: both pointers were set by a `Serving` guard on this very
        // thread (thread-local) from references that outlive the guard, and
        // the guard resets them to null when dropped; non-null therefore
        // means the guard, and so the window and communicator, are alive.
        // Both are only used from this thread.
        Some(f(unsafe { &*w }, unsafe { &*c }))
    }

    impl ReadRequest {
        /// Builds a request to fill `dst` from `target`'s window at `offset`,
        /// hands it to `submit` (which queues it for the progress thread) and
        /// blocks until the request has been served or dropped.
        pub(crate) fn run(
            target: Rank,
            offset: usize,
            dst: &mut [u8],
            submit: impl FnOnce(ReadRequest) -> Result<(), TransportError>,
        ) -> Result<(), TransportError> {
            let (tx, rx) = bounded(1);
            let req = ReadRequest {
                target,
                offset,
                dst: dst.as_mut_ptr(),
                len: dst.len(),
                done: tx,
            };
            submit(req)?;
            // The only sender lives in the request, so `recv` returns once the
            // request has been served (a result) or dropped unserved
            // (disconnected) — in both cases nobody writes to `dst` any more,
            // and `dst` stays borrowed by this frame until then.
            rx.recv().unwrap_or(Err(TransportError::Closed))
        }

        /// Performs the read on the progress thread and wakes the caller.
        pub(crate) fn serve(self, window: &Window) {
            // SAFETY: `dst`/`len` come from the `&mut [u8]` borrowed by the
            // caller blocked in `run`, which cannot return (and so cannot
            // release or touch the buffer) before `self.done` is sent to or
            // dropped, which happens only after this slice's last use below.
            let dst = unsafe { std::slice::from_raw_parts_mut(self.dst, self.len) };
            let result = window.get(self.target, self.offset, dst);
            let _ = self.done.send(result);
        }
    }
}
