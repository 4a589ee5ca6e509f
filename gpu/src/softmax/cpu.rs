//! The CPU reference model.

use std::f32::consts::{LN_2, LOG2_E};

use super::{SyntheticData, check_shape};
use crate::error::{GpuError, Result};

/// Softmax regression on the CPU: `weights` (`features × classes`, row-major)
/// and `bias` (`classes`), starting at zero.
///
/// [`step`](Self::step) is the reference for the GPU kernels: the same f32
/// operations in the same order (`mul_add` where the kernels use `fma.rn`).
///
/// ```
/// use ferry_gpu::softmax::{CpuModel, SyntheticData};
/// let data = SyntheticData::new(64, 4, 3, 1)?;
/// let mut m = CpuModel::new(4, 3)?;
/// let loss = m.step(&data, 0.1)?;
/// assert!((loss - 3f32.ln()).abs() < 1e-5); // zero weights: uniform guess
/// # Ok::<(), ferry_gpu::GpuError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CpuModel {
    features: usize,
    classes: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl CpuModel {
    /// A model with all weights and biases zero.
    pub fn new(features: usize, classes: usize) -> Result<Self> {
        if features == 0 || classes < 2 {
            return Err(GpuError::InvalidArgument(format!(
                "need features > 0 and classes >= 2 (got {features}, {classes})"
            )));
        }
        let n = features.checked_mul(classes).ok_or_else(|| {
            GpuError::InvalidArgument(format!("{features} x {classes} is too large"))
        })?;
        Ok(CpuModel {
            features,
            classes,
            weights: vec![0.0; n],
            bias: vec![0.0; classes],
        })
    }

    /// A model with the given parameters (`weights` row-major,
    /// `features × classes`).
    pub fn from_parts(
        features: usize,
        classes: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
    ) -> Result<Self> {
        let mut m = CpuModel::new(features, classes)?;
        if weights.len() != m.weights.len() || bias.len() != classes {
            return Err(GpuError::InvalidArgument(format!(
                "{} weights and {} biases for {features} x {classes}",
                weights.len(),
                bias.len()
            )));
        }
        m.weights = weights;
        m.bias = bias;
        Ok(m)
    }

    /// Number of input features.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The weights, row-major `features × classes`.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The biases, one per class.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// One full-batch gradient-descent step with learning rate `lr`.
    ///
    /// Returns the mean cross-entropy loss of the parameters *before* the
    /// update (the loss whose gradient the step follows).
    pub fn step(&mut self, data: &SyntheticData, lr: f32) -> Result<f32> {
        check_shape(self.features, self.classes, data)?;
        let (n, f, k) = (data.samples(), self.features, self.classes);
        let inv_n = 1.0f32 / n as f32;
        let mut delta = vec![0f32; n * k];
        let mut loss = 0f32;
        for (i, row) in delta.chunks_exact_mut(k).enumerate() {
            let x = &data.x()[i * f..(i + 1) * f];
            let y = data.labels()[i] as usize;
            let li = forward_sample(&self.weights, &self.bias, x, y, row);
            loss += li * inv_n;
        }
        // Gradient sums in sample order, exactly as the update kernel does.
        let mut gw = vec![0f32; f * k];
        let mut gb = vec![0f32; k];
        for i in 0..n {
            let x = &data.x()[i * f..(i + 1) * f];
            let d = &delta[i * k..(i + 1) * k];
            for (j, &xj) in x.iter().enumerate() {
                for (c, &dc) in d.iter().enumerate() {
                    let g = &mut gw[j * k + c];
                    *g = xj.mul_add(dc, *g);
                }
            }
            for (g, &dc) in gb.iter_mut().zip(d) {
                *g += dc;
            }
        }
        for (w, g) in self.weights.iter_mut().zip(&gw) {
            *w -= (g * inv_n) * lr;
        }
        for (b, g) in self.bias.iter_mut().zip(&gb) {
            *b -= (g * inv_n) * lr;
        }
        Ok(loss)
    }

    /// Mean cross-entropy loss on `data`, without changing the model.
    pub fn loss(&self, data: &SyntheticData) -> Result<f32> {
        check_shape(self.features, self.classes, data)?;
        let inv_n = 1.0f32 / data.samples() as f32;
        let mut row = vec![0f32; self.classes];
        let mut loss = 0f32;
        for (i, &y) in data.labels().iter().enumerate() {
            let x = &data.x()[i * self.features..(i + 1) * self.features];
            loss += forward_sample(&self.weights, &self.bias, x, y as usize, &mut row) * inv_n;
        }
        Ok(loss)
    }

    /// The most likely class for one sample of `features` values.
    pub fn predict(&self, sample: &[f32]) -> Result<usize> {
        if sample.len() != self.features {
            return Err(GpuError::InvalidArgument(format!(
                "sample has {} features, model expects {}",
                sample.len(),
                self.features
            )));
        }
        let mut best = (0, f32::NEG_INFINITY);
        for c in 0..self.classes {
            let z = logit(&self.weights, &self.bias, sample, c, self.classes);
            if z > best.1 {
                best = (c, z);
            }
        }
        Ok(best.0)
    }

    /// Fraction of `data`'s samples whose predicted class is their label.
    pub fn accuracy(&self, data: &SyntheticData) -> Result<f32> {
        check_shape(self.features, self.classes, data)?;
        let mut right = 0usize;
        for (i, &y) in data.labels().iter().enumerate() {
            let x = &data.x()[i * self.features..(i + 1) * self.features];
            if self.predict(x)? == y as usize {
                right += 1;
            }
        }
        Ok(right as f32 / data.samples() as f32)
    }
}

