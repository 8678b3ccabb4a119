//! The k-quant dots with AVX-512 BW + VNNI: the one-token q2_k, q3_k, q5_k and q6_k dots on zmm
//! (`vpmaddubsw` of 64 values, then `vpdpwssd` with the sub-block scales, one `vpermw` spreading
//! them), and the multi-token q4_k dots (the one-token q4_k dot is AVX2's; the multi-token dots
//! of the others are in `kmulti`). Same per-block
//! integers and f32 steps as the reference.

use std::arch::x86_64::*;

use crate::q4_k::unpack_scales_mins;
use crate::x86::avx2::{hsum4_i32, q3k_scales8, q4k_mins16, q5k_values, vec_dot_q4_k_q8_k};
use crate::x86::{f16x2_at, hsum_i32, prefetch_ahead, rd_f32};

pub(super) const Q2K: usize = 84;
pub(super) const Q3K: usize = 110;
pub(super) const Q4K: usize = 144;
pub(super) const Q5K: usize = 176;
pub(super) const Q6K: usize = 210;
pub(super) const Q8K: usize = 292;

/// Loads 32 bytes at `off`.
///
/// # Safety
/// `off + 32 <= b.len()`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn ld256(b: &[u8], off: usize) -> __m256i {
    debug_assert!(off + 32 <= b.len());
    // SAFETY: guaranteed by the caller.
    unsafe { _mm256_loadu_si256(b.as_ptr().add(off).cast()) }
}

/// Loads 64 bytes at `off`.
///
/// # Safety
/// `off + 64 <= b.len()`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn ld512(b: &[u8], off: usize) -> __m512i {
    debug_assert!(off + 64 <= b.len());
    // SAFETY: guaranteed by the caller.
    unsafe { _mm512_loadu_si512(b.as_ptr().add(off).cast()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// Values `64g..64g + 64` of a q3_k super-block (`bw`, 110 bytes) plus 4, as unsigned bytes:
/// the 2 low bits of qs half `g / 2` shifted by `2·(2g mod 4)` (first 32) and 2 more (last 32),
/// plus 4 where bit `2g` (`2g + 1`) of the hmask byte is set. `hm` is the 32 hmask bytes in
/// both halves. One variable shift, one mask test and one masked add per 64 values, where two
/// 32-value [`q3k_values`] take a compare and 5 logic steps each.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
pub(super) fn q3k_values64(bw: &[u8], hm: __m512i, g: usize) -> __m512i {
    assert!(bw.len() >= 96 && g < 4);
    // SAFETY: qs bytes 32+32h..64+32h < 96 (h = g / 2 < 2), checked above.
    let q = _mm512_broadcast_i64x4(unsafe { ld256(bw, 32 + 32 * (g / 2)) });
    let k = (2 * g % 4) as i16;
    let shift = join(_mm256_set1_epi16(2 * k), _mm256_set1_epi16(2 * k + 2));
    let low = _mm512_and_si512(_mm512_srlv_epi16(q, shift), _mm512_set1_epi8(3));
    let bits = join(
        _mm256_set1_epi8((1u8 << (2 * g)) as i8),
        _mm256_set1_epi8((1u8 << (2 * g + 1)) as i8),
    );
    let high = _mm512_test_epi8_mask(hm, bits);
    _mm512_mask_add_epi8(low, high, low, _mm512_set1_epi8(4))
}

/// `vpermw` indices spreading 16 sub-block scales (i16 lanes 0–15) over the 64 values of a
/// `vpmaddubsw` spanning sub-blocks `4w..4w + 4` of 16: index vector `w` holds scale `4w + L` in
/// each i16 lane of 128-bit lane `L`.
#[inline]
#[target_feature(enable = "avx512f,avx2")]
pub(super) fn quad_scale_idx() -> [__m512i; 4] {
    let idx = |s: i16| {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(s + 1), _mm_set1_epi16(s))),
            _mm256_set_m128i(_mm_set1_epi16(s + 3), _mm_set1_epi16(s + 2)),
        )
    };
    [idx(0), idx(4), idx(8), idx(12)]
}

