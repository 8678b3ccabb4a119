//! Error-compensating rounding inside the ggml block grids: quantize a linear layer's weights
//! to minimize the layer's **output** error `Σ_rows (w − ŵ)ᵀ H (w − ŵ)` (`H = E[x xᵀ]` of its
//! input) instead of the weight error, and still write ordinary ggml blocks.
//!
//! ```
//! use llamapack_format::DType;
//! use llamapack_quantize::optimize::{self, InputStats, Options};
//!
//! // A layer of 8 rows × 256 columns and 512 correlated input vectors.
//! let (rows, cols, tokens) = (8, 256, 512);
//! let mut seed = 1u32;
//! let mut rand = move || {
//!     seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
//!     (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
//! };
//! let w: Vec<f32> = (0..rows * cols).map(|_| rand()).collect();
//! let z: Vec<f32> = (0..tokens).map(|_| rand()).collect();
//! // Every input column is a shared factor plus its own noise.
//! let x: Vec<f32> = (0..tokens * cols).map(|i| z[i / cols] + 0.3 * rand()).collect();
//! let stats = InputStats::from_inputs(&x, cols)?;
//!
//! let bytes = optimize::quantize_tensor_optimized(DType::Q4K, &w, rows, cols, &stats, &Options::default())?;
//! assert_eq!(bytes.len(), rows * DType::Q4K.row_bytes(cols).unwrap());
//!
//! // Against llama.cpp's rounding with the importance matrix diag(H):
//! let mut plain = vec![0u8; bytes.len()];
//! let imatrix = stats.diag();
//! for (row, out) in w.chunks(cols).zip(plain.chunks_mut(bytes.len() / rows)) {
//!     llamapack_quantize::kernels().quantize_weighted_row(DType::Q4K, row, out, &imatrix)?;
//! }
//! let ours = optimize::output_error(DType::Q4K, &w, rows, cols, &bytes, &stats)?;
//! let theirs = optimize::output_error(DType::Q4K, &w, rows, cols, &plain, &stats)?;
//! assert!(ours < 0.5 * theirs, "{ours} vs {theirs}");
//! # Ok::<(), llamapack_quantize::Error>(())
//! ```
//!
//! # Method
//!
//! GPTQ (Frantar et al. 2022) in its LDLQ form (Chee et al. 2023), with ggml's block grids:
//!
//! - **Factor** ([`factor`], once per layer input, shared by every tensor reading it and every
//!   candidate type): `H + λ·mean(diag H)·I` (λ = [`Options::damp`], default 0.01) factored as
//!   `R·Rᵀ`, `R` upper triangular, in f64 (a blocked Cholesky with the index order reversed).
//!   Then `δᵀHδ = Σ_k R_kk²·(δ_k + Σ_{j<k} C_jk·δ_j)²` with `C_jk = R_jk/R_kk`: rounding
//!   column `k` from the target `w_k + Σ_{j<k} C_jk·δ_j` leaves only its own rounding in term
//!   `k`. This is GPTQ's update with `R` in place of the Cholesky factor of `H⁻¹`; nothing is
//!   inverted. Dead columns (`E[x²] = 0`) get the damping as their diagonal: their weight is
//!   rounded to the nearest grid point and passes no error on (GPTQ zeroes such weights; a
//!   ggml block cannot always represent 0, and a column dead on the calibration text need
//!   not be dead elsewhere).
//! - **Grids**: at the start of each block (32 or 256 columns) of each row, the block's scales
//!   and mins are chosen from the current, error-updated targets by the crate's weighted
//!   encoder (the one byte-identical to `llama-quantize --imatrix`) with the damped diagonal
//!   of `H` as importance; decoding the block with every code in turn gives each sub-block's
//!   grid (affine `d·q − m`, or iq4's non-linear one) exactly as the decoder computes it.
//! - **Rounding**: columns left to right, each to its grid point nearest its target, its
//!   error passed on at once within the block, at the block's end to the rest of the
//!   256-column batch, and at the batch's end to every later column in one tiled product
//!   (GPTQ's lazy batch update). At the block's end the chosen codes are packed with the
//!   fixed scales: one small adapter per format (`grid.rs`).
//! - **Refit** ([`Options::refit_rounds`]): with the codes fixed, the block's f16 `d` (and
//!   `dmin`/`m`) are re-solved by least squares on the block's exact terms of the output error,
//!   rounded to f16 with the rounding's neighbours compared; the block is then rounded again
//!   with the new scales, kept if better.
//! - Rows are independent and run in parallel; the same input gives the same bytes at every
//!   thread count and SIMD level.
//!
//! [`Order::ActOrder`] is GPTQ's other variant: static grids chosen from the original
//! weights, columns visited by descending `E[x²]`.
//!
//! # Measured
//!
//! Filled in by the measurements below (see `tests/optimize.rs`).
//!
//! Cost: see [`factor`] and [`quantize_tensor_factored`].

