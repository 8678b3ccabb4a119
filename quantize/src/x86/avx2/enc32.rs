//! q4_1, q5_0 and q5_1 encoders with AVX2, byte-identical to the scalar references
//! ([`crate::q4_1::quantize_row_q4_1_ref`], [`crate::q5_0::quantize_row_q5_0_ref`],
//! [`crate::q5_1::quantize_row_q5_1_ref`]).
//!
//! Block structure of q4_0's encoder (one block of 32 floats in four registers, its scale in
//! scalar f32 exactly as the reference computes it), with the reference's C conversions
//! reproduced lane by lane:
//! - `(int8_t)f` / `(uint8_t)f` are `cvttss2si` then the low byte: `vcvttps2dq` gives the same
//!   i32 (`0x8000_0000` for NaN, ±inf and out-of-range values, whose low byte is 0), and the low
//!   bytes are extracted exactly (mask to 0..=255, unsigned packs), never saturated;
//! - `MIN(15, ·)` / `MIN(31, ·)` act on the int8 value: a signed byte minimum;
//! - the `v < min` / `v > max` scans keep the first of equal values: vector minima and maxima
//!   give the right value, and where an extreme is zero (the only equal values with different
//!   bits are ±0; the table rejects NaN and inf) the first zero of the block is taken instead;
//! - `(x − min) · id + 0.5` is a subtraction, a multiplication and an addition, each rounded
//!   (no FMA), as in the reference.

use std::arch::x86_64::*;

use super::block32::{first_abs_max, load_block};
use crate::x86::{f32_to_f16, hmax_f32};

/// Bytes of a q4_1 block: `d`, `m`, 16 bytes of nibbles.
const Q41B: usize = 20;
/// Bytes of a q5_0 block: `d`, `qh`, 16 bytes of nibbles.
const Q50B: usize = 22;
/// Bytes of a q5_1 block: `d`, `m`, `qh`, 16 bytes of nibbles.
const Q51B: usize = 24;

/// Smallest of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn hmin_f32(v: __m256) -> f32 {
    let s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_min_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_min_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The first element of the block `v` (loaded from `xb`) that compares equal to zero.
///
/// Only called when the block has a ±0.
#[inline]
#[target_feature(enable = "avx2")]
fn first_zero(v: &[__m256; 4], xb: &[f32]) -> f32 {
    let z = _mm256_setzero_ps();
    let hit = |b: __m256| _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(b, z)) as u32;
    let mask = hit(v[0]) | hit(v[1]) << 8 | hit(v[2]) << 16 | hit(v[3]) << 24;
    xb[mask.trailing_zeros() as usize]
}

/// The block's minimum and maximum as [`crate::q4_1::min_max`] scans them (first of equal
/// values wins, which decides the sign of a zero extreme).
#[inline]
#[target_feature(enable = "avx2")]
fn min_max(v: &[__m256; 4], xb: &[f32]) -> (f32, f32) {
    let lo = _mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3]));
    let hi = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
    let (mut min, mut max) = (hmin_f32(lo), hmax_f32(hi));
    if min == 0.0 || max == 0.0 {
        let z = first_zero(v, xb);
        if min == 0.0 {
            min = z;
        }
        if max == 0.0 {
            max = z;
        }
    }
    (min, max)
}