/// q6_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_q6_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q6K * nb && a.len() == Q8K * nb);
    let m4 = _mm512_set1_epi8(0x0f);
    let m2 = _mm512_set1_epi8(0x30);
    let idx4 = quad_scale_idx();
    let mut sumf = 0.0f32;
    for (b, (bw, ba)) in w.chunks_exact(Q6K).zip(a.chunks_exact(Q8K)).enumerate() {
        // The row is streamed once per token here (generation): fetch ahead of it.
        prefetch_ahead(w, Q6K * b, Q6K);
        // SAFETY: the 16 int8 scales are at 192..208 of the 210-byte block.
        let sc16 = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(bw.as_ptr().add(192).cast()) });
        let sc = _mm512_castsi256_si512(sc16);
        let mut acc = _mm512_setzero_si512();
        for h in 0..2 {
            // SAFETY: ql 64h..64h+64 < 128, qh 128+32h..160+32h < 192 of 210 bytes.
            let (ql, qh) = unsafe { (ld512(bw, 64 * h), ld256(bw, 128 + 32 * h)) };
            // elements 0..64: low nibbles | bits 0-1 (0..32) and 2-3 (32..64) of qh
            let sh_a = join(_mm256_slli_epi16::<4>(qh), _mm256_slli_epi16::<2>(qh));
            let xa = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(sh_a, m2));
            // elements 64..128: high nibbles | bits 4-5 and 6-7 of qh
            let sh_b = join(qh, _mm256_srli_epi16::<2>(qh));
            let xb = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4),
                _mm512_and_si512(sh_b, m2),
            );
            // SAFETY: q8 bytes 4 + 128h + 128 <= 260.
            let (ya, yb) = unsafe { (ld512(ba, 4 + 128 * h), ld512(ba, 68 + 128 * h)) };
            let pa = _mm512_maddubs_epi16(xa, ya);
            let pb = _mm512_maddubs_epi16(xb, yb);
            acc = _mm512_dpwssd_epi32(acc, pa, _mm512_permutexvar_epi16(idx4[2 * h], sc));
            acc = _mm512_dpwssd_epi32(acc, pb, _mm512_permutexvar_epi16(idx4[2 * h + 1], sc));
        }
        // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
        let bsums = unsafe { ld256(ba, 260) };
        let corr = hsum_i32(_mm256_madd_epi16(bsums, sc16));
        let sumi = _mm512_reduce_add_epi32(acc) - 32 * corr;
        let d = f16x2_at(bw, 206).1 * rd_f32(ba, 0); // bytes 206..208 are scales, 208..210 d
        sumf += d * sumi as f32;
    }
    sumf
}

/// q2_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_q2_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q2K * nb && a.len() == Q8K * nb);
    let (m2, m4) = (_mm256_set1_epi8(3), _mm_set1_epi8(0x0f));
    let idx4 = quad_scale_idx();
    let mut sumf = 0.0f32;
    for (b, (bw, ba)) in w.chunks_exact(Q2K).zip(a.chunks_exact(Q8K)).enumerate() {
        prefetch_ahead(w, Q2K * b, Q2K);
        // SAFETY: the 16 scale bytes are at 0..16 of the 84-byte block.
        let sc8 = unsafe { _mm_loadu_si128(bw.as_ptr().cast()) };
        let scales = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sc8, m4)));
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc8), m4));
        let mut acc = _mm512_setzero_si512();
        for h in 0..2 {
            // SAFETY: qs bytes 16+32h..48+32h < 80 (h < 2).
            let q = unsafe { ld256(bw, 16 + 32 * h) };
            let sh = |k: i32| _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * k)), m2);
            for kk in 0..2 {
                // values 128h + 64kk .. +64: sub-blocks 8h + 4kk .. +4
                let v = join(sh(2 * kk as i32), sh(2 * kk as i32 + 1));
                // SAFETY: q8 bytes 4 + 128h + 64kk + 64 <= 260.
                let y = unsafe { ld512(ba, 4 + 128 * h + 64 * kk) };
                let sc = _mm512_permutexvar_epi16(idx4[2 * h + kk], scales);
                acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v, y), sc);
            }
        }
        // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
        let bsums = unsafe { ld256(ba, 260) };
        let summs = hsum_i32(_mm256_madd_epi16(bsums, mins));
        let isum = _mm512_reduce_add_epi32(acc);
        let dy = rd_f32(ba, 0);
        let (xd, xdmin) = f16x2_at(bw, 80);
        let (dall, dmin) = (dy * xd, dy * xdmin);
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// q3_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_q3_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q3K * nb && a.len() == Q8K * nb);
    let idx4 = quad_scale_idx();
    let mut sumf = 0.0f32;
    for (b, (bw, ba)) in w.chunks_exact(Q3K).zip(a.chunks_exact(Q8K)).enumerate() {
        prefetch_ahead(w, Q3K * b, Q3K);
        let sc16 = _mm256_cvtepi8_epi16(q3k_scales8(bw));
        let sc = _mm512_castsi256_si512(sc16);
        // SAFETY: hmask is bytes 0..32 of the 110-byte block.
        let hm = _mm512_broadcast_i64x4(unsafe { ld256(bw, 0) });
        let mut acc = _mm512_setzero_si512();
        for (g, ix) in idx4.iter().enumerate() {
            // values 64g .. 64g + 64 (sub-blocks 4g..4g + 4) from qs half g / 2
            let u = q3k_values64(bw, hm, g);
            // SAFETY: q8 bytes 4 + 64g + 64 <= 260.
            let y = unsafe { ld512(ba, 4 + 64 * g) };
            let s = _mm512_permutexvar_epi16(*ix, sc);
            acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(u, y), s);
        }
        // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
        let bsums = unsafe { ld256(ba, 260) };
        let corr = hsum_i32(_mm256_madd_epi16(bsums, sc16));
        let sumi = _mm512_reduce_add_epi32(acc) - 4 * corr;
        let d = f16x2_at(bw, 106).1 * rd_f32(ba, 0); // bytes 106..108 are scales, 108..110 d
        sumf += d * sumi as f32;
    }
    sumf
}

