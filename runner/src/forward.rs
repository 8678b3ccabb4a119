//! `Model` and the forward pass. Each step is commented with the line of Meta's `model.py`
//! (llama/model.py of the Llama 2 release) it implements.

use llamapack_format::Lpk;
use llamapack_quantize::{Kernels, Level};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::imatrix::{Site, collect};
use crate::matmul::{self, Panels, project};
use crate::model::{Config, Weights};
use crate::ops::{add, attend, rmsnorm, rope, silu};
use crate::state::{HEAD_TOKENS, State};
use crate::threads::default_threads;

/// Which logits a forward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// None (prompt chunks whose logits nobody reads).
    None,
    /// The last token's only: `[vocab]`.
    Last,
    /// Every token's: `[n, vocab]` (teacher forcing, evaluation).
    All,
    /// The rows `from, from + step, …` below `n` only, in order: `[m, vocab]` (sampled scoring,
    /// e.g. sensitivity probes; `step` ≥ 1).
    Rows {
        /// First row.
        from: usize,
        /// Distance between rows.
        step: usize,
    },
}

impl Logits {
    /// How many rows of logits a batch of `n` tokens yields.
    pub fn rows(self, n: usize) -> usize {
        match self {
            Logits::None => 0,
            Logits::Last => 1,
            Logits::All => n,
            Logits::Rows { from, step } => n.saturating_sub(from).div_ceil(step.max(1)),
        }
    }
}

/// A loaded model: config, borrowed weights and the thread pool its matmuls run on.
#[derive(Debug)]
pub struct Model<'a> {
    /// Hyper-parameters.
    pub config: Config,
    /// Tensors, borrowed from the `.lpk`.
    pub weights: Weights<'a>,
    pool: rayon::ThreadPool,
    kernels: &'static Kernels,
    /// Matrices kept repacked in 16-row panels for the level's panel kernels.
    panels: Panels,
}

