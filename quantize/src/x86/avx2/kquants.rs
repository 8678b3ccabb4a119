//! The k-quants (q2_k, q3_k, q4_k, q5_k, q6_k) and q8_k (256-value super-blocks) with AVX2.
//!
//! Offsets: q4_k = d 0, dmin 2, scales 4..16, qs 16..144; q6_k = ql 0..128, qh 128..192,
//! scales 192..208, d 208; q8_k = d 0 (f32), qs 4..260, bsums 260..292; q2_k = scales 0..16,
//! qs 16..80, d 80, dmin 82; q3_k = hmask 0..32, qs 32..96, scales 96..108, d 108; q5_k = d 0,
//! dmin 2, scales 4..16, qh 16..48, qs 48..176.

use std::arch::x86_64::*;

use crate::q3_k::unpack_scales as q3k_unpack_scales;
use crate::q4_k::unpack_scales_mins;
use crate::x86::{
    f16_to_f32, f16x2_at, hmax_f32, hsum_i32, pack_i32x32_to_i8, prefetch_ahead, rd_f32, rd_u16,
};

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

/// q8_k encoder, byte-identical to [`crate::q8_k::quantize_row_q8_k_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q8_k(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 256;
    assert!(x.len() == 256 * nb && y.len() == Q8K * nb);
    let sign = _mm256_set1_ps(-0.0);
    for (xb, out) in x.chunks_exact(256).zip(y.chunks_exact_mut(Q8K)) {
        let mut v = [_mm256_setzero_ps(); 32];
        for (k, r) in v.iter_mut().enumerate() {
            // SAFETY: xb has 256 floats; 8k..8k+8 is in range for k < 32.
            *r = unsafe { _mm256_loadu_ps(xb.as_ptr().add(8 * k)) };
        }
        let mut m = _mm256_setzero_ps();
        for r in &v {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, *r));
        }
        let amax = hmax_f32(m);
        if amax == 0.0 {
            out.fill(0);
            continue;
        }
        let am = _mm256_set1_ps(amax);
        let mut max = 0.0f32;
        for (k, r) in v.iter().enumerate() {
            let hit =
                _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, *r), am));
            if hit != 0 {
                max = xb[8 * k + hit.trailing_zeros() as usize];
                break;
            }
        }
        let iscale = -127.0 / max;
        out[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
        if iscale.is_infinite() {
            out[4..].fill(0); // ggml's nearest_int(±inf/NaN) → low byte 0
            continue;
        }
        let (isv, top) = (_mm256_set1_ps(iscale), _mm256_set1_epi32(127));
        let mut quad = [_mm256_setzero_si256(); 8];
        for (c, qd) in quad.iter_mut().enumerate() {
            let q = pack_i32x32_to_i8(std::array::from_fn(|k| {
                _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[4 * c + k], isv)), top)
            }));
            // SAFETY: out is 292 bytes; the quants of chunk c are at 4+32c..36+32c.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(4 + 32 * c).cast(), q) };
            // sums of 4 → lanes 0..3 belong to group 2c, lanes 4..7 to group 2c+1
            *qd = _mm256_madd_epi16(
                _mm256_maddubs_epi16(_mm256_set1_epi8(1), q),
                _mm256_set1_epi16(1),
            );
        }
        // [G0 G2 G4 G6 | G1 G3 G5 G7] and [G8 .. G14 | G9 .. G15]
        let h0 = _mm256_hadd_epi32(
            _mm256_hadd_epi32(quad[0], quad[1]),
            _mm256_hadd_epi32(quad[2], quad[3]),
        );
        let h1 = _mm256_hadd_epi32(
            _mm256_hadd_epi32(quad[4], quad[5]),
            _mm256_hadd_epi32(quad[6], quad[7]),
        );
        let p = _mm256_packs_epi32(h0, h1); // [G0 G2 .. G14 | G1 G3 .. G15] as i16
        let (even, odd) = (_mm256_castsi256_si128(p), _mm256_extracti128_si256::<1>(p));
        // SAFETY: out is 292 bytes; the 16 sums are at 260..292.
        unsafe {
            _mm_storeu_si128(
                out.as_mut_ptr().add(260).cast(),
                _mm_unpacklo_epi16(even, odd),
            );
            _mm_storeu_si128(
                out.as_mut_ptr().add(276).cast(),
                _mm_unpackhi_epi16(even, odd),
            );
        }
    }
}

