//! Export a `.lpk` as a Hugging Face Llama directory that transformers'
//! `LlamaForCausalLM.from_pretrained` loads: safetensors shards with HF names and HF's rotary
//! permutation of `q_proj`/`k_proj`, `config.json`, `generation_config.json`, the tokenizer.
//!
//! Quantized tensors are decoded with a row decoder the caller passes in (the CLI passes
//! `llamapack_quantize::dequantize_row`), so this crate stays free of kernels. Tensors are
//! converted one at a time as the shard is written; the directory is assembled under a
//! sibling temp name and renamed into place at the end (an
//! [`OutputDir`](llamapack_format::output::OutputDir)), every file in it written as any other
//! output of llamapack. The JSON files use Python's float notation (`"rms_norm_eps": 1e-05`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use llamapack_format::output::OutputDir;
use llamapack_format::{DType, Lpk, TensorView, TokenizerKind};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, View};
use serde_json::json;

use crate::error::{Error, Result};
use crate::permute::hf_row_for_meta_row;

/// Decodes one row of a tensor stored as `dtype` into f32.
pub type RowDecoder<'d> =
    &'d (dyn Fn(DType, &[u8], &mut [f32]) -> std::result::Result<(), String> + Sync);

/// Options of [`export_safetensors`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HfExportOptions {
    /// Element type of the exported weights: f16, bf16 or f32.
    pub dtype: DType,
    /// Largest shard in bytes before a new one is started.
    pub shard_size: u64,
}

impl Default for HfExportOptions {
    fn default() -> Self {
        HfExportOptions {
            dtype: DType::F16,
            shard_size: 5_000_000_000,
        }
    }
}

/// What [`export_safetensors`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HfExportSummary {
    /// The directory.
    pub dir: PathBuf,
    /// Files written, in order.
    pub files: Vec<String>,
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data.
    pub tensor_bytes: u64,
    /// Things the user should know.
    pub notes: Vec<String>,
}

/// HF name of a Meta tensor name; `None` for a name that is not a Llama weight.
pub fn meta_to_hf(name: &str) -> Option<String> {
    // One mapping table (the importer's), checked both ways.
    let hf = crate::hf::hf_name(name);
    crate::hf::meta_name(&hf)
        .is_some_and(|(m, _)| m == name)
        .then_some(hf)
}

/// A tensor converted when safetensors asks for its bytes.
struct Lazy<'a> {
    t: TensorView<'a>,
    shape: Vec<usize>,
    dtype: DType,
    /// `Some(head_dim)` for q/k weights, which get HF's row permutation.
    permute: Option<usize>,
    decode: RowDecoder<'a>,
}

impl Lazy<'_> {
    /// Decodes the first row: fails exactly when [`Lazy::convert`] would.
    fn check(&self) -> std::result::Result<(), String> {
        let cols = self.t.row_len();
        let src_row = self
            .t
            .dtype
            .row_bytes(cols)
            .ok_or("row is not whole blocks")?;
        if !matches!(self.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(format!("cannot export as {}", self.dtype));
        }
        let mut row = vec![0f32; cols];
        (self.decode)(self.t.dtype, &self.t.bytes[..src_row], &mut row)
    }

    fn convert(&self) -> std::result::Result<Vec<u8>, String> {
        let (rows, cols) = (self.t.rows(), self.t.row_len());
        let src_row = self
            .t
            .dtype
            .row_bytes(cols)
            .ok_or("row is not whole blocks")?;
        let out_size = self.dtype.block_bytes();
        let mut out = vec![0u8; rows * cols * out_size];
        let mut row = vec![0f32; cols];
        for r in 0..rows {
            (self.decode)(
                self.t.dtype,
                &self.t.bytes[r * src_row..(r + 1) * src_row],
                &mut row,
            )?;
            let dst_r = self.permute.map_or(r, |hd| hf_row_for_meta_row(r, hd));
            let dst = &mut out[dst_r * cols * out_size..(dst_r + 1) * cols * out_size];
            match self.dtype {
                DType::F32 => {
                    for (d, &v) in dst.chunks_exact_mut(4).zip(&row) {
                        d.copy_from_slice(&v.to_le_bytes());
                    }
                }
                DType::F16 => {
                    for (d, &v) in dst.chunks_exact_mut(2).zip(&row) {
                        d.copy_from_slice(&f16::from_f32(v).to_le_bytes());
                    }
                }
                DType::BF16 => {
                    for (d, &v) in dst.chunks_exact_mut(2).zip(&row) {
                        d.copy_from_slice(&bf16::from_f32(v).to_le_bytes());
                    }
                }
                other => return Err(format!("cannot export as {other}")),
            }
        }
        Ok(out)
    }
}

