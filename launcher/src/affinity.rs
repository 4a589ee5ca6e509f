//! CPU affinity and memory size, straight from the operating system.
//!
//! This is the crate's one module with `unsafe`: thin wrappers over
//! `sched_getaffinity`, `sched_setaffinity`, `pthread_setaffinity_np`,
//! `pthread_self`, `sched_getcpu` and `sysconf`. The CPU masks are
//! sized at run time, so machines with more than 1024 CPUs work too.

use std::io;

/// The CPU mask as a growable array of words, laid out as the kernel's
/// `cpu_set_t` (bit `i % 64` of word `i / 64` is CPU `i`).
type Mask = Vec<libc::c_ulong>;

const WORD_BITS: usize = libc::c_ulong::BITS as usize;
/// Start with glibc's `CPU_SETSIZE` (1024 CPUs) and double up to this.
const MAX_CPUS: usize = 1 << 20;

fn get_mask(pid: libc::pid_t) -> io::Result<Mask> {
    let mut cpus = 1024;
    loop {
        let mut mask: Mask = vec![0; cpus / WORD_BITS];
        let bytes = mask.len() * size_of::<libc::c_ulong>();
        // SAFETY: `mask` is a live, writable buffer of exactly `bytes` bytes,
        // and the kernel writes at most `bytes` bytes into it. The cast to
        // `cpu_set_t` only changes the pointer type: glibc passes the pointer
        // and the size straight to the system call.
        let rc = unsafe {
            libc::sched_getaffinity(pid, bytes, mask.as_mut_ptr().cast::<libc::cpu_set_t>())
        };
        if rc == 0 {
            return Ok(mask);
        }
        let err = io::Error::last_os_error();
        // EINVAL: the kernel's mask is larger than ours.
        if err.raw_os_error() == Some(libc::EINVAL) && cpus < MAX_CPUS {
            cpus *= 2;
            continue;
        }
        return Err(err);
    }
}

fn mask_to_cpus(mask: &[libc::c_ulong]) -> Vec<usize> {
    let mut cpus = Vec::new();
    for (w, &word) in mask.iter().enumerate() {
        for bit in 0..WORD_BITS {
            if word & (1 << bit) != 0 {
                cpus.push(w * WORD_BITS + bit);
            }
        }
    }
    cpus
}

/// The CPUs this process may run on, ascending: the affinity mask of the
/// process's main thread, which is what the launcher (`mpirun --bind-to`,
/// `srun --cpu-bind`, `taskset`, a cgroup cpuset) gave the process. Threads
/// that later pin themselves with [`bind_current_thread`] do not change it.
///
/// ```
/// let cpus = ferry_launcher::affinity::allowed_cpus()?;
/// assert!(!cpus.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let pid = libc::pid_t::try_from(std::process::id())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(mask_to_cpus(&get_mask(pid)?))
}

/// The CPUs the calling thread may run on, ascending.
///
/// ```
/// let cpus = ferry_launcher::affinity::current_thread_cpus()?;
/// assert!(!cpus.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn current_thread_cpus() -> io::Result<Vec<usize>> {
    // pid 0 means the calling thread.
    Ok(mask_to_cpus(&get_mask(0)?))
}

/// Pins the calling thread (only it: other threads keep their masks) to
/// `cpus`.
///
/// # Errors
///
/// `InvalidInput` when `cpus` is empty or names an absurdly large CPU
/// number; the OS error (typically `EINVAL`) when none of `cpus` is allowed
/// for this process.
///
/// ```no_run
/// std::thread::spawn(|| {
///     ferry_launcher::affinity::bind_current_thread(&[0])?;
///     assert_eq!(ferry_launcher::affinity::current_thread_cpus()?, vec![0]);
///     Ok::<(), std::io::Error>(())
/// }).join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn bind_current_thread(cpus: &[usize]) -> io::Result<()> {
    let mask = cpus_to_mask(cpus)?;
    let bytes = mask.len() * size_of::<libc::c_ulong>();
    // SAFETY: `mask` is a live buffer of exactly `bytes` bytes, which the
    // kernel only reads. pid 0 applies the mask to the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, bytes, mask.as_ptr().cast::<libc::cpu_set_t>()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The mask naming exactly `cpus`, at least glibc's `CPU_SETSIZE` bits.
fn cpus_to_mask(cpus: &[usize]) -> io::Result<Mask> {
    let Some(&max) = cpus.iter().max() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot bind a thread to an empty CPU set",
        ));
    };
    if max >= MAX_CPUS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {max} is beyond the largest supported CPU number {MAX_CPUS}"),
        ));
    }
    // At least glibc's CPU_SETSIZE bits, rounded up to whole words.
    let words = (max / WORD_BITS + 1).max(1024 / WORD_BITS);
    let mut mask: Mask = vec![0; words];
    for &cpu in cpus {
        mask[cpu / WORD_BITS] |= 1 << (cpu % WORD_BITS);
    }
    Ok(mask)
}

/// The calling thread's POSIX handle, for [`bind_thread`] and
/// [`place_thread`] from another thread.
///
/// ```
/// let me = ferry_launcher::affinity::current_pthread();
/// assert_eq!(me, ferry_launcher::affinity::current_pthread());
/// ```
pub fn current_pthread() -> libc::pthread_t {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    unsafe { libc::pthread_self() }
}

