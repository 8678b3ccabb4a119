//! iq4_nl (32-value blocks) and iq4_xs (256-value super-blocks) with AVX2.
//!
//! The grid lookup is one `vpshufb` of the 16 signed grid values by the nibbles; then the dots
//! are q4_0's integer dot (iq4_nl · q8_0, accumulated in lanes) and exact per-sub-block sums
//! with the reference's f32 steps (iq4_xs · q8_k, the reference's bits).
//!
//! The encoders run ggml's search with [`best_index_ps`], the grid index of 8 values at once
//! with the same f32 comparisons as ggml's `best_index_int8`. iq4_xs puts the first pass and
//! the 15 trial scales of a sub-block in 16 lanes and walks the 32 elements in order, so each
//! lane's sums are ggml's sums in ggml's order; iq4_nl (one pass) puts the elements in lanes
//! and adds the 32 products in order. Both are byte-identical to the references.
//! Offsets: iq4_nl = d 0, qs 2..18; iq4_xs = d 0, scales_h 2..4, scales_l 4..8, qs 8..136.

use std::arch::x86_64::*;

use bytemuck::Zeroable;
use llamapack_format::blocks::{BlockIq4Xs, KVALUES_IQ4NL};

use super::block32::{abs_max, dot_i8x32, load_block, q4_0_nibbles};
use crate::iq4_nl::{GRID, GROUP_MAX_EPS, ZERO_INDEX, choose_scale, first_id, trial_id};
use crate::iq4_xs::{super_scales, write_scales};
use crate::x86::{f16_to_f32, f32_to_f16, pack_i32x32_to_i8, prefetch_ahead, rd_f32, rd_u16};

const NLB: usize = 18; // bytes of an iq4_nl block
const XSB: usize = 136; // bytes of an iq4_xs block
const Q8KB: usize = 292; // bytes of a q8_k block

/// The 16 grid values as signed bytes in both 128-bit lanes: the `vpshufb` table.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn grid_bytes() -> __m256i {
    let k = KVALUES_IQ4NL;
    _mm256_broadcastsi128_si256(_mm_setr_epi8(
        k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10], k[11], k[12], k[13],
        k[14], k[15],
    ))
}

/// The grid as f32 vectors for the 8-entry `vpermps` lookups of [`best_index_ps`].
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    /// `GRID[0..8]`.
    lo: __m256,
    /// `GRID[8..16]`.
    hi: __m256,
    /// `GRID[1..9]` (the upper neighbour of entries 0..8).
    next_lo: __m256,
    /// `GRID[9..16]`, then +∞ (entry 15 has no upper neighbour).
    next_hi: __m256,
    /// `GRID[2], GRID[6], GRID[10], GRID[14]`: the third probe of the binary search.
    probe2: __m256,
    /// `GRID[1], GRID[3], …, GRID[15]`: the fourth probe.
    probe1: __m256,
}

impl Tables {
    /// Builds the tables.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn new() -> Tables {
        let g = |k: usize| GRID.get(k).copied().unwrap_or(f32::INFINITY);
        let v = |f: fn(usize) -> usize| {
            _mm256_setr_ps(
                g(f(0)),
                g(f(1)),
                g(f(2)),
                g(f(3)),
                g(f(4)),
                g(f(5)),
                g(f(6)),
                g(f(7)),
            )
        };
        Tables {
            lo: v(|k| k),
            hi: v(|k| k + 8),
            next_lo: v(|k| k + 1),
            next_hi: v(|k| k + 9),
            probe2: v(|k| (4 * k + 2) % 16),
            probe1: v(|k| 2 * k + 1),
        }
    }
}