/// q8_k decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q8_k(x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 256;
    assert!(y.len() == 256 * nb && x.len() == Q8K * nb);
    for (blk, out) in x.chunks_exact(Q8K).zip(y.chunks_exact_mut(256)) {
        let d = _mm256_set1_ps(rd_f32(blk, 0));
        for k in 0..32 {
            // SAFETY: quant bytes 4+8k..12+8k < 260 and floats 8k..8k+8 < 256 for k < 32.
            unsafe {
                let q = _mm_loadl_epi64(blk.as_ptr().add(4 + 8 * k).cast());
                let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                _mm256_storeu_ps(out.as_mut_ptr().add(8 * k), _mm256_mul_ps(d, f));
            }
        }
    }
}

/// Widens 8 bytes (unsigned) to f32 and computes `d·q − m` (multiply, then subtract).
#[inline]
#[target_feature(enable = "avx2")]
fn scale_sub(q8: __m128i, d: __m256, m: __m256) -> __m256 {
    _mm256_sub_ps(
        _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q8))),
        m,
    )
}

/// q4_k decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q4_k(x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 256;
    assert!(y.len() == 256 * nb && x.len() == Q4K * nb);
    let mask = _mm256_set1_epi8(0x0f);
    for (blk, out) in x.chunks_exact(Q4K).zip(y.chunks_exact_mut(256)) {
        let d = f16_to_f32(rd_u16(blk, 0));
        let min = f16_to_f32(rd_u16(blk, 2));
        let sm = unpack_scales_mins(blk[4..16].try_into().expect("12 scale bytes"));
        for (j, o) in out.chunks_exact_mut(64).enumerate() {
            // SAFETY: qs bytes 16+32j..48+32j lie inside the 144-byte block for j < 4.
            let q = unsafe { ld256(blk, 16 + 32 * j) };
            let lo = _mm256_and_si256(q, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
            for (half, nib) in [lo, hi].into_iter().enumerate() {
                let s = 2 * j + half;
                let dv = _mm256_set1_ps(d * f32::from(sm[s]));
                let mv = _mm256_set1_ps(min * f32::from(sm[8 + s]));
                let (a, b) = (
                    _mm256_castsi256_si128(nib),
                    _mm256_extracti128_si256::<1>(nib),
                );
                let parts = [a, _mm_srli_si128::<8>(a), b, _mm_srli_si128::<8>(b)];
                for (k, p) in parts.into_iter().enumerate() {
                    // SAFETY: o has 64 floats; 32·half + 8k + 8 <= 64.
                    unsafe {
                        _mm256_storeu_ps(
                            o.as_mut_ptr().add(32 * half + 8 * k),
                            scale_sub(p, dv, mv),
                        );
                    }
                }
            }
        }
    }
}

/// The 8 q4_k sub-block scales of `sm` (bytes 0..8 of `unpack_scales_mins`) as i16, in both
/// 128-bit lanes ([`q4k_scales16_v`] of the array).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn q4k_scales16(sm: &[u8; 16]) -> __m256i {
    // SAFETY: `sm` is 16 bytes.
    q4k_scales16_v(unsafe { _mm_loadu_si128(sm.as_ptr().cast()) })
}

/// The 8 sub-block mins of `sm` (bytes 8..16 of `unpack_scales_mins`) as 16 i16 lanes, each
/// twice (`m0 m0 m1 m1 …`): the partners of the 16 q8_k block sums in one `vpmaddwd`, giving
/// `Σ_j m_j·(bsums[2j] + bsums[2j+1])` ([`q4k_mins16_v`] of the array).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn q4k_mins16(sm: &[u8; 16]) -> __m256i {
    // SAFETY: `sm` is 16 bytes.
    q4k_mins16_v(unsafe { _mm_loadu_si128(sm.as_ptr().cast()) })
}

