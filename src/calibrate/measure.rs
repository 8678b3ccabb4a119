//! Step 1 of calibrated quantization: second moments, proxies, and one KLD probe per tensor.

use std::time::Instant;

use anyhow::{Context, ensure};
use llamapack_format::DType;
use llamapack_runner::accuracy::Windows;
use llamapack_runner::imatrix::{Collector, Gram, Site};
use llamapack_runner::{Logits, Matrix, Model, State, Weights};
use rayon::prelude::*;

use super::encode::{Moment, encode_rows, output_error};
use super::{
    CandidateLoss, Sensitivities, TensorSensitivity, block_matrices, candidate_types, matrix_over,
    replace, to_f32,
};

/// Rows of a tensor its candidates' proxies are measured on, at most (evenly spaced).
const PROXY_ROWS: usize = 512;

/// How the measurement runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Windows the second moments are collected on.
    pub windows: usize,
    /// Windows the KLD probes run on (at most `windows`; the first ones).
    pub probe_windows: usize,
    /// Error-feedback rounding for the candidates (and the final encoding).
    pub optimize: bool,
    /// Positions of each probe window the probes run (the first ones: the model is causal, so
    /// they are exactly those positions of the whole window); every second one from an eighth
    /// of the way in is scored.
    pub probe_tokens: usize,
}

/// The rows of a probe of `p` positions that are scored.
fn scored(p: usize) -> Logits {
    Logits::Rows {
        from: p / 8,
        step: 2,
    }
}

/// The probe windows' reference: block inputs, final residual, and the f16 model's log-probs.
struct Probe {
    tokens: Vec<u32>,
    /// `[n_layers][ctx · dim]` residual streams entering each block.
    inputs: Vec<f32>,
    /// `[ctx · vocab]` log-softmax of the reference logits.
    logp: Vec<f32>,
}

/// Measures every 2-D tensor of `model` (normally the f16 model) on `windows` of `tokens`;
/// `progress(done, total, what)` is called after each tensor.
pub fn measure(
    model: &Model<'_>,
    tokens: &[u32],
    windows: &Windows,
    settings: &Settings,
    progress: &dyn Fn(usize, usize, &str),
) -> anyhow::Result<Sensitivities> {
    let started = Instant::now();
    let c = &model.config;
    let (ctx, dim, vocab, n_layers) = (windows.ctx, c.dim, c.vocab_size, c.n_layers);
    let n_win = windows.n.min(settings.windows.max(1));
    ensure!(
        n_win > 0,
        "the calibration text is shorter than one window of {ctx} tokens"
    );
    let n_probe = settings.probe_windows.clamp(1, n_win);
    let mut s = State::with_context(c, ctx, ctx);
    let w = &model.weights;

    // Reference pass over the probe windows' first positions: block inputs and log-probs.
    let p_len = settings.probe_tokens.clamp(16, ctx);
    let mut probes = Vec::with_capacity(n_probe);
    for i in 0..n_probe {
        let win = windows.window(tokens, i)[..p_len].to_vec();
        s.layer_inputs = Some(Vec::with_capacity(n_layers * p_len * dim));
        let logits =
            model.forward_layers(w, &mut s, Some(&win), p_len, 0..n_layers, 0, scored(p_len))?;
        let logp = log_softmax_rows(logits, vocab);
        let inputs = s.layer_inputs.take().expect("set above");
        probes.push(Probe {
            tokens: win,
            inputs,
            logp,
        });
    }

    // Residual streams of every calibration window, advanced block by block.
    let mut xs: Vec<Vec<f32>> = Vec::with_capacity(n_win);
    for i in 0..n_win {
        let win = windows.window(tokens, i);
        model.forward_layers(w, &mut s, Some(&win), ctx, 0..0, 0, Logits::None)?;
        xs.push(s.x[..ctx * dim].to_vec());
    }

    let mut times = Times::default();
    times.moments += started.elapsed().as_secs_f64();
    let total = n_layers * 7 + if c.tied_output { 1 } else { 2 };
    let mut done = 0usize;
    let mut tensors = Vec::with_capacity(total);
    for l in 0..n_layers {
        let t0 = Instant::now();
        let grams = block_grams(model, w, &mut s, &mut xs, l, ctx, true)?;
        times.moments += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let moments = grams
            .iter()
            .map(|g| Moment::new(g, settings.optimize))
            .collect::<anyhow::Result<Vec<_>>>()?;
        times.candidates += t0.elapsed().as_secs_f64();
        for (m, site) in block_matrices(w, l) {
            let h = &moments[site_slot(site)];
            let t = measure_tensor(model, w, &mut s, &probes, m, h, Some(l), &mut times)?;
            done += 1;
            progress(done, total, m.name);
            tensors.push(t);
        }
    }
    // The output's input moment: the final norm of every window's last residual, every fourth
    // position (the head is the most expensive matmul).
    let t0 = Instant::now();
    let mut col = Collector::new(c, false);
    col.collect_grams(c, 0..0, true);
    s.imatrix = Some(col);
    for x in &xs {
        s.x[..ctx * dim].copy_from_slice(x);
        let rows = Logits::Rows { from: 0, step: 4 };
        model.forward_layers(w, &mut s, None, ctx, n_layers..n_layers, 0, rows)?;
    }
    let out_gram = s
        .imatrix
        .take()
        .and_then(|mut col| col.take_gram(Site::Output))
        .context("internal: no second moment of the output's input")?;
    let out_moment = Moment::new(&out_gram, settings.optimize)?;
    times.moments += t0.elapsed().as_secs_f64();
    // The embeddings and the output: probes run the whole model (the embeddings change the
    // input) or only the head.
    if c.tied_output {
        let t = measure_tensor(
            model,
            w,
            &mut s,
            &probes,
            &w.output,
            &out_moment,
            None,
            &mut times,
        )?;
        tensors.push(t);
    } else {
        let e = &w.tok_embeddings;
        let uniform = Moment::identity(e.cols, settings.optimize)?;
        let t = measure_tensor(model, w, &mut s, &probes, e, &uniform, None, &mut times)?;
        tensors.push(t);
        done += 1;
        progress(done, total, e.name);
        let o = &w.output;
        let t = measure_tensor(
            model,
            w,
            &mut s,
            &probes,
            o,
            &out_moment,
            Some(n_layers),
            &mut times,
        )?;
        tensors.push(t);
    }
    progress(total, total, "done");
    Ok(Sensitivities {
        ctx,
        windows: n_win,
        probe_windows: n_probe,
        optimize: settings.optimize,
        tensors,
        seconds: started.elapsed().as_secs_f64(),
        seconds_moments: times.moments,
        seconds_candidates: times.candidates,
        seconds_probes: times.probes,
    })
}

