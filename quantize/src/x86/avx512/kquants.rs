//! q4_k·q8_k and q6_k·q8_k with AVX-512 BW + VNNI (`vpmaddubsw` then `vpdpwssd` with the
//! sub-block scales; q4_k on ymm registers, q6_k on zmm where one `vpermw` spreads four
//! sub-block scales). Same per-block integers and f32 steps as the reference.

use std::arch::x86_64::*;

use crate::q4_k::unpack_scales_mins;
use crate::x86::avx2::{q4k_scale, q4k_scales16};
use crate::x86::{f16x2_at, hsum_i32, rd_f32};

const Q4K: usize = 144;
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

/// Loads 64 bytes at `off`.
///
/// # Safety
/// `off + 64 <= b.len()`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn ld512(b: &[u8], off: usize) -> __m512i {
    debug_assert!(off + 64 <= b.len());
    // SAFETY: guaranteed by the caller.
    unsafe { _mm512_loadu_si512(b.as_ptr().add(off).cast()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// q4_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q4K * nb && a.len() == Q8K * nb);
    let mask = _mm256_set1_epi8(0x0f);
    let mut sumf = 0.0f32;
    for (bw, ba) in w.chunks_exact(Q4K).zip(a.chunks_exact(Q8K)) {
        let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
        let scales = q4k_scales16(&sm);
        let mut acc = _mm256_setzero_si256();
        for j in 0..4 {
            // SAFETY: qs bytes 16+32j..48+32j < 144; q8 bytes 4+64j..68+64j < 260 (j < 4).
            let (q, ylo, yhi) = unsafe {
                (
                    ld256(bw, 16 + 32 * j),
                    ld256(ba, 4 + 64 * j),
                    ld256(ba, 36 + 64 * j),
                )
            };
            let lo = _mm256_maddubs_epi16(_mm256_and_si256(q, mask), ylo);
            let hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16::<4>(q), mask), yhi);
            acc = _mm256_dpwssd_epi32(acc, lo, q4k_scale(scales, 2 * j));
            acc = _mm256_dpwssd_epi32(acc, hi, q4k_scale(scales, 2 * j + 1));
        }
        // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
        let bsums = unsafe { ld256(ba, 260) };
        let mins = _mm_cvtepu8_epi16(_mm_set_epi64x(
            0,
            i64::from_le_bytes(sm[8..].try_into().expect("8 mins")),
        ));
        let mins = _mm256_set_m128i(
            _mm_unpackhi_epi16(mins, mins),
            _mm_unpacklo_epi16(mins, mins),
        );
        let summ = hsum_i32(_mm256_madd_epi16(bsums, mins));
        let sumi = hsum_i32(acc);
        let dy = rd_f32(ba, 0);
        let (xd, xdmin) = f16x2_at(bw, 0);
        let (d, dmin) = (xd * dy, xdmin * dy);
        sumf += d * sumi as f32 - dmin * summ as f32;
    }
    sumf
}

/// q6_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_q6_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q6K * nb && a.len() == Q8K * nb);
    let m4 = _mm512_set1_epi8(0x0f);
    let m2 = _mm512_set1_epi8(0x30);
    // vpermw indices: scale s for each group of 8 i16 lanes (= 16 values).
    let idx = |s: i16| {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(s + 1), _mm_set1_epi16(s))),
            _mm256_set_m128i(_mm_set1_epi16(s + 3), _mm_set1_epi16(s + 2)),
        )
    };
    let idx4 = [idx(0), idx(4), idx(8), idx(12)];
    let mut sumf = 0.0f32;
    for (bw, ba) in w.chunks_exact(Q6K).zip(a.chunks_exact(Q8K)) {
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

/// q4_k·q8_k dot of one weight row with 4 activation rows: each super-block's scales, mins
/// and nibbles are unpacked once for the 4 tokens; every token then runs the integer sums and
/// f32 steps of [`vec_dot_q4_k_q8_k`] in its order, so each result has its bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot4_q4_k_q8_k(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    let nb = n / 256;
    assert!(w.len() == Q4K * nb && a.iter().all(|r| r.len() == Q8K * nb));
    let mask = _mm256_set1_epi8(0x0f);
    let mut sumf = [0.0f32; 4];
    for (b, bw) in w.chunks_exact(Q4K).enumerate() {
        let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
        let scales = q4k_scales16(&sm);
        let mins = _mm_cvtepu8_epi16(_mm_set_epi64x(
            0,
            i64::from_le_bytes(sm[8..].try_into().expect("8 mins")),
        ));
        let mins = _mm256_set_m128i(
            _mm_unpackhi_epi16(mins, mins),
            _mm_unpacklo_epi16(mins, mins),
        );
        let mut x = [[_mm256_setzero_si256(); 2]; 4];
        let mut s = [_mm256_setzero_si256(); 8];
        for j in 0..4 {
            // SAFETY: qs bytes 16+32j..48+32j < 144 (j < 4).
            let q = unsafe { ld256(bw, 16 + 32 * j) };
            x[j] = [
                _mm256_and_si256(q, mask),
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask),
            ];
            s[2 * j] = q4k_scale(scales, 2 * j);
            s[2 * j + 1] = q4k_scale(scales, 2 * j + 1);
        }
        let (xd, xdmin) = f16x2_at(bw, 0);
        for (t, sf) in sumf.iter_mut().enumerate() {
            let ba = &a[t][Q8K * b..Q8K * (b + 1)];
            let mut acc = _mm256_setzero_si256();
            for j in 0..4 {
                // SAFETY: q8 bytes 4+64j..68+64j < 260 of the 292-byte block (j < 4).
                let (ylo, yhi) = unsafe { (ld256(ba, 4 + 64 * j), ld256(ba, 36 + 64 * j)) };
                let lo = _mm256_maddubs_epi16(x[j][0], ylo);
                let hi = _mm256_maddubs_epi16(x[j][1], yhi);
                acc = _mm256_dpwssd_epi32(acc, lo, s[2 * j]);
                acc = _mm256_dpwssd_epi32(acc, hi, s[2 * j + 1]);
            }
            // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
            let bsums = unsafe { ld256(ba, 260) };
            let summ = hsum_i32(_mm256_madd_epi16(bsums, mins));
            let sumi = hsum_i32(acc);
            let dy = rd_f32(ba, 0);
            let (d, dmin) = (xd * dy, xdmin * dy);
            *sf += d * sumi as f32 - dmin * summ as f32;
        }
    }
    sumf
}

