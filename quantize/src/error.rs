//! The crate's error type.

use llamapack_format::DType;

/// What can go wrong when quantizing or dequantizing a row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
}
