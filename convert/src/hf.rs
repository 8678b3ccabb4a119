//! Hugging Face Llama checkpoints: `config.json` and `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`), read with the `safetensors` crate over an mmap.
//!
//! HF names map to Meta's, and `q_proj`/`k_proj` rows go back from HF's rotary order to
//! Meta's (see [`crate::permute`]), so a `.lpk` always holds Meta's layout.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use llamapack_format::ModelConfig;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::dtype::SourceDType;
use crate::error::{Error, Result};
use crate::plan::{Layout, Piece, PieceSrc, Planned, check_layer_count, shape_error};
use crate::source::{Mapped, rel_name};

/// An HF checkpoint on disk, mapped.
#[derive(Debug)]
pub(crate) struct HfSource {
    pub dir: PathBuf,
    pub config_file: Mapped,
    pub config: Value,
    pub index: Option<Mapped>,
    pub weights: Vec<Mapped>,
}

impl HfSource {
    /// Every tensor of every safetensors file, in file order.
    pub(crate) fn tensors(&self) -> Result<Vec<StTensor<'_>>> {
        let per_file: Vec<Vec<StTensor<'_>>> = self
            .weights
            .iter()
            .map(load_safetensors)
            .collect::<Result<_>>()?;
        Ok(per_file.into_iter().flatten().collect())
    }
}

/// The dtype of a safetensors tensor, if this crate knows it.
pub(crate) fn st_dtype(d: Dtype) -> Option<SourceDType> {
    Some(match d {
        Dtype::F64 => SourceDType::F64,
        Dtype::F32 => SourceDType::F32,
        Dtype::F16 => SourceDType::F16,
        Dtype::BF16 => SourceDType::BF16,
        Dtype::I64 => SourceDType::I64,
        Dtype::I32 => SourceDType::I32,
        Dtype::I16 => SourceDType::I16,
        Dtype::I8 => SourceDType::I8,
        Dtype::U8 => SourceDType::U8,
        Dtype::BOOL => SourceDType::Bool,
        _ => return None,
    })
}

/// One tensor of a safetensors file.
#[derive(Clone, Debug)]
pub(crate) struct StTensor<'a> {
    pub name: String,
    pub dtype: SourceDType,
    pub shape: Vec<u64>,
    pub data: &'a [u8],
    pub file: String,
}

/// Reads the header of a safetensors file (the crate checks every offset against the data).
pub(crate) fn load_safetensors<'a>(m: &'a Mapped) -> Result<Vec<StTensor<'a>>> {
    let file = m.label();
    let st = SafeTensors::deserialize(&m.map).map_err(|e| Error::Safetensors {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    let mut out: Vec<StTensor<'a>> = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let dtype = st_dtype(v.dtype()).ok_or_else(|| Error::Tensor {
                file: file.clone(),
                tensor: name.clone(),
                reason: format!("unsupported dtype {:?}", v.dtype()),
            })?;
            Ok(StTensor {
                dtype,
                shape: v.shape().iter().map(|&d| d as u64).collect(),
                data: v.data(),
                file: file.clone(),
                name,
            })
        })
        .collect::<Result<_>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn is_plain_name(n: &str) -> bool {
    !n.is_empty() && !n.contains(['/', '\\']) && n != "." && n != ".."
}