impl View for &Lazy<'_> {
    fn dtype(&self) -> Dtype {
        match self.dtype {
            DType::F32 => Dtype::F32,
            DType::BF16 => Dtype::BF16,
            _ => Dtype::F16,
        }
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        // `export_safetensors` checked every tensor with `Lazy::check` before writing began,
        // so a failure here would be a bug, not bad input.
        Cow::Owned(self.convert().expect("tensor decoded during validation"))
    }

    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.block_bytes()
    }
}

fn config_json<B: AsRef<[u8]>>(lpk: &Lpk<B>, dtype: DType) -> serde_json::Value {
    let c = lpk.config();
    let t = lpk.tokenizer();
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": c.dim,
        "intermediate_size": c.ffn_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim(),
        "vocab_size": c.vocab_size,
        "max_position_embeddings": c.context_length,
        "rms_norm_eps": crate::pyjson::f32_number(c.norm_eps),
        "rope_theta": crate::pyjson::f32_number(c.rope_theta),
        "rope_scaling": null,
        "tie_word_embeddings": c.tied_output,
        "hidden_act": "silu",
        "attention_bias": false,
        "attention_dropout": 0.0,
        "mlp_bias": false,
        "pretraining_tp": 1,
        "initializer_range": 0.02,
        "use_cache": true,
        "bos_token_id": t.bos_id,
        "eos_token_id": t.eos_id,
        "torch_dtype": match dtype { DType::F32 => "float32", DType::BF16 => "bfloat16", _ => "float16" },
    })
}

