//! q4_k: super-blocks of 256 values in 8 sub-blocks of 32; each sub-block has a 6-bit scale and
//! a 6-bit min, themselves scaled by the f16 `d` and `dmin` (4.5 bits per weight).
//!
//! `x = d·sc[j]·q − dmin·m[j]`, `q` in 0..=15. The encoder is ggml's `quantize_row_q4_K_ref`
//! step for step (its weighted grid search `make_qkx2_quants`, the same f32 operation order and
//! ggml's `nearest_int`), so the error matches `llama-quantize` without an importance matrix.

use half::f16;
use llamapack_format::blocks::{BlockQ4K, BlockQ8K, K_SCALE_SIZE, QK_K};

use crate::kquant_search::{Q4K_SEARCH, max_from_zero, search_sub32};
use crate::rounding::nearest_int;

crate::format::block_format!(
    Q4K,
    Q4K,
    BlockQ4K,
    BlockQ8K,
    quantize_row_q4_k_ref,
    dequantize_row_q4_k_ref,
    block_dot,
    weighted: crate::weighted::quantize_q4_k
);

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8).
#[inline(always)]
pub fn get_scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// All 8 scales (bytes 0..8) and 8 mins (bytes 8..16) at once, with 32-bit word operations.
#[inline(always)]
pub(crate) fn unpack_scales_mins(q: &[u8; K_SCALE_SIZE]) -> [u8; 16] {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let w = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (w0, w1, w2) = (w(0), w(1), w(2));
    let scales_lo = w0 & LOW6;
    let scales_hi = (w2 & LOW4) | (((w0 >> 6) & LOW2) << 4);
    let mins_lo = w1 & LOW6;
    let mins_hi = ((w2 >> 4) & LOW4) | (((w1 >> 6) & LOW2) << 4);
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&scales_lo.to_le_bytes());
    out[4..8].copy_from_slice(&scales_hi.to_le_bytes());
    out[8..12].copy_from_slice(&mins_lo.to_le_bytes());
    out[12..16].copy_from_slice(&mins_hi.to_le_bytes());
    out
}

/// Quantizes `x` (a multiple of 256 values) into `y` exactly as ggml's `quantize_row_q4_K_ref`.
///
/// Per sub-block: weights `w = sqrt(mean(x²)) + |x|`, `make_qkx2_quants(nmax 15, rmin −1,
/// rdelta 0.1, 20 steps)`; the 8 scales and mins are quantized to 6 bits against their maxima
/// (`d = max_scale/63`, `dmin = max_min/63`, stored f16); then every value is re-quantized
/// against its decoded sub-block scale and min. A sub-block whose decoded scale is 0 keeps the
/// quants of the grid search, as in ggml.
pub fn quantize_row_q4_k_ref(x: &[f32], y: &mut [BlockQ4K]) {
    assert_eq!(
        x.len(),
        y.len() * QK_K,
        "q4_k: row length must be 256 × blocks"
    );
    let mut l = [0u8; QK_K];
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let (scales, mins) = search_sub32(Q4K_SEARCH, xb, &mut l);
        finish_block(xb, &scales, &mins, &mut l, yb);
    }
}

/// The second half of ggml's q4_k encoder, shared by every level: quantize the 8 sub-block
/// scales and mins to 6 bits, re-quantize every value against its decoded scale and min (a
/// sub-block whose decoded scale is 0 keeps the search's quants `l`), pack.
/// (Always inlined: the SIMD encoders call it between vector code, and a call into
/// SSE-compiled code from there pays AVX-512 ↔ SSE transition stalls.)
#[inline(always)]
pub(crate) fn finish_block(
    xb: &[f32],
    scales: &[f32; 8],
    mins: &[f32; 8],
    l: &mut [u8; QK_K],
    yb: &mut BlockQ4K,
) {
    let (max_scale, max_min) = (max_from_zero(scales), max_from_zero(mins));
    (yb.d, yb.dmin) = pack_scales_mins(scales, mins, max_scale, max_min, &mut yb.scales);
    requantize_sub32(xb, &yb.scales, yb.d, yb.dmin, 15, l);
    pack_quants(l, yb);
}

/// Packs the 256 quants (0..=15) into `qs`: element `64·jj + i` in the low nibble of byte
/// `32·jj + i`, element `64·jj + 32 + i` in its high nibble.
#[inline(always)]
pub(crate) fn pack_quants(l: &[u8; QK_K], yb: &mut BlockQ4K) {
    for (jj, q) in yb.qs.chunks_exact_mut(32).enumerate() {
        let j = 64 * jj;
        for (i, b) in q.iter_mut().enumerate() {
            *b = l[j + i] | (l[j + i + 32] << 4);
        }
    }
}

