//! GGUF (llama architecture) → `.lpk`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use llamapack_format::{
    DType, LpkWriter, Metadata, ModelConfig, Provenance, SourceFile, TokenizerData, TokenizerKind,
};
use sha2::{Digest, Sha256};

use super::Error;
use super::dequant::{dequantize_row, supported};
use super::names::gguf_to_meta;
use super::reader::{GgufFile, TensorInfo};
use super::types::GgmlType;
use super::value::Value;

/// Options of [`import_gguf`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// Type of the tensors that must be dequantized (activation-only types such as `q8_1`): f16 (the
    /// default), bf16 or f32.
    pub dequant_to: DType,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            dequant_to: DType::F16,
        }
    }
}

/// What [`import_gguf`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportSummary {
    /// The file written.
    pub out: PathBuf,
    /// The model config.
    pub config: ModelConfig,
    /// Tensors written.
    pub tensors: usize,
    /// Tensors whose bytes were copied unchanged.
    pub kept: usize,
    /// Tensors dequantized, with their GGUF type.
    pub dequantized: Vec<(String, GgmlType)>,
    /// The input, as recorded in provenance.
    pub source: SourceFile,
    /// Things worth telling the user.
    pub notes: Vec<String>,
}

/// Reads metadata of one GGUF file with errors that name it.
struct Keys<'f, 'a> {
    f: &'f GgufFile<'a>,
}

impl Keys<'_, '_> {
    fn bad(&self, key: &str, reason: String) -> Error {
        Error::BadMetadata {
            file: self.f.file_name().to_owned(),
            key: key.to_owned(),
            reason,
        }
    }

    fn opt_u32(&self, key: &str) -> Result<Option<u32>, Error> {
        self.f
            .get(key)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        self.bad(
                            key,
                            format!("expected a non-negative 32-bit integer, found {v:?}"),
                        )
                    })
            })
            .transpose()
    }

    fn u32(&self, key: &str) -> Result<u32, Error> {
        self.opt_u32(key)?.ok_or_else(|| Error::MissingKey {
            file: self.f.file_name().to_owned(),
            key: key.to_owned(),
        })
    }

    fn opt_f32(&self, key: &str) -> Result<Option<f32>, Error> {
        self.f
            .get(key)
            .map(|v| {
                v.as_f32()
                    .ok_or_else(|| self.bad(key, format!("expected a float, found {v:?}")))
            })
            .transpose()
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, Error> {
        self.f
            .get(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| self.bad(key, format!("expected a bool, found {v:?}")))
            })
            .transpose()
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>, Error> {
        self.f
            .get(key)
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    self.bad(
                        key,
                        format!("expected a string, found {:?}", v.value_type()),
                    )
                })
            })
            .transpose()
    }

    fn opt_strings(&self, key: &str) -> Result<Option<Vec<String>>, Error> {
        self.f
            .get(key)
            .map(|v| {
                v.as_array()
                    .and_then(|a| a.as_strings())
                    .map(<[String]>::to_vec)
                    .ok_or_else(|| self.bad(key, "expected an array of strings".into()))
            })
            .transpose()
    }
}

fn config_of(k: &Keys<'_, '_>, vocab_rows: u32, tied: bool) -> Result<ModelConfig, Error> {
    let file = k.f.file_name();
    let n_heads = k.u32("llama.attention.head_count")?;
    let cfg = ModelConfig {
        arch: "llama".into(),
        dim: k.u32("llama.embedding_length")?,
        n_layers: k.u32("llama.block_count")?,
        n_heads,
        n_kv_heads: k
            .opt_u32("llama.attention.head_count_kv")?
            .unwrap_or(n_heads),
        ffn_dim: k.u32("llama.feed_forward_length")?,
        vocab_size: vocab_rows,
        norm_eps: k
            .opt_f32("llama.attention.layer_norm_rms_epsilon")?
            .ok_or_else(|| Error::MissingKey {
                file: file.to_owned(),
                key: "llama.attention.layer_norm_rms_epsilon".into(),
            })?,
        rope_theta: k.opt_f32("llama.rope.freq_base")?.unwrap_or(10000.0),
        context_length: k.u32("llama.context_length")?,
        tied_output: tied,
    };
    if let Some(v) = k.opt_u32("llama.vocab_size")?
        && v != vocab_rows
    {
        return Err(k.bad(
            "llama.vocab_size",
            format!("{v}, but token_embd.weight has {vocab_rows} rows"),
        ));
    }
    cfg.validate().map_err(|reason| Error::Unsupported {
        file: file.to_owned(),
        reason: format!("invalid hyper-parameters: {reason}"),
    })?;
    if let Some(rot) = k.opt_u32("llama.rope.dimension_count")?
        && rot != cfg.head_dim()
    {
        return Err(Error::Unsupported {
            file: file.to_owned(),
            reason: format!(
                "rope.dimension_count {rot} differs from the head size {} (partial rotary embeddings)",
                cfg.head_dim()
            ),
        });
    }
    for key in ["llama.rope.scaling.type", "llama.rope.scaling.factor"] {
        if k.f.get(key).is_some() {
            return Err(Error::Unsupported {
                file: file.to_owned(),
                reason: format!("`{key}` is set; rope scaling is not supported"),
            });
        }
    }
    Ok(cfg)
}

