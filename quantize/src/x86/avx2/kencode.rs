//! The k-quant encoders (q2_k, q3_k, q4_k, q5_k, q6_k) with AVX2, byte-identical to the scalar
//! references.
//!
//! ggml's searches (`make_qkx2_quants`, `make_q3_quants`, `make_qx_quants`) run once per
//! sub-block with sums in a fixed order. Here the sub-blocks of a super-block are transposed
//! into the 8 lanes, and each lane performs exactly the scalar operations in the scalar order
//! (no FMA, correctly rounded `div`/`sqrt`, the same `nearest_int` bit trick, decisions as lane
//! masks), so every lane produces the reference's bits. One lane search per algorithm serves
//! every format that uses it (its parameters are [`Qkx2`]'s); the cheap second half (scale
//! packing, re-quantization) is each format's shared scalar `finish_block`.

use std::arch::x86_64::*;

use llamapack_format::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, QK_K};

use crate::kquant_search::{
    GROUP_MAX_EPS, Q2K_SEARCH, Q4K_SEARCH, Q5K_SEARCH, Qkx2, signed_max_abs,
};
use crate::{q2_k, q3_k, q4_k, q5_k, q6_k};

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

/// Stores lane vectors as sub-block rows: `out[N·j + i]` = lane j of `v[i]` (as a byte).
#[inline]
#[target_feature(enable = "avx2")]
fn lanes_to<const N: usize>(v: &[__m256i; N], out: &mut [u8]) {
    assert!(out.len() == 8 * N);
    for (i, r) in v.iter().enumerate() {
        let mut lanes = [0i32; 8];
        // SAFETY: lanes holds 8 i32.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), *r) };
        for (j, &q) in lanes.iter().enumerate() {
            out[N * j + i] = q as u8;
        }
    }
}

/// The 8 lanes of `v`.
#[inline]
#[target_feature(enable = "avx2")]
fn to_array(v: __m256) -> [f32; 8] {
    let mut a = [0f32; 8];
    // SAFETY: a holds 8 floats.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
    a
}

