//! q4_k and q6_k encoders with AVX-512: the AVX2 lane algorithm (see `avx2::kencode`) on 16
//! lanes — the 16 sub-blocks of one q6_k super-block, or of two q4_k super-blocks — so one
//! dependency chain serves twice the sub-blocks. Byte-identical to the scalar references.

use std::arch::x86_64::*;

use llamapack_format::blocks::{BlockQ4K, BlockQ6K, QK_K};

use crate::{q4_k, q6_k};

const SIGN: i32 = i32::MIN;

#[inline]
#[target_feature(enable = "avx512f")]
fn nearest_int(v: __m512) -> __m512i {
    let b = _mm512_castps_si512(_mm512_add_ps(v, _mm512_set1_ps(12_582_912.0)));
    _mm512_sub_epi32(
        _mm512_and_si512(b, _mm512_set1_epi32(0x007f_ffff)),
        _mm512_set1_epi32(0x0040_0000),
    )
}

#[inline]
#[target_feature(enable = "avx512f")]
fn clamp(v: __m512i, lo: i32, hi: i32) -> __m512i {
    _mm512_max_epi32(
        _mm512_min_epi32(v, _mm512_set1_epi32(hi)),
        _mm512_set1_epi32(lo),
    )
}

#[inline]
#[target_feature(enable = "avx512f")]
fn neg(v: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_xor_si512(
        _mm512_castps_si512(v),
        _mm512_set1_epi32(SIGN),
    ))
}

/// Lane j is `x[stride·j + i]`.
///
/// # Safety
/// `15·stride + i < x.len()`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn gather(x: &[f32], stride: i32, i: usize) -> __m512 {
    let idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(stride),
    );
    // SAFETY: the caller guarantees every gathered index is inside x.
    unsafe { _mm512_i32gather_ps::<4>(idx, x.as_ptr().add(i)) }
}

/// `make_qkx2_quants` (q4_k's parameters) on the 16 sub-blocks of two super-blocks.
#[target_feature(enable = "avx512f")]
fn qkx2_lanes(xb: &[f32]) -> (__m512, __m512, [__m512i; 32]) {
    assert!(xb.len() == 2 * QK_K);
    let zero = _mm512_setzero_ps();
    let mut x = [zero; 32];
    for (i, v) in x.iter_mut().enumerate() {
        // SAFETY: 32·15 + i < 512.
        *v = unsafe { gather(xb, 32, i) };
    }
    let mut sum_x2 = zero;
    for v in &x {
        sum_x2 = _mm512_add_ps(sum_x2, _mm512_mul_ps(*v, *v));
    }
    let av_x = _mm512_sqrt_ps(_mm512_div_ps(sum_x2, _mm512_set1_ps(32.0)));
    let w = x.map(|v| _mm512_add_ps(av_x, _mm512_abs_ps(v)));
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = _mm512_mul_ps(sum_w, x[0]);
    for i in 1..32 {
        min = _mm512_min_ps(x[i], min);
        max = _mm512_max_ps(x[i], max);
        sum_w = _mm512_add_ps(sum_w, w[i]);
        sum_x = _mm512_add_ps(sum_x, _mm512_mul_ps(w[i], x[i]));
    }
    min = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(min, zero), min, zero);
    let flat = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(max, min);
    let min0 = min;
    let iscale = _mm512_div_ps(_mm512_set1_ps(15.0), _mm512_sub_ps(max, min));
    let mut scale = _mm512_div_ps(_mm512_set1_ps(1.0), iscale);
    let mut best_error = zero;
    let mut l = [_mm512_setzero_si512(); 32];
    for i in 0..32 {
        l[i] = clamp(
            nearest_int(_mm512_mul_ps(iscale, _mm512_sub_ps(x[i], min))),
            0,
            15,
        );
        let diff = _mm512_sub_ps(
            _mm512_add_ps(_mm512_mul_ps(scale, _mm512_cvtepi32_ps(l[i])), min),
            x[i],
        );
        best_error = _mm512_add_ps(best_error, _mm512_mul_ps(w[i], _mm512_mul_ps(diff, diff)));
    }
    let mut laux = [_mm512_setzero_si512(); 32];
    for is in 0..=20 {
        let num = -1.0f32 + 0.1 * is as f32 + 15.0;
        let iscale = _mm512_div_ps(_mm512_set1_ps(num), _mm512_sub_ps(max, min));
        let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
        for i in 0..32 {
            laux[i] = clamp(
                nearest_int(_mm512_mul_ps(iscale, _mm512_sub_ps(x[i], min))),
                0,
                15,
            );
            let lf = _mm512_cvtepi32_ps(laux[i]);
            let wl = _mm512_mul_ps(w[i], lf);
            sum_l = _mm512_add_ps(sum_l, wl);
            sum_l2 = _mm512_add_ps(sum_l2, _mm512_mul_ps(wl, lf));
            sum_xl = _mm512_add_ps(sum_xl, _mm512_mul_ps(wl, x[i]));
        }
        let det = _mm512_sub_ps(_mm512_mul_ps(sum_w, sum_l2), _mm512_mul_ps(sum_l, sum_l));
        let mut this_scale = _mm512_div_ps(
            _mm512_sub_ps(_mm512_mul_ps(sum_w, sum_xl), _mm512_mul_ps(sum_x, sum_l)),
            det,
        );
        let mut this_min = _mm512_div_ps(
            _mm512_sub_ps(_mm512_mul_ps(sum_l2, sum_x), _mm512_mul_ps(sum_l, sum_xl)),
            det,
        );
        let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(this_min, zero);
        this_min = _mm512_mask_blend_ps(pos, this_min, zero);
        this_scale = _mm512_mask_blend_ps(pos, this_scale, _mm512_div_ps(sum_xl, sum_l2));
        let mut cur_error = zero;
        for i in 0..32 {
            let diff = _mm512_sub_ps(
                _mm512_add_ps(
                    _mm512_mul_ps(this_scale, _mm512_cvtepi32_ps(laux[i])),
                    this_min,
                ),
                x[i],
            );
            cur_error = _mm512_add_ps(cur_error, _mm512_mul_ps(w[i], _mm512_mul_ps(diff, diff)));
        }
        let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(det, zero)
            & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(cur_error, best_error);
        for i in 0..32 {
            l[i] = _mm512_mask_blend_epi32(take, l[i], laux[i]);
        }
        best_error = _mm512_mask_blend_ps(take, best_error, cur_error);
        scale = _mm512_mask_blend_ps(take, scale, this_scale);
        min = _mm512_mask_blend_ps(take, min, this_min);
    }
    for v in &mut l {
        *v = _mm512_mask_blend_epi32(flat, *v, _mm512_setzero_si512());
    }
    scale = _mm512_mask_blend_ps(flat, scale, zero);
    min = _mm512_mask_blend_ps(flat, min, min0);
    (scale, neg(min), l)
}

