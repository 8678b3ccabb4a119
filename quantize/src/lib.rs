//! ggml-compatible block quantization for llamapack: the q8_0, q4_0, q2_k, q3_k, q4_k, q5_k,
//! q6_k and q8_k block formats and f16/bf16 rows, each with a scalar reference (`*_ref`, the
//! specification) and SIMD kernels (AVX2, AVX-512 VNNI, NEON) chosen once at run time.
//!
//! The free functions — [`quantize_row`], [`dequantize_row`], [`vec_dot`] — work on raw row
//! bytes (as stored in a `.lpk` file) and dispatch to the best [`Level`] the CPU supports;
//! `LLAMAPACK_SIMD=scalar|avx2|avx512` forces a lower one, and [`kernels_for`] gives any level's
//! table (tests run every level in one process).
//!
//! ```
//! use llamapack_format::DType;
//! use llamapack_quantize::{dequantize_row, quantize_row, vec_dot, vec_dot_type};
//!
//! let w: Vec<f32> = (0..256).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
//! let x: Vec<f32> = (0..256).map(|i| ((i * 11 % 13) as f32 - 6.0) / 6.0).collect();
//!
//! // Quantize a weight row to q4_k and the activation to its dot format (q8_k).
//! let mut wq = vec![0u8; DType::Q4K.row_bytes(256).unwrap()];
//! quantize_row(DType::Q4K, &w, &mut wq)?;
//! let act = vec_dot_type(DType::Q4K);
//! let mut xq = vec![0u8; act.row_bytes(256).unwrap()];
//! quantize_row(act, &x, &mut xq)?;
//!
//! let exact: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
//! let approx = vec_dot(DType::Q4K, 256, &wq, &xq);
//! let norms = (w.iter().map(|v| v * v).sum::<f32>() * x.iter().map(|v| v * v).sum::<f32>()).sqrt();
//! assert!((exact - approx).abs() < 0.02 * norms, "{exact} vs {approx}");
//!
//! // Round trip: q4_k keeps each value within about half a quantization step.
//! let mut back = vec![0f32; 256];
//! dequantize_row(DType::Q4K, &wq, &mut back)?;
//! assert!(w.iter().zip(&back).all(|(a, b)| (a - b).abs() < 0.1));
//!
//! // NaN and infinities are rejected with their index.
//! let mut bad = w.clone();
//! bad[7] = f32::NAN;
//! assert!(quantize_row(DType::Q4K, &bad, &mut wq).unwrap_err().to_string().contains("index 7"));
//! # Ok::<(), llamapack_quantize::Error>(())
//! ```
//!
//! # Levels and exactness
//!
//! | kernel | scalar | AVX2 (+FMA, F16C) | AVX-512 (F/BW/VL/VNNI) | NEON |
//! |---|---|---|---|---|
//! | quantize q8_0, q4_0, q8_k | ref | SIMD, byte-identical | = AVX2 | SIMD, byte-identical |
//! | quantize f16, bf16 | ref | SIMD, byte-identical | = AVX2 | ref |
//! | quantize q2_k, q3_k, q4_k, q5_k, q6_k | ref | SIMD (8 sub-blocks in lanes), byte-identical | 16 lanes, byte-identical | ref |
//! | dequantize (every type) | ref | SIMD, bit-identical | = AVX2 | ref |
//! | dot q4_k·q8_k, q6_k·q8_k | ref | SIMD, bit-identical | VNNI, bit-identical | SIMD, bit-identical |
//! | dot q2_k·q8_k, q3_k·q8_k, q5_k·q8_k | ref | SIMD, bit-identical | VNNI, bit-identical | SIMD, bit-identical |
//! | dot q8_0·q8_0, q4_0·q8_0 | ref | SIMD | VNNI (`vpdpbusd`) | SIMD (`vmull_s8`) |
//! | quantize q8_1 | ref | SIMD, byte-identical | = AVX2 | SIMD, byte-identical |
//! | quantize q4_1, q5_0, q5_1 | ref | ref | ref | ref |
//! | dot q4_1·q8_1, q5_0·q8_0, q5_1·q8_1 | ref | SIMD | VNNI (`vpdpbusd`) | SIMD (`vmull_s8`) |
//! | dot f32/f16/bf16·f32 | ref | SIMD | SIMD | SIMD |
//! | quantize iq4_nl, iq4_xs | ref | SIMD (grid search in 8 lanes), byte-identical | 16 lanes, byte-identical | ref |
//! | quantize iq4_nl weights (llama-quantize's 15-trial search) | ref | ref | ref | ref |
//! | dot iq4_nl·q8_0, iq4_xs·q8_k | ref | SIMD (`vpshufb` grid lookup) | VNNI | SIMD (`vqtbl1q_s8`; iq4_xs bit-identical) |
//!
//! - Encoders: every one is byte-identical to ggml's `quantize_row_*_ref` (q8_0, q4_0, q4_1,
//!   q5_0, q5_1, q8_1, q8_k, iq4_nl, iq4_xs) or follows ggml's reference algorithm operation for
//!   operation (the k-quants q2_k … q6_k: its weighted searches, `nearest_int`, f32 order, no
//!   fused multiply-add), tested byte for byte against libggml-base's own output, so their error
//!   equals `llama-quantize`'s without an importance matrix. Every level produces the same bytes.
//! - Decoders are exact: every level returns the reference's bits.
//! - The k-quant dots compute exact integer sums per super-block and then the reference's f32
//!   steps, so every level returns the same bits (iq4_xs too). The q8_0/q4_0/q5_0/iq4_nl dots
//!   accumulate blocks in SIMD lanes: within `4·ε·(blocks + 8)·Σ|wᵢ·aᵢ|` of the reference;
//!   q4_1/q5_1 within
//!   `4·ε·(blocks + 8)·(Σ|(wᵢ − m)·aᵢ| + Σ_blocks|m·s|)` (`m` the block minimum, `s` the q8_1
//!   block sum); the float dots within `2·ε·(n + 16)·Σ|wᵢ·aᵢ|`.
//! - iq4_nl and iq4_xs (the non-linear 16-value grid): encoders byte-identical to ggml's
//!   `quantize_row_iq4_{nl,xs}_ref` at every level, decoders exact; the iq4_xs dot returns the
//!   reference's bits at every level.
//! - Dots assume activations made by [`quantize_row`]: q8_0/q8_1/q8_k quants in −127..=127 and
//!   true q8_k `bsums`.
//! - The multi-token dots of [`Kernels`] — `vec_dot4` (one row, 4 tokens), `vec_dot4_packed`
//!   (q8_0/q4_0 against 4 tokens interleaved by [`q8_0::pack_q8_0_x4`]) and `vec_dot_tiled`
//!   (many rows × many tokens: float weights in register tiles, k-quants 2 rows against every
//!   token) — give every (row, token) the bits of the same level's `vec_dot`, so a batched
//!   forward pass equals the one-token one exactly. Each falls back to single dots where a
//!   level has no such kernel; `has_*` says which exist.
//!
//! Byte slices may have any alignment; the scalar level views aligned slices in place and copies
//! misaligned blocks to the stack, the SIMD levels use unaligned loads.
//!
//! # ggml edge cases reproduced
//! - A scale that overflows f16 is stored as ±inf, as ggml does (q8_0 above |x| ≈ 8.3e6, q4_0
//!   above ≈ 5.2e5, the k-quants around 1e9); decoding such a block yields inf/NaN.
//! - An all-zero q4_0 block stores `d = −0` (ggml's `0 / −8`), nibbles 8.
//! - When `1/d` overflows f32 (|x| < ~3.7e-37 in a block) the quants are 0, as C's float → int8
//!   conversion gives on x86-64.
//! - q8_k uses ggml's current `−127/max` (older ggml used −128).
//! - An iq4_nl block with |x| < 1e-15 everywhere gets `d = 0` and, as in ggml's
//!   `quantize_row_iq4_nl_ref`, the indices of the previous block of the row (index 8 at the
//!   start of a row, where ggml reads uninitialized memory).

