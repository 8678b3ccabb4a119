//! The dots of the 32-value weight formats q4_1·q8_1, q5_0·q8_0, q5_1·q8_1 and iq4_nl·q8_0
//! with NEON.
//!
//! They have q4_0's block loop: each block's integer sum is exact (in 4 i32 lanes) and its
//! scale products are the reference's (`f32(dx) · f32(dy)`, `f32(mx) · f32(sy)`), but the sum
//! over blocks is taken in 2 accumulators of 4 lanes with fused multiply-adds, and the `m · s`
//! terms of q4_1 / q5_1 in one scalar f32 sum added at the end. Against the reference's
//! sequential fold a result is within `4·ε·(blocks + 8)·M`, `M = Σᵢ|(wᵢ − m)·aᵢ| +
//! Σ_blocks |m · s|` (`m = 0` for q5_0 and iq4_nl; the bound `quantize/tests/levels.rs`
//! checks).

use std::arch::aarch64::*;

use llamapack_format::blocks::KVALUES_IQ4NL;

use super::{dot16, f16_at, ld_s8, ld_u8};

/// Bytes of a q8_0 block: `d`, 32 quants.
const QB: usize = 34;
/// Bytes of a q8_1 block: `d`, `s`, 32 quants.
const Q81B: usize = 36;
/// Bytes of a q4_1 block: `d`, `m`, 16 bytes of nibbles.
const Q41B: usize = 20;
/// Bytes of a q5_0 block: `d`, `qh`, 16 bytes of nibbles.
const Q50B: usize = 22;
/// Bytes of a q5_1 block: `d`, `m`, `qh`, 16 bytes of nibbles.
const Q51B: usize = 24;
/// Bytes of an iq4_nl block: `d`, 16 bytes of indices.
const IQ4NLB: usize = 18;

/// `Σ_blocks (d · Σ lanes(s) + c)` over the blocks of a row of `n` values, where
/// `block(w_block, a_block) = (s, d, c)`: `s` the block's integer sum in 4 lanes, `d` its scale
/// product, `c` its constant term (see the module doc for the order of the additions).
#[inline]
#[target_feature(enable = "neon")]
fn fold_blocks(
    n: usize,
    w: &[u8],
    a: &[u8],
    (wb, ab): (usize, usize),
    block: impl Fn(&[u8], &[u8]) -> (int32x4_t, f32, f32),
) -> f32 {
    let nb = n / 32;
    assert!(w.len() == wb * nb && a.len() == ab * nb);
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut consts = 0.0f32;
    for (i, (bw, ba)) in w.chunks_exact(wb).zip(a.chunks_exact(ab)).enumerate() {
        let (s, d, c) = block(bw, ba);
        acc[i & 1] = vfmaq_f32(acc[i & 1], vcvtq_f32_s32(s), vdupq_n_f32(d));
        consts += c;
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1])) + consts
}

/// The low and high nibbles of 16 bytes: elements 0..16 and 16..32 of a block.
#[inline]
#[target_feature(enable = "neon")]
fn nibbles(q: uint8x16_t) -> (uint8x16_t, uint8x16_t) {
    (vandq_u8(q, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(q))
}

/// The fifth bits of a q5 block: byte `j` of the first mask is `0xff` where bit `j` of `qh` is
/// set, of the second where bit `16 + j` is, else 0.
#[inline]
#[target_feature(enable = "neon")]
fn fifth_bits(qh: [u8; 4]) -> (uint8x16_t, uint8x16_t) {
    let bits = vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201));
    let spread = |a: u8, b: u8| vtstq_u8(vcombine_u8(vdup_n_u8(a), vdup_n_u8(b)), bits);
    (spread(qh[0], qh[1]), spread(qh[2], qh[3]))
}