impl HfSource {
    /// Opens an HF directory, or one `.safetensors` file with `config.json` beside it.
    pub fn open(src: &Path) -> Result<Self> {
        let (dir, single) = if src.is_dir() {
            (src.to_path_buf(), None)
        } else {
            (
                src.parent().unwrap_or(Path::new(".")).to_path_buf(),
                Some(src.to_path_buf()),
            )
        };
        let cp = dir.join("config.json");
        if !cp.is_file() {
            return Err(Error::Config {
                file: cp.display().to_string(),
                reason: "missing config.json beside the weights".into(),
            });
        }
        let config_file = Mapped::open(&cp, rel_name(&cp, &dir))?;
        let config: Value =
            serde_json::from_slice(&config_file.map).map_err(|e| Error::Config {
                file: config_file.label(),
                reason: format!("not json: {e}"),
            })?;
        let ip = dir.join("model.safetensors.index.json");
        let (index, weight_paths) = if let Some(s) = single {
            (None, vec![s])
        } else if ip.is_file() {
            let index = Mapped::open(&ip, rel_name(&ip, &dir))?;
            let files = index_files(&index)?;
            let paths = files.iter().map(|f| dir.join(f)).collect();
            (Some(index), paths)
        } else if dir.join("model.safetensors").is_file() {
            (None, vec![dir.join("model.safetensors")])
        } else {
            return Err(Error::UnknownSource {
                path: dir.clone(),
                reason: "no model.safetensors or model.safetensors.index.json (only safetensors checkpoints are supported)".into(),
            });
        };
        let weights = weight_paths
            .iter()
            .map(|p| Mapped::open(p, rel_name(p, &dir)))
            .collect::<Result<_>>()?;
        Ok(HfSource {
            dir,
            config_file,
            config,
            index,
            weights,
        })
    }
}

/// The shard file names an index lists, sorted and de-duplicated.
fn index_files(index: &Mapped) -> Result<Vec<String>> {
    let err = |reason: String| Error::Config {
        file: index.label(),
        reason,
    };
    let v: Value = serde_json::from_slice(&index.map).map_err(|e| err(format!("not json: {e}")))?;
    let map = v
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| err("no `weight_map` object".into()))?;
    let mut files = BTreeSet::new();
    for (t, f) in map {
        let f = f.as_str().filter(|f| is_plain_name(f)).ok_or_else(|| {
            err(format!(
                "tensor `{t}` maps to {f}, not a file name in this directory"
            ))
        })?;
        files.insert(f.to_owned());
    }
    Ok(files.into_iter().collect())
}

fn cfg_u32(c: &Value, key: &str, file: &str) -> Result<Option<u32>> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| Error::Config {
                file: file.to_owned(),
                reason: format!("`{key}` = {x} is not a positive integer"),
            }),
    }
}

/// `config.json` → [`ModelConfig`].
pub fn parse_config(c: &Value, file: &str, context_length: Option<u32>) -> Result<ModelConfig> {
    let err = |reason: String| Error::Config {
        file: file.to_owned(),
        reason,
    };
    let need = |k: &str| cfg_u32(c, k, file)?.ok_or_else(|| err(format!("missing `{k}`")));
    let model_type = c.get("model_type").and_then(Value::as_str).unwrap_or("");
    if model_type != "llama" {
        return Err(err(format!(
            "model_type `{model_type}` is not supported (only `llama`)"
        )));
    }
    match c.get("rope_scaling") {
        None | Some(Value::Null) => {}
        Some(s) => return Err(err(format!("rope_scaling {s} is not supported"))),
    }
    // transformers ≥ 5 nests RoPE settings: `"rope_parameters": {"rope_theta": …, "rope_type": …}`.
    let rope = c.get("rope_parameters").filter(|v| !v.is_null());
    if let Some(t) = rope
        .and_then(|r| r.get("rope_type"))
        .and_then(Value::as_str)
        .filter(|&t| t != "default")
    {
        return Err(err(format!(
            "rope_type `{t}` is not supported (only `default`)"
        )));
    }
    for k in ["attention_bias", "mlp_bias"] {
        if c.get(k).and_then(Value::as_bool) == Some(true) {
            return Err(err(format!("`{k}: true` is not supported")));
        }
    }
    let dim = need("hidden_size")?;
    let n_heads = need("num_attention_heads")?;
    if let Some(hd) = cfg_u32(c, "head_dim", file)?
        && (n_heads == 0 || hd != dim / n_heads)
    {
        return Err(err(format!(
            "head_dim {hd} is not hidden_size / num_attention_heads ({dim} / {n_heads})"
        )));
    }
    let num = |k: &str, default: f64| -> Result<f64> {
        match c.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x
                .as_f64()
                .ok_or_else(|| err(format!("`{k}` = {x} is not a number"))),
        }
    };
    let cfg = ModelConfig {
        arch: "llama".into(),
        dim,
        n_layers: need("num_hidden_layers")?,
        n_heads,
        n_kv_heads: cfg_u32(c, "num_key_value_heads", file)?.unwrap_or(n_heads),
        ffn_dim: need("intermediate_size")?,
        vocab_size: need("vocab_size")?,
        norm_eps: num("rms_norm_eps", 1e-6)? as f32,
        rope_theta: match rope.and_then(|r| r.get("rope_theta")) {
            Some(x) if c.get("rope_theta").is_none() => x.as_f64().ok_or_else(|| {
                err(format!(
                    "`rope_parameters.rope_theta` = {x} is not a number"
                ))
            })? as f32,
            _ => num("rope_theta", 10000.0)? as f32,
        },
        context_length: match context_length {
            Some(n) => n,
            None => cfg_u32(c, "max_position_embeddings", file)?.unwrap_or(2048),
        },
        tied_output: c
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    cfg.validate().map_err(err)?;
    Ok(cfg)
}