/// Where the measurement's time goes.
#[derive(Default)]
struct Times {
    moments: f64,
    candidates: f64,
    probes: f64,
}

/// Index of a block site among [`block_grams`]'s four.
pub(crate) fn site_slot(site: Site) -> usize {
    match site {
        Site::Attention(_) => 0,
        Site::AttentionOutput(_) => 1,
        Site::Ffn(_) => 2,
        Site::FfnDown(_) => 3,
        Site::Output => unreachable!("not a block site"),
    }
}

/// Runs block `l` of `w` over every window's residual stream in `xs` and returns the second
/// moments of its four sites; with `advance`, the streams are left as they leave the block.
pub(crate) fn block_grams(
    model: &Model<'_>,
    w: &Weights<'_>,
    s: &mut State,
    xs: &mut [Vec<f32>],
    l: usize,
    ctx: usize,
    advance: bool,
) -> anyhow::Result<[Gram; 4]> {
    let c = &model.config;
    let dim = c.dim;
    let mut col = Collector::new(c, false);
    col.collect_grams(c, l..l + 1, false);
    s.imatrix = Some(col);
    for x in xs.iter_mut() {
        s.x[..ctx * dim].copy_from_slice(x);
        model.forward_layers(w, s, None, ctx, l..l + 1, 0, Logits::None)?;
        if advance {
            x.copy_from_slice(&s.x[..ctx * dim]);
        }
    }
    let mut col = s.imatrix.take().expect("set above");
    let mut take = |site| {
        col.take_gram(site)
            .with_context(|| format!("internal: no second moment at {site}"))
    };
    Ok([
        take(Site::Attention(l))?,
        take(Site::AttentionOutput(l))?,
        take(Site::Ffn(l))?,
        take(Site::FfnDown(l))?,
    ])
}

