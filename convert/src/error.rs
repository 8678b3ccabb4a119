//! The error type of this crate: one enum, every variant naming the file and, where one is
//! involved, the zip entry or tensor, with what was expected and what was found.

use std::path::PathBuf;

use crate::dtype::SourceDType;

/// Errors from reading a checkpoint or converting it.
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
    /// The zip container of a `.pth` file is malformed or unsupported.
    #[error("{file}: {}{reason}", entry.as_ref().map(|e| format!("entry `{e}`: ")).unwrap_or_default())]
    Zip {
        /// The file.
        file: String,
        /// The entry, when the problem is local to one.
        entry: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// The pickle stream is malformed or uses something the reader does not support.
    #[error("{file}: pickle at byte {offset}: {reason}")]
    Pickle {
        /// The file (and entry).
        file: String,
        /// Byte offset in the pickle stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The pickle names a global that is not on the allow-list; nothing was executed.
    #[error(
        "{file}: pickle references `{global}`, which is not on the allow-list of tensor-loading globals; refusing to load it (nothing was executed)"
    )]
    UnsafeGlobal {
        /// The file (and entry).
        file: String,
        /// `module.name` of the global.
        global: String,
    },
    /// A tensor is invalid: out of bounds, unsupported dtype, bad view.
    #[error("{file}: tensor `{tensor}`: {reason}")]
    Tensor {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor does not have the shape the config implies.
    #[error("{file}: tensor `{tensor}` has shape {found:?}, expected {expected:?}{hint}")]
    Shape {
        /// The file (or source directory) the tensor came from.
        file: String,
        /// The tensor.
        tensor: String,
        /// Shape implied by the config.
        expected: Box<[u64]>,
        /// Shape found.
        found: Box<[u64]>,
        /// Extra explanation (may be empty; starts with `: ` otherwise).
        hint: String,
    },
    /// An expected tensor is absent.
    #[error("{file}: missing tensor `{tensor}`")]
    MissingTensor {
        /// The file or directory.
        file: String,
        /// The tensor.
        tensor: String,
    },
    /// A tensor the importer does not know about.
    #[error("{file}: unexpected tensor `{tensor}` (not part of a Llama checkpoint)")]
    UnexpectedTensor {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
    },
    /// The set of model-parallel shards is incomplete or inconsistent.
    #[error("{dir}: {reason}")]
    Shards {
        /// The checkpoint directory.
        dir: String,
        /// What is wrong.
        reason: String,
    },
    /// Shards disagree on one tensor.
    #[error(
        "{file}: tensor `{tensor}` has shape {found:?} / dtype {found_dtype}, but shard 0 has {expected:?} / {expected_dtype}"
    )]
    ShardMismatch {
        /// The shard file that disagrees.
        file: String,
        /// The tensor.
        tensor: String,
        /// Shape in shard 0.
        expected: Box<[u64]>,
        /// Dtype in shard 0.
        expected_dtype: SourceDType,
        /// Shape in this shard.
        found: Box<[u64]>,
        /// Dtype in this shard.
        found_dtype: SourceDType,
    },
    /// Replicated (1-D) tensors differ between shards.
    #[error("{file}: replicated tensor `{tensor}` differs from shard 0 at element {index}")]
    ReplicaMismatch {
        /// The shard file that disagrees.
        file: String,
        /// The tensor.
        tensor: String,
        /// First differing element.
        index: u64,
    },
    /// `params.json` or `config.json` is invalid or disagrees with the tensors.
    #[error("{file}: {reason}")]
    Config {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer file is invalid.
    #[error("{file}: invalid tokenizer: {reason}")]
    Tokenizer {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A safetensors file is invalid.
    #[error("{file}: invalid safetensors file: {reason}")]
    Safetensors {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The source is not a checkpoint this crate can read.
    #[error("{}: {reason}", path.display())]
    UnknownSource {
        /// The path given.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },
    /// Writing the output would overwrite one of the input files.
    #[error(
        "refusing to overwrite the input {} with the output {} (the same file)",
        input.display(),
        out.display()
    )]
    OutputIsInput {
        /// The output path.
        out: PathBuf,
        /// The input it collides with.
        input: PathBuf,
    },
    /// Writing the `.lpk` failed.
    #[error(transparent)]
    Format(#[from] llamapack_format::Error),
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

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
