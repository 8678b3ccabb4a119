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

/// [`crate::stats::ErrorStats::add`] compiled with this level's features.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn error_stats_add(
    s: &mut crate::stats::ErrorStats,
    original: &[f32],
    roundtrip: &[f32],
) {
    crate::stats::add_sums(s, original, roundtrip);
}

/// `F`'s weight encoder (`BlockFormat::quantize_weights`: iq4_nl's trial search) compiled with
/// this level's features, as [`quantize_weighted`] is.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_weights<F: crate::format::BlockFormat>(x: &[f32], y: &mut [u8]) {
    crate::scalar::quantize_weights::<F>(x, y);
}
