//! The fixed 64-byte preamble and the JSON header, with their validation.
//!
//! See the crate docs for the byte layout.

use serde::{Deserialize, Serialize};

use crate::meta::Metadata;

/// First eight bytes of every `.lpk` file.
pub const MAGIC: [u8; 8] = *b"LLAMAPK\0";
/// Major version written and the highest one read; a reader refuses a newer major.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version written: additions a reader of the same major may ignore.
pub const VERSION_MINOR: u16 = 0;
/// Size of the preamble; tensor data starts at or after it.
pub const PREAMBLE_LEN: usize = 64;
/// Alignment of every tensor and blob offset.
pub const ALIGN: u64 = 64;
/// Largest JSON header a reader accepts (a 150k-piece vocabulary with merges is ~10 MB).
pub const MAX_HEADER_LEN: u64 = 256 << 20;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;

/// The decoded preamble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    /// Major format version.
    pub major: u16,
    /// Minor format version.
    pub minor: u16,
    /// Absolute offset of the JSON header.
    pub header_offset: u64,
    /// Length of the JSON header.
    pub header_len: u64,
    /// crc32c of the JSON header bytes.
    pub header_crc32c: u32,
    /// Length of the whole file.
    pub file_len: u64,
}

impl Preamble {
    /// Encodes to the on-disk 64 bytes.
    pub fn to_bytes(&self) -> [u8; PREAMBLE_LEN] {
        let mut b = [0u8; PREAMBLE_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.minor.to_le_bytes());
        // 12..16: flags, zero.
        b[16..24].copy_from_slice(&self.header_offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.header_len.to_le_bytes());
        b[32..36].copy_from_slice(&self.header_crc32c.to_le_bytes());
        // 36..40 reserved.
        b[40..48].copy_from_slice(&self.file_len.to_le_bytes());
        // 48..64 reserved.
        b
    }

    /// Decodes the fields; checks nothing but length (see the reader for validation).
    pub fn from_bytes(b: &[u8; PREAMBLE_LEN]) -> ([u8; 8], u32, Preamble) {
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&b[0..8]);
        (
            magic,
            u32_at(12),
            Preamble {
                major: u16_at(8),
                minor: u16_at(10),
                header_offset: u64_at(16),
                header_len: u64_at(24),
                header_crc32c: u32_at(32),
                file_len: u64_at(40),
            },
        )
    }
}

/// One tensor of the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// Meta-style name (`layers.0.attention.wq.weight`).
    pub name: String,
    /// Dtype name from the table (`"q4_k"`).
    pub dtype: String,
    /// Shape, outermost first (PyTorch order: `[out_features, in_features]`).
    pub shape: Vec<u64>,
    /// Absolute byte offset in the file, a multiple of 64.
    pub offset: u64,
    /// Byte length (exactly `dtype.tensor_bytes(shape)`).
    pub nbytes: u64,
    /// crc32c (Castagnoli) of the bytes.
    pub crc32c: u32,
}

/// A named opaque byte string stored like a tensor (e.g. the original `tokenizer.model`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// Name (`tokenizer.model`).
    pub name: String,
    /// Absolute byte offset, a multiple of 64.
    pub offset: u64,
    /// Byte length.
    pub nbytes: u64,
    /// crc32c of the bytes.
    pub crc32c: u32,
}

/// The JSON header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Config, tokenizer, provenance.
    #[serde(flatten)]
    pub meta: Metadata,
    /// Tensor index in file order.
    pub tensors: Vec<TensorEntry>,
    /// Opaque blobs in file order.
    #[serde(default)]
    pub blobs: Vec<BlobEntry>,
}
