//! q6_k: super-blocks of 256 values in 16 sub-blocks of 16, symmetric 6-bit quants with int8
//! sub-block scales and an f16 super-block scale (6.5625 bits per weight).
//!
//! `x = d·scales[j]·(q − 32)`, `q` in 0..=63 split into 4 low bits (`ql`) and 2 high bits
//! (`qh`). The encoder is ggml's `quantize_row_q6_K_ref` step for step (`make_qx_quants` with
//! `rmse_type = 1`), so the error matches `llama-quantize` without an importance matrix.

use half::f16;
use llamapack_format::blocks::{BlockQ6K, BlockQ8K, QK_K};

use crate::kquant_search::{GROUP_MAX_EPS, make_qx_quants};
use crate::rounding::nearest_int;

crate::format::block_format!(
    Q6K,
    Q6K,
    BlockQ6K,
    BlockQ8K,
    quantize_row_q6_k_ref,
    dequantize_row_q6_k_ref,
    block_dot,
    weighted: crate::weighted::quantize_q6_k
);

/// Quantizes `x` (a multiple of 256 values) into `y` exactly as ggml's `quantize_row_q6_K_ref`.
///
/// A super-block whose largest sub-block scale is below 1e-15 is all zeros. Otherwise
/// `iscale = −128 / max_scale`, `d = f16(1/iscale)`, `scales[j] = min(127, nearest_int(iscale ·
/// scale_j))` and every value is re-quantized against `d·scales[j]`; a sub-block whose decoded
/// scale is 0 keeps its `make_qx_quants` quants, as in ggml. A value of ~1e9 overflows the f16
/// `d` to inf (ggml does the same).
pub fn quantize_row_q6_k_ref(x: &[f32], y: &mut [BlockQ6K]) {
    assert_eq!(
        x.len(),
        y.len() * QK_K,
        "q6_k: row length must be 256 × blocks"
    );
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut max_scale = 0.0f32;
        let mut max_abs_scale = 0.0f32;
        for ib in 0..QK_K / 16 {
            let s = make_qx_quants(
                32,
                &xb[16 * ib..16 * ib + 16],
                &mut l[16 * ib..16 * ib + 16],
                None,
            );
            scales[ib] = s;
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        finish_block(xb, &scales, max_scale, max_abs_scale, &mut l, yb);
    }
}

/// The second half of ggml's q6_k encoder, shared by every level: quantize the 16 sub-block
/// scales to int8, re-quantize every value against its decoded scale (a sub-block whose
/// decoded scale is 0 keeps the search's quants `l`), pack.
/// (Always inlined: the SIMD encoders call it between vector code, and a call into
/// SSE-compiled code from there pays AVX-512 ↔ SSE transition stalls.)
#[inline(always)]
pub(crate) fn finish_block(
    xb: &[f32],
    scales: &[f32; 16],
    max_scale: f32,
    max_abs_scale: f32,
    l: &mut [i8; QK_K],
    yb: &mut BlockQ6K,
) {
    if max_abs_scale < GROUP_MAX_EPS {
        *yb = bytemuck::Zeroable::zeroed();
        return;
    }
    let iscale = -128.0 / max_scale;
    yb.d = f16::from_f32(1.0 / iscale);
    for (sc, &s) in yb.scales.iter_mut().zip(scales.iter()) {
        // C: `int8_t = MIN(127, nearest_int(...))` keeps the low byte.
        *sc = nearest_int(iscale * s).min(127) as i8;
    }
    for j in 0..QK_K / 16 {
        let d = yb.d.to_f32() * f32::from(yb.scales[j]);
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(xb[16 * j + ii] / d).clamp(-32, 31);
            l[16 * j + ii] = (q + 32) as i8;
        }
    }
    pack_quants(l, yb);
}

/// Packs the 256 quants (0..=63, the value plus 32): low nibbles into `ql`, the top 2 bits
/// into `qh`.
#[inline(always)]
pub(crate) fn pack_quants(l: &[i8; QK_K], yb: &mut BlockQ6K) {
    for h in 0..2 {
        let (j, ql, qh) = (
            128 * h,
            &mut yb.ql[64 * h..64 * h + 64],
            &mut yb.qh[32 * h..32 * h + 32],
        );
        let lq = |i: usize| l[j + i] as u8;
        for i in 0..32 {
            ql[i] = (lq(i) & 0x0f) | ((lq(i + 64) & 0x0f) << 4);
            ql[i + 32] = (lq(i + 32) & 0x0f) | ((lq(i + 96) & 0x0f) << 4);
            qh[i] = (lq(i) >> 4)
                | ((lq(i + 32) >> 4) << 2)
                | ((lq(i + 64) >> 4) << 4)
                | ((lq(i + 96) >> 4) << 6);
        }
    }
}

/// The 6-bit quant `k` (0..4: element `32k + l` of half `h`) minus 32.
#[inline(always)]
pub(crate) fn q6(x: &BlockQ6K, h: usize, k: usize, l: usize) -> i32 {
    let ql = x.ql[64 * h + l + 32 * (k & 1)];
    let low = if k < 2 { ql & 0x0f } else { ql >> 4 };
    let high = (x.qh[32 * h + l] >> (2 * k)) & 3;
    i32::from(low | (high << 4)) - 32
}

/// Dequantizes `x` into `y`: `y = (d·f32(scale))·f32(q − 32)`.
pub fn dequantize_row_q6_k_ref(x: &[BlockQ6K], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK_K,
        "q6_k: output length must be 256 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = xb.d.to_f32();
        for h in 0..2 {
            for k in 0..4 {
                for l in 0..32 {
                    let sc = f32::from(xb.scales[8 * h + 2 * k + l / 16]);
                    yb[128 * h + 32 * k + l] = d * sc * q6(xb, h, k, l) as f32;
                }
            }
        }
    }
}

/// One super-block of a q6_k·q8_k dot: `(f16(d)·dy)·Σ_j scale_j·Σ (q − 32)·y`, exact integers.
#[inline(always)]
pub(crate) fn block_dot(x: &BlockQ6K, y: &BlockQ8K) -> f32 {
    let mut sumi = 0i32;
    for h in 0..2 {
        for k in 0..4 {
            for half in 0..2 {
                let mut s = 0i32;
                for l in 16 * half..16 * half + 16 {
                    s += q6(x, h, k, l) * i32::from(y.qs[128 * h + 32 * k + l]);
                }
                sumi += i32::from(x.scales[8 * h + 2 * k + half]) * s;
            }
        }
    }
    (x.d.to_f32() * y.d) * sumi as f32
}

/// Dot product of a q6_k row with a q8_k row; like q4_k, every level returns the same bits.
pub fn vec_dot_q6_k_q8_k_ref(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q6_k dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}