mod factor;
mod gptq;
mod grid;
mod input;
mod linalg;
#[cfg(target_arch = "x86_64")]
mod linalg_x86;
mod loss;
mod refit;

pub use factor::{Factor, factor};
pub use input::InputStats;
pub use loss::{output_error, output_error_diag};

use llamapack_format::DType;

use crate::Error;

/// Calls `module::function::<F>(args)` with `F` the format of a quantized storable `dtype`
/// (an error for a type without an adapter).
macro_rules! for_format {
    ($dtype:expr, $m:ident :: $f:ident ( $($arg:expr),* )) => {{
        use crate::{iq4_nl, iq4_xs, q2_k, q3_k, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0};
        match $dtype {
            DType::Q4_0 => $m::$f::<q4_0::Q4_0>($($arg),*),
            DType::Q4_1 => $m::$f::<q4_1::Q4_1>($($arg),*),
            DType::Q5_0 => $m::$f::<q5_0::Q5_0>($($arg),*),
            DType::Q5_1 => $m::$f::<q5_1::Q5_1>($($arg),*),
            DType::Q8_0 => $m::$f::<q8_0::Q8_0>($($arg),*),
            DType::Q2K => $m::$f::<q2_k::Q2K>($($arg),*),
            DType::Q3K => $m::$f::<q3_k::Q3K>($($arg),*),
            DType::Q4K => $m::$f::<q4_k::Q4K>($($arg),*),
            DType::Q5K => $m::$f::<q5_k::Q5K>($($arg),*),
            DType::Q6K => $m::$f::<q6_k::Q6K>($($arg),*),
            DType::IQ4NL => $m::$f::<iq4_nl::Iq4Nl>($($arg),*),
            DType::IQ4XS => $m::$f::<iq4_xs::Iq4Xs>($($arg),*),
            d => Err(Error::Unsupported(d)),
        }
    }};
}

/// The order in which the columns of a row are rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Order {
    /// Left to right, each block's scales chosen from the error-updated weights when the
    /// rounding reaches it.
    Natural,
    /// Blocks kept together, heavy first: groups of 256 columns by descending `Σ E[x²]`,
    /// within a group its blocks of 32 likewise, within a block its columns by descending
    /// `E[x²]`; grids chosen lazily and refit as in [`Order::Natural`]. Every 32- and
    /// 256-column block is contiguous in this order, so one factor serves every type. The
    /// default: the lowest output error of the three on layers with a few massive input
    /// channels (see the module docs).
    #[default]
    Grouped,
    /// Descending `E[x²]` (GPTQ's act order) with static grids chosen from the original
    /// weights; no refit.
    ActOrder,
}

/// Knobs of the optimizer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Relative damping λ: `H + λ·mean(diag H)·I` is factored (GPTQ's `percdamp`).
    pub damp: f64,
    /// The column order.
    pub order: Order,
    /// Rounds of scale refit and re-rounding per block (0: the encoder's scales as they are).
    pub refit_rounds: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            damp: 0.01,
            order: Order::Grouped,
            refit_rounds: 2,
        }
    }
}