/// Stores lane vectors: `out[j][i]` = lane j of `v[i]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose_out<const I: usize>(v: &[__m512i; I], out: &mut [[i32; I]; 16]) {
    for (i, r) in v.iter().enumerate() {
        let mut lanes = [0i32; 16];
        // SAFETY: lanes holds 16 i32.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), *r) };
        for (j, &q) in lanes.iter().enumerate() {
            out[j][i] = q;
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn to_array(v: __m512) -> [f32; 16] {
    let mut a = [0f32; 16];
    // SAFETY: a holds 16 floats.
    unsafe { _mm512_storeu_ps(a.as_mut_ptr(), v) };
    a
}

/// q4_k encoder, byte-identical to [`crate::q4_k::quantize_row_q4_k_ref`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_q4_k(x: &[f32], y: &mut [u8]) {
    const B: usize = size_of::<BlockQ4K>();
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == B * nb);
    let pairs = nb / 2;
    for p in 0..pairs {
        let xs = &x[2 * QK_K * p..2 * QK_K * (p + 1)];
        let (sv, mv, lq) = qkx2_lanes(xs);
        let (scales, mins) = (to_array(sv), to_array(mv));
        let mut lt = [[0i32; 32]; 16];
        transpose_out(&lq, &mut lt);
        for h in 0..2 {
            let mut l = [0u8; QK_K];
            for j in 0..8 {
                for (i, &q) in lt[8 * h + j].iter().enumerate() {
                    l[32 * j + i] = q as u8;
                }
            }
            let sc: [f32; 8] = scales[8 * h..8 * h + 8].try_into().expect("8 scales");
            let mn: [f32; 8] = mins[8 * h..8 * h + 8].try_into().expect("8 mins");
            let mut blk: BlockQ4K = bytemuck::Zeroable::zeroed();
            let xb = &xs[QK_K * h..QK_K * (h + 1)];
            q4_k::finish_block(xb, &sc, &mn, &mut l, &mut blk);
            let b = 2 * p + h;
            y[B * b..B * (b + 1)].copy_from_slice(bytemuck::bytes_of(&blk));
        }
    }
    if nb % 2 == 1 {
        crate::x86::avx2::quantize_q4_k(&x[QK_K * (nb - 1)..], &mut y[B * (nb - 1)..]);
    }
}

