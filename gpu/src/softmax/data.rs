//! Deterministic synthetic classification data.

use crate::error::{GpuError, Result};

/// Spread of the class centroids: each coordinate is uniform in ±`SPREAD`.
const SPREAD: f64 = 2.0;
/// Standard deviation of the noise added to a centroid.
const NOISE: f64 = 0.5;

/// SplitMix64: a tiny, well-mixed 64-bit generator (no `rand` dependency).
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Approximately standard normal: the Irwin–Hall sum of 12 uniforms,
    /// minus 6. Uses only additions, so it is bit-identical everywhere.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

/// A labelled data set: `samples` rows of `features` f32 values, each with a
/// class label below `classes`.
///
/// ```
/// use ferry_gpu::softmax::SyntheticData;
/// let a = SyntheticData::new(100, 3, 2, 42)?;
/// let b = SyntheticData::new(100, 3, 2, 42)?;
/// assert_eq!(a, b);
/// assert_eq!(a.x().len(), 300);
/// assert!(a.labels().iter().all(|&y| y < 2));
/// # Ok::<(), ferry_gpu::GpuError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticData {
    samples: usize,
    features: usize,
    classes: usize,
    x: Vec<f32>,
    labels: Vec<u32>,
}

impl SyntheticData {
    /// Generates `samples` points around one random centroid per class
    /// (coordinates uniform in ±2, Gaussian-like noise of σ = 0.5); sample `i`
    /// belongs to class `i % classes`. The same arguments always give the same
    /// data.
    pub fn new(samples: usize, features: usize, classes: usize, seed: u64) -> Result<Self> {
        check_dims(samples, features, classes)?;
        let mut rng = SplitMix64(seed);
        let centroids: Vec<f64> = (0..classes * features)
            .map(|_| (rng.uniform() * 2.0 - 1.0) * SPREAD)
            .collect();
        let mut x = Vec::with_capacity(samples * features);
        let mut labels = Vec::with_capacity(samples);
        for i in 0..samples {
            let class = i % classes;
            labels.push(class as u32);
            let centroid = &centroids[class * features..(class + 1) * features];
            x.extend(centroid.iter().map(|&c| (c + NOISE * rng.normal()) as f32));
        }
        Ok(SyntheticData {
            samples,
            features,
            classes,
            x,
            labels,
        })
    }

    /// Wraps existing data: `x` holds `labels.len()` rows of `features`
    /// values, row-major, and every label is below `classes`.
    pub fn from_parts(
        features: usize,
        classes: usize,
        x: Vec<f32>,
        labels: Vec<u32>,
    ) -> Result<Self> {
        let samples = labels.len();
        check_dims(samples, features, classes)?;
        if x.len() != samples * features {
            return Err(GpuError::InvalidArgument(format!(
                "{} values for {samples} samples of {features} features",
                x.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&y| y as usize >= classes) {
            return Err(GpuError::InvalidArgument(format!(
                "label {bad} out of range for {classes} classes"
            )));
        }
        Ok(SyntheticData {
            samples,
            features,
            classes,
            x,
            labels,
        })
    }

    /// Number of samples.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Number of features per sample.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All samples, row-major (`samples × features`).
    pub fn x(&self) -> &[f32] {
        &self.x
    }

    /// The class label of every sample.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The features of sample `i`, if there is one.
    pub fn sample(&self, i: usize) -> Option<&[f32]> {
        self.x.get(i * self.features..(i + 1) * self.features)
    }
}

/// Sizes must be non-zero, have at least two classes, and fit the 32-bit
/// indices the GPU kernels use.
fn check_dims(samples: usize, features: usize, classes: usize) -> Result<()> {
    if samples == 0 || features == 0 || classes < 2 {
        return Err(GpuError::InvalidArgument(format!(
            "need samples > 0, features > 0 and classes >= 2 \
             (got {samples}, {features}, {classes})"
        )));
    }
    let fits = |v: Option<usize>| v.is_some_and(|v| v <= u32::MAX as usize);
    if !fits(Some(samples))
        || !fits(samples.checked_mul(features))
        || !fits(samples.checked_mul(classes))
        || !fits(features.checked_add(1).and_then(|f| f.checked_mul(classes)))
    {
        return Err(GpuError::InvalidArgument(format!(
            "{samples} x {features} x {classes} is too large"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 0 of the reference SplitMix64.
        let mut r = SplitMix64(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = SyntheticData::new(64, 5, 3, 1).unwrap();
        assert_eq!(a, SyntheticData::new(64, 5, 3, 1).unwrap());
        assert_ne!(a.x(), SyntheticData::new(64, 5, 3, 2).unwrap().x());
        assert_eq!(a.labels()[..4], [0, 1, 2, 0]);
        assert_eq!(a.sample(63).map(<[f32]>::len), Some(5));
        assert!(a.sample(64).is_none());
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(SyntheticData::new(0, 5, 3, 1).is_err());
        assert!(SyntheticData::new(10, 0, 3, 1).is_err());
        assert!(SyntheticData::new(10, 5, 1, 1).is_err());
        assert!(SyntheticData::new(usize::MAX, 5, 3, 1).is_err());
        assert!(SyntheticData::from_parts(2, 2, vec![0.0; 3], vec![0, 1]).is_err());
        assert!(SyntheticData::from_parts(2, 2, vec![0.0; 4], vec![0, 2]).is_err());
        assert!(SyntheticData::from_parts(2, 2, vec![0.0; 4], vec![0, 1]).is_ok());
    }
}