/// Writes `lpk` as a Hugging Face Llama directory at `dir` (which must not exist, or be empty).
pub fn export_safetensors<B: AsRef<[u8]> + Sync>(
    lpk: &Lpk<B>,
    dir: &Path,
    opts: &HfExportOptions,
    decode: RowDecoder<'_>,
) -> Result<HfExportSummary> {
    let label = dir.display().to_string();
    let fail = |reason: String| Error::Config {
        file: label.clone(),
        reason,
    };
    if !matches!(opts.dtype, DType::F16 | DType::BF16 | DType::F32) {
        return Err(fail(format!(
            "safetensors export takes f16, bf16 or f32, not {}",
            opts.dtype
        )));
    }
    if dir
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
    {
        return Err(fail(
            "a safetensors export is a directory (model.safetensors, config.json, the tokenizer), not one .safetensors file; give a directory name, e.g. NAME-hf".into(),
        ));
    }
    let out = OutputDir::create(dir)?;
    let c = lpk.config();
    let head_dim = c.head_dim() as usize;
    let mut lazies = Vec::new();
    for t in lpk.tensors() {
        // A corrupt input is refused, not laundered into a fresh file with valid checksums.
        if !t.checksum_ok() {
            return Err(Error::Tensor {
                file: lpk.file_name().to_owned(),
                tensor: t.name.to_owned(),
                reason: "checksum mismatch: the input is corrupt (run `llamapack verify` on it)"
                    .into(),
            });
        }
        let hf = meta_to_hf(t.name).ok_or_else(|| Error::UnexpectedTensor {
            file: lpk.file_name().to_owned(),
            tensor: t.name.to_owned(),
        })?;
        let permute = (t.name.ends_with("attention.wq.weight")
            || t.name.ends_with("attention.wk.weight"))
        .then_some(head_dim);
        let lazy = Lazy {
            t,
            shape: t.shape.iter().map(|&d| d as usize).collect(),
            dtype: opts.dtype,
            permute,
            decode,
        };
        // Decode the first row up front so an undecodable tensor is an error, not a panic
        // mid-write: a decoder fails only on the dtype or the row length, the same for every
        // row, so one row tells (converting the whole tensor here would do all the work twice).
        lazy.check().map_err(|reason| Error::Tensor {
            file: lpk.file_name().to_owned(),
            tensor: t.name.to_owned(),
            reason,
        })?;
        lazies.push((hf, lazy));
    }
    // Plan shards in file order.
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut size = 0u64;
    for (i, (_, l)) in lazies.iter().enumerate() {
        let b = (&l).data_len() as u64;
        if size > 0 && size + b > opts.shard_size {
            shards.push(Vec::new());
            size = 0;
        }
        shards.last_mut().expect("one shard").push(i);
        size += b;
    }
    let n = shards.len();
    let mut files = Vec::new();
    let mut weight_map = BTreeMap::new();
    let mut total = 0u64;
    for (k, shard) in shards.iter().enumerate() {
        let file = if n == 1 {
            "model.safetensors".to_owned()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", k + 1)
        };
        let views: Vec<(&str, &Lazy<'_>)> = shard
            .iter()
            .map(|&i| (lazies[i].0.as_str(), &lazies[i].1))
            .collect();
        for (name, l) in &views {
            weight_map.insert((*name).to_owned(), file.clone());
            total += l.data_len() as u64;
        }
        write_shard(lpk, &out, &file, views)?;
        files.push(file);
    }
    let write_json = |name: &str, v: &serde_json::Value| -> Result<()> {
        let text = crate::pyjson::to_string_pretty(v) + "\n";
        Ok(out.write_file(name, text.as_bytes())?)
    };
    if n > 1 {
        write_json(
            "model.safetensors.index.json",
            &json!({"metadata": {"total_size": total}, "weight_map": weight_map}),
        )?;
        files.push("model.safetensors.index.json".into());
    }
    write_json("config.json", &config_json(lpk, opts.dtype))?;
    let t = lpk.tokenizer();
    write_json(
        "generation_config.json",
        &json!({"bos_token_id": t.bos_id, "eos_token_id": t.eos_id, "pad_token_id": t.pad_id}),
    )?;
    files.extend([
        "config.json".to_owned(),
        "generation_config.json".to_owned(),
    ]);
    let mut notes = Vec::new();
    let mut copied = false;
    for blob in ["tokenizer.model", "tokenizer.json", "tokenizer_config.json"] {
        if let Some(bytes) = lpk.blob(blob) {
            out.write_file(blob, bytes)?;
            files.push(blob.to_owned());
            copied = true;
        }
    }
    if lpk.blob("tokenizer_config.json").is_none() && t.kind == TokenizerKind::SentencePiece {
        let piece = |id: Option<u32>| id.and_then(|i| t.pieces.get(i as usize)).cloned();
        write_json(
            "tokenizer_config.json",
            &json!({
                "tokenizer_class": "LlamaTokenizer",
                "add_bos_token": t.add_bos,
                "add_eos_token": t.add_eos,
                "bos_token": piece(t.bos_id),
                "eos_token": piece(t.eos_id),
                "unk_token": piece(t.unk_id),
                "pad_token": piece(t.pad_id),
                "legacy": false,
                "clean_up_tokenization_spaces": false,
                "model_max_length": c.context_length,
                "chat_template": t.chat_template,
            }),
        )?;
        files.push("tokenizer_config.json".into());
    }
    if !copied {
        notes.push("the .lpk stores no tokenizer file (tokenizer.model / tokenizer.json); only its config was written".into());
    }
    out.finish()?;
    Ok(HfExportSummary {
        dir: dir.to_path_buf(),
        files,
        tensors: lazies.len(),
        tensor_bytes: total,
        notes,
    })
}

/// Writes one safetensors file of the export, laid out as `safetensors::serialize_to_file`
/// lays it out (the header's length as a little-endian u64, the JSON header padded with
/// spaces to a multiple of 8, then each tensor's bytes in header order: by dtype alignment,
/// then name), through llamapack's writer; tensors are converted one at a time.
fn write_shard<B: AsRef<[u8]>>(
    lpk: &Lpk<B>,
    out: &OutputDir,
    file: &str,
    mut views: Vec<(&str, &Lazy<'_>)>,
) -> Result<()> {
    views.sort_by(|(a, x), (b, y)| View::dtype(y).cmp(&View::dtype(x)).then_with(|| a.cmp(b)));
    let mut infos = Vec::with_capacity(views.len());
    let mut offset = 0;
    for (name, l) in &views {
        let n = View::data_len(l);
        let info = TensorInfo {
            dtype: View::dtype(l),
            shape: l.shape.clone(),
            data_offsets: (offset, offset + n),
        };
        infos.push(((*name).to_owned(), info));
        offset += n;
    }
    let meta = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    let header = Metadata::new(Some(meta), infos).map_err(|e| Error::Config {
        file: out.dest().join(file).display().to_string(),
        reason: format!("safetensors header: {e}"),
    })?;
    let mut json = serde_json::to_vec(&header).expect("a safetensors header serializes");
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut f = out.file(file)?;
    f.write_all(&(json.len() as u64).to_le_bytes())?;
    f.write_all(&json)?;
    for (_, l) in &views {
        let bytes = l.convert().map_err(|reason| Error::Tensor {
            file: lpk.file_name().to_owned(),
            tensor: l.t.name.to_owned(),
            reason,
        })?;
        f.write_all(&bytes)?;
    }
    f.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use llamapack_format::LpkWriter;

    /// Our shard writer lays a file out byte for byte as `safetensors::serialize` does.
    #[test]
    fn shards_are_byte_identical_to_the_safetensors_crate() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.lpk");
        let mut w = LpkWriter::create(&src).unwrap();
        let f32s = |n: usize| -> Vec<u8> {
            (0..n)
                .flat_map(|i| (i as f32 * 0.25 - 3.0).to_le_bytes())
                .collect()
        };
        // every tensor the config names (the writer refuses a model missing one)
        let meta = llamapack_format::testing::tiny_metadata();
        for (name, shape) in meta.config.tensors() {
            let n: u64 = shape.iter().product();
            w.write_tensor(&name, DType::F32, &shape, &f32s(n as usize))
                .unwrap();
        }
        w.finish(&meta).unwrap();
        let lpk = Lpk::open(&src).unwrap();
        let decode = |_: DType, src: &[u8], dst: &mut [f32]| {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes(c.try_into().unwrap());
            }
            Ok(())
        };
        let out = dir.path().join("hf");
        let opts = HfExportOptions {
            dtype: DType::BF16,
            shard_size: 3000,
        };
        let s = export_safetensors(&lpk, &out, &opts, &decode).unwrap();
        let shards: Vec<&String> = s
            .files
            .iter()
            .filter(|f| f.ends_with(".safetensors"))
            .collect();
        assert!(shards.len() >= 2, "one shard only: {:?}", s.files);
        for f in shards {
            let ours = std::fs::read(out.join(f)).unwrap();
            let st = safetensors::SafeTensors::deserialize(&ours).unwrap();
            let meta = HashMap::from([("format".to_owned(), "pt".to_owned())]);
            let theirs = safetensors::serialize(st.tensors(), Some(meta)).unwrap();
            assert_eq!(ours, theirs, "{f}");
        }
    }
}
