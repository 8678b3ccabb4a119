//! The crate's error type.

use llamapack_format::DType;

/// What can go wrong when quantizing or dequantizing a row.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input holds a NaN or an infinity; `index` is its position in the row.
    #[error("non-finite value {value} at index {index}")]
    NonFinite {
        /// Position of the first bad element in the row.
        index: usize,
        /// The value (NaN, inf or -inf).
        value: f32,
    },
    /// The row length is not a whole number of blocks.
    #[error("{dtype}: a row of {len} values is not a multiple of the block length {block_len}")]
    RowLength {
        /// Target or source type.
        dtype: DType,
        /// Number of values in the row.
        len: usize,
        /// Values per block of `dtype`.
        block_len: usize,
    },
    /// The byte buffer does not have the size of the row in `dtype`.
    #[error("{dtype}: buffer of {found} bytes, expected {expected} for {len} values")]
    ByteLength {
        /// Target or source type.
        dtype: DType,
        /// Number of values in the row.
        len: usize,
        /// Byte size of `len` values of `dtype`.
        expected: usize,
        /// Byte size of the given buffer.
        found: usize,
    },
    /// This crate has no kernels for the dtype (a dtype added to the table later).
    #[error("{0}: no kernels for this dtype")]
    Unsupported(DType),
    /// A NaN or infinity in a tensor being quantized.
    #[error("non-finite value {value} at row {row}, column {column}")]
    NonFiniteAt {
        /// Row index.
        row: usize,
        /// Column index.
        column: usize,
        /// The value.
        value: f32,
    },
    /// A tensor's stored checksum does not match its bytes.
    #[error("checksum mismatch: the input is corrupt (run `llamapack verify` on it)")]
    Corrupt,
    /// A planned tensor is missing from the input.
    #[error("not in the input file")]
    NotInInput,
    /// The plan would re-encode already quantized tensors.
    #[error(
        "{file}: {count} tensors are already quantized ({examples}); re-quantizing compounds the error: start from the f16/bf16/f32 file, or pass --allow-requantize"
    )]
    Requantize {
        /// The input file.
        file: String,
        /// How many tensors.
        count: usize,
        /// A few of them, with their types.
        examples: String,
    },
    /// An error about one tensor of a file.
    #[error("{file}: tensor `{tensor}`: {source}")]
    InTensor {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// What went wrong.
        source: Box<Error>,
    },
    /// The recipe cannot be applied to the model.
    #[error("{file}: {source}")]
    Recipe {
        /// The input file.
        file: String,
        /// What is wrong.
        source: crate::recipe::RecipeError,
    },
    /// An importance-matrix entry is unusable: bad values, or sizes that disagree with the
    /// model or with the data it is merged with.
    #[error("{file}: tensor `{tensor}`: {reason}")]
    Imatrix {
        /// The file (or run) the entry comes from.
        file: String,
        /// The tensor (`.lpk` name).
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The input statistics handed to the output-error optimizer are unusable (their size,
    /// a non-finite or negative entry, a matrix that is not positive semi-definite).
    #[error("input statistics: {reason}")]
    InputStats {
        /// What is wrong.
        reason: String,
    },
    /// A buffer handed to the optimizer or to the output-error measure has the wrong size.
    #[error("{what}: {found} values, expected {expected}")]
    Shape {
        /// Which buffer.
        what: &'static str,
        /// Its size from the other arguments.
        expected: usize,
        /// Its size.
        found: usize,
    },
    /// A block is not as the format's encoders write it.
    #[error("{dtype}: block {block}: {reason}")]
    InvalidBlock {
        /// The block's type.
        dtype: DType,
        /// Its index in the buffer.
        block: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Reading or writing a `.lpk` failed.
    #[error(transparent)]
    Format(#[from] llamapack_format::Error),
}
