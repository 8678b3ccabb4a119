//! The multi-token dots (4 tokens, and weight rows × tokens tiles) of the k-quants whose
//! one-token AVX-512 dot is `vpmaddubsw` of 64 unsigned values with the q8_k quants, then
//! `vpdpwssd` with the sub-block scales, and a correction from the q8_k block sums: q2_k, q3_k,
//! q5_k and q6_k. One driver ([`tokens`]) runs them all; a type only says how one weight
//! super-block unpacks ([`KBlock`]) and how its two integer sums become f32 (AVX2's `Finish`
//! and `finish4`: the f32 steps are shared with the AVX2 driver, which runs the same loop on
//! 32-value vectors with `vpmaddwd`).
//! The integer sums are the one-token dot's (same instructions on the same vectors) and the
//! f32 steps run lane-wise in its order, so every result has the one-token dot's bits.

use std::arch::x86_64::*;

use super::kquants::{
    Q2K, Q3K, Q5K, Q6K, Q8K, hsum4_i32x16, join, ld256, ld512, q3k_values64, quad_scale_idx,
    vec_dot_q2_k_q8_k, vec_dot_q3_k_q8_k, vec_dot_q5_k_q8_k, vec_dot_q6_k_q8_k,
};
use crate::q4_k::unpack_scales_mins;
use crate::x86::avx2::{Finish, finish4, hsum4_i32, q3k_scales8, q4k_mins16, q5k_values};
use crate::x86::{f16x2_at, prefetch_ahead, rd_f32};

/// One weight super-block unpacked for the multi-token dots.
#[derive(Clone, Copy)]
pub(super) struct KBlock {
    /// The 256 values (unsigned, as `vpmaddubsw` takes them), 64 per vector in q8_k order:
    /// vector `g` meets quants `64g..64g + 64`.
    pub(super) x: [__m512i; 4],
    /// The i16 partners of `vpmaddubsw(x[g], y[g])` in `vpdpwssd` (sub-block scales).
    s: [__m512i; 4],
    /// The i16 partners of the 16 q8_k block sums in `vpmaddwd` (mins, or scales).
    pub(super) c: __m256i,
    /// The super-block scale, in every lane.
    pub(super) d: __m128,
    /// The super-block min scale, in every lane (`Finish::Mins` only).
    pub(super) dmin: __m128,
}

