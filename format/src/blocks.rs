//! `#[repr(C)]` block structs, byte-compatible with ggml's `block_*` structs of
//! `ggml-common.h`: q8_0, q8_1, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K, q8_K,
//! iq4_nl and iq4_xs.
//!
//! Every struct is `Pod`, has alignment ≤ 4 and a compile-time size check, so a 64-byte aligned
//! byte slice from the mmap can be viewed as `&[BlockQ4_0]` without copying.

use bytemuck::{Pod, Zeroable};
use half::f16;

/// Elements per block of the k-quants.
pub const QK_K: usize = 256;
/// Elements per block of q8_0 / q4_0.
pub const QK8_0: usize = 32;
/// Elements per block of q4_0.
pub const QK4_0: usize = 32;
/// Elements per block of q4_1 / q5_0 / q5_1 / q8_1.
pub const QK4_1: usize = 32;
/// Elements per block of q5_0 / q5_1.
pub const QK5_0: usize = 32;
/// Elements per block of q8_1.
pub const QK8_1: usize = 32;
/// Elements per block of iq4_nl.
pub const QK4_NL: usize = 32;
/// Bytes of packed 6-bit scales and mins in a q4_k / q5_k block.
pub const K_SCALE_SIZE: usize = 12;

/// The 16 values of the non-linear 4-bit grid of iq4_nl / iq4_xs (ggml's `kvalues_iq4nl`).
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// q8_0: `x[i] = d * qs[i]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale (`amax / 127`).
    pub d: f16,
    /// Quantized values.
    pub qs: [i8; QK8_0],
}
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// q4_0: `x[j] = d * ((qs[j] & 0xF) - 8)`, `x[j + 16] = d * ((qs[j] >> 4) - 8)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale (signed max / −8).
    pub d: f16,
    /// Nibbles: byte j holds element j (low) and element j + 16 (high).
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// q4_1: `x[j] = d * (qs[j] & 0xF) + m`, `x[j + 16] = d * (qs[j] >> 4) + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale (`(max − min) / 15`).
    pub d: f16,
    /// Minimum.
    pub m: f16,
    /// Nibbles: byte j holds element j (low) and element j + 16 (high).
    pub qs: [u8; QK4_1 / 2],
}
const _: () = assert!(size_of::<BlockQ4_1>() == 20);

/// q5_0: `x[j] = d * (q[j] - 16)` with 5-bit `q`: the low 4 bits in `qs` as q4_0, bit 4 of
/// element j in bit j of the little-endian `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale (signed max / −16).
    pub d: f16,
    /// Fifth bits, element j in bit j (little-endian u32).
    pub qh: [u8; 4],
    /// Low nibbles: byte j holds element j (low) and element j + 16 (high).
    pub qs: [u8; QK5_0 / 2],
}
const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// q5_1: `x[j] = d * q[j] + m` with 5-bit `q` packed as in q5_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale (`(max − min) / 31`).
    pub d: f16,
    /// Minimum.
    pub m: f16,
    /// Fifth bits, element j in bit j (little-endian u32).
    pub qh: [u8; 4],
    /// Low nibbles: byte j holds element j (low) and element j + 16 (high).
    pub qs: [u8; QK5_0 / 2],
}
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// q8_1: activation format of the q4_1 / q5_1 dots: `x[i] = d * qs[i]`, `s = d * Σ qs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale (`amax / 127`).
    pub d: f16,
    /// `d * Σ qs[i]`.
    pub s: f16,
    /// Quantized values.
    pub qs: [i8; QK8_1],
}
const _: () = assert!(size_of::<BlockQ8_1>() == 36);

/// q2_k: 16 sub-blocks of 16; `x = d * (scales[i] & 0xF) * q - dmin * (scales[i] >> 4)` with
/// 2-bit `q`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ2K {
    /// Sub-block scales (low nibble) and mins (high nibble), 4 bits each.
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants, 4 per byte.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale of the quantized scales.
    pub d: f16,
    /// Super-block scale of the quantized mins.
    pub dmin: f16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// q3_k: 16 sub-blocks of 16; `x = d * (sc - 32) * (q - 4·!hbit)` with 3-bit `q` (2 low bits in
/// `qs`, the high bit in `hmask`) and 6-bit signed scales packed in `scales`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ3K {
    /// High bits of the quants.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits of the quants.
    pub qs: [u8; QK_K / 4],
    /// 16 scales, 6 bits each, packed.
    pub scales: [u8; 12],
    /// Super-block scale.
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// q4_k: 8 sub-blocks of 32; `x = d * sc * q - dmin * m` with 6-bit `sc`, `m` packed in
/// `scales`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale of the quantized scales.
    pub d: f16,
    /// Super-block scale of the quantized mins.
    pub dmin: f16,
    /// 8 scales and 8 mins, 6 bits each, packed as ggml's `get_scale_min_k4` reads them.
    pub scales: [u8; K_SCALE_SIZE],
    /// 4-bit quants: 32 bytes per pair of sub-blocks (low nibbles first sub-block, high second).
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

/// q5_k: 8 sub-blocks of 32; `x = d * sc * q - dmin * m` with 5-bit `q` (low 4 bits in `qs`
/// as q4_k, the fifth in `qh`) and 6-bit `sc`, `m` packed as q4_k's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale of the quantized scales.
    pub d: f16,
    /// Super-block scale of the quantized mins.
    pub dmin: f16,
    /// 8 scales and 8 mins, 6 bits each, packed as in q4_k.
    pub scales: [u8; K_SCALE_SIZE],
    /// Fifth bits: bit `i` of byte `j` belongs to element `32·i + j`.
    pub qh: [u8; QK_K / 8],
    /// Low 4 bits, as in q4_k.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5K>() == 176);

/// q6_k: 16 sub-blocks of 16; `x = d * scales[i] * (q - 32)` with 6-bit `q`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low 4 bits of the quants.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits of the quants.
    pub qh: [u8; QK_K / 4],
    /// Sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale.
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// q8_k: activation format of k-quant dot products.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    /// Scale.
    pub d: f32,
    /// Quantized values.
    pub qs: [i8; QK_K],
    /// Sums of each group of 16 quants.
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);

/// iq4_nl: 32 4-bit indices into [`KVALUES_IQ4NL`] with one f16 scale: `x = d * kvalues[q]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIq4Nl {
    /// Scale.
    pub d: f16,
    /// Indices: byte j holds element j (low) and element j + 16 (high).
    pub qs: [u8; QK4_NL / 2],
}
const _: () = assert!(size_of::<BlockIq4Nl>() == 18);

/// iq4_xs: 8 sub-blocks of 32 indices into [`KVALUES_IQ4NL`]; `x = d * (ls - 32) * kvalues[q]`
/// with 6-bit sub-block scales `ls` (low 4 bits in `scales_l`, high 2 in `scales_h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIq4Xs {
    /// Super-block scale.
    pub d: f16,
    /// High 2 bits of the 8 sub-block scales (sub-block i in bits 2i..2i+2).
    pub scales_h: u16,
    /// Low 4 bits of the sub-block scales (sub-block 2k in the low nibble of byte k).
    pub scales_l: [u8; QK_K / 64],
    /// Indices, 32 per sub-block, packed as iq4_nl's.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockIq4Xs>() == 136);
