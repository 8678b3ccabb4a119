//! The k-quant encoders with AVX-512: the AVX2 lane algorithms (see `avx2::kencode`) on 16
//! lanes — the 16 sub-blocks of one q2_k, q3_k or q6_k super-block, or of two q4_k/q5_k
//! super-blocks — so one dependency chain serves twice the sub-blocks. Byte-identical to the
//! scalar references.

use std::arch::x86_64::*;

use llamapack_format::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, QK_K};

use crate::kquant_search::{
    GROUP_MAX_EPS, Q2K_SEARCH, Q4K_SEARCH, Q5K_SEARCH, Qkx2, signed_max_abs,
};
use crate::{q2_k, q3_k, q4_k, q5_k, q6_k};

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

/// `make_qkx2_quants(p)` on 16 sub-blocks of `N` values at once: `x[i]` and `w[i]` hold element
/// `i` of each sub-block and its weight. Returns (scales, mins, quants `l[i]` lane j = L of
/// element i of sub-block j).
#[inline]
#[target_feature(enable = "avx512f")]
fn qkx2_lanes<const N: usize>(
    p: Qkx2,
    x: &[__m512; N],
    w: &[__m512; N],
) -> (__m512, __m512, [__m512i; N]) {
    let zero = _mm512_setzero_ps();
    let err = |diff: __m512| {
        if p.use_mad {
            _mm512_abs_ps(diff)
        } else {
            _mm512_mul_ps(diff, diff)
        }
    };
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = _mm512_mul_ps(sum_w, x[0]);
    for i in 1..N {
        min = _mm512_min_ps(x[i], min);
        max = _mm512_max_ps(x[i], max);
        sum_w = _mm512_add_ps(sum_w, w[i]);
        sum_x = _mm512_add_ps(sum_x, _mm512_mul_ps(w[i], x[i]));
    }
    min = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(min, zero), min, zero);
    let flat = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(max, min);
    let min0 = min;
    let iscale = _mm512_div_ps(_mm512_set1_ps(p.nmax as f32), _mm512_sub_ps(max, min));
    let mut scale = _mm512_div_ps(_mm512_set1_ps(1.0), iscale);
    let mut best_error = zero;
    let mut l = [_mm512_setzero_si512(); N];
    for i in 0..N {
        l[i] = clamp(
            nearest_int(_mm512_mul_ps(iscale, _mm512_sub_ps(x[i], min))),
            0,
            p.nmax,
        );
        let diff = _mm512_sub_ps(
            _mm512_add_ps(_mm512_mul_ps(scale, _mm512_cvtepi32_ps(l[i])), min),
            x[i],
        );
        best_error = _mm512_add_ps(best_error, _mm512_mul_ps(w[i], err(diff)));
    }
    let mut laux = [_mm512_setzero_si512(); N];
    for is in 0..=p.nstep {
        let iscale = _mm512_div_ps(_mm512_set1_ps(p.numerator(is)), _mm512_sub_ps(max, min));
        let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
        for i in 0..N {
            laux[i] = clamp(
                nearest_int(_mm512_mul_ps(iscale, _mm512_sub_ps(x[i], min))),
                0,
                p.nmax,
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
        for i in 0..N {
            let diff = _mm512_sub_ps(
                _mm512_add_ps(
                    _mm512_mul_ps(this_scale, _mm512_cvtepi32_ps(laux[i])),
                    this_min,
                ),
                x[i],
            );
            cur_error = _mm512_add_ps(cur_error, _mm512_mul_ps(w[i], err(diff)));
        }
        let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(det, zero)
            & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(cur_error, best_error);
        for i in 0..N {
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

/// Stores lane vectors as sub-block rows: `out[N·j + i]` = lane j of `v[i]` (as a byte).
#[inline]
#[target_feature(enable = "avx512f")]
fn lanes_to<const N: usize>(v: &[__m512i; N], out: &mut [u8]) {
    assert!(out.len() == 16 * N);
    for (i, r) in v.iter().enumerate() {
        let mut lanes = [0i32; 16];
        // SAFETY: lanes holds 16 i32.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), *r) };
        for (j, &q) in lanes.iter().enumerate() {
            out[N * j + i] = q as u8;
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

/// The first half of the q4_k and q5_k encoders on the 16 sub-blocks of 32 of two
/// super-blocks (`xs`, 512 values) in lanes: weights `sqrt(Σx²/32) + |x|`, then
/// `make_qkx2_quants(p)`. Returns the 16 scales, the 16 mins and the quants (sub-block j at
/// `32j..`).
#[target_feature(enable = "avx512f")]
fn sub32_lanes(p: Qkx2, xs: &[f32]) -> ([f32; 16], [f32; 16], [u8; 2 * QK_K]) {
    assert!(xs.len() == 2 * QK_K);
    let zero = _mm512_setzero_ps();
    let mut x = [zero; 32];
    for (i, v) in x.iter_mut().enumerate() {
        // SAFETY: 32·15 + i < 512.
        *v = unsafe { gather(xs, 32, i) };
    }
    let mut sum_x2 = zero;
    for v in &x {
        sum_x2 = _mm512_add_ps(sum_x2, _mm512_mul_ps(*v, *v));
    }
    let av_x = _mm512_sqrt_ps(_mm512_div_ps(sum_x2, _mm512_set1_ps(32.0)));
    let w = x.map(|v| _mm512_add_ps(av_x, _mm512_abs_ps(v)));
    let (sv, mv, lq) = qkx2_lanes(p, &x, &w);
    let mut l = [0u8; 2 * QK_K];
    lanes_to(&lq, &mut l);
    (to_array(sv), to_array(mv), l)
}

/// The q4_k/q5_k encoder loop: pairs of super-blocks in lanes ([`sub32_lanes`]), each finished
/// by `finish`; an odd last block goes to `tail` (AVX2's encoder of the format).
#[inline]
#[target_feature(enable = "avx512f")]
fn sub32_blocks<B: bytemuck::Pod>(
    p: Qkx2,
    x: &[f32],
    y: &mut [u8],
    finish: impl Fn(&[f32], &[f32; 8], &[f32; 8], &mut [u8; QK_K], &mut B),
    tail: impl FnOnce(&[f32], &mut [u8]),
) {
    let bb = size_of::<B>();
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == bb * nb);
    for (xs, out) in x.chunks_exact(2 * QK_K).zip(y.chunks_exact_mut(2 * bb)) {
        let (scales, mins, l2) = sub32_lanes(p, xs);
        for h in 0..2 {
            let mut l: [u8; QK_K] = l2[QK_K * h..QK_K * (h + 1)].try_into().expect("256");
            let sc: &[f32; 8] = scales[8 * h..8 * h + 8].try_into().expect("8 scales");
            let mn: &[f32; 8] = mins[8 * h..8 * h + 8].try_into().expect("8 mins");
            let mut blk = B::zeroed();
            finish(&xs[QK_K * h..QK_K * (h + 1)], sc, mn, &mut l, &mut blk);
            out[bb * h..bb * (h + 1)].copy_from_slice(bytemuck::bytes_of(&blk));
        }
    }
    if nb % 2 == 1 {
        tail(&x[QK_K * (nb - 1)..], &mut y[bb * (nb - 1)..]);
    }
}

/// q4_k encoder, byte-identical to [`crate::q4_k::quantize_row_q4_k_ref`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_q4_k(x: &[f32], y: &mut [u8]) {
    sub32_blocks::<BlockQ4K>(Q4K_SEARCH, x, y, q4_k::finish_block, |x, y| {
        crate::x86::avx2::quantize_q4_k(x, y);
    });
}

/// q5_k encoder, byte-identical to [`crate::q5_k::quantize_row_q5_k_ref`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_q5_k(x: &[f32], y: &mut [u8]) {
    sub32_blocks::<BlockQ5K>(Q5K_SEARCH, x, y, q5_k::finish_block, |x, y| {
        crate::x86::avx2::quantize_q5_k(x, y);
    });
}

/// Element `i` of the 16 sub-blocks of 16 of a super-block (`x[i]` lane j = `xb[16j + i]`).
#[inline]
#[target_feature(enable = "avx512f")]
fn sub16_lanes(xb: &[f32]) -> [__m512; 16] {
    assert!(xb.len() == QK_K);
    let mut x = [_mm512_setzero_ps(); 16];
    for (i, v) in x.iter_mut().enumerate() {
        // SAFETY: 16·15 + i < 256.
        *v = unsafe { gather(xb, 16, i) };
    }
    x
}

/// q2_k encoder, byte-identical to [`crate::q2_k::quantize_row_q2_k_ref`]: the 16 sub-blocks
/// of a super-block in the 16 lanes (weights `|x|`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_q2_k(x: &[f32], y: &mut [u8]) {
    const B: usize = size_of::<BlockQ2K>();
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == B * nb);
    for (xb, out) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(B)) {
        let xv = sub16_lanes(xb);
        let w = xv.map(|v| _mm512_abs_ps(v));
        let (sv, mv, lq) = qkx2_lanes(Q2K_SEARCH, &xv, &w);
        let mut l = [0u8; QK_K];
        lanes_to(&lq, &mut l);
        let mut blk: BlockQ2K = bytemuck::Zeroable::zeroed();
        q2_k::finish_block(xb, &to_array(sv), &to_array(mv), &mut l, &mut blk);
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}

/// `make_q3_quants(16, nmax 4, do_rmse)` on `G` super-blocks' 16 sub-blocks of 16 at once
/// (`x[g][i]` lane j = element i of sub-block j of super-block g), the `G` dependency chains
/// interleaved element by element; the passes run until no lane changes a quant, as in
/// `avx2::kencode::q3_lanes` (a lane whose pass changed nothing repeats it unchanged). Returns
/// per super-block (scales, `L[i]` lane j, with the `+4` offset).
#[inline]
#[target_feature(enable = "avx512f")]
fn q3_lanes<const G: usize>(x: &[[__m512; 16]; G]) -> [(__m512, [__m512i; 16]); G] {
    let zero = _mm512_setzero_ps();
    let mut tiny: [__mmask16; G] = [0; G];
    let mut w = [[zero; 16]; G];
    let mut wx = [[zero; 16]; G];
    let mut l = [[_mm512_setzero_si512(); 16]; G];
    let mut lf = [[zero; 16]; G];
    let (mut sumlx, mut suml2) = ([zero; G], [zero; G]);
    for g in 0..G {
        let (mut amax, mut max) = (zero, zero);
        for v in &x[g] {
            let ax = _mm512_abs_ps(*v);
            let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(ax, amax);
            amax = _mm512_mask_blend_ps(gt, amax, ax);
            max = _mm512_mask_blend_ps(gt, max, *v);
        }
        tiny[g] = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(amax, _mm512_set1_ps(GROUP_MAX_EPS));
        let iscale = _mm512_div_ps(_mm512_set1_ps(-4.0), max);
        for i in 0..16 {
            w[g][i] = _mm512_mul_ps(x[g][i], x[g][i]);
            wx[g][i] = _mm512_mul_ps(w[g][i], x[g][i]);
            l[g][i] = clamp(nearest_int(_mm512_mul_ps(iscale, x[g][i])), -4, 3);
            lf[g][i] = _mm512_cvtepi32_ps(l[g][i]);
            sumlx[g] = _mm512_add_ps(sumlx[g], _mm512_mul_ps(wx[g][i], lf[g][i]));
            let wl = _mm512_mul_ps(w[g][i], lf[g][i]);
            suml2[g] = _mm512_add_ps(suml2[g], _mm512_mul_ps(wl, lf[g][i]));
        }
    }
    for _ in 0..5 {
        let mut changed: __mmask16 = 0;
        for i in 0..16 {
            for g in 0..G {
                let (wi, wxi, xi, li) = (w[g][i], wx[g][i], x[g][i], lf[g][i]);
                let slx = _mm512_sub_ps(sumlx[g], _mm512_mul_ps(wxi, li));
                let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(slx, zero);
                let sl2 = _mm512_sub_ps(suml2[g], _mm512_mul_ps(_mm512_mul_ps(wi, li), li));
                let new_l = clamp(
                    nearest_int(_mm512_div_ps(_mm512_mul_ps(xi, sl2), slx)),
                    -4,
                    3,
                );
                let differs = _mm512_cmpneq_epi32_mask(new_l, l[g][i]);
                let nf = _mm512_cvtepi32_ps(new_l);
                let slx = _mm512_add_ps(slx, _mm512_mul_ps(wxi, nf));
                let sl2 = _mm512_add_ps(sl2, _mm512_mul_ps(_mm512_mul_ps(wi, nf), nf));
                let better = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(sl2, zero)
                    & _mm512_cmp_ps_mask::<_CMP_GT_OQ>(
                        _mm512_mul_ps(_mm512_mul_ps(slx, slx), suml2[g]),
                        _mm512_mul_ps(_mm512_mul_ps(sumlx[g], sumlx[g]), sl2),
                    );
                let take = positive & differs & better;
                l[g][i] = _mm512_mask_blend_epi32(take, l[g][i], new_l);
                lf[g][i] = _mm512_mask_blend_ps(take, lf[g][i], nf);
                sumlx[g] = _mm512_mask_blend_ps(take, sumlx[g], slx);
                suml2[g] = _mm512_mask_blend_ps(take, suml2[g], sl2);
                changed |= take;
            }
        }
        if changed == 0 {
            break;
        }
    }
    std::array::from_fn(|g| {
        let keep = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(suml2[g], zero) & !tiny[g];
        let scale = _mm512_maskz_div_ps(keep, sumlx[g], suml2[g]);
        let lq = l[g].map(|v| _mm512_maskz_add_epi32(!tiny[g], v, _mm512_set1_epi32(4)));
        (scale, lq)
    })
}

/// q3_k encoder, byte-identical to [`crate::q3_k::quantize_row_q3_k_ref`]: two super-blocks at
/// a time, each in 16 lanes (an odd last block alone).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_q3_k(x: &[f32], y: &mut [u8]) {
    const B: usize = size_of::<BlockQ3K>();
    let nb = x.len() / QK_K;
    assert!(x.len() == QK_K * nb && y.len() == B * nb);
    let finish = |xb: &[f32], (sv, lq): &(__m512, [__m512i; 16]), out: &mut [u8]| {
        let mut l = [0i8; QK_K];
        lanes_to(lq, bytemuck::cast_slice_mut(&mut l));
        let mut blk: BlockQ3K = bytemuck::Zeroable::zeroed();
        q3_k::finish_block(xb, &to_array(*sv), &mut l, &mut blk);
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    };
    for (xs, out) in x.chunks_exact(2 * QK_K).zip(y.chunks_exact_mut(2 * B)) {
        let (x0, x1) = xs.split_at(QK_K);
        let [r0, r1] = q3_lanes(&[sub16_lanes(x0), sub16_lanes(x1)]);
        finish(x0, &r0, &mut out[..B]);
        finish(x1, &r1, &mut out[B..]);
    }
    if nb % 2 == 1 {
        let xb = &x[QK_K * (nb - 1)..];
        let [r] = q3_lanes(&[sub16_lanes(xb)]);
        finish(xb, &r, &mut y[B * (nb - 1)..]);
    }
}

/// `make_qx_quants(16, nmax 32, rmse_type 1)` on the 16 sub-blocks of one super-block.
#[target_feature(enable = "avx512f")]
fn qx_lanes(xb: &[f32]) -> (__m512, [__m512i; 16]) {
    let zero = _mm512_setzero_ps();
    let x = sub16_lanes(xb);
    let (mut amax, mut max) = (zero, zero);
    for v in &x {
        let ax = _mm512_abs_ps(*v);
        let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(ax, amax);
        amax = _mm512_mask_blend_ps(gt, amax, ax);
        max = _mm512_mask_blend_ps(gt, max, *v);
    }
    let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(amax, _mm512_set1_ps(GROUP_MAX_EPS));
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
        let mut l = [0i8; QK_K];
        lanes_to(&lq, bytemuck::cast_slice_mut(&mut l));
        let (max_scale, max_abs_scale) = signed_max_abs(&scales);
        let mut blk: BlockQ6K = bytemuck::Zeroable::zeroed();
        q6_k::finish_block(xb, &scales, max_scale, max_abs_scale, &mut l, &mut blk);
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}
