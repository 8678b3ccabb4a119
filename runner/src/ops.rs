//! The small f32 operations of the forward pass besides matmul.

/// `o = weight * x / sqrt(mean(x²) + eps)` for one row (Meta's `RMSNorm`, in f32; the sum of
/// squares is accumulated in f64 so long rows lose nothing).
pub fn rmsnorm(o: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let ss: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let mean = (ss / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &x), &w) in o.iter_mut().zip(x).zip(weight) {
        *o = w * (x * scale);
    }
}

pub use llamapack_quantize::attention::{attend, dot, softmax};

/// `x += y`.
pub fn add(x: &mut [f32], y: &[f32]) {
    for (x, &y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

/// `silu(x) = x * sigmoid(x)`, as `x / (1 + e^-x)` with the attention's branch-free
/// [`exp_f32`](llamapack_quantize::attention::exp_f32) (a loop over it vectorizes).
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + llamapack_quantize::attention::exp_f32(-x))
}

/// Rotates adjacent pairs `(2i, 2i+1)` of every head of `v` (Meta's `apply_rotary_emb`: the
/// pair is the complex number `v[2i] + i·v[2i+1]`, multiplied by `cos + i·sin`).
pub fn rope(v: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    for head in v.chunks_exact_mut(head_dim) {
        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos[i] - b * sin[i];
            pair[1] = a * sin[i] + b * cos[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_survives_large_inputs() {
        let mut x = [1000.0, 1001.0, 999.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[0] && x[0] > x[2]);
    }

    #[test]
    fn rope_is_a_rotation_per_pair() {
        let mut v = [1.0, 0.0, 0.0, 2.0];
        let (c, s) = (0.6f32, 0.8f32);
        rope(&mut v, 4, &[c, 1.0], &[s, 0.0]);
        assert_eq!(v, [0.6, 0.8, 0.0, 2.0]);
    }

    #[test]
    fn rmsnorm_matches_definition() {
        let x = [1.0f32, -2.0, 3.0, -4.0];
        let mut o = [0.0; 4];
        rmsnorm(&mut o, &x, &[1.0, 2.0, 1.0, 1.0], 0.0);
        let r = (30.0f32 / 4.0).sqrt();
        assert!((o[1] - 2.0 * -2.0 / r).abs() < 1e-6);
        assert!((dot(&x, &x) - 30.0).abs() < 1e-6);
    }
}
