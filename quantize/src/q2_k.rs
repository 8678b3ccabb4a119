//! q2_k: super-blocks of 256 values in 16 sub-blocks of 16; each sub-block has a 4-bit scale
//! and a 4-bit min, themselves scaled by the f16 `d` and `dmin` (2.625 bits per weight).
//!
//! `x = d·sc[j]·q − dmin·m[j]`, `q` in 0..=3. The encoder is ggml's `quantize_row_q2_K_ref`
//! step for step (`make_qkx2_quants` with weights `|x|` and absolute error, the same f32 order,
//! ggml's `nearest_int`), so the error matches `llama-quantize` without an importance matrix.

use half::f16;
use llamapack_format::blocks::{BlockQ2K, BlockQ8K, QK_K};

use crate::kquant_search::{Q2K_SEARCH, make_qkx2_quants, max_from_zero};
use crate::rounding::nearest_int;

crate::format::block_format!(
    Q2K,
    Q2K,
    BlockQ2K,
    BlockQ8K,
    quantize_row_q2_k_ref,
    dequantize_row_q2_k_ref,
    block_dot,
    weighted: crate::weighted::quantize_q2_k
);

/// Quantizes `x` (a multiple of 256 values) into `y` exactly as ggml's `quantize_row_q2_K_ref`.
///
/// Per sub-block of 16: `make_qkx2_quants(nmax 3, weights |x|, rmin −0.5, rdelta 0.1, 15 steps,
/// absolute error)`; then [`finish_block`].
pub fn quantize_row_q2_k_ref(x: &[f32], y: &mut [BlockQ2K]) {
    assert_eq!(
        x.len(),
        y.len() * QK_K,
        "q2_k: row length must be 256 × blocks"
    );
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0f32; 16];
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
        for j in 0..QK_K / 16 {
            let xs = &xb[16 * j..16 * j + 16];
            for (w, v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
            (scales[j], mins[j]) = make_qkx2_quants(
                Q2K_SEARCH,
                xs,
                &weights,
                &mut l[16 * j..16 * j + 16],
                &mut laux,
            );
        }
        finish_block(xb, &scales, &mins, &mut l, yb);
    }
}

/// The second half of ggml's q2_k encoder, shared by every level: the 16 scales and mins are
/// quantized to 4 bits against their maxima (`nearest_int(15/max · v)`, kept as C's `uint8_t`
/// keeps it; `d = max_scale/15`, `dmin = max_min/15`, stored f16, 0 if the maximum is not
/// positive), every value is re-quantized against its decoded scale and min (a sub-block whose
/// decoded scale is 0 keeps the search's quants `l`), and the quants are packed 4 to a byte.
/// (Always inlined: the SIMD encoders call it between vector code, and a call into
/// SSE-compiled code from there pays AVX-512 ↔ SSE transition stalls.)
#[inline(always)]
pub(crate) fn finish_block(
    xb: &[f32],
    scales: &[f32; 16],
    mins: &[f32; 16],
    l: &mut [u8; QK_K],
    yb: &mut BlockQ2K,
) {
    let (max_scale, max_min) = (max_from_zero(scales), max_from_zero(mins));
    if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for (sc, &s) in yb.scales.iter_mut().zip(scales) {
            *sc = nearest_int(iscale * s) as u8;
        }
        yb.d = f16::from_f32(max_scale / 15.0);
    } else {
        yb.scales = [0; 16];
        yb.d = f16::from_f32(0.0);
    }
    if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for (sc, &m) in yb.scales.iter_mut().zip(mins) {
            // C: `scales[j] |= (l << 4)` keeps the low byte of the int.
            *sc |= ((nearest_int(iscale * m) as u32) << 4) as u8;
        }
        yb.dmin = f16::from_f32(max_min / 15.0);
    } else {
        yb.dmin = f16::from_f32(0.0);
    }
    requantize_pack(xb, l, yb);
}

/// Re-quantizes every value against its decoded scale and min from the packed `scales`, `d`
/// and `dmin` of `yb` (a sub-block whose decoded scale is 0 keeps the search's quants `l`) and
/// packs the quants 4 to a byte.
#[inline(always)]
pub(crate) fn requantize_pack(xb: &[f32], l: &mut [u8; QK_K], yb: &mut BlockQ2K) {
    for j in 0..QK_K / 16 {
        let d = yb.d.to_f32() * f32::from(yb.scales[j] & 0x0f);
        if d == 0.0 {
            continue;
        }
        let dm = yb.dmin.to_f32() * f32::from(yb.scales[j] >> 4);
        for ii in 0..16 {
            let q = nearest_int((xb[16 * j + ii] + dm) / d);
            l[16 * j + ii] = q.clamp(0, 3) as u8;
        }
    }
    pack_quants(l, yb);
}

/// Packs the 256 quants (0..=3) 4 to a byte: element `128h + 32k + i` in bits `2k..2k+2` of
/// `qs[32h + i]`.
#[inline(always)]
pub(crate) fn pack_quants(l: &[u8; QK_K], yb: &mut BlockQ2K) {
    for h in 0..2 {
        let j = 128 * h;
        for i in 0..32 {
            yb.qs[32 * h + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
}

/// The 2-bit quant of element `32k + i` (k in 0..4, i in 0..32) of half `h`.
#[inline(always)]
pub(crate) fn q2(x: &BlockQ2K, h: usize, k: usize, i: usize) -> u8 {
    (x.qs[32 * h + i] >> (2 * k)) & 3
}

/// Dequantizes `x` into `y`: `y = (d·sc)·q − (dmin·m)`, in that f32 order.
pub fn dequantize_row_q2_k_ref(x: &[BlockQ2K], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK_K,
        "q2_k: output length must be 256 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = xb.d.to_f32();
        let min = xb.dmin.to_f32();
        for (s, out) in yb.chunks_exact_mut(16).enumerate() {
            // sub-block s = values 128h + 32k + 16·(s % 2) ..
            let (h, k, off) = (s / 8, (s / 2) % 4, 16 * (s % 2));
            let sc = xb.scales[s];
            let dl = d * f32::from(sc & 0x0f);
            let ml = min * f32::from(sc >> 4);
            for (i, o) in out.iter_mut().enumerate() {
                *o = dl * f32::from(q2(xb, h, k, off + i)) - ml;
            }
        }
    }
}

/// One super-block of a q2_k·q8_k dot, as ggml's scalar `ggml_vec_dot_q2_K_q8_K`:
/// `(dy·f16(d))·Σ_j sc_j·Σ q·y − (dy·f16(dmin))·Σ_j m_j·bsum_j` with exact integer sums.
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ2K, y: &BlockQ8K) -> f32 {
    let mut summs = 0i32;
    for (j, &sc) in x.scales.iter().enumerate() {
        summs += i32::from(y.bsums[j]) * i32::from(sc >> 4);
    }
    let mut isum = 0i32;
    for (s, &sc) in x.scales.iter().enumerate() {
        let (h, k, off) = (s / 8, (s / 2) % 4, 16 * (s % 2));
        let mut acc = 0i32;
        for i in off..off + 16 {
            acc += i32::from(y.qs[128 * h + 32 * k + i]) * i32::from(q2(x, h, k, i));
        }
        isum += i32::from(sc & 0x0f) * acc;
    }
    let dall = y.d * x.d.to_f32();
    let dmin = y.d * x.dmin.to_f32();
    dall * isum as f32 - dmin * summs as f32
}

/// Dot product of a q2_k row with a q8_k row: super-blocks in order, accumulated in f32 (the
/// SIMD levels return the same bits).
pub fn vec_dot_q2_k_q8_k_ref(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q2_k dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}