/// `out[r][t] = single(w[r], act(t))` for `R` weight rows and every token `t < out[r].len()`:
/// each weight super-block is unpacked once for all the tokens, each token's quants loaded
/// once for the `R` rows (`SCALED`: the values `x` are already multiplied by their sub-block
/// scales, and one `vpdpbusd` replaces `vpmaddubsw` + `vpdpwssd`: the same exact sum). Tokens
/// go 4 at a time (exact integer sums, the single dot's f32 steps
/// in 4 lanes, so each result has its bits); the last `len % 4` tokens take `single`.
///
/// # Safety
/// Every `w[r]` holds `n / 256` blocks of `wb` bytes, `unpack` reads one block, every `act(t)`
/// holds `n / 256` q8_k blocks, the `out` rows have one length; the caller enables AVX-512
/// F/BW/VL/VNNI, AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tokens<'a, const R: usize, const SCALED: bool>(
    n: usize,
    wb: usize,
    w: [&[u8]; R],
    act: impl Fn(usize) -> &'a [u8],
    mut out: [&mut [f32]; R],
    finish: Finish,
    unpack: impl Fn(&[u8]) -> KBlock,
    single: impl Fn(&[u8], &[u8]) -> f32,
) {
    let m = out[0].len();
    let quads = m / 4 * 4;
    for o in &mut out {
        o[..quads].fill(0.0);
    }
    // (no whole group of 4 tokens: every token takes the single dot below)
    for b in 0..if quads > 0 { n / 256 } else { 0 } {
        let k: [KBlock; R] = std::array::from_fn(|r| {
            prefetch_ahead(w[r], wb * b, wb);
            unpack(&w[r][wb * b..wb * (b + 1)])
        });
        for g in 0..quads / 4 {
            let mut acc = [[_mm512_setzero_si512(); 4]; R];
            let mut corr = [[_mm256_setzero_si256(); 4]; R];
            let mut dy = [0f32; 4];
            for t in 0..4 {
                let ba = &act(4 * g + t)[Q8K * b..Q8K * (b + 1)];
                for v in 0..4 {
                    // SAFETY: q8 bytes 4 + 64v + 64 <= 260 of the 292-byte block (v < 4).
                    let y = unsafe { ld512(ba, 4 + 64 * v) };
                    for r in 0..R {
                        acc[r][t] = if SCALED {
                            _mm512_dpbusd_epi32(acc[r][t], k[r].x[v], y)
                        } else {
                            let p = _mm512_maddubs_epi16(k[r].x[v], y);
                            _mm512_dpwssd_epi32(acc[r][t], p, k[r].s[v])
                        };
                    }
                }
                // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
                let bsums = unsafe { ld256(ba, 260) };
                for r in 0..R {
                    corr[r][t] = _mm256_madd_epi16(bsums, k[r].c);
                }
                dy[t] = rd_f32(ba, 0);
            }
            // SAFETY: dy holds 4 f32.
            let dy = unsafe { _mm_loadu_ps(dy.as_ptr()) };
            for r in 0..R {
                let (sumi, c) = (hsum4_i32x16(acc[r]), hsum4_i32(corr[r]));
                let o = &mut out[r][4 * g..4 * g + 4];
                // SAFETY: o holds 4 f32.
                let sumf = unsafe { _mm_loadu_ps(o.as_ptr()) };
                let sumf = finish4(finish, (k[r].d, k[r].dmin, dy), sumi, c, sumf);
                // SAFETY: o holds 4 f32.
                unsafe { _mm_storeu_ps(o.as_mut_ptr(), sumf) };
            }
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        for (t, y) in o.iter_mut().enumerate().skip(quads) {
            *y = single(w[r], act(t));
        }
    }
}

/// A q2_k super-block (scales 0..16, qs 16..80, d 80, dmin 82): the one-token dot's
/// vectors, each value multiplied by its sub-block scale (for the `SCALED` driver).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
fn q2_k_block(bw: &[u8]) -> KBlock {
    let m4 = _mm_set1_epi8(0x0f);
    let idx4 = quad_scale_idx();
    // SAFETY: the 16 scale bytes are at 0..16 of the 84-byte block.
    let sc8 = unsafe { _mm_loadu_si128(bw[..Q2K].as_ptr().cast()) };
    let scales = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sc8, m4)));
    let x = q2_k_values(bw);
    let (d, dmin) = f16x2_at(bw, 80);
    // x·scale (≤ 3·15) per byte: the i16 products of the even and the odd bytes, merged
    let s = idx4.map(|i| _mm512_permutexvar_epi16(i, scales));
    let even = _mm512_set1_epi16(0x00ff);
    let x = std::array::from_fn(|g| {
        let lo = _mm512_mullo_epi16(_mm512_and_si512(x[g], even), s[g]);
        let hi = _mm512_mullo_epi16(_mm512_srli_epi16::<8>(x[g]), s[g]);
        _mm512_or_si512(lo, _mm512_slli_epi16::<8>(hi))
    });
    KBlock {
        x,
        s,
        c: _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc8), m4)),
        d: _mm_set1_ps(d),
        dmin: _mm_set1_ps(dmin),
    }
}