pub mod attention;
pub mod budget;
mod dispatch;
mod error;
pub mod float;
pub mod format;
pub mod imatrix;
pub mod iq4_nl;
pub mod iq4_xs;
mod kquant_search;
mod lanes;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod optimize;
pub mod panel;
pub mod pipeline;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;
pub mod recipe;
mod rounding;
mod scalar;
pub mod stats;
pub mod weighted;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use dispatch::{
    Kernels, Level, kernels, kernels_amx, kernels_avx512_halves, kernels_for, kernels_tuned,
    simd_level,
};
pub use error::Error;
pub use format::BlockFormat;
use llamapack_format::DTYPES;
pub use llamapack_format::DType;

/// Every weight type the kernels multiply: the storable rows of the dtype table, in table order
/// (each has a [`vec_dot`] against its [`vec_dot_type`]). Derived from the table, so a new
/// format is in every test and benchmark that iterates this without editing a list.
pub const WEIGHT_TYPES: [DType; N_WEIGHT_TYPES] = {
    let mut out = [DType::F32; N_WEIGHT_TYPES];
    let (mut i, mut j) = (0, 0);
    while i < DTYPES.len() {
        if DTYPES[i].storable {
            out[j] = DTYPES[i].dtype;
            j += 1;
        }
        i += 1;
    }
    out
};

