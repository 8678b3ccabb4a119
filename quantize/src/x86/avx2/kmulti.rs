//! The multi-token dots (4 tokens, and weight rows × tokens tiles) of q2_k, q3_k, q4_k, q5_k and q6_k
//! with AVX2: one driver ([`tokens`]) over a per-type unpacked super-block ([`KBlock`], the
//! vectors the one-token dot builds), the one-token dots' integer steps (`vpmaddubsw` of 32
//! values with the q8_k quants, `vpmaddwd` with the sub-block scales, a correction from the
//! block sums) and their f32 steps lane-wise ([`finish4`], shared with AVX-512's driver), so
//! every result has the one-token dot's bits. The AVX-512 driver (`avx512::kmulti`) is the same
//! loop on 64-value vectors with `vpdpwssd`.

use std::arch::x86_64::*;

use super::kquants::{
    pair_scale, q3k_scales8, q3k_values, q4k_mins16, q4k_scale, q4k_scales16, q5k_values, q6_half,
    scales16_halves, vec_dot_q2_k_q8_k, vec_dot_q3_k_q8_k, vec_dot_q4_k_q8_k, vec_dot_q5_k_q8_k,
    vec_dot_q6_k_q8_k,
};
use crate::q4_k::unpack_scales_mins;
use crate::x86::{f16x2_at, prefetch_ahead, rd_f32};

const Q2K: usize = 84;
const Q3K: usize = 110;
const Q4K: usize = 144;
const Q5K: usize = 176;
const Q6K: usize = 210;
const Q8K: usize = 292;

/// Loads 32 bytes at `off`.
///
/// # Safety
/// `off + 32 <= b.len()`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn ld256(b: &[u8], off: usize) -> __m256i {
    debug_assert!(off + 32 <= b.len());
    // SAFETY: guaranteed by the caller.
    unsafe { _mm256_loadu_si256(b.as_ptr().add(off).cast()) }
}

/// The 4 lane sums of 4 vectors of 8 i32, as the 4 lanes of one vector, by transposition
/// (integer sums, so the same values as 4 separate horizontal sums).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hsum4_i32(v: [__m256i; 4]) -> __m128i {
    let ab = _mm256_add_epi32(
        _mm256_unpacklo_epi32(v[0], v[1]),
        _mm256_unpackhi_epi32(v[0], v[1]),
    );
    let cd = _mm256_add_epi32(
        _mm256_unpacklo_epi32(v[2], v[3]),
        _mm256_unpackhi_epi32(v[2], v[3]),
    );
    // per 128-bit lane: [a, b, c, d] partial sums
    let abcd = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
    _mm_add_epi32(
        _mm256_castsi256_si128(abcd),
        _mm256_extracti128_si256::<1>(abcd),
    )
}

/// How a super-block's integer sums `Σ` (scaled products) and `C` (`c` · block sums) become
/// its f32 term, as the one-token dot does it (`dy` is the q8_k scale).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// `(d·dy)·f32(Σ) − (dmin·dy)·f32(C)`: q2_k, q5_k.
    Mins,
    /// `(d·dy)·f32(Σ − k·C)`: q3_k (k = 4), q6_k (k = 32).
    Shift(i32),
}

/// `sumf + term` for 4 tokens in 4 lanes, `term` as [`Finish`] says (the one-token dots'
/// f32 steps, lane-wise).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn finish4(
    finish: Finish,
    (d, dmin, dy): (__m128, __m128, __m128),
    sumi: __m128i,
    c: __m128i,
    sumf: __m128,
) -> __m128 {
    let d = _mm_mul_ps(d, dy);
    let term = match finish {
        Finish::Mins => _mm_sub_ps(
            _mm_mul_ps(d, _mm_cvtepi32_ps(sumi)),
            _mm_mul_ps(_mm_mul_ps(dmin, dy), _mm_cvtepi32_ps(c)),
        ),
        Finish::Shift(s) => _mm_mul_ps(
            d,
            _mm_cvtepi32_ps(_mm_sub_epi32(sumi, _mm_mullo_epi32(c, _mm_set1_epi32(s)))),
        ),
    };
    _mm_add_ps(sumf, term)
}

