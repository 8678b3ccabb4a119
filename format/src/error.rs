//! The error type of this crate. Every variant names the file, and the tensor where one is
//! involved, so a user can tell which input is at fault.

use std::path::PathBuf;

use crate::DType;

/// Errors from reading, validating or writing a `.lpk` file.
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
    /// The file is shorter than its preamble says or needs.
    #[error("{file}: truncated file: {found} bytes, expected at least {expected}")]
    Truncated {
        /// The file.
        file: String,
        /// Bytes present.
        found: u64,
        /// Bytes needed.
        expected: u64,
    },
    /// The first bytes are not the `.lpk` magic.
    #[error("{file}: not a .lpk file (magic {found:02x?}, expected {expected:02x?})")]
    BadMagic {
        /// The file.
        file: String,
        /// What was found.
        found: [u8; 8],
        /// The magic.
        expected: [u8; 8],
    },
    /// Written by a newer, incompatible version of llamapack.
    #[error(
        "{file}: format version {major}.{minor} is newer than this reader supports ({supported}.x); upgrade llamapack"
    )]
    UnsupportedVersion {
        /// The file.
        file: String,
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
        /// Highest supported major version.
        supported: u16,
    },
    /// The preamble is inconsistent (header out of range, wrong length, bad checksum…).
    #[error("{file}: corrupt preamble: {reason}")]
    BadPreamble {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The JSON header does not parse.
    #[error("{file}: corrupt header: {source}")]
    HeaderJson {
        /// The file.
        file: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A tensor entry is invalid.
    #[error("{file}: tensor `{tensor}`: {reason}")]
    BadTensor {
        /// The file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The model config is invalid.
    #[error("{file}: invalid model config: {reason}")]
    BadConfig {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer is invalid.
    #[error("{file}: invalid tokenizer: {reason}")]
    BadTokenizer {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The model config contradicts a tensor (its shape, its layer, its presence).
    #[error("{file}: the model config and tensor `{tensor}` disagree: {reason}")]
    ConfigMismatch {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// How, with both numbers.
        reason: String,
    },
    /// A tensor was asked for that the file does not have.
    #[error("{file}: no tensor named `{tensor}`")]
    MissingTensor {
        /// The file.
        file: String,
        /// The tensor name.
        tensor: String,
    },
    /// A tensor was viewed as the wrong element type.
    #[error("tensor `{tensor}` is {found}, not {expected}")]
    WrongDType {
        /// The tensor name.
        tensor: String,
        /// Requested type.
        expected: DType,
        /// Stored type.
        found: DType,
    },
    /// The file is another format than `.lpk` (a GGUF, a zip…); says what to do instead.
    #[error("{file}: {reason}")]
    NotLpk {
        /// The file.
        file: String,
        /// What it is and what to do.
        reason: String,
    },
    /// An output path cannot be written (its folder is missing, it is a folder…).
    #[error("{}: {reason}", path.display())]
    BadOutput {
        /// The output path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An output is the same file as an input (one path, `..`, a symlink or a hard link).
    #[error("refusing to overwrite the input {input} with the output {output} (the same file)")]
    OutputIsInput {
        /// The output, as given (with the option naming it, when known).
        output: String,
        /// The input.
        input: String,
    },
    /// Two outputs of one command are the same file.
    #[error("refusing to write {first} and {second}: they are the same file")]
    SameOutputs {
        /// One output.
        first: String,
        /// The other.
        second: String,
    },
    /// A writer was given inconsistent input.
    #[error("{file}: cannot write tensor `{tensor}`: {reason}")]
    Write {
        /// The output file.
        file: String,
        /// The tensor or blob name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The index of a container read in place ([`crate::Lpk::from_index`]) is inconsistent.
    #[error("{file}: invalid tensor index: {reason}")]
    BadIndex {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
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
