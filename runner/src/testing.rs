//! Random models for tests, examples and benchmarks (any size, any storable dtype).

use std::path::Path;

use llamapack_format::{DType, LpkWriter, Metadata, ModelConfig, Provenance, testing};

use crate::error::{Error, Result};
use llamapack_quantize as q;

/// A deterministic generator of uniform values (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in `[-1, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / 16_777_216.0;
        2.0 * u - 1.0
    }
}

/// Writes a model of `config` with random weights stored as `dtype` (norms as f32) to `path`.
///
/// Matrices are uniform in `±1/sqrt(in_features)` so activations stay of order one; the
/// tokenizer is [`testing::tiny_tokenizer`] when `config.vocab_size` is 16, else a vocabulary
/// of `<unk>`, `<s>`, `</s>` and placeholder pieces.
pub fn random_model(path: &Path, config: &ModelConfig, dtype: DType, seed: u64) -> Result<()> {
    let c = config;
    let mut rng = Rng::new(seed);
    let mut w = LpkWriter::create(path)?;
    let (dim, hid, vocab) = (c.dim as usize, c.ffn_dim as usize, c.vocab_size as usize);
    let (qd, kvd) = (dim, c.kv_dim() as usize);
    let mut put = |w: &mut LpkWriter, name: &str, rows: usize, cols: usize, dt: DType| {
        let scale = if rows == 0 {
            1.0
        } else {
            1.0 / (cols as f32).sqrt()
        };
        let row_bytes = dt
            .row_bytes(cols)
            .ok_or_else(|| Error::Invalid(format!("{name}: {cols} is not a whole {dt} row")))?;
        let shape: Vec<u64> = if rows == 0 {
            vec![cols as u64]
        } else {
            vec![rows as u64, cols as u64]
        };
        let mut sink = w.begin_tensor(name, dt, &shape)?;
        let mut row = vec![0f32; cols];
        let mut bytes = vec![0u8; row_bytes];
        for _ in 0..rows.max(1) {
            for v in &mut row {
                *v = if rows == 0 {
                    1.0 + 0.1 * rng.next_f32()
                } else {
                    scale * rng.next_f32()
                };
            }
            q::quantize_row(dt, &row, &mut bytes).map_err(|e| Error::Kernel {
                dtype: dt,
                reason: e.to_string(),
            })?;
            sink.write(&bytes)?;
        }
        sink.finish()?;
        Ok::<(), Error>(())
    };
    put(&mut w, "tok_embeddings.weight", vocab, dim, dtype)?;
    for l in 0..c.n_layers {
        let n = |s: &str| format!("layers.{l}.{s}.weight");
        put(&mut w, &n("attention_norm"), 0, dim, DType::F32)?;
        put(&mut w, &n("attention.wq"), qd, dim, dtype)?;
        put(&mut w, &n("attention.wk"), kvd, dim, dtype)?;
        put(&mut w, &n("attention.wv"), kvd, dim, dtype)?;
        put(&mut w, &n("attention.wo"), dim, qd, dtype)?;
        put(&mut w, &n("ffn_norm"), 0, dim, DType::F32)?;
        put(&mut w, &n("feed_forward.w1"), hid, dim, dtype)?;
        put(&mut w, &n("feed_forward.w2"), dim, hid, dtype)?;
        put(&mut w, &n("feed_forward.w3"), hid, dim, dtype)?;
    }
    put(&mut w, "norm.weight", 0, dim, DType::F32)?;
    if !c.tied_output {
        put(&mut w, "output.weight", vocab, dim, dtype)?;
    }
    let mut tokenizer = testing::tiny_tokenizer();
    if vocab != tokenizer.len() {
        tokenizer.pieces.truncate(3);
        tokenizer
            .pieces
            .extend((3..vocab).map(|i| format!("▁t{i}")));
        tokenizer.scores = (0..vocab).map(|i| -(i as f32)).collect();
        tokenizer.types = (0..vocab)
            .map(|i| [2, 3, 3].get(i).copied().unwrap_or(1))
            .collect();
    }
    w.finish(&Metadata {
        config: c.clone(),
        tokenizer,
        provenance: Provenance {
            tool: llamapack_format::TOOL_VERSION.into(),
            source_format: "test".into(),
            ..Provenance::default()
        },
    })?;
    Ok(())
}
