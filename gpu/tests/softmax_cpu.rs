//! The CPU reference model and synthetic data, at the sizes the GPU
//! comparison test uses.

use ferry_gpu::softmax::{CpuModel, SyntheticData};

#[test]
fn synthetic_data_is_deterministic() {
    let a = SyntheticData::new(2048, 16, 5, 3).unwrap();
    let b = SyntheticData::new(2048, 16, 5, 3).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, SyntheticData::new(2048, 16, 5, 4).unwrap());
    assert!(a.x().iter().all(|v| v.is_finite()));
    // Balanced classes.
    for c in 0..5 {
        assert_eq!(
            a.labels().iter().filter(|&&y| y == c).count(),
            2048 / 5 + usize::from(c < 2048 % 5)
        );
    }
}

#[test]
fn cpu_model_learns_at_gpu_test_settings() {
    let data = SyntheticData::new(2048, 16, 5, 3).unwrap();
    let mut m = CpuModel::new(16, 5).unwrap();
    let first = m.step(&data, 0.5).unwrap();
    assert!((first - 5f32.ln()).abs() < 1e-5);
    let mut last = first;
    for _ in 1..50 {
        let l = m.step(&data, 0.5).unwrap();
        assert!(l <= last + 1e-6, "loss went up: {last} -> {l}");
        last = l;
    }
    assert!(last < 0.25 * first, "{first} -> {last}");
    let acc = m.accuracy(&data).unwrap();
    assert!(acc > 0.9, "accuracy {acc}");
}

#[test]
fn training_is_bitwise_reproducible() {
    let data = SyntheticData::new(300, 4, 3, 9).unwrap();
    let run = || {
        let mut m = CpuModel::new(4, 3).unwrap();
        let losses: Vec<u32> = (0..20)
            .map(|_| m.step(&data, 0.3).unwrap().to_bits())
            .collect();
        (losses, m)
    };
    assert_eq!(run(), run());
}