fn tokenizer_of(k: &Keys<'_, '_>) -> Result<(TokenizerData, Vec<String>), Error> {
    let file = k.f.file_name();
    let mut notes = Vec::new();
    let model = k
        .opt_str("tokenizer.ggml.model")?
        .ok_or_else(|| Error::MissingKey {
            file: file.to_owned(),
            key: "tokenizer.ggml.model".into(),
        })?;
    let kind = match model.as_str() {
        "llama" => TokenizerKind::SentencePiece,
        "gpt2" => TokenizerKind::Gpt2Bpe,
        other => {
            return Err(Error::Unsupported {
                file: file.to_owned(),
                reason: format!("tokenizer model `{other}` (expected llama or gpt2)"),
            });
        }
    };
    let spm = kind == TokenizerKind::SentencePiece;
    let pieces = k
        .opt_strings("tokenizer.ggml.tokens")?
        .ok_or_else(|| Error::MissingKey {
            file: file.to_owned(),
            key: "tokenizer.ggml.tokens".into(),
        })?;
    let n = pieces.len();
    let scores = match k.f.get("tokenizer.ggml.scores") {
        None => vec![0.0; n],
        Some(v) => v
            .as_array()
            .and_then(super::value::Array::to_f32s)
            .filter(|s| s.len() == n)
            .ok_or_else(|| k.bad("tokenizer.ggml.scores", format!("expected {n} floats")))?,
    };
    let types = match k.f.get("tokenizer.ggml.token_type") {
        None => vec![1; n],
        Some(v) => {
            let ints = v
                .as_array()
                .and_then(super::value::Array::to_i64s)
                .filter(|s| s.len() == n)
                .ok_or_else(|| {
                    k.bad(
                        "tokenizer.ggml.token_type",
                        format!("expected {n} integers"),
                    )
                })?;
            let mut undefined = 0;
            let types = ints
                .iter()
                .enumerate()
                .map(|(i, &t)| match t {
                    1..=6 => Ok(t as u8),
                    0 => {
                        undefined += 1;
                        Ok(1)
                    }
                    _ => Err(k.bad(
                        "tokenizer.ggml.token_type",
                        format!("token {i} has type {t} (expected 0 to 6)"),
                    )),
                })
                .collect::<Result<Vec<u8>, Error>>()?;
            if undefined > 0 {
                notes.push(format!(
                    "{undefined} tokens of undefined type taken as normal"
                ));
            }
            types
        }
    };
    let merges = if spm {
        Vec::new()
    } else {
        k.opt_strings("tokenizer.ggml.merges")?.unwrap_or_default()
    };
    let byte_fallback = spm && types.contains(&6);
    let data = TokenizerData {
        kind,
        pieces,
        scores,
        types,
        bos_id: k.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_id: k.opt_u32("tokenizer.ggml.eos_token_id")?,
        unk_id: k.opt_u32("tokenizer.ggml.unknown_token_id")?,
        pad_id: k.opt_u32("tokenizer.ggml.padding_token_id")?,
        add_bos: k.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(spm),
        add_eos: k.opt_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false),
        add_dummy_prefix: k
            .opt_bool("tokenizer.ggml.add_space_prefix")?
            .unwrap_or(spm),
        remove_extra_whitespaces: k
            .opt_bool("tokenizer.ggml.remove_extra_whitespaces")?
            .unwrap_or(false),
        byte_fallback,
        merges,
        pre: k.opt_str("tokenizer.ggml.pre")?,
        chat_template: k.opt_str("tokenizer.chat_template")?,
    };
    data.validate().map_err(|reason| Error::BadMetadata {
        file: file.to_owned(),
        key: "tokenizer.ggml.tokens".into(),
        reason,
    })?;
    Ok((data, notes))
}

