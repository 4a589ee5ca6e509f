//! CPU affinity and memory size, straight from the operating system.
//!
//! This is the crate's one module with `unsafe`: thin wrappers over
//! `sched_getaffinity`, `sched_setaffinity` and `sysconf`. The CPU masks are
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
    fn empty_binding_is_rejected() {
        let err = bind_current_thread(&[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