/// `make_qkx2_quants(p)` on 8 sub-blocks of `N` values at once: `x[i]` and `w[i]` hold element
/// `i` of each sub-block and its weight. Returns (scales, mins, quants `l[i]` lane j = L of
/// element i of sub-block j).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn qkx2_lanes<const N: usize>(
    p: Qkx2,
    x: &[__m256; N],
    w: &[__m256; N],
) -> (__m256, __m256, [__m256i; N]) {
    let zero = _mm256_setzero_ps();
    let sign = _mm256_set1_ps(-0.0);
    let err = |diff: __m256| {
        if p.use_mad {
            _mm256_andnot_ps(sign, diff)
        } else {
            _mm256_mul_ps(diff, diff)
        }
    };
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = _mm256_mul_ps(sum_w, x[0]);
    for i in 1..N {
        min = _mm256_min_ps(x[i], min); // x < min ? x : min
        max = _mm256_max_ps(x[i], max); // x > max ? x : max
        sum_w = _mm256_add_ps(sum_w, w[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(w[i], x[i]));
    }
    min = blend(min, zero, _mm256_cmp_ps::<_CMP_GT_OQ>(min, zero));
    let flat = _mm256_cmp_ps::<_CMP_EQ_OQ>(max, min);
    let min0 = min;

    let iscale = _mm256_div_ps(_mm256_set1_ps(p.nmax as f32), _mm256_sub_ps(max, min));
    let mut scale = _mm256_div_ps(_mm256_set1_ps(1.0), iscale);
    let mut best_error = zero;
    let mut l = [_mm256_setzero_si256(); N];
    for i in 0..N {
        l[i] = clamp(
            nearest_int(_mm256_mul_ps(iscale, _mm256_sub_ps(x[i], min))),
            0,
            p.nmax,
        );
        let diff = _mm256_sub_ps(
            _mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(l[i])), min),
            x[i],
        );
        best_error = _mm256_add_ps(best_error, _mm256_mul_ps(w[i], err(diff)));
    }
    let mut laux = [_mm256_setzero_si256(); N];
    for is in 0..=p.nstep {
        let iscale = _mm256_div_ps(_mm256_set1_ps(p.numerator(is)), _mm256_sub_ps(max, min));
        let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
        for i in 0..N {
            laux[i] = clamp(
                nearest_int(_mm256_mul_ps(iscale, _mm256_sub_ps(x[i], min))),
                0,
                p.nmax,
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
        for i in 0..N {
            let diff = _mm256_sub_ps(
                _mm256_add_ps(
                    _mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(laux[i])),
                    this_min,
                ),
                x[i],
            );
            cur_error = _mm256_add_ps(cur_error, _mm256_mul_ps(w[i], err(diff)));
        }
        let take = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GT_OQ>(det, zero),
            _mm256_cmp_ps::<_CMP_LT_OQ>(cur_error, best_error),
        );
        let take_i = _mm256_castps_si256(take);
        for i in 0..N {
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

/// The first half of the q4_k and q5_k encoders on the 8 sub-blocks of 32 of `xb` in lanes:
/// weights `sqrt(Σx²/32) + |x|`, then `make_qkx2_quants(p)`. Returns the scales, the mins and
/// the quants (sub-block j at `32j..`), as [`crate::kquant_search::search_sub32`].
#[target_feature(enable = "avx2,fma")]
fn sub32_lanes(p: Qkx2, xb: &[f32]) -> ([f32; 8], [f32; 8], [u8; QK_K]) {
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
    let (sv, mv, lq) = qkx2_lanes(p, &x, &w);
    let mut l = [0u8; QK_K];
    lanes_to(&lq, &mut l);
    (to_array(sv), to_array(mv), l)
}

/// q4_k encoder, byte-identical to [`crate::q4_k::quantize_row_q4_k_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q4_k(x: &[f32], y: &mut [u8]) {
    const B: usize = size_of::<BlockQ4K>();
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == B * nb);
    for (xb, out) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(B)) {
        let (scales, mins, mut l) = sub32_lanes(Q4K_SEARCH, xb);
        let mut blk: BlockQ4K = bytemuck::Zeroable::zeroed();
        q4_k::finish_block(xb, &scales, &mins, &mut l, &mut blk);
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}

/// q5_k encoder, byte-identical to [`crate::q5_k::quantize_row_q5_k_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q5_k(x: &[f32], y: &mut [u8]) {
    const B: usize = size_of::<BlockQ5K>();
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == B * nb);
    for (xb, out) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(B)) {
        let (scales, mins, mut l) = sub32_lanes(Q5K_SEARCH, xb);
        let mut blk: BlockQ5K = bytemuck::Zeroable::zeroed();
        q5_k::finish_block(xb, &scales, &mins, &mut l, &mut blk);
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}

/// Elements `i` of the 8 sub-blocks of 16 starting at `base` (`x[i]` lane j = `xb[base + 16j
/// + i]`).
#[inline]
#[target_feature(enable = "avx2")]
fn sub16_lanes(xb: &[f32], base: usize) -> [__m256; 16] {
    assert!(base + 128 <= xb.len());
    let mut x = [_mm256_setzero_ps(); 16];
    for (i, v) in x.iter_mut().enumerate() {
        // SAFETY: base + 16j + i < base + 128 <= xb.len().
        *v = unsafe { gather(xb, base, 16, i) };
    }
    x
}

