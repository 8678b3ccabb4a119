//! Meta's checkpoint layout: `params.json`, `consolidated.NN.pth` model-parallel shards, and
//! `tokenizer.model` beside them or one level up.
//!
//! Meta's `model.py` splits each weight across the shards as fairscale's parallel layers do:
//! `ColumnParallelLinear` (wq, wk, wv, w1, w3, output) on dim 0, `RowParallelLinear` (wo, w2)
//! and `ParallelEmbedding` (`tok_embeddings`) on dim 1; norms are replicated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use llamapack_format::ModelConfig;
use llamapack_format::llama::Role;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::plan::{Layout, Piece, PieceSrc, Planned, check_layer_count, shape_error};
use crate::pth::PthTensor;
use crate::source::{Mapped, rel_name};

/// `params.json`, as Meta's `ModelArgs` reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Model width.
    pub dim: u32,
    /// Layers.
    pub n_layers: u32,
    /// Query heads.
    pub n_heads: u32,
    /// KV heads (defaults to `n_heads`).
    pub n_kv_heads: u32,
    /// Vocabulary size; `None` for `-1` ("from the tokenizer / embedding").
    pub vocab_size: Option<u32>,
    /// FFN size rounding.
    pub multiple_of: u64,
    /// FFN size multiplier (Llama 2 70B: 1.3).
    pub ffn_dim_multiplier: Option<f64>,
    /// `RMSNorm` epsilon.
    pub norm_eps: f32,
    /// `RoPE` base.
    pub rope_theta: f32,
}

/// Meta's FFN width: `int(2·4·dim/3)`, times `ffn_dim_multiplier` (truncated), rounded up to
/// a multiple of `multiple_of`.
pub fn meta_ffn_dim(dim: u64, multiple_of: u64, ffn_dim_multiplier: Option<f64>) -> u64 {
    let mut h = 2 * (4 * dim) / 3;
    if let Some(m) = ffn_dim_multiplier {
        h = (m * h as f64) as u64;
    }
    let m = multiple_of.max(1);
    h.div_ceil(m) * m
}

/// Parses `params.json`.
pub fn parse_params(bytes: &[u8], file: &str) -> Result<Params> {
    let err = |reason: String| Error::Config {
        file: file.to_owned(),
        reason,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| err(format!("not json: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| err("not a json object".into()))?;
    let uint = |k: &str| -> Result<Option<u32>> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| err(format!("`{k}` = {x} is not a positive integer"))),
        }
    };
    let need = |k: &str| uint(k)?.ok_or_else(|| err(format!("missing `{k}`")));
    let float = |k: &str, default: f64| -> Result<f64> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x
                .as_f64()
                .ok_or_else(|| err(format!("`{k}` = {x} is not a number"))),
        }
    };
    if o.get("use_scaled_rope").and_then(Value::as_bool) == Some(true) {
        return Err(err(
            "`use_scaled_rope` (Llama 3.1 rope scaling) is not supported".into(),
        ));
    }
    let vocab_size = match o.get("vocab_size") {
        None | Some(Value::Null) => None,
        Some(x) if x.as_i64() == Some(-1) => None,
        Some(_) => Some(need("vocab_size")?),
    };
    let n_heads = need("n_heads")?;
    Ok(Params {
        dim: need("dim")?,
        n_layers: need("n_layers")?,
        n_heads,
        n_kv_heads: uint("n_kv_heads")?.unwrap_or(n_heads),
        vocab_size,
        multiple_of: u64::from(uint("multiple_of")?.unwrap_or(256)),
        ffn_dim_multiplier: match o.get("ffn_dim_multiplier") {
            None | Some(Value::Null) => None,
            Some(_) => Some(float("ffn_dim_multiplier", 1.0)?),
        },
        norm_eps: float("norm_eps", 1e-5)? as f32,
        rope_theta: float("rope_theta", 10000.0)? as f32,
    })
}

/// A Meta checkpoint on disk, mapped.
#[derive(Debug)]
pub(crate) struct MetaSource {
    pub dir: PathBuf,
    pub params_file: Mapped,
    pub params: Params,
    pub shards: Vec<Mapped>,
}

fn shard_index(name: &str) -> Option<usize> {
    let mid = name.strip_prefix("consolidated.")?.strip_suffix(".pth")?;
    if mid.is_empty() || !mid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    mid.parse().ok()
}