/// C's `(int8_t)` / `(uint8_t)` of four vectors of `vcvttps2dq` results: the low byte of every
/// lane, 32 bytes in element order.
#[inline]
#[target_feature(enable = "avx2")]
fn low_bytes(t: [__m256i; 4]) -> __m256i {
    let m = _mm256_set1_epi32(0xff);
    let t = t.map(|v| _mm256_and_si256(v, m));
    let p01 = _mm256_packus_epi32(t[0], t[1]);
    let p23 = _mm256_packus_epi32(t[2], t[3]);
    let p = _mm256_packus_epi16(p01, p23);
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// The low-byte cast of `trunc((x − min) · id + 0.5)` for the 32 values of a q4_1 / q5_1
/// block, in element order.
#[inline]
#[target_feature(enable = "avx2")]
fn affine_bytes(v: &[__m256; 4], min: f32, id: f32) -> __m256i {
    let (mv, idv, half) = (_mm256_set1_ps(min), _mm256_set1_ps(id), _mm256_set1_ps(0.5));
    low_bytes(v.map(|b| {
        _mm256_cvttps_epi32(_mm256_add_ps(
            _mm256_mul_ps(_mm256_sub_ps(b, mv), idv),
            half,
        ))
    }))
}

/// Byte `j` of the 16: `lo[j] | (hi[j] << 4)` as u8 (`lo` whole, as ggml ORs the full byte),
/// from the bytes of elements `j` (`lo`, low half of `q`) and `j + 16` (`hi`, high half).
#[inline]
#[target_feature(enable = "avx2")]
fn pack_nibbles(q: __m256i, lo_mask: __m128i) -> __m128i {
    let lo = _mm_and_si128(_mm256_castsi256_si128(q), lo_mask);
    let hi = _mm256_extracti128_si256::<1>(q);
    _mm_or_si128(
        lo,
        _mm_and_si128(_mm_slli_epi16::<4>(hi), _mm_set1_epi8(0xf0u8 as i8)),
    )
}

/// Bit 4 of each of the 32 bytes of `q`, element `j` in bit `j` (ggml's `qh`).
#[inline]
#[target_feature(enable = "avx2")]
fn bit4_mask(q: __m256i) -> u32 {
    // bit 4 of every byte to bit 7 (the 16-bit shift carries nothing into bit 7 of a byte)
    _mm256_movemask_epi8(_mm256_slli_epi16::<3>(q)) as u32
}

/// `1 / d`, or 0 where `d` is ±0 (the references' `id`).
#[inline(always)]
fn inverse(d: f32) -> f32 {
    if d == 0.0 { 0.0 } else { 1.0 / d }
}

/// q4_1 encoder, byte-identical to [`crate::q4_1::quantize_row_q4_1_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q4_1(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == Q41B * nb);
    for (i, out) in y.chunks_exact_mut(Q41B).enumerate() {
        let xb = &x[32 * i..32 * i + 32];
        // SAFETY: i < nb, so block i is inside x.
        let v = unsafe { load_block(x, i) };
        let (min, max) = min_max(&v, xb);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        out[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        out[2..4].copy_from_slice(&f32_to_f16(min).to_le_bytes());
        let q = _mm256_min_epi8(affine_bytes(&v, min, id), _mm256_set1_epi8(15));
        let packed = pack_nibbles(q, _mm_set1_epi8(-1));
        // SAFETY: out is 20 bytes; bytes 4..20 hold the 16 packed bytes.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(4).cast(), packed) };
    }
}

/// q5_0 encoder, byte-identical to [`crate::q5_0::quantize_row_q5_0_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q5_0(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == Q50B * nb);
    for (i, out) in y.chunks_exact_mut(Q50B).enumerate() {
        // SAFETY: i < nb, so block i is inside x.
        let v = unsafe { load_block(x, i) };
        let d = first_abs_max(&v, &x[32 * i..32 * i + 32]) / -16.0;
        let id = inverse(d);
        let (idv, off) = (_mm256_set1_ps(id), _mm256_set1_ps(16.5));
        let q =
            low_bytes(v.map(|b| _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(b, idv), off))));
        let q = _mm256_min_epi8(q, _mm256_set1_epi8(31));
        out[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        out[2..6].copy_from_slice(&bit4_mask(q).to_le_bytes());
        let packed = pack_nibbles(q, _mm_set1_epi8(0x0f));
        // SAFETY: out is 22 bytes; bytes 6..22 hold the 16 packed bytes.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(6).cast(), packed) };
    }
}

/// q5_1 encoder, byte-identical to [`crate::q5_1::quantize_row_q5_1_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q5_1(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == Q51B * nb);
    for (i, out) in y.chunks_exact_mut(Q51B).enumerate() {
        let xb = &x[32 * i..32 * i + 32];
        // SAFETY: i < nb, so block i is inside x.
        let v = unsafe { load_block(x, i) };
        let (min, max) = min_max(&v, xb);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        let q = affine_bytes(&v, min, id);
        out[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        out[2..4].copy_from_slice(&f32_to_f16(min).to_le_bytes());
        out[4..8].copy_from_slice(&bit4_mask(q).to_le_bytes());
        let packed = pack_nibbles(q, _mm_set1_epi8(0x0f));
        // SAFETY: out is 24 bytes; bytes 8..24 hold the 16 packed bytes.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(8).cast(), packed) };
    }
}
