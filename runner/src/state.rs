//! `State`: every buffer the forward pass touches, allocated once (activations for a batch of
//! up to `max_batch` tokens, the KV cache, the `RoPE` table, matmul scratch).

use crate::aligned::Aligned;
use crate::imatrix::Collector;
use crate::matmul;
use crate::model::Config;

/// Most tokens the output head multiplies at once: [`State::mm_scratch`] holds their
/// `[vocab, HEAD_TOKENS]` products (a multiple of 8, so that every kernel's token groups fall
/// as they do for the whole batch; each row's logits have the same bits either way).
pub const HEAD_TOKENS: usize = 64;

/// Activations, KV cache and scratch for one sequence.
///
/// Rows of the activation buffers are tokens of the current batch (`[max_batch, width]`);
/// every buffer starts on a 64-byte cache line ([`Aligned`]).
#[derive(Debug, Clone)]
pub struct State {
    /// Most tokens one `forward_batch` call may process.
    pub max_batch: usize,
    /// Context window of this state (≤ the model's `seq_len`): positions `0..ctx`.
    pub ctx: usize,
    /// Residual stream `[max_batch, dim]`.
    pub x: Aligned<f32>,
    /// Normed input of a sub-layer, then the attention output `[max_batch, dim]`.
    pub xb: Aligned<f32>,
    /// Output of `wo` / `w2` before the residual add `[max_batch, dim]`.
    pub xb2: Aligned<f32>,
    /// Queries `[max_batch, n_heads * head_dim]`.
    pub q: Aligned<f32>,
    /// Keys of the batch `[max_batch, kv_dim]` (copied into the cache after `RoPE`).
    pub k: Aligned<f32>,
    /// Values of the batch `[max_batch, kv_dim]`.
    pub v: Aligned<f32>,
    /// `w1 x`, then `silu(w1 x) * w3 x` `[max_batch, hidden_dim]`.
    pub hb: Aligned<f32>,
    /// `w3 x` `[max_batch, hidden_dim]`.
    pub hb2: Aligned<f32>,
    /// Attention scores, one row per (token, head) `[max_batch * n_heads, ctx]`.
    pub att: Aligned<f32>,
    /// Output logits `[max_batch, vocab_size]` (only row 0 when just the last is asked for).
    pub logits: Aligned<f32>,
    /// Key cache `[n_layers, ctx, kv_dim]`.
    pub key_cache: Aligned<f32>,
    /// Value cache `[n_layers, ctx, kv_dim]`.
    pub value_cache: Aligned<f32>,
    /// `cos` of the rotary angles `[ctx, head_dim / 2]`.
    pub rope_cos: Vec<f32>,
    /// `sin` of the rotary angles `[ctx, head_dim / 2]`.
    pub rope_sin: Vec<f32>,
    /// Activations converted to a weight's dot format (`q8_0` / `q8_k` blocks).
    pub act_scratch: Aligned<u8>,
    /// `[rows, max_batch]` product before the transpose of a batched matmul.
    pub mm_scratch: Aligned<f32>,
    /// When set, every forward pass adds the inputs of its weight matrices to it (Σx² per
    /// column, see [`crate::imatrix`]); `None` (the default) costs nothing.
    pub imatrix: Option<Collector>,
    /// When set, every forward pass appends the residual stream entering each block it runs
    /// (`[n, dim]` per block, blocks in order) — the rows a later
    /// [`Model::forward_layers`](crate::Model::forward_layers) can start from.
    pub layer_inputs: Option<Vec<f32>>,
}

impl State {
    /// A state for `config` with the model's full context window.
    pub fn new(config: &Config, max_batch: usize) -> State {
        State::with_context(config, max_batch, config.seq_len)
    }

    /// A state with a context window of `ctx` positions (clamped to the model's `seq_len`);
    /// a smaller window saves KV-cache memory (`2 · n_layers · ctx · kv_dim · 4` bytes).
    pub fn with_context(c: &Config, max_batch: usize, ctx: usize) -> State {
        let b = max_batch.max(1);
        let ctx = ctx.clamp(1, c.seq_len);
        let qd = c.n_heads * c.head_dim;
        let widest = c.dim.max(c.hidden_dim).max(qd);
        // the output head runs on at most HEAD_TOKENS tokens at a time, so the scratch need
        // not hold `vocab × max_batch` products (100 MB for a 49152-word vocabulary at 512)
        let max_rows = c.hidden_dim.max(c.dim).max(qd);
        let scratch = (max_rows * b).max(c.vocab_size * b.min(HEAD_TOKENS));
        let half = c.head_dim / 2;
        let (rope_cos, rope_sin) = rope_table(ctx, c.head_dim, c.rope_theta);
        debug_assert_eq!(rope_cos.len(), ctx * half);
        State {
            max_batch: b,
            ctx,
            x: Aligned::zeroed(b * c.dim),
            xb: Aligned::zeroed(b * widest),
            xb2: Aligned::zeroed(b * c.dim),
            q: Aligned::zeroed(b * qd),
            k: Aligned::zeroed(b * c.kv_dim),
            v: Aligned::zeroed(b * c.kv_dim),
            hb: Aligned::zeroed(b * c.hidden_dim),
            hb2: Aligned::zeroed(b * c.hidden_dim),
            att: Aligned::zeroed(b * c.n_heads * ctx),
            logits: Aligned::zeroed(b * c.vocab_size),
            key_cache: Aligned::zeroed(c.n_layers * ctx * c.kv_dim),
            value_cache: Aligned::zeroed(c.n_layers * ctx * c.kv_dim),
            rope_cos,
            rope_sin,
            act_scratch: Aligned::zeroed(matmul::act_scratch_bytes(b, widest)),
            mm_scratch: Aligned::zeroed(if b > 1 { scratch } else { 0 }),
            imatrix: None,
            layer_inputs: None,
        }
    }

    /// Bytes held by this state.
    pub fn bytes(&self) -> usize {
        let f: [&[f32]; 15] = [
            &self.x,
            &self.xb,
            &self.xb2,
            &self.q,
            &self.k,
            &self.v,
            &self.hb,
            &self.hb2,
            &self.att,
            &self.logits,
            &self.key_cache,
            &self.value_cache,
            &self.rope_cos,
            &self.rope_sin,
            &self.mm_scratch,
        ];
        f.iter().map(|v| v.len() * 4).sum::<usize>() + self.act_scratch.len()
    }
}

/// `RoPE` angles as Meta's `precompute_freqs_cis` and HF's `LlamaRotaryEmbedding` compute them in
/// f32: `inv_freq[i] = theta^(-2i/head_dim)`, `angle = pos * inv_freq[i]` (an f32 product), then
/// `cos`/`sin` of that f32 angle, correctly rounded.
fn rope_table(ctx: usize, head_dim: usize, theta: f32) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| (1.0 / f64::from(theta).powf((2 * i) as f64 / head_dim as f64)) as f32)
        .collect();
    let mut cos = Vec::with_capacity(ctx * half);
    let mut sin = Vec::with_capacity(ctx * half);
    for pos in 0..ctx {
        for &f in &inv_freq {
            let angle = f64::from(pos as f32 * f);
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}
