//! The dtype table: one row per element type, read by every crate instead of a `match` per file.
//!
//! Type ids are ggml's `ggml_type` numbers, so a GGUF export writes them unchanged.

use std::fmt;

use crate::blocks::{
    BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0,
    BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, BlockQ8_1, BlockQ8K,
};

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
    /// 32 4-bit values with an f16 scale and an f16 minimum (5 bits per weight).
    Q4_1,
    /// 32 5-bit values with one f16 scale, offset 16 (5.5 bits per weight).
    Q5_0,
    /// 32 5-bit values with an f16 scale and an f16 minimum (6 bits per weight).
    Q5_1,
    /// 256 2-bit values in 16 sub-blocks with 4-bit scales and mins (2.625 bits per weight).
    Q2K,
    /// 256 3-bit values in 16 sub-blocks with 6-bit scales (3.4375 bits per weight).
    Q3K,
    /// 256 4-bit values in 8 sub-blocks with 6-bit scales and mins (4.5 bits per weight).
    Q4K,
    /// 256 5-bit values in 8 sub-blocks with 6-bit scales and mins (5.5 bits per weight).
    Q5K,
    /// 256 6-bit values in 16 sub-blocks with int8 scales (6.5625 bits per weight).
    Q6K,
    /// 32 4-bit indices into a non-linear 16-value grid with one f16 scale (4.5 bits per weight).
    IQ4NL,
    /// 256 4-bit non-linear indices in 8 sub-blocks with 6-bit scales (4.25 bits per weight).
    IQ4XS,
    /// 256 int8 values with an f32 scale and 16 partial sums: activations of k-quant dots.
    Q8K,
    /// 32 int8 values with an f16 scale and the f16 scaled sum: activations of q4_1/q5_1 dots.
    Q8_1,
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
    /// Whether the type may be stored in a model file (q8_k and q8_1 are activations only).
    pub storable: bool,
    /// The activation format a weight row of this type is dotted with (f32 for float weights;
    /// itself for the activation-only types).
    pub vec_dot_type: DType,
    /// llama.cpp's `LLAMA_FTYPE_MOSTLY_*` id of a file whose weights are all of this type
    /// (`general.file_type` in GGUF; the `_S` mixture for q3_k/q4_k/q5_k, which have no plain
    /// one); `None` for activation-only types.
    pub llama_ftype: Option<u32>,
}

const fn row(
    dtype: DType,
    name: &'static str,
    ggml_id: u32,
    block: (usize, usize),
    vec_dot_type: DType,
    llama_ftype: Option<u32>,
) -> DTypeInfo {
    DTypeInfo {
        dtype,
        name,
        ggml_id,
        block_len: block.0,
        block_bytes: block.1,
        storable: llama_ftype.is_some(),
        vec_dot_type,
        llama_ftype,
    }
}

const fn blocks<B>(len: usize) -> (usize, usize) {
    (len, size_of::<B>())
}

/// The table, in declaration order of [`DType`]. Sizes come from the block structs themselves,
/// so they cannot drift.
pub const DTYPES: [DTypeInfo; 17] = {
    use crate::blocks::QK_K;
    use DType as D;
    [
        row(D::F32, "f32", 0, (1, 4), D::F32, Some(0)),
        row(D::F16, "f16", 1, (1, 2), D::F32, Some(1)),
        row(D::BF16, "bf16", 30, (1, 2), D::F32, Some(32)),
        row(
            D::Q8_0,
            "q8_0",
            8,
            blocks::<BlockQ8_0>(32),
            D::Q8_0,
            Some(7),
        ),
        row(
            D::Q4_0,
            "q4_0",
            2,
            blocks::<BlockQ4_0>(32),
            D::Q8_0,
            Some(2),
        ),
        row(
            D::Q4_1,
            "q4_1",
            3,
            blocks::<BlockQ4_1>(32),
            D::Q8_1,
            Some(3),
        ),
        row(
            D::Q5_0,
            "q5_0",
            6,
            blocks::<BlockQ5_0>(32),
            D::Q8_0,
            Some(8),
        ),
        row(
            D::Q5_1,
            "q5_1",
            7,
            blocks::<BlockQ5_1>(32),
            D::Q8_1,
            Some(9),
        ),
        row(
            D::Q2K,
            "q2_k",
            10,
            blocks::<BlockQ2K>(QK_K),
            D::Q8K,
            Some(10),
        ),
        row(
            D::Q3K,
            "q3_k",
            11,
            blocks::<BlockQ3K>(QK_K),
            D::Q8K,
            Some(11),
        ),
        row(
            D::Q4K,
            "q4_k",
            12,
            blocks::<BlockQ4K>(QK_K),
            D::Q8K,
            Some(14),
        ),
        row(
            D::Q5K,
            "q5_k",
            13,
            blocks::<BlockQ5K>(QK_K),
            D::Q8K,
            Some(16),
        ),
        row(
            D::Q6K,
            "q6_k",
            14,
            blocks::<BlockQ6K>(QK_K),
            D::Q8K,
            Some(18),
        ),
        row(
            D::IQ4NL,
            "iq4_nl",
            20,
            blocks::<BlockIq4Nl>(32),
            D::Q8_0,
            Some(25),
        ),
        row(
            D::IQ4XS,
            "iq4_xs",
            23,
            blocks::<BlockIq4Xs>(QK_K),
            D::Q8K,
            Some(30),
        ),
        row(D::Q8K, "q8_k", 15, blocks::<BlockQ8K>(QK_K), D::Q8K, None),
        row(D::Q8_1, "q8_1", 9, blocks::<BlockQ8_1>(32), D::Q8_1, None),
    ]
};

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

    /// The activation format a weight row of this type is dotted with.
    #[must_use]
    pub fn vec_dot_type(self) -> DType {
        self.info().vec_dot_type
    }

    /// Whether the type may be stored in a model file.
    pub fn is_storable(self) -> bool {
        self.info().storable
    }

    /// Every storable dtype, in table order.
    pub fn storable() -> impl Iterator<Item = DType> {
        DType::all().filter(|d| d.is_storable())
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
            format!(
                "unknown dtype `{s}`{} (expected one of {})",
                crate::suggest::hint(s, names.iter().copied()),
                names.join(", ")
            )
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
        for (d, bpw) in [
            (DType::Q4_1, 5.0),
            (DType::Q5_0, 5.5),
            (DType::Q5_1, 6.0),
            (DType::Q2K, 2.625),
            (DType::Q3K, 3.4375),
            (DType::Q5K, 5.5),
            (DType::IQ4NL, 4.5),
            (DType::IQ4XS, 4.25),
        ] {
            assert_eq!(d.bits_per_weight(), bpw, "{d}");
        }
        assert_eq!(DType::Q8_1.block_bytes(), 36);
        assert!(!DType::Q8_1.is_storable() && !DType::Q8K.is_storable());
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