/// The 6-bit scales and mins of q4_k and q5_k: each of the 8 is quantized against the largest
/// (`nearest_int(63/max · v)`, truncated to a byte as C's `uint8_t` does, then at most 63) and
/// packed as [`get_scale_min_k4`] reads them. Returns the f16 `d = max_scale/63` and
/// `dmin = max_min/63`.
#[inline(always)]
pub(crate) fn pack_scales_mins(
    scales: &[f32; 8],
    mins: &[f32; 8],
    max_scale: f32,
    max_min: f32,
    out: &mut [u8; K_SCALE_SIZE],
) -> (f16, f16) {
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    for j in 0..QK_K / 32 {
        // C: `uint8_t ls = nearest_int(...)` truncates to the low byte, then MIN(63, ls).
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            out[j] = ls;
            out[j + 4] = lm;
        } else {
            out[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
            out[j - 4] |= (ls >> 4) << 6;
            out[j] |= (lm >> 4) << 6;
        }
    }
    (
        f16::from_f32(max_scale / 63.0),
        f16::from_f32(max_min / 63.0),
    )
}

/// Re-quantizes every value of the 8 sub-blocks of 32 against its decoded scale and min:
/// `l = clamp(nearest_int((x + dmin·m) / (d·sc)), 0, nmax)`; a sub-block whose decoded scale
/// is 0 keeps the search's quants, as in ggml (q4_k: nmax 15, q5_k: 31).
#[inline(always)]
pub(crate) fn requantize_sub32(
    xb: &[f32],
    packed: &[u8; K_SCALE_SIZE],
    d: f16,
    dmin: f16,
    nmax: i32,
    l: &mut [u8; QK_K],
) {
    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, packed);
        let d = d.to_f32() * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * f32::from(m);
        for ii in 0..32 {
            let q = nearest_int((xb[32 * j + ii] + dm) / d);
            l[32 * j + ii] = q.clamp(0, nmax) as u8;
        }
    }
}

/// Dequantizes `x` into `y`: `y = (d·sc)·q − (dmin·m)`, in that f32 order (no fused multiply-add).
pub fn dequantize_row_q4_k_ref(x: &[BlockQ4K], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK_K,
        "q4_k: output length must be 256 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = xb.d.to_f32();
        let min = xb.dmin.to_f32();
        for (jj, (q, out)) in xb
            .qs
            .chunks_exact(32)
            .zip(yb.chunks_exact_mut(64))
            .enumerate()
        {
            let (sc1, m1) = get_scale_min_k4(2 * jj, &xb.scales);
            let (sc2, m2) = get_scale_min_k4(2 * jj + 1, &xb.scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            for (l, &b) in q.iter().enumerate() {
                out[l] = d1 * f32::from(b & 0x0f) - m1;
                out[l + 32] = d2 * f32::from(b >> 4) - m2;
            }
        }
    }
}

/// One super-block of a q4_k·q8_k dot: `d·Σ_j sc_j·Σ q·y − dmin·Σ_j m_j·bsum_j` with exact
/// integer sums, `d = f16(d)·dy`, `dmin = f16(dmin)·dy`.
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ4K, y: &BlockQ8K) -> f32 {
    let sm = unpack_scales_mins(&x.scales);
    let mut sumi = 0i32;
    for (jj, q) in x.qs.chunks_exact(32).enumerate() {
        let (mut lo, mut hi) = (0i32, 0i32);
        for (l, &b) in q.iter().enumerate() {
            lo += i32::from(b & 0x0f) * i32::from(y.qs[64 * jj + l]);
            hi += i32::from(b >> 4) * i32::from(y.qs[64 * jj + 32 + l]);
        }
        sumi += i32::from(sm[2 * jj]) * lo + i32::from(sm[2 * jj + 1]) * hi;
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

/// Dot product of a q4_k row with a q8_k row: super-blocks in order, accumulated in f32.
/// The SIMD kernels compute the same per-block integers and f32 operations, so every level
/// returns the same bits.
pub fn vec_dot_q4_k_q8_k_ref(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q4_k dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_matches_get_scale_min_k4() {
        let mut q = [0u8; K_SCALE_SIZE];
        for seed in 0u32..500 {
            for (i, b) in q.iter_mut().enumerate() {
                *b = (seed.wrapping_mul(2_654_435_761).rotate_left(i as u32 * 3) >> 7) as u8;
            }
            let sm = unpack_scales_mins(&q);
            for j in 0..8 {
                assert_eq!(get_scale_min_k4(j, &q), (sm[j], sm[8 + j]));
            }
        }
    }
}
