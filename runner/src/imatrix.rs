//! Collecting an importance matrix while the forward pass runs, as llama.cpp's `llama-imatrix`
//! does: for every weight matrix that multiplies activations, Σx² per input column in f32
//! (each batch's rows added in order) and the number of token rows summed.
//!
//! Put a [`Collector`] in [`State::imatrix`](crate::State::imatrix) and every forward pass feeds it;
//! [`Collector::to_imatrix`] then names the sums after the model's tensors. Matrices that share
//! an input share one set of sums, which llama.cpp computes once per matrix with the same
//! additions in the same order, so the values are the same:
//!
//! | sums of | feed |
//! |---|---|
//! | `attention_norm(x)` | `wq`, `wk`, `wv` |
//! | the attention output (heads concatenated) | `wo` |
//! | `ffn_norm(h)` | `w1`, `w3` |
//! | `silu(w1 x) · w3 x` | `w2` |
//! | `norm(h)` of the rows whose logits are computed | `output` (only when asked: `--process-output`) |
//!
//! llama.cpp's rules, kept: batches of fewer than [`MIN_BATCH`] tokens are skipped (its
//! collector ignores `src1->ne[1] < 16`); the output projection is collected only when asked
//! and only when it is its own `output.weight` — a model with tied embeddings multiplies by
//! `token_embd.weight`, which llama-imatrix never collects; a non-finite sum stops the run.
//!
//! ```
//! use llamapack_format::{testing, Lpk};
//! use llamapack_runner::{Logits, Model, imatrix::Collector, testing::random_model};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.lpk");
//! random_model(&path, &testing::tiny_config(), llamapack_format::DType::F32, 1)?;
//! let lpk = Lpk::open(&path)?;
//! let model = Model::load_with_threads(&lpk, 1)?;
//! let mut state = model.new_state(32);
//! state.imatrix = Some(Collector::new(&model.config, false));
//! let tokens: Vec<u32> = (0..32).map(|i| i % 16).collect();
//! model.forward_batch(&mut state, &tokens, 0, Logits::All)?;
//! let im = state.imatrix.take().unwrap().to_imatrix(&model.weights, 32)?;
//! assert_eq!(im.len(), 2 * 7); // 7 matrices per layer, no output
//! assert_eq!(im.get("layers.1.feed_forward.w2.weight").unwrap().counts(), &[32]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use llamapack_quantize::imatrix::Imatrix;

use crate::error::{Error, Result};
use crate::model::{Config, Weights};

/// Batches of fewer tokens are not collected (llama-imatrix's rule).
pub const MIN_BATCH: usize = 16;

/// An activation that is the input of weight matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// `attention_norm(x)` of layer `l`: the input of `wq`, `wk`, `wv`.
    Attention(usize),
    /// The attention output of layer `l`: the input of `wo`.
    AttentionOutput(usize),
    /// `ffn_norm(h)` of layer `l`: the input of `w1`, `w3`.
    Ffn(usize),
    /// `silu(w1 x) · w3 x` of layer `l`: the input of `w2`.
    FfnDown(usize),
    /// The final `norm(h)`: the input of `output`.
    Output,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Site::Attention(l) => write!(f, "wq/wk/wv of layer {l}"),
            Site::AttentionOutput(l) => write!(f, "wo of layer {l}"),
            Site::Ffn(l) => write!(f, "w1/w3 of layer {l}"),
            Site::FfnDown(l) => write!(f, "w2 of layer {l}"),
            Site::Output => f.write_str("output"),
        }
    }
}

/// Σx² per column of one activation, and the token rows summed.
#[derive(Clone, Debug, PartialEq)]
struct Sums {
    sums: Vec<f32>,
    count: u64,
}

impl Sums {
    fn new(cols: usize) -> Sums {
        Sums {
            sums: vec![0.0; cols],
            count: 0,
        }
    }

    /// `sums[j] += x[j]²` for each row of `x`, rows in order (llama.cpp's f32 arithmetic).
    fn add(&mut self, x: &[f32]) {
        for row in x.chunks_exact(self.sums.len()) {
            for (s, &v) in self.sums.iter_mut().zip(row) {
                *s += v * v;
            }
        }
        self.count += (x.len() / self.sums.len()) as u64;
    }
}

