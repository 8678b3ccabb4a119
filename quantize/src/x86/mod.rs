//! x86-64 kernels: AVX2 (+FMA, F16C) and AVX-512 (F, BW, VL, VNNI).
//!
//! Every kernel is a safe `#[target_feature]` function that checks its slice lengths on entry
//! and then reads through raw pointers with unaligned loads; calling it is only sound on a CPU
//! with the features, which [`crate::dispatch`] guarantees by detecting them first.

pub(crate) mod amx;
pub(crate) mod avx2;
pub(crate) mod avx512;

use std::arch::x86_64::*;

use crate::dispatch::Level;
use crate::stats::ErrorStats;

/// [`ErrorStats::add`] compiled for the level of [`crate::kernels`] when it is AVX2 or
/// AVX-512; `false` (nothing done) at the scalar level.
pub(crate) fn error_stats_add(s: &mut ErrorStats, original: &[f32], roundtrip: &[f32]) -> bool {
    match crate::kernels().level() {
        // SAFETY: `kernels()` hands out a level's table only after detecting its features.
        Level::Avx512 => unsafe { avx512::error_stats_add(s, original, roundtrip) },
        // SAFETY: as above.
        Level::Avx2 => unsafe { avx2::error_stats_add(s, original, roundtrip) },
        _ => return false,
    }
    true
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// Sum of the 8 lanes (pairwise tree).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hsum_f32(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Largest of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hmax_f32(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// f16 bits → f32 (exact, same as `half`).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn f16_to_f32(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// `f32(a) · f32(b)` for two f16 bit patterns, converted together from one 32-bit move.
///
/// Converting each scale on its own lets LLVM lower the scalar-to-vector move to `vpinsrw` into
/// an arbitrary register — often a dot product's accumulator — which chains every block's
/// scale to the previous block's FMA (a false dependency that halved the q8_0/q4_0 dots).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn f16_mul(a: u16, b: u16) -> f32 {
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(
        (u32::from(a) | (u32::from(b) << 16)) as i32,
    ));
    _mm_cvtss_f32(_mm_mul_ss(v, _mm_movehdup_ps(v)))
}

/// The two f16 values stored at `off` and `off + 2`, as f32 (one 32-bit load, no merge).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn f16x2_at(b: &[u8], off: usize) -> (f32, f32) {
    let w = u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]);
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(w as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// f32 → f16 bits, round to nearest even (same as `half::f16::from_f32`).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) fn f32_to_f16(x: f32) -> u16 {
    _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(x))) as u16
}

/// Little-endian u16 at `off` (bounds-checked).
#[inline(always)]
pub(crate) fn rd_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// How far ahead of the block being dotted the weight stream is prefetched, in bytes.
///
/// The whole model sits in a large, slow last-level cache (or DRAM); without a hint the loads
/// of a row are only overlapped as far as the out-of-order window reaches, which covers fewer
/// bytes the denser the format is (q4_0 ran at half q8_0's bytes/s).
pub(crate) const PF_DIST: usize = 2048;

/// Prefetches into L1 the cache lines of `[off, off + len)` bytes past `PF_DIST` ahead of `w`'s
/// start (addresses may run past the end of `w`: a prefetch is a hint and never faults).
#[inline(always)]
pub(crate) fn prefetch_ahead(w: &[u8], off: usize, len: usize) {
    let base = w.as_ptr().wrapping_add(off + PF_DIST);
    let mut o = 0;
    while o < len {
        // SAFETY: `prefetcht0` only hints the cache and never faults, whatever the address;
        // the pointer is never dereferenced.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(o).cast()) };
        o += 64;
    }
}

