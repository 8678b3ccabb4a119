//! Encoding a matrix given its input's second moment, the output-error proxy, and step 3 of
//! calibrated quantization: the chosen types, block by block through the quantized model.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use llamapack_format::DType;
use llamapack_quantize::optimize::{self, Factor, InputStats};
use llamapack_runner::accuracy::Windows;
use llamapack_runner::imatrix::{Collector, Gram, Site};
use llamapack_runner::{Logits, Matrix, Model, State, Weights};
use rayon::prelude::*;

use super::measure::{block_grams, site_slot};
use super::{Settings, block_matrices, matrix_over, replace, to_f32};

/// A matrix input's second moment, ready for encoding: the statistics, and with `optimize`
/// their factorization for the error-feedback rounding (shared by every tensor reading that
/// input and every candidate type).
pub(crate) struct Moment {
    stats: InputStats,
    factor: Option<Factor>,
}

impl Moment {
    /// From collected sums; `optimize` factors them.
    pub(crate) fn new(g: &Gram, optimize: bool) -> anyhow::Result<Moment> {
        let stats = InputStats::from_f32(g.cols, g.mean(), g.count.max(1))?;
        let factor = if optimize {
            Some(optimize::factor(&stats, &optimize::Options::default())?)
        } else {
            None
        };
        Ok(Moment { stats, factor })
    }

    /// Unit-variance independent inputs (the embeddings: plain squared error).
    pub(crate) fn identity(cols: usize, optimize: bool) -> anyhow::Result<Moment> {
        let mut g = Gram::new(cols);
        for i in 0..cols {
            g.sum[i * cols + i] = 1.0;
        }
        g.count = 1;
        Moment::new(&g, optimize)
    }
}

/// Encodes `src` (rows of `cols` f32 values of tensor `name`) as `dtype` for inputs of second
/// moment `m`: with its factorization, error-feedback rounding that minimizes the layer's output
/// error (`llamapack_quantize::optimize`); otherwise the importance-weighted encoder with diag(H)
/// as the importance matrix (llama-quantize --imatrix's encoding). Rows are independent, so any
/// subset of a tensor's rows encodes as it would inside the whole tensor.
pub(crate) fn encode_rows(
    dtype: DType,
    name: &str,
    src: &[f32],
    cols: usize,
    m: &Moment,
) -> anyhow::Result<Vec<u8>> {
    let rows = src.len() / cols;
    let err = |e: llamapack_quantize::Error| anyhow::anyhow!("tensor `{name}` as {dtype}: {e}");
    if let (Some(f), true) = (&m.factor, dtype.is_quantized()) {
        return optimize::quantize_tensor_factored(
            dtype,
            src,
            rows,
            cols,
            f,
            &optimize::Options::default(),
        )
        .map_err(err);
    }
    let row_bytes = dtype
        .row_bytes(cols)
        .with_context(|| format!("tensor `{name}`: rows of {cols} are not whole {dtype} blocks"))?;
    let diag = m.stats.diag();
    let mut out = vec![0u8; rows * row_bytes];
    let kern = llamapack_quantize::kernels();
    out.par_chunks_mut(row_bytes)
        .zip(src.par_chunks(cols))
        .try_for_each(|(dst, x)| {
            if dtype.is_quantized() {
                kern.quantize_weighted_row(dtype, x, dst, &diag)
            } else {
                kern.quantize_row(dtype, x, dst)
            }
        })
        .map_err(err)?;
    Ok(out)
}

/// The output error `Σ_rows (w − ŵ)ᵀ H (w − ŵ)` of `bytes` (rows of `dtype`) against `src`
/// (rows of `cols`).
pub(crate) fn output_error(
    dtype: DType,
    src: &[f32],
    cols: usize,
    bytes: &[u8],
    m: &Moment,
) -> anyhow::Result<f64> {
    Ok(optimize::output_error(
        dtype,
        src,
        src.len() / cols,
        cols,
        bytes,
        &m.stats,
    )?)
}

