//! The `.lpk` packed model file of llamapack.
//!
//! One self-contained, memory-mappable file per model: config, tokenizer, provenance, and the
//! tensors (f32, f16, bf16 or ggml-compatible quantized blocks), each 64-byte aligned with a
//! crc32c. This crate knows no kernels and does no math; it reads and writes bytes, safely.
//!
//! ```
//! use llamapack_format::{DType, Lpk, LpkWriter, testing};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.lpk");
//! let mut w = LpkWriter::create(&path)?;
//! let norm: Vec<f32> = vec![1.0; 64];
//! w.write_tensor("scale", DType::F32, &[64], bytemuck::cast_slice(&norm))?;
//! w.finish(&testing::tiny_metadata())?;
//!
//! let lpk = Lpk::open(&path)?;
//! let t = lpk.tensor("scale")?;
//! assert_eq!(t.as_slice::<f32>()?, &norm[..]);
//! assert!(lpk.verify().is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Byte layout (format version 1.0)
//!
//! All integers little-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `LLAMAPK\0` |
//! | 8 | 2 | major version (1); readers refuse a larger major |
//! | 10 | 2 | minor version (0); readers ignore unknown JSON fields of a newer minor |
//! | 12 | 4 | flags, must be 0 |
//! | 16 | 8 | `header_offset`: absolute offset of the JSON header |
//! | 24 | 8 | `header_len`: its length in bytes (≤ 256 MiB) |
//! | 32 | 4 | crc32c of the header bytes |
//! | 36 | 4 | reserved, 0 |
//! | 40 | 8 | `file_len`: total file length (detects truncation) |
//! | 48 | 16 | reserved, 0 |
//! | 64 | … | tensor and blob data, each starting at a multiple of 64, zero padding between |
//! | `header_offset` | `header_len` | UTF-8 JSON header, the last bytes of the file |
//!
//! The header is a JSON object:
//! `{"config": {…}, "tokenizer": {…}, "provenance": {…}, "tensors": [...], "blobs": [...]}`;
//! see [`ModelConfig`], [`TokenizerData`], [`Provenance`], [`header::TensorEntry`] and
//! [`header::BlobEntry`] for the fields. Each tensor entry has `name`, `dtype` (a name from
//! [`DTYPES`]), `shape` (outermost first, PyTorch order: a linear weight is `[out, in]`),
//! absolute `offset`, `nbytes` (exactly the dtype's size of the shape) and `crc32c`
//! (Castagnoli, as the number). Rows are contiguous; quantized rows are sequences of the
//! `#[repr(C)]` blocks of [`blocks`], identical to ggml's. Tensor names and Q/K row order are
//! Meta's (`layers.0.attention.wq.weight`).
//!
//! A file that holds any Llama tensor (Meta's names: [`llama`]) is a model: it holds exactly
//! the tensors its config implies, with the config's shapes, or the reader (and the writer)
//! refuses it with [`Error::ConfigMismatch`] naming the tensor and both numbers. Other files are
//! plain containers of named tensors.
//!
//! The header comes last so the writer can stream tensors without knowing their checksums in
//! advance; the preamble is rewritten once at the end, then the temp file is renamed.
// `unsafe` only in the one mmap constructor (`Lpk::open`), which allows it locally.
#![deny(unsafe_code)]

pub mod blocks;
pub mod dtype;
pub mod edit;
pub mod error;
pub mod header;
pub mod llama;
pub mod meta;
pub mod output;
pub mod reader;
pub mod suggest;
pub mod testing;
pub mod writer;

pub use dtype::{DTYPES, DType, DTypeInfo};
pub use error::{Error, Result};
pub use meta::{
    Metadata, ModelConfig, Provenance, SourceFile, TokenType, TokenizerData, TokenizerKind,
    byte_piece_value,
};
pub use reader::{Block, Container, ForeignIndex, Lpk, TensorView};
pub use writer::{Filled, LpkWriter, Slot, SlotSink, Slots, TensorSink};

/// `llamapack <version>`, recorded in provenance.
pub const TOOL_VERSION: &str = concat!("llamapack ", env!("CARGO_PKG_VERSION"));