/// HF name → (Meta name, whether its rows are in HF's rotary order). `None`: not a Llama weight.
pub(crate) fn meta_name(hf: &str) -> Option<(String, bool)> {
    match hf {
        "model.embed_tokens.weight" => return Some(("tok_embeddings.weight".into(), false)),
        "model.norm.weight" => return Some(("norm.weight".into(), false)),
        "lm_head.weight" => return Some(("output.weight".into(), false)),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, leaf) = rest.split_once('.')?;
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (meta, permuted) = match leaf {
        "self_attn.q_proj.weight" => ("attention.wq.weight", true),
        "self_attn.k_proj.weight" => ("attention.wk.weight", true),
        "self_attn.v_proj.weight" => ("attention.wv.weight", false),
        "self_attn.o_proj.weight" => ("attention.wo.weight", false),
        "mlp.gate_proj.weight" => ("feed_forward.w1.weight", false),
        "mlp.down_proj.weight" => ("feed_forward.w2.weight", false),
        "mlp.up_proj.weight" => ("feed_forward.w3.weight", false),
        "input_layernorm.weight" => ("attention_norm.weight", false),
        "post_attention_layernorm.weight" => ("ffn_norm.weight", false),
        _ => return None,
    };
    Some((format!("layers.{layer}.{meta}"), permuted))
}

/// Maps the loaded safetensors to the output tensors.
pub(crate) fn plan_tensors<'a>(
    cfg: &ModelConfig,
    tensors: &'a [StTensor<'a>],
    dir: &str,
) -> Result<(Vec<Planned<'a>>, Vec<String>)> {
    let mut notes = Vec::new();
    let mut by_meta: HashMap<String, (&'a StTensor<'a>, bool)> = HashMap::new();
    for t in tensors {
        if t.name.ends_with(".rotary_emb.inv_freq") {
            continue; // a buffer older transformers saved; recomputed from rope_theta
        }
        let Some((m, permuted)) = meta_name(&t.name) else {
            return Err(Error::UnexpectedTensor {
                file: t.file.clone(),
                tensor: t.name.clone(),
            });
        };
        if m == "output.weight" && cfg.tied_output {
            notes.push("lm_head.weight ignored: tie_word_embeddings is true".to_owned());
            continue;
        }
        if let Some((prev, _)) = by_meta.insert(m, (t, permuted)) {
            return Err(Error::Tensor {
                file: t.file.clone(),
                tensor: t.name.clone(),
                reason: format!("also present in {}", prev.file),
            });
        }
    }
    check_layer_count(
        cfg.n_layers,
        by_meta.keys().map(String::as_str),
        "num_hidden_layers",
        &format!("{dir}/config.json"),
    )?;
    let head_dim = (cfg.dim / cfg.n_heads) as usize;
    let mut out = Vec::new();
    for (name, want) in cfg.tensors() {
        let Some(&(t, permuted)) = by_meta.get(&name) else {
            let hf = hf_name(&name);
            return Err(Error::MissingTensor {
                file: dir.to_owned(),
                tensor: hf,
            });
        };
        if t.shape != want {
            return Err(shape_error(&t.file, &t.name, &want, &t.shape, None));
        }
        out.push(Planned {
            name: name.clone(),
            source_name: Some(t.name.clone()),
            shape: t.shape.clone(),
            dtype: t.dtype,
            layout: if permuted {
                Layout::UnpermuteRows { head_dim }
            } else {
                Layout::Concat0
            },
            pieces: vec![Piece {
                file: t.file.clone(),
                shape: t.shape.clone(),
                src: PieceSrc::Slice(t.data),
            }],
        });
        by_meta.remove(&name);
    }
    if let Some((n, (t, _))) = by_meta.into_iter().min_by(|a, b| a.0.cmp(&b.0)) {
        // e.g. layers beyond num_hidden_layers
        return Err(Error::UnexpectedTensor {
            file: t.file.clone(),
            tensor: format!("{} (as {n})", t.name),
        });
    }
    Ok((out, notes))
}

