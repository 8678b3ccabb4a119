//! q8_k: the activation format of the k-quant dot products: 256 int8 values, an f32 scale and
//! the sums of each group of 16 quants (`bsums`).
//!
//! As ggml's `quantize_row_q8_K_ref`: `max` is the element of largest magnitude with its sign,
//! `iscale = −127 / max`, `q = min(127, nearest_int(iscale · x))`, `d = 1 / iscale`. (Older ggml
//! used −128; the current −127 keeps every quant in −127..=127, which the SIMD dots rely on.)
//! Every dot kernel assumes `bsums` are the true group sums, as this encoder writes them.

use llamapack_format::blocks::{BlockQ8K, QK_K};

use crate::rounding::nearest_int;

crate::format::block_format!(
    Q8K,
    Q8K,
    BlockQ8K,
    BlockQ8K,
    quantize_row_q8_k_ref,
    dequantize_row_q8_k_ref,
    block_dot
);

/// Quantizes `x` (a multiple of 256 values) into `y`.
///
/// An all-zero block gets `d = 0` and zero quants and sums (ggml leaves its `bsums`
/// unwritten there). If `−127 / max` overflows f32 (|max| < 3.7e-37) every quant is 0 — ggml's
/// `nearest_int` of ±inf/NaN truncated to int8 — and `d = 1 / iscale = ∓0`.
pub fn quantize_row_q8_k_ref(x: &[f32], y: &mut [BlockQ8K]) {
    assert_eq!(
        x.len(),
        y.len() * QK_K,
        "q8_k: row length must be 256 × blocks"
    );
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            yb.d = 0.0;
            yb.qs = [0; QK_K];
            yb.bsums = [0; QK_K / 16];
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, g) in yb.bsums.iter_mut().zip(yb.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| i16::from(q)).sum();
        }
        yb.d = 1.0 / iscale;
    }
}

/// Dequantizes `x` into `y`: `y = d · f32(q)`.
pub fn dequantize_row_q8_k_ref(x: &[BlockQ8K], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK_K,
        "q8_k: output length must be 256 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        for (o, &q) in yb.iter_mut().zip(&xb.qs) {
            *o = xb.d * f32::from(q);
        }
    }
}

/// One block of a q8_k·q8_k dot (not used by any model weight; it makes [`crate::vec_dot`]
/// total over the dtype table).
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ8K, y: &BlockQ8K) -> f32 {
    let sumi: i32 =
        x.qs.iter()
            .zip(&y.qs)
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum();
    sumi as f32 * (x.d * y.d)
}

/// Dot product of two q8_k rows.
pub fn vec_dot_q8_k_q8_k_ref(x: &[BlockQ8K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q8_k dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}
