//! Importers for llamapack: Meta's `consolidated.NN.pth` checkpoints and Hugging Face
//! safetensors checkpoints, converted into one `.lpk` file.
//!
//! * [`convert`] detects the source (a Meta directory with `params.json`, an HF directory with
//!   `config.json`, or a single `.pth` / `.safetensors` file with that file beside it), merges
//!   model-parallel shards, undoes HF's rotary permutation of `q_proj`/`k_proj`, converts to
//!   the requested dtype and streams the tensors into a `.lpk`, several at once: every tensor's
//!   place in the file is reserved first and each worker thread converts one tensor at a time
//!   straight into its place (positional writes through a 1 MB buffer), so peak memory stays
//!   a few MB per worker above the tensors being read, whatever the model size. Source files
//!   are hashed (sha256) into the provenance on background threads meanwhile, and the file is
//!   synced once, at the end.
//! * [`inspect_source`] lists a checkpoint's tensors without converting: for a Meta or HF
//!   directory the merged view under Meta names (what the `.lpk` will hold), for a single
//!   `.pth` / `.safetensors` file its raw contents.
//!
//! Nothing from a checkpoint is ever executed: `.pth` pickles run on an inert VM
//! ([`pickle::vm`]) and only the globals a state dict needs are accepted ([`pickle::torch`]);
//! anything else — `os.system`, `builtins.eval`, any unlisted class — is an
//! [`Error::UnsafeGlobal`] naming it. Every size and offset read from any file is checked.
//!
//! ```no_run
//! use std::path::Path;
//! use llamapack_convert::{ConvertOptions, OutputDType, convert, inspect_source};
//!
//! // Look first (what `llamapack inspect` shows).
//! let listing = inspect_source(Path::new("llama-2-7b"))?;
//! for t in &listing.tensors {
//!     println!("{} {} {:?}", t.name, t.dtype, t.shape);
//! }
//!
//! // Then convert (what `llamapack convert SRC -o OUT --dtype f16` does).
//! let mut opts = ConvertOptions::default();
//! opts.dtype = OutputDType::F16;
//! let summary = convert(
//!     Path::new("llama-2-7b"),
//!     Path::new("llama-2-7b.lpk"),
//!     &opts,
//!     &|done, total| eprint!("\r{done}/{total} bytes"),
//! )?;
//! for w in &summary.warnings {
//!     eprintln!("warning: {w}");
//! }
//! # Ok::<(), llamapack_convert::Error>(())
//! ```
//!
//! Layout handled, by source:
//!
//! | source | files | notes |
//! |---|---|---|
//! | Meta | `params.json`, `consolidated.00.pth` … `NN.pth`, `tokenizer.model` (here or `..`) | wq/wk/wv/w1/w3/output merged on dim 0, wo/w2/tok_embeddings on dim 1, norms replicated and compared; `rope.freqs` dropped |
//! | HF | `config.json`, `model.safetensors` or `model.safetensors.index.json` + shards, `tokenizer.model` or `tokenizer.json` | names mapped to Meta's; q/k rows un-permuted (k with the KV head count); `tie_word_embeddings` honoured |
// `unsafe` only in the mmap of a source file (`source.rs`), which allows it locally.
#![deny(unsafe_code)]

pub mod dtype;
pub mod error;
pub mod gguf;
pub mod hf;
pub mod hf_export;
pub mod hf_tokenizer;
pub mod meta;
pub mod permute;
pub mod pickle;
mod plan;
pub mod pth;
pub mod pyjson;
pub mod sentencepiece;
mod source;
pub mod testing;
pub mod zip;

use std::path::{Path, PathBuf};

use llamapack_format::{ModelConfig, SourceFile, TokenizerData};

pub use dtype::SourceDType;
pub use error::{Error, Result};
pub use gguf::open_model;

use crate::source::{Mapped, rel_name};

/// Element type of the converted tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputDType {
    /// As in the source (bf16 for Meta's checkpoints).
    #[default]
    Keep,
    /// f32.
    F32,
    /// f16 (values beyond ±65504 become ±inf, with a warning).
    F16,
    /// bf16.
    BF16,
}

impl OutputDType {
    /// `keep`, `f32`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            OutputDType::Keep => "keep",
            OutputDType::F32 => "f32",
            OutputDType::F16 => "f16",
            OutputDType::BF16 => "bf16",
        }
    }
}

impl std::str::FromStr for OutputDType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "keep" => OutputDType::Keep,
            "f32" => OutputDType::F32,
            "f16" => OutputDType::F16,
            "bf16" => OutputDType::BF16,
            _ => {
                return Err(format!(
                    "unknown dtype `{s}`{} (expected keep, f16, bf16 or f32)",
                    llamapack_format::suggest::hint(s, ["keep", "f16", "bf16", "f32"])
                ));
            }
        })
    }
}

