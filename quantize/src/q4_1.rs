//! q4_1: blocks of 32 unsigned 4-bit values with an f16 scale and an f16 minimum (5 bits per
//! weight).
//!
//! `min`/`max` are the block's extremes, `d = (max − min) / 15`, `q = min(15, (int8)((x − min)
//! / d + 0.5))`; byte `j` holds element `j` in its low nibble and element `j + 16` in its high
//! nibble; `x = q · d + m`. Byte-identical to ggml's `quantize_row_q4_1_ref`. Its dot reads q8_1
//! activations, whose block sum `s` carries the `m · Σ a` term.

use half::f16;
use llamapack_format::blocks::{BlockQ4_1, BlockQ8_1, QK4_1};

use crate::rounding::c_f32_to_i8;

crate::format::block_format!(
    Q4_1,
    Q4_1,
    BlockQ4_1,
    BlockQ8_1,
    quantize_row_q4_1_ref,
    dequantize_row_q4_1_ref,
    block_dot,
    weighted: crate::weighted::quantize_q4_1
);

/// The smallest and largest value of a block, as ggml's `v < min` / `v > max` scan from
/// `±FLT_MAX` finds them (on ties, ±0 included, the first one wins).
#[inline(always)]
pub(crate) fn min_max(xb: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in xb {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// ggml's `MIN(15, (int8_t)f)` stored in a `uint8_t` (a negative int8 wraps; it only occurs for
/// out-of-range intermediates and is reproduced for byte identity).
#[inline(always)]
fn nibble(f: f32) -> u8 {
    i32::from(c_f32_to_i8(f)).min(15) as u8
}

/// Quantizes `x` (a multiple of 32 values) into `y`.
///
/// Edge cases, as in ggml: a constant block has `d = 0`, every nibble 0 and `m` the value;
/// `max − min` above 65504·15 overflows the f16 scale to +inf; when `max − min` or `1 / d`
/// overflows f32 the affected nibbles are C's `(int8_t)` of inf/NaN, which is 0 on x86-64.
pub fn quantize_row_q4_1_ref(x: &[f32], y: &mut [BlockQ4_1]) {
    assert_eq!(
        x.len(),
        y.len() * QK4_1,
        "q4_1: row length must be 32 × blocks"
    );
    for (xb, yb) in x.chunks_exact(QK4_1).zip(y.iter_mut()) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 15.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        yb.d = f16::from_f32(d);
        yb.m = f16::from_f32(min);
        for j in 0..QK4_1 / 2 {
            let lo = nibble((xb[j] - min) * id + 0.5);
            let hi = nibble((xb[j + QK4_1 / 2] - min) * id + 0.5);
            yb.qs[j] = lo | (hi << 4);
        }
    }
}

/// Dequantizes `x` into `y`: `y[j] = f32(q) · f32(d) + f32(m)` (two roundings, no FMA).
pub fn dequantize_row_q4_1_ref(x: &[BlockQ4_1], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK4_1,
        "q4_1: output length must be 32 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK4_1)) {
        let (d, m) = (xb.d.to_f32(), xb.m.to_f32());
        for (j, &b) in xb.qs.iter().enumerate() {
            yb[j] = f32::from(b & 0x0f) * d + m;
            yb[j + QK4_1 / 2] = f32::from(b >> 4) * d + m;
        }
    }
}

/// One block's contribution to a q4_1·q8_1 dot, as ggml's generic `ggml_vec_dot_q4_1_q8_1`:
/// the exact `i32 Σ q·a`, then `(dx · dy) · sumi + mx · sy` in f32.
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ4_1, y: &BlockQ8_1) -> f32 {
    let mut sumi = 0i32;
    for (j, &b) in x.qs.iter().enumerate() {
        sumi += i32::from(b & 0x0f) * i32::from(y.qs[j]);
        sumi += i32::from(b >> 4) * i32::from(y.qs[j + QK4_1 / 2]);
    }
    (x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32()
}

/// Dot product of a q4_1 row with a q8_1 row: block terms folded in order from 0.
pub fn vec_dot_q4_1_q8_1_ref(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    assert_eq!(x.len(), y.len(), "q4_1 dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    #[test]
    fn known_block_and_nibble_order() {
        // min = −1, max = 14 → d = 1 exactly, q = trunc(x + 1 + 0.5).
        let x: Vec<f32> = (0..32)
            .map(|i| match i {
                3 => -1.0,
                20 => 14.0,
                _ => (i % 15) as f32 - 0.75,
            })
            .collect();
        let mut b = [BlockQ4_1::zeroed()];
        quantize_row_q4_1_ref(&x, &mut b);
        assert_eq!((b[0].d.to_f32(), b[0].m.to_f32()), (1.0, -1.0));
        let q = |v: f32| (v + 1.5) as u8;
        for j in 0..16 {
            assert_eq!(b[0].qs[j] & 0x0f, q(x[j]), "low nibble {j}");
            assert_eq!(b[0].qs[j] >> 4, q(x[j + 16]), "high nibble {j}");
        }
        assert_eq!(b[0].qs[3] & 0x0f, 0);
        assert_eq!(b[0].qs[4] >> 4, 15);
        let mut back = [0f32; 32];
        dequantize_row_q4_1_ref(&b, &mut back);
        assert_eq!(back[3], -1.0);
        assert_eq!(back[20], 14.0);
        assert_eq!(back[0], -1.0); // −0.75 → q 0 → 0·1 − 1
    }

    #[test]
    fn constant_and_signed_zero_blocks() {
        // Constant block: d = 0, id = 0, nibbles 0, m = the value.
        let mut b = [BlockQ4_1::zeroed()];
        quantize_row_q4_1_ref(&[2.5; 32], &mut b);
        assert_eq!((b[0].d.to_bits(), b[0].m.to_f32()), (0, 2.5));
        assert!(b[0].qs.iter().all(|&q| q == 0));
        // ±0: the first zero is both min and max (−0 < +0 is false), so m keeps its sign.
        let mut x = [0.0f32; 32];
        x[0] = -0.0;
        quantize_row_q4_1_ref(&x, &mut b);
        assert_eq!(b[0].m.to_bits(), 0x8000);
    }

    #[test]
    fn dot_is_ggml_formula() {
        let x = BlockQ4_1 {
            d: f16::from_f32(0.5),
            m: f16::from_f32(-2.0),
            qs: std::array::from_fn(|j| (j as u8 & 0x0f) | (15 - j as u8) << 4),
        };
        let y = BlockQ8_1 {
            d: f16::from_f32(0.25),
            s: f16::from_f32(3.0),
            qs: std::array::from_fn(|j| j as i8 - 16),
        };
        let sumi: i32 = (0..16)
            .map(|j| j * (j - 16) + (15 - j) * (j + 16 - 16))
            .sum();
        assert_eq!(block_dot(&x, &y), 0.125 * sumi as f32 + -6.0);
    }
}
