//! GGUF interop: read and write llama.cpp's model files, export a `.lpk` to GGUF, import a
//! llama-architecture GGUF into a `.lpk`.
//!
//! * [`GgufFile`] parses a GGUF v2/v3 file held in memory (an mmap) without copying tensor
//!   data; every count, length, dim and offset is checked before use, so a hostile file gives an
//!   [`Error`] naming the file and the key or tensor, never a panic or a huge allocation.
//! * [`GgufWriter`] writes GGUF v3 streaming: header, metadata and tensor infos first, then the
//!   tensor bytes one at a time, to a sibling temp file renamed at the end.
//! * [`export_gguf`] turns a `.lpk` into a file llama.cpp loads: llama.cpp's key names and
//!   value types, its tensor names, dims innermost first, f32 norms, and the ggml blocks of the
//!   `.lpk` copied byte for byte (Q/K rows stay in Meta order: llama.cpp's llama `RoPE` rotates
//!   adjacent pairs, as Meta's code does).
//! * [`import_gguf`] does the reverse: every type of the dtype table is kept as it is (byte for
//!   byte); an activation-only type (`q8_1`) is dequantized with `llamapack-quantize`'s decoder
//!   ([`dequant`]); any other type (`iq2_xxs`, …) is an error naming the tensor and its type.
//! * [`open_model`] opens a model file by its content: a `.lpk`, or a GGUF served in place as
//!   the same [`Lpk`](llamapack_format::Lpk) view ([`open_gguf`]: Meta names, config and
//!   tokenizer as [`import_gguf`] makes them, the tensor bytes not copied), so every command
//!   that reads a model takes either.
//! * [`imatrix`] reads llama.cpp's importance-matrix files (GGUF and legacy `.dat`) and writes
//!   the GGUF one.
//!
//! # Why not the `gguf-rs` crate
//!
//! The design named `gguf-rs` as the reader. Checked at 0.1.8 (the newest): it sizes tensors
//! with a block length guessed from the type id (`< 2` → 1, `< 10` → 32, else 256), so bf16,
//! i8/i16/i32/i64/f64, `iq4_nl` and mxfp4 tensors get wrong byte sizes (bf16 256× too small); its
//! `q8_1` is 40 bytes (ggml's is 36); its `file_type` names follow an old table (15 reads as
//! "Mostly `IQ2_XXS`", not `Q4_K_M`). It also depends on `serde_json` with
//! `arbitrary_precision`, which Cargo's feature unification turns on for every crate in the
//! build, dev-dependencies included in test builds, and with it `.lpk` headers fail to parse
//! (`#[serde(flatten)]` + f32: "invalid type: map, expected f32"). So it is not even a
//! dev-dependency; gguf-py is the independent reader in the tests.
//!
//! ```no_run
//! use std::path::Path;
//! use llamapack_convert::gguf::{self, ExportOptions, ImportOptions};
//! use llamapack_format::Lpk;
//!
//! // .lpk → GGUF
//! let lpk = Lpk::open("model-q4_k_m.lpk")?;
//! let s = gguf::export_gguf(&lpk, Path::new("model-q4_k_m.gguf"), &ExportOptions::default())?;
//! println!("{} tensors, file type {}", s.tensors, s.file_type);
//!
//! // GGUF → .lpk (every block type kept as it is)
//! let s = gguf::import_gguf(
//!     Path::new("smollm2-135m-q4_1.gguf"),
//!     Path::new("smollm2.lpk"),
//!     &ImportOptions::default(),
//! )?;
//! println!("{} kept, {} dequantized", s.kept, s.dequantized.len());
//!
//! // Look inside any GGUF file.
//! let bytes = std::fs::read("model-q4_k_m.gguf")?;
//! let f = gguf::GgufFile::parse(&bytes, "model-q4_k_m.gguf")?;
//! for t in f.tensors() {
//!     println!("{} {} {:?}", t.name, t.ty, t.dims);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod dequant;
mod export;
pub mod imatrix;
mod import;
pub mod names;
pub mod reader;
pub mod types;
pub mod value;
mod view;
pub mod writer;

use llamapack_format::DType;
use std::path::PathBuf;

pub use export::{ExportOptions, ExportSummary, export_gguf, file_type_of};
pub use import::{ImportOptions, ImportSummary, import_gguf};
pub use reader::{GgufFile, TensorInfo};
pub use types::{GGML_TYPES, GgmlType, GgmlTypeInfo, ValueType};
pub use value::{Array, Value};
pub use view::{is_gguf, open_gguf, open_model, view_gguf};
pub use writer::{GgufWriter, TensorDesc};

/// Errors of GGUF reading, writing, export and import.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Opening (mapping) the input failed.
    #[error(transparent)]
    Open(Box<crate::Error>),
    /// The file ends before something it declares.
    #[error(
        "{file}: truncated or corrupt: {what} needs {needed} bytes at offset {offset}, only {available} remain"
    )]
    Truncated {
        /// The file.
        file: String,
        /// What was being read, e.g. ``metadata key `general.name` ``.
        what: String,
        /// Where.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// The header is not valid GGUF (magic, version, counts, limits).
    #[error("{file}: not a valid gguf file: {reason}")]
    BadHeader {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A metadata entry is invalid, or not what llama.cpp's format requires.
    #[error("{file}: metadata key `{key}`: {reason}")]
    BadMetadata {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A required metadata key is absent.
    #[error("{file}: metadata key `{key}` is missing")]
    MissingKey {
        /// The file.
        file: String,
        /// The key.
        key: String,
    },
    /// A tensor entry is invalid, missing, or of the wrong shape.
    #[error("{file}: tensor `{tensor}`: {reason}")]
    BadTensor {
        /// The file.
        file: String,
        /// The tensor (GGUF name when reading a GGUF file).
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's type can be neither stored in a `.lpk` nor dequantized.
    #[error(
        "{file}: tensor `{tensor}` has type {ty}, which llamapack cannot import (supported: {})",
        supported_names()
    )]
    UnsupportedType {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// Its ggml type name.
        ty: String,
    },
    /// The model is not one llamapack can convert (architecture, partial rotary…).
    #[error("{file}: unsupported model: {reason}")]
    Unsupported {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A writer or exporter was given something it cannot write.
    #[error("{file}: cannot write {item}: {reason}")]
    Write {
        /// The output file.
        file: String,
        /// What, e.g. ``tensor `output.weight` ``.
        item: String,
        /// What is wrong.
        reason: String,
    },
    /// An importance-matrix file is malformed as a whole (its tensors' faults are
    /// [`Error::BadTensor`]).
    #[error("{file}: not a usable imatrix file: {reason}")]
    Imatrix {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing the `.lpk` side failed.
    #[error(transparent)]
    Lpk(#[from] llamapack_format::Error),
    /// An importance matrix refused an entry (values, sizes).
    #[error(transparent)]
    Quantize(#[from] llamapack_quantize::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

/// The storable type names, for [`Error::UnsupportedType`].
fn supported_names() -> String {
    DType::storable()
        .map(DType::name)
        .collect::<Vec<_>>()
        .join(", ")
}
