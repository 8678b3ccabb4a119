//! A block format as one unit: its block struct, the activation format its dot reads, and the
//! scalar reference kernels that are its specification.
//!
//! Every format module (`q4_0`, `q4_k`, …) has a unit struct implementing [`BlockFormat`]; the
//! scalar kernel table is built from the trait alone (`dispatch::scalar_format::<F>()`), and
//! SIMD levels override single entries. Adding a format is its module, its row in the dtype
//! table (`llamapack_format::DTYPES`) and one line in [`crate::dispatch`]'s list of formats.

use bytemuck::Pod;
use llamapack_format::DType;

/// One ggml block format, with its reference kernels.
///
/// The three functions are the specification every SIMD variant is tested against: the
/// encoder is byte-identical to ggml's `quantize_row_*_ref`, the decoder to
/// `dequantize_row_*`, and `block_dot` is one block's contribution to ggml's scalar
/// `ggml_vec_dot_*` (the row dot folds blocks in order from 0).
pub trait BlockFormat: 'static {
    /// The row of the dtype table this format implements.
    const DTYPE: DType;
    /// The block struct (`#[repr(C)]`, the bytes ggml stores).
    type Block: Pod;
    /// The activation block its dot reads (`BlockQ8_0`, `BlockQ8_1`, `BlockQ8K`; the block
    /// itself for activation formats).
    type Act: Pod;
    /// Encodes `x` (exactly `y.len()` blocks of values) into `y`.
    fn quantize_ref(x: &[f32], y: &mut [Self::Block]);
    /// Encodes a row of weights as `llama-quantize` does without an importance matrix (ggml's
    /// `quantize_<type>(…, imatrix = NULL)`): [`BlockFormat::quantize_ref`] for every format
    /// but iq4_nl, whose weight quantizer runs a scale search its `_ref` skips.
    fn quantize_weights(x: &[f32], y: &mut [Self::Block]) {
        Self::quantize_ref(x, y);
    }
    /// Whether [`BlockFormat::quantize_weights`] is not [`BlockFormat::quantize_ref`] (the
    /// kernel table then keeps a separate entry for it).
    const WEIGHTS_DIFFER: bool = false;
    /// Whether the format has an importance-weighted encoder ([`BlockFormat::quantize_weighted`]).
    const HAS_WEIGHTED: bool = false;
    /// Encodes a row of weights with importance weights `qw` (one per column: the imatrix's
    /// mean squared activation), as ggml's `quantize_<type>(…, imatrix)` does, byte for byte.
    /// Formats without one ([`BlockFormat::HAS_WEIGHTED`] false; q8_0, as in ggml) ignore `qw`.
    fn quantize_weighted(x: &[f32], y: &mut [Self::Block], qw: &[f32]) {
        let _ = qw;
        Self::quantize_weights(x, y);
    }
    /// Decodes `x` into `y` (exactly `x.len()` blocks of values).
    fn dequantize_ref(x: &[Self::Block], y: &mut [f32]);
    /// One weight block dotted with one activation block.
    fn block_dot(w: &Self::Block, a: &Self::Act) -> f32;
}

/// Implements [`BlockFormat`] for a format module's unit struct from its `*_ref` functions.
///
/// Optional trailing arguments: the weight encoder (`quantize_weights`, default the `_ref`
/// encoder), then `weighted: path` for an importance-weighted encoder `fn(&[f32], &mut
/// [Block], &[f32])` (sets [`BlockFormat::HAS_WEIGHTED`]).
macro_rules! block_format {
    ($fmt:ident, $dtype:ident, $block:ty, $act:ty, $quant:path, $dequant:path, $dot:path $(, weighted: $w:path)?) => {
        $crate::format::block_format!(
            $fmt, $dtype, $block, $act, $quant, $dequant, $dot, $quant $(, weighted: $w)?
        );
    };
    ($fmt:ident, $dtype:ident, $block:ty, $act:ty, $quant:path, $dequant:path, $dot:path, $weights:path $(, weighted: $w:path)?) => {
        /// This format as a [`crate::format::BlockFormat`].
        #[derive(Clone, Copy, Debug)]
        pub struct $fmt;
        impl $crate::format::BlockFormat for $fmt {
            const DTYPE: llamapack_format::DType = llamapack_format::DType::$dtype;
            type Block = $block;
            type Act = $act;
            fn quantize_ref(x: &[f32], y: &mut [$block]) {
                $quant(x, y)
            }
            #[inline(always)]
            fn quantize_weights(x: &[f32], y: &mut [$block]) {
                $weights(x, y)
            }
            const WEIGHTS_DIFFER: bool = {
                let (a, b) = (
                    stringify!($quant).as_bytes(),
                    stringify!($weights).as_bytes(),
                );
                let mut same = a.len() == b.len();
                let mut i = 0;
                while same && i < a.len() {
                    same = a[i] == b[i];
                    i += 1;
                }
                !same
            };
            $(
                const HAS_WEIGHTED: bool = true;
                #[inline(always)]
                fn quantize_weighted(x: &[f32], y: &mut [$block], qw: &[f32]) {
                    $w(x, y, qw)
                }
            )?
            fn dequantize_ref(x: &[$block], y: &mut [f32]) {
                $dequant(x, y)
            }
            fn block_dot(w: &$block, a: &$act) -> f32 {
                $dot(w, a)
            }
        }
    };
}
pub(crate) use block_format;