/// The 8 sub-block scales (bytes 0..8) and 8 mins (bytes 8..16) of a q4_k / q5_k block
/// (scale bytes 4..16), as `q4_k::unpack_scales_mins` gives them, on 4 lanes of 32 bits at once.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn q4k_scales_mins(bw: &[u8]) -> __m128i {
    const LOW6: i32 = 0x3f3f_3f3f;
    const LOW4: i32 = 0x0f0f_0f0f;
    const LOW2: i32 = 0x0303_0303;
    assert!(bw.len() >= 16);
    // SAFETY: bytes 4..12 are inside the block (checked above).
    let v = unsafe {
        _mm_insert_epi32::<2>(
            _mm_loadl_epi64(bw.as_ptr().add(4).cast()),
            i32::from_le_bytes([bw[12], bw[13], bw[14], bw[15]]),
        )
    }; // [w0, w1, w2, 0]
    // [w0 & LOW6, w2 & LOW4, w1 & LOW6, (w2 >> 4) & LOW4]
    let x = _mm_and_si128(
        _mm_srlv_epi32(
            _mm_shuffle_epi32::<0b10_01_10_00>(v),
            _mm_setr_epi32(0, 0, 0, 4),
        ),
        _mm_setr_epi32(LOW6, LOW4, LOW6, LOW4),
    );
    // [0, ((w0 >> 6) & LOW2) << 4, 0, ((w1 >> 6) & LOW2) << 4]
    let y = _mm_slli_epi32::<4>(_mm_and_si128(
        _mm_srli_epi32::<6>(_mm_shuffle_epi32::<0b01_01_00_00>(v)),
        _mm_setr_epi32(0, LOW2, 0, LOW2),
    ));
    _mm_or_si128(x, y)
}

/// The 8 scales of [`q4k_scales_mins`]'s vector (its bytes 0..8) as i16, in both 128-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn q4k_scales16_v(sm: __m128i) -> __m256i {
    _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm))
}

/// The 8 mins of [`q4k_scales_mins`]'s vector (its bytes 8..16) as 16 i16 lanes, each twice
/// (see [`q4k_mins16`]).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn q4k_mins16_v(sm: __m128i) -> __m256i {
    let m = _mm_cvtepu8_epi16(_mm_srli_si128::<8>(sm));
    _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m))
}

/// The lane sums of `a` and of `b` (integer sums: the same values as two horizontal sums, with
/// one shared reduction tree).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hsum2_i32(a: __m256i, b: __m256i) -> (i32, i32) {
    let h = _mm256_hadd_epi32(a, b); // [a01 a23 b01 b23 | a45 a67 b45 b67]
    let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
    let s = _mm_hadd_epi32(s, s); // [a, b, a, b]
    (_mm_cvtsi128_si32(s), _mm_extract_epi32::<1>(s))
}

/// Scale `t` of [`q4k_scales16`] in all 16 lanes (one `vpshufb`).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn q4k_scale(scales: __m256i, t: usize) -> __m256i {
    let pick = (((2 * t + 1) << 8) | (2 * t)) as i16;
    _mm256_shuffle_epi8(scales, _mm256_set1_epi16(pick))
}

