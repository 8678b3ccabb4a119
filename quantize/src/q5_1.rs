//! q5_1: blocks of 32 unsigned 5-bit values with an f16 scale and an f16 minimum (6 bits per
//! weight).
//!
//! `min`/`max` are the block's extremes, `d = (max − min) / 31`, `q = (uint8)((x − min) / d +
//! 0.5)`, packed as in q5_0 (low nibbles in `qs`, bit 4 of element `j` in bit `j` of `qh`);
//! `x = q · d + m`. Byte-identical to ggml's `quantize_row_q5_1_ref`. Its dot reads q8_1
//! activations.

use half::f16;
use llamapack_format::blocks::{BlockQ5_1, BlockQ8_1, QK5_0};

use crate::q4_1::min_max;
use crate::q5_0::{pack5, unpack5};
use crate::rounding::c_f32_to_i8;

crate::format::block_format!(
    Q5_1,
    Q5_1,
    BlockQ5_1,
    BlockQ8_1,
    quantize_row_q5_1_ref,
    dequantize_row_q5_1_ref,
    block_dot,
    weighted: crate::weighted::quantize_q5_1
);

/// Quantizes `x` (a multiple of 32 values) into `y`.
///
/// Edge cases, as in ggml: a constant block has `d = 0`, every value 0 and `m` the value (the
/// first zero's sign for a block of ±0); `max − min` above 65504·31 overflows the f16 scale to
/// +inf; when `max − min` or `1 / d` overflows f32 the affected values are C's `(uint8_t)` of
/// inf/NaN, 0 on x86-64. Unlike q4_1 there is no clamp: ggml keeps the low 5 bits.
pub fn quantize_row_q5_1_ref(x: &[f32], y: &mut [BlockQ5_1]) {
    assert_eq!(
        x.len(),
        y.len() * QK5_0,
        "q5_1: row length must be 32 × blocks"
    );
    for (xb, yb) in x.chunks_exact(QK5_0).zip(y.iter_mut()) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 31.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        yb.d = f16::from_f32(d);
        yb.m = f16::from_f32(min);
        let q: [u8; 32] = std::array::from_fn(|j| c_f32_to_i8((xb[j] - min) * id + 0.5) as u8);
        yb.qh = pack5(&q, &mut yb.qs);
    }
}

/// Dequantizes `x` into `y`: `y[j] = f32(q) · f32(d) + f32(m)` (two roundings, no FMA).
pub fn dequantize_row_q5_1_ref(x: &[BlockQ5_1], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK5_0,
        "q5_1: output length must be 32 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK5_0)) {
        let (d, m) = (xb.d.to_f32(), xb.m.to_f32());
        for (o, q) in yb.iter_mut().zip(unpack5(&xb.qs, xb.qh)) {
            *o = f32::from(q) * d + m;
        }
    }
}

/// One block's contribution to a q5_1·q8_1 dot, as ggml's generic `ggml_vec_dot_q5_1_q8_1`:
/// the exact `i32 Σ q·a`, then `(dx · dy) · sumi + mx · sy` in f32.
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ5_1, y: &BlockQ8_1) -> f32 {
    let sumi: i32 = unpack5(&x.qs, x.qh)
        .iter()
        .zip(&y.qs)
        .map(|(&q, &a)| i32::from(q) * i32::from(a))
        .sum();
    (x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32()
}

/// Dot product of a q5_1 row with a q8_1 row: block terms folded in order from 0.
pub fn vec_dot_q5_1_q8_1_ref(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    assert_eq!(x.len(), y.len(), "q5_1 dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    #[test]
    fn known_block_nibble_and_qh_order() {
        // min = −1, max = 30 → d = 1 exactly, q = trunc(x + 1 + 0.5).
        let mut x: Vec<f32> = (0..32).map(|i| i as f32 - 0.75).collect();
        x[7] = -1.0;
        x[31] = 30.0;
        let mut b = [BlockQ5_1::zeroed()];
        quantize_row_q5_1_ref(&x, &mut b);
        assert_eq!((b[0].d.to_f32(), b[0].m.to_f32()), (1.0, -1.0));
        let q = |v: f32| (v + 1.5) as u32;
        let qh = u32::from_le_bytes(b[0].qh);
        for j in 0..16 {
            assert_eq!(u32::from(b[0].qs[j] & 0x0f), q(x[j]) & 15, "low nibble {j}");
            assert_eq!(
                u32::from(b[0].qs[j] >> 4),
                q(x[j + 16]) & 15,
                "high nibble {j}"
            );
            assert_eq!((qh >> j) & 1, q(x[j]) >> 4, "qh bit {j}");
            assert_eq!((qh >> (j + 16)) & 1, q(x[j + 16]) >> 4, "qh bit {}", j + 16);
        }
        // q[i] = i for i ≠ 7 (x + 1.5 = i + 0.75), q[7] = 0, q[31] = 31: bit 4 set from 16 on.
        assert_eq!(b[0].qh, [0x00, 0x00, 0xff, 0xff]);
        assert_eq!(b[0].qs[1], 0x11);
        assert_eq!(b[0].qs[7], 0x70);
        assert_eq!(b[0].qs[15], 0xff);
        let mut back = [0f32; 32];
        dequantize_row_q5_1_ref(&b, &mut back);
        assert_eq!((back[7], back[20], back[31]), (-1.0, 19.0, 30.0));
    }

    #[test]
    fn dot_is_ggml_formula() {
        let q: [u8; 32] = std::array::from_fn(|i| (31 - i) as u8);
        let mut x = BlockQ5_1 {
            d: f16::from_f32(0.5),
            m: f16::from_f32(-4.0),
            ..BlockQ5_1::zeroed()
        };
        x.qh = pack5(&q, &mut x.qs);
        let y = BlockQ8_1 {
            d: f16::from_f32(2.0),
            s: f16::from_f32(-1.5),
            qs: std::array::from_fn(|j| j as i8 - 3),
        };
        let sumi: i32 = (0..32).map(|i| (31 - i) * (i - 3)).sum();
        assert_eq!(block_dot(&x, &y), 1.0 * sumi as f32 + 6.0);
    }
}
