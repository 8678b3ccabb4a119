//! `#[repr(C)]` block structs, byte-compatible with ggml's `block_q8_0`, `block_q4_0`,
//! `block_q4_K`, `block_q6_K` and `block_q8_K`.
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
/// Bytes of packed 6-bit scales and mins in a q4_k block.
pub const K_SCALE_SIZE: usize = 12;

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
