//! Test helpers: deterministic pseudo-random tensors in every dtype and tiny `.lpk` files.

use std::path::Path;

use half::{bf16, f16};
use llamapack_format::{DType, LpkWriter, Metadata, ModelConfig, testing};

/// xorshift64*: deterministic bytes without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

/// Offsets of the f16 scale fields in a block of `d`, which must stay finite.
fn scale_offsets(d: DType) -> &'static [usize] {
    match d {
        DType::Q8_0 | DType::Q4_0 => &[0],
        DType::Q4K => &[0, 2],
        DType::Q6K => &[208],
        _ => &[],
    }
}

/// Random but valid bytes of a tensor of `shape` (outermost first) in `d`.
pub fn tensor_bytes(d: DType, shape: &[u64], rng: &mut Rng) -> Vec<u8> {
    let n: u64 = shape.iter().product();
    let n = n as usize;
    match d {
        DType::F32 => (0..n).flat_map(|_| rng.f32().to_le_bytes()).collect(),
        DType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.f32()).to_le_bytes())
            .collect(),
        DType::BF16 => (0..n)
            .flat_map(|_| bf16::from_f32(rng.f32()).to_le_bytes())
            .collect(),
        _ => {
            let bb = d.block_bytes();
            let mut b = rng.bytes(n / d.block_len() * bb);
            for block in b.chunks_exact_mut(bb) {
                for &o in scale_offsets(d) {
                    let s = f16::from_f32(rng.f32().abs() * 0.01 + 1e-4).to_le_bytes();
                    block[o..o + 2].copy_from_slice(&s);
                }
            }
            b
        }
    }
}

/// A config every dtype fits (rows of 256): width 256, 2 layers, 4 heads, 2 KV heads.
pub fn config() -> ModelConfig {
    ModelConfig {
        dim: 256,
        ffn_dim: 512,
        ..testing::tiny_config()
    }
}

pub fn metadata(tied: bool) -> Metadata {
    let mut m = testing::tiny_metadata();
    m.config = config();
    m.config.tied_output = tied;
    m
}

/// Meta names and shapes of the model of `c`, in a canonical order.
pub fn tensors_of(c: &ModelConfig) -> Vec<(String, Vec<u64>)> {
    let (dim, kv, ffn, vocab) = (
        u64::from(c.dim),
        u64::from(c.kv_dim()),
        u64::from(c.ffn_dim),
        u64::from(c.vocab_size),
    );
    let mut v = vec![("tok_embeddings.weight".to_owned(), vec![vocab, dim])];
    for i in 0..c.n_layers {
        let l = |s: &str| format!("layers.{i}.{s}");
        v.push((l("attention.wq.weight"), vec![dim, dim]));
        v.push((l("attention.wk.weight"), vec![kv, dim]));
        v.push((l("attention.wv.weight"), vec![kv, dim]));
        v.push((l("attention.wo.weight"), vec![dim, dim]));
        v.push((l("feed_forward.w1.weight"), vec![ffn, dim]));
        v.push((l("feed_forward.w2.weight"), vec![dim, ffn]));
        v.push((l("feed_forward.w3.weight"), vec![ffn, dim]));
        v.push((l("attention_norm.weight"), vec![dim]));
        v.push((l("ffn_norm.weight"), vec![dim]));
    }
    v.push(("norm.weight".to_owned(), vec![dim]));
    if !c.tied_output {
        v.push(("output.weight".to_owned(), vec![vocab, dim]));
    }
    v
}

/// Writes a `.lpk` of `meta` whose tensors get the dtype `pick(name, shape)`.
pub fn write_lpk(path: &Path, meta: &Metadata, pick: impl Fn(&str, &[u64]) -> DType, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut w = LpkWriter::create(path).unwrap();
    for (name, shape) in tensors_of(&meta.config) {
        let d = pick(&name, &shape);
        let bytes = tensor_bytes(d, &shape, &mut rng);
        w.write_tensor(&name, d, &shape, &bytes).unwrap();
    }
    w.finish(meta).unwrap();
}

/// Every 2-D tensor in `d`, norms f32.
pub fn uniform(d: DType) -> impl Fn(&str, &[u64]) -> DType {
    move |_, shape| if shape.len() == 1 { DType::F32 } else { d }
}

/// A different dtype per tensor kind, covering all seven storable types.
pub fn mixed(name: &str, shape: &[u64]) -> DType {
    if shape.len() == 1 {
        return DType::F32;
    }
    let kinds = [
        ("tok_embeddings", DType::F16),
        ("wq", DType::Q4_0),
        ("wk", DType::Q8_0),
        ("wv", DType::Q6K),
        ("wo", DType::Q4K),
        ("w1", DType::BF16),
        ("w2", DType::F32),
        ("w3", DType::Q4K),
        ("output", DType::Q6K),
    ];
    kinds
        .iter()
        .find(|(k, _)| name.contains(k))
        .map_or(DType::F16, |(_, d)| *d)
}
