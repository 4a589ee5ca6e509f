//! Without a CUDA driver every entry point must return `GpuError::NoDriver`,
//! consistently and without panicking. On a machine with a driver these tests
//! check only that the answers are stable.

use ferry_gpu::{Device, GpuError, probe};

fn outcome<T>(r: &Result<T, GpuError>) -> Result<(), GpuError> {
    r.as_ref().map(|_| ()).map_err(Clone::clone)
}

#[test]
fn every_entry_point_reports_no_driver() {
    match probe::driver() {
        Err(GpuError::NoDriver) => {}
        other => {
            println!("skipped: the driver probe did not report NoDriver ({other:?})");
            return;
        }
    }
    for _ in 0..2 {
        assert_eq!(probe::driver(), Err(GpuError::NoDriver));
        assert_eq!(probe::device_count(), Err(GpuError::NoDriver));
        assert_eq!(probe::devices(), Err(GpuError::NoDriver));
        assert_eq!(probe::device_info(0), Err(GpuError::NoDriver));
        assert_eq!(outcome(&Device::open(0)), Err(GpuError::NoDriver));
        assert_eq!(outcome(&Device::open(usize::MAX)), Err(GpuError::NoDriver));
    }
    let msg = GpuError::NoDriver.to_string();
    assert!(msg.contains("libcuda.so"), "{msg}");
    assert!(msg.contains("install"), "{msg}");
}

#[test]
fn repeated_calls_agree() {
    let first = (
        probe::driver(),
        probe::device_count(),
        probe::devices(),
        outcome(&Device::open(0)),
    );
    for _ in 0..3 {
        assert_eq!(probe::driver(), first.0);
        assert_eq!(probe::device_count(), first.1);
        assert_eq!(probe::devices(), first.2);
        assert_eq!(outcome(&Device::open(0)), first.3);
    }
    if let Ok(info) = &first.0 {
        assert_eq!(first.1, Ok(info.device_count));
        assert_eq!(first.2.as_ref().map(Vec::len), Ok(info.device_count));
    }
}

#[test]
fn concurrent_first_calls_agree() {
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| (probe::driver(), outcome(&Device::open(0)))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread panicked"))
            .collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
}

#[test]
fn out_of_range_ordinal_is_no_device_or_no_driver() {
    match Device::open(10_000) {
        Err(GpuError::NoDriver) => {}
        Err(GpuError::NoDevice { ordinal, count }) => {
            assert_eq!(ordinal, 10_000);
            assert_eq!(Ok(count), probe::device_count());
        }
        Err(other) => println!("skipped: driver probe failed: {other}"),
        Ok(_) => panic!("device 10000 should not exist"),
    }
}
