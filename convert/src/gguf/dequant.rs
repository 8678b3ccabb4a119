//! Decoding ggml blocks to f32 for import and export: a thin bridge from a GGUF tensor type to
//! the one decoder per format that `llamapack-quantize` owns (the same one the runner, `compare`
//! and the tests use), so there is no second copy of any decoder here.

use llamapack_format::DType;

use super::types::GgmlType;

/// The dtype-table row of a GGUF type (activation-only types such as `q8_1` included), if any.
fn dtype_of(ty: GgmlType) -> Option<DType> {
    DType::from_ggml_id(ty.id())
}

/// True when [`dequantize_row`] can decode `ty`: every type of llamapack's dtype table.
pub fn supported(ty: GgmlType) -> bool {
    dtype_of(ty).is_some_and(|d| llamapack_quantize::kernels().supports(d))
}

/// Decodes `src` (whole blocks of `ty`) into `dst`.
///
/// Returns `false` (writing nothing) when `ty` is not [`supported`] or `src` is not exactly the
/// size of `dst.len()` elements of `ty`; callers size both from a validated shape.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> bool {
    dtype_of(ty).is_some_and(|d| llamapack_quantize::dequantize_row(d, src, dst).is_ok())
}
