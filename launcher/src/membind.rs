//! NUMA memory binding: where a thread's new pages and a mapping's pages
//! come from.
//!
//! Thin wrappers over Linux's `set_mempolicy`, `mbind` and `get_mempolicy`,
//! the calls hwloc's Linux backend makes for `hwloc_set_membind` and
//! `hwloc_set_area_membind`. They are called directly so that binding works
//! with or without the `hwloc` feature and on raw shared mappings (the
//! store's arena), which hwlocality only binds through `&` references.
//!
//! The policy is *preferred*: pages come from the given node while it has
//! free memory, then from others. Unlike first touch it does not depend on
//! which thread touches a page first; unlike a strict bind, a full node
//! never turns into a SIGBUS or an out-of-memory kill.

use std::io;

/// `get_mempolicy` flag: report the policy of the page at an address.
const MPOL_F_ADDR: libc::c_ulong = 2;
/// Node masks are passed as this many bits (one 64-bit word per 64 nodes).
const MASK_BITS: usize = 1024;
const WORD_BITS: usize = u64::BITS as usize;

/// A memory policy as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemPolicy {
    /// The system default (local allocation, first touch).
    Default,
    /// Prefer these NUMA nodes.
    Preferred(Vec<u32>),
    /// Only these NUMA nodes.
    Bind(Vec<u32>),
    /// Interleave over these NUMA nodes.
    Interleave(Vec<u32>),
    /// Local allocation (explicit).
    Local,
    /// A mode this crate does not name (the raw mode number).
    Other(i32),
}

fn node_mask(node: u32) -> io::Result<Vec<u64>> {
    let node = node as usize;
    if node >= MASK_BITS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NUMA node {node} is beyond the largest supported node {MASK_BITS}"),
        ));
    }
    let mut mask = vec![0u64; MASK_BITS / WORD_BITS];
    mask[node / WORD_BITS] |= 1 << (node % WORD_BITS);
    Ok(mask)
}

fn mask_nodes(mask: &[u64]) -> Vec<u32> {
    let mut nodes = Vec::new();
    for (w, &word) in mask.iter().enumerate() {
        for bit in 0..WORD_BITS {
            if word & (1 << bit) != 0 {
                nodes.push((w * WORD_BITS + bit) as u32);
            }
        }
    }
    nodes
}

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the calling thread's future allocations prefer NUMA node `node`
/// (only this thread; pages it already touched stay where they are).
///
/// # Errors
///
/// The OS error: `EINVAL` for a node this machine does not have, `EPERM`
/// where a sandbox forbids memory policies.
///
/// ```
/// std::thread::spawn(|| {
///     use ferry_launcher::membind::{bind_thread_memory, thread_memory_policy, MemPolicy};
///     bind_thread_memory(0)?;
///     assert_eq!(thread_memory_policy()?, MemPolicy::Preferred(vec![0]));
///     Ok::<(), std::io::Error>(())
/// }).join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn bind_thread_memory(node: u32) -> io::Result<()> {
    let mask = node_mask(node)?;
    // SAFETY: set_mempolicy reads `MASK_BITS` bits from `mask`, a live
    // buffer of exactly that many bits; it changes only the calling
    // thread's policy and touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            libc::MPOL_PREFERRED,
            mask.as_ptr(),
            MASK_BITS as libc::c_ulong,
        )
    };
    check(rc)
}

/// The calling thread's memory policy.
///
/// # Errors
///
/// The OS error (`ENOSYS` on a kernel without NUMA support).
///
/// ```
/// let policy = std::thread::spawn(ferry_launcher::membind::thread_memory_policy).join().unwrap()?;
/// assert_eq!(policy, ferry_launcher::membind::MemPolicy::Default);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn thread_memory_policy() -> io::Result<MemPolicy> {
    policy_at(std::ptr::null(), 0)
}

/// Makes the pages of `len` bytes at `addr` prefer NUMA node `node`:
/// pages not yet touched are placed there when first touched, whichever
/// thread touches them. The range is widened to whole pages. Used on a
/// fresh mapping, before anything is written to it.
///
/// This changes only where pages live, never their contents, so it is safe
/// to call on any range; an unmapped range is an error.
///
/// # Errors
///
/// The OS error: `EFAULT`/`ENOMEM` for a range that is not mapped, `EINVAL`
/// for a node this machine does not have.
///
/// ```
/// let area = vec![0u8; 1 << 20];
/// ferry_launcher::membind::bind_area(area.as_ptr(), area.len(), 0)?;
/// assert_eq!(
///     ferry_launcher::membind::area_policy(area.as_ptr())?,
///     ferry_launcher::membind::MemPolicy::Preferred(vec![0]),
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn bind_area(addr: *const u8, len: usize, node: u32) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let page = page_size();
    let start = addr as usize & !(page - 1);
    let end = (addr as usize).checked_add(len).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the area wraps around memory")
    })?;
    let mask = node_mask(node)?;
    // SAFETY: mbind reads `MASK_BITS` bits from `mask`, a live buffer of that
    // size. It sets the policy of the page range [start, end) (start is page
    // aligned; the kernel rounds the length up); without MPOL_MF_MOVE it
    // moves no page, and a policy never changes memory contents, so no Rust
    // reference to that memory can observe it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            start as *mut libc::c_void,
            end - start,
            libc::MPOL_PREFERRED,
            mask.as_ptr(),
            MASK_BITS as libc::c_ulong,
            0 as libc::c_uint,
        )
    };
    check(rc)
}

/// The memory policy of the page holding `addr`.
///
/// # Errors
///
/// The OS error (`EFAULT` for an unmapped address).
pub fn area_policy(addr: *const u8) -> io::Result<MemPolicy> {
    policy_at(addr, MPOL_F_ADDR)
}

fn policy_at(addr: *const u8, flags: libc::c_ulong) -> io::Result<MemPolicy> {
    let mut mode: libc::c_int = 0;
    let mut mask = vec![0u64; MASK_BITS / WORD_BITS];
    // SAFETY: get_mempolicy writes one int to `mode` and at most
    // `MASK_BITS` bits to `mask`, both live and writable. With
    // MPOL_F_ADDR it only looks up the policy of the page at `addr` (it
    // reads no memory there); without it `addr` must be null, as passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            mask.as_mut_ptr(),
            MASK_BITS as libc::c_ulong,
            addr as *mut libc::c_void,
            flags,
        )
    };
    check(rc)?;
    let nodes = mask_nodes(&mask);
    // Mode flags (static/relative nodes) ride in the high bits.
    Ok(match mode & 0xff {
        0 => MemPolicy::Default,
        1 if nodes.is_empty() => MemPolicy::Local,
        1 => MemPolicy::Preferred(nodes),
        2 => MemPolicy::Bind(nodes),
        3 => MemPolicy::Interleave(nodes),
        4 => MemPolicy::Local,
        other => MemPolicy::Other(other),
    })
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_round_trip() {
        assert_eq!(mask_nodes(&node_mask(0).unwrap()), vec![0]);
        assert_eq!(mask_nodes(&node_mask(70).unwrap()), vec![70]);
        assert!(node_mask(5000).is_err());
    }
}
