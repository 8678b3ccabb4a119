//! iq4_nl and iq4_xs with AVX-512.
//!
//! - Dots: AVX2's kernels (iq4_xs: `dot_iq4_xs_with`; iq4_nl: the q8_0 block loops of
//!   `legacy`) with `vpdpbusd` for the 32-byte integer dot — one 32-value (sub-)block fills a
//!   ymm, and the integer lane sums are the same, so these return AVX2's bits (iq4_xs: the
//!   reference's).
//! - Encoders: the grid index of 16 values at once with 16-entry `vpermps` lookups
//!   ([`best_index_512`]). iq4_xs puts the first pass and the 15 trials of a sub-block in the
//!   16 lanes (as AVX2 does in two registers); iq4_nl puts 16 blocks in the lanes and walks
//!   their 32 elements in order, so every lane's sums are ggml's sums in ggml's order.
//!   Both byte-identical to the references.

use std::arch::x86_64::*;

use bytemuck::Zeroable;
use llamapack_format::blocks::BlockIq4Xs;

use super::block32::dot_i8x32;
use crate::iq4_nl::{GRID, GROUP_MAX_EPS, ZERO_INDEX, choose_scale, first_id, trial_id};
use crate::iq4_xs::{super_scales, write_scales};
use crate::x86::avx2::dot_iq4_xs_with;
use crate::x86::f32_to_f16;

const NLB: usize = 18; // bytes of an iq4_nl block
const XSB: usize = 136; // bytes of an iq4_xs block

/// The grid and its upper neighbours as 16-entry `vpermps` tables.
#[derive(Clone, Copy)]
struct Tables {
    /// `GRID`.
    grid: __m512,
    /// `GRID[1..16]`, then +∞.
    next: __m512,
}

impl Tables {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn new() -> Tables {
        let next: [f32; 16] =
            std::array::from_fn(|k| GRID.get(k + 1).copied().unwrap_or(f32::INFINITY));
        // SAFETY: both arrays hold 16 floats.
        unsafe {
            Tables {
                grid: _mm512_loadu_ps(GRID.as_ptr()),
                next: _mm512_loadu_ps(next.as_ptr()),
            }
        }
    }
}

/// ggml's `best_index_int8` on 16 lanes: the grid value and its index (the algorithm of
/// [`crate::x86::avx2::best_index_ps`], with one-instruction table lookups).
#[inline]
#[target_feature(enable = "avx512f")]
fn best_index_512(t: &Tables, x: __m512) -> (__m512, __m512i) {
    let not_below = |a: __m512, b: __m512| _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(a, b);
    let mut c = _mm512_maskz_mov_epi32(not_below(x, _mm512_set1_ps(GRID[8])), _mm512_set1_epi32(8));
    for s in [4, 2, 1] {
        let sv = _mm512_set1_epi32(s);
        let probe = _mm512_permutexvar_ps(_mm512_add_epi32(c, sv), t.grid);
        c = _mm512_mask_add_epi32(c, not_below(x, probe), c, sv);
    }
    let a = _mm512_permutexvar_ps(c, t.grid);
    let b = _mm512_permutexvar_ps(c, t.next);
    let up = not_below(_mm512_sub_ps(x, a), _mm512_sub_ps(b, x));
    let r = _mm512_min_epi32(
        _mm512_mask_add_epi32(c, up, c, _mm512_set1_epi32(1)),
        _mm512_set1_epi32(15),
    );
    (_mm512_mask_blend_ps(up, a, b), r)
}

/// The 16 lanes of `v`.
#[inline]
#[target_feature(enable = "avx512f")]
fn lanes(v: __m512) -> [f32; 16] {
    let mut a = [0f32; 16];
    // SAFETY: `a` holds 16 floats.
    unsafe { _mm512_storeu_ps(a.as_mut_ptr(), v) };
    a
}

