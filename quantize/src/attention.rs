//! The attention of one query head (f32): scores, softmax, the weighted sum of values: the
//! runner's only non-matmul work that grows with the context, compiled here (the crate with the
//! SIMD targets) so that it gets the AVX2 build where the CPU has one. Every level performs the
//! same f32 operations in the same order, so the results have the same bits everywhere.

/// One query head's attention over the positions `0..att.len()`: `att[p] = scale · q·k_p`
/// (key `p` at `keys[p·stride..][..q.len()]`), softmax, then `out = Σ att[p] · v_p`. The same
/// operations in the same order at every CPU level (this is f32 element-wise work LLVM
/// vectorizes without reordering any sum); compiled for AVX2 where the CPU has it, which takes
/// the 8 partial sums of [`dot`] in one register and the `axpy` 8 lanes at a time.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    out: &mut [f32],
    att: &mut [f32],
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scale: f32,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 was detected (the function enables nothing more).
        unsafe { attend_avx2(out, att, q, keys, values, stride, scale) };
        return;
    }
    attend_body(out, att, q, keys, values, stride, scale);
}

/// Whether this CPU has AVX2 (detected once).
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| is_x86_feature_detected!("avx2"))
}

/// [`attend`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn attend_avx2(
    out: &mut [f32],
    att: &mut [f32],
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scale: f32,
) {
    attend_body(out, att, q, keys, values, stride, scale);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_body(
    out: &mut [f32],
    att: &mut [f32],
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scale: f32,
) {
    let hd = q.len();
    for (p, a) in att.iter_mut().enumerate() {
        *a = dot(q, &keys[p * stride..][..hd]) * scale;
    }
    softmax(att);
    out.fill(0.0);
    for (p, &a) in att.iter().enumerate() {
        for (y, &x) in out.iter_mut().zip(&values[p * stride..][..hd]) {
            *y += a * x;
        }
    }
}

/// In-place softmax in f32 (max subtracted first).
#[inline(always)]
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// f32 dot product with eight partial sums.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (a8, b8) in (&mut ac).zip(&mut bc) {
        for i in 0..8 {
            acc[i] += a8[i] * b8[i];
        }
    }
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attend_is_the_same_at_every_level() {
        // 3 positions of 2 dims, keys and values interleaved with stride 4
        let kv: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        let q = [0.5f32, -1.25];
        let (mut a, mut b) = ([0f32; 2], [0f32; 2]);
        let (mut att_a, mut att_b) = ([0f32; 3], [0f32; 3]);
        attend(&mut a, &mut att_a, &q, &kv, &kv[2..], 4, 0.7);
        attend_body(&mut b, &mut att_b, &q, &kv, &kv[2..], 4, 0.7);
        assert_eq!((a, att_a), (b, att_b));
        let want: Vec<f32> = (0..3)
            .map(|p| dot(&q, &kv[4 * p..4 * p + 2]) * 0.7)
            .collect();
        let mut w = want.clone();
        softmax(&mut w);
        assert_eq!(att_b.to_vec(), w);
    }
}