/// q6_k·q8_k dot of one weight row with 4 activation rows: each super-block's 6-bit values
/// and scale vectors are built once for the 4 tokens; every token then runs the integer sums
/// and f32 steps of [`vec_dot_q6_k_q8_k`], so each result has its bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot4_q6_k_q8_k(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    let nb = n / 256;
    assert!(w.len() == Q6K * nb && a.iter().all(|r| r.len() == Q8K * nb));
    let m4 = _mm512_set1_epi8(0x0f);
    let m2 = _mm512_set1_epi8(0x30);
    let idx = |s: i16| {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(s + 1), _mm_set1_epi16(s))),
            _mm256_set_m128i(_mm_set1_epi16(s + 3), _mm_set1_epi16(s + 2)),
        )
    };
    let idx4 = [idx(0), idx(4), idx(8), idx(12)];
    let mut sumf = [0.0f32; 4];
    for (b, bw) in w.chunks_exact(Q6K).enumerate() {
        // SAFETY: the 16 int8 scales are at 192..208 of the 210-byte block.
        let sc16 = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(bw.as_ptr().add(192).cast()) });
        let sc = _mm512_castsi256_si512(sc16);
        let mut x = [_mm512_setzero_si512(); 4];
        for h in 0..2 {
            // SAFETY: ql 64h..64h+64 < 128, qh 128+32h..160+32h < 192 of 210 bytes.
            let (ql, qh) = unsafe { (ld512(bw, 64 * h), ld256(bw, 128 + 32 * h)) };
            let sh_a = join(_mm256_slli_epi16::<4>(qh), _mm256_slli_epi16::<2>(qh));
            x[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(sh_a, m2));
            let sh_b = join(qh, _mm256_srli_epi16::<2>(qh));
            x[2 * h + 1] = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4),
                _mm512_and_si512(sh_b, m2),
            );
        }
        let s = idx4.map(|i| _mm512_permutexvar_epi16(i, sc));
        let xd = f16x2_at(bw, 206).1;
        for (t, sf) in sumf.iter_mut().enumerate() {
            let ba = &a[t][Q8K * b..Q8K * (b + 1)];
            let mut acc = _mm512_setzero_si512();
            for h in 0..2 {
                // SAFETY: q8 bytes 4 + 128h + 128 <= 260.
                let (ya, yb) = unsafe { (ld512(ba, 4 + 128 * h), ld512(ba, 68 + 128 * h)) };
                let pa = _mm512_maddubs_epi16(x[2 * h], ya);
                let pb = _mm512_maddubs_epi16(x[2 * h + 1], yb);
                acc = _mm512_dpwssd_epi32(acc, pa, s[2 * h]);
                acc = _mm512_dpwssd_epi32(acc, pb, s[2 * h + 1]);
            }
            // SAFETY: the 16 sums are at 260..292 of the 292-byte block.
            let bsums = unsafe { ld256(ba, 260) };
            let corr = hsum_i32(_mm256_madd_epi16(bsums, sc16));
            let sumi = _mm512_reduce_add_epi32(acc) - 32 * corr;
            let d = xd * rd_f32(ba, 0);
            *sf += d * sumi as f32;
        }
    }
    sumf
}