/// The shape (outermost first) each Meta tensor must have.
/// Streams a dequantized tensor into `w` as `to`, a few rows at a time.
fn write_dequantized(
    w: &mut LpkWriter,
    name: &str,
    t: &TensorInfo,
    data: &[u8],
    to: DType,
) -> Result<u64, Error> {
    let shape = t.shape();
    let row = t.dims[0] as usize;
    let row_bytes = (t.ty.tensor_bytes(&t.dims[..1]).expect("validated")) as usize;
    let mut sink = w.begin_tensor(name, to, &shape)?;
    let mut x = vec![0f32; row];
    let mut out = Vec::with_capacity(row * 4);
    let mut overflow = 0u64;
    for src in data.chunks_exact(row_bytes) {
        let ok = dequantize_row(t.ty, src, &mut x);
        debug_assert!(ok, "caller checked support");
        out.clear();
        match to {
            DType::F32 => out.extend(x.iter().flat_map(|v| v.to_le_bytes())),
            DType::BF16 => out.extend(x.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes())),
            _ => out.extend(x.iter().flat_map(|&v| {
                let h = f16::from_f32(v);
                if h.is_infinite() && v.is_finite() {
                    overflow += 1;
                }
                h.to_le_bytes()
            })),
        }
        sink.write(&out)?;
    }
    sink.finish()?;
    Ok(overflow)
}

/// A llama-architecture GGUF file read as a model: what [`import_gguf`] writes and
/// [`super::open_gguf`] serves in place.
pub(super) struct GgufModel<'f> {
    /// Hyper-parameters.
    pub config: ModelConfig,
    /// The vocabulary.
    pub tokenizer: TokenizerData,
    /// Things worth telling the user.
    pub notes: Vec<String>,
    /// Every tensor in Meta's order: its Meta name, its GGUF entry, and the dtype its bytes
    /// are kept as (`None`: an activation-only type that must be dequantized).
    pub plan: Vec<(String, &'f TensorInfo, Option<DType>)>,
}

/// Reads the config, tokenizer and tensor plan of `f`, checking every tensor (names, shapes,
/// types) against the hyper-parameters.
pub(super) fn read_model<'f>(f: &'f GgufFile<'_>) -> Result<GgufModel<'f>, Error> {
    let k = Keys { f };
    let label = f.file_name().to_owned();
    match k.opt_str("general.architecture")? {
        Some(a) if a == "llama" => {}
        Some(a) => {
            return Err(Error::Unsupported {
                file: label,
                reason: format!("architecture `{a}` (only llama is supported)"),
            });
        }
        None => {
            return Err(Error::MissingKey {
                file: label,
                key: "general.architecture".into(),
            });
        }
    }

    // GGUF name → Meta name for every tensor; unknown tensors are an error, not silently lost.
    let mut by_meta: BTreeMap<String, &TensorInfo> = BTreeMap::new();
    for t in f.tensors() {
        let m = gguf_to_meta(&t.name).ok_or_else(|| Error::BadTensor {
            file: label.clone(),
            tensor: t.name.clone(),
            reason: "not a tensor of llama.cpp's llama architecture that llamapack knows".into(),
        })?;
        by_meta.insert(m, t);
    }
    let embd = by_meta
        .get("tok_embeddings.weight")
        .ok_or_else(|| Error::BadTensor {
            file: label.clone(),
            tensor: "token_embd.weight".into(),
            reason: "missing".into(),
        })?;
    let vocab_rows = u32::try_from(embd.shape()[0]).unwrap_or(u32::MAX);
    let tied = !by_meta.contains_key("output.weight");
    let config = config_of(&k, vocab_rows, tied)?;
    let (tokenizer, mut notes) = tokenizer_of(&k)?;
    if tokenizer.len() > config.vocab_size as usize {
        return Err(Error::BadMetadata {
            file: label,
            key: "tokenizer.ggml.tokens".into(),
            reason: format!(
                "{} tokens for {} embedding rows",
                tokenizer.len(),
                config.vocab_size
            ),
        });
    }
    if tokenizer.len() < config.vocab_size as usize {
        notes.push(format!(
            "{} tokens for a vocabulary of {}; ids {}.. have no text",
            tokenizer.len(),
            config.vocab_size,
            tokenizer.len()
        ));
    }

    // Check every tensor (names, shapes, types) before writing anything; the layer count
    // first, so that a hostile one costs nothing.
    if let Some(reason) = crate::plan::layer_count_mismatch(
        config.n_layers,
        by_meta.keys().map(String::as_str),
        "llama.block_count",
    ) {
        return Err(Error::BadMetadata {
            file: label,
            key: "llama.block_count".into(),
            reason,
        });
    }
    let mut plan: Vec<(String, &TensorInfo, Option<DType>)> = Vec::new();
    for role in config.roles() {
        let meta_name = role.name();
        let Some(&t) = by_meta.get(&meta_name) else {
            return Err(Error::BadTensor {
                file: label,
                tensor: super::names::meta_to_gguf(&meta_name).unwrap_or(meta_name),
                reason: "missing".into(),
            });
        };
        let want = config.shape_of(role);
        if t.shape() != want {
            return Err(Error::BadTensor {
                file: label,
                tensor: t.name.clone(),
                reason: format!(
                    "shape {:?} (innermost first), expected {:?} for the model's hyper-parameters",
                    t.dims,
                    want.iter().rev().collect::<Vec<_>>()
                ),
            });
        }
        let keep = t.ty.to_dtype();
        if keep.is_none() && !supported(t.ty) {
            return Err(Error::UnsupportedType {
                file: label,
                tensor: t.name.clone(),
                ty: t.ty.name().to_owned(),
            });
        }
        plan.push((meta_name, t, keep));
    }
    if plan.len() != by_meta.len() {
        let extra = by_meta
            .values()
            .find(|t| !plan.iter().any(|(_, p, _)| p.name == t.name))
            .map(|t| t.name.clone())
            .unwrap_or_default();
        return Err(Error::BadTensor {
            file: label,
            tensor: extra,
            reason: format!("beyond the {} layers of the model", config.n_layers),
        });
    }
    Ok(GgufModel {
        config,
        tokenizer,
        notes,
        plan,
    })
}