/// q5_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_q5_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q5K * nb && a.len() == Q8K * nb);
    // vpermw indices: scale t in i16 lanes 0..16, scale t + 1 in lanes 16..32
    let pair = |t: i16| join(_mm256_set1_epi16(t), _mm256_set1_epi16(t + 1));
    let idx = [pair(0), pair(2), pair(4), pair(6)];
    let mut sumf = 0.0f32;
    for (b, (bw, ba)) in w.chunks_exact(Q5K).zip(a.chunks_exact(Q8K)).enumerate() {
        prefetch_ahead(w, Q5K * b, Q5K);
        let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
        let sc8 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi64x(
            0,
            i64::from_le_bytes(sm[..8].try_into().expect("8 scales")),
        )));
        // SAFETY: qh is bytes 16..48 of the 176-byte block.
        let qh = unsafe { ld256(bw, 16) };
        let mut acc = _mm512_setzero_si512();
        for (j, ix) in idx.iter().enumerate() {
            // SAFETY: qs bytes 48+32j..80+32j <= 176 and q8 bytes 4+64j..68+64j <= 260 (j < 4).
            let (q, y) = unsafe { (ld256(bw, 48 + 32 * j), ld512(ba, 4 + 64 * j)) };
            let (lo, hi) = q5k_values(q, qh, j);
            let p = _mm512_maddubs_epi16(join(lo, hi), y);
            acc = _mm512_dpwssd_epi32(acc, p, _mm512_permutexvar_epi16(*ix, sc8));
        }
        // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
        let bsums = unsafe { ld256(ba, 260) };
        let summ = hsum_i32(_mm256_madd_epi16(bsums, q4k_mins16(&sm)));
        let sumi = _mm512_reduce_add_epi32(acc);
        let dy = rd_f32(ba, 0);
        let (xd, xdmin) = f16x2_at(bw, 0);
        let (d, dmin) = (xd * dy, xdmin * dy);
        sumf += d * sumi as f32 - dmin * summ as f32;
    }
    sumf
}

/// [`hsum4_i32`](crate::x86::avx2::hsum4_i32) of 4 vectors of 16 i32, by transposition: pairs of vectors are interleaved and
/// added (32-bit, then 64-bit elements), then the four 128-bit lanes are folded; integer sums,
/// so the same values as any other order.
#[inline]
#[target_feature(enable = "avx512f,avx2")]
pub(super) fn hsum4_i32x16(v: [__m512i; 4]) -> __m128i {
    let ab = _mm512_add_epi32(
        _mm512_unpacklo_epi32(v[0], v[1]),
        _mm512_unpackhi_epi32(v[0], v[1]),
    );
    let cd = _mm512_add_epi32(
        _mm512_unpacklo_epi32(v[2], v[3]),
        _mm512_unpackhi_epi32(v[2], v[3]),
    );
    // per 128-bit lane: [a, b, c, d] partial sums
    let abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    let half = _mm256_add_epi32(
        _mm512_castsi512_si256(abcd),
        _mm512_extracti64x4_epi64::<1>(abcd),
    );
    _mm_add_epi32(
        _mm256_castsi256_si128(half),
        _mm256_extracti128_si256::<1>(half),
    )
}

