//! With io_uring refused (`FERRY_IO_URING=0`, as where seccomp or the
//! sysctl forbid it), files are read with `pread`, exactly. One test in its
//! own process, so setting the variable races with nothing.

use std::io::Write;

use ferry_store::{IoPath, read_exact_at};

#[test]
fn the_pread_fallback_reads_exact_bytes() {
    // SAFETY: this is the only test of this binary, and it sets the
    // variable before anything else runs: no other thread reads the
    // environment meanwhile.
    unsafe { std::env::set_var("FERRY_IO_URING", "0") };
    let data: Vec<u8> = (0..(9 << 20) + 7).map(|i: usize| (i % 251) as u8).collect();
    let path = std::env::temp_dir().join(format!("ferry-fallback-{}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; data.len() - 100];
    assert_eq!(read_exact_at(&file, 100, &mut buf).unwrap(), IoPath::Pread);
    assert!(buf[..] == data[100..]);
    let mut past = vec![0u8; 10];
    let err = read_exact_at(&file, data.len() as u64 - 5, &mut past).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    std::fs::remove_file(&path).unwrap();
}
