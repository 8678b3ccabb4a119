//! `Config` and `Weights`: the hyper-parameters and the tensors of a Llama model, as in
//! llama2.c's `run.c`, borrowed from a `.lpk` without copying a single weight matrix.

use llamapack_format::{DType, Lpk, ModelConfig};

use crate::error::{Error, Result};
use crate::matmul;

/// Hyper-parameters of the transformer, in the units the forward pass uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Width of the residual stream (`dim` in Meta's `ModelArgs`, `hidden_size` in HF).
    pub dim: usize,
    /// Width of the `SwiGLU` hidden layer (rows of `w1` and `w3`).
    pub hidden_dim: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads; fewer than `n_heads` means grouped-query attention.
    pub n_kv_heads: usize,
    /// Width of one head (`dim / n_heads`).
    pub head_dim: usize,
    /// Width of the K and V projections (`n_kv_heads * head_dim`).
    pub kv_dim: usize,
    /// Query heads per KV head (`n_rep` of Meta's `repeat_kv`).
    pub kv_mul: usize,
    /// Vocabulary size (rows of the embedding and output matrices).
    pub vocab_size: usize,
    /// Maximum context length the model was trained for.
    pub seq_len: usize,
    /// Epsilon of every `RMSNorm`.
    pub norm_eps: f32,
    /// Base of the `RoPE` frequencies (`theta`, 10000 for Llama 2).
    pub rope_theta: f32,
    /// The output projection is the embedding matrix (no `output.weight`).
    pub tied_output: bool,
}

impl Config {
    /// From the config stored in a `.lpk` (which the reader has validated).
    pub fn from_model_config(c: &ModelConfig) -> Result<Config> {
        c.validate().map_err(Error::Invalid)?;
        let u = |v: u32| v as usize;
        Ok(Config {
            dim: u(c.dim),
            hidden_dim: u(c.ffn_dim),
            n_layers: u(c.n_layers),
            n_heads: u(c.n_heads),
            n_kv_heads: u(c.n_kv_heads),
            head_dim: u(c.head_dim()),
            kv_dim: u(c.kv_dim()),
            kv_mul: u(c.n_heads / c.n_kv_heads),
            vocab_size: u(c.vocab_size),
            seq_len: u(c.context_length),
            norm_eps: c.norm_eps,
            rope_theta: c.rope_theta,
            tied_output: c.tied_output,
        })
    }
}

/// A weight matrix `[rows, cols]` (`PyTorch`'s `[out_features, in_features]`) borrowed from the
/// file: each row is `cols` elements of `dtype`, quantized rows are runs of ggml blocks.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    /// Tensor name, for errors.
    pub name: &'a str,
    /// Element type.
    pub dtype: DType,
    /// Output features.
    pub rows: usize,
    /// Input features (a whole number of `dtype` blocks).
    pub cols: usize,
    /// Bytes of one row.
    pub row_bytes: usize,
    /// All rows, contiguous.
    pub bytes: &'a [u8],
}

impl<'a> Matrix<'a> {
    /// Row `r`.
    pub fn row(&self, r: usize) -> &'a [u8] {
        &self.bytes[r * self.row_bytes..(r + 1) * self.row_bytes]
    }
}

/// The weights of one transformer block.
#[derive(Debug, Clone)]
pub struct LayerWeights<'a> {
    /// `attention_norm.weight` `[dim]`, as f32 (tiny; converted once at load).
    pub attention_norm: Vec<f32>,
    /// `attention.wq.weight` `[n_heads * head_dim, dim]`, rows in Meta's `RoPE` order.
    pub wq: Matrix<'a>,
    /// `attention.wk.weight` `[kv_dim, dim]`, rows in Meta's `RoPE` order.
    pub wk: Matrix<'a>,
    /// `attention.wv.weight` `[kv_dim, dim]`.
    pub wv: Matrix<'a>,
    /// `attention.wo.weight` `[dim, n_heads * head_dim]`.
    pub wo: Matrix<'a>,
    /// `ffn_norm.weight` `[dim]`, as f32.
    pub ffn_norm: Vec<f32>,
    /// `feed_forward.w1.weight` `[hidden_dim, dim]` (gate).
    pub w1: Matrix<'a>,
    /// `feed_forward.w2.weight` `[dim, hidden_dim]` (down).
    pub w2: Matrix<'a>,
    /// `feed_forward.w3.weight` `[hidden_dim, dim]` (up).
    pub w3: Matrix<'a>,
}