/// One weight super-block unpacked for the multi-token dots.
#[derive(Clone, Copy)]
struct KBlock {
    /// The 256 values (unsigned, as `vpmaddubsw` takes them): vector `v` meets quants
    /// `32v..32v + 32`.
    x: [__m256i; 8],
    /// The i16 partners of `vpmaddubsw(x[v], y[v])` in `vpmaddwd` (sub-block scales).
    s: [__m256i; 8],
    /// The i16 partners of the 16 q8_k block sums in `vpmaddwd` (mins, or scales).
    c: __m256i,
    /// The super-block scale, in every lane.
    d: __m128,
    /// The super-block min scale, in every lane ([`Finish::Mins`] only).
    dmin: __m128,
}

/// `out[t] = single(w, act(t))` for one weight row and every token `t < out.len()`: each
/// super-block unpacked once for all the tokens, 4 tokens at a time (exact integer sums, the
/// f32 steps of [`finish4`]); the last `len % 4` tokens take `single`.
///
/// # Safety
/// `w` holds `n / 256` blocks of `wb` bytes, `unpack` reads one block, every `act(t)` holds
/// `n / 256` q8_k blocks; the caller enables AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn tokens<'a>(
    n: usize,
    wb: usize,
    w: &[u8],
    act: impl Fn(usize) -> &'a [u8],
    out: &mut [f32],
    finish: Finish,
    unpack: impl Fn(&[u8]) -> KBlock,
    single: impl Fn(&[u8], &[u8]) -> f32,
) {
    let quads = out.len() / 4 * 4;
    out[..quads].fill(0.0);
    for b in 0..if quads > 0 { n / 256 } else { 0 } {
        prefetch_ahead(w, wb * b, wb);
        let k = unpack(&w[wb * b..wb * (b + 1)]);
        for g in 0..quads / 4 {
            let mut acc = [_mm256_setzero_si256(); 4];
            let mut corr = [_mm256_setzero_si256(); 4];
            let mut dy = [0f32; 4];
            for t in 0..4 {
                let ba = &act(4 * g + t)[Q8K * b..Q8K * (b + 1)];
                for v in 0..8 {
                    // SAFETY: q8 bytes 4 + 32v + 32 <= 260 of the 292-byte block (v < 8).
                    let y = unsafe { ld256(ba, 4 + 32 * v) };
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(k.x[v], y), k.s[v]);
                    acc[t] = _mm256_add_epi32(acc[t], p);
                }
                // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
                corr[t] = _mm256_madd_epi16(unsafe { ld256(ba, 260) }, k.c);
                dy[t] = rd_f32(ba, 0);
            }
            let o = &mut out[4 * g..4 * g + 4];
            // SAFETY: dy and o hold 4 f32.
            unsafe {
                let dy = _mm_loadu_ps(dy.as_ptr());
                let sumf = _mm_loadu_ps(o.as_ptr());
                let (sumi, c) = (hsum4_i32(acc), hsum4_i32(corr));
                let r = finish4(finish, (k.d, k.dmin, dy), sumi, c, sumf);
                _mm_storeu_ps(o.as_mut_ptr(), r);
            }
        }
    }
    for (t, y) in out.iter_mut().enumerate().skip(quads) {
        *y = single(w, act(t));
    }
}

/// A q2_k super-block (scales 0..16, qs 16..80, d 80, dmin 82).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn q2_k_block(bw: &[u8]) -> KBlock {
    assert!(bw.len() >= Q2K);
    let (m2, m4) = (_mm256_set1_epi8(3), _mm_set1_epi8(0x0f));
    // SAFETY: the 16 scale bytes are at 0..16 of the 84-byte block.
    let sc8 = unsafe { _mm_loadu_si128(bw.as_ptr().cast()) };
    let scales = _mm_and_si128(sc8, m4);
    let x = std::array::from_fn(|v| {
        // SAFETY: qs bytes 16+32h..48+32h < 80 (h = v / 4 < 2).
        let q = unsafe { ld256(bw, 16 + 32 * (v / 4)) };
        _mm256_and_si256(
            _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * (v % 4) as i32)),
            m2,
        )
    });
    let (d, dmin) = f16x2_at(bw, 80);
    KBlock {
        x,
        s: {
            let h = scales16_halves(scales);
            std::array::from_fn(|v| pair_scale(&h, 2 * v))
        },
        c: _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc8), m4)),
        d: _mm_set1_ps(d),
        dmin: _mm_set1_ps(dmin),
    }
}

