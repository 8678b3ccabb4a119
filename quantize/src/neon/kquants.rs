//! The q2_k, q3_k, q5_k and iq4_xs dots with q8_k activations (256-value super-blocks) with
//! NEON, bit-identical to the reference: every integer sum of a super-block is exact (int8
//! products in i16, accumulated in i32 lanes, times the sub-block scales in i32), then the
//! reference's f32 steps in its order (for iq4_xs, its 8 sub-block terms one after another).
//!
//! Offsets: q2_k = scales 0..16, qs 16..80, d 80, dmin 82; q3_k = hmask 0..32, qs 32..96,
//! scales 96..108, d 108; q5_k = d 0, dmin 2, scales 4..16, qh 16..48, qs 48..176; iq4_xs = d 0,
//! scales_h 2..4, scales_l 4..8, qs 8..136; q8_k = d 0 (f32), qs 4..260, bsums 260..292.

use std::arch::aarch64::*;

use super::block32::iq4nl_grid;
use super::{Q8K, dot16, f16_at, f32_at, ld_s8, ld_u8};
use crate::q3_k::unpack_scales as q3k_unpack_scales;
use crate::q4_k::unpack_scales_mins;

const Q2K: usize = 84;
const Q3K: usize = 110;
const Q5K: usize = 176;
const IQ4XS: usize = 136;

/// `Σ_g bsum_g · m_g` over the 16 block sums of a q8_k super-block `ba`, exact in i32.
#[inline]
#[target_feature(enable = "neon")]
fn bsums_dot(ba: &[u8], m: uint8x16_t) -> i32 {
    assert!(ba.len() == Q8K);
    let (m0, m1) = (
        vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m))),
        vreinterpretq_s16_u16(vmovl_high_u8(m)),
    );
    // SAFETY: the 16 i16 sums are at bytes 260..292 of the 292-byte block.
    let (b0, b1) = unsafe {
        (
            vreinterpretq_s16_u8(ld_u8(ba, 260)),
            vreinterpretq_s16_u8(ld_u8(ba, 276)),
        )
    };
    let s = vmull_s16(vget_low_s16(b0), vget_low_s16(m0));
    let s = vmlal_high_s16(s, b0, m0);
    let s = vmlal_s16(s, vget_low_s16(b1), vget_low_s16(m1));
    vaddvq_s32(vmlal_high_s16(s, b1, m1))
}

/// The four 2-bit fields of 16 bytes, lowest first (values 0..=3).
#[inline]
#[target_feature(enable = "neon")]
fn crumbs(q: uint8x16_t) -> [uint8x16_t; 4] {
    let m3 = vdupq_n_u8(3);
    [
        vandq_u8(q, m3),
        vandq_u8(vshrq_n_u8::<2>(q), m3),
        vandq_u8(vshrq_n_u8::<4>(q), m3),
        vshrq_n_u8::<6>(q),
    ]
}

/// q2_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_q2_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q2K * nb && a.len() == Q8K * nb);
    let mut sumf = 0.0f32;
    for (bw, ba) in w.chunks_exact(Q2K).zip(a.chunks_exact(Q8K)) {
        let mut total = vdupq_n_s32(0);
        // sub-block 8h + 2k + c: 2-bit field k of qs bytes 32h + 16c .. +16
        for h in 0..2 {
            for c in 0..2 {
                // SAFETY: qs bytes 16+32h+16c+16 <= 80 (of 84); q8 bytes 4+128h+32k+16c+16 <= 260.
                unsafe {
                    let q = ld_u8(bw, 16 + 32 * h + 16 * c);
                    for (k, x) in crumbs(q).into_iter().enumerate() {
                        let y = ld_s8(ba, 4 + 128 * h + 32 * k + 16 * c);
                        let s = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(x), y);
                        let sc = i32::from(bw[8 * h + 2 * k + c] & 0x0f);
                        total = vmlaq_n_s32(total, s, sc);
                    }
                }
            }
        }
        // SAFETY: the 16 scale bytes are at 0..16.
        let mins = vshrq_n_u8::<4>(unsafe { ld_u8(bw, 0) });
        let summs = bsums_dot(ba, mins);
        let isum = vaddvq_s32(total);
        let dy = f32_at(ba, 0);
        let dall = dy * f16_at(bw, 80);
        let dmin = dy * f16_at(bw, 82);
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// q3_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_q3_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q3K * nb && a.len() == Q8K * nb);
    let four = vdupq_n_u8(4);
    let mut sumf = 0.0f32;
    for (bw, ba) in w.chunks_exact(Q3K).zip(a.chunks_exact(Q8K)) {
        let sc = q3k_unpack_scales(bw[96..108].try_into().expect("12 scale bytes"));
        let mut total = vdupq_n_s32(0);
        // element 128h + 32k + 16c + j: 2-bit field k of qs byte 32h + 16c + j, high bit
        // 4h + k of hmask byte 16c + j; sub-block 8h + 2k + c
        for h in 0..2 {
            for c in 0..2 {
                // SAFETY: hmask bytes 16c+16 <= 32, qs bytes 32+32h+16c+16 <= 96 (of 110); q8
                // bytes 4+128h+32k+16c+16 <= 260.
                unsafe {
                    let hm = ld_u8(bw, 16 * c);
                    let q = ld_u8(bw, 32 + 32 * h + 16 * c);
                    for (k, low) in crumbs(q).into_iter().enumerate() {
                        let set = vtstq_u8(hm, vdupq_n_u8(1 << (4 * h + k)));
                        // q − 4 where the high bit is clear, q where it is set
                        let x = vsubq_u8(low, vbicq_u8(four, set));
                        let y = ld_s8(ba, 4 + 128 * h + 32 * k + 16 * c);
                        let s = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(x), y);
                        let scale = i32::from(sc[8 * h + 2 * k + c]) - 32;
                        total = vmlaq_n_s32(total, s, scale);
                    }
                }
            }
        }
        let d = f16_at(bw, 108) * f32_at(ba, 0);
        sumf += d * vaddvq_s32(total) as f32;
    }
    sumf
}