/// The 256 2-bit values of a q2_k super-block (qs 16..80) as they are, 64 per vector in q8_k
/// order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
pub(super) fn q2_k_values(bw: &[u8]) -> [__m512i; 4] {
    assert!(bw.len() >= Q2K);
    let m2 = _mm256_set1_epi8(3);
    std::array::from_fn(|g| {
        let (h, kk) = (g / 2, g % 2);
        // SAFETY: qs bytes 16+32h..48+32h < 80 (h < 2), checked above.
        let q = unsafe { ld256(bw, 16 + 32 * h) };
        let sh =
            |k: usize| _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * k as i32)), m2);
        join(sh(2 * kk), sh(2 * kk + 1))
    })
}

/// A q3_k super-block (hmask 0..32, qs 32..96, scales 96..108, d 108): values plus 4.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
pub(super) fn q3_k_block(bw: &[u8]) -> KBlock {
    assert!(bw.len() >= Q3K);
    let sc16 = _mm256_cvtepi8_epi16(q3k_scales8(bw));
    let sc = _mm512_castsi256_si512(sc16);
    // SAFETY: hmask is bytes 0..32 of the 110-byte block.
    let hm = _mm512_broadcast_i64x4(unsafe { ld256(bw, 0) });
    let x = std::array::from_fn(|g| q3k_values64(bw, hm, g));
    KBlock {
        x,
        s: quad_scale_idx().map(|i| _mm512_permutexvar_epi16(i, sc)),
        c: sc16,
        d: _mm_set1_ps(f16x2_at(bw, 106).1), // bytes 106..108 are scales, 108..110 d
        dmin: _mm_setzero_ps(),
    }
}

/// A q5_k super-block (d 0, dmin 2, scales 4..16, qh 16..48, qs 48..176).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
pub(super) fn q5_k_block(bw: &[u8]) -> KBlock {
    assert!(bw.len() >= Q5K);
    let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
    let sc8 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi64x(
        0,
        i64::from_le_bytes(sm[..8].try_into().expect("8 scales")),
    )));
    // scale 2j in i16 lanes 0..16, scale 2j + 1 in lanes 16..32
    let pair = |t: i16| join(_mm256_set1_epi16(t), _mm256_set1_epi16(t + 1));
    // SAFETY: qh is bytes 16..48 of the 176-byte block.
    let qh = unsafe { ld256(bw, 16) };
    let x = std::array::from_fn(|j| {
        // SAFETY: qs bytes 48+32j..80+32j <= 176 (j < 4).
        let q = unsafe { ld256(bw, 48 + 32 * j) };
        let (lo, hi) = q5k_values(q, qh, j);
        join(lo, hi)
    });
    let (d, dmin) = f16x2_at(bw, 0);
    KBlock {
        x,
        s: std::array::from_fn(|j| _mm512_permutexvar_epi16(pair(2 * j as i16), sc8)),
        c: q4k_mins16(&sm),
        d: _mm_set1_ps(d),
        dmin: _mm_set1_ps(dmin),
    }
}

/// A q6_k super-block (ql 0..128, qh 128..192, scales 192..208, d 208): values plus 32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
pub(super) fn q6_k_block(bw: &[u8]) -> KBlock {
    assert!(bw.len() >= Q6K);
    let (m4, m2) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x30));
    // SAFETY: the 16 int8 scales are at 192..208 of the 210-byte block.
    let sc16 = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(bw.as_ptr().add(192).cast()) });
    let sc = _mm512_castsi256_si512(sc16);
    let mut x = [_mm512_setzero_si512(); 4];
    for h in 0..2 {
        // SAFETY: ql 64h..64h+64 < 128, qh 128+32h..160+32h < 192 of 210 bytes.
        let (ql, qh) = unsafe { (ld512(bw, 64 * h), ld256(bw, 128 + 32 * h)) };
        // values 0..64 of the half: low nibbles | bits 0-1 (0..32) and 2-3 (32..64) of qh
        let sh_a = join(_mm256_slli_epi16::<4>(qh), _mm256_slli_epi16::<2>(qh));
        x[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(sh_a, m2));
        // values 64..128: high nibbles | bits 4-5 and 6-7 of qh
        let sh_b = join(qh, _mm256_srli_epi16::<2>(qh));
        x[2 * h + 1] = _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4),
            _mm512_and_si512(sh_b, m2),
        );
    }
    KBlock {
        x,
        s: quad_scale_idx().map(|i| _mm512_permutexvar_epi16(i, sc)),
        c: sc16,
        d: _mm_set1_ps(f16x2_at(bw, 206).1), // bytes 206..208 are scales, 208..210 d
        dmin: _mm_setzero_ps(),
    }
}

