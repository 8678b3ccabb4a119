//! q8_1: the activation format of the q4_1 and q5_1 dots: 32 int8 values, an f16 scale and
//! the f16 block sum `s` (9 bits per value).
//!
//! As ggml's `quantize_row_q8_1_ref`: `d = amax / 127` in f32 (stored as f16), `q = roundf(x /
//! d)` as q8_0, and `s = f16(f32(Σ q) · d)` — the integer sum of the stored quants times the
//! *f32* scale, rounded once to f16 (not `f16(d) · Σ q`). The weight formats with a minimum
//! use `s` for their `m · Σ a` term. ggml has no q8_1 decoder; [`dequantize_row_q8_1_ref`]
//! is `f32(q) · f32(d)`, the values the dots see.

use half::f16;
use llamapack_format::blocks::{BlockQ8_1, QK8_1};

use crate::q8_0::{decode_block, int8_dot, quantize_block};

crate::format::block_format!(
    Q8_1,
    Q8_1,
    BlockQ8_1,
    BlockQ8_1,
    quantize_row_q8_1_ref,
    dequantize_row_q8_1_ref,
    block_dot
);

/// Quantizes `x` (a multiple of 32 values) into `y` (`x.len() / 32` blocks).
///
/// Edge cases, as in ggml: an all-zero block gets `d = 0`, zero quants and `s = 0`; when
/// `amax / 127` overflows f16 (|x| > 8.3e6) the stored scale is `+inf` while the quants and `s`
/// are still computed from the f32 scale (`s` overflows f16 once |Σ q · d| > 65504); when
/// `1 / d` overflows f32 the quants are 0 — C's `(int8_t)` of ±inf/NaN on x86-64 — and so is `s`.
pub fn quantize_row_q8_1_ref(x: &[f32], y: &mut [BlockQ8_1]) {
    assert_eq!(
        x.len(),
        y.len() * QK8_1,
        "q8_1: row length must be 32 × blocks"
    );
    for (xb, yb) in x.chunks_exact(QK8_1).zip(y.iter_mut()) {
        let d = quantize_block(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
        let sum: i32 = yb.qs.iter().map(|&q| i32::from(q)).sum();
        yb.s = f16::from_f32(sum as f32 * d);
    }
}

/// Dequantizes `x` into `y` (`32 · x.len()` values): `y = f32(qs) · f32(d)` (`s` is not read).
pub fn dequantize_row_q8_1_ref(x: &[BlockQ8_1], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK8_1,
        "q8_1: output length must be 32 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK8_1)) {
        decode_block(&xb.qs, xb.d, yb);
    }
}

/// One block of a q8_1·q8_1 dot, `i32 Σ x·y` times `(dx · dy)` in f32 (ggml has no such dot:
/// no weight is stored as q8_1; it makes [`crate::vec_dot`] total over the dtype table).
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ8_1, y: &BlockQ8_1) -> f32 {
    int8_dot(&x.qs, x.d, &y.qs, y.d)
}

/// Dot product of two q8_1 rows.
pub fn vec_dot_q8_1_q8_1_ref(x: &[BlockQ8_1], y: &[BlockQ8_1]) -> f32 {
    assert_eq!(x.len(), y.len(), "q8_1 dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    /// Values in the block of `sum_uses_the_f32_scale` (found to separate the two formulas).
    const SUM_N: usize = 16;

    #[test]
    fn known_block_and_sum() {
        // amax = 127 → d = 1 exactly; halves round away from zero (roundf).
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[17] = -2.5;
        x[31] = -30.0;
        let mut b = [BlockQ8_1::zeroed()];
        quantize_row_q8_1_ref(&x, &mut b);
        assert_eq!(b[0].d, f16::ONE);
        assert_eq!(
            (b[0].qs[0], b[0].qs[1], b[0].qs[17], b[0].qs[31]),
            (127, 3, -3, -30)
        );
        assert_eq!(b[0].s.to_f32(), 97.0);
    }

    #[test]
    fn sum_uses_the_f32_scale() {
        // amax = 12.7: d = 0.1 is not an f16; s = f16(Σq · d), not f16(Σq · f16(d)).
        let mut x = [0f32; 32];
        x[0] = 12.7;
        x[1..SUM_N].fill(1.0); // each 1.0 → q 10
        let mut b = [BlockQ8_1::zeroed()];
        quantize_row_q8_1_ref(&x, &mut b);
        let d = 12.7f32 / 127.0;
        let sum: i32 = b[0].qs.iter().map(|&q| i32::from(q)).sum();
        assert_eq!(sum, 127 + 10 * (SUM_N as i32 - 1));
        assert_eq!(b[0].s, f16::from_f32(sum as f32 * d));
        assert_ne!(
            b[0].s,
            f16::from_f32(sum as f32 * f16::from_f32(d).to_f32())
        );
    }

    #[test]
    fn zero_and_tiny_blocks() {
        let mut b = [BlockQ8_1::zeroed()];
        quantize_row_q8_1_ref(&[-0.0; 32], &mut b);
        assert_eq!((b[0].d.to_bits(), b[0].s.to_bits()), (0, 0));
        // 1/d overflows: quants 0, s = 0 · d = +0.
        quantize_row_q8_1_ref(&[-1e-38; 32], &mut b);
        assert!(b[0].qs.iter().all(|&q| q == 0));
        assert_eq!(b[0].s.to_bits(), 0);
    }
}
