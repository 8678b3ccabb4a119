//! q5_k: super-blocks of 256 values in 8 sub-blocks of 32 with q4_k's 6-bit scales and mins
//! (same packing, [`crate::q4_k::get_scale_min_k4`]) and 5-bit quants (5.5 bits per weight).
//!
//! `x = d·sc[j]·q − dmin·m[j]`, `q` in 0..=31: the low 4 bits in `qs` as in q4_k, the fifth in
//! `qh`. The encoder is ggml's `quantize_row_q5_K_ref` step for step (q4_k's algorithm with
//! nmax 31, rmin −0.5 and 15 steps), so the error matches `llama-quantize` without an
//! importance matrix.

use llamapack_format::blocks::{BlockQ5K, BlockQ8K, QK_K};

use crate::kquant_search::{Q5K_SEARCH, max_from_zero, search_sub32};
use crate::q4_k::{get_scale_min_k4, pack_scales_mins, requantize_sub32, unpack_scales_mins};

crate::format::block_format!(
    Q5K,
    Q5K,
    BlockQ5K,
    BlockQ8K,
    quantize_row_q5_k_ref,
    dequantize_row_q5_k_ref,
    block_dot,
    weighted: crate::weighted::quantize_q5_k
);

/// Quantizes `x` (a multiple of 256 values) into `y` exactly as ggml's `quantize_row_q5_K_ref`.
///
/// Per sub-block: weights `w = sqrt(mean(x²)) + |x|`, `make_qkx2_quants(nmax 31, rmin −0.5,
/// rdelta 0.1, 15 steps)`; then [`finish_block`].
pub fn quantize_row_q5_k_ref(x: &[f32], y: &mut [BlockQ5K]) {
    assert_eq!(
        x.len(),
        y.len() * QK_K,
        "q5_k: row length must be 256 × blocks"
    );
    let mut l = [0u8; QK_K];
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let (scales, mins) = search_sub32(Q5K_SEARCH, xb, &mut l);
        finish_block(xb, &scales, &mins, &mut l, yb);
    }
}

/// The second half of ggml's q5_k encoder, shared by every level: q4_k's 6-bit scales and mins
/// ([`pack_scales_mins`]), re-quantization to 0..=31 ([`requantize_sub32`]), then the low
/// nibbles into `qs` and the fifth bits into `qh`.
/// (Always inlined: the SIMD encoders call it between vector code, and a call into
/// SSE-compiled code from there pays AVX-512 ↔ SSE transition stalls.)
#[inline(always)]
pub(crate) fn finish_block(
    xb: &[f32],
    scales: &[f32; 8],
    mins: &[f32; 8],
    l: &mut [u8; QK_K],
    yb: &mut BlockQ5K,
) {
    let (max_scale, max_min) = (max_from_zero(scales), max_from_zero(mins));
    (yb.d, yb.dmin) = pack_scales_mins(scales, mins, max_scale, max_min, &mut yb.scales);
    requantize_sub32(xb, &yb.scales, yb.d, yb.dmin, 31, l);
    pack_quants(l, yb);
}

/// Packs the 256 quants (0..=31): the low nibbles into `qs` as q4_k does, the fifth bits into
/// `qh` (bit `2·jj` of `qh[j]` for element `64·jj + j`, bit `2·jj + 1` for `64·jj + 32 + j`).
#[inline(always)]
pub(crate) fn pack_quants(l: &[u8; QK_K], yb: &mut BlockQ5K) {
    yb.qh = [0; QK_K / 8];
    for jj in 0..QK_K / 64 {
        let n = 64 * jj;
        for j in 0..32 {
            // bit 4 of each quant goes to qh (branch-free), the low 4 bits to qs
            let (l1, l2) = (l[n + j], l[n + j + 32]);
            yb.qh[j] |= ((l1 >> 4) | ((l2 >> 4) << 1)) << (2 * jj);
            yb.qs[32 * jj + j] = (l1 & 0x0f) | ((l2 & 0x0f) << 4);
        }
    }
}

/// The 5-bit quant of element `64·jj + 32·half + i`.
#[inline(always)]
pub(crate) fn q5(x: &BlockQ5K, jj: usize, half: usize, i: usize) -> u8 {
    let b = x.qs[32 * jj + i];
    let low = if half == 0 { b & 0x0f } else { b >> 4 };
    let high = (x.qh[i] >> (2 * jj + half)) & 1;
    low | (high << 4)
}

/// Dequantizes `x` into `y`: `y = (d·sc)·q − (dmin·m)`, in that f32 order.
pub fn dequantize_row_q5_k_ref(x: &[BlockQ5K], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK_K,
        "q5_k: output length must be 256 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = xb.d.to_f32();
        let min = xb.dmin.to_f32();
        for (s, out) in yb.chunks_exact_mut(32).enumerate() {
            let (sc, m) = get_scale_min_k4(s, &xb.scales);
            let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
            for (i, o) in out.iter_mut().enumerate() {
                *o = d1 * f32::from(q5(xb, s / 2, s % 2, i)) - m1;
            }
        }
    }
}

/// One super-block of a q5_k·q8_k dot: `d·Σ_j sc_j·Σ q·y − dmin·Σ_j m_j·bsum_j` with exact
/// integer sums, `d = f16(d)·dy`, `dmin = f16(dmin)·dy` (q4_k's steps).
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ5K, y: &BlockQ8K) -> f32 {
    let sm = unpack_scales_mins(&x.scales);
    let mut sumi = 0i32;
    for (s, &sc) in sm[..8].iter().enumerate() {
        let mut acc = 0i32;
        for i in 0..32 {
            acc += i32::from(q5(x, s / 2, s % 2, i)) * i32::from(y.qs[32 * s + i]);
        }
        sumi += i32::from(sc) * acc;
    }
    let mut summ = 0i32;
    for j in 0..8 {
        let bs = i32::from(y.bsums[2 * j]) + i32::from(y.bsums[2 * j + 1]);
        summ += i32::from(sm[8 + j]) * bs;
    }
    let d = x.d.to_f32() * y.d;
    let dmin = x.dmin.to_f32() * y.d;
    d * sumi as f32 - dmin * summ as f32
}

/// Dot product of a q5_k row with a q8_k row; every level returns the same bits.
pub fn vec_dot_q5_k_q8_k_ref(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q5_k dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}
