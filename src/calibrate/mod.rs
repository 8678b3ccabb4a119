//! Calibrated quantization to a size budget (`quantize --target-bpw` / `--target-size`).
//!
//! Three steps, all on our own forward pass over a calibration text:
//!
//! 1. **Measure** ([`measure`]). Block by block, the calibration windows' residual streams go
//!    through the f16 model while a collector takes the full second moment H = E[x xᵀ] of every
//!    matrix input. Each 2-D weight is encoded in every candidate type (with H: error-feedback
//!    rounding when `optimize`), and its *proxy* loss is the layer's output error
//!    `Σ_rows (w − ŵ)ᵀ H (w − ŵ)`. Then one measurement per tensor ties the proxy to what matters:
//!    the tensor alone is quantized to a probe type (the candidate nearest 4.5 bpw), the model is
//!    run from that block on over the probe windows, and the mean KL divergence of its logits
//!    against the f16 model's is the tensor's measured ΔKLD. Its *gain* = ΔKLD / proxy(probe),
//!    and every candidate's predicted ΔKLD = gain × proxy(candidate). (Both KLD and the output
//!    error are second order in a small perturbation of one layer's output, so their ratio is
//!    nearly constant across types; `bench/budget_vs_llamacpp.sh` checks the predictions against
//!    measured KLD of whole mixes.)
//! 2. **Allocate** ([`llamapack_quantize::budget::solve`]): the least summed predicted ΔKLD whose
//!    bytes fit the budget (Lagrangian on each tensor's convex hull).
//! 3. **Encode** ([`encode`]): block by block again, now through the *quantized* model so far
//!    (each block's H reflects the errors before it), every tensor in its chosen type.
//!
//! Memory: the residual streams of the calibration windows, the probe windows' block inputs and
//! reference logits, and one block's second moments at a time (Llama-2-7B: `11008² · 4` bytes for
//! `w2` is the largest, 0.48 GB), plus the encoded output.

mod encode;
mod measure;
pub mod plan;

pub use encode::encode;
pub use measure::{Settings, measure};

use llamapack_format::DType;
use llamapack_runner::imatrix::Site;
use llamapack_runner::{Matrix, Weights};
use serde::{Deserialize, Serialize};

/// One candidate type of one tensor, as measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateLoss {
    /// The type.
    pub dtype: String,
    /// Bytes of the tensor in it.
    pub bytes: u64,
    /// The layer's output error `Σ_rows (w − ŵ)ᵀ H (w − ŵ)` (H = E[x xᵀ]).
    pub proxy: f64,
    /// Predicted ΔKLD: gain × proxy.
    pub predicted: f64,
}

/// What was measured for one tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorSensitivity {
    /// Tensor name (Meta naming).
    pub name: String,
    /// Rows (output features).
    pub rows: usize,
    /// Columns (input features).
    pub cols: usize,
    /// The type of the probe measurement.
    pub probe: String,
    /// Mean KLD against the f16 model with only this tensor in the probe type.
    pub probe_kld: f64,
    /// ΔKLD per unit of proxy.
    pub gain: f64,
    /// Every candidate type.
    pub candidates: Vec<CandidateLoss>,
    /// Wall time of encoding this tensor's candidates and its probe type (absent in files
    /// written before it was recorded).
    #[serde(default)]
    pub seconds_candidates: f64,
    /// Wall time of its KLD probe (from its block to the logits, every probe window).
    #[serde(default)]
    pub seconds_probe: f64,
}

/// The measurement of a whole model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sensitivities {
    /// Tokens per window.
    pub ctx: usize,
    /// Calibration windows the second moments were collected on.
    pub windows: usize,
    /// Windows the KLD probes ran on (the first ones of the calibration windows).
    pub probe_windows: usize,
    /// Error-feedback rounding was used for the candidates.
    pub optimize: bool,
    /// Per 2-D tensor, in file order.
    pub tensors: Vec<TensorSensitivity>,
    /// Wall time of the measurement.
    pub seconds: f64,
    /// Of which: the reference pass and the blocks' second moments.
    pub seconds_moments: f64,
    /// Of which: encoding the candidates and their proxies.
    pub seconds_candidates: f64,
    /// Of which: the KLD probes.
    pub seconds_probes: f64,
}

/// The candidate types for a matrix of `cols` columns: every quantized storable type whose
/// blocks divide the row, and f16 (the most a budget can buy; bf16/f32 are never better at
/// more bytes).
pub fn candidate_types(cols: usize) -> Vec<DType> {
    DType::storable()
        .filter(|d| (d.is_quantized() || *d == DType::F16) && cols.is_multiple_of(d.block_len()))
        .collect()
}

/// The matrices of block `l` with the site whose second moment they use.
pub(crate) fn block_matrices<'w, 'a>(w: &'w Weights<'a>, l: usize) -> [(&'w Matrix<'a>, Site); 7] {
    let lw = &w.layers[l];
    [
        (&lw.wq, Site::Attention(l)),
        (&lw.wk, Site::Attention(l)),
        (&lw.wv, Site::Attention(l)),
        (&lw.wo, Site::AttentionOutput(l)),
        (&lw.w1, Site::Ffn(l)),
        (&lw.w3, Site::Ffn(l)),
        (&lw.w2, Site::FfnDown(l)),
    ]
}

/// Replaces every matrix named `name` in `w` (both, when the output is tied to the embeddings).
pub(crate) fn replace<'b>(w: &mut Weights<'b>, name: &str, m: Matrix<'b>) {
    let mut slots: Vec<&mut Matrix<'b>> = vec![&mut w.tok_embeddings, &mut w.output];
    for lw in &mut w.layers {
        slots.extend([
            &mut lw.wq, &mut lw.wk, &mut lw.wv, &mut lw.wo, &mut lw.w1, &mut lw.w2, &mut lw.w3,
        ]);
    }
    for s in slots {
        if s.name == name {
            *s = Matrix { name: s.name, ..m };
        }
    }
}

/// A matrix of `dtype` over `bytes`, shaped as `like`.
pub(crate) fn matrix_over<'b>(like: &Matrix<'b>, dtype: DType, bytes: &'b [u8]) -> Matrix<'b> {
    Matrix {
        name: like.name,
        dtype,
        rows: like.rows,
        cols: like.cols,
        row_bytes: dtype.row_bytes(like.cols).unwrap_or(0),
        bytes,
    }
}

/// The rows of `m` as f32 (`rows × cols`).
pub(crate) fn to_f32(m: &Matrix<'_>) -> anyhow::Result<Vec<f32>> {
    use rayon::prelude::*;
    let mut out = vec![0f32; m.rows * m.cols];
    out.par_chunks_mut(m.cols)
        .enumerate()
        .try_for_each(|(r, dst)| llamapack_quantize::dequantize_row(m.dtype, m.row(r), dst))
        .map_err(|e| anyhow::anyhow!("tensor `{}`: {e}", m.name))?;
    Ok(out)
}
