//! Reading files into memory through io_uring (several reads in flight,
//! short reads resumed), exact bytes, and clear errors.

use std::io::Write;
use std::path::PathBuf;

use ferry_store::{IoPath, read_exact_at};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
}

fn file_with(tag: &str, data: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ferry-fileio-{tag}-{}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(data)
        .unwrap();
    path
}

#[test]
fn large_reads_come_back_exact_through_io_uring() {
    // More chunks than requests in flight, and a ragged tail.
    let data = pattern((41 << 20) + 12345);
    let path = file_with("large", &data);
    let file = std::fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; data.len()];
    let how = read_exact_at(&file, 0, &mut buf).unwrap();
    if std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").is_ok_and(|v| v.trim() == "0")
    {
        assert_eq!(how, IoPath::IoUring);
    } else {
        println!("io_uring disabled by sysctl here: read with {how:?}");
    }
    assert!(buf == data);
    // An offset and a length inside the file.
    let mut part = vec![0u8; 5 << 20];
    read_exact_at(&file, 3 << 20, &mut part).unwrap();
    assert!(part[..] == data[3 << 20..8 << 20]);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn reading_past_the_end_is_unexpected_eof() {
    let path = file_with("short", &pattern(1000));
    let file = std::fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; 2000];
    let err = read_exact_at(&file, 0, &mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    // What could be read was.
    assert!(buf[..1000] == pattern(1000)[..]);
    // Empty reads need no file at all.
    assert!(read_exact_at(&file, 5000, &mut []).is_ok());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_directory_is_an_os_error() {
    let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
    let mut buf = [0u8; 16];
    let err = read_exact_at(&dir, 0, &mut buf).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
}