/// A q3_k super-block (hmask 0..32, qs 32..96, scales 96..108, d 108): values plus 4.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn q3_k_block(bw: &[u8]) -> KBlock {
    assert!(bw.len() >= Q3K);
    let sc8 = q3k_scales8(bw);
    // SAFETY: hmask is bytes 0..32 of the 110-byte block.
    let hm = unsafe { ld256(bw, 0) };
    let x = std::array::from_fn(|v| {
        // SAFETY: qs bytes 32+32h..64+32h < 96 (h = v / 4 < 2).
        let q = unsafe { ld256(bw, 32 + 32 * (v / 4)) };
        q3k_values(q, hm, v)
    });
    KBlock {
        x,
        s: {
            let h = scales16_halves(sc8);
            std::array::from_fn(|v| pair_scale(&h, 2 * v))
        },
        c: _mm256_cvtepi8_epi16(sc8),
        d: _mm_set1_ps(f16x2_at(bw, 106).1), // bytes 106..108 are scales, 108..110 d
        dmin: _mm_setzero_ps(),
    }
}

/// A q4_k super-block (d 0, dmin 2, scales 4..16, qs 16..144).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn q4_k_block(bw: &[u8]) -> KBlock {
    assert!(bw.len() >= Q4K);
    let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
    let scales = q4k_scales16(&sm);
    let mask = _mm256_set1_epi8(0x0f);
    let mut x = [_mm256_setzero_si256(); 8];
    for j in 0..4 {
        // SAFETY: qs bytes 16+32j..48+32j < 144 (j < 4).
        let q = unsafe { ld256(bw, 16 + 32 * j) };
        x[2 * j] = _mm256_and_si256(q, mask);
        x[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
    }
    let (d, dmin) = f16x2_at(bw, 0);
    KBlock {
        x,
        s: std::array::from_fn(|v| q4k_scale(scales, v)),
        c: q4k_mins16(&sm),
        d: _mm_set1_ps(d),
        dmin: _mm_set1_ps(dmin),
    }
}

/// A q5_k super-block (d 0, dmin 2, scales 4..16, qh 16..48, qs 48..176).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn q5_k_block(bw: &[u8]) -> KBlock {
    assert!(bw.len() >= Q5K);
    let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
    let scales = q4k_scales16(&sm);
    // SAFETY: qh is bytes 16..48 of the 176-byte block.
    let qh = unsafe { ld256(bw, 16) };
    let mut x = [_mm256_setzero_si256(); 8];
    for j in 0..4 {
        // SAFETY: qs bytes 48+32j..80+32j <= 176 (j < 4).
        let q = unsafe { ld256(bw, 48 + 32 * j) };
        (x[2 * j], x[2 * j + 1]) = q5k_values(q, qh, j);
    }
    let (d, dmin) = f16x2_at(bw, 0);
    KBlock {
        x,
        s: std::array::from_fn(|v| q4k_scale(scales, v)),
        c: q4k_mins16(&sm),
        d: _mm_set1_ps(d),
        dmin: _mm_set1_ps(dmin),
    }
}

/// A q6_k super-block (ql 0..128, qh 128..192, scales 192..208, d 208): values plus 32.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn q6_k_block(bw: &[u8]) -> KBlock {
    assert!(bw.len() >= Q6K);
    // SAFETY: the 16 int8 scales are at 192..208 of the 210-byte block.
    let sc8 = unsafe { _mm_loadu_si128(bw.as_ptr().add(192).cast()) };
    // SAFETY: bw holds 210 bytes, h < 2.
    let (h0, h1) = unsafe { (q6_half(bw, 0), q6_half(bw, 1)) };
    KBlock {
        x: std::array::from_fn(|v| if v < 4 { h0[v] } else { h1[v - 4] }),
        s: {
            let h = scales16_halves(sc8);
            std::array::from_fn(|v| pair_scale(&h, 2 * v))
        },
        c: _mm256_cvtepi8_epi16(sc8),
        d: _mm_set1_ps(f16x2_at(bw, 206).1), // bytes 206..208 are scales, 208..210 d
        dmin: _mm_setzero_ps(),
    }
}