/// Defines the 4-token dot and the tiled dot of a k-quant from its block unpacker.
macro_rules! kquant_multi {
    ($four:ident, $tiled:ident, $block:ident, $scaled:literal, $finish:expr, $single:ident,
     $wb:expr, $name:literal) => {
        #[doc = concat!($name, "·q8_k dot of one weight row with 4 activation rows,")]
        #[doc = concat!("bit-identical to 4 calls of [`", stringify!($single), "`].")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $four(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            let nb = n / 256;
            assert!(w.len() == $wb * nb && a.iter().all(|r| r.len() == Q8K * nb));
            let mut out = [0f32; 4];
            // SAFETY: lengths checked; the features are this function's.
            unsafe {
                tokens::<1, $scaled>(
                    n,
                    $wb,
                    [w],
                    |t| a[t],
                    [&mut out],
                    $finish,
                    |b| $block(b),
                    |w, a| $single(n, w, a),
                )
            };
            out
        }

        #[doc = concat!("`out[r·m + t]` = the ", $name, "·q8_k dot of weight row `r` of `w` with")]
        #[doc = "activation row `t` of `a` (`m` rows), weight rows two at a time, each result"]
        #[doc = concat!("bit-identical to [`", stringify!($single), "`].")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $tiled(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
            let nb = n / 256;
            let (rb, ab) = ($wb * nb, Q8K * nb);
            assert!(nb > 0 && w.len().is_multiple_of(rb) && a.len().is_multiple_of(ab));
            let (rows, m) = (w.len() / rb, a.len() / ab);
            assert!(out.len() == rows * m);
            let act = |t: usize| &a[ab * t..ab * (t + 1)];
            let single = |w: &[u8], a: &[u8]| $single(n, w, a);
            for (pair, o) in w.chunks(2 * rb).zip(out.chunks_mut(2 * m)) {
                if pair.len() == 2 * rb {
                    let (o0, o1) = o.split_at_mut(m);
                    let w2 = [&pair[..rb], &pair[rb..]];
                    // SAFETY: lengths checked; the features are this function's.
                    unsafe {
                        tokens::<2, $scaled>(
                            n,
                            $wb,
                            w2,
                            act,
                            [o0, o1],
                            $finish,
                            |b| $block(b),
                            single,
                        )
                    };
                } else {
                    // SAFETY: lengths checked; the features are this function's.
                    unsafe {
                        tokens::<1, $scaled>(
                            n,
                            $wb,
                            [pair],
                            act,
                            [o],
                            $finish,
                            |b| $block(b),
                            single,
                        )
                    };
                }
            }
        }
    };
}

kquant_multi!(
    vec_dot4_q2_k_q8_k,
    pairs_q2_k_q8_k,
    q2_k_block,
    true,
    Finish::Mins,
    vec_dot_q2_k_q8_k,
    Q2K,
    "q2_k"
);
kquant_multi!(
    vec_dot4_q3_k_q8_k,
    pairs_q3_k_q8_k,
    q3_k_block,
    false,
    Finish::Shift(4),
    vec_dot_q3_k_q8_k,
    Q3K,
    "q3_k"
);
kquant_multi!(
    vec_dot4_q5_k_q8_k,
    pairs_q5_k_q8_k,
    q5_k_block,
    false,
    Finish::Mins,
    vec_dot_q5_k_q8_k,
    Q5K,
    "q5_k"
);
kquant_multi!(
    vec_dot4_q6_k_q8_k,
    pairs_q6_k_q8_k,
    q6_k_block,
    false,
    Finish::Shift(32),
    vec_dot_q6_k_q8_k,
    Q6K,
    "q6_k"
);