/// The sums of one collection run; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Collector {
    /// Per layer: the [`Site::Attention`], [`Site::AttentionOutput`], [`Site::Ffn`] and
    /// [`Site::FfnDown`] sums.
    layers: Vec<[Sums; 4]>,
    /// [`Site::Output`] sums, when collected.
    output: Option<Sums>,
    /// Full second moments ([`Gram`]) per site, when asked for ([`Collector::collect_grams`]):
    /// `4 · layer + site` for the four block sites, then the output's.
    grams: Vec<Option<Gram>>,
}

/// Σ x xᵀ over the token rows of one activation (`cols × cols`, symmetric, f32 sums of f32
/// products): the full second moment whose diagonal is the importance matrix, for rounding
/// that minimizes a layer's output error (GPTQ-style) and for output-error proxies.
#[derive(Clone, Debug, PartialEq)]
pub struct Gram {
    /// Width of the activation.
    pub cols: usize,
    /// `cols × cols` sums, row-major; both triangles filled.
    pub sum: Vec<f32>,
    /// Token rows added.
    pub count: u64,
}

impl Gram {
    /// Zero sums for activations of `cols`.
    pub fn new(cols: usize) -> Gram {
        Gram {
            cols,
            sum: vec![0.0; cols * cols],
            count: 0,
        }
    }

    /// Adds the `n` rows of `x` (`[n, cols]`): one transpose, then the upper triangle as dots of
    /// columns (the SIMD f32 dot), rows of the result in parallel, mirrored.
    pub fn add(&mut self, x: &[f32], n: usize) {
        let d = self.cols;
        debug_assert_eq!(x.len(), n * d);
        let mut xt = vec![0f32; d * n];
        for (t, row) in x.chunks_exact(d).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                xt[j * n + t] = v;
            }
        }
        let xt = &xt;
        let col = |j: usize| -> &[u8] { bytemuck::cast_slice(&xt[j * n..(j + 1) * n]) };
        use rayon::prelude::*;
        self.sum.par_chunks_mut(d).enumerate().for_each(|(i, out)| {
            let a = col(i);
            for (j, o) in out.iter_mut().enumerate().skip(i) {
                *o += llamapack_quantize::vec_dot(llamapack_format::DType::F32, n, a, col(j));
            }
        });
        for i in 0..d {
            for j in 0..i {
                self.sum[i * d + j] = self.sum[j * d + i];
            }
        }
        self.count += n as u64;
    }

    /// E[x xᵀ]: the sums over the rows added (zeros when none were).
    pub fn mean(&self) -> Vec<f32> {
        let c = self.count.max(1) as f32;
        self.sum.iter().map(|v| v / c).collect()
    }
}

impl Collector {
    /// Zero sums for a model of config `c`; `process_output` also collects the input of the
    /// output projection (unless the output is tied to the embeddings, see the module docs).
    pub fn new(c: &Config, process_output: bool) -> Collector {
        let qd = c.n_heads * c.head_dim;
        let layer = || {
            [
                Sums::new(c.dim),
                Sums::new(qd),
                Sums::new(c.dim),
                Sums::new(c.hidden_dim),
            ]
        };
        Collector {
            layers: (0..c.n_layers).map(|_| layer()).collect(),
            output: (process_output && !c.tied_output).then(|| Sums::new(c.dim)),
            grams: Vec::new(),
        }
    }

    /// Also collects the full second moment ([`Gram`]) of the four sites of every block in
    /// `layers`, and of the output projection's input when `output` (tied or not). Memory:
    /// `4 · cols²` bytes per site, so callers ask for one block at a time on big models.
    pub fn collect_grams(&mut self, c: &Config, layers: std::ops::Range<usize>, output: bool) {
        let qd = c.n_heads * c.head_dim;
        let widths = [c.dim, qd, c.dim, c.hidden_dim];
        self.grams = (0..=c.n_layers * 4)
            .map(|i| {
                let (l, k) = (i / 4, i % 4);
                if i == c.n_layers * 4 {
                    output.then(|| Gram::new(c.dim))
                } else {
                    layers.contains(&l).then(|| Gram::new(widths[k]))
                }
            })
            .collect();
    }