/// ggml's `best_index_int8` on 8 lanes: the grid value and its index.
///
/// `c = #{k ≥ 1 : !(x < GRID[k])}` by a branch-free binary search (true for NaN at every
/// probe, so NaN gives 15 as in C), then the upper neighbour unless
/// `x − GRID[c] < GRID[c+1] − x` — ggml's comparison, in f32. For `x ≤ −127` that picks 0,
/// for finite `x ≥ 113` the +∞ neighbour keeps 15; NaN and +∞ land on 16, clamped to 15 (their
/// grid value is then +∞, never used: the searches only see finite products).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn best_index_ps(t: &Tables, x: __m256) -> (__m256, __m256i) {
    let not_below = |a: __m256, b: __m256| _mm256_cmp_ps::<_CMP_NLT_UQ>(a, b);
    let bit = |m: __m256, b: i32| _mm256_and_si256(_mm256_castps_si256(m), _mm256_set1_epi32(b));
    let upper = not_below(x, _mm256_set1_ps(GRID[8]));
    let mut c = bit(upper, 8);
    let p4 = _mm256_blendv_ps(_mm256_set1_ps(GRID[4]), _mm256_set1_ps(GRID[12]), upper);
    c = _mm256_or_si256(c, bit(not_below(x, p4), 4));
    let p2 = _mm256_permutevar8x32_ps(t.probe2, _mm256_srli_epi32::<2>(c));
    c = _mm256_or_si256(c, bit(not_below(x, p2), 2));
    let p1 = _mm256_permutevar8x32_ps(t.probe1, _mm256_srli_epi32::<1>(c));
    c = _mm256_or_si256(c, bit(not_below(x, p1), 1));
    // vpermps reads the low 3 bits of c; bit 3 (c ≥ 8) is `upper`
    let a = _mm256_blendv_ps(
        _mm256_permutevar8x32_ps(t.lo, c),
        _mm256_permutevar8x32_ps(t.hi, c),
        upper,
    );
    let b = _mm256_blendv_ps(
        _mm256_permutevar8x32_ps(t.next_lo, c),
        _mm256_permutevar8x32_ps(t.next_hi, c),
        upper,
    );
    let up = not_below(_mm256_sub_ps(x, a), _mm256_sub_ps(b, x));
    let r = _mm256_min_epi32(
        _mm256_sub_epi32(c, _mm256_castps_si256(up)),
        _mm256_set1_epi32(15),
    );
    (_mm256_blendv_ps(a, b, up), r)
}

/// The element of largest magnitude `amax` (> 0) of the block `xb` loaded as `v`, the first
/// on ties (ggml's `fabsf(x) > amax` scan).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn first_of_max(v: &[__m256; 4], xb: &[f32], amax: f32) -> f32 {
    let (sign, am) = (_mm256_set1_ps(-0.0), _mm256_set1_ps(amax));
    for (k, b) in v.iter().enumerate() {
        let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, *b), am));
        if m != 0 {
            return xb[8 * k + m.trailing_zeros() as usize];
        }
    }
    unreachable!("amax is the magnitude of an element")
}

/// The 32 indices `best_index(id · x)` of a block, packed as ggml stores them (byte `j` =
/// element `j` | element `j + 16` << 4).
#[inline]
#[target_feature(enable = "avx2")]
fn packed_indices(t: &Tables, v: &[__m256; 4], id: f32) -> __m128i {
    let idv = _mm256_set1_ps(id);
    pack_nibbles(v.map(|b| best_index_ps(t, _mm256_mul_ps(idv, b)).1))
}

/// Packs 32 indices (0..=15, four vectors of 8 in element order) into 16 bytes.
#[inline]
#[target_feature(enable = "avx2")]
fn pack_nibbles(r: [__m256i; 4]) -> __m128i {
    let q = pack_i32x32_to_i8(r);
    let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
    _mm_or_si128(lo, _mm_slli_epi16::<4>(hi))
}

/// The 8 lanes of `v`.
#[inline]
#[target_feature(enable = "avx2")]
fn lanes(v: __m256) -> [f32; 8] {
    let mut a = [0f32; 8];
    // SAFETY: `a` holds 8 floats.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
    a
}