/// Bytes of an iq4_xs block: d 0, scales_h 2..4, scales_l 4..8, qs 8..136.
const XSB: usize = 136;

/// `[lo | hi]` as one vector of 16 f32.
#[inline]
#[target_feature(enable = "avx512f")]
fn join_ps(lo: __m256, hi: __m256) -> __m512 {
    let lo = _mm512_castpd256_pd512(_mm256_castps_pd(lo));
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(lo, _mm256_castps_pd(hi)))
}

/// Per 128-bit lane `L`: `[Σ v[0]_L, Σ v[1]_L, Σ v[2]_L, Σ v[3]_L]` (the lane sums of 4
/// vectors, by transposition; integer sums).
#[inline]
#[target_feature(enable = "avx512f")]
fn lane_sums4(v: [__m512i; 4]) -> __m512i {
    let ab = _mm512_add_epi32(
        _mm512_unpacklo_epi32(v[0], v[1]),
        _mm512_unpackhi_epi32(v[0], v[1]),
    );
    let cd = _mm512_add_epi32(
        _mm512_unpacklo_epi32(v[2], v[3]),
        _mm512_unpackhi_epi32(v[2], v[3]),
    );
    _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd))
}

/// An iq4_xs super-block for the multi-token dot: the 256 grid values plus 128 (unsigned, for
/// `vpdpbusd`), vector `g` holding sub-blocks `2g` (128-bit lanes 0–1) and `2g + 1` (2–3) in
/// q8_k order; the 8 sub-block scales minus 32 as f32; the super-block scale.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
pub(super) fn iq4_xs_block(bw: &[u8]) -> ([__m512i; 4], __m256, f32) {
    use llamapack_format::blocks::KVALUES_IQ4NL;
    assert!(bw.len() >= XSB);
    let g = KVALUES_IQ4NL.map(|k| (i16::from(k) + 128) as u8);
    // SAFETY: g holds 16 bytes.
    let grid = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(g.as_ptr().cast()) });
    let m4 = _mm512_set1_epi8(0x0f);
    // 128-bit lanes [q0, q0, q1, q1] of the 32 bytes of sub-blocks 2g, 2g + 1
    let spread = _mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3);
    let x = std::array::from_fn(|g| {
        // SAFETY: qs bytes 8 + 32g .. 40 + 32g <= 136 (g < 4).
        let q = _mm512_permutexvar_epi64(
            spread,
            _mm512_castsi256_si512(unsafe { ld256(bw, 8 + 32 * g) }),
        );
        // low nibbles (values 0..16 of a sub-block) in lanes 0, 2; high ones in 1, 3
        let nib = _mm512_mask_blend_epi64(0b1100_1100, q, _mm512_srli_epi16::<4>(q));
        _mm512_shuffle_epi8(grid, _mm512_and_si512(nib, m4))
    });
    let ls = _mm256_cvtepi32_ps(crate::x86::avx2::xs_scales(bw));
    (x, ls, f16x2_at(bw, 0).0)
}