/// q4_k·q8_k dot: same per-block integers and f32 operations as the reference (same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q4K * nb && a.len() == Q8K * nb);
    let mask = _mm256_set1_epi8(0x0f);
    let mut sumf = 0.0f32;
    for (b, (bw, ba)) in w.chunks_exact(Q4K).zip(a.chunks_exact(Q8K)).enumerate() {
        // The row is streamed once per token here (generation): fetch ahead of it.
        prefetch_ahead(w, Q4K * b, Q4K);
        let sm = q4k_scales_mins(bw);
        let scales = q4k_scales16_v(sm);
        let mut acc = _mm256_setzero_si256();
        for j in 0..4 {
            // SAFETY: qs bytes 16+32j..48+32j < 144 and q8 bytes 4+64j..68+64j < 260 for j < 4.
            let (q, ylo, yhi) = unsafe {
                (
                    ld256(bw, 16 + 32 * j),
                    ld256(ba, 4 + 64 * j),
                    ld256(ba, 36 + 64 * j),
                )
            };
            let lo = _mm256_maddubs_epi16(_mm256_and_si256(q, mask), ylo);
            let hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16::<4>(q), mask), yhi);
            let lo = _mm256_madd_epi16(lo, q4k_scale(scales, 2 * j));
            let hi = _mm256_madd_epi16(hi, q4k_scale(scales, 2 * j + 1));
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(lo, hi));
        }
        // Σ_j m_j·(bsums[2j] + bsums[2j+1])
        // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
        let bsums = unsafe { ld256(ba, 260) };
        let (sumi, summ) = hsum2_i32(acc, _mm256_madd_epi16(bsums, q4k_mins16_v(sm)));
        let dy = rd_f32(ba, 0);
        let (xd, xdmin) = f16x2_at(bw, 0);
        let (d, dmin) = (xd * dy, xdmin * dy);
        sumf += d * sumi as f32 - dmin * summ as f32;
    }
    sumf
}

/// The four 32-byte vectors of 6-bit quants (0..=63) of half `h` of a q6_k block: vector k
/// holds elements 32k..32k+32 of the half.
///
/// # Safety
/// `blk` has at least 210 bytes and `h < 2`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn q6_half(blk: &[u8], h: usize) -> [__m256i; 4] {
    debug_assert!(blk.len() >= Q6K && h < 2);
    // SAFETY: ql bytes 64h..64h+64 < 128 and qh bytes 128+32h..160+32h < 192.
    let (qa, qb, qh) = unsafe {
        (
            ld256(blk, 64 * h),
            ld256(blk, 64 * h + 32),
            ld256(blk, 128 + 32 * h),
        )
    };
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(0x30);
    [
        _mm256_or_si256(
            _mm256_and_si256(qa, m4),
            _mm256_and_si256(_mm256_slli_epi16::<4>(qh), m2),
        ),
        _mm256_or_si256(
            _mm256_and_si256(qb, m4),
            _mm256_and_si256(_mm256_slli_epi16::<2>(qh), m2),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(qa), m4),
            _mm256_and_si256(qh, m2),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(qb), m4),
            _mm256_and_si256(_mm256_srli_epi16::<2>(qh), m2),
        ),
    ]
}

/// q6_k decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q6_k(x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 256;
    assert!(y.len() == 256 * nb && x.len() == Q6K * nb);
    for (blk, out) in x.chunks_exact(Q6K).zip(y.chunks_exact_mut(256)) {
        let d = f16_to_f32(rd_u16(blk, 208));
        for h in 0..2 {
            // SAFETY: blk is 210 bytes, h < 2.
            let qs = unsafe { q6_half(blk, h) };
            for (k, q) in qs.into_iter().enumerate() {
                let q = _mm256_sub_epi8(q, _mm256_set1_epi8(32));
                let (a, b) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
                for (p, part) in [a, _mm_srli_si128::<8>(a), b, _mm_srli_si128::<8>(b)]
                    .into_iter()
                    .enumerate()
                {
                    let sc = blk[192 + 8 * h + 2 * k + p / 2] as i8;
                    let ds = _mm256_set1_ps(d * f32::from(sc));
                    let f = _mm256_mul_ps(ds, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part)));
                    // SAFETY: out has 256 floats; 128h + 32k + 8p + 8 <= 256.
                    unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(128 * h + 32 * k + 8 * p), f) };
                }
            }
        }
    }
}

/// The 16 int8 scales of `sc8` as i16, in two vectors: scales 0..8 in both 128-bit lanes,
/// then scales 8..16 (the sources of [`pair_scale`]).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn scales16_halves(sc8: __m128i) -> [__m256i; 2] {
    [
        _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(sc8)),
        _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128::<8>(sc8))),
    ]
}