/// `vpermw` indices that spread the 8 sub-block scales of a q4_k super-block (i16 lanes 0–7)
/// over the `vpackssdw` layout of sub-block pair `p` (j = 2p, 2p + 1): in 128-bit lane `L`,
/// 4 × the scale of x[2p]'s sub-block there, then 4 × x[2p + 1]'s (lanes 0–1 hold the low
/// sub-blocks 2j, lanes 2–3 the high ones 2j + 1).
const PACKED_SCALES: [__m512i; 2] = {
    const fn idx(p: i16) -> [i16; 32] {
        let mut v = [0i16; 32];
        let mut l = 0;
        while l < 4 {
            let hi = if l >= 2 { 1 } else { 0 };
            let (ja, jb) = (2 * p, 2 * p + 1);
            let mut k = 0;
            while k < 4 {
                v[8 * l + k] = 2 * ja + hi;
                v[8 * l + 4 + k] = 2 * jb + hi;
                k += 1;
            }
            l += 1;
        }
        v
    }
    // SAFETY: [i16; 32] and __m512i have the same size and any bits are a valid __m512i.
    unsafe {
        [
            std::mem::transmute::<[i16; 32], __m512i>(idx(0)),
            std::mem::transmute::<[i16; 32], __m512i>(idx(1)),
        ]
    }
};