/// `out[r][t]` = the iq4_xs·q8_k dot of `w[r]` with `act(t)` for 2 weight rows and every token,
/// bit-identical to [`super::vec_dot_iq4_xs_q8_k`] (the reference's bits). Per token and row
/// the 8 sub-block sums are `Σ (v + 128)·y − 128·Σ y` (`vpdpbusd`, then the q8_k block sums:
/// exact, given block sums that are the sums of the quants, as every q8_k row the encoders
/// write); 4 tokens × 2 rows are then transposed into sub-block order, and each lane takes the
/// reference's f32 steps: `(d·dy)·f32(ls − 32)` times the sum, the 8 terms added in order from
/// 0, then the super-block term to the row sum. The last `len % 4` tokens take the single dot.
///
/// # Safety
/// Both `w[r]` hold `n / 256` iq4_xs blocks and every `act(t)` `n / 256` q8_k blocks, the `out`
/// rows have one length; the caller enables AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn iq4_xs_tokens<'a>(
    n: usize,
    w: [&[u8]; 2],
    act: impl Fn(usize) -> &'a [u8],
    mut out: [&mut [f32]; 2],
) {
    let m = out[0].len();
    let quads = m / 4 * 4;
    for o in &mut out {
        o[..quads].fill(0.0);
    }
    // sub-block order of the merged sums: [0 2 4 6 1 3 5 7], twice
    let eo = _mm512_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7);
    let c128 = _mm256_set1_epi16(128);
    for b in 0..if quads > 0 { n / 256 } else { 0 } {
        let k: [_; 2] = std::array::from_fn(|r| {
            prefetch_ahead(w[r], XSB * b, XSB);
            iq4_xs_block(&w[r][XSB * b..XSB * (b + 1)])
        });
        // ls[k]: [row 0 scale 2k ×4, row 1 scale 2k ×4, row 0 scale 2k+1 ×4, row 1 2k+1 ×4]
        let ls2 = join_ps(k[0].1, k[1].1);
        let ls: [__m512; 4] = std::array::from_fn(|j| {
            let (e, o) = (2 * j as i32, 2 * j as i32 + 1);
            let idx = _mm512_setr_epi32(
                e,
                e,
                e,
                e,
                8 + e,
                8 + e,
                8 + e,
                8 + e,
                o,
                o,
                o,
                o,
                8 + o,
                8 + o,
                8 + o,
                8 + o,
            );
            _mm512_permutexvar_ps(idx, ls2)
        });
        let xd = _mm256_set_m128(_mm_set1_ps(k[1].2), _mm_set1_ps(k[0].2));
        for g in 0..quads / 4 {
            // z[t]: [row 0 sums 0 2 4 6 | row 0 sums 1 3 5 7 | row 1 … | row 1 …]
            let mut z = [_mm512_setzero_si512(); 4];
            let mut dy = [0f32; 4];
            for (t, zt) in z.iter_mut().enumerate() {
                let ba = &act(4 * g + t)[Q8K * b..Q8K * (b + 1)];
                // SAFETY: q8 bytes 4 + 64v + 64 <= 260 of the 292-byte block (v < 4).
                let y: [__m512i; 4] = std::array::from_fn(|v| unsafe { ld512(ba, 4 + 64 * v) });
                let p = k.map(|kr| {
                    std::array::from_fn(|v| {
                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), kr.0[v], y[v])
                    })
                });
                let (s0, s1) = (lane_sums4(p[0]), lane_sums4(p[1]));
                let merged = _mm512_add_epi32(
                    _mm512_shuffle_i64x2::<0b10_00_10_00>(s0, s1),
                    _mm512_shuffle_i64x2::<0b11_01_11_01>(s0, s1),
                );
                // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
                let bsums = unsafe { ld256(ba, 260) };
                let corr = _mm512_castsi256_si512(_mm256_madd_epi16(bsums, c128));
                *zt = _mm512_sub_epi32(merged, _mm512_permutexvar_epi32(eo, corr));
                dy[t] = rd_f32(ba, 0);
            }
            // 4 × 4 transposition in every 128-bit lane: s[j] lane L, token t = z[t] lane L, j
            let lo01 = _mm512_unpacklo_epi32(z[0], z[1]);
            let hi01 = _mm512_unpackhi_epi32(z[0], z[1]);
            let lo23 = _mm512_unpacklo_epi32(z[2], z[3]);
            let hi23 = _mm512_unpackhi_epi32(z[2], z[3]);
            let s = [
                _mm512_unpacklo_epi64(lo01, lo23),
                _mm512_unpackhi_epi64(lo01, lo23),
                _mm512_unpacklo_epi64(hi01, hi23),
                _mm512_unpackhi_epi64(hi01, hi23),
            ];
            // SAFETY: dy holds 4 f32.
            let dy = unsafe { _mm_loadu_ps(dy.as_ptr()) };
            // d4d8 = d·dy: [row 0, tokens 0..4 | row 1, tokens 0..4], in both halves
            let d4d8 = _mm256_mul_ps(xd, _mm256_set_m128(dy, dy));
            let d4d8 = join_ps(d4d8, d4d8);
            let mut acc = _mm256_setzero_ps();
            for j in 0..4 {
                // [rows 0, 1 of sub-block 2j | rows 0, 1 of sub-block 2j + 1]
                let sj = _mm512_shuffle_i64x2::<0b11_01_10_00>(s[j], s[j]);
                let terms = _mm512_mul_ps(_mm512_mul_ps(d4d8, ls[j]), _mm512_cvtepi32_ps(sj));
                acc = _mm256_add_ps(acc, _mm512_castps512_ps256(terms));
                acc = _mm256_add_ps(
                    acc,
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(terms))),
                );
            }
            for (r, o) in out.iter_mut().enumerate() {
                let o = &mut o[4 * g..4 * g + 4];
                let a = if r == 0 {
                    _mm256_castps256_ps128(acc)
                } else {
                    _mm256_extractf128_ps::<1>(acc)
                };
                // SAFETY: o holds 4 f32.
                unsafe { _mm_storeu_ps(o.as_mut_ptr(), _mm_add_ps(_mm_loadu_ps(o.as_ptr()), a)) };
            }
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        for (t, y) in o.iter_mut().enumerate().skip(quads) {
            *y = super::vec_dot_iq4_xs_q8_k(n, w[r], act(t));
        }
    }
}

