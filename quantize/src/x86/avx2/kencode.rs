//! q4_k and q6_k encoders with AVX2, byte-identical to the scalar references.
//!
//! ggml's searches (`make_qkx2_quants`, `make_qx_quants`) run once per sub-block with sums in a
//! fixed order. Here the sub-blocks of a super-block are transposed into the 8 lanes, and each
//! lane performs exactly the scalar operations in the scalar order (no FMA, correctly rounded
//! `div`/`sqrt`, the same `nearest_int` bit trick, decisions as lane masks), so every lane
//! produces the reference's bits. The cheap second half (scale packing, re-quantization) is the
//! shared scalar `finish_block`.

use std::arch::x86_64::*;

use llamapack_format::blocks::{BlockQ4K, BlockQ6K, QK_K};

use crate::{q4_k, q6_k};

/// ggml's `nearest_int` on 8 lanes (bit-identical to [`crate::rounding::nearest_int`]).
#[inline]
#[target_feature(enable = "avx2")]
fn nearest_int(v: __m256) -> __m256i {
    let b = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12_582_912.0)));
    _mm256_sub_epi32(
        _mm256_and_si256(b, _mm256_set1_epi32(0x007f_ffff)),
        _mm256_set1_epi32(0x0040_0000),
    )
}

#[inline]
#[target_feature(enable = "avx2")]
fn clamp(v: __m256i, lo: i32, hi: i32) -> __m256i {
    _mm256_max_epi32(
        _mm256_min_epi32(v, _mm256_set1_epi32(hi)),
        _mm256_set1_epi32(lo),
    )
}

#[inline]
#[target_feature(enable = "avx2")]
fn blend(a: __m256, b: __m256, take_b: __m256) -> __m256 {
    _mm256_blendv_ps(a, b, take_b)
}

/// Lane j of the result is element `i` of sub-block j: `x[base + stride·j + i]`.
///
/// # Safety
/// `base + 7·stride + len <= x.len()` where `len` is the sub-block length read.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn gather(x: &[f32], base: usize, stride: i32, i: usize) -> __m256 {
    let idx = _mm256_mullo_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(stride),
    );
    // SAFETY: the caller guarantees every gathered index is inside x.
    unsafe { _mm256_i32gather_ps::<4>(x.as_ptr().add(base + i), idx) }
}

