//! AVX2 + FMA + F16C kernels.
//!
//! Encoders are byte-identical to the scalar references; decoders are exact; the k-quant
//! dots return the reference's bits (same per-block integers and f32 operations); the q8_0,
//! q4_0, q4_1, q5_0, q5_1 and float dots accumulate in vector lanes, so they differ from the
//! reference by rounding only.

mod block32;
mod enc32;
mod float;
mod iq4;
mod kencode;
mod kmulti;
mod kquants;
mod legacy;

pub(crate) use block32::*;
pub(crate) use enc32::{quantize_q4_1, quantize_q5_0, quantize_q5_1};
pub(crate) use float::*;
pub(crate) use iq4::*;
pub(crate) use kencode::*;
pub(crate) use kmulti::*;
pub(crate) use kquants::*;
pub(crate) use legacy::*;

/// `F`'s importance-weighted encoder (`crate::weighted`) compiled with this level's features:
/// the same code as the scalar level's, its lane searches ([`crate::lanes`]) vectorized wider.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_weighted<F: crate::format::BlockFormat>(
    x: &[f32],
    y: &mut [u8],
    qw: &[f32],
) {
    crate::scalar::quantize_weighted::<F>(x, y, qw);
}

/// [`crate::stats::ErrorStats::add`]: the running sums of its 8 lanes in two registers each
/// (lanes 0–3 and 4–7; the same f64 operations per lane as [`crate::stats::add_sums`];
/// `max_pd(a, m)` is `if a > m { a } else { m }`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn error_stats_add(
    s: &mut crate::stats::ErrorStats,
    original: &[f32],
    roundtrip: &[f32],
) {
    use std::arch::x86_64::*;
    let steps = original.len().min(roundtrip.len()) / 8;
    let z = _mm256_setzero_pd();
    let (mut sw, mut se, mut mx, mut nan) = ([z; 2], [z; 2], [z; 2], [z; 2]);
    let abs_mask = _mm256_set1_pd(f64::from_bits(0x7fff_ffff_ffff_ffff));
    for i in 0..steps {
        for h in 0..2 {
            // SAFETY: 8·i + 4·h + 4 ≤ the length of both slices (steps is from the shorter).
            let (w, q) = unsafe {
                (
                    _mm256_cvtps_pd(_mm_loadu_ps(original.as_ptr().add(8 * i + 4 * h))),
                    _mm256_cvtps_pd(_mm_loadu_ps(roundtrip.as_ptr().add(8 * i + 4 * h))),
                )
            };
            let e = _mm256_sub_pd(q, w);
            sw[h] = _mm256_add_pd(sw[h], _mm256_mul_pd(w, w));
            se[h] = _mm256_add_pd(se[h], _mm256_mul_pd(e, e));
            let a = _mm256_and_pd(e, abs_mask);
            mx[h] = _mm256_max_pd(a, mx[h]);
            nan[h] = _mm256_or_pd(nan[h], _mm256_cmp_pd::<_CMP_UNORD_Q>(a, a));
        }
    }
    let mut l = crate::stats::Lanes::default();
    let mut flags = [0f64; 8];
    for h in 0..2 {
        // SAFETY: each array holds 8 f64; 4·h + 4 ≤ 8.
        unsafe {
            _mm256_storeu_pd(l.sw.as_mut_ptr().add(4 * h), sw[h]);
            _mm256_storeu_pd(l.se.as_mut_ptr().add(4 * h), se[h]);
            _mm256_storeu_pd(l.mx.as_mut_ptr().add(4 * h), mx[h]);
            _mm256_storeu_pd(flags.as_mut_ptr().add(4 * h), nan[h]);
        }
    }
    for (n, f) in l.nan.iter_mut().zip(flags) {
        *n = f.to_bits() != 0;
    }
    crate::stats::add_tail(s, l, original, roundtrip);
}

/// `F`'s weight encoder (`BlockFormat::quantize_weights`: iq4_nl's trial search) compiled with
/// this level's features, as [`quantize_weighted`] is.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_weights<F: crate::format::BlockFormat>(x: &[f32], y: &mut [u8]) {
    crate::scalar::quantize_weights::<F>(x, y);
}