/// `[sc[s] ×8, sc[s + 1] ×8]` as 16 i16 lanes (for even `s`), from [`scales16_halves`]`(sc8)`
/// of the 16 int8 scales `sc`: one `vpshufb`; the partners of a `vpmaddubsw` of 32 values
/// spanning sub-blocks `s`, `s + 1` of 16.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn pair_scale(h: &[__m256i; 2], s: usize) -> __m256i {
    debug_assert!(s.is_multiple_of(2) && s < 16);
    let j = (s % 8) as i16;
    let pick = |i: i16| (2 * i) | ((2 * i + 1) << 8);
    _mm256_shuffle_epi8(
        h[s / 8],
        _mm256_set_m128i(_mm_set1_epi16(pick(j + 1)), _mm_set1_epi16(pick(j))),
    )
}

/// q6_k·q8_k dot: `Σ_j sc_j·Σ q·y − 32·Σ_j sc_j·bsum_j` (exact integers), then the reference's
/// f32 operations (same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q6_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q6K * nb && a.len() == Q8K * nb);
    let mut sumf = 0.0f32;
    for (b, (bw, ba)) in w.chunks_exact(Q6K).zip(a.chunks_exact(Q8K)).enumerate() {
        // The row is streamed once per token here (generation): fetch ahead of it.
        prefetch_ahead(w, Q6K * b, Q6K);
        // SAFETY: the 16 int8 scales are at 192..208 of the 210-byte block.
        let sc8 = unsafe { _mm_loadu_si128(bw.as_ptr().add(192).cast()) };
        let sc16 = scales16_halves(sc8);
        let mut acc = _mm256_setzero_si256();
        for h in 0..2 {
            // SAFETY: bw is 210 bytes, h < 2.
            let qs = unsafe { q6_half(bw, h) };
            for (k, q) in qs.into_iter().enumerate() {
                let s = 8 * h + 2 * k;
                // SAFETY: q8 bytes 4 + 128h + 32k + 32 <= 260.
                let y = unsafe { ld256(ba, 4 + 128 * h + 32 * k) };
                let p = _mm256_maddubs_epi16(q, y);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, pair_scale(&sc16, s)));
            }
        }
        // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
        let bsums = unsafe { ld256(ba, 260) };
        let corr = _mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(sc8));
        let sumi = hsum_i32(_mm256_sub_epi32(acc, _mm256_slli_epi32::<5>(corr)));
        let d = f16x2_at(bw, 206).1 * rd_f32(ba, 0); // bytes 206..208 are scales, 208..210 d
        sumf += d * sumi as f32;
    }
    sumf
}