/// Options of [`convert`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Output element type.
    pub dtype: OutputDType,
    /// Tokenizer file (`tokenizer.model` or `tokenizer.json`) instead of the one found beside
    /// the checkpoint.
    pub tokenizer: Option<PathBuf>,
    /// Context length to record (default: 4096 for Meta, `max_position_embeddings` for HF).
    pub context_length: Option<u32>,
    /// Threads converting tensors, and at most as many hashing the source files meanwhile
    /// (0: all cores).
    pub threads: usize,
}

/// What kind of checkpoint a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceFormat {
    /// Meta's layout (`params.json` + `consolidated.NN.pth`).
    Meta,
    /// Hugging Face's layout (`config.json` + safetensors).
    Hf,
    /// One `.pth` file, listed raw.
    Pth,
    /// One `.safetensors` file, listed raw.
    Safetensors,
}

impl SourceFormat {
    /// `meta`, `hf`, `pth` or `safetensors` (what provenance records).
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Meta => "meta",
            SourceFormat::Hf => "hf",
            SourceFormat::Pth => "pth",
            SourceFormat::Safetensors => "safetensors",
        }
    }
}

/// Something the user should know about a conversion that still succeeded.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Warning {
    /// A tensor holds NaN or ±Inf (converted as is: it is data).
    NonFinite {
        /// Meta name.
        tensor: String,
        /// How many elements.
        count: u64,
        /// Coordinates of the first one.
        first_index: Vec<u64>,
        /// Its value.
        value: f32,
    },
    /// Finite values too large for f16 became ±Inf.
    Overflow {
        /// Meta name.
        tensor: String,
        /// How many elements.
        count: u64,
        /// Coordinates of the first one.
        first_index: Vec<u64>,
        /// Its value before conversion.
        value: f32,
    },
    /// Anything else (tokenizer size, ignored tensors…).
    Note(String),
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::NonFinite {
                tensor,
                count,
                first_index,
                value,
            } => write!(
                f,
                "tensor `{tensor}` has {count} non-finite value(s), the first ({value}) at {first_index:?}; converted as is"
            ),
            Warning::Overflow {
                tensor,
                count,
                first_index,
                value,
            } => write!(
                f,
                "tensor `{tensor}` has {count} value(s) beyond the f16 range that became infinite, the first ({value}) at {first_index:?}"
            ),
            Warning::Note(s) => f.write_str(s),
        }
    }
}

/// The result of a successful [`convert`].
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertSummary {
    /// The file written.
    pub out: PathBuf,
    /// What the source was.
    pub format: SourceFormat,
    /// The model config written.
    pub config: ModelConfig,
    /// Tensors written.
    pub tensors: usize,
    /// Tensor bytes read from the source.
    pub bytes_read: u64,
    /// Bytes of the output file before its header.
    pub bytes_written: u64,
    /// The source files, with their sha256 (as recorded in provenance).
    pub sources: Vec<SourceFile>,
    /// Warnings (also recorded in provenance notes).
    pub warnings: Vec<Warning>,
    /// Seconds spent writing the header, syncing the file to disk (one `fsync`) and renaming
    /// it into place, after the last tensor.
    pub finish_seconds: f64,
}

/// One tensor of a [`SourceListing`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name (Meta's for a Meta or HF directory).
    pub name: String,
    /// Name in the source file, when it differs (HF).
    pub source_name: Option<String>,
    /// Element type in the source.
    pub dtype: SourceDType,
    /// Shape (merged across shards for a Meta directory).
    pub shape: Vec<u64>,
    /// Number of files it is assembled from.
    pub pieces: usize,
}

/// What [`inspect_source`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceListing {
    /// Kind of source.
    pub format: SourceFormat,
    /// Files read (relative to the source directory).
    pub files: Vec<String>,
    /// The model config, for a Meta or HF directory.
    pub config: Option<ModelConfig>,
    /// Tensors, in output order for a directory, file order for a single file.
    pub tensors: Vec<TensorInfo>,
}

enum Kind {
    MetaDir,
    HfDir,
    PthFile,
    SafetensorsFile,
}