/// q5_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_q5_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q5K * nb && a.len() == Q8K * nb);
    let (m4, bit4) = (vdupq_n_u8(0x0f), vdupq_n_u8(0x10));
    let mut sumf = 0.0f32;
    for (bw, ba) in w.chunks_exact(Q5K).zip(a.chunks_exact(Q8K)) {
        let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
        let mut total = vdupq_n_s32(0);
        // sub-blocks 2j (low nibbles, qh bit 2j) and 2j + 1 (high nibbles, qh bit 2j + 1) of
        // qs bytes 32j .. 32j + 32
        for j in 0..4 {
            let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
            for c in 0..2 {
                // SAFETY: qh bytes 16+16c+16 <= 48, qs bytes 48+32j+16c+16 <= 176; q8 bytes
                // 4+64j+16c+48 <= 260.
                unsafe {
                    let q = ld_u8(bw, 48 + 32 * j + 16 * c);
                    let qh = ld_u8(bw, 16 + 16 * c);
                    let fifth = |bit: u8| vandq_u8(vtstq_u8(qh, vdupq_n_u8(bit)), bit4);
                    let ql = vorrq_u8(vandq_u8(q, m4), fifth(1 << (2 * j)));
                    let qu = vorrq_u8(vshrq_n_u8::<4>(q), fifth(2 << (2 * j)));
                    lo = dot16(lo, vreinterpretq_s8_u8(ql), ld_s8(ba, 4 + 64 * j + 16 * c));
                    hi = dot16(hi, vreinterpretq_s8_u8(qu), ld_s8(ba, 36 + 64 * j + 16 * c));
                }
            }
            total = vmlaq_n_s32(total, lo, i32::from(sm[2 * j]));
            total = vmlaq_n_s32(total, hi, i32::from(sm[2 * j + 1]));
        }
        // min j covers block sums 2j and 2j + 1
        // SAFETY: sm has 16 bytes; the 8 mins are at 8..16.
        let mins = unsafe { vld1_u8(sm.as_ptr().add(8)) };
        let summ = bsums_dot(ba, vcombine_u8(vzip1_u8(mins, mins), vzip2_u8(mins, mins)));
        let sumi = vaddvq_s32(total);
        let dy = f32_at(ba, 0);
        let d = f16_at(bw, 0) * dy;
        let dmin = f16_at(bw, 2) * dy;
        sumf += d * sumi as f32 - dmin * summ as f32;
    }
    sumf
}

/// iq4_xs·q8_k dot, bit-identical to the reference (its 8 sub-block terms added in order into
/// each super-block's sum, then the super-block sums in order).
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_iq4_xs_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == IQ4XS * nb && a.len() == Q8K * nb);
    let (grid, m4) = (iq4nl_grid(), vdupq_n_u8(0x0f));
    let mut sumf = 0.0f32;
    for (bw, ba) in w.chunks_exact(IQ4XS).zip(a.chunks_exact(Q8K)) {
        let s: [int32x4_t; 8] = std::array::from_fn(|ib| {
            // SAFETY: qs bytes 8+16ib+16 <= 136; q8 bytes 4+32ib+32 <= 260 for ib < 8.
            unsafe {
                let q = ld_u8(bw, 8 + 16 * ib);
                let lo = vqtbl1q_s8(grid, vandq_u8(q, m4));
                let hi = vqtbl1q_s8(grid, vshrq_n_u8::<4>(q));
                let s = dot16(vdupq_n_s32(0), lo, ld_s8(ba, 4 + 32 * ib));
                dot16(s, hi, ld_s8(ba, 20 + 32 * ib))
            }
        });
        let quad = |k: usize| {
            let (a, b) = (vpaddq_s32(s[k], s[k + 1]), vpaddq_s32(s[k + 2], s[k + 3]));
            vpaddq_s32(a, b)
        };
        let mut sums = [0i32; 8];
        // SAFETY: sums has 8 i32; each store writes 4.
        unsafe {
            vst1q_s32(sums.as_mut_ptr(), quad(0));
            vst1q_s32(sums.as_mut_ptr().add(4), quad(4));
        }
        let scales_h = u16::from_le_bytes([bw[2], bw[3]]);
        let d4d8 = f16_at(bw, 0) * f32_at(ba, 0);
        let mut block = 0.0f32;
        for (ib, &sumi) in sums.iter().enumerate() {
            let low = (bw[4 + ib / 2] >> (4 * (ib % 2))) & 0x0f;
            let ls = low | ((((scales_h >> (2 * ib)) & 3) as u8) << 4);
            let dl = d4d8 * (i32::from(ls) - 32) as f32;
            block += dl * sumi as f32;
        }
        sumf += block;
    }
    sumf
}