/// Binds `thread` (another thread of this process, or this one) to `cpus`:
/// [`bind_current_thread`] for a thread named by its handle. A sleeping
/// thread that is woken later runs on one of `cpus`.
///
/// # Safety
///
/// `thread` must name a thread of this process that has not exited (one
/// known to be alive, such as one parked waiting for the caller): as for
/// [`place_thread`].
///
/// # Errors
///
/// As [`bind_current_thread`].
///
/// ```
/// use ferry_launcher::affinity;
///
/// let cpus = affinity::current_thread_cpus()?;
/// // SAFETY: the calling thread is alive.
/// unsafe { affinity::bind_thread(affinity::current_pthread(), &cpus)? };
/// assert_eq!(affinity::current_thread_cpus()?, cpus);
/// # Ok::<(), std::io::Error>(())
/// ```
pub unsafe fn bind_thread(thread: libc::pthread_t, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: passed on from the caller.
    unsafe { set_thread_mask(thread, cpus) }
}

/// Sets the mask of `thread`.
///
/// # Safety
///
/// `thread` names a live thread of this process (see [`bind_thread`]).
unsafe fn set_thread_mask(thread: libc::pthread_t, cpus: &[usize]) -> io::Result<()> {
    let mask = cpus_to_mask(cpus)?;
    let bytes = mask.len() * size_of::<libc::c_ulong>();
    // SAFETY: `mask` is a live buffer of exactly `bytes` bytes, which the
    // kernel only reads; the caller guarantees that `thread` names a live
    // thread of this process.
    let rc = unsafe {
        libc::pthread_setaffinity_np(thread, bytes, mask.as_ptr().cast::<libc::cpu_set_t>())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// The CPU the calling thread is running on now (`sched_getcpu`), or
/// `None` where the system does not say. It may have moved by the time
/// the caller looks at the answer; use it as a hint.
///
/// ```
/// let cpus = ferry_launcher::affinity::current_thread_cpus()?;
/// if let Some(cpu) = ferry_launcher::affinity::current_cpu() {
///     assert!(cpus.contains(&cpu));
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions; it returns -1 on error.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// Moves `thread` onto `cpu` now, then lets it run on any of `cpus` again.
///
/// A thread that was just started or woken is queued by the kernel on a
/// CPU of its choosing, often the starter's or waker's own while that one
/// is busy (it then waits for the starter's time slice, milliseconds,
/// while another CPU idles). Confined to `cpu` for a moment, it is moved
/// there at once; given `cpus` back, it stays there while it may run
/// there, and the kernel is free to move it later.
///
/// # Safety
///
/// `thread` must be a thread of this process that has not exited: the C
/// library names it to the kernel by its thread id, which it clears when
/// the thread exits (a call then would apply to the calling thread).
///
/// # Errors
///
/// `InvalidInput` when `cpus` is empty or does not contain `cpu`; the OS
/// error when the thread cannot be given those masks (e.g. `EINVAL` when
/// none of them is allowed for the process). After an error the thread's
/// mask is `cpus` if it could be set back.
///
/// ```
/// use std::os::unix::thread::JoinHandleExt;
/// use ferry_launcher::affinity;
///
/// let cpus = affinity::current_thread_cpus()?;
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// let h = std::thread::spawn(move || {
///     rx.recv().unwrap();
///     affinity::current_thread_cpus().unwrap()
/// });
/// // SAFETY: `h` is alive (joined below).
/// unsafe { affinity::place_thread(h.as_pthread_t(), *cpus.last().unwrap(), &cpus)? };
/// tx.send(()).unwrap();
/// assert_eq!(h.join().unwrap(), cpus, "the thread may run anywhere it could before");
/// # Ok::<(), std::io::Error>(())
/// ```
pub unsafe fn place_thread(thread: libc::pthread_t, cpu: usize, cpus: &[usize]) -> io::Result<()> {
    if !cpus.contains(&cpu) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is not among the thread's CPUs {cpus:?}"),
        ));
    }
    // SAFETY: the caller guarantees `thread` is alive.
    let moved = unsafe { set_thread_mask(thread, &[cpu]) };
    // SAFETY: as above.
    let back = unsafe { set_thread_mask(thread, cpus) };
    moved.and(back)
}

/// The machine's physical memory in bytes (`_SC_PHYS_PAGES` ×
/// `_SC_PAGESIZE`), or 0 when the system does not say.
///
/// ```
/// assert!(ferry_launcher::affinity::total_memory_bytes() > 0);
/// ```
pub fn total_memory_bytes() -> u64 {
    // SAFETY: sysconf only reads a configuration value; it has no
    // preconditions and returns -1 for an unknown name.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (u64::try_from(pages), u64::try_from(page_size)) {
        (Ok(p), Ok(s)) => p.saturating_mul(s),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_bits_to_cpu_numbers() {
        let mut mask: Mask = vec![0; 2];
        mask[0] = 0b1011;
        mask[1] = 1;
        assert_eq!(mask_to_cpus(&mask), vec![0, 1, 3, WORD_BITS]);
    }

    #[test]
    fn placing_a_thread_leaves_it_its_cpus_and_refuses_a_cpu_outside_them() {
        use std::os::unix::thread::JoinHandleExt;
        let cpus = current_thread_cpus().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            rx.recv().unwrap();
            current_thread_cpus().unwrap()
        });
        let outside = cpus.iter().max().unwrap() + 1;
        // SAFETY: `h` is joined below, after both calls.
        let err = unsafe { place_thread(h.as_pthread_t(), outside, &cpus) }.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // SAFETY: as above.
        unsafe { place_thread(h.as_pthread_t(), cpus[0], &cpus) }.unwrap();
        tx.send(()).unwrap();
        assert_eq!(h.join().unwrap(), cpus);
    }

    #[test]
    fn empty_binding_is_rejected() {
        let err = bind_current_thread(&[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