/// Step 3: encodes every matrix named in `types` in its type, block by block through the model
/// quantized so far (each block's second moments are collected on the calibration windows'
/// residual streams as the quantized blocks before it leave them). Tensors not named stay as
/// they are. Returns the encoded bytes by name; `progress(done, total)` after each tensor.
pub fn encode(
    model: &Model<'_>,
    tokens: &[u32],
    windows: &Windows,
    settings: &Settings,
    types: &BTreeMap<String, DType>,
    progress: &dyn Fn(usize, usize),
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let c = &model.config;
    let (ctx, dim, n_layers) = (windows.ctx, c.dim, c.n_layers);
    let n_win = windows.n.min(settings.windows.max(1));
    ensure!(
        n_win > 0,
        "the calibration text is shorter than one window of {ctx} tokens"
    );
    let w = &model.weights;
    let mut s = State::with_context(c, ctx, ctx);
    let mut encoded: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let total = types.len();
    let wanted = |m: &Matrix<'_>| types.get(m.name).copied().filter(|&d| d != m.dtype);
    // The current model: the original with every tensor encoded so far.
    fn current<'b>(
        w: &Weights<'b>,
        encoded: &'b BTreeMap<String, Vec<u8>>,
        types: &BTreeMap<String, DType>,
    ) -> Weights<'b> {
        let mut q = w.clone();
        for (name, bytes) in encoded {
            let like = q.matrices().find(|m| m.name == name).copied();
            if let (Some(like), Some(&d)) = (like, types.get(name)) {
                replace(&mut q, name, matrix_over(&like, d, bytes));
            }
        }
        q
    }
    // Untied embeddings first: they feed everything after (plain squared error; no moment).
    if !c.tied_output
        && let Some(d) = wanted(&w.tok_embeddings)
    {
        let e = &w.tok_embeddings;
        let src = to_f32(e)?;
        let eye = Moment::identity(e.cols, settings.optimize)?;
        encoded.insert(
            e.name.to_owned(),
            encode_rows(d, e.name, &src, e.cols, &eye)?,
        );
        progress(encoded.len(), total);
    }
    let mut xs: Vec<Vec<f32>> = Vec::with_capacity(n_win);
    {
        let q = current(w, &encoded, types);
        for i in 0..n_win {
            let win = windows.window(tokens, i);
            model.forward_layers(&q, &mut s, Some(&win), ctx, 0..0, 0, Logits::None)?;
            xs.push(s.x[..ctx * dim].to_vec());
        }
    }
    for l in 0..n_layers {
        // Moments of block l under the quantized blocks before it (block l itself still
        // original), then block l encoded, then the streams advanced through it quantized.
        let grams = {
            let q = current(w, &encoded, types);
            block_grams(model, &q, &mut s, &mut xs, l, ctx, false)?
        };
        let mut moments: [Option<Moment>; 4] = Default::default();
        for (m, site) in block_matrices(w, l) {
            if let Some(d) = wanted(m) {
                let src = to_f32(m)?;
                let k = site_slot(site);
                if moments[k].is_none() {
                    moments[k] = Some(Moment::new(&grams[k], settings.optimize)?);
                }
                let h = moments[k].as_ref().expect("set above");
                encoded.insert(m.name.to_owned(), encode_rows(d, m.name, &src, m.cols, h)?);
                progress(encoded.len(), total);
            }
        }
        let q = current(w, &encoded, types);
        for x in &mut xs {
            s.x[..ctx * dim].copy_from_slice(x);
            model.forward_layers(&q, &mut s, None, ctx, l..l + 1, 0, Logits::None)?;
            x.copy_from_slice(&s.x[..ctx * dim]);
        }
    }
    // The output (tied: also the embeddings), with the moment of the final norm's output.
    if let Some(d) = wanted(&w.output) {
        let q = current(w, &encoded, types);
        let mut col = Collector::new(c, false);
        col.collect_grams(c, 0..0, true);
        s.imatrix = Some(col);
        for x in &xs {
            s.x[..ctx * dim].copy_from_slice(x);
            model.forward_layers(&q, &mut s, None, ctx, n_layers..n_layers, 0, Logits::All)?;
        }
        let g = s
            .imatrix
            .take()
            .and_then(|mut col| col.take_gram(Site::Output))
            .context("internal: no second moment of the output's input")?;
        let o = &w.output;
        let src = to_f32(o)?;
        let bytes = encode_rows(
            d,
            o.name,
            &src,
            o.cols,
            &Moment::new(&g, settings.optimize)?,
        )?;
        drop(q);
        encoded.insert(o.name.to_owned(), bytes);
        progress(encoded.len(), total);
    }
    Ok(encoded)
}