/// iq4_nl encoder, byte-identical to [`crate::iq4_nl::quantize_row_iq4_nl_ref`] (including
/// the indices a near-zero block borrows from the block before it).
///
/// 8 blocks per pass, block `b` in lane `b` (gathered; a row's last, partial group in masked
/// lanes): each lane walks its block's 32 elements in order, so its sums are ggml's.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_iq4_nl(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == NLB * nb);
    let t = Tables::new();
    let starts = _mm256_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224);
    let mut prev = [ZERO_INDEX * 0x11; 16];
    for (xg, yg) in x.chunks(32 * 8).zip(y.chunks_mut(NLB * 8)) {
        let m = (yg.len() / NLB) as i32;
        let in_row = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(m),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        // cols[j] lane b = element j of block b
        let cols: [__m256; 32] = std::array::from_fn(|j| {
            // SAFETY: lanes b < m read xg[32·b + j], inside the group's 32·m values; the
            // other lanes are masked off and read nothing.
            unsafe {
                _mm256_mask_i32gather_ps::<4>(
                    _mm256_setzero_ps(),
                    xg.as_ptr(),
                    _mm256_add_epi32(starts, _mm256_set1_epi32(j as i32)),
                    _mm256_castsi256_ps(in_row),
                )
            }
        });
        // the first element of largest magnitude, as ggml's scan finds it
        let sign = _mm256_set1_ps(-0.0);
        let (mut amax, mut max) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for &v in &cols {
            let a = _mm256_andnot_ps(sign, v);
            let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(a, amax);
            amax = _mm256_blendv_ps(amax, a, gt);
            max = _mm256_blendv_ps(max, v, gt);
        }
        let live = _mm256_movemask_ps(_mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GE_OQ>(amax, _mm256_set1_ps(GROUP_MAX_EPS)),
            _mm256_castsi256_ps(in_row),
        ));
        // first_id(max, −1) in every lane: 1 / (max / kvalues[0])
        let id = _mm256_div_ps(
            _mm256_set1_ps(1.0),
            _mm256_div_ps(max, _mm256_set1_ps(GRID[0])),
        );
        let (mut sx, mut sq) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut r = [_mm256_setzero_si256(); 32];
        for (j, &v) in cols.iter().enumerate() {
            let (q, idx) = best_index_ps(&t, _mm256_mul_ps(id, v));
            let wq = _mm256_mul_ps(_mm256_mul_ps(v, v), q);
            sx = _mm256_add_ps(sx, _mm256_mul_ps(wq, v));
            sq = _mm256_add_ps(sq, _mm256_mul_ps(wq, q));
            r[j] = idx;
        }
        // choose_scale of the first pass alone: Σqx / Σq² where Σq² > 0, else 0
        let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(sq, _mm256_setzero_ps());
        let d = lanes(_mm256_and_ps(_mm256_div_ps(sx, sq), pos));
        // nib[j][b] = packed byte j of block b
        let nib: [[i32; 8]; 16] = std::array::from_fn(|j| {
            let v = _mm256_or_si256(r[j], _mm256_slli_epi32::<4>(r[j + 16]));
            let mut a = [0i32; 8];
            // SAFETY: a holds 8 i32.
            unsafe { _mm256_storeu_si256(a.as_mut_ptr().cast(), v) };
            a
        });
        for (b, out) in yg.chunks_exact_mut(NLB).enumerate() {
            let dh = if live & (1 << b) != 0 {
                prev = std::array::from_fn(|j| nib[j][b] as u8);
                d[b]
            } else {
                0.0
            };
            out[..2].copy_from_slice(&f32_to_f16(dh).to_le_bytes());
            out[2..].copy_from_slice(&prev);
        }
    }
}

/// One sub-block of ggml's iq4_xs search (first pass and 15 trials, one per lane, 8 lanes
/// per register): the sub-block's scale. `max` is its element of largest magnitude.
#[inline]
#[target_feature(enable = "avx2")]
fn search_lanes(t: &Tables, xb: &[f32], max: f32) -> f32 {
    let ids: [f32; 16] = std::array::from_fn(|k| {
        if k == 0 {
            first_id(max, 7)
        } else {
            trial_id(k as i32 - 8, max)
        }
    });
    // SAFETY: ids holds 16 floats.
    let idv = unsafe {
        [
            _mm256_loadu_ps(ids.as_ptr()),
            _mm256_loadu_ps(ids.as_ptr().add(8)),
        ]
    };
    let (mut sx, mut s2) = ([_mm256_setzero_ps(); 2], [_mm256_setzero_ps(); 2]);
    for &x in xb {
        let (xv, w) = (_mm256_set1_ps(x), _mm256_set1_ps(x * x));
        for h in 0..2 {
            let (q, _) = best_index_ps(t, _mm256_mul_ps(idv[h], xv));
            let wq = _mm256_mul_ps(w, q);
            sx[h] = _mm256_add_ps(sx[h], _mm256_mul_ps(wq, xv));
            s2[h] = _mm256_add_ps(s2[h], _mm256_mul_ps(wq, q));
        }
    }
    let (x0, x1, q0, q1) = (lanes(sx[0]), lanes(sx[1]), lanes(s2[0]), lanes(s2[1]));
    choose_scale(x0.into_iter().chain(x1).zip(q0.into_iter().chain(q1)))
}