impl<'a> Model<'a> {
    /// Loads `lpk` with [`default_threads`] threads.
    pub fn load<B: AsRef<[u8]>>(lpk: &'a Lpk<B>) -> Result<Model<'a>> {
        Model::load_with_threads(lpk, default_threads())
    }

    /// Loads `lpk`; matmuls and attention run on a dedicated pool of `threads` threads.
    pub fn load_with_threads<B: AsRef<[u8]>>(lpk: &'a Lpk<B>, threads: usize) -> Result<Model<'a>> {
        Model::load_releasing(lpk, threads, &|_| {})
    }

    /// [`Model::load_with_threads`], handing the file bytes of each matrix the model repacks
    /// into its own copy (its panels: the multiplications never read those bytes again) to
    /// `release` as soon as that copy is made — e.g. `|b| lpk.release(b)` for a mapped file, so
    /// that each weight is resident once, at load as after it (the embedding rows a tied
    /// output shares are read again from the file).
    pub fn load_releasing<B: AsRef<[u8]>>(
        lpk: &'a Lpk<B>,
        threads: usize,
        release: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<Model<'a>> {
        let config = Config::from_model_config(lpk.config())?;
        let weights = Weights::load(lpk, &config)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("llamapack-{i}"))
            .build()
            .map_err(|e| Error::ThreadPool(e.to_string()))?;
        let kernels = llamapack_quantize::kernels();
        let panels = pool.install(|| Panels::build(kernels, &weights, release));
        Ok(Model {
            config,
            weights,
            pool,
            kernels,
            panels,
        })
    }

    /// Runs `f` on this model's thread pool (its rayon work uses the model's threads).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// Threads of the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The SIMD level of the kernels in use (the best the CPU has, unless lowered by
    /// `LLAMAPACK_SIMD` or [`Model::set_simd_level`]).
    pub fn simd_level(&self) -> Level {
        self.kernels.level()
    }

    /// Runs the matmuls on the kernels of `level` (tests compare every level in one process).
    pub fn set_simd_level(&mut self, level: Level) -> Result<()> {
        self.kernels = llamapack_quantize::kernels_tuned(level).ok_or_else(|| {
            Error::Unsupported(format!(
                "SIMD level {} is not supported by this CPU",
                level.name()
            ))
        })?;
        Ok(())
    }

    /// A [`State`] for batches of up to `max_batch` tokens and the full context window.
    pub fn new_state(&self, max_batch: usize) -> State {
        State::new(&self.config, max_batch)
    }

    /// One token at `pos` (generation, matrix × vector); returns its logits `[vocab]`.
    pub fn forward<'s>(&self, s: &'s mut State, token: u32, pos: usize) -> Result<&'s [f32]> {
        self.forward_batch(s, &[token], pos, Logits::Last)
    }

    /// Processes `tokens` at positions `start_pos..` as one batch (matrix × matrix), filling
    /// the KV cache, and returns the logits asked for (`[vocab]`, `[n, vocab]` or empty).
    /// `tokens.len()` must be at most `s.max_batch`; see [`Model::prefill`] for longer prompts.
    pub fn forward_batch<'s>(
        &self,
        s: &'s mut State,
        tokens: &[u32],
        start_pos: usize,
        logits: Logits,
    ) -> Result<&'s [f32]> {
        let all = 0..self.config.n_layers;
        self.forward_layers(
            &self.weights,
            s,
            Some(tokens),
            tokens.len(),
            all,
            start_pos,
            logits,
        )
    }

    /// Processes a prompt of any length in batches of `s.max_batch`; returns the logits of
    /// its last token.
    pub fn prefill<'s>(
        &self,
        s: &'s mut State,
        tokens: &[u32],
        start_pos: usize,
    ) -> Result<&'s [f32]> {
        if tokens.is_empty() {
            return Err(Error::Invalid("an empty prompt".into()));
        }
        let b = s.max_batch;
        let last = (tokens.len() - 1) / b;
        for (i, chunk) in tokens.chunks(b).enumerate().take(last) {
            self.forward_batch(s, chunk, start_pos + i * b, Logits::None)?;
        }
        self.forward_batch(s, &tokens[last * b..], start_pos + last * b, Logits::Last)
    }

    /// A partial forward pass for calibration and sensitivity measurement: runs the blocks
    /// `layers` of `w` (weights of this model's shapes, e.g. [`Model::weights`] with one matrix
    /// replaced by a candidate quantization) over `n` tokens at positions `start_pos..`.
    ///
    /// With `tokens` the pass starts from their embeddings and `layers` must start at 0;
    /// without, the caller has put the residual stream entering `layers.start` in
    /// `s.x[..n * dim]` (e.g. rows captured by [`State::layer_inputs`] of an earlier pass). When
    /// `layers` ends at the last block, the final norm and the output projection give the logits
    /// asked for; otherwise `logits` must be [`Logits::None`] and `s.x` holds the residual stream
    /// leaving `layers.end - 1`. The KV cache of the blocks run is written as usual.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_layers<'s>(
        &self,
        w: &Weights<'_>,
        s: &'s mut State,
        tokens: Option<&[u32]>,
        n: usize,
        layers: std::ops::Range<usize>,
        start_pos: usize,
        logits: Logits,
    ) -> Result<&'s [f32]> {
        let c = &self.config;
        let vocab = c.vocab_size;
        if n == 0 || n > s.max_batch {
            return Err(Error::Invalid(format!(
                "a batch of {n} tokens (this state takes 1..={})",
                s.max_batch
            )));
        }
        if let Some(t) = tokens.filter(|t| t.len() != n) {
            return Err(Error::Invalid(format!(
                "{} token ids for a pass over {n} tokens",
                t.len()
            )));
        }
        if start_pos + n > s.ctx {
            return Err(Error::Context {
                pos: start_pos,
                n,
                ctx: s.ctx,
            });
        }
        if layers.start > layers.end
            || layers.end > c.n_layers
            || (tokens.is_some() && layers.start != 0)
            || (layers.end < c.n_layers && logits != Logits::None)
            || w.layers.len() != c.n_layers
        {
            return Err(Error::Invalid(format!(
                "a partial pass over blocks {layers:?} of {} (tokens given: {}, logits: {logits:?})",
                c.n_layers,
                tokens.is_some()
            )));
        }
        if let Some(&id) = tokens.and_then(|t| t.iter().find(|&&t| t as usize >= vocab)) {
            return Err(Error::TokenId { id, vocab });
        }
        self.pool
            .install(|| self.forward_impl(w, s, tokens, n, layers, start_pos, logits))?;
        Ok(&s.logits[..logits.rows(n) * vocab])
    }

    /// Logits of every position of `tokens` (teacher forcing): `[tokens.len(), vocab]`.
    pub fn logits_all(&self, s: &mut State, tokens: &[u32], start_pos: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(tokens.len() * self.config.vocab_size);
        for (i, chunk) in tokens.chunks(s.max_batch).enumerate() {
            let l = self.forward_batch(s, chunk, start_pos + i * s.max_batch, Logits::All)?;
            out.extend_from_slice(l);
        }
        Ok(out)
    }

    /// The forward pass over `n = tokens.len()` tokens. Buffers are rows of `State`; nothing
    /// is allocated here. Each `collect` hands a matmul's input to the state's importance-matrix
    /// collector, when it has one ([`crate::imatrix`]).
    #[allow(clippy::too_many_arguments)]
    fn forward_impl(
        &self,
        w: &Weights<'_>,
        s: &mut State,
        tokens: Option<&[u32]>,
        n: usize,
        blocks: std::ops::Range<usize>,
        start: usize,
        want: Logits,
    ) -> Result<()> {
        let c = &self.config;
        let kern = self.kernels;
        let (dim, hd, kv_dim, hidden) = (c.dim, c.head_dim, c.kv_dim, c.hidden_dim);
        let qd = c.n_heads * hd;
        let half = hd / 2;
        let ctx = s.ctx;
        let State {
            x,
            xb,
            xb2,
            q,
            k,
            v,
            hb,
            hb2,
            att,
            logits,
            key_cache,
            value_cache,
            rope_cos,
            rope_sin,
            act_scratch,
            mm_scratch,
            imatrix,
            layer_inputs,
            ..
        } = s;

        // h = self.tok_embeddings(tokens)                               (Transformer.forward)
        for (t, &tok) in tokens.unwrap_or(&[]).iter().enumerate() {
            let e = &w.tok_embeddings;
            matmul::dequantize_row(
                kern,
                e.dtype,
                e.row(tok as usize),
                &mut x[t * dim..(t + 1) * dim],
            )?;
        }

        let last = blocks.end == c.n_layers;
        // As llama.cpp does: in the last block only the rows whose logits are wanted go on
        // past the attention (their queries read every key; wo, the FFN and the head need only
        // them). Each row's result has the same bits either way. Not while a collector watches
        // the matmul inputs, which must see every row.
        let wanted = want.rows(n);
        let prune = match want {
            Logits::Last => Some((n - 1, 1)),
            Logits::Rows { from, step } => Some((from, step.max(1))),
            Logits::None | Logits::All => None,
        }
        // (only when this pass runs the last block: a head-only pass has no rows to drop)
        .filter(|_| last && blocks.start < blocks.end && wanted > 0 && wanted < n)
        .filter(|_| imatrix.is_none())
        .filter(|_| layer_inputs.is_none());
        let mut n = n;
        for (l, lw) in w
            .layers
            .iter()
            .enumerate()
            .take(blocks.end)
            .skip(blocks.start)
        {
            if let Some(inputs) = layer_inputs {
                inputs.extend_from_slice(&x[..n * dim]);
            }
            // self.attention_norm(x)                                   (TransformerBlock.forward)
            for t in 0..n {
                let r = t * dim..(t + 1) * dim;
                rmsnorm(&mut xb[r.clone()], &x[r], &lw.attention_norm, c.norm_eps);
            }
            // xq, xk, xv = self.wq(x), self.wk(x), self.wv(x)           (Attention.forward)
            collect(imatrix, Site::Attention(l), &xb[..n * dim], n)?;
            project(
                kern,
                &self.panels,
                &xb[..n * dim],
                n,
                dim,
                act_scratch,
                mm_scratch,
                &mut [
                    (&lw.wq, &mut q[..]),
                    (&lw.wk, &mut k[..]),
                    (&lw.wv, &mut v[..]),
                ],
            )?;
            // xq, xk = apply_rotary_emb(xq, xk, freqs_cis=freqs_cis)
            for t in 0..n {
                let p = (start + t) * half;
                let (cos, sin) = (&rope_cos[p..p + half], &rope_sin[p..p + half]);
                rope(&mut q[t * qd..(t + 1) * qd], hd, cos, sin);
                rope(&mut k[t * kv_dim..(t + 1) * kv_dim], hd, cos, sin);
            }
            // self.cache_k[:bsz, start_pos : start_pos + seqlen] = xk   (and cache_v = xv)
            let layer = l * ctx * kv_dim..(l + 1) * ctx * kv_dim;
            let (kc, vc) = (&mut key_cache[layer.clone()], &mut value_cache[layer]);
            let span = start * kv_dim..(start + n) * kv_dim;
            kc[span.clone()].copy_from_slice(&k[..n * kv_dim]);
            vc[span].copy_from_slice(&v[..n * kv_dim]);
            let (kc, vc) = (&*kc, &*vc);

            // keys = repeat_kv(keys, self.n_rep); values = repeat_kv(values, self.n_rep)
            // scores = torch.matmul(xq, keys.transpose(2, 3)) / math.sqrt(self.head_dim)
            // scores = scores + mask;  scores = F.softmax(scores.float(), dim=-1)
            // output = torch.matmul(scores, values)
            // One task per (token, head); query head h reads KV head h / n_rep.
            let scale = 1.0 / (hd as f32).sqrt();
            let q = &*q;
            // the tokens whose attention output goes on: from + k·step for k < rows
            let (from, step, rows) = match prune {
                Some((from, step)) if l + 1 == c.n_layers => (from, step, wanted),
                _ => (0, 1, n),
            };
            xb[..rows * qd]
                .par_chunks_mut(hd)
                .zip(att.par_chunks_mut(ctx))
                .enumerate()
                .for_each(|(i, (out, att))| {
                    let (t, h) = (from + (i / c.n_heads) * step, i % c.n_heads);
                    let pos = start + t;
                    let kvh = (h / c.kv_mul) * hd;
                    let qh = &q[t * qd + h * hd..][..hd];
                    // The causal mask: position `pos` sees positions 0..=pos.
                    let att = &mut att[..=pos];
                    attend(out, att, qh, &kc[kvh..], &vc[kvh..], kv_dim, scale);
                });
            if rows < n {
                // the residual rows of those tokens, moved up to match (k ≤ from + k·step)
                for k in 0..rows {
                    let t = from + k * step;
                    x.copy_within(t * dim..(t + 1) * dim, k * dim);
                }
                n = rows;
            }
            // return self.wo(output)
            collect(imatrix, Site::AttentionOutput(l), &xb[..n * qd], n)?;
            project(
                kern,
                &self.panels,
                &xb[..n * qd],
                n,
                qd,
                act_scratch,
                mm_scratch,
                &mut [(&lw.wo, &mut xb2[..])],
            )?;
            // h = x + self.attention(self.attention_norm(x), ...)
            add(&mut x[..n * dim], &xb2[..n * dim]);

            // self.ffn_norm(h)
            for t in 0..n {
                let r = t * dim..(t + 1) * dim;
                rmsnorm(&mut xb[r.clone()], &x[r], &lw.ffn_norm, c.norm_eps);
            }
            // self.w1(x), self.w3(x)                                    (FeedForward.forward)
            collect(imatrix, Site::Ffn(l), &xb[..n * dim], n)?;
            project(
                kern,
                &self.panels,
                &xb[..n * dim],
                n,
                dim,
                act_scratch,
                mm_scratch,
                &mut [(&lw.w1, &mut hb[..]), (&lw.w3, &mut hb2[..])],
            )?;
            // F.silu(self.w1(x)) * self.w3(x)
            for (a, &b) in hb[..n * hidden].iter_mut().zip(&hb2[..n * hidden]) {
                *a = silu(*a) * b;
            }
            // self.w2(...)
            collect(imatrix, Site::FfnDown(l), &hb[..n * hidden], n)?;
            project(
                kern,
                &self.panels,
                &hb[..n * hidden],
                n,
                hidden,
                act_scratch,
                mm_scratch,
                &mut [(&lw.w2, &mut xb2[..])],
            )?;
            // out = h + self.feed_forward(self.ffn_norm(h))
            add(&mut x[..n * dim], &xb2[..n * dim]);
        }

        // h = self.norm(h); output = self.output(h).float()         (Transformer.forward)
        let (from, step) = match want {
            _ if !last => return Ok(()),
            Logits::None => return Ok(()),
            // the last block kept only the wanted rows, in order
            _ if prune.is_some() => (0, 1),
            Logits::Last => (n - 1, 1),
            Logits::All => (0, 1),
            Logits::Rows { from, step } => (from, step.max(1)),
        };
        let m = wanted;
        if m == 0 {
            return Ok(());
        }
        for (i, t) in (from..n).step_by(step).enumerate() {
            let (o, src) = (i * dim..(i + 1) * dim, t * dim..(t + 1) * dim);
            rmsnorm(&mut xb[o], &x[src], &w.norm, c.norm_eps);
        }
        collect(imatrix, Site::Output, &xb[..m * dim], m)?;
        // HEAD_TOKENS rows at a time (the scratch holds that many `[vocab]` products)
        let vocab = c.vocab_size;
        for t0 in (0..m).step_by(HEAD_TOKENS) {
            let nt = HEAD_TOKENS.min(m - t0);
            project(
                kern,
                &self.panels,
                &xb[t0 * dim..(t0 + nt) * dim],
                nt,
                dim,
                act_scratch,
                mm_scratch,
                &mut [(&w.output, &mut logits[t0 * vocab..(t0 + nt) * vocab])],
            )?;
        }
        Ok(())
    }
}