/// q2_k·q8_k dot: `Σ_j sc_j·Σ q·y` and `Σ_j m_j·bsum_j` (exact integers), then the reference's
/// f32 steps (same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q2_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q2K * nb && a.len() == Q8K * nb);
    let (m2, m4) = (_mm256_set1_epi8(3), _mm_set1_epi8(0x0f));
    let mut sumf = 0.0f32;
    for (b, (bw, ba)) in w.chunks_exact(Q2K).zip(a.chunks_exact(Q8K)).enumerate() {
        prefetch_ahead(w, Q2K * b, Q2K);
        // SAFETY: the 16 scale bytes are at 0..16 of the 84-byte block.
        let sc8 = unsafe { _mm_loadu_si128(bw.as_ptr().cast()) };
        let (scales, mins) = (
            _mm_and_si128(sc8, m4),
            _mm_and_si128(_mm_srli_epi16::<4>(sc8), m4),
        );
        let sc16 = scales16_halves(scales);
        let mut acc = _mm256_setzero_si256();
        for h in 0..2 {
            // SAFETY: qs bytes 16+32h..48+32h < 80 (h < 2).
            let q = unsafe { ld256(bw, 16 + 32 * h) };
            for k in 0..4 {
                // values 128h + 32k .. +32: sub-blocks 8h + 2k (lanes 0..8) and 8h + 2k + 1
                let v = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * k as i32)), m2);
                // SAFETY: q8 bytes 4 + 128h + 32k + 32 <= 260.
                let y = unsafe { ld256(ba, 4 + 128 * h + 32 * k) };
                let p = _mm256_maddubs_epi16(v, y);
                let sc = pair_scale(&sc16, 8 * h + 2 * k);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, sc));
            }
        }
        // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
        let bsums = unsafe { ld256(ba, 260) };
        let (isum, summs) = hsum2_i32(acc, _mm256_madd_epi16(bsums, _mm256_cvtepu8_epi16(mins)));
        let dy = rd_f32(ba, 0);
        let (xd, xdmin) = f16x2_at(bw, 80);
        let (dall, dmin) = (dy * xd, dy * xdmin);
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// The 3-bit quants plus 4 (0..=7) of values `32v..32v + 32` of a q3_k block (`v < 8`), from
/// its `qs` half `q` and `hmask` vector `hm`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn q3k_values(q: __m256i, hm: __m256i, v: usize) -> __m256i {
    let low = _mm256_and_si256(
        _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * (v % 4) as i32)),
        _mm256_set1_epi8(3),
    );
    let bit = _mm256_set1_epi8((1u8 << v) as i8);
    let high = _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit),
        _mm256_set1_epi8(4),
    );
    _mm256_or_si256(low, high)
}

/// The 16 q3_k scales minus 32 (−32..=31) as int8: the reference's `unpack_scales` on 4 lanes
/// of 32 bits at once (low nibbles of bytes 0..8, or their high nibbles, with 2 bits of bytes
/// 8..12 above them).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn q3k_scales8(bw: &[u8]) -> __m128i {
    assert!(bw.len() >= 108);
    // SAFETY: the 12 scale bytes are 96..108 of the block (checked above).
    let v = unsafe {
        _mm_insert_epi32::<2>(
            _mm_loadl_epi64(bw.as_ptr().add(96).cast()),
            i32::from_le_bytes([bw[104], bw[105], bw[106], bw[107]]),
        )
    };
    // [a0, a1, a0 >> 4, a1 >> 4] & 0x0f0f0f0f
    let lo = _mm_and_si128(
        _mm_srlv_epi32(
            _mm_shuffle_epi32::<0b01_00_01_00>(v),
            _mm_setr_epi32(0, 0, 4, 4),
        ),
        _mm_set1_epi8(0x0f),
    );
    // [tmp, tmp >> 2, tmp >> 4, tmp >> 6] & 0x03030303, moved up 4 bits
    let hi = _mm_slli_epi32::<4>(_mm_and_si128(
        _mm_srlv_epi32(
            _mm_shuffle_epi32::<0b10_10_10_10>(v),
            _mm_setr_epi32(0, 2, 4, 6),
        ),
        _mm_set1_epi8(3),
    ));
    _mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32))
}

/// q3_k·q8_k dot: `Σ_j sc_j·Σ (q + 4)·y − 4·Σ_j sc_j·bsum_j` (exact integers), then the
/// reference's f32 steps (same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q3_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q3K * nb && a.len() == Q8K * nb);
    let mut sumf = 0.0f32;
    for (b, (bw, ba)) in w.chunks_exact(Q3K).zip(a.chunks_exact(Q8K)).enumerate() {
        prefetch_ahead(w, Q3K * b, Q3K);
        let sc8 = q3k_scales8(bw);
        let sc16 = scales16_halves(sc8);
        // SAFETY: hmask is bytes 0..32 of the 110-byte block.
        let hm = unsafe { ld256(bw, 0) };
        let mut acc = _mm256_setzero_si256();
        for h in 0..2 {
            // SAFETY: qs bytes 32+32h..64+32h < 96 (h < 2).
            let q = unsafe { ld256(bw, 32 + 32 * h) };
            for k in 0..4 {
                let v = 4 * h + k;
                // SAFETY: q8 bytes 4 + 32v + 32 <= 260.
                let y = unsafe { ld256(ba, 4 + 32 * v) };
                let p = _mm256_maddubs_epi16(q3k_values(q, hm, v), y);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, pair_scale(&sc16, 2 * v)));
            }
        }
        // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
        let bsums = unsafe { ld256(ba, 260) };
        let corr = _mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(sc8));
        let sumi = hsum_i32(_mm256_sub_epi32(acc, _mm256_slli_epi32::<2>(corr)));
        let d = f16_to_f32(rd_u16(bw, 108)) * rd_f32(ba, 0);
        sumf += d * sumi as f32;
    }
    sumf
}