/// iq4_xs encoder, byte-identical to [`crate::iq4_xs::quantize_row_iq4_xs_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_iq4_xs(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 256;
    assert!(x.len() == 256 * nb && y.len() == XSB * nb);
    let t = Tables::new();
    for (b, out) in y.chunks_exact_mut(XSB).enumerate() {
        // SAFETY: b < nb, so sub-blocks 8b..8b+8 are inside x.
        let v: [[__m256; 4]; 8] = std::array::from_fn(|ib| unsafe { load_block(x, 8 * b + ib) });
        let mut scales = [0f32; 8];
        for (ib, s) in scales.iter_mut().enumerate() {
            let amax = abs_max(&v[ib]);
            if amax >= GROUP_MAX_EPS {
                let xb = &x[256 * b + 32 * ib..256 * b + 32 * ib + 32];
                *s = search_lanes(&t, xb, first_of_max(&v[ib], xb, amax));
            }
        }
        let s = super_scales(&scales);
        let mut blk = BlockIq4Xs::zeroed();
        write_scales(&s, &mut blk);
        for (ib, qs) in blk.qs.chunks_exact_mut(16).enumerate() {
            // SAFETY: qs is 16 bytes.
            unsafe {
                _mm_storeu_si128(
                    qs.as_mut_ptr().cast(),
                    packed_indices(&t, &v[ib], s.idl[ib]),
                );
            }
        }
        out.copy_from_slice(bytemuck::bytes_of(&blk));
    }
}

/// Stores `d · kv` for 32 grid values `kv` (signed bytes in element order) into `out`.
///
/// # Safety
/// `out` has at least 32 floats.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_scaled(out: &mut [f32], kv: __m256i, d: __m256) {
    debug_assert!(out.len() >= 32);
    let (lo, hi) = (
        _mm256_castsi256_si128(kv),
        _mm256_extracti128_si256::<1>(kv),
    );
    for (k, part) in [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)]
        .into_iter()
        .enumerate()
    {
        let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part));
        // SAFETY: out has 32 floats; 8k..8k+8 is in range for k < 4.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * k), _mm256_mul_ps(d, f)) };
    }
}

/// iq4_nl decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_iq4_nl(x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 32;
    assert!(y.len() == 32 * nb && x.len() == NLB * nb);
    let g = grid_bytes();
    for (blk, out) in x.chunks_exact(NLB).zip(y.chunks_exact_mut(32)) {
        let d = _mm256_set1_ps(f16_to_f32(rd_u16(blk, 0)));
        // SAFETY: blk is 18 bytes; out is 32 floats.
        unsafe { store_scaled(out, _mm256_shuffle_epi8(g, q4_0_nibbles(blk)), d) };
    }
}

/// The 6-bit scales of an iq4_xs block minus 32, sub-block `ib` in lane `ib`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn xs_scales(blk: &[u8]) -> __m256i {
    let sl = u32::from_le_bytes([blk[4], blk[5], blk[6], blk[7]]) as i32;
    let sh = i32::from(rd_u16(blk, 2));
    let lo = _mm256_srlv_epi32(
        _mm256_set1_epi32(sl),
        _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28),
    );
    let hi = _mm256_srlv_epi32(
        _mm256_set1_epi32(sh),
        _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14),
    );
    let ls = _mm256_or_si256(
        _mm256_and_si256(lo, _mm256_set1_epi32(0x0f)),
        _mm256_slli_epi32::<4>(_mm256_and_si256(hi, _mm256_set1_epi32(3))),
    );
    _mm256_sub_epi32(ls, _mm256_set1_epi32(32))
}