fn detect(path: &Path) -> Result<Kind> {
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, "open", e))?;
    if md.is_dir() {
        let has_shard = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, "read directory", e))?
            .filter_map(std::result::Result::ok)
            .any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("consolidated.")
                    && Path::new(&n)
                        .extension()
                        .is_some_and(|x| x.eq_ignore_ascii_case("pth"))
            });
        if has_shard || path.join("params.json").is_file() {
            return Ok(Kind::MetaDir);
        }
        if path.join("config.json").is_file() {
            return Ok(Kind::HfDir);
        }
        return Err(Error::UnknownSource {
            path: path.to_path_buf(),
            reason: "neither a Meta checkpoint (params.json, consolidated.NN.pth) nor a Hugging Face one (config.json, *.safetensors)".into(),
        });
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pth" | "pt" | "bin" => return Ok(Kind::PthFile),
        "safetensors" => return Ok(Kind::SafetensorsFile),
        _ => {}
    }
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| Error::io(path, "read", e))?;
    if n == 4 && head == *b"PK\x03\x04" {
        return Ok(Kind::PthFile);
    }
    Err(Error::UnknownSource {
        path: path.to_path_buf(),
        reason: "not a .pth (zip) or .safetensors file".into(),
    })
}

/// Tokenizer files to read: the main one and, beside a `tokenizer.json`, `tokenizer_config.json`.
fn open_tokenizer(path: &Path, base: &Path) -> Result<Vec<Mapped>> {
    let mut v = vec![Mapped::open(path, rel_name(path, base))?];
    if path.extension().is_some_and(|e| e == "json") {
        let cfg = path.with_file_name("tokenizer_config.json");
        if cfg.is_file() {
            v.push(Mapped::open(&cfg, rel_name(&cfg, base))?);
        }
    }
    Ok(v)
}

/// A named byte string stored in the `.lpk` beside the tensors.
type Blob<'a> = (String, &'a [u8]);

/// Parses the tokenizer files of [`open_tokenizer`]; checks it against the vocabulary size.
fn parse_tokenizer<'a>(
    files: &'a [Mapped],
    model_config: Option<&serde_json::Value>,
    vocab: u32,
    warnings: &mut Vec<Warning>,
) -> Result<(TokenizerData, Vec<Blob<'a>>)> {
    let main = &files[0];
    let is_json = main.path.extension().is_some_and(|e| e == "json");
    let (data, blobs) = if is_json {
        let cfg = match files.get(1) {
            Some(c) => Some(
                serde_json::from_slice(&c.map).map_err(|e| Error::Tokenizer {
                    file: c.label(),
                    reason: format!("not json: {e}"),
                })?,
            ),
            None => None,
        };
        let data = hf_tokenizer::parse(&main.map, &main.label(), cfg.as_ref(), model_config)?;
        let mut blobs = vec![("tokenizer.json".to_owned(), &main.map[..])];
        if let Some(c) = files.get(1) {
            blobs.push(("tokenizer_config.json".to_owned(), &c.map[..]));
        }
        (data, blobs)
    } else {
        let sp = sentencepiece::parse(&main.map, &main.label())?;
        if sp.model_type != "bpe" {
            warnings.push(Warning::Note(format!(
                "{}: SentencePiece model type is {}, the runner implements BPE",
                main.label(),
                sp.model_type
            )));
        }
        (sp.data, vec![("tokenizer.model".to_owned(), &main.map[..])])
    };
    let n = data.pieces.len();
    if n > vocab as usize {
        return Err(Error::Tokenizer {
            file: main.label(),
            reason: format!("{n} pieces but the model's vocabulary (embedding rows) is {vocab}"),
        });
    }
    if n < vocab as usize {
        warnings.push(Warning::Note(format!(
            "{}: {n} pieces for a vocabulary of {vocab}; ids {n}.. have no text",
            main.label()
        )));
    }
    Ok((data, blobs))
}

