//! q8_0: blocks of 32 int8 values with one f16 scale (8.5 bits per weight).
//!
//! `x[j] = d · qs[j]`, `d = amax / 127` computed in f32 and stored as f16,
//! `qs[j] = roundf(x[j] / d)` (round half away from zero). Byte-identical to ggml's
//! `quantize_row_q8_0_ref` and gguf-py's `Q8_0.quantize`.

use half::f16;
use llamapack_format::blocks::{BlockQ8_0, QK8_0};

use crate::rounding::{c_f32_to_i8, roundf};

crate::format::block_format!(
    Q8_0,
    Q8_0,
    BlockQ8_0,
    BlockQ8_0,
    quantize_row_q8_0_ref,
    dequantize_row_q8_0_ref,
    block_dot
);

/// Quantizes `x` (a multiple of 32 values) into `y` (`x.len() / 32` blocks).
///
/// Edge cases, as in ggml: an all-zero block gets `d = 0` and zero quants; when `amax / 127`
/// overflows f16 (|x| > 8.3e6) the stored scale is `+inf` while the quants are still computed
/// from the f32 scale; when `1 / d` overflows f32 (amax < 3.7e-37) the quants are 0 — in C
/// that is `(int8_t)` of ±inf/NaN, which is 0 on x86-64.
pub fn quantize_row_q8_0_ref(x: &[f32], y: &mut [BlockQ8_0]) {
    assert_eq!(
        x.len(),
        y.len() * QK8_0,
        "q8_0: row length must be 32 × blocks"
    );
    for (xb, yb) in x.chunks_exact(QK8_0).zip(y.iter_mut()) {
        yb.d = f16::from_f32(quantize_block(xb, &mut yb.qs));
    }
}

/// The quants of one 32-value block (q8_0's, and q8_1's): `d = amax / 127` in f32 (returned),
/// `q = (int8_t) roundf(x · (1 / d))`, 0 when `d` is 0.
#[inline(always)]
pub(crate) fn quantize_block(xb: &[f32], qs: &mut [i8; QK8_0]) -> f32 {
    let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    for (q, &v) in qs.iter_mut().zip(xb) {
        *q = c_f32_to_i8(roundf(v * id));
    }
    d
}

/// `y = f32(q) · d` for one block's quants (q8_0's and q8_1's decoder).
#[inline(always)]
pub(crate) fn decode_block(qs: &[i8; QK8_0], d: f16, y: &mut [f32]) {
    let d = d.to_f32();
    for (o, &q) in y.iter_mut().zip(qs) {
        *o = f32::from(q) * d;
    }
}

/// `i32 Σ x·y` of two blocks' quants times `(dx · dy)` in f32 (q8_0's and q8_1's block dot).
#[inline(always)]
pub(crate) fn int8_dot(xq: &[i8; QK8_0], dx: f16, yq: &[i8; QK8_0], dy: f16) -> f32 {
    let sumi: i32 = xq
        .iter()
        .zip(yq)
        .map(|(&a, &b)| i32::from(a) * i32::from(b))
        .sum();
    sumi as f32 * (dx.to_f32() * dy.to_f32())
}

/// Dequantizes `x` into `y` (`32 · x.len()` values): `y = f32(qs) · f32(d)`.
pub fn dequantize_row_q8_0_ref(x: &[BlockQ8_0], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK8_0,
        "q8_0: output length must be 32 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK8_0)) {
        decode_block(&xb.qs, xb.d, yb);
    }
}

/// One block's contribution to a q8_0·q8_0 dot: `i32 Σ x·y` times `(dx · dy)` in f32.
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ8_0, y: &BlockQ8_0) -> f32 {
    int8_dot(&x.qs, x.d, &y.qs, y.d)
}

/// Dot product of a q8_0 row with a q8_0 row: blocks in order, each an exact integer sum
/// scaled in f32, accumulated in f32.
pub fn vec_dot_q8_0_q8_0_ref(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len(), "q8_0 dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}

/// Bytes of one 32-value block in [`pack_q8_0_x4`]'s layout.
pub const Q8_0_X4_BLOCK_BYTES: usize = 256;

/// Interleaves 4 q8_0 activation rows for the packed multi-token dots of the 32-blocks
/// (`Kernels::vec_dot4_packed`): the batched matmul packs each group of 4 tokens once and
/// every weight row of the matrix reads it.
///
/// Block `b` of the 4 rows becomes 256 bytes:
/// - `0..64`: the 32 quants of token 0 then of token 1, each `q ^ 0x80` (`q + 128` as u8,
///   the unsigned operand of `vpdpbusd`);
/// - `64..128`: the same for tokens 2 and 3;
/// - `128..192`: token 0's scale as f32 (little-endian) 8 times, then token 1's 8 times;
/// - `192..256`: the same for tokens 2 and 3.
///
/// The scales are the exact f32 values of the f16 scales, so a kernel reading this layout can
/// reproduce the single-token dot bit for bit.
///
/// # Panics
/// If the rows differ in length, are not whole blocks, or `out` is not
/// `blocks × Q8_0_X4_BLOCK_BYTES` long.
pub fn pack_q8_0_x4(acts: [&[u8]; 4], out: &mut [u8]) {
    const QB: usize = std::mem::size_of::<BlockQ8_0>();
    let len = acts[0].len();
    assert!(
        len.is_multiple_of(QB) && acts.iter().all(|a| a.len() == len),
        "pack_q8_0_x4: rows of whole, equal numbers of q8_0 blocks"
    );
    let nb = len / QB;
    assert_eq!(
        out.len(),
        nb * Q8_0_X4_BLOCK_BYTES,
        "pack_q8_0_x4: output length"
    );
    for (b, dst) in out.chunks_exact_mut(Q8_0_X4_BLOCK_BYTES).enumerate() {
        for (t, row) in acts.iter().enumerate() {
            let src = &row[QB * b..QB * (b + 1)];
            let d = f16::from_bits(u16::from_le_bytes([src[0], src[1]])).to_f32();
            let (q, s) = (32 * t, 128 + 32 * t);
            for (o, &v) in dst[q..q + 32].iter_mut().zip(&src[2..]) {
                *o = v ^ 0x80;
            }
            for o in dst[s..s + 32].chunks_exact_mut(4) {
                o.copy_from_slice(&d.to_le_bytes());
            }
        }
    }
}