/// All weights of the model (cloning copies the small norm vectors and borrows the same
/// matrices, so a variant with one matrix replaced is cheap).
#[derive(Debug, Clone)]
pub struct Weights<'a> {
    /// `tok_embeddings.weight` `[vocab_size, dim]`; one row is dequantized per token.
    pub tok_embeddings: Matrix<'a>,
    /// The transformer blocks.
    pub layers: Vec<LayerWeights<'a>>,
    /// `norm.weight` `[dim]`, the final `RMSNorm`, as f32.
    pub norm: Vec<f32>,
    /// `output.weight` `[vocab_size, dim]`, or `tok_embeddings` when the output is tied.
    pub output: Matrix<'a>,
}

impl<'a> Weights<'a> {
    /// Borrows every tensor of `lpk`, checking names, shapes and dtypes against `c`.
    pub fn load<B: AsRef<[u8]>>(lpk: &'a Lpk<B>, c: &Config) -> Result<Weights<'a>> {
        let layer = |i: usize| -> Result<LayerWeights<'a>> {
            let n = |s: &str| format!("layers.{i}.{s}.weight");
            let hd = c.n_heads * c.head_dim;
            Ok(LayerWeights {
                attention_norm: vector(lpk, &n("attention_norm"), c.dim)?,
                wq: matrix(lpk, &n("attention.wq"), hd, c.dim)?,
                wk: matrix(lpk, &n("attention.wk"), c.kv_dim, c.dim)?,
                wv: matrix(lpk, &n("attention.wv"), c.kv_dim, c.dim)?,
                wo: matrix(lpk, &n("attention.wo"), c.dim, hd)?,
                ffn_norm: vector(lpk, &n("ffn_norm"), c.dim)?,
                w1: matrix(lpk, &n("feed_forward.w1"), c.hidden_dim, c.dim)?,
                w2: matrix(lpk, &n("feed_forward.w2"), c.dim, c.hidden_dim)?,
                w3: matrix(lpk, &n("feed_forward.w3"), c.hidden_dim, c.dim)?,
            })
        };
        let tok_embeddings = matrix(lpk, "tok_embeddings.weight", c.vocab_size, c.dim)?;
        let output = if c.tied_output {
            tok_embeddings
        } else {
            matrix(lpk, "output.weight", c.vocab_size, c.dim)?
        };
        Ok(Weights {
            tok_embeddings,
            layers: (0..c.n_layers).map(layer).collect::<Result<_>>()?,
            norm: vector(lpk, "norm.weight", c.dim)?,
            output,
        })
    }

    /// Bytes of matrix weights per dtype name (the tied output counted once), for reports.
    pub fn dtype_mix(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut mix = std::collections::BTreeMap::new();
        let tied = std::ptr::eq(self.output.bytes, self.tok_embeddings.bytes);
        for (i, m) in self.matrices().enumerate() {
            // `matrices` ends with tok_embeddings, output.
            if tied && i == self.layers.len() * 7 + 1 {
                continue;
            }
            *mix.entry(m.dtype.name()).or_insert(0) += m.bytes.len();
        }
        mix
    }

    /// Every matrix (the tied output appears twice), for sizing buffers and reports.
    pub fn matrices(&self) -> impl Iterator<Item = &Matrix<'a>> {
        self.layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2, &l.w3])
            .chain([&self.tok_embeddings, &self.output])
    }
}

fn matrix<'a, B: AsRef<[u8]>>(
    lpk: &'a Lpk<B>,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Matrix<'a>> {
    let t = lpk.tensor(name)?;
    if t.shape != [rows as u64, cols as u64] {
        return Err(Error::Shape {
            tensor: name.into(),
            found: t.shape.to_vec(),
            expected: vec![rows as u64, cols as u64],
        });
    }
    matmul::check_supported(t.name, t.dtype)?;
    // The reader checked that the byte length is exactly rows whole rows of `dtype`.
    let row_bytes = t.dtype.row_bytes(cols).expect("validated by the reader");
    Ok(Matrix {
        name: t.name,
        dtype: t.dtype,
        rows,
        cols,
        row_bytes,
        bytes: t.bytes,
    })
}

fn vector<B: AsRef<[u8]>>(lpk: &Lpk<B>, name: &str, len: usize) -> Result<Vec<f32>> {
    let t = lpk.tensor(name)?;
    if t.shape != [len as u64] {
        return Err(Error::Shape {
            tensor: name.into(),
            found: t.shape.to_vec(),
            expected: vec![len as u64],
        });
    }
    let mut v = vec![0f32; len];
    matmul::dequantize_row(llamapack_quantize::kernels(), t.dtype, t.bytes, &mut v)?;
    Ok(v)
}