/// The `consolidated.NN.pth` files of `dir`, in order; refuses gaps and duplicates.
fn find_shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "read directory", e))?;
    let mut found: Vec<(usize, PathBuf)> = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(dir, "read directory", e))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if let Some(i) = shard_index(&name) {
            found.push((i, ent.path()));
        }
    }
    found.sort();
    let label = dir.display().to_string();
    if found.is_empty() {
        return Err(Error::Shards {
            dir: label,
            reason: "no consolidated.NN.pth shards".into(),
        });
    }
    let have: Vec<String> = found
        .iter()
        .map(|(_, p)| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for (want, (i, _)) in found.iter().enumerate() {
        if *i != want {
            let reason = if *i < want {
                format!("shard index {i} appears twice (found {})", have.join(", "))
            } else {
                format!(
                    "missing shard consolidated.{want:02}.pth (found {})",
                    have.join(", ")
                )
            };
            return Err(Error::Shards { dir: label, reason });
        }
    }
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

impl MetaSource {
    /// Opens a Meta directory, or a single `.pth` file with `params.json` beside it.
    pub fn open(src: &Path) -> Result<Self> {
        let (dir, shard_paths) = if src.is_dir() {
            (src.to_path_buf(), find_shards(src)?)
        } else {
            let dir = src.parent().unwrap_or(Path::new(".")).to_path_buf();
            (dir, vec![src.to_path_buf()])
        };
        let pp = dir.join("params.json");
        if !pp.is_file() {
            return Err(Error::Config {
                file: pp.display().to_string(),
                reason: "missing params.json beside the shards".into(),
            });
        }
        let params_file = Mapped::open(&pp, rel_name(&pp, &dir))?;
        let params = parse_params(&params_file.map, &params_file.label())?;
        let shards = shard_paths
            .iter()
            .map(|p| Mapped::open(p, rel_name(p, &dir)))
            .collect::<Result<_>>()?;
        Ok(MetaSource {
            dir,
            params_file,
            params,
            shards,
        })
    }

    /// The tokenizer: `explicit`, else `tokenizer.model` in the directory or its parent.
    pub fn tokenizer_path(&self, explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        let here = self.dir.join("tokenizer.model");
        if here.is_file() {
            return Ok(here);
        }
        if let Some(up) = self.dir.parent().map(|p| p.join("tokenizer.model"))
            && up.is_file()
        {
            return Ok(up);
        }
        Err(Error::Tokenizer {
            file: self.dir.display().to_string(),
            reason: "no tokenizer.model in the checkpoint directory or its parent; pass its path explicitly".into(),
        })
    }
}

fn layout_for(name: &str) -> Layout {
    let leaf = name.strip_suffix(".weight").unwrap_or(name);
    let leaf = leaf.rsplit('.').next().unwrap_or(leaf);
    match leaf {
        "tok_embeddings" | "wo" | "w2" => Layout::Concat1,
        "attention_norm" | "ffn_norm" | "norm" => Layout::Replicated,
        _ => Layout::Concat0,
    }
}

/// Merges the loaded shards into the output tensors and the model config.
pub(crate) fn plan_tensors<'a>(
    src: &MetaSource,
    shards: &'a [Vec<PthTensor<'a>>],
    context_length: Option<u32>,
) -> Result<(ModelConfig, Vec<Planned<'a>>)> {
    let dir = src.dir.display().to_string();
    let files: Vec<String> = src.shards.iter().map(Mapped::label).collect();
    let maps: Vec<HashMap<&str, &'a PthTensor<'a>>> = shards
        .iter()
        .map(|s| s.iter().map(|t| (t.name.as_str(), t)).collect())
        .collect();
    // Every shard must hold the same names.
    for (k, m) in maps.iter().enumerate().skip(1) {
        for &n in maps[0].keys() {
            if !m.contains_key(n) {
                return Err(Error::MissingTensor {
                    file: files[k].clone(),
                    tensor: n.to_owned(),
                });
            }
        }
        for &n in m.keys() {
            if !maps[0].contains_key(n) {
                return Err(Error::UnexpectedTensor {
                    file: files[k].clone(),
                    tensor: n.to_owned(),
                });
            }
        }
    }
    let p = &src.params;
    let emb = maps[0]
        .get("tok_embeddings.weight")
        .ok_or_else(|| Error::MissingTensor {
            file: files[0].clone(),
            tensor: "tok_embeddings.weight".into(),
        })?;
    let vocab = match p.vocab_size {
        Some(v) => v,
        None => emb
            .shape
            .first()
            .and_then(|&v| u32::try_from(v).ok())
            .ok_or_else(|| Error::Config {
                file: src.params_file.label(),
                reason: format!(
                    "vocab_size is -1 and tok_embeddings.weight has shape {:?}",
                    emb.shape
                ),
            })?,
    };
    let ffn = meta_ffn_dim(u64::from(p.dim), p.multiple_of, p.ffn_dim_multiplier);
    let config = ModelConfig {
        arch: "llama".into(),
        dim: p.dim,
        n_layers: p.n_layers,
        n_heads: p.n_heads,
        n_kv_heads: p.n_kv_heads,
        ffn_dim: u32::try_from(ffn).map_err(|_| Error::Config {
            file: src.params_file.label(),
            reason: format!("ffn size {ffn} is out of range"),
        })?,
        vocab_size: vocab,
        norm_eps: p.norm_eps,
        rope_theta: p.rope_theta,
        context_length: context_length.unwrap_or(4096),
        tied_output: false,
    };
    config.validate().map_err(|reason| Error::Config {
        file: src.params_file.label(),
        reason,
    })?;
    check_layer_count(
        config.n_layers,
        maps[0].keys().copied(),
        "n_layers",
        &src.params_file.label(),
    )?;
    let mut names: Vec<&&str> = maps[0].keys().collect();
    names.sort();
    for &&n in &names {
        let known = match Role::parse(n) {
            Some(Role::Output) => !config.tied_output,
            Some(_) => true,
            None => n == "rope.freqs",
        };
        if !known {
            return Err(Error::UnexpectedTensor {
                file: files[0].clone(),
                tensor: n.to_owned(),
            });
        }
    }
    let n_shards = shards.len();
    // The layer count agrees with the tensors (checked above), so this is bounded by them.
    let mut out = Vec::with_capacity(config.tensor_count() as usize);
    for (name, want) in config.tensors() {
        let layout = layout_for(&name);
        let t0 = maps[0]
            .get(name.as_str())
            .ok_or_else(|| Error::MissingTensor {
                file: files[0].clone(),
                tensor: name.clone(),
            })?;
        let mut pieces = Vec::with_capacity(n_shards);
        for (k, m) in maps.iter().enumerate() {
            let t = m[name.as_str()];
            if t.shape != t0.shape || t.dtype != t0.dtype {
                return Err(Error::ShardMismatch {
                    file: files[k].clone(),
                    tensor: name.clone(),
                    expected: t0.shape.as_slice().into(),
                    expected_dtype: t0.dtype,
                    found: t.shape.as_slice().into(),
                    found_dtype: t.dtype,
                });
            }
            pieces.push(Piece {
                file: files[k].clone(),
                shape: t.shape.clone(),
                src: PieceSrc::Pth(t),
            });
        }
        let (merged, split) = match layout {
            Layout::Concat0 if !t0.shape.is_empty() => {
                let mut s = t0.shape.clone();
                s[0] = s[0].saturating_mul(n_shards as u64);
                (s, Some((n_shards, 0)))
            }
            Layout::Concat1 if t0.shape.len() == 2 => {
                let mut s = t0.shape.clone();
                s[1] = s[1].saturating_mul(n_shards as u64);
                (s, Some((n_shards, 1)))
            }
            _ => (t0.shape.clone(), None),
        };
        if merged != want {
            let file = if n_shards == 1 {
                files[0].clone()
            } else {
                dir.clone()
            };
            return Err(shape_error(&file, &name, &want, &merged, split));
        }
        out.push(Planned {
            name,
            source_name: None,
            shape: merged,
            dtype: t0.dtype,
            layout,
            pieces,
        });
    }
    Ok((config, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffn_formula_matches_meta_models() {
        assert_eq!(meta_ffn_dim(4096, 256, None), 11008); // 7B
        assert_eq!(meta_ffn_dim(5120, 256, None), 13824); // 13B
        assert_eq!(meta_ffn_dim(8192, 4096, Some(1.3)), 28672); // 70B
        assert_eq!(meta_ffn_dim(4096, 1024, Some(1.3)), 14336); // Llama 3 8B
    }

    #[test]
    fn params_of_llama2_70b() {
        let p = parse_params(
            br#"{"dim": 8192, "multiple_of": 4096, "ffn_dim_multiplier": 1.3, "n_heads": 64, "n_kv_heads": 8, "n_layers": 80, "norm_eps": 1e-05, "vocab_size": -1}"#,
            "params.json",
        )
        .unwrap();
        assert_eq!(p.n_kv_heads, 8);
        assert_eq!(p.vocab_size, None);
        assert_eq!(p.rope_theta, 10000.0);
        assert_eq!(p.ffn_dim_multiplier, Some(1.3));
        let e = parse_params(br#"{"dim": 8, "n_layers": 1}"#, "params.json").unwrap_err();
        assert!(e.to_string().contains("n_heads"), "{e}");
    }

    #[test]
    fn shard_names() {
        assert_eq!(shard_index("consolidated.00.pth"), Some(0));
        assert_eq!(shard_index("consolidated.07.pth"), Some(7));
        assert_eq!(shard_index("consolidated..pth"), None);
        assert_eq!(shard_index("consolidated.0a.pth"), None);
    }
}