/// The 5-bit quants of sub-blocks `2j` (`lo`) and `2j + 1` (`hi`) of a q5_k block: nibbles of
/// `q` (`qs` bytes 32j..) with the fifth bits `2j`, `2j + 1` of `qh`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn q5k_values(q: __m256i, qh: __m256i, j: usize) -> (__m256i, __m256i) {
    let mask = _mm256_set1_epi8(0x0f);
    let fifth = |bit: u8| {
        let b = _mm256_set1_epi8(bit as i8);
        _mm256_and_si256(
            _mm256_cmpeq_epi8(_mm256_and_si256(qh, b), b),
            _mm256_set1_epi8(16),
        )
    };
    (
        _mm256_or_si256(_mm256_and_si256(q, mask), fifth(1 << (2 * j))),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask),
            fifth(2 << (2 * j)),
        ),
    )
}

/// q5_k·q8_k dot: q4_k's integer sums with 5-bit quants, then its f32 steps (same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q5_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q5K * nb && a.len() == Q8K * nb);
    let mut sumf = 0.0f32;
    for (b, (bw, ba)) in w.chunks_exact(Q5K).zip(a.chunks_exact(Q8K)).enumerate() {
        prefetch_ahead(w, Q5K * b, Q5K);
        let sm = q4k_scales_mins(bw);
        let scales = q4k_scales16_v(sm);
        // SAFETY: qh is bytes 16..48 of the 176-byte block.
        let qh = unsafe { ld256(bw, 16) };
        let mut acc = _mm256_setzero_si256();
        for j in 0..4 {
            // SAFETY: qs bytes 48+32j..80+32j <= 176 and q8 bytes 4+64j..68+64j <= 260 (j < 4).
            let (q, ylo, yhi) = unsafe {
                (
                    ld256(bw, 48 + 32 * j),
                    ld256(ba, 4 + 64 * j),
                    ld256(ba, 36 + 64 * j),
                )
            };
            let (lo, hi) = q5k_values(q, qh, j);
            let lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), q4k_scale(scales, 2 * j));
            let hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), q4k_scale(scales, 2 * j + 1));
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(lo, hi));
        }
        // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
        let bsums = unsafe { ld256(ba, 260) };
        let (sumi, summ) = hsum2_i32(acc, _mm256_madd_epi16(bsums, q4k_mins16_v(sm)));
        let dy = rd_f32(ba, 0);
        let (xd, xdmin) = f16x2_at(bw, 0);
        let (d, dmin) = (xd * dy, xdmin * dy);
        sumf += d * sumi as f32 - dmin * summ as f32;
    }
    sumf
}