/// `make_qkx2_quants(32, nmax 15, rmin −1, rdelta 0.1, nstep 20)` with ggml's q4_k weights, on
/// the 8 sub-blocks of `xb` at once. Returns (scales, mins, quants `lq[i]` lane j = L of
/// element i of sub-block j).
#[target_feature(enable = "avx2,fma")]
fn qkx2_lanes(xb: &[f32]) -> (__m256, __m256, [__m256i; 32]) {
    assert!(xb.len() == QK_K);
    let zero = _mm256_setzero_ps();
    let mut x = [zero; 32];
    for (i, v) in x.iter_mut().enumerate() {
        // SAFETY: indices 32j + i < 256 for j < 8, i < 32.
        *v = unsafe { gather(xb, 0, 32, i) };
    }
    let mut sum_x2 = zero;
    for v in &x {
        sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(*v, *v));
    }
    let av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0)));
    let sign = _mm256_set1_ps(-0.0);
    let w = x.map(|v| _mm256_add_ps(av_x, _mm256_andnot_ps(sign, v)));

    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = _mm256_mul_ps(sum_w, x[0]);
    for i in 1..32 {
        min = _mm256_min_ps(x[i], min); // x < min ? x : min
        max = _mm256_max_ps(x[i], max); // x > max ? x : max
        sum_w = _mm256_add_ps(sum_w, w[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(w[i], x[i]));
    }
    min = blend(min, zero, _mm256_cmp_ps::<_CMP_GT_OQ>(min, zero));
    let flat = _mm256_cmp_ps::<_CMP_EQ_OQ>(max, min);
    let min0 = min;

    let nmax = _mm256_set1_ps(15.0);
    let iscale = _mm256_div_ps(nmax, _mm256_sub_ps(max, min));
    let mut scale = _mm256_div_ps(_mm256_set1_ps(1.0), iscale);
    let mut best_error = zero;
    let mut l = [_mm256_setzero_si256(); 32];
    for i in 0..32 {
        l[i] = clamp(
            nearest_int(_mm256_mul_ps(iscale, _mm256_sub_ps(x[i], min))),
            0,
            15,
        );
        let diff = _mm256_sub_ps(
            _mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(l[i])), min),
            x[i],
        );
        best_error = _mm256_add_ps(best_error, _mm256_mul_ps(w[i], _mm256_mul_ps(diff, diff)));
    }
    let mut laux = [_mm256_setzero_si256(); 32];
    for is in 0..=20 {
        let num = -1.0f32 + 0.1 * is as f32 + 15.0;
        let iscale = _mm256_div_ps(_mm256_set1_ps(num), _mm256_sub_ps(max, min));
        let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
        for i in 0..32 {
            laux[i] = clamp(
                nearest_int(_mm256_mul_ps(iscale, _mm256_sub_ps(x[i], min))),
                0,
                15,
            );
            let lf = _mm256_cvtepi32_ps(laux[i]);
            let wl = _mm256_mul_ps(w[i], lf);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, lf));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, x[i]));
        }
        let det = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        let mut this_scale = _mm256_div_ps(
            _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)),
            det,
        );
        let mut this_min = _mm256_div_ps(
            _mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)),
            det,
        );
        let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(this_min, zero);
        this_min = blend(this_min, zero, pos);
        this_scale = blend(this_scale, _mm256_div_ps(sum_xl, sum_l2), pos);
        let mut cur_error = zero;
        for i in 0..32 {
            let diff = _mm256_sub_ps(
                _mm256_add_ps(
                    _mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(laux[i])),
                    this_min,
                ),
                x[i],
            );
            cur_error = _mm256_add_ps(cur_error, _mm256_mul_ps(w[i], _mm256_mul_ps(diff, diff)));
        }
        let take = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GT_OQ>(det, zero),
            _mm256_cmp_ps::<_CMP_LT_OQ>(cur_error, best_error),
        );
        let take_i = _mm256_castps_si256(take);
        for i in 0..32 {
            l[i] = _mm256_blendv_epi8(l[i], laux[i], take_i);
        }
        best_error = blend(best_error, cur_error, take);
        scale = blend(scale, this_scale, take);
        min = blend(min, this_min, take);
    }
    // flat sub-blocks: L = 0, scale = 0, the_min = −min
    let flat_i = _mm256_castps_si256(flat);
    for v in &mut l {
        *v = _mm256_andnot_si256(flat_i, *v);
    }
    scale = _mm256_andnot_ps(flat, scale);
    min = blend(min, min0, flat);
    (scale, _mm256_xor_ps(min, sign), l)
}

/// q4_k encoder, byte-identical to [`crate::q4_k::quantize_row_q4_k_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q4_k(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == size_of::<BlockQ4K>() * nb);
    for (xb, out) in x
        .chunks_exact(QK_K)
        .zip(y.chunks_exact_mut(size_of::<BlockQ4K>()))
    {
        let (sv, mv, lq) = qkx2_lanes(xb);
        let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
        // SAFETY: both arrays hold 8 floats.
        unsafe {
            _mm256_storeu_ps(scales.as_mut_ptr(), sv);
            _mm256_storeu_ps(mins.as_mut_ptr(), mv);
        }
        let mut l = [0u8; QK_K];
        for (i, v) in lq.iter().enumerate() {
            let mut lanes = [0i32; 8];
            // SAFETY: lanes holds 8 i32.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), *v) };
            for (j, &q) in lanes.iter().enumerate() {
                l[32 * j + i] = q as u8;
            }
        }
        let mut blk: BlockQ4K = bytemuck::Zeroable::zeroed();
        q4_k::finish_block(xb, &scales, &mins, &mut l, &mut blk);
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}