/// `make_qx_quants(16, nmax 32, rmse_type 1)` on the 16 sub-blocks of one super-block.
#[target_feature(enable = "avx512f")]
fn qx_lanes(xb: &[f32]) -> (__m512, [__m512i; 16]) {
    assert!(xb.len() == QK_K);
    let zero = _mm512_setzero_ps();
    let mut x = [zero; 16];
    for (i, v) in x.iter_mut().enumerate() {
        // SAFETY: 16·15 + i < 256.
        *v = unsafe { gather(xb, 16, i) };
    }
    let (mut amax, mut max) = (zero, zero);
    for v in &x {
        let ax = _mm512_abs_ps(*v);
        let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(ax, amax);
        amax = _mm512_mask_blend_ps(gt, amax, ax);
        max = _mm512_mask_blend_ps(gt, max, *v);
    }
    let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(amax, _mm512_set1_ps(1e-15));
    let w = x.map(|v| _mm512_mul_ps(v, v));
    let search = |iscale: __m512, l: &mut [__m512i; 16]| {
        let (mut sumlx, mut suml2) = (zero, zero);
        for i in 0..16 {
            let q = clamp(nearest_int(_mm512_mul_ps(iscale, x[i])), -32, 31);
            l[i] = _mm512_add_epi32(q, _mm512_set1_epi32(32));
            let qf = _mm512_cvtepi32_ps(q);
            sumlx = _mm512_add_ps(sumlx, _mm512_mul_ps(_mm512_mul_ps(w[i], x[i]), qf));
            suml2 = _mm512_add_ps(suml2, _mm512_mul_ps(_mm512_mul_ps(w[i], qf), qf));
        }
        (sumlx, suml2)
    };
    let mut l = [_mm512_setzero_si512(); 16];
    let (sumlx, suml2) = search(_mm512_div_ps(_mm512_set1_ps(-32.0), max), &mut l);
    let nz = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(suml2, zero);
    let mut scale = _mm512_maskz_mov_ps(nz, _mm512_div_ps(sumlx, suml2));
    let mut best = _mm512_mul_ps(scale, sumlx);
    let mut laux = [_mm512_setzero_si512(); 16];
    for is in (-9..=9).filter(|&is| is != 0) {
        let num = -(32.0f32 + 0.1 * is as f32);
        let (sumlx, suml2) = search(_mm512_div_ps(_mm512_set1_ps(num), max), &mut laux);
        let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(suml2, zero)
            & _mm512_cmp_ps_mask::<_CMP_GT_OQ>(
                _mm512_mul_ps(sumlx, sumlx),
                _mm512_mul_ps(best, suml2),
            );
        for i in 0..16 {
            l[i] = _mm512_mask_blend_epi32(take, l[i], laux[i]);
        }
        let new_scale = _mm512_div_ps(sumlx, suml2);
        scale = _mm512_mask_blend_ps(take, scale, new_scale);
        best = _mm512_mask_blend_ps(take, best, _mm512_mul_ps(new_scale, sumlx));
    }
    for v in &mut l {
        *v = _mm512_mask_blend_epi32(tiny, *v, _mm512_setzero_si512());
    }
    (_mm512_mask_blend_ps(tiny, scale, zero), l)
}

/// q6_k encoder, byte-identical to [`crate::q6_k::quantize_row_q6_k_ref`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_q6_k(x: &[f32], y: &mut [u8]) {
    const B: usize = size_of::<BlockQ6K>();
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == B * nb);
    for (xb, out) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(B)) {
        let (sv, lq) = qx_lanes(xb);
        let scales = to_array(sv);
        let mut lt = [[0i32; 16]; 16];
        transpose_out(&lq, &mut lt);
        let mut l = [0i8; QK_K];
        for (j, r) in lt.iter().enumerate() {
            for (i, &q) in r.iter().enumerate() {
                l[16 * j + i] = q as i8;
            }
        }
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for &s in &scales {
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        let mut blk: BlockQ6K = bytemuck::Zeroable::zeroed();
        q6_k::finish_block(xb, &scales, max_scale, max_abs_scale, &mut l, &mut blk);
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}
