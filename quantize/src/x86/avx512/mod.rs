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
mod kmulti;
mod kquants;
mod legacy;

pub(crate) use block32::*;
pub(crate) use float::*;
pub(crate) use iq4::*;
pub(crate) use kencode::*;
pub(crate) use kmulti::*;
pub(crate) use kquants::*;
pub(crate) use legacy::*;

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

/// [`crate::stats::ErrorStats::add`] compiled with this level's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn error_stats_add(
    s: &mut crate::stats::ErrorStats,
    original: &[f32],
    roundtrip: &[f32],
) {
    crate::stats::add_sums(s, original, roundtrip);
}

/// `F`'s weight encoder (`BlockFormat::quantize_weights`: iq4_nl's trial search) compiled with
/// this level's features, as [`quantize_weighted`] is.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quantize_weights<F: crate::format::BlockFormat>(x: &[f32], y: &mut [u8]) {
    crate::scalar::quantize_weights::<F>(x, y);
}
