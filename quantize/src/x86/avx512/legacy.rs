//! q4_1·q8_1, q5_0·q8_0, q5_1·q8_1 and iq4_nl·q8_0 with AVX-512 VNNI.
//!
//! AVX2's block loops (`dot_q8_1`, `dot_q8_0` and their 4-token forms) with `vpdpbusd ymm`
//! for the integer sums and the fifth bits merged by a byte mask (`qh` is the mask). The
//! integers and f32 steps are AVX2's, so the results are within the same bound of the
//! reference (see the AVX2 module) and the 4-token dots give each token the single dot's bits.
//! q5_0 and iq4_nl also have the packed 4-token dot of q4_0 (activations by `pack_q8_0_x4`).

use std::arch::x86_64::*;

use super::block32::{dot_i8x32, dot4_packed};
use crate::x86::avx2::{
    dot_q8_0, dot_q8_1, dot4_q8_0, dot4_q8_1, iq4_nl_block, nibbles_at, q4_1_block, rd_u32_ptr,
};
use crate::x86::{f16_to_f32, prefetch_ahead, rd_u16_ptr};

/// Bytes of a q5_0 block.
const Q50B: usize = 22;
/// Bytes of a q5_1 block.
const Q51B: usize = 24;

/// `Σ x·y` of 32 pairs as 8 i32 lanes, `x` unsigned, `y` signed.
#[inline]
#[target_feature(enable = "avx2,avx512vl,avx512vnni")]
fn dot_u8i8x32(x: __m256i, y: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, y)
}

/// Block `i` of a q5_0 row: its f16 scale bits and 32 signed values `q − 16`.
///
/// # Safety
/// `w` holds more than `i` blocks of 22 bytes.
#[inline]
#[target_feature(enable = "avx2,avx512bw,avx512vl")]
unsafe fn q5_0_block(w: &[u8], i: usize) -> (u16, __m256i) {
    let o = Q50B * i;
    debug_assert!(o + Q50B <= w.len());
    // SAFETY: bytes o..o + 22 are inside w.
    let (d, qh, nib) = unsafe {
        let p = w.as_ptr().add(o);
        (rd_u16_ptr(p), rd_u32_ptr(p.add(2)), nibbles_at(w, o + 6))
    };
    // 16 off where bit 4 is clear
    let x = _mm256_mask_sub_epi8(nib, !qh, nib, _mm256_set1_epi8(16));
    (d, x)
}

/// Block `i` of a q5_1 row: its `d, m` bits and 32 values `0..=31`.
///
/// # Safety
/// `w` holds more than `i` blocks of 24 bytes.
#[inline]
#[target_feature(enable = "avx2,avx512bw,avx512vl")]
unsafe fn q5_1_block(w: &[u8], i: usize) -> (u32, __m256i) {
    let o = Q51B * i;
    debug_assert!(o + Q51B <= w.len());
    // SAFETY: bytes o..o + 24 are inside w.
    let (dm, qh, nib) = unsafe {
        let p = w.as_ptr().add(o);
        (rd_u32_ptr(p), rd_u32_ptr(p.add(4)), nibbles_at(w, o + 8))
    };
    (dm, _mm256_mask_add_epi8(nib, qh, nib, _mm256_set1_epi8(16)))
}

crate::x86::avx2::legacy_dots!("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c");

/// q5_0·q8_0 dot of one weight row with 4 packed activation rows (q4_0's packed kernel with
/// the 5-bit values); each result is bit-identical to [`vec_dot_q5_0_q8_0`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot4_packed_q5_0_q8_0(n: usize, w: &[u8], p: &[u8]) -> [f32; 4] {
    let nb = n / 32;
    assert!(w.len() == Q50B * nb && p.len() == crate::q8_0::Q8_0_X4_BLOCK_BYTES * nb);
    // SAFETY: lengths checked; every i < nb is a block of w and of p.
    unsafe {
        dot4_packed(
            nb,
            p,
            |i| prefetch_ahead(w, i * Q50B, 4 * Q50B),
            |i| {
                let (d, x) = q5_0_block(w, i);
                (f16_to_f32(d), x)
            },
        )
    }
}

/// iq4_nl·q8_0 dot of one weight row with 4 packed activation rows (q4_0's packed kernel with
/// the grid values); each result is bit-identical to [`vec_dot_iq4_nl_q8_0`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot4_packed_iq4_nl_q8_0(n: usize, w: &[u8], p: &[u8]) -> [f32; 4] {
    const NLB: usize = 18;
    let nb = n / 32;
    assert!(w.len() == NLB * nb && p.len() == crate::q8_0::Q8_0_X4_BLOCK_BYTES * nb);
    // SAFETY: lengths checked; every i < nb is a block of w and of p.
    unsafe {
        dot4_packed(
            nb,
            p,
            |i| prefetch_ahead(w, i * NLB, 4 * NLB),
            |i| {
                let (d, x) = iq4_nl_block(w, i);
                (f16_to_f32(d), x)
            },
        )
    }
}
