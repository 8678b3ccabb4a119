//! The dtype table: one row per element type, read by every crate instead of a `match` per file.
//!
//! Type ids are ggml's `ggml_type` numbers, so a GGUF export writes them unchanged.

use std::fmt;

use crate::blocks::{BlockQ4_0, BlockQ4K, BlockQ6K, BlockQ8_0, BlockQ8K};

/// An element type of a tensor in a `.lpk` file.
///
/// Quantized types store rows as sequences of fixed-size blocks; a row's length must be a
/// multiple of [`DType::block_len`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16 (the top half of an f32).
    BF16,
    /// 32 int8 values with one f16 scale (8.5 bits per weight).
    Q8_0,
    /// 32 4-bit values with one f16 scale, offset 8 (4.5 bits per weight).
    Q4_0,
    /// 256 4-bit values in 8 sub-blocks with 6-bit scales and mins (4.5 bits per weight).
    Q4K,
    /// 256 6-bit values in 16 sub-blocks with int8 scales (6.5625 bits per weight).
    Q6K,
    /// 256 int8 values with an f32 scale and 16 partial sums: activations of k-quant dots.
    Q8K,
}

/// One row of the dtype table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DTypeInfo {
    /// The dtype this row describes.
    pub dtype: DType,
    /// Lower-case name used on the command line, in JSON and in `.lpk` headers.
    pub name: &'static str,
    /// ggml's `ggml_type` id (also the GGUF tensor type).
    pub ggml_id: u32,
    /// Elements per block (1 for plain floats).
    pub block_len: usize,
    /// Bytes per block.
    pub block_bytes: usize,
    /// Whether the type may be stored in a model file (q8_k is for activations only).
    pub storable: bool,
}

/// The table. Sizes come from the block structs themselves, so they cannot drift.
pub const DTYPES: [DTypeInfo; 8] = [
    DTypeInfo {
        dtype: DType::F32,
        name: "f32",
        ggml_id: 0,
        block_len: 1,
        block_bytes: 4,
        storable: true,
    },
    DTypeInfo {
        dtype: DType::F16,
        name: "f16",
        ggml_id: 1,
        block_len: 1,
        block_bytes: 2,
        storable: true,
    },
    DTypeInfo {
        dtype: DType::BF16,
        name: "bf16",
        ggml_id: 30,
        block_len: 1,
        block_bytes: 2,
        storable: true,
    },
    DTypeInfo {
        dtype: DType::Q8_0,
        name: "q8_0",
        ggml_id: 8,
        block_len: 32,
        block_bytes: size_of::<BlockQ8_0>(),
        storable: true,
    },
    DTypeInfo {
        dtype: DType::Q4_0,
        name: "q4_0",
        ggml_id: 2,
        block_len: 32,
        block_bytes: size_of::<BlockQ4_0>(),
        storable: true,
    },
    DTypeInfo {
        dtype: DType::Q4K,
        name: "q4_k",
        ggml_id: 12,
        block_len: 256,
        block_bytes: size_of::<BlockQ4K>(),
        storable: true,
    },
    DTypeInfo {
        dtype: DType::Q6K,
        name: "q6_k",
        ggml_id: 14,
        block_len: 256,
        block_bytes: size_of::<BlockQ6K>(),
        storable: true,
    },
    DTypeInfo {
        dtype: DType::Q8K,
        name: "q8_k",
        ggml_id: 15,
        block_len: 256,
        block_bytes: size_of::<BlockQ8K>(),
        storable: false,
    },
];

impl DType {
    /// Every dtype, in table order.
    pub fn all() -> impl Iterator<Item = DType> {
        DTYPES.iter().map(|r| r.dtype)
    }

    /// This dtype's row of the table.
    pub fn info(self) -> &'static DTypeInfo {
        // The table is indexed by declaration order; checked by a test.
        &DTYPES[self as usize]
    }

    /// Lower-case name (`"q4_k"`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// ggml type id.
    pub fn ggml_id(self) -> u32 {
        self.info().ggml_id
    }

    /// Elements per block.
    pub fn block_len(self) -> usize {
        self.info().block_len
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        self.info().block_bytes
    }

    /// True for the block-quantized types.
    pub fn is_quantized(self) -> bool {
        self.block_len() > 1
    }

    /// Bits per weight.
    pub fn bits_per_weight(self) -> f64 {
        (self.block_bytes() * 8) as f64 / self.block_len() as f64
    }

    /// Parses a table name (case-insensitive; `q4_K` and `Q4_K` are accepted).
    pub fn from_name(name: &str) -> Option<DType> {
        DTYPES
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .map(|r| r.dtype)
    }

    /// Looks a ggml type id up.
    pub fn from_ggml_id(id: u32) -> Option<DType> {
        DTYPES.iter().find(|r| r.ggml_id == id).map(|r| r.dtype)
    }

    /// Byte size of a row of `n` elements, or `None` if `n` is not a whole number of blocks
    /// or the size overflows.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }

    /// Byte size of a tensor of `shape` (outermost first; the last dimension is the row).
    /// `None` on overflow or when the row length is not a whole number of blocks.
    pub fn tensor_bytes(self, shape: &[u64]) -> Option<usize> {
        let (&row, outer) = shape.split_last()?;
        let mut rows: usize = 1;
        for &d in outer {
            rows = rows.checked_mul(usize::try_from(d).ok()?)?;
        }
        rows.checked_mul(self.row_bytes(usize::try_from(row).ok()?)?)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DType::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = DTYPES.iter().map(|r| r.name).collect();
            format!("unknown dtype `{s}` (expected one of {})", names.join(", "))
        })
    }
}

impl serde::Serialize for DType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for DType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DType::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown dtype `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_declaration_order() {
        for (i, row) in DTYPES.iter().enumerate() {
            assert_eq!(row.dtype as usize, i, "{}", row.name);
            assert_eq!(DType::from_name(row.name), Some(row.dtype));
            assert_eq!(DType::from_ggml_id(row.ggml_id), Some(row.dtype));
        }
    }

    #[test]
    fn bits_per_weight_match_design_table() {
        assert_eq!(DType::Q8_0.bits_per_weight(), 8.5);
        assert_eq!(DType::Q4_0.bits_per_weight(), 4.5);
        assert_eq!(DType::Q4K.bits_per_weight(), 4.5);
        assert_eq!(DType::Q6K.bits_per_weight(), 6.5625);
        assert_eq!(DType::Q8K.block_bytes(), 292);
    }

    #[test]
    fn tensor_bytes_checks_blocks_and_overflow() {
        assert_eq!(DType::Q4_0.tensor_bytes(&[3, 64]), Some(3 * 2 * 18));
        assert_eq!(DType::Q4_0.tensor_bytes(&[3, 65]), None);
        assert_eq!(DType::F32.tensor_bytes(&[u64::MAX, 2]), None);
        assert_eq!(DType::F16.tensor_bytes(&[7]), Some(14));
        assert_eq!(DType::F16.tensor_bytes(&[]), None);
    }
}