/// `Σ x·a` of a block of 32 values `x` (`lo` = elements 0..16, `hi` = 16..32) against the 32
/// int8 quants of `ba` at byte `off`.
#[inline]
#[target_feature(enable = "neon")]
fn block_sum(lo: int8x16_t, hi: int8x16_t, ba: &[u8], off: usize) -> int32x4_t {
    assert!(off + 32 <= ba.len());
    // SAFETY: bytes off..off + 32 are inside ba (checked above).
    unsafe {
        dot16(
            dot16(vdupq_n_s32(0), lo, ld_s8(ba, off)),
            hi,
            ld_s8(ba, off + 16),
        )
    }
}

/// [`block_sum`] of unsigned-typed lanes (values below 128, or int8 bit patterns).
#[inline]
#[target_feature(enable = "neon")]
fn block_sum_u(lo: uint8x16_t, hi: uint8x16_t, ba: &[u8], off: usize) -> int32x4_t {
    block_sum(vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi), ba, off)
}

/// The four bytes at `off`.
#[inline(always)]
fn bytes4(b: &[u8], off: usize) -> [u8; 4] {
    [b[off], b[off + 1], b[off + 2], b[off + 3]]
}

/// q4_1·q8_1 dot (tolerance: see the module doc).
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_q4_1_q8_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    fold_blocks(n, w, a, (Q41B, Q81B), |bw, ba| {
        // SAFETY: bw is one 20-byte block; the nibbles are at 4..20.
        let (lo, hi) = nibbles(unsafe { ld_u8(bw, 4) });
        let s = block_sum_u(lo, hi, ba, 4);
        let d = f16_at(bw, 0) * f16_at(ba, 0);
        (s, d, f16_at(bw, 2) * f16_at(ba, 2))
    })
}

/// q5_0·q8_0 dot (tolerance: see the module doc).
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_q5_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let high = vdupq_n_u8(0xf0);
    fold_blocks(n, w, a, (Q50B, QB), |bw, ba| {
        // SAFETY: bw is one 22-byte block; the nibbles are at 6..22.
        let (lo, hi) = nibbles(unsafe { ld_u8(bw, 6) });
        let (mlo, mhi) = fifth_bits(bytes4(bw, 2));
        // q − 16 as int8: the nibble where bit 4 is set, else nibble − 16 = nibble | 0xf0
        let lo = vorrq_u8(lo, vbicq_u8(high, mlo));
        let hi = vorrq_u8(hi, vbicq_u8(high, mhi));
        let s = block_sum_u(lo, hi, ba, 2);
        (s, f16_at(bw, 0) * f16_at(ba, 0), 0.0)
    })
}

/// q5_1·q8_1 dot (tolerance: see the module doc).
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_q5_1_q8_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let bit4 = vdupq_n_u8(0x10);
    fold_blocks(n, w, a, (Q51B, Q81B), |bw, ba| {
        // SAFETY: bw is one 24-byte block; the nibbles are at 8..24.
        let (lo, hi) = nibbles(unsafe { ld_u8(bw, 8) });
        let (mlo, mhi) = fifth_bits(bytes4(bw, 4));
        let lo = vorrq_u8(lo, vandq_u8(mlo, bit4));
        let hi = vorrq_u8(hi, vandq_u8(mhi, bit4));
        let s = block_sum_u(lo, hi, ba, 4);
        let d = f16_at(bw, 0) * f16_at(ba, 0);
        (s, d, f16_at(bw, 2) * f16_at(ba, 2))
    })
}

/// The iq4_nl grid as 16 int8 lanes (indexed with `vqtbl1q_s8`).
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn iq4nl_grid() -> int8x16_t {
    // SAFETY: the table has 16 entries.
    unsafe { vld1q_s8(KVALUES_IQ4NL.as_ptr()) }
}

/// iq4_nl·q8_0 dot (tolerance: see the module doc).
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_iq4_nl_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let grid = iq4nl_grid();
    fold_blocks(n, w, a, (IQ4NLB, QB), |bw, ba| {
        // SAFETY: bw is one 18-byte block; the indices are at 2..18.
        let (lo, hi) = nibbles(unsafe { ld_u8(bw, 2) });
        let s = block_sum(vqtbl1q_s8(grid, lo), vqtbl1q_s8(grid, hi), ba, 2);
        (s, f16_at(ba, 0) * f16_at(bw, 0), 0.0)
    })
}
