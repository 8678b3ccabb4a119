//! q4_0: blocks of 32 4-bit values with one f16 scale and an implicit offset of 8
//! (4.5 bits per weight).
//!
//! `d = max / −8` where `max` is the element of largest magnitude *with its sign* (the first one
//! on ties), `q = min(15, (int8)(x/d + 8.5))`; byte `j` holds element `j` in its low nibble and
//! element `j + 16` in its high nibble; `x = d · (q − 8)`. Byte-identical to ggml's
//! `quantize_row_q4_0_ref` and gguf-py's `Q4_0.quantize`.

use half::f16;
use llamapack_format::blocks::{BlockQ4_0, BlockQ8_0, QK4_0};

use crate::rounding::c_f32_to_i8;

crate::format::block_format!(
    Q4_0,
    Q4_0,
    BlockQ4_0,
    BlockQ8_0,
    quantize_row_q4_0_ref,
    dequantize_row_q4_0_ref,
    block_dot,
    weighted: crate::weighted::quantize_q4_0
);

/// Quantizes `x` (a multiple of 32 values) into `y`.
///
/// Edge cases, as in ggml: an all-zero block has `max = +0`, so `d = 0 / −8 = −0` (stored
/// f16 bits `0x8000`) and every nibble is 8; |max| > 524 256 overflows the f16 scale to ∓inf;
/// when `1 / d` overflows f32 the nibbles are 0 (C's `(int8_t)` of ±inf/NaN on x86-64).
pub fn quantize_row_q4_0_ref(x: &[f32], y: &mut [BlockQ4_0]) {
    assert_eq!(
        x.len(),
        y.len() * QK4_0,
        "q4_0: row length must be 32 × blocks"
    );
    for (xb, yb) in x.chunks_exact(QK4_0).zip(y.iter_mut()) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xb {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        yb.d = f16::from_f32(d);
        let q = |v: f32| c_f32_to_i8(v * id + 8.5).min(15) as u8;
        for j in 0..QK4_0 / 2 {
            yb.qs[j] = q(xb[j]) | (q(xb[j + QK4_0 / 2]) << 4);
        }
    }
}

/// Dequantizes `x` into `y`: `y[j] = f32(q − 8) · f32(d)`.
pub fn dequantize_row_q4_0_ref(x: &[BlockQ4_0], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK4_0,
        "q4_0: output length must be 32 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK4_0)) {
        let d = xb.d.to_f32();
        for (j, &b) in xb.qs.iter().enumerate() {
            yb[j] = f32::from(i16::from(b & 0x0f) - 8) * d;
            yb[j + QK4_0 / 2] = f32::from(i16::from(b >> 4) - 8) * d;
        }
    }
}

/// One block's contribution to a q4_0·q8_0 dot.
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ4_0, y: &BlockQ8_0) -> f32 {
    let mut sumi = 0i32;
    for (j, &b) in x.qs.iter().enumerate() {
        sumi += (i32::from(b & 0x0f) - 8) * i32::from(y.qs[j]);
        sumi += (i32::from(b >> 4) - 8) * i32::from(y.qs[j + QK4_0 / 2]);
    }
    sumi as f32 * (x.d.to_f32() * y.d.to_f32())
}

/// Dot product of a q4_0 row with a q8_0 row (same block structure as q8_0·q8_0).
pub fn vec_dot_q4_0_q8_0_ref(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len(), "q4_0 dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}