/// Bytes of q8_k activation rows the tiled dots take through all their weight rows before the
/// next ones: a block that stays in L2 while the rows stream past it (every weight row is read
/// once per block). Without blocks, each weight row met every token's activations, streamed
/// again from L3 for each row once the tokens outgrew L2 (512 tokens of a 4096-wide model are
/// 2.3 MB).
const TOKEN_BLOCK_BYTES: usize = 192 * 1024;

/// Tokens per block of [`TOKEN_BLOCK_BYTES`] for activation rows of `row_bytes`: a multiple of 4
/// (the driver's groups), at least 4.
fn token_block(row_bytes: usize) -> usize {
    (TOKEN_BLOCK_BYTES / row_bytes.max(1) / 4 * 4).max(4)
}

/// Defines the 4-token dot and the tiled dot of a k-quant from its block unpacker.
macro_rules! kquant_multi {
    ($four:ident, $tiled:ident, $block:ident, $finish:expr, $single:ident, $wb:expr,
     $name:literal) => {
        #[doc = concat!($name, "·q8_k dot of one weight row with 4 activation rows,")]
        #[doc = concat!("bit-identical to 4 calls of [`", stringify!($single), "`].")]
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) fn $four(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            let nb = n / 256;
            assert!(w.len() == $wb * nb && a.iter().all(|r| r.len() == Q8K * nb));
            let mut out = [0f32; 4];
            let single = |w: &[u8], a: &[u8]| $single(n, w, a);
            // SAFETY: lengths checked; the features are this function's.
            unsafe {
                tokens(
                    n,
                    $wb,
                    w,
                    |t| a[t],
                    &mut out,
                    $finish,
                    |b| $block(b),
                    single,
                )
            };
            out
        }

        #[doc = concat!("`out[r·m + t]` = the ", $name, "·q8_k dot of weight row `r` of `w` with")]
        #[doc = "activation row `t` of `a` (`m` rows), each result bit-identical to"]
        #[doc = concat!("[`", stringify!($single), "`].")]
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) fn $tiled(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
            let nb = n / 256;
            let (rb, ab) = ($wb * nb, Q8K * nb);
            assert!(nb > 0 && w.len().is_multiple_of(rb) && a.len().is_multiple_of(ab));
            let (rows, m) = (w.len() / rb, a.len() / ab);
            assert!(out.len() == rows * m);
            let act = |t: usize| &a[ab * t..ab * (t + 1)];
            let single = |w: &[u8], a: &[u8]| $single(n, w, a);
            let tb = token_block(ab);
            for t0 in (0..m).step_by(tb) {
                let te = m.min(t0 + tb);
                let act = |t: usize| act(t0 + t);
                for (row, o) in w.chunks_exact(rb).zip(out.chunks_exact_mut(m)) {
                    // SAFETY: lengths checked; the features are this function's.
                    unsafe {
                        tokens(
                            n,
                            $wb,
                            row,
                            act,
                            &mut o[t0..te],
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
    vec_dot_tiled_q2_k_q8_k,
    q2_k_block,
    Finish::Mins,
    vec_dot_q2_k_q8_k,
    Q2K,
    "q2_k"
);
kquant_multi!(
    vec_dot4_q3_k_q8_k,
    vec_dot_tiled_q3_k_q8_k,
    q3_k_block,
    Finish::Shift(4),
    vec_dot_q3_k_q8_k,
    Q3K,
    "q3_k"
);
kquant_multi!(
    vec_dot4_q4_k_q8_k,
    vec_dot_tiled_q4_k_q8_k,
    q4_k_block,
    Finish::Mins,
    vec_dot_q4_k_q8_k,
    Q4K,
    "q4_k"
);
kquant_multi!(
    vec_dot4_q5_k_q8_k,
    vec_dot_tiled_q5_k_q8_k,
    q5_k_block,
    Finish::Mins,
    vec_dot_q5_k_q8_k,
    Q5K,
    "q5_k"
);
kquant_multi!(
    vec_dot4_q6_k_q8_k,
    vec_dot_tiled_q6_k_q8_k,
    q6_k_block,
    Finish::Shift(32),
    vec_dot_q6_k_q8_k,
    Q6K,
    "q6_k"
);