/// iq4_xs decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_iq4_xs(x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 256;
    assert!(y.len() == 256 * nb && x.len() == XSB * nb);
    let g = grid_bytes();
    for (blk, out) in x.chunks_exact(XSB).zip(y.chunks_exact_mut(256)) {
        let d = f16_to_f32(rd_u16(blk, 0));
        let ls = lanes(_mm256_cvtepi32_ps(xs_scales(blk)));
        for (ib, o) in out.chunks_exact_mut(32).enumerate() {
            // the 16 bytes at 8 + 16·ib, as the quants of an 18-byte block 2 bytes before
            // SAFETY: 6 + 16·ib + 18 <= 136 for ib < 8; o is 32 floats.
            unsafe {
                let kv = _mm256_shuffle_epi8(g, q4_0_nibbles(&blk[6 + 16 * ib..]));
                store_scaled(o, kv, _mm256_set1_ps(d * ls[ib]));
            }
        }
    }
}

/// Block `i` of an iq4_nl row: its f16 scale bits and its 32 signed grid values, for the
/// q8_0 block loops of `legacy` (`dot_q8_0`: blocks accumulate in the lanes of `crate::x86::unrolled4`,
/// as q4_0's dot: within `4·ε·(blocks + 8)·Σ|wᵢ·aᵢ|` of the reference).
///
/// # Safety
/// `w` holds more than `i` blocks of 18 bytes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn iq4_nl_block(w: &[u8], i: usize) -> (u16, __m256i) {
    debug_assert!(NLB * i + NLB <= w.len());
    // SAFETY: bytes 18i..18i + 18 are inside w (the caller's promise).
    let (d, x) = unsafe {
        let p = w.as_ptr().add(NLB * i);
        (
            u16::from_le_bytes([*p, *p.add(1)]),
            q4_0_nibbles(std::slice::from_raw_parts(p, NLB)),
        )
    };
    (d, _mm256_shuffle_epi8(grid_bytes(), x))
}

/// The 8 lane sums of `v[0..8]`, `v[i]`'s in lane `i`.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum8_i32(v: &[__m256i; 8]) -> __m256i {
    let h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    let h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(h0, h1),
        _mm256_permute2x128_si256::<0x31>(h0, h1),
    )
}

/// The iq4_xs · q8_k dot with `dot` as the 32-byte signed integer dot (8 i32 lanes): the
/// AVX2 and AVX-512 kernels. Per super-block the 8 sub-block sums are exact, each is scaled
/// by `(d4d8 · f32(ls − 32))` in its lane and the 8 terms are added in order, then the
/// super-block term to the row sum: the reference's bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_iq4_xs_with(
    n: usize,
    w: &[u8],
    a: &[u8],
    dot: impl Fn(__m256i, __m256i) -> __m256i,
) -> f32 {
    let nb = n / 256;
    assert!(w.len() == XSB * nb && a.len() == Q8KB * nb);
    let g = grid_bytes();
    let mut sumf = 0f32;
    for (b, (bw, ba)) in w.chunks_exact(XSB).zip(a.chunks_exact(Q8KB)).enumerate() {
        prefetch_ahead(w, XSB * b, XSB);
        let v: [__m256i; 8] = std::array::from_fn(|ib| {
            // SAFETY: weight bytes 8 + 16·ib .. +16 (read as an 18-byte block 2 bytes
            // before) and q8 bytes 4 + 32·ib .. +32 are inside the blocks for ib < 8.
            let (x, y) = unsafe {
                (
                    q4_0_nibbles(&bw[6 + 16 * ib..]),
                    _mm256_loadu_si256(ba.as_ptr().add(4 + 32 * ib).cast()),
                )
            };
            dot(_mm256_shuffle_epi8(g, x), y)
        });
        let d4d8 = f16_to_f32(rd_u16(bw, 0)) * rd_f32(ba, 0);
        let dl = _mm256_mul_ps(_mm256_set1_ps(d4d8), _mm256_cvtepi32_ps(xs_scales(bw)));
        let terms = lanes(_mm256_mul_ps(dl, _mm256_cvtepi32_ps(hsum8_i32(&v))));
        sumf += terms.iter().fold(0f32, |s, &t| s + t);
    }
    sumf
}

/// iq4_xs · q8_k dot: the reference's bits.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_iq4_xs_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_iq4_xs_with(n, w, a, |x, y| dot_i8x32(x, y))
}