/// q2_k encoder, byte-identical to [`crate::q2_k::quantize_row_q2_k_ref`]: its 16 sub-blocks
/// of 16 as two groups of 8 lanes (weights `|x|`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q2_k(x: &[f32], y: &mut [u8]) {
    const B: usize = size_of::<BlockQ2K>();
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == B * nb);
    let sign = _mm256_set1_ps(-0.0);
    for (xb, out) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(B)) {
        let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
        let mut l = [0u8; QK_K];
        for g in 0..2 {
            let xv = sub16_lanes(xb, 128 * g);
            let w = xv.map(|v| _mm256_andnot_ps(sign, v));
            let (sv, mv, lq) = qkx2_lanes(Q2K_SEARCH, &xv, &w);
            scales[8 * g..8 * g + 8].copy_from_slice(&to_array(sv));
            mins[8 * g..8 * g + 8].copy_from_slice(&to_array(mv));
            lanes_to(&lq, &mut l[128 * g..128 * g + 128]);
        }
        let mut blk: BlockQ2K = bytemuck::Zeroable::zeroed();
        q2_k::finish_block(xb, &scales, &mins, &mut l, &mut blk);
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}

/// `make_q3_quants(16, nmax 4, do_rmse)` on `G` groups of 8 sub-blocks of 16 at once (`x[g][i]`
/// lane j = element i of sub-block j of group g). Returns per group (scales, `L[i]` lane j,
/// with the `+4` offset).
///
/// The groups are independent dependency chains interleaved element by element (a pass is one
/// long chain through the running sums). The coordinate-descent passes run in every lane until
/// no lane changes a quant: a lane whose pass changed nothing has stopped in the reference, and
/// re-running that pass from the same state changes nothing again, so its results are the
/// reference's.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn q3_lanes<const G: usize>(x: &[[__m256; 16]; G]) -> [(__m256, [__m256i; 16]); G] {
    let zero = _mm256_setzero_ps();
    let sign = _mm256_set1_ps(-0.0);
    let mut tiny = [zero; G];
    let mut w = [[zero; 16]; G];
    let mut wx = [[zero; 16]; G];
    let mut l = [[_mm256_setzero_si256(); 16]; G];
    let mut lf = [[zero; 16]; G];
    let (mut sumlx, mut suml2) = ([zero; G], [zero; G]);
    for g in 0..G {
        let (mut amax, mut max) = (zero, zero);
        for v in &x[g] {
            let ax = _mm256_andnot_ps(sign, *v);
            let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(ax, amax);
            amax = blend(amax, ax, gt);
            max = blend(max, *v, gt);
        }
        tiny[g] = _mm256_cmp_ps::<_CMP_LT_OQ>(amax, _mm256_set1_ps(GROUP_MAX_EPS));
        let iscale = _mm256_div_ps(_mm256_set1_ps(-4.0), max);
        for i in 0..16 {
            w[g][i] = _mm256_mul_ps(x[g][i], x[g][i]);
            wx[g][i] = _mm256_mul_ps(w[g][i], x[g][i]);
            l[g][i] = clamp(nearest_int(_mm256_mul_ps(iscale, x[g][i])), -4, 3);
            lf[g][i] = _mm256_cvtepi32_ps(l[g][i]);
            sumlx[g] = _mm256_add_ps(sumlx[g], _mm256_mul_ps(wx[g][i], lf[g][i]));
            let wl = _mm256_mul_ps(w[g][i], lf[g][i]);
            suml2[g] = _mm256_add_ps(suml2[g], _mm256_mul_ps(wl, lf[g][i]));
        }
    }
    for _ in 0..5 {
        let mut changed = zero;
        for i in 0..16 {
            for g in 0..G {
                let (wi, wxi, xi, li) = (w[g][i], wx[g][i], x[g][i], lf[g][i]);
                let slx = _mm256_sub_ps(sumlx[g], _mm256_mul_ps(wxi, li));
                let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(slx, zero);
                let sl2 = _mm256_sub_ps(suml2[g], _mm256_mul_ps(_mm256_mul_ps(wi, li), li));
                let new_l = clamp(
                    nearest_int(_mm256_div_ps(_mm256_mul_ps(xi, sl2), slx)),
                    -4,
                    3,
                );
                let same = _mm256_castsi256_ps(_mm256_cmpeq_epi32(new_l, l[g][i]));
                let nf = _mm256_cvtepi32_ps(new_l);
                let slx = _mm256_add_ps(slx, _mm256_mul_ps(wxi, nf));
                let sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(wi, nf), nf));
                let better = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_GT_OQ>(sl2, zero),
                    _mm256_cmp_ps::<_CMP_GT_OQ>(
                        _mm256_mul_ps(_mm256_mul_ps(slx, slx), suml2[g]),
                        _mm256_mul_ps(_mm256_mul_ps(sumlx[g], sumlx[g]), sl2),
                    ),
                );
                let take = _mm256_and_ps(_mm256_andnot_ps(same, positive), better);
                l[g][i] = _mm256_blendv_epi8(l[g][i], new_l, _mm256_castps_si256(take));
                lf[g][i] = blend(lf[g][i], nf, take);
                sumlx[g] = blend(sumlx[g], slx, take);
                suml2[g] = blend(suml2[g], sl2, take);
                changed = _mm256_or_ps(changed, take);
            }
        }
        if _mm256_movemask_ps(changed) == 0 {
            break;
        }
    }
    std::array::from_fn(|g| {
        let scale = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GT_OQ>(suml2[g], zero),
            _mm256_div_ps(sumlx[g], suml2[g]),
        );
        let tiny_i = _mm256_castps_si256(tiny[g]);
        let lq =
            l[g].map(|v| _mm256_andnot_si256(tiny_i, _mm256_add_epi32(v, _mm256_set1_epi32(4))));
        (_mm256_andnot_ps(tiny[g], scale), lq)
    })
}

