//! The error type of this crate.

use llamapack_format::DType;

/// Errors from loading a model, tokenizing, running or reading `.npy` files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `.lpk` reader failed (missing tensor, wrong dtype…).
    #[error(transparent)]
    Format(#[from] llamapack_format::Error),
    /// A tensor has a shape other than the config implies.
    #[error("tensor `{tensor}`: shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor name.
        tensor: String,
        /// The shape in the file.
        found: Vec<u64>,
        /// The shape the config implies.
        expected: Vec<u64>,
    },
    /// A tensor is stored in a dtype the runner cannot use in that role.
    #[error("tensor `{tensor}`: dtype {dtype} is not supported here ({reason})")]
    DType {
        /// The tensor name.
        tensor: String,
        /// Its dtype.
        dtype: DType,
        /// Why.
        reason: String,
    },
    /// A kernel of `llamapack-quantize` refused its input.
    #[error("kernel error on {dtype}: {reason}")]
    Kernel {
        /// The dtype involved.
        dtype: DType,
        /// What went wrong.
        reason: String,
    },
    /// The tokenizer data is unusable.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A feature that is not implemented yet.
    #[error("{0}")]
    Unsupported(String),
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab} pieces")]
    TokenId {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A position past the context window of the state.
    #[error(
        "position {pos} + {n} tokens exceeds the context length {ctx} (use a shorter prompt or fewer tokens)"
    )]
    Context {
        /// First position of the request.
        pos: usize,
        /// Number of tokens requested.
        n: usize,
        /// Context length of the state.
        ctx: usize,
    },
    /// Invalid argument to an API call.
    #[error("{0}")]
    Invalid(String),
    /// An `.npy` file is malformed or of an unsupported kind.
    #[error("{file}: {reason}")]
    Npy {
        /// The file (or `<buffer>`).
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error, with the path.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Collecting an importance matrix met a NaN or an infinity.
    #[error(
        "importance matrix: the sums of the input of {site} are no longer finite (NaN or ±inf activations)"
    )]
    NonFiniteActivation {
        /// Which input, e.g. `w2 of layer 3`.
        site: String,
    },
    /// An importance matrix could not be built or checked.
    #[error(transparent)]
    Quantize(#[from] llamapack_quantize::Error),
    /// The thread pool could not be built.
    #[error("cannot start the thread pool: {0}")]
    ThreadPool(String),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