/// `out[r][t] = vec_dot_q4_k_q8_k(n, w[r], act(t))` for `R` weight rows and every token
/// `t < out[r].len()`. Each weight super-block's scales, mins and nibbles are unpacked once for
/// all the tokens, and each token's quants are loaded once for the `R` rows. Tokens go 4 at a
/// time: their integer sums are exact and the single dot's f32 steps run lane-wise in its order,
/// so each result has its bits; the last `len % 4` tokens take the single dot.
///
/// # Safety
/// Every `w[r]` holds `n / 256` q4_k blocks and every `act(t)` `n / 256` q8_k blocks, the `out`
/// rows have one length; the caller enables AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_k_tokens<'a, const R: usize>(
    n: usize,
    w: [&[u8]; R],
    act: impl Fn(usize) -> &'a [u8],
    mut out: [&mut [f32]; R],
) {
    let m = out[0].len();
    let quads = m / 4 * 4;
    let mask = _mm512_set1_epi8(0x0f);
    for o in &mut out {
        o[..quads].fill(0.0);
    }
    // (no whole group of 4 tokens: every token takes the single dot below)
    for b in 0..if quads > 0 { n / 256 } else { 0 } {
        // Per row: x[r][j] = values 64j..64j+32 (low nibbles, sub-block 2j) then 64j+32..64j+64
        // (high nibbles, sub-block 2j + 1), as the q8_k quants lie. `vpdpbusd` of x[r][j] with
        // the quants gives, per i32 lane, a sum of 4 products of one sub-block (lanes 0–7:
        // sub-block 2j, 8–15: 2j + 1; |sum| ≤ 4·15·128, an i16); two of them packed to i16
        // (`vpackssdw`: per 128-bit lane 4 of the first, 4 of the second) meet their sub-block
        // scales in one `vpmaddwd`, sc[r][p] laid out to match.
        let mut x = [[_mm512_setzero_si512(); 4]; R];
        let mut sc = [[_mm512_setzero_si512(); 2]; R];
        let mut mins = [_mm256_setzero_si256(); R];
        let mut xd = [_mm_setzero_ps(); R];
        let mut xdmin = [_mm_setzero_ps(); R];
        for r in 0..R {
            prefetch_ahead(w[r], Q4K * b, Q4K);
            let bw = &w[r][Q4K * b..Q4K * (b + 1)];
            let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
            mins[r] = q4k_mins16(&sm);
            for (j, xj) in x[r].iter_mut().enumerate() {
                // SAFETY: qs bytes 16+32j..48+32j < 144 (j < 4).
                let q = unsafe { ld256(bw, 16 + 32 * j) };
                *xj = _mm512_and_si512(join(q, _mm256_srli_epi16::<4>(q)), mask);
            }
            let sc8 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi64x(
                0,
                i64::from_le_bytes(sm[..8].try_into().expect("8 scales")),
            )));
            sc[r] = [
                _mm512_permutexvar_epi16(PACKED_SCALES[0], sc8),
                _mm512_permutexvar_epi16(PACKED_SCALES[1], sc8),
            ];
            let (d, dmin) = f16x2_at(bw, 0);
            (xd[r], xdmin[r]) = (_mm_set1_ps(d), _mm_set1_ps(dmin));
        }
        for g in 0..quads / 4 {
            let mut acc = [[_mm512_setzero_si512(); 4]; R];
            let mut summ = [[_mm256_setzero_si256(); 4]; R];
            let mut dy = [0f32; 4];
            for t in 0..4 {
                let ba = &act(4 * g + t)[Q8K * b..Q8K * (b + 1)];
                let mut m2 = [[_mm512_setzero_si512(); 2]; R];
                for p in 0..2 {
                    // SAFETY: q8 bytes 4+128p..132+128p < 260 of the 292-byte block (p < 2).
                    let (ya, yb) = unsafe { (ld512(ba, 4 + 128 * p), ld512(ba, 68 + 128 * p)) };
                    let z = _mm512_setzero_si512();
                    for r in 0..R {
                        let ra = _mm512_dpbusd_epi32(z, x[r][2 * p], ya);
                        let rb = _mm512_dpbusd_epi32(z, x[r][2 * p + 1], yb);
                        m2[r][p] = _mm512_madd_epi16(_mm512_packs_epi32(ra, rb), sc[r][p]);
                    }
                }
                // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
                let bsums = unsafe { ld256(ba, 260) };
                for r in 0..R {
                    acc[r][t] = _mm512_add_epi32(m2[r][0], m2[r][1]);
                    summ[r][t] = _mm256_madd_epi16(bsums, mins[r]);
                }
                dy[t] = rd_f32(ba, 0);
            }
            // SAFETY: dy holds 4 f32.
            let dy = unsafe { _mm_loadu_ps(dy.as_ptr()) };
            for r in 0..R {
                let sumi = _mm_cvtepi32_ps(hsum4_i32x16(acc[r]));
                let sm = _mm_cvtepi32_ps(hsum4_i32(summ[r]));
                let o = &mut out[r][4 * g..4 * g + 4];
                // SAFETY: o holds 4 f32.
                let sumf = unsafe { _mm_loadu_ps(o.as_ptr()) };
                let (d, dmin) = (_mm_mul_ps(xd[r], dy), _mm_mul_ps(xdmin[r], dy));
                let sumf = _mm_add_ps(sumf, _mm_sub_ps(_mm_mul_ps(d, sumi), _mm_mul_ps(dmin, sm)));
                // SAFETY: o holds 4 f32.
                unsafe { _mm_storeu_ps(o.as_mut_ptr(), sumf) };
            }
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        for (t, y) in o.iter_mut().enumerate().skip(quads) {
            *y = vec_dot_q4_k_q8_k(n, w[r], act(t));
        }
    }
}

/// Defines the 4-token dot and the tiled dot of a k-quant from its `*_tokens` kernel.
macro_rules! kquant_multi {
    ($four:ident, $tiled:ident, $tokens:ident, $single:ident, $wb:expr, $name:literal) => {
        #[doc = concat!($name, "·q8_k dot of one weight row with 4 activation rows,")]
        #[doc = concat!("bit-identical to 4 calls of [`", stringify!($single), "`].")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $four(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            let nb = n / 256;
            assert!(w.len() == $wb * nb && a.iter().all(|r| r.len() == Q8K * nb));
            let mut out = [0f32; 4];
            // SAFETY: lengths checked.
            unsafe { $tokens(n, [w], |t| a[t], [&mut out]) };
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
            for (pair, o) in w.chunks(2 * rb).zip(out.chunks_mut(2 * m)) {
                if pair.len() == 2 * rb {
                    let (o0, o1) = o.split_at_mut(m);
                    // SAFETY: lengths checked.
                    unsafe { $tokens(n, [&pair[..rb], &pair[rb..]], act, [o0, o1]) };
                } else {
                    // SAFETY: lengths checked.
                    unsafe { $tokens(n, [pair], act, [o]) };
                }
            }
        }
    };
}

kquant_multi!(
    vec_dot4_q4_k_q8_k,
    pairs_q4_k_q8_k,
    q4_k_tokens,
    vec_dot_q4_k_q8_k,
    Q4K,
    "q4_k"
);