/// Meta name → HF name (for error messages and the safetensors export).
pub(crate) fn hf_name(meta: &str) -> String {
    match meta {
        "tok_embeddings.weight" => return "model.embed_tokens.weight".into(),
        "norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let Some((layer, leaf)) = meta.strip_prefix("layers.").and_then(|r| r.split_once('.')) else {
        return meta.to_owned();
    };
    let hf = match leaf {
        "attention.wq.weight" => "self_attn.q_proj.weight",
        "attention.wk.weight" => "self_attn.k_proj.weight",
        "attention.wv.weight" => "self_attn.v_proj.weight",
        "attention.wo.weight" => "self_attn.o_proj.weight",
        "feed_forward.w1.weight" => "mlp.gate_proj.weight",
        "feed_forward.w2.weight" => "mlp.down_proj.weight",
        "feed_forward.w3.weight" => "mlp.up_proj.weight",
        "attention_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        other => other,
    };
    format!("model.layers.{layer}.{hf}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for l in ["0", "17"] {
            for leaf in [
                "self_attn.q_proj.weight",
                "self_attn.k_proj.weight",
                "mlp.gate_proj.weight",
                "post_attention_layernorm.weight",
            ] {
                let hf = format!("model.layers.{l}.{leaf}");
                let (m, _) = meta_name(&hf).unwrap();
                assert_eq!(hf_name(&m), hf);
            }
        }
        assert!(meta_name("model.layers.x.mlp.gate_proj.weight").is_none());
        assert!(meta_name("model.layers.0.self_attn.q_proj.bias").is_none());
    }

    #[test]
    fn config_defaults_and_refusals() {
        let c = serde_json::json!({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 172,
            "vocab_size": 100, "max_position_embeddings": 256, "tie_word_embeddings": true});
        let cfg = parse_config(&c, "config.json", None).unwrap();
        assert_eq!(
            (cfg.n_kv_heads, cfg.context_length, cfg.rope_theta),
            (2, 256, 10000.0)
        );
        assert!(cfg.tied_output);
        let mut v5 = c.clone();
        v5["rope_parameters"] =
            serde_json::json!({"rope_theta": 500_000.0, "rope_type": "default"});
        assert_eq!(
            parse_config(&v5, "config.json", None).unwrap().rope_theta,
            500_000.0
        );
        v5["rope_parameters"]["rope_type"] = "llama3".into();
        assert!(
            parse_config(&v5, "config.json", None)
                .unwrap_err()
                .to_string()
                .contains("llama3")
        );
        let mut bad = c.clone();
        bad["rope_scaling"] = serde_json::json!({"type": "linear", "factor": 2.0});
        assert!(parse_config(&bad, "config.json", None).is_err());
        let mut bad = c;
        bad["model_type"] = "gpt2".into();
        assert!(
            parse_config(&bad, "config.json", None)
                .unwrap_err()
                .to_string()
                .contains("gpt2")
        );
    }
}