/// `b[c] + Σ_j x[j] w[j][c]`, accumulated with fused multiply-adds.
fn logit(w: &[f32], b: &[f32], x: &[f32], c: usize, k: usize) -> f32 {
    x.iter()
        .enumerate()
        .fold(b[c], |z, (j, &xj)| xj.mul_add(w[j * k + c], z))
}

/// The forward kernel for one sample: fills `delta` with `p - onehot(y)` and
/// returns the sample's cross-entropy.
fn forward_sample(w: &[f32], b: &[f32], x: &[f32], y: usize, delta: &mut [f32]) -> f32 {
    let k = delta.len();
    let mut m = f32::NEG_INFINITY;
    let mut zy = 0f32;
    for (c, d) in delta.iter_mut().enumerate() {
        let z = logit(w, b, x, c, k);
        *d = z;
        m = m.max(z);
        if c == y {
            zy = z;
        }
    }
    let mut s = 0f32;
    for d in delta.iter_mut() {
        *d = ((*d - m) * LOG2_E).exp2();
        s += *d;
    }
    let inv_s = 1.0 / s;
    for (c, d) in delta.iter_mut().enumerate() {
        *d *= inv_s;
        if c == y {
            *d -= 1.0;
        }
    }
    s.log2() * LN_2 - (zy - m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_separable_data() {
        let data = SyntheticData::new(400, 6, 4, 11).unwrap();
        let mut m = CpuModel::new(6, 4).unwrap();
        let mut losses = Vec::new();
        for _ in 0..100 {
            losses.push(m.step(&data, 0.5).unwrap());
        }
        assert!(losses.windows(2).all(|w| w[1] <= w[0] + 1e-6), "{losses:?}");
        assert!(losses[99] < 0.5 * losses[0]);
        assert!(m.accuracy(&data).unwrap() > 0.9);
        // `loss` reports the loss of the current parameters, below the last step's.
        assert!(m.loss(&data).unwrap() <= losses[99]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let data = SyntheticData::new(32, 3, 3, 5).unwrap();
        let base = CpuModel::from_parts(
            3,
            3,
            vec![0.1, -0.2, 0.3, 0.0, 0.5, -0.1, 0.2, 0.2, -0.3],
            vec![0.05, -0.05, 0.0],
        )
        .unwrap();
        // One step with lr = 1 moves each parameter by minus its gradient.
        let mut stepped = base.clone();
        stepped.step(&data, 1.0).unwrap();
        let h = 1e-2f32;
        for idx in 0..9 {
            let mut plus = base.clone();
            plus.weights[idx] += h;
            let mut minus = base.clone();
            minus.weights[idx] -= h;
            let numeric = (plus.loss(&data).unwrap() - minus.loss(&data).unwrap()) / (2.0 * h);
            let analytic = base.weights[idx] - stepped.weights[idx];
            assert!(
                (numeric - analytic).abs() < 2e-3,
                "w{idx}: {numeric} vs {analytic}"
            );
        }
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let data = SyntheticData::new(10, 3, 2, 0).unwrap();
        let mut m = CpuModel::new(4, 2).unwrap();
        assert!(matches!(
            m.step(&data, 0.1),
            Err(GpuError::InvalidArgument(_))
        ));
        assert!(m.predict(&[0.0; 3]).is_err());
        assert!(CpuModel::new(3, 1).is_err());
        assert!(CpuModel::from_parts(2, 2, vec![0.0; 3], vec![0.0; 2]).is_err());
    }
}
