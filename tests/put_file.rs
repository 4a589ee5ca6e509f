//! Putting a file (or a byte range of one) into the store: the object holds
//! exactly its bytes; bad paths, ranges and sizes are clear errors.

use std::io::Write;
use std::path::PathBuf;

use ferry::{Config, Error};

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 253) as u8 ^ (i >> 12) as u8)
        .collect()
}

fn file_with(tag: &str, data: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ferry-put-file-{tag}-{}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(data)
        .unwrap();
    path
}

fn runtime(capacity: usize) -> ferry::Runtime {
    ferry::init(
        Config::default()
            .num_cpus(2.0)
            .object_store_memory(capacity),
    )
    .unwrap()
}

#[ferry::remote]
fn checksum(bytes: ferry::View<Vec<u8>>) -> u64 {
    bytes
        .as_slice()
        .iter()
        .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(u64::from(b)))
}

#[test]
fn a_file_becomes_an_object_tasks_can_view() {
    let data = pattern((24 << 20) + 333);
    let path = file_with("whole", &data);
    let rt = runtime(64 << 20);
    let r = rt.put_file(&path).unwrap();
    assert!(rt.get(&r).unwrap().as_slice() == &data[..]);
    let expected = data
        .iter()
        .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    let sum = rt.get_value(&checksum::remote(&rt, &r).unwrap()).unwrap();
    assert_eq!(sum, expected);
    // A range of it.
    let part = rt.put_file_range(&path, 1 << 20, 4096).unwrap();
    assert!(rt.get(&part).unwrap().as_slice() == &data[1 << 20..(1 << 20) + 4096]);
    // An empty file is an empty vector.
    let empty = file_with("empty", b"");
    assert!(rt.get(&rt.put_file(&empty).unwrap()).unwrap().is_empty());
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&empty).unwrap();
}

#[test]
fn bad_paths_ranges_and_sizes_are_clear_errors() {
    let data = pattern(10_000);
    let path = file_with("errors", &data);
    let rt = runtime(8 << 20);
    let err = rt.put_file("/nonexistent/ferry/data.bin").unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("/nonexistent/ferry/data.bin")),
        "{err}"
    );
    let err = rt.put_file_range(&path, 9_000, 2_000).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("the file has 10000")),
        "{err}"
    );
    let err = rt.put_file_range(&path, u64::MAX, 2).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("the file has 10000")),
        "{err}"
    );
    // Larger than the store: a store error, and the store still works.
    let big = file_with("big", &pattern(9 << 20));
    let err = rt.put_file(&big).unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err}");
    let r = rt.put_file_range(&path, 100, 50).unwrap();
    assert!(rt.get(&r).unwrap().as_slice() == &data[100..150]);
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&big).unwrap();
}