/// Converts the checkpoint at `src` into the `.lpk` file `out`.
///
/// `progress(done, total)` is called from this thread as bytes are converted and hashed.
/// Nothing appears at `out` unless the whole conversion succeeds; `out` may not be (a link to)
/// any input file.
pub fn convert(
    src: &Path,
    out: &Path,
    opts: &ConvertOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<ConvertSummary> {
    match detect(src)? {
        Kind::MetaDir | Kind::PthFile => {
            let source = meta::MetaSource::open(src)?;
            let tok_path = source.tokenizer_path(opts.tokenizer.as_deref())?;
            let tok_files = open_tokenizer(&tok_path, &source.dir)?;
            let shards: Vec<Vec<pth::PthTensor<'_>>> = source
                .shards
                .iter()
                .map(|m| pth::load(&m.map, &m.label()))
                .collect::<Result<_>>()?;
            let (config, tensors) = meta::plan_tensors(&source, &shards, opts.context_length)?;
            let mut warnings = Vec::new();
            let (tokenizer, blobs) =
                parse_tokenizer(&tok_files, None, config.vocab_size, &mut warnings)?;
            let mut inputs = vec![&source.params_file];
            inputs.extend(&source.shards);
            inputs.extend(&tok_files);
            let p = plan::Plan {
                format: SourceFormat::Meta,
                config,
                tensors,
                tokenizer,
                blobs,
                inputs,
                warnings,
            };
            plan::write(p, out, opts, progress)
        }
        Kind::HfDir | Kind::SafetensorsFile => {
            let source = hf::HfSource::open(src)?;
            let config = hf::parse_config(
                &source.config,
                &source.config_file.label(),
                opts.context_length,
            )?;
            let tok_path = match &opts.tokenizer {
                Some(p) => p.clone(),
                None => ["tokenizer.model", "tokenizer.json"]
                    .iter()
                    .map(|n| source.dir.join(n))
                    .find(|p| p.is_file())
                    .ok_or_else(|| Error::Tokenizer {
                        file: source.dir.display().to_string(),
                        reason: "no tokenizer.model or tokenizer.json; pass its path explicitly"
                            .into(),
                    })?,
            };
            let tok_files = open_tokenizer(&tok_path, &source.dir)?;
            let tensors = source.tensors()?;
            let (planned, notes) =
                hf::plan_tensors(&config, &tensors, &source.dir.display().to_string())?;
            let mut warnings: Vec<Warning> = notes.into_iter().map(Warning::Note).collect();
            let (tokenizer, blobs) = parse_tokenizer(
                &tok_files,
                Some(&source.config),
                config.vocab_size,
                &mut warnings,
            )?;
            let mut inputs = vec![&source.config_file];
            inputs.extend(&source.index);
            inputs.extend(&source.weights);
            inputs.extend(&tok_files);
            let p = plan::Plan {
                format: SourceFormat::Hf,
                config,
                tensors: planned,
                tokenizer,
                blobs,
                inputs,
                warnings,
            };
            plan::write(p, out, opts, progress)
        }
    }
}

fn info_of(t: &plan::Planned<'_>) -> TensorInfo {
    TensorInfo {
        name: t.name.clone(),
        source_name: t.source_name.clone(),
        dtype: t.dtype,
        shape: t.shape.clone(),
        pieces: t.pieces.len(),
    }
}

/// Lists the tensors of a checkpoint without converting it.
pub fn inspect_source(path: &Path) -> Result<SourceListing> {
    match detect(path)? {
        Kind::MetaDir => {
            let source = meta::MetaSource::open(path)?;
            let shards: Vec<Vec<pth::PthTensor<'_>>> = source
                .shards
                .iter()
                .map(|m| pth::load(&m.map, &m.label()))
                .collect::<Result<_>>()?;
            let (config, tensors) = meta::plan_tensors(&source, &shards, None)?;
            let mut files = vec![source.params_file.name.clone()];
            files.extend(source.shards.iter().map(|m| m.name.clone()));
            Ok(SourceListing {
                format: SourceFormat::Meta,
                files,
                config: Some(config),
                tensors: tensors.iter().map(info_of).collect(),
            })
        }
        Kind::HfDir => {
            let source = hf::HfSource::open(path)?;
            let config = hf::parse_config(&source.config, &source.config_file.label(), None)?;
            let tensors = source.tensors()?;
            let (planned, _) =
                hf::plan_tensors(&config, &tensors, &source.dir.display().to_string())?;
            let mut files = vec![source.config_file.name.clone()];
            files.extend(source.index.iter().map(|m| m.name.clone()));
            files.extend(source.weights.iter().map(|m| m.name.clone()));
            Ok(SourceListing {
                format: SourceFormat::Hf,
                files,
                config: Some(config),
                tensors: planned.iter().map(info_of).collect(),
            })
        }
        kind @ (Kind::PthFile | Kind::SafetensorsFile) => {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let m = Mapped::open(path, name.clone())?;
            let info = |name, dtype, shape| TensorInfo {
                name,
                source_name: None,
                dtype,
                shape,
                pieces: 1,
            };
            let (format, tensors) = if matches!(kind, Kind::PthFile) {
                let t = pth::load(&m.map, &m.label())?;
                let t = t.into_iter().map(|t| info(t.name, t.dtype, t.shape));
                (SourceFormat::Pth, t.collect())
            } else {
                let t = hf::load_safetensors(&m)?;
                let t = t.into_iter().map(|t| info(t.name, t.dtype, t.shape));
                (SourceFormat::Safetensors, t.collect())
            };
            Ok(SourceListing {
                format,
                files: vec![name],
                config: None,
                tensors,
            })
        }
    }
}
