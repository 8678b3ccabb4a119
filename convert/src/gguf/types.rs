//! The ggml tensor types GGUF files may hold: one table row per type (id, name, block length,
//! block bytes), from ggml's `ggml_type` enum and the `block_*` structs of `ggml-common.h`.
//!
//! Every id ggml ever assigned that is still valid in a GGUF file is listed, so a file using a
//! type we cannot import is still read (and its size checked) and only the import names it.

use std::fmt;

use llamapack_format::DType;

/// A ggml tensor type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    IQ2XXS,
    IQ2XS,
    IQ3XXS,
    IQ1S,
    IQ4NL,
    IQ3S,
    IQ2S,
    IQ4XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
    Q1_0,
}

/// One row of [`GGML_TYPES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GgmlTypeInfo {
    /// The type.
    pub ty: GgmlType,
    /// ggml's `ggml_type` number (the GGUF tensor type field).
    pub id: u32,
    /// ggml's lower-case name (`q4_K` is written `q4_k`).
    pub name: &'static str,
    /// Elements per block.
    pub block_len: u64,
    /// Bytes per block.
    pub block_bytes: u64,
}

const fn row(
    ty: GgmlType,
    id: u32,
    name: &'static str,
    block_len: u64,
    block_bytes: u64,
) -> GgmlTypeInfo {
    GgmlTypeInfo {
        ty,
        id,
        name,
        block_len,
        block_bytes,
    }
}

/// The table, in declaration order of [`GgmlType`].
///
/// `q8_1` is 36 bytes (`ggml_half d, s; int8 qs[32]`, checked by a `static_assert` in ggml);
/// `gguf-py`'s `GGML_QUANT_SIZES` still says 40 from before ggml switched those fields to f16.
pub const GGML_TYPES: [GgmlTypeInfo; 34] = [
    row(GgmlType::F32, 0, "f32", 1, 4),
    row(GgmlType::F16, 1, "f16", 1, 2),
    row(GgmlType::Q4_0, 2, "q4_0", 32, 18),
    row(GgmlType::Q4_1, 3, "q4_1", 32, 20),
    row(GgmlType::Q5_0, 6, "q5_0", 32, 22),
    row(GgmlType::Q5_1, 7, "q5_1", 32, 24),
    row(GgmlType::Q8_0, 8, "q8_0", 32, 34),
    row(GgmlType::Q8_1, 9, "q8_1", 32, 36),
    row(GgmlType::Q2K, 10, "q2_k", 256, 84),
    row(GgmlType::Q3K, 11, "q3_k", 256, 110),
    row(GgmlType::Q4K, 12, "q4_k", 256, 144),
    row(GgmlType::Q5K, 13, "q5_k", 256, 176),
    row(GgmlType::Q6K, 14, "q6_k", 256, 210),
    row(GgmlType::Q8K, 15, "q8_k", 256, 292),
    row(GgmlType::IQ2XXS, 16, "iq2_xxs", 256, 66),
    row(GgmlType::IQ2XS, 17, "iq2_xs", 256, 74),
    row(GgmlType::IQ3XXS, 18, "iq3_xxs", 256, 98),
    row(GgmlType::IQ1S, 19, "iq1_s", 256, 50),
    row(GgmlType::IQ4NL, 20, "iq4_nl", 32, 18),
    row(GgmlType::IQ3S, 21, "iq3_s", 256, 110),
    row(GgmlType::IQ2S, 22, "iq2_s", 256, 82),
    row(GgmlType::IQ4XS, 23, "iq4_xs", 256, 136),
    row(GgmlType::I8, 24, "i8", 1, 1),
    row(GgmlType::I16, 25, "i16", 1, 2),
    row(GgmlType::I32, 26, "i32", 1, 4),
    row(GgmlType::I64, 27, "i64", 1, 8),
    row(GgmlType::F64, 28, "f64", 1, 8),
    row(GgmlType::IQ1M, 29, "iq1_m", 256, 56),
    row(GgmlType::BF16, 30, "bf16", 1, 2),
    row(GgmlType::TQ1_0, 34, "tq1_0", 256, 54),
    row(GgmlType::TQ2_0, 35, "tq2_0", 256, 66),
    row(GgmlType::MXFP4, 39, "mxfp4", 32, 17),
    row(GgmlType::NVFP4, 40, "nvfp4", 64, 36),
    row(GgmlType::Q1_0, 41, "q1_0", 128, 18),
];