/// iq4_nl encoder, byte-identical to [`crate::iq4_nl::quantize_row_iq4_nl_ref`]: 16 blocks
/// per pass, block `b` in lane `b` (a row's last, partial group in masked lanes).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_iq4_nl(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == NLB * nb);
    let t = Tables::new();
    let starts = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(32),
    );
    let mut prev = [ZERO_INDEX * 0x11; 16];
    for (xg, yg) in x.chunks(32 * 16).zip(y.chunks_mut(NLB * 16)) {
        let m = yg.len() / NLB;
        let in_row: __mmask16 = if m == 16 { 0xffff } else { (1 << m) - 1 };
        // cols[j] lane b = element j of block b
        let cols: [__m512; 32] = std::array::from_fn(|j| {
            // SAFETY: lanes b < m read xg[32·b + j], inside the group's 32·m values; the
            // other lanes are masked off and read nothing.
            unsafe {
                _mm512_mask_i32gather_ps::<4>(
                    _mm512_setzero_ps(),
                    in_row,
                    _mm512_add_epi32(starts, _mm512_set1_epi32(j as i32)),
                    xg.as_ptr(),
                )
            }
        });
        // the first element of largest magnitude, as ggml's scan finds it
        let (mut amax, mut max) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for &v in &cols {
            let a = _mm512_abs_ps(v);
            let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, amax);
            amax = _mm512_mask_mov_ps(amax, gt, a);
            max = _mm512_mask_mov_ps(max, gt, v);
        }
        let live = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(amax, _mm512_set1_ps(GROUP_MAX_EPS)) & in_row;
        // first_id(max, −1) in every lane: 1 / (max / kvalues[0])
        let id = _mm512_div_ps(
            _mm512_set1_ps(1.0),
            _mm512_div_ps(max, _mm512_set1_ps(GRID[0])),
        );
        let (mut sx, mut sq) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut r = [_mm512_setzero_si512(); 32];
        for (j, &v) in cols.iter().enumerate() {
            let (q, idx) = best_index_512(&t, _mm512_mul_ps(id, v));
            let wq = _mm512_mul_ps(_mm512_mul_ps(v, v), q);
            sx = _mm512_add_ps(sx, _mm512_mul_ps(wq, v));
            sq = _mm512_add_ps(sq, _mm512_mul_ps(wq, q));
            r[j] = idx;
        }
        // choose_scale of the first pass alone: Σqx / Σq² where Σq² > 0, else 0
        let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(sq, _mm512_setzero_ps());
        let d = lanes(_mm512_maskz_div_ps(pos, sx, sq));
        // nib[j] lane b = packed byte j of block b
        let mut nib = [[0u8; 16]; 16];
        for (j, row) in nib.iter_mut().enumerate() {
            let v = _mm512_or_si512(r[j], _mm512_slli_epi32::<4>(r[j + 16]));
            // SAFETY: row is 16 bytes.
            unsafe { _mm_storeu_si128(row.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(v)) };
        }
        for (b, out) in yg.chunks_exact_mut(NLB).enumerate() {
            let dh = if live & (1 << b) != 0 {
                prev = std::array::from_fn(|j| nib[j][b]);
                d[b]
            } else {
                0.0
            };
            out[..2].copy_from_slice(&f32_to_f16(dh).to_le_bytes());
            out[2..].copy_from_slice(&prev);
        }
    }
}

/// One sub-block of ggml's iq4_xs search, the first pass and the 15 trials in the 16 lanes:
/// the sub-block's scale. `max` is its element of largest magnitude.
#[inline]
#[target_feature(enable = "avx512f")]
fn search_lanes(t: &Tables, xb: &[f32], max: f32) -> f32 {
    let ids: [f32; 16] = std::array::from_fn(|k| {
        if k == 0 {
            first_id(max, 7)
        } else {
            trial_id(k as i32 - 8, max)
        }
    });
    // SAFETY: ids holds 16 floats.
    let idv = unsafe { _mm512_loadu_ps(ids.as_ptr()) };
    let (mut sx, mut s2) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    for &x in xb {
        let (xv, w) = (_mm512_set1_ps(x), _mm512_set1_ps(x * x));
        let (q, _) = best_index_512(t, _mm512_mul_ps(idv, xv));
        let wq = _mm512_mul_ps(w, q);
        sx = _mm512_add_ps(sx, _mm512_mul_ps(wq, xv));
        s2 = _mm512_add_ps(s2, _mm512_mul_ps(wq, q));
    }
    choose_scale(lanes(sx).into_iter().zip(lanes(s2)))
}

/// iq4_xs encoder, byte-identical to [`crate::iq4_xs::quantize_row_iq4_xs_ref`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_iq4_xs(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 256;
    assert!(x.len() == 256 * nb && y.len() == XSB * nb);
    let t = Tables::new();
    for (xb, out) in x.chunks_exact(256).zip(y.chunks_exact_mut(XSB)) {
        let mut v = [[_mm512_setzero_ps(); 2]; 8];
        let mut scales = [0f32; 8];
        for (ib, (s, vb)) in scales.iter_mut().zip(&mut v).enumerate() {
            let xs = &xb[32 * ib..32 * ib + 32];
            // SAFETY: xs holds 32 floats.
            *vb = unsafe {
                [
                    _mm512_loadu_ps(xs.as_ptr()),
                    _mm512_loadu_ps(xs.as_ptr().add(16)),
                ]
            };
            let amax =
                _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(vb[0]), _mm512_abs_ps(vb[1])));
            if amax >= GROUP_MAX_EPS {
                let am = _mm512_set1_ps(amax);
                let hit = u32::from(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_abs_ps(vb[0]), am))
                    | (u32::from(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_abs_ps(vb[1]), am)) << 16);
                *s = search_lanes(&t, xs, xs[hit.trailing_zeros() as usize]);
            }
        }
        let s = super_scales(&scales);
        let mut blk = BlockIq4Xs::zeroed();
        write_scales(&s, &mut blk);
        for (ib, qs) in blk.qs.chunks_exact_mut(16).enumerate() {
            let id = _mm512_set1_ps(s.idl[ib]);
            let lo = best_index_512(&t, _mm512_mul_ps(id, v[ib][0])).1;
            let hi = best_index_512(&t, _mm512_mul_ps(id, v[ib][1])).1;
            let packed = _mm512_cvtepi32_epi8(_mm512_or_si512(lo, _mm512_slli_epi32::<4>(hi)));
            // SAFETY: qs is 16 bytes.
            unsafe { _mm_storeu_si128(qs.as_mut_ptr().cast(), packed) };
        }
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}

/// iq4_xs · q8_k dot (`vpdpbusd`); the reference's bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_iq4_xs_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_iq4_xs_with(n, w, a, |x, y| dot_i8x32(x, y))
}
