//! q5_0: blocks of 32 5-bit values with one f16 scale and an implicit offset of 16 (5.5 bits
//! per weight).
//!
//! `d = max / −16` where `max` is the element of largest magnitude *with its sign* (the first
//! one on ties), `q = min(31, (int8)(x/d + 16.5))`; the low 4 bits are packed as in q4_0 (byte
//! `j` holds element `j` low, element `j + 16` high), bit 4 of element `j` is bit `j` of the
//! little-endian u32 `qh`; `x = d · (q − 16)`. Byte-identical to ggml's `quantize_row_q5_0_ref`.

use half::f16;
use llamapack_format::blocks::{BlockQ5_0, BlockQ8_0, QK5_0};

use crate::rounding::c_f32_to_i8;

crate::format::block_format!(
    Q5_0,
    Q5_0,
    BlockQ5_0,
    BlockQ8_0,
    quantize_row_q5_0_ref,
    dequantize_row_q5_0_ref,
    block_dot,
    weighted: crate::weighted::quantize_q5_0
);

/// Packs 32 5-bit values (bits above 4 are ignored, as ggml masks them): low nibbles into `qs`
/// (element `j` low, `j + 16` high), bit 4 of element `j` into bit `j` of the returned `qh`.
#[inline(always)]
pub(crate) fn pack5(q: &[u8; 32], qs: &mut [u8; 16]) -> [u8; 4] {
    let mut qh = 0u32;
    for j in 0..16 {
        let (a, b) = (q[j], q[j + 16]);
        qs[j] = (a & 0x0f) | ((b & 0x0f) << 4);
        qh |= u32::from((a & 0x10) >> 4) << j;
        qh |= u32::from((b & 0x10) >> 4) << (j + 16);
    }
    qh.to_le_bytes()
}

/// The 32 5-bit values (0..=31) of `qs` and `qh`, in element order.
#[inline(always)]
pub(crate) fn unpack5(qs: &[u8; 16], qh: [u8; 4]) -> [u8; 32] {
    let qh = u32::from_le_bytes(qh);
    std::array::from_fn(|i| {
        let nib = if i < 16 {
            qs[i] & 0x0f
        } else {
            qs[i - 16] >> 4
        };
        nib | ((((qh >> i) & 1) as u8) << 4)
    })
}

/// Quantizes `x` (a multiple of 32 values) into `y`.
///
/// Edge cases, as in ggml: an all-zero block has `max = +0`, so `d = 0 / −16 = −0` (stored f16
/// bits `0x8000`) and every value is 16; |max| > 1 048 512 overflows the f16 scale to ∓inf;
/// when `1 / d` overflows f32 the values are 0 (C's `(int8_t)` of ±inf/NaN on x86-64).
pub fn quantize_row_q5_0_ref(x: &[f32], y: &mut [BlockQ5_0]) {
    assert_eq!(
        x.len(),
        y.len() * QK5_0,
        "q5_0: row length must be 32 × blocks"
    );
    for (xb, yb) in x.chunks_exact(QK5_0).zip(y.iter_mut()) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xb {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -16.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        yb.d = f16::from_f32(d);
        let q: [u8; 32] =
            std::array::from_fn(|j| i32::from(c_f32_to_i8(xb[j] * id + 16.5)).min(31) as u8);
        yb.qh = pack5(&q, &mut yb.qs);
    }
}

/// Dequantizes `x` into `y`: `y[j] = f32(q − 16) · f32(d)`.
pub fn dequantize_row_q5_0_ref(x: &[BlockQ5_0], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK5_0,
        "q5_0: output length must be 32 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK5_0)) {
        let d = xb.d.to_f32();
        for (o, q) in yb.iter_mut().zip(unpack5(&xb.qs, xb.qh)) {
            *o = f32::from(i16::from(q) - 16) * d;
        }
    }
}

/// One block's contribution to a q5_0·q8_0 dot, as ggml's generic `ggml_vec_dot_q5_0_q8_0`:
/// the exact `i32 Σ (q − 16)·a`, then `(dx · dy) · sumi` in f32.
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ5_0, y: &BlockQ8_0) -> f32 {
    let sumi: i32 = unpack5(&x.qs, x.qh)
        .iter()
        .zip(&y.qs)
        .map(|(&q, &a)| (i32::from(q) - 16) * i32::from(a))
        .sum();
    (x.d.to_f32() * y.d.to_f32()) * sumi as f32
}

/// Dot product of a q5_0 row with a q8_0 row: block terms folded in order from 0.
pub fn vec_dot_q5_0_q8_0_ref(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len(), "q5_0 dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    #[test]
    fn known_block_nibble_and_qh_order() {
        // max by magnitude is −32 → d = 2; q = min(31, trunc(x/2 + 16.5)).
        let x: Vec<f32> = (0..32)
            .map(|i| if i == 5 { -32.0 } else { i as f32 - 1.0 })
            .collect();
        let mut b = [BlockQ5_0::zeroed()];
        quantize_row_q5_0_ref(&x, &mut b);
        assert_eq!(b[0].d.to_f32(), 2.0);
        let q = |v: f32| ((v * 0.5 + 16.5) as i32).min(31) as u32;
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
        // −32 → q 0; elements 0..=1 (−1, 0) → 16, 16; element 31 (30) → 31.
        assert_eq!((b[0].qs[5] & 0x0f, (qh >> 5) & 1), (0, 0));
        assert_eq!(qh & 0b11, 0b11);
        assert_eq!((b[0].qs[15] >> 4, qh >> 31), (15, 1));
        // Hand-checked qh bytes: elements 0..=4 and 6..=31 have q ≥ 16, element 5 has q 0.
        assert_eq!(b[0].qh, [0xdf, 0xff, 0xff, 0xff]);
        let mut back = [0f32; 32];
        dequantize_row_q5_0_ref(&b, &mut back);
        assert_eq!((back[5], back[1], back[31]), (-32.0, 0.0, 30.0));
    }

    #[test]
    fn all_zero_block_has_negative_zero_scale() {
        let mut b = [BlockQ5_0::zeroed()];
        quantize_row_q5_0_ref(&[0.0; 32], &mut b);
        assert_eq!(b[0].d.to_bits(), 0x8000);
        assert!(b[0].qs.iter().all(|&q| q == 0));
        assert_eq!(b[0].qh, [0xff; 4]);
    }

    #[test]
    fn pack_unpack_round_trip() {
        let q: [u8; 32] = std::array::from_fn(|i| (i as u8 * 7 + 3) % 32);
        let mut qs = [0u8; 16];
        let qh = pack5(&q, &mut qs);
        assert_eq!(unpack5(&qs, qh), q);
    }
}