/// What a `.lpk`'s provenance notes record of the GGUF file `f`: its version, `general.name`,
/// `general.file_type` and the `notes` (warnings).
pub(super) fn provenance_notes(
    f: &GgufFile<'_>,
    notes: &[String],
) -> BTreeMap<String, serde_json::Value> {
    let mut prov_notes = BTreeMap::new();
    prov_notes.insert("gguf_version".into(), f.version().into());
    if let Some(Value::String(n)) = f.get("general.name") {
        prov_notes.insert("gguf_general_name".into(), n.as_str().into());
    }
    if let Some(ft) = f.get("general.file_type").and_then(Value::as_u64) {
        prov_notes.insert("gguf_file_type".into(), ft.into());
    }
    if !notes.is_empty() {
        prov_notes.insert("warnings".into(), notes.to_vec().into());
    }
    prov_notes
}

/// Converts the llama-architecture GGUF file at `path` into the `.lpk` file `out`.
///
/// Tensors in a type a `.lpk` stores (every block format of the dtype table) are copied byte for
/// byte; an activation-only type (`q8_1`) is dequantized to [`ImportOptions::dequant_to`]; any
/// other type is an error naming the tensor and its type. Nothing appears at `out` unless the whole import succeeds.
pub fn import_gguf(path: &Path, out: &Path, opts: &ImportOptions) -> Result<ImportSummary, Error> {
    if !matches!(opts.dequant_to, DType::F32 | DType::F16 | DType::BF16) {
        return Err(Error::Write {
            file: out.display().to_string(),
            item: "dequantized tensors".into(),
            reason: format!("{} is not f32, f16 or bf16", opts.dequant_to),
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::source::check_output(out, &[path]).map_err(|e| Error::Open(Box::new(e)))?;
    let mapped =
        crate::source::Mapped::open(path, name.clone()).map_err(|e| Error::Open(Box::new(e)))?;
    let label = mapped.label();
    let f = GgufFile::parse(&mapped.map, label.clone())?;
    let model = read_model(&f)?;
    let (config, tokenizer, mut notes, plan) =
        (model.config, model.tokenizer, model.notes, model.plan);

    let mut w = LpkWriter::create(out)?;
    let mut dequantized = Vec::new();
    let mut kept = 0;
    for (meta_name, t, keep) in &plan {
        let data = f.tensor_data(t);
        if let Some(d) = keep {
            w.write_tensor(meta_name, *d, &t.shape(), data)?;
            kept += 1;
        } else {
            let overflow = write_dequantized(&mut w, meta_name, t, data, opts.dequant_to)?;
            if overflow > 0 {
                notes.push(format!(
                    "`{meta_name}`: {overflow} values beyond the f16 range became infinite"
                ));
            }
            dequantized.push((meta_name.clone(), t.ty));
        }
    }

    let mut h = Sha256::new();
    for c in mapped.map.chunks(1 << 22) {
        h.update(c);
    }
    let sha256 = h.finalize().iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    });
    let source = SourceFile {
        name,
        sha256,
        bytes: mapped.map.len() as u64,
    };
    let mut prov_notes = provenance_notes(&f, &notes);
    if !dequantized.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = dequantized
            .iter()
            .map(|(n, ty)| (n.clone(), format!("{ty} -> {}", opts.dequant_to).into()))
            .collect();
        prov_notes.insert("dequantized".into(), m.into());
    }
    let meta = Metadata {
        config: config.clone(),
        tokenizer,
        provenance: Provenance {
            tool: llamapack_format::TOOL_VERSION.into(),
            source_format: "gguf".into(),
            sources: vec![source.clone()],
            notes: prov_notes,
            ..Provenance::default()
        },
    };
    let out = w.finish(&meta)?;
    Ok(ImportSummary {
        out,
        config,
        tensors: plan.len(),
        kept,
        dequantized,
        source,
        notes,
    })
}
