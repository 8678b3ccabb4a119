//! q3_k: super-blocks of 256 values in 16 sub-blocks of 16, symmetric 3-bit quants with 6-bit
//! signed sub-block scales and an f16 super-block scale (3.4375 bits per weight).
//!
//! `x = d·(sc[j] − 32)·(q − 4)`, `q` in 0..=7 split into 2 low bits (`qs`) and a high bit
//! (`hmask`, set when `q ≥ 4`). The encoder is ggml's `quantize_row_q3_K_ref` step for step
//! (`make_q3_quants` with its coordinate descent, ggml's `nearest_int`, the same f32 order).

use half::f16;
use llamapack_format::blocks::{BlockQ3K, BlockQ8K, QK_K};

use crate::kquant_search::{make_q3_quants, signed_max_abs};
use crate::rounding::nearest_int;

crate::format::block_format!(
    Q3K,
    Q3K,
    BlockQ3K,
    BlockQ8K,
    quantize_row_q3_k_ref,
    dequantize_row_q3_k_ref,
    block_dot,
    weighted: crate::weighted::quantize_q3_k
);

/// Quantizes `x` (a multiple of 256 values) into `y` exactly as ggml's `quantize_row_q3_K_ref`.
///
/// Per sub-block of 16: `make_q3_quants(nmax 4)`; then [`finish_block`].
pub fn quantize_row_q3_k_ref(x: &[f32], y: &mut [BlockQ3K]) {
    assert_eq!(
        x.len(),
        y.len() * QK_K,
        "q3_k: row length must be 256 × blocks"
    );
    let mut l = [0i8; QK_K];
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut scales = [0f32; 16];
        for (j, s) in scales.iter_mut().enumerate() {
            *s = make_q3_quants(4, &xb[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        }
        finish_block(xb, &scales, &mut l, yb);
    }
}

/// The second half of ggml's q3_k encoder, shared by every level: the 16 scales are quantized
/// to 6 bits against the one of largest magnitude (`iscale = −32/max`, `nearest_int` kept as
/// C's `int8_t` keeps it, clamped to −32..=31, stored `+32`; `d = f16(1/iscale)`, 0 if every
/// scale is 0), every value is re-quantized against its decoded scale (a sub-block whose
/// decoded scale is 0 keeps the search's quants `l`), and the quants are split into `hmask`
/// and 2-bit `qs`.
/// (Always inlined: the SIMD encoders call it between vector code, and a call into
/// SSE-compiled code from there pays AVX-512 ↔ SSE transition stalls.)
#[inline(always)]
pub(crate) fn finish_block(xb: &[f32], scales: &[f32; 16], l: &mut [i8; QK_K], yb: &mut BlockQ3K) {
    let (max_scale, _) = signed_max_abs(scales);
    yb.scales = [0; 12];
    if max_scale == 0.0 {
        yb.d = f16::from_f32(0.0);
    } else {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            // C: `int8_t l = nearest_int(...)`, then MAX(−32, MIN(31, l)) + 32.
            let q = ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                yb.scales[j] = q & 0x0f;
            } else {
                yb.scales[j - 8] |= (q & 0x0f) << 4;
            }
            yb.scales[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
        }
        yb.d = f16::from_f32(1.0 / iscale);
    }
    requantize_pack(xb, l, yb);
}

/// Re-quantizes every value against its decoded scale `d·(sc − 32)` from the packed `scales`
/// and `d` of `yb` (a sub-block whose decoded scale is 0 keeps the search's quants `l`), and
/// splits the quants into `hmask` and 2-bit `qs`.
#[inline(always)]
pub(crate) fn requantize_pack(xb: &[f32], l: &mut [i8; QK_K], yb: &mut BlockQ3K) {
    let sc = unpack_scales(&yb.scales);
    for ((xs, ls), &s) in xb.chunks_exact(16).zip(l.chunks_exact_mut(16)).zip(&sc) {
        let d = yb.d.to_f32() * f32::from(s - 32);
        if d == 0.0 {
            continue;
        }
        for (q, &v) in ls.iter_mut().zip(xs) {
            *q = (nearest_int(v / d).clamp(-4, 3) + 4) as i8;
        }
    }
    pack_quants(l, yb);
}