/// Proxies of every candidate type of `m` and the probe; `layer` is the block the probe starts
/// at (`None`: the whole model from the embeddings; `n_layers`: only the head).
#[allow(clippy::too_many_arguments)]
fn measure_tensor(
    model: &Model<'_>,
    w: &Weights<'_>,
    s: &mut State,
    probes: &[Probe],
    m: &Matrix<'_>,
    moment: &Moment,
    layer: Option<usize>,
    times: &mut Times,
) -> anyhow::Result<TensorSensitivity> {
    let t0 = Instant::now();
    let src = to_f32(m)?;
    let h = moment;
    let types = candidate_types(m.cols);
    ensure!(
        !types.is_empty(),
        "tensor `{}`: no type's blocks divide its rows of {}",
        m.name,
        m.cols
    );
    let probe_type = *types
        .iter()
        .filter(|d| d.is_quantized())
        .min_by(|a, b| {
            (a.bits_per_weight() - 4.5)
                .abs()
                .total_cmp(&(b.bits_per_weight() - 4.5).abs())
        })
        .unwrap_or(&types[0]);
    // Proxies on evenly spaced rows (rows encode independently), scaled to the whole tensor.
    let stride = m.rows.div_ceil(PROXY_ROWS).max(1);
    let sample: Vec<f32> = src
        .chunks_exact(m.cols)
        .step_by(stride)
        .flatten()
        .copied()
        .collect();
    let scale = m.rows as f64 / (sample.len() / m.cols) as f64;
    let mut candidates = Vec::with_capacity(types.len());
    let mut probe_proxy = 0.0;
    for &d in &types {
        let bytes = encode_rows(d, m.name, &sample, m.cols, h)?;
        let proxy = output_error(d, &sample, m.cols, &bytes, h)? * scale;
        let full = d.row_bytes(m.cols).unwrap_or(0) as u64 * m.rows as u64;
        candidates.push((d, full, proxy));
        if d == probe_type {
            probe_proxy = proxy;
        }
    }
    let probe_bytes = encode_rows(probe_type, m.name, &src, m.cols, h)?;
    let seconds_candidates = t0.elapsed().as_secs_f64();
    times.candidates += seconds_candidates;
    let t0 = Instant::now();
    let probe_kld = probe_kld(model, w, s, probes, m, probe_type, &probe_bytes, layer)?;
    let seconds_probe = t0.elapsed().as_secs_f64();
    times.probes += seconds_probe;
    let gain = if probe_proxy > 0.0 {
        probe_kld / probe_proxy
    } else {
        0.0
    };
    Ok(TensorSensitivity {
        name: m.name.to_owned(),
        rows: m.rows,
        cols: m.cols,
        probe: probe_type.name().to_owned(),
        probe_kld,
        gain,
        candidates: candidates
            .into_iter()
            .map(|(d, bytes, proxy)| CandidateLoss {
                dtype: d.name().to_owned(),
                bytes,
                proxy,
                predicted: if d == m.dtype { 0.0 } else { gain * proxy },
            })
            .collect(),
        seconds_candidates,
        seconds_probe,
    })
}

/// Mean KLD over every position of the probe windows with `m` replaced by `bytes` of `dtype`.
#[allow(clippy::too_many_arguments)]
fn probe_kld(
    model: &Model<'_>,
    w: &Weights<'_>,
    s: &mut State,
    probes: &[Probe],
    m: &Matrix<'_>,
    dtype: DType,
    bytes: &[u8],
    layer: Option<usize>,
) -> anyhow::Result<f64> {
    let c = &model.config;
    let (dim, n_layers, vocab) = (c.dim, c.n_layers, c.vocab_size);
    let mut wq = w.clone();
    replace(&mut wq, m.name, matrix_over(m, dtype, bytes));
    let mut sum = 0.0;
    let mut n = 0usize;
    for p in probes {
        let ctx = p.tokens.len();
        let rows = scored(ctx);
        let logits = match layer {
            None => model.forward_layers(&wq, s, Some(&p.tokens), ctx, 0..n_layers, 0, rows)?,
            Some(l) if l < n_layers => {
                s.x[..ctx * dim].copy_from_slice(&p.inputs[l * ctx * dim..(l + 1) * ctx * dim]);
                model.forward_layers(&wq, s, None, ctx, l..n_layers, 0, rows)?
            }
            Some(_) => {
                // the head only: the residual leaving the last block, rebuilt from its input
                let last = n_layers - 1;
                s.x[..ctx * dim]
                    .copy_from_slice(&p.inputs[last * ctx * dim..(last + 1) * ctx * dim]);
                model.forward_layers(w, s, None, ctx, last..n_layers, 0, Logits::None)?;
                model.forward_layers(&wq, s, None, ctx, n_layers..n_layers, 0, rows)?
            }
        };
        sum += kld_rows(&p.logp, logits, vocab);
        n += rows.rows(ctx);
    }
    Ok(sum / n.max(1) as f64)
}

/// Row-wise log-softmax of `[n, vocab]` logits, in f32.
fn log_softmax_rows(logits: &[f32], vocab: usize) -> Vec<f32> {
    let mut out = vec![0f32; logits.len()];
    out.par_chunks_mut(vocab)
        .zip(logits.par_chunks(vocab))
        .for_each_init(
            || vec![0f64; vocab],
            |tmp, (o, l)| {
                llamapack_runner::metrics::log_softmax(l, tmp);
                for (a, b) in o.iter_mut().zip(tmp.iter()) {
                    *a = *b as f32;
                }
            },
        );
    out
}

/// Σ over rows of KL(reference ‖ candidate), the reference given as log-probs.
fn kld_rows(ref_logp: &[f32], logits: &[f32], vocab: usize) -> f64 {
    ref_logp
        .par_chunks(vocab)
        .zip(logits.par_chunks(vocab))
        .map_init(
            || vec![0f64; vocab],
            |lc, (lp, l)| {
                llamapack_runner::metrics::log_softmax(l, lc);
                lp.iter()
                    .zip(lc.iter())
                    .map(|(&a, &b)| {
                        let a = f64::from(a);
                        a.exp() * (a - b)
                    })
                    .sum::<f64>()
                    .max(0.0)
            },
        )
        .sum()
}