/// Stores `dl·q − ml` for the 32 unsigned quants of `v` (two sub-blocks of 16: `s0` for values
/// 0..16, `s0 + 1` for 16..32) at `out[..32]`.
#[inline]
#[target_feature(enable = "avx2")]
fn store_sub16_pair(v: __m256i, dl: &[f32; 16], ml: &[f32; 16], s0: usize, out: &mut [f32]) {
    assert!(out.len() >= 32 && s0 < 15);
    let (a, b) = (_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    for (p, part) in [a, _mm_srli_si128::<8>(a), b, _mm_srli_si128::<8>(b)]
        .into_iter()
        .enumerate()
    {
        let s = s0 + p / 2;
        let f = scale_sub(part, _mm256_set1_ps(dl[s]), _mm256_set1_ps(ml[s]));
        // SAFETY: out has at least 32 floats; 8p + 8 <= 32.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * p), f) };
    }
}

/// q2_k decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q2_k(x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 256;
    assert!(y.len() == 256 * nb && x.len() == Q2K * nb);
    let m2 = _mm256_set1_epi8(3);
    for (blk, out) in x.chunks_exact(Q2K).zip(y.chunks_exact_mut(256)) {
        let (d, min) = f16x2_at(blk, 80);
        let dl: [f32; 16] = std::array::from_fn(|s| d * f32::from(blk[s] & 0x0f));
        let ml: [f32; 16] = std::array::from_fn(|s| min * f32::from(blk[s] >> 4));
        for h in 0..2 {
            // SAFETY: qs bytes 16+32h..48+32h < 80 (h < 2).
            let q = unsafe { ld256(blk, 16 + 32 * h) };
            for k in 0..4 {
                let v = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * k as i32)), m2);
                let o = &mut out[128 * h + 32 * k..128 * h + 32 * k + 32];
                store_sub16_pair(v, &dl, &ml, 8 * h + 2 * k, o);
            }
        }
    }
}

/// q3_k decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q3_k(x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 256;
    assert!(y.len() == 256 * nb && x.len() == Q3K * nb);
    for (blk, out) in x.chunks_exact(Q3K).zip(y.chunks_exact_mut(256)) {
        let d_all = f16_to_f32(rd_u16(blk, 108));
        let sc = q3k_unpack_scales(blk[96..108].try_into().expect("12 scale bytes"));
        // SAFETY: hmask is bytes 0..32 of the 110-byte block.
        let hm = unsafe { ld256(blk, 0) };
        for v in 0..8 {
            // SAFETY: qs bytes 32+32h..64+32h < 96 (h = v / 4 < 2).
            let q = unsafe { ld256(blk, 32 + 32 * (v / 4)) };
            let t = _mm256_sub_epi8(q3k_values(q, hm, v), _mm256_set1_epi8(4));
            let (a, b) = (_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t));
            for (p, part) in [a, _mm_srli_si128::<8>(a), b, _mm_srli_si128::<8>(b)]
                .into_iter()
                .enumerate()
            {
                let dl = _mm256_set1_ps(d_all * f32::from(sc[2 * v + p / 2] - 32));
                let f = _mm256_mul_ps(dl, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part)));
                // SAFETY: out has 256 floats; 32v + 8p + 8 <= 256.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(32 * v + 8 * p), f) };
            }
        }
    }
}

/// q5_k decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q5_k(x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 256;
    assert!(y.len() == 256 * nb && x.len() == Q5K * nb);
    for (blk, out) in x.chunks_exact(Q5K).zip(y.chunks_exact_mut(256)) {
        let (d, min) = f16x2_at(blk, 0);
        let sm = unpack_scales_mins(blk[4..16].try_into().expect("12 scale bytes"));
        // SAFETY: qh is bytes 16..48 of the 176-byte block.
        let qh = unsafe { ld256(blk, 16) };
        for j in 0..4 {
            // SAFETY: qs bytes 48+32j..80+32j <= 176 (j < 4).
            let q = unsafe { ld256(blk, 48 + 32 * j) };
            let (lo, hi) = q5k_values(q, qh, j);
            for (half, v) in [lo, hi].into_iter().enumerate() {
                let s = 2 * j + half;
                let dv = _mm256_set1_ps(d * f32::from(sm[s]));
                let mv = _mm256_set1_ps(min * f32::from(sm[8 + s]));
                let (a, b) = (_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
                for (k, p) in [a, _mm_srli_si128::<8>(a), b, _mm_srli_si128::<8>(b)]
                    .into_iter()
                    .enumerate()
                {
                    // SAFETY: out has 256 floats; 32s + 8k + 8 <= 256.
                    unsafe {
                        _mm256_storeu_ps(
                            out.as_mut_ptr().add(32 * s + 8 * k),
                            scale_sub(p, dv, mv),
                        );
                    }
                }
            }
        }
    }
}
