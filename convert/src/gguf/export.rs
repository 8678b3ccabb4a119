//! `.lpk` → GGUF for llama.cpp's `llama` architecture.

use std::path::{Path, PathBuf};

use llamapack_format::{DType, Lpk, TokenizerData, TokenizerKind};

use super::Error;
use super::dequant::dequantize_row;
use super::names::meta_to_gguf;
use super::types::GgmlType;
use super::value::{Array, Value};
use super::writer::{GgufWriter, TensorDesc};

/// Options of [`export_gguf`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// `general.name` (default: the output file's stem).
    pub name: Option<String>,
}

/// What [`export_gguf`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    /// The file written.
    pub out: PathBuf,
    /// `general.file_type` (llama.cpp's `LLAMA_FTYPE_*`).
    pub file_type: u32,
    /// Tensors written.
    pub tensors: usize,
    /// File size in bytes.
    pub bytes: u64,
    /// Tensors converted to f32 (1-D tensors stored in another type).
    pub converted_to_f32: Vec<String>,
    /// Things worth telling the user (vocabulary padding…).
    pub notes: Vec<String>,
}

/// llama.cpp's `LLAMA_FTYPE_*` for a `.lpk`: from the quantization recipe recorded in its
/// provenance when there is one, else the `llama_ftype` column of the dtype holding most
/// elements of the 2-D tensors (q4_k with q6_k beside it reads as llama.cpp's `Q4_K_M`).
pub fn file_type_of<B: AsRef<[u8]>>(lpk: &Lpk<B>) -> u32 {
    let recipe = lpk
        .provenance()
        .quantization
        .as_ref()
        .and_then(|q| q.get("recipe"))
        .and_then(serde_json::Value::as_str);
    if let Some(ftype) = recipe.and_then(llamapack_quantize::recipe::llama_ftype) {
        return ftype;
    }
    let mut counts: Vec<(DType, u64)> = Vec::new();
    for t in lpk.tensors().filter(|t| t.shape.len() >= 2) {
        let n: u64 = t.shape.iter().product();
        match counts.iter_mut().find(|(d, _)| *d == t.dtype) {
            Some((_, c)) => *c += n,
            None => counts.push((t.dtype, n)),
        }
    }
    // Most elements first; ties broken by dtype order, so the choice is deterministic.
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let has_q6k = counts.iter().any(|(d, _)| *d == DType::Q6K);
    match counts.first().map(|(d, _)| *d) {
        Some(DType::Q4K) if has_q6k => 15,
        Some(d) => d.info().llama_ftype.unwrap_or(0),
        None => 0,
    }
}

/// The `quantize.imatrix.*` keys llama-quantize writes, from the imatrix recorded in the
/// `.lpk`'s quantization provenance (none when it was quantized without one).
fn imatrix_kvs<B: AsRef<[u8]>>(lpk: &Lpk<B>) -> Vec<(String, Value)> {
    let Some(im) = lpk
        .provenance()
        .quantization
        .as_ref()
        .and_then(|q| q.get("imatrix"))
        .filter(|v| v.is_object())
    else {
        return Vec::new();
    };
    let int = |k: &str| {
        im.get(k)
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| i32::try_from(v).ok())
    };
    let mut out = Vec::new();
    if let Some(file) = im.get("file").and_then(serde_json::Value::as_str) {
        out.push(kv("quantize.imatrix.file", file));
    }
    // llama-quantize records the first dataset only
    if let Some(d) = im
        .get("datasets")
        .and_then(|d| d.get(0))
        .and_then(serde_json::Value::as_str)
    {
        out.push(kv("quantize.imatrix.dataset", d));
    }
    if let Some(n) = int("entries") {
        out.push(("quantize.imatrix.entries_count".into(), Value::I32(n)));
    }
    if let Some(n) = int("chunk_count").filter(|&n| n > 0) {
        out.push(("quantize.imatrix.chunks_count".into(), Value::I32(n)));
    }
    out
}

fn kv(key: &str, v: impl Into<Value>) -> (String, Value) {
    (key.to_owned(), v.into())
}

/// The `tokenizer.*` entries, with the vocabulary padded to `vocab` entries if short.
fn tokenizer_kvs(t: &TokenizerData, vocab: usize, notes: &mut Vec<String>) -> Vec<(String, Value)> {
    let spm = t.kind == TokenizerKind::SentencePiece;
    let mut pieces = t.pieces.clone();
    let mut scores = t.scores.clone();
    let mut types: Vec<i32> = t.types.iter().map(|&x| i32::from(x)).collect();
    if pieces.len() < vocab {
        notes.push(format!(
            "vocabulary padded from {} to {vocab} pieces with unused `[PADn]` entries (llama.cpp needs one per embedding row)",
            pieces.len()
        ));
        for i in pieces.len()..vocab {
            pieces.push(format!("[PAD{i}]"));
            scores.push(-1000.0);
            types.push(5);
        }
    }
    let mut v = vec![kv(
        "tokenizer.ggml.model",
        if spm { "llama" } else { "gpt2" },
    )];
    if let Some(pre) = &t.pre {
        v.push(kv("tokenizer.ggml.pre", pre.as_str()));
    }
    v.push(kv("tokenizer.ggml.tokens", Array::String(pieces)));
    v.push(kv("tokenizer.ggml.scores", Array::F32(scores)));
    v.push(kv("tokenizer.ggml.token_type", Array::I32(types)));
    if !spm || !t.merges.is_empty() {
        v.push(kv("tokenizer.ggml.merges", Array::String(t.merges.clone())));
    }
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", t.bos_id),
        ("tokenizer.ggml.eos_token_id", t.eos_id),
        ("tokenizer.ggml.unknown_token_id", t.unk_id),
        ("tokenizer.ggml.padding_token_id", t.pad_id),
    ] {
        if let Some(id) = id {
            v.push(kv(key, id));
        }
    }
    v.push(kv("tokenizer.ggml.add_bos_token", t.add_bos));
    v.push(kv("tokenizer.ggml.add_eos_token", t.add_eos));
    v.push(kv("tokenizer.ggml.add_space_prefix", t.add_dummy_prefix));
    if t.remove_extra_whitespaces {
        v.push(kv("tokenizer.ggml.remove_extra_whitespaces", true));
    }
    if let Some(tpl) = &t.chat_template {
        v.push(kv("tokenizer.chat_template", tpl.as_str()));
    }
    v
}