/// Splits the 256 quants (0..=7, the value plus 4) into `hmask` (the high bit) and 2-bit `qs`;
/// `l` is left holding the low 2 bits.
#[inline(always)]
pub(crate) fn pack_quants(l: &mut [i8; QK_K], yb: &mut BlockQ3K) {
    // The high bit of element 32k + i is bit k of hmask[i] (branch-free: the bits are random,
    // a branch per quant would mispredict half the time).
    yb.hmask = [0; 32];
    for (k, ls) in l.chunks_exact_mut(32).enumerate() {
        for (h, q) in yb.hmask.iter_mut().zip(ls) {
            let hi = u8::from(*q > 3);
            *h |= hi << k;
            *q -= 4 * hi as i8;
        }
    }
    for h in 0..2 {
        let j = 128 * h;
        let lq = |i: usize| l[j + i] as u8;
        for i in 0..32 {
            yb.qs[32 * h + i] = lq(i) | (lq(i + 32) << 2) | (lq(i + 64) << 4) | (lq(i + 96) << 6);
        }
    }
}

/// The 16 6-bit scales (0..=63, stored `+32`) of a q3_k block, unpacked with ggml's 32-bit word
/// operations: bytes 0..8 hold the low nibbles of scales 0..8 and 8..16, bytes 8..12 the high
/// 2-bit pairs.
#[inline(always)]
pub(crate) fn unpack_scales(q: &[u8; 12]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let w = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (a0, a1, tmp) = (w(0), w(1), w(2));
    let words = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0i8; 16];
    for (o, wd) in out.chunks_exact_mut(4).zip(words) {
        for (b, v) in o.iter_mut().zip(wd.to_le_bytes()) {
            *b = v as i8;
        }
    }
    out
}

/// The 3-bit quant minus 4 (−4..=3) of element `e` (0..256).
#[inline(always)]
pub(crate) fn q3(x: &BlockQ3K, e: usize) -> i32 {
    let (h, k, i) = (e / 128, (e / 32) % 4, e % 32);
    let low = i32::from((x.qs[32 * h + i] >> (2 * k)) & 3);
    let high = (x.hmask[i] >> (e / 32)) & 1;
    low - if high != 0 { 0 } else { 4 }
}

/// Dequantizes `x` into `y`: `y = (d·(sc − 32))·(q − 4)`.
pub fn dequantize_row_q3_k_ref(x: &[BlockQ3K], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK_K,
        "q3_k: output length must be 256 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d_all = xb.d.to_f32();
        let sc = unpack_scales(&xb.scales);
        for (s, out) in yb.chunks_exact_mut(16).enumerate() {
            let dl = d_all * f32::from(sc[s] - 32);
            for (i, o) in out.iter_mut().enumerate() {
                *o = dl * q3(xb, 16 * s + i) as f32;
            }
        }
    }
}

/// One super-block of a q3_k·q8_k dot: `(f16(d)·dy)·Σ_j (sc_j − 32)·Σ (q − 4)·y` with exact
/// integer sums.
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ3K, y: &BlockQ8K) -> f32 {
    let sc = unpack_scales(&x.scales);
    let mut sumi = 0i32;
    for (s, &scale) in sc.iter().enumerate() {
        let mut acc = 0i32;
        for e in 16 * s..16 * s + 16 {
            acc += q3(x, e) * i32::from(y.qs[e]);
        }
        sumi += i32::from(scale - 32) * acc;
    }
    (x.d.to_f32() * y.d) * sumi as f32
}

/// Dot product of a q3_k row with a q8_k row; every level returns the same bits.
pub fn vec_dot_q3_k_q8_k_ref(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q3_k dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-wise unpacking against the encoder's byte-wise packing.
    #[test]
    fn unpack_inverts_the_packing() {
        for seed in 0u32..300 {
            let mut v = [0u8; 16];
            for (j, b) in v.iter_mut().enumerate() {
                *b = (seed.wrapping_mul(2_654_435_761).rotate_left(5 * j as u32) >> 9) as u8 & 63;
            }
            let mut packed = [0u8; 12];
            for (j, &q) in v.iter().enumerate() {
                if j < 8 {
                    packed[j] = q & 0x0f;
                } else {
                    packed[j - 8] |= (q & 0x0f) << 4;
                }
                packed[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
            }
            let got = unpack_scales(&packed);
            for j in 0..16 {
                assert_eq!(got[j] as u8, v[j], "seed {seed} scale {j}");
            }
        }
    }
}