/// How many storable rows the dtype table has.
pub const N_WEIGHT_TYPES: usize = {
    let (mut i, mut n) = (0, 0);
    while i < DTYPES.len() {
        if DTYPES[i].storable {
            n += 1;
        }
        i += 1;
    }
    n
};

/// The activation format a weight of type `weight` is dotted with: the dtype table's
/// `vec_dot_type` column (q8_0, q8_1, q8_k; f32 for plain float weights).
pub fn vec_dot_type(weight: DType) -> DType {
    weight.vec_dot_type()
}

/// Encodes one row of `src.len()` values as `dtype` into `dst`.
///
/// `dtype` is any storable type or q8_k; for f32/f16/bf16 this is a conversion. `dst.len()` must
/// equal `dtype.row_bytes(src.len())`. A NaN or ±inf in `src` is an [`Error::NonFinite`] naming
/// its index; finite values too large for an f16 scale behave as in ggml (the scale becomes inf).
pub fn quantize_row(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), Error> {
    kernels().quantize_row(dtype, src, dst)
}

/// Encodes one row of weights as `llama-quantize` writes them without an importance matrix
/// (ggml's `quantize_<type>`): the same bytes as [`quantize_row`] for every type but iq4_nl,
/// whose weight quantizer searches 15 trial scales that its `quantize_row_iq4_nl_ref` skips.
pub fn quantize_weights_row(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), Error> {
    kernels().quantize_weights_row(dtype, src, dst)
}

/// Decodes one row of `dtype` bytes into `dst.len()` values.
pub fn dequantize_row(dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<(), Error> {
    kernels().dequantize_row(dtype, src, dst)
}

/// Dot product of a `weight` row of `n` values with an activation row of `n` values in
/// [`vec_dot_type`]`(weight)` format (f32 bytes for float weights). Does not allocate.
///
/// # Panics
/// If a slice does not hold exactly `n` values of its type (a bug in the caller: the kernels
/// read through raw pointers, so this is checked in release builds too).
#[inline]
pub fn vec_dot(weight: DType, n: usize, w_row: &[u8], act: &[u8]) -> f32 {
    kernels().vec_dot(weight, n, w_row, act)
}