/// `make_qx_quants(16, nmax 32, rmse_type 1, no importance)` on 8 sub-blocks of 16 at once:
/// sub-block j of the lanes starts at `base + 16·j`. Returns (scales, `L[i]` lane j).
#[target_feature(enable = "avx2,fma")]
fn qx_lanes(xb: &[f32], base: usize) -> (__m256, [__m256i; 16]) {
    assert!(base + 128 <= xb.len());
    let zero = _mm256_setzero_ps();
    let sign = _mm256_set1_ps(-0.0);
    let mut x = [zero; 16];
    for (i, v) in x.iter_mut().enumerate() {
        // SAFETY: base + 16j + i < base + 128 <= xb.len().
        *v = unsafe { gather(xb, base, 16, i) };
    }
    let (mut amax, mut max) = (zero, zero);
    for v in &x {
        let ax = _mm256_andnot_ps(sign, *v);
        let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(ax, amax);
        amax = blend(amax, ax, gt);
        max = blend(max, *v, gt);
    }
    let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(amax, _mm256_set1_ps(1e-15));
    let w = x.map(|v| _mm256_mul_ps(v, v));
    // sums for one inverse scale; also returns the quants (with the +32 offset)
    let search = |iscale: __m256, l: &mut [__m256i; 16]| {
        let (mut sumlx, mut suml2) = (zero, zero);
        for i in 0..16 {
            let q = clamp(nearest_int(_mm256_mul_ps(iscale, x[i])), -32, 31);
            l[i] = _mm256_add_epi32(q, _mm256_set1_epi32(32));
            let qf = _mm256_cvtepi32_ps(q);
            sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(w[i], x[i]), qf));
            suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w[i], qf), qf));
        }
        (sumlx, suml2)
    };
    let mut l = [_mm256_setzero_si256(); 16];
    let (sumlx, suml2) = search(_mm256_div_ps(_mm256_set1_ps(-32.0), max), &mut l);
    let nz = _mm256_cmp_ps::<_CMP_NEQ_UQ>(suml2, zero);
    let mut scale = _mm256_and_ps(nz, _mm256_div_ps(sumlx, suml2));
    let mut best = _mm256_mul_ps(scale, sumlx);
    let mut laux = [_mm256_setzero_si256(); 16];
    for is in (-9..=9).filter(|&is| is != 0) {
        let num = -(32.0f32 + 0.1 * is as f32);
        let (sumlx, suml2) = search(_mm256_div_ps(_mm256_set1_ps(num), max), &mut laux);
        let take = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GT_OQ>(suml2, zero),
            _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2)),
        );
        let take_i = _mm256_castps_si256(take);
        for i in 0..16 {
            l[i] = _mm256_blendv_epi8(l[i], laux[i], take_i);
        }
        let new_scale = _mm256_div_ps(sumlx, suml2);
        scale = blend(scale, new_scale, take);
        best = blend(best, _mm256_mul_ps(new_scale, sumlx), take);
    }
    let tiny_i = _mm256_castps_si256(tiny);
    for v in &mut l {
        *v = _mm256_andnot_si256(tiny_i, *v);
    }
    (_mm256_andnot_ps(tiny, scale), l)
}

/// q6_k encoder, byte-identical to [`crate::q6_k::quantize_row_q6_k_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q6_k(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == size_of::<BlockQ6K>() * nb);
    for (xb, out) in x
        .chunks_exact(QK_K)
        .zip(y.chunks_exact_mut(size_of::<BlockQ6K>()))
    {
        let mut scales = [0f32; 16];
        let mut l = [0i8; QK_K];
        for g in 0..2 {
            let (sv, lq) = qx_lanes(xb, 128 * g);
            // SAFETY: scales[8g..8g + 8] is in range.
            unsafe { _mm256_storeu_ps(scales.as_mut_ptr().add(8 * g), sv) };
            for (i, v) in lq.iter().enumerate() {
                let mut lanes = [0i32; 8];
                // SAFETY: lanes holds 8 i32.
                unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), *v) };
                for (j, &q) in lanes.iter().enumerate() {
                    l[128 * g + 16 * j + i] = q as i8;
                }
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
