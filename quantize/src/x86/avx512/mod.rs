//! AVX-512 (F, BW, VL, VNNI) kernels: the quant dots (`vpdpbusd` for the 32-blocks, `vpmaddubsw` +
//! `vpdpwssd` for the k-quants, two blocks or 64 values per 512-bit register) and the float dots.
//! The k-quant encoders run their searches on 16 lanes; the other encoders and the decoders
//! are AVX2's (bound by memory, not arithmetic).
//!
//! Like AVX2, the k-quant dots return the reference's bits.

mod block32;
mod float;
mod iq4;
mod kencode;
mod kgemm;
mod kmulti;
mod kquants;
mod legacy;
mod panel32;

pub(crate) use block32::*;
pub(crate) use float::*;
pub(crate) use iq4::*;
pub(crate) use kencode::*;
pub(crate) use kgemm::*;
pub(crate) use kmulti::*;
pub(crate) use kquants::*;
pub(crate) use legacy::*;
pub(crate) use panel32::*;

/// `F`'s importance-weighted encoder (`crate::weighted`) compiled with this level's features:
/// the same code as the scalar level's, its lane searches ([`crate::lanes`]) vectorized wider.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_weighted<F: crate::format::BlockFormat>(
    x: &[f32],
    y: &mut [u8],
    qw: &[f32],
) {
    crate::scalar::quantize_weighted::<F>(x, y, qw);
}

/// [`crate::stats::ErrorStats::add`]: the running sums of its 8 lanes in one register each
/// (the same f64 operations per lane as [`crate::stats::add_sums`]; `max_pd(a, m)` is
/// `if a > m { a } else { m }`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn error_stats_add(
    s: &mut crate::stats::ErrorStats,
    original: &[f32],
    roundtrip: &[f32],
) {
    use std::arch::x86_64::*;
    let steps = original.len().min(roundtrip.len()) / 8;
    let (mut sw, mut se, mut mx) = (
        _mm512_setzero_pd(),
        _mm512_setzero_pd(),
        _mm512_setzero_pd(),
    );
    let mut nan: __mmask8 = 0;
    for i in 0..steps {
        // SAFETY: 8·i + 8 ≤ the length of both slices (steps is taken from the shorter).
        let (w, q) = unsafe {
            (
                _mm512_cvtps_pd(_mm256_loadu_ps(original.as_ptr().add(8 * i))),
                _mm512_cvtps_pd(_mm256_loadu_ps(roundtrip.as_ptr().add(8 * i))),
            )
        };
        let e = _mm512_sub_pd(q, w);
        sw = _mm512_add_pd(sw, _mm512_mul_pd(w, w));
        se = _mm512_add_pd(se, _mm512_mul_pd(e, e));
        let a = _mm512_abs_pd(e);
        mx = _mm512_max_pd(a, mx);
        nan |= _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(a, a);
    }
    let mut l = crate::stats::Lanes::default();
    // SAFETY: each array holds 8 f64.
    unsafe {
        _mm512_storeu_pd(l.sw.as_mut_ptr(), sw);
        _mm512_storeu_pd(l.se.as_mut_ptr(), se);
        _mm512_storeu_pd(l.mx.as_mut_ptr(), mx);
    }
    for (k, n) in l.nan.iter_mut().enumerate() {
        *n = nan & (1 << k) != 0;
    }
    crate::stats::add_tail(s, l, original, roundtrip);
}

/// `F`'s weight encoder (`BlockFormat::quantize_weights`: iq4_nl's trial search) compiled with
/// this level's features, as [`quantize_weighted`] is.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_weights<F: crate::format::BlockFormat>(x: &[f32], y: &mut [u8]) {
    crate::scalar::quantize_weights::<F>(x, y);
}