/// q3_k encoder, byte-identical to [`crate::q3_k::quantize_row_q3_k_ref`]: its 16 sub-blocks
/// of 16 as two groups of 8 lanes, searched together.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q3_k(x: &[f32], y: &mut [u8]) {
    const B: usize = size_of::<BlockQ3K>();
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == B * nb);
    for (xb, out) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(B)) {
        let groups = q3_lanes(&[sub16_lanes(xb, 0), sub16_lanes(xb, 128)]);
        let mut scales = [0f32; 16];
        let mut l = [0i8; QK_K];
        for (g, (sv, lq)) in groups.iter().enumerate() {
            scales[8 * g..8 * g + 8].copy_from_slice(&to_array(*sv));
            lanes_to(lq, bytemuck::cast_slice_mut(&mut l[128 * g..128 * g + 128]));
        }
        let mut blk: BlockQ3K = bytemuck::Zeroable::zeroed();
        q3_k::finish_block(xb, &scales, &mut l, &mut blk);
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}

/// `make_qx_quants(16, nmax 32, rmse_type 1, no importance)` on 8 sub-blocks of 16 at once:
/// sub-block j of the lanes starts at `base + 16·j`. Returns (scales, `L[i]` lane j).
#[target_feature(enable = "avx2,fma")]
fn qx_lanes(xb: &[f32], base: usize) -> (__m256, [__m256i; 16]) {
    let zero = _mm256_setzero_ps();
    let sign = _mm256_set1_ps(-0.0);
    let x = sub16_lanes(xb, base);
    let (mut amax, mut max) = (zero, zero);
    for v in &x {
        let ax = _mm256_andnot_ps(sign, *v);
        let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(ax, amax);
        amax = blend(amax, ax, gt);
        max = blend(max, *v, gt);
    }
    let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(amax, _mm256_set1_ps(GROUP_MAX_EPS));
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
            scales[8 * g..8 * g + 8].copy_from_slice(&to_array(sv));
            lanes_to(
                &lq,
                bytemuck::cast_slice_mut(&mut l[128 * g..128 * g + 128]),
            );
        }
        let (max_scale, max_abs_scale) = signed_max_abs(&scales);
        let mut blk: BlockQ6K = bytemuck::Zeroable::zeroed();
        q6_k::finish_block(xb, &scales, max_scale, max_abs_scale, &mut l, &mut blk);
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}