    /// The second moment collected at `site`, if it was asked for (it is moved out).
    pub fn take_gram(&mut self, site: Site) -> Option<Gram> {
        let i = self.gram_index(site)?;
        self.grams.get_mut(i)?.take()
    }

    fn gram_index(&self, site: Site) -> Option<usize> {
        if self.grams.is_empty() {
            return None;
        }
        Some(match site {
            Site::Attention(l) => 4 * l,
            Site::AttentionOutput(l) => 4 * l + 1,
            Site::Ffn(l) => 4 * l + 2,
            Site::FfnDown(l) => 4 * l + 3,
            Site::Output => self.grams.len() - 1,
        })
    }

    /// Adds the `n` rows of `x` (`[n, width of site]`), unless `n` < [`MIN_BATCH`] or the site
    /// is not collected.
    pub fn add(&mut self, site: Site, x: &[f32], n: usize) -> Result<()> {
        if n < MIN_BATCH {
            return Ok(());
        }
        if let Some(g) = self
            .gram_index(site)
            .and_then(|i| self.grams.get_mut(i))
            .and_then(Option::as_mut)
        {
            if x.len() != n * g.cols {
                return Err(Error::Invalid(format!(
                    "second moment: {} values for {n} rows of {} at {site}",
                    x.len(),
                    g.cols
                )));
            }
            g.add(x, n);
            if g.sum.iter().step_by(g.cols + 1).any(|s| !s.is_finite()) {
                return Err(Error::NonFiniteActivation {
                    site: site.to_string(),
                });
            }
        }
        let sums = match site {
            Site::Attention(l) => &mut self.layers[l][0],
            Site::AttentionOutput(l) => &mut self.layers[l][1],
            Site::Ffn(l) => &mut self.layers[l][2],
            Site::FfnDown(l) => &mut self.layers[l][3],
            Site::Output => match &mut self.output {
                Some(s) => s,
                None => return Ok(()),
            },
        };
        if x.len() != n * sums.sums.len() {
            return Err(Error::Invalid(format!(
                "importance matrix: {} values for {n} rows of {} at {site}",
                x.len(),
                sums.sums.len()
            )));
        }
        sums.add(x);
        if sums.sums.iter().any(|s| !s.is_finite()) {
            return Err(Error::NonFiniteActivation {
                site: site.to_string(),
            });
        }
        Ok(())
    }

    /// Token rows summed at the first layer's attention input (every collected batch).
    pub fn tokens(&self) -> u64 {
        self.layers.first().map_or(0, |l| l[0].count)
    }

    /// The sums as an [`Imatrix`] over chunks of `chunk_size` tokens, keyed by the names of
    /// `w`'s matrices (the weights of the model that fed this collector). Matrices that never
    /// saw a collected batch are left out, as llama-imatrix leaves them out.
    pub fn to_imatrix(&self, w: &Weights<'_>, chunk_size: u32) -> Result<Imatrix> {
        if w.layers.len() != self.layers.len() {
            return Err(Error::Invalid(format!(
                "importance matrix of {} layers for a model of {}",
                self.layers.len(),
                w.layers.len()
            )));
        }
        let mut im = Imatrix::new(chunk_size);
        let mut put = |names: &[&str], s: &Sums| -> Result<()> {
            if s.count > 0 {
                for name in names {
                    im.insert("collected", name, s.sums.clone(), vec![s.count])?;
                }
            }
            Ok(())
        };
        for (lw, [att, att_out, ffn, down]) in w.layers.iter().zip(&self.layers) {
            put(&[lw.wq.name, lw.wk.name, lw.wv.name], att)?;
            put(&[lw.wo.name], att_out)?;
            put(&[lw.w1.name, lw.w3.name], ffn)?;
            put(&[lw.w2.name], down)?;
        }
        if let Some(s) = &self.output {
            put(&[w.output.name], s)?;
        }
        im.recount_chunks();
        Ok(im)
    }
}

/// Feeds `x` (`n` rows at `site`) to the collector of a state, if it has one.
pub(crate) fn collect(c: &mut Option<Collector>, site: Site, x: &[f32], n: usize) -> Result<()> {
    match c {
        Some(c) => c.add(site, x, n),
        None => Ok(()),
    }
}
