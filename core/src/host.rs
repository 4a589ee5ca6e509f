//! The machine this process runs on: its host name, the one answer to
//! "are two ranks (or a GPU buffer's producer and its reader) on the same
//! node".

/// This machine's host name (`localhost` if the system will not say).
pub(crate) fn name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`, a
    // live, writable buffer of that size.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_name_is_the_kernels() {
        let name = super::name();
        assert!(!name.is_empty());
        if let Ok(kernel) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            assert_eq!(name, kernel.trim());
        }
    }
}
