//! A GGUF model read in place: the same [`Lpk`] view every command uses, over the GGUF's own
//! mmap, without converting.
//!
//! The tensors of a llama-architecture GGUF are the blocks a `.lpk` holds (ggml's, byte for
//! byte, Q/K rows in Meta's order: `tests/llamacpp.rs` round-trips llama.cpp's files through a
//! `.lpk` and back byte-identical), so only the index changes: GGUF names become Meta's
//! (`blk.0.attn_q.weight` → `layers.0.attention.wq.weight`), dims innermost first become a shape
//! outermost first, the metadata becomes a [`ModelConfig`](llamapack_format::ModelConfig) and a
//! tokenizer exactly as [`import_gguf`](super::import_gguf) makes them. The tensors have no
//! checksums (GGUF has none).

use std::io::Read;
use std::path::Path;

use llamapack_format::{Container, ForeignIndex, Lpk, Metadata, Provenance, header::TensorEntry};

use super::Error;
use super::import::{provenance_notes, read_model};
use super::reader::{GgufFile, MAGIC};
use super::value::Value;

/// Smallest tensor alignment the view accepts (GGUF's is 32 unless `general.alignment` says
/// otherwise; every block type needs 2, f32 needs 4).
const MIN_ALIGN: u64 = 8;

/// Opens a model file by its content: a GGUF file (first bytes `GGUF`) is read in place with
/// [`open_gguf`], anything else as a `.lpk` ([`Lpk::open`], whose error names a file that is
/// neither).
///
/// ```no_run
/// let lpk = llamapack_convert::open_model(std::path::Path::new("smollm2-q4_k_m.gguf"))?;
/// println!("{} tensors in a {} file", lpk.len(), lpk.container().name());
/// # Ok::<(), llamapack_convert::gguf::Error>(())
/// ```
pub fn open_model(path: &Path) -> Result<Lpk, Error> {
    if is_gguf(path) {
        open_gguf(path)
    } else {
        Ok(Lpk::open(path)?)
    }
}

/// Whether the file at `path` starts with GGUF's magic (false when it cannot be read).
pub fn is_gguf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == MAGIC
}

/// Maps the llama-architecture GGUF file at `path` and serves its tensors in place, under Meta's
/// names, with the config and tokenizer [`import_gguf`](super::import_gguf) would write. A tensor
/// of a type a `.lpk` cannot hold (`q8_1`, which `convert` dequantizes) is an error saying to
/// convert the file.
pub fn open_gguf(path: &Path) -> Result<Lpk, Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mapped = crate::source::Mapped::open(path, name).map_err(|e| Error::Open(Box::new(e)))?;
    // Mapped reads sources front to back; a model is read all over, many times.
    #[cfg(unix)]
    {
        let _ = mapped.map.advise(memmap2::Advice::Normal);
    }
    let label = mapped.label();
    view_gguf(mapped.map, label)
}

/// [`open_gguf`] over any buffer holding a GGUF file; `label` names it in errors.
pub fn view_gguf<B: AsRef<[u8]>>(bytes: B, label: String) -> Result<Lpk<B>, Error> {
    let index = {
        let f = GgufFile::parse(bytes.as_ref(), label.clone())?;
        if let Some(Value::String(t)) = f.get("general.type")
            && t.as_str() == "imatrix"
        {
            return Err(Error::Unsupported {
                file: label,
                reason:
                    "this is an importance matrix, not a model (give it to `quantize --imatrix`)"
                        .into(),
            });
        }
        let model = read_model(&f)?;
        let mut tensors = Vec::with_capacity(model.plan.len());
        for (meta_name, t, keep) in &model.plan {
            let Some(dtype) = keep else {
                return Err(Error::Unsupported {
                    file: label.clone(),
                    reason: format!(
                        "tensor `{}` is {}, which is only used after conversion; run `llamapack \
                         convert {label} -o model.lpk` and use the .lpk",
                        t.name,
                        t.ty.name()
                    ),
                });
            };
            tensors.push(TensorEntry {
                name: meta_name.clone(),
                dtype: dtype.name().to_owned(),
                shape: t.shape(),
                offset: f.data_offset() + t.offset,
                nbytes: t.nbytes,
                crc32c: 0,
            });
        }
        let provenance = Provenance {
            tool: "unknown (a GGUF file)".into(),
            source_format: "gguf".into(),
            sources: Vec::new(),
            notes: provenance_notes(&f, &model.notes),
            ..Provenance::default()
        };
        ForeignIndex {
            meta: Metadata {
                config: model.config,
                tokenizer: model.tokenizer,
                provenance,
            },
            tensors,
            data: f.data_offset()..bytes.as_ref().len() as u64,
            align: u64::from(f.alignment()).max(MIN_ALIGN),
            container: Container::Gguf {
                version: f.version(),
            },
        }
    };
    Ok(Lpk::from_index(bytes, label, index)?)
}