/// iq4_xs·q8_k dot of one weight row with 4 activation rows, bit-identical to 4 calls of
/// [`super::vec_dot_iq4_xs_q8_k`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot4_iq4_xs_q8_k(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    let nb = n / 256;
    assert!(w.len() == XSB * nb && a.iter().all(|r| r.len() == Q8K * nb));
    let (mut out, mut dup) = ([0f32; 4], [0f32; 4]);
    // SAFETY: lengths checked (the row twice: the kernel's rows come in pairs).
    unsafe { iq4_xs_tokens(n, [w, w], |t| a[t], [&mut out, &mut dup]) };
    out
}

/// `out[r·m + t]` = the iq4_xs·q8_k dot of weight row `r` of `w` with activation row `t` of
/// `a` (`m` rows), weight rows two at a time, each result bit-identical to
/// [`super::vec_dot_iq4_xs_q8_k`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn pairs_iq4_xs_q8_k(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let nb = n / 256;
    let (rb, ab) = (XSB * nb, Q8K * nb);
    assert!(nb > 0 && w.len().is_multiple_of(rb) && a.len().is_multiple_of(ab));
    let (rows, m) = (w.len() / rb, a.len() / ab);
    assert!(out.len() == rows * m);
    let act = |t: usize| &a[ab * t..ab * (t + 1)];
    for (pair, o) in w.chunks(2 * rb).zip(out.chunks_mut(2 * m)) {
        if pair.len() == 2 * rb {
            let (o0, o1) = o.split_at_mut(m);
            // SAFETY: lengths checked.
            unsafe { iq4_xs_tokens(n, [&pair[..rb], &pair[rb..]], act, [o0, o1]) };
        } else if m < 4 {
            // no whole group of tokens: the single dots
            for (t, y) in o.iter_mut().enumerate() {
                *y = super::vec_dot_iq4_xs_q8_k(n, pair, act(t));
            }
        } else {
            let mut dup = vec![0f32; m];
            // SAFETY: lengths checked (the last row twice).
            unsafe { iq4_xs_tokens(n, [pair, pair], act, [o, &mut dup]) };
        }
    }
}