/// Writes `lpk` as a GGUF v3 file llama.cpp loads.
///
/// Tensors keep their bytes (their ggml type is the `.lpk` dtype) except 1-D tensors (norms),
/// which llama.cpp wants in f32. Every tensor must have a llama.cpp name; the output tensor is
/// omitted when the model is tied (the `.lpk` then has none).
pub fn export_gguf<B: AsRef<[u8]>>(
    lpk: &Lpk<B>,
    out: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, Error> {
    let label = out.display().to_string();
    let cfg = lpk.config();
    let fail = |tensor: &str, reason: String| Error::Write {
        file: label.clone(),
        item: format!("tensor `{tensor}` of {}", lpk.file_name()),
        reason,
    };
    if cfg.arch != "llama" {
        return Err(Error::Unsupported {
            file: lpk.file_name().to_owned(),
            reason: format!("architecture `{}` (only llama exports to gguf)", cfg.arch),
        });
    }
    let tok = lpk.tokenizer();
    let vocab = cfg.vocab_size as usize;
    if tok.len() > vocab {
        return Err(Error::Write {
            file: label,
            item: "the tokenizer".into(),
            reason: format!("{} pieces for a vocabulary of {vocab}", tok.len()),
        });
    }

    let mut descs = Vec::with_capacity(lpk.len());
    let mut converted = Vec::new();
    for t in lpk.tensors() {
        // A corrupt input is refused, not laundered into a fresh file with valid checksums.
        if !t.checksum_ok() {
            return Err(fail(
                t.name,
                "checksum mismatch: the input is corrupt (run `llamapack verify` on it)".into(),
            ));
        }
        let name = meta_to_gguf(t.name)
            .ok_or_else(|| fail(t.name, "has no llama.cpp name (not a llama tensor)".into()))?;
        let mut ty = GgmlType::from_dtype(t.dtype);
        if t.shape.len() == 1 && t.dtype != DType::F32 {
            ty = GgmlType::F32;
            converted.push(t.name.to_owned());
        }
        descs.push(TensorDesc {
            name,
            dims: t.shape.iter().rev().copied().collect(),
            ty,
        });
    }

    let file_type = file_type_of(lpk);
    let name = opts.name.clone().unwrap_or_else(|| {
        out.file_stem()
            .map_or_else(|| "llama".into(), |s| s.to_string_lossy().into_owned())
    });
    let mut notes = Vec::new();
    let mut meta = vec![
        kv("general.architecture", "llama"),
        kv("general.name", name),
        kv("general.file_type", file_type),
        kv("general.quantization_version", 2u32),
        kv("general.alignment", 32u32),
        kv("llama.context_length", cfg.context_length),
        kv("llama.embedding_length", cfg.dim),
        kv("llama.block_count", cfg.n_layers),
        kv("llama.feed_forward_length", cfg.ffn_dim),
        kv("llama.attention.head_count", cfg.n_heads),
        kv("llama.attention.head_count_kv", cfg.n_kv_heads),
        kv("llama.rope.dimension_count", cfg.head_dim()),
        kv("llama.rope.freq_base", cfg.rope_theta),
        kv("llama.attention.layer_norm_rms_epsilon", cfg.norm_eps),
        kv("llama.vocab_size", cfg.vocab_size),
    ];
    meta.extend(imatrix_kvs(lpk));
    meta.extend(tokenizer_kvs(tok, vocab, &mut notes));

    let mut w = GgufWriter::create(out, &meta, descs.clone())?;
    let mut buf: Vec<f32> = Vec::new();
    for (t, d) in lpk.tensors().zip(&descs) {
        if GgmlType::from_dtype(t.dtype) == d.ty {
            w.write_tensor(&d.name, t.bytes)?;
        } else {
            buf.clear();
            buf.resize(t.numel(), 0.0);
            if !dequantize_row(GgmlType::from_dtype(t.dtype), t.bytes, &mut buf) {
                return Err(fail(t.name, format!("cannot convert {} to f32", t.dtype)));
            }
            let bytes: Vec<u8> = buf.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_tensor(&d.name, &bytes)?;
        }
    }
    let out = w.finish()?;
    let bytes = std::fs::metadata(&out)
        .map_err(|e| Error::io(&out, "stat", e))?
        .len();
    Ok(ExportSummary {
        out,
        file_type,
        tensors: descs.len(),
        bytes,
        converted_to_f32: converted,
        notes,
    })
}