/// Little-endian f32 at `off` (bounds-checked).
#[inline(always)]
pub(crate) fn rd_f32(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Packs four vectors of 8 i32 (each in −128..=127 after the caller's clamping) into 32
/// bytes in element order.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn pack_i32x32_to_i8(v: [__m256i; 4]) -> __m256i {
    let p01 = _mm256_packs_epi32(v[0], v[1]);
    let p23 = _mm256_packs_epi32(v[2], v[3]);
    let p = _mm256_packs_epi16(p01, p23);
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// C's `roundf` on 8 lanes: truncate |x|, add 1 if the dropped fraction is ≥ 0.5, restore the
/// sign. Exact for every finite input.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn roundf_ps(x: __m256) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    let a = _mm256_andnot_ps(sign, x);
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(a);
    let f = _mm256_sub_ps(a, t);
    let up = _mm256_and_ps(
        _mm256_cmp_ps::<_CMP_GE_OQ>(f, _mm256_set1_ps(0.5)),
        _mm256_set1_ps(1.0),
    );
    _mm256_or_ps(_mm256_add_ps(t, up), _mm256_and_ps(x, sign))
}

/// The two bytes at `p` as a little-endian u16.
///
/// # Safety
/// `p` and `p + 1` are readable.
#[inline]
pub(crate) unsafe fn rd_u16_ptr(p: *const u8) -> u16 {
    // SAFETY: guaranteed by the caller.
    u16::from_le(unsafe { p.cast::<u16>().read_unaligned() })
}

/// Runs `step(i, acc)` over blocks `0..nb` with 4 independent accumulators (hides the FMA
/// latency) and returns the sum of their lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn unrolled4(
    nb: usize,
    (w, bb): (&[u8], usize),
    mut step: impl FnMut(usize, __m256) -> __m256,
) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let full = nb / 4 * 4;
    for i in (0..full).step_by(4) {
        prefetch_ahead(w, i * bb, 4 * bb);
        for (u, a) in acc.iter_mut().enumerate() {
            *a = step(i + u, *a);
        }
    }
    for i in full..nb {
        acc[0] = step(i, acc[0]);
    }
    hsum_f32(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ))
}

/// The accumulation of [`unrolled4`] for 4 tokens at once, written out in the
/// calling kernel (a closure is not inlined there, which would put the 16 accumulators in
/// memory). `$body` adds block `$i` of every token `t` to `$acc[t]`; each token keeps its own
/// 4 accumulators, filled and summed exactly as `unrolled4` does, so its result has the same
/// bits as the single-token dot. Evaluates to `[f32; 4]`.
macro_rules! unrolled4_x4 {
    ($nb:expr, $w:expr, $bb:expr, |$i:ident, $acc:ident| $body:block) => {{
        let (nb, bb) = ($nb, $bb);
        let mut accs = [[_mm256_setzero_ps(); 4]; 4];
        let full = nb / 4 * 4;
        let mut i0 = 0;
        while i0 < full {
            $crate::x86::prefetch_ahead($w, i0 * bb, 4 * bb);
            {
                let ($i, $acc) = (i0, &mut accs[0]);
                $body
            }
            {
                let ($i, $acc) = (i0 + 1, &mut accs[1]);
                $body
            }
            {
                let ($i, $acc) = (i0 + 2, &mut accs[2]);
                $body
            }
            {
                let ($i, $acc) = (i0 + 3, &mut accs[3]);
                $body
            }
            i0 += 4;
        }
        for $i in full..nb {
            let $acc = &mut accs[0];
            $body
        }
        [0, 1, 2, 3].map(|t| {
            $crate::x86::hsum_f32(_mm256_add_ps(
                _mm256_add_ps(accs[0][t], accs[1][t]),
                _mm256_add_ps(accs[2][t], accs[3][t]),
            ))
        })
    }};
}
pub(crate) use unrolled4_x4;

#[cfg(test)]
mod stats_tests {
    use super::*;
    use crate::stats::add_sums;

    fn bits(s: &ErrorStats) -> (u64, u64, u64, u64) {
        let r = s.report();
        (
            r.n,
            r.rmse.to_bits(),
            r.snr_db.to_bits(),
            r.max_abs_err.to_bits(),
        )
    }

    #[test]
    fn simd_error_sums_are_the_portable_ones() {
        let w: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let mut q: Vec<f32> = w.iter().map(|x| (x * 7.0).round() / 7.0).collect();
        for nan_at in [None, Some(500), Some(1001)] {
            if let Some(i) = nan_at {
                q[i] = f32::NAN;
            }
            for n in [0, 1, 7, 8, 9, 100, 1003] {
                let mut want = ErrorStats::default();
                add_sums(&mut want, &w[..n], &q[..n]);
                for level in [Level::Avx2, Level::Avx512] {
                    if !level.is_supported() {
                        continue;
                    }
                    let mut got = ErrorStats::default();
                    // SAFETY: the level's features were detected just above.
                    unsafe {
                        match level {
                            Level::Avx2 => avx2::error_stats_add(&mut got, &w[..n], &q[..n]),
                            _ => avx512::error_stats_add(&mut got, &w[..n], &q[..n]),
                        }
                    }
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{level}, {n} values, NaN at {nan_at:?}"
                    );
                }
            }
        }
    }
}