impl GgmlType {
    /// This type's row of [`GGML_TYPES`].
    pub fn info(self) -> &'static GgmlTypeInfo {
        // Indexed by declaration order; checked by a test.
        &GGML_TYPES[self as usize]
    }

    /// Looks a ggml type id up; `None` for ids ggml never assigned or has retired.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GGML_TYPES.iter().find(|r| r.id == id).map(|r| r.ty)
    }

    /// ggml type id.
    pub fn id(self) -> u32 {
        self.info().id
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Elements per block.
    pub fn block_len(self) -> u64 {
        self.info().block_len
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        self.info().block_bytes
    }

    /// The `.lpk` dtype with the same bytes, if there is one (`q8_k` is not storable).
    pub fn to_dtype(self) -> Option<DType> {
        DType::from_ggml_id(self.id()).filter(|d| d.info().storable)
    }

    /// The GGUF type of a `.lpk` dtype.
    pub fn from_dtype(d: DType) -> GgmlType {
        GgmlType::from_id(d.ggml_id()).expect("every lpk dtype is a ggml type")
    }

    /// Byte size of a tensor with dims `ne` (innermost first), or `None` when `ne[0]` is not a
    /// whole number of blocks or the size overflows.
    pub fn tensor_bytes(self, ne: &[u64]) -> Option<u64> {
        let (&row, outer) = ne.split_first()?;
        if row % self.block_len() != 0 {
            return None;
        }
        let mut n = (row / self.block_len()).checked_mul(self.block_bytes())?;
        for &d in outer {
            n = n.checked_mul(d)?;
        }
        Some(n)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A GGUF metadata value type (`gguf_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    /// From the stored `u32`.
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType as T;
        Some(match id {
            0 => T::U8,
            1 => T::I8,
            2 => T::U16,
            3 => T::I16,
            4 => T::U32,
            5 => T::I32,
            6 => T::F32,
            7 => T::Bool,
            8 => T::String,
            9 => T::Array,
            10 => T::U64,
            11 => T::I64,
            12 => T::F64,
            _ => return None,
        })
    }

    /// The stored `u32`.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// gguf-py's name (`UINT32`, `STRING`…).
    pub fn name(self) -> &'static str {
        use ValueType as T;
        match self {
            T::U8 => "UINT8",
            T::I8 => "INT8",
            T::U16 => "UINT16",
            T::I16 => "INT16",
            T::U32 => "UINT32",
            T::I32 => "INT32",
            T::F32 => "FLOAT32",
            T::Bool => "BOOL",
            T::String => "STRING",
            T::Array => "ARRAY",
            T::U64 => "UINT64",
            T::I64 => "INT64",
            T::F64 => "FLOAT64",
        }
    }

    /// The fewest bytes one value of this type takes in a file (a string's or an array's
    /// header); bounds how many elements a count may claim.
    pub fn min_size(self) -> u64 {
        use ValueType as T;
        match self {
            T::U8 | T::I8 | T::Bool => 1,
            T::U16 | T::I16 => 2,
            T::U32 | T::I32 | T::F32 => 4,
            T::U64 | T::I64 | T::F64 | T::String => 8,
            T::Array => 12,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_type_table_is_indexed_by_declaration_order() {
        for (i, r) in GGML_TYPES.iter().enumerate() {
            assert_eq!(r.ty as usize, i, "{}", r.name);
            assert_eq!(GgmlType::from_id(r.id), Some(r.ty));
        }
    }

    #[test]
    fn gguf_types_agree_with_the_lpk_dtype_table() {
        for d in DType::all() {
            let g = GgmlType::from_dtype(d);
            assert_eq!(g.block_len(), d.block_len() as u64, "{d}");
            assert_eq!(g.block_bytes(), d.block_bytes() as u64, "{d}");
            assert_eq!(g.name(), d.name());
        }
        assert_eq!(GgmlType::Q8K.to_dtype(), None);
        assert_eq!(GgmlType::Q8_1.to_dtype(), None);
        assert_eq!(GgmlType::Q4_1.to_dtype(), Some(DType::Q4_1));
        assert_eq!(GgmlType::IQ2XXS.to_dtype(), None);
        assert_eq!(GgmlType::from_id(4), None);
    }

    #[test]
    fn gguf_tensor_bytes_checks_blocks_and_overflow() {
        assert_eq!(GgmlType::Q4_0.tensor_bytes(&[64, 3]), Some(3 * 2 * 18));
        assert_eq!(GgmlType::Q4_0.tensor_bytes(&[65, 3]), None);
        assert_eq!(GgmlType::BF16.tensor_bytes(&[7, 5]), Some(70));
        assert_eq!(GgmlType::F32.tensor_bytes(&[2, u64::MAX]), None);
        for id in 0..64 {
            if let Some(t) = GgmlType::from_id(id) {
                assert_eq!(t.id(), id);
            }
        }
    }
}