/// Quantizes a whole tensor (`rows × cols`, row-major f32) to `dtype`, minimizing the layer's
/// output error `Σ_rows (w − ŵ)ᵀ H (w − ŵ)` instead of the weight error. Returns ordinary ggml
/// row bytes (`rows × dtype.row_bytes(cols)`).
///
/// Factors `stats` first ([`factor`]); to quantize several tensors that read the same input,
/// or one tensor to several types, factor once and call [`quantize_tensor_factored`].
pub fn quantize_tensor_optimized(
    dtype: DType,
    w: &[f32],
    rows: usize,
    cols: usize,
    stats: &InputStats,
    opts: &Options,
) -> Result<Vec<u8>, Error> {
    check_weights(dtype, w, rows, cols)?;
    if stats.cols() != cols {
        return Err(Error::Shape {
            what: "input statistics columns",
            expected: cols,
            found: stats.cols(),
        });
    }
    if !dtype.is_quantized() {
        return plain(dtype, w, rows, cols);
    }
    let fac = factor(stats, opts)?;
    quantize_tensor_factored(dtype, w, rows, cols, &fac, opts)
}

/// [`quantize_tensor_optimized`] with the statistics already factored (`opts.order` and
/// `opts.damp` are the factor's; `opts.refit_rounds` applies).
///
/// Cost: about `rows·cols²/2` multiply-adds in f32, plus per block and row the weighted
/// encoder and `refit_rounds + 1` rounding passes; f32/f16/bf16 are a plain conversion.
pub fn quantize_tensor_factored(
    dtype: DType,
    w: &[f32],
    rows: usize,
    cols: usize,
    fac: &Factor,
    opts: &Options,
) -> Result<Vec<u8>, Error> {
    check_weights(dtype, w, rows, cols)?;
    if fac.cols() != cols {
        return Err(Error::Shape {
            what: "factored statistics columns",
            expected: cols,
            found: fac.cols(),
        });
    }
    if !dtype.is_quantized() {
        return plain(dtype, w, rows, cols);
    }
    for_format!(dtype, gptq::quantize(fac, w, rows, cols, opts))
}

/// Checks that `bytes` are well-formed blocks of `dtype` as the optimizer writes them: every
/// f16 block scale finite, every code in the range the format's encoder uses (q8_0 never
/// stores −128), every block unchanged by unpacking and repacking its codes, and every value
/// finite when decoded. A sanity check for callers before writing a file; the error names the
/// first bad block.
pub fn check_blocks(dtype: DType, bytes: &[u8]) -> Result<(), Error> {
    if !dtype.is_storable() {
        return Err(Error::Unsupported(dtype));
    }
    if !bytes.len().is_multiple_of(dtype.block_bytes()) {
        return Err(Error::Shape {
            what: "block bytes",
            expected: bytes.len() / dtype.block_bytes() * dtype.block_bytes(),
            found: bytes.len(),
        });
    }
    if !dtype.is_quantized() {
        let n = bytes.len() / dtype.block_bytes() * dtype.block_len();
        let mut v = vec![0f32; n];
        crate::dequantize_row(dtype, bytes, &mut v)?;
        return match v.iter().position(|x| !x.is_finite()) {
            Some(index) => Err(Error::NonFinite {
                index,
                value: v[index],
            }),
            None => Ok(()),
        };
    }
    for_format!(dtype, grid::check_blocks(bytes))
}

/// Checks `w` against `rows × cols` and `cols` against the block length; every weight finite.
fn check_weights(dtype: DType, w: &[f32], rows: usize, cols: usize) -> Result<(), Error> {
    if !dtype.is_storable() {
        return Err(Error::Unsupported(dtype));
    }
    dtype.row_bytes(cols).ok_or(Error::RowLength {
        dtype,
        len: cols,
        block_len: dtype.block_len(),
    })?;
    let n = rows.saturating_mul(cols);
    if w.len() != n || cols == 0 {
        return Err(Error::Shape {
            what: "weights (rows × cols)",
            expected: n,
            found: w.len(),
        });
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFiniteAt {
            row: i / cols,
            column: i % cols,
            value: w[i],
        });
    }
    Ok(())
}

/// f32 / f16 / bf16: the plain conversion.
fn plain(dtype: DType, w: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>, Error> {
    let rb = dtype.row_bytes(cols).expect("checked");
    let mut out = vec![0u8; rows * rb];
    for (src, dst) in w.chunks_exact(cols).zip(out.chunks_exact_mut(rb)) {
        crate::quantize_row(dtype, src, dst)?;
    }
    Ok(out)
}
