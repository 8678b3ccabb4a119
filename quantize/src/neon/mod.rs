//! aarch64 Advanced SIMD (NEON) kernels: the quant dots and the float dots.
//!
//! NEON is part of the aarch64 baseline (and detected at run time anyway). `vdotq_s32` is still
//! unstable in Rust, so int8 products use widening multiplies (`vmull_s8`) and pairwise
//! accumulation (`vpadalq_s16`). f16 lanes are widened with integer operations (Rust's `f16`
//! vector types are unstable). The q8_0, q8_1, q4_0 and q8_k encoders are in [`quant`]; the
//! others and the decoders use the scalar reference. The q4_1, q5_0, q5_1 and iq4_nl dots are
//! in [`block32`], the q2_k, q3_k, q5_k and iq4_xs dots in [`kquants`].
//!
//! Like the x86 kernels, the dots of the 256-value formats (q2_k..q6_k, iq4_xs) return the
//! reference's bits.

mod block32;
mod kquants;
mod quant;

use std::arch::aarch64::*;

use half::{bf16, f16};

use crate::float::bf16_to_f32;
use crate::q4_k::unpack_scales_mins;

pub(crate) use block32::{
    vec_dot_iq4_nl_q8_0, vec_dot_q4_1_q8_1, vec_dot_q5_0_q8_0, vec_dot_q5_1_q8_1,
};
pub(crate) use kquants::{
    vec_dot_iq4_xs_q8_k, vec_dot_q2_k_q8_k, vec_dot_q3_k_q8_k, vec_dot_q5_k_q8_k,
};
pub(crate) use quant::{quantize_q4_0, quantize_q8_0, quantize_q8_1, quantize_q8_k};

const QB: usize = 34;
const Q4B: usize = 18;
const Q4K: usize = 144;
const Q6K: usize = 210;
const Q8K: usize = 292;

#[inline(always)]
fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_le_bytes([b[off], b[off + 1]]).to_f32()
}

#[inline(always)]
fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Loads 16 signed bytes at `off`.
///
/// # Safety
/// `off + 16 <= b.len()`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn ld_s8(b: &[u8], off: usize) -> int8x16_t {
    debug_assert!(off + 16 <= b.len());
    // SAFETY: guaranteed by the caller.
    unsafe { vld1q_s8(b.as_ptr().add(off).cast()) }
}

/// Loads 16 unsigned bytes at `off`.
///
/// # Safety
/// `off + 16 <= b.len()`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn ld_u8(b: &[u8], off: usize) -> uint8x16_t {
    debug_assert!(off + 16 <= b.len());
    // SAFETY: guaranteed by the caller.
    unsafe { vld1q_u8(b.as_ptr().add(off)) }
}

/// `acc + Σ x·y` over 16 int8 pairs, in 4 i32 lanes (|x·y| ≤ 2¹⁴ fits the i16 products).
#[inline]
#[target_feature(enable = "neon")]
fn dot16(acc: int32x4_t, x: int8x16_t, y: int8x16_t) -> int32x4_t {
    let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x), vget_low_s8(y)));
    vpadalq_s16(acc, vmull_high_s8(x, y))
}

/// q8_0·q8_0 dot.
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_q8_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    assert!(w.len() == QB * nb && a.len() == QB * nb);
    let mut acc = [vdupq_n_f32(0.0); 2];
    for i in 0..nb {
        let (ow, oa) = (QB * i, QB * i);
        // SAFETY: block i of both rows spans bytes QB·i .. QB·i + 34.
        let s = unsafe {
            let s = dot16(vdupq_n_s32(0), ld_s8(w, ow + 2), ld_s8(a, oa + 2));
            dot16(s, ld_s8(w, ow + 18), ld_s8(a, oa + 18))
        };
        let d = f16_at(w, ow) * f16_at(a, oa);
        acc[i & 1] = vfmaq_f32(acc[i & 1], vcvtq_f32_s32(s), vdupq_n_f32(d));
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1]))
}

/// q4_0·q8_0 dot.
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_q4_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    assert!(w.len() == Q4B * nb && a.len() == QB * nb);
    let (m4, eight) = (vdupq_n_u8(0x0f), vdupq_n_s8(8));
    let mut acc = [vdupq_n_f32(0.0); 2];
    for i in 0..nb {
        let (ow, oa) = (Q4B * i, QB * i);
        // SAFETY: block i spans Q4B·i .. Q4B·i + 18 of w and QB·i .. QB·i + 34 of a.
        let s = unsafe {
            let q = ld_u8(w, ow + 2);
            let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), eight);
            let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight);
            let s = dot16(vdupq_n_s32(0), lo, ld_s8(a, oa + 2));
            dot16(s, hi, ld_s8(a, oa + 18))
        };
        let d = f16_at(w, ow) * f16_at(a, oa);
        acc[i & 1] = vfmaq_f32(acc[i & 1], vcvtq_f32_s32(s), vdupq_n_f32(d));
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1]))
}

/// q4_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_q4_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q4K * nb && a.len() == Q8K * nb);
    let m4 = vdupq_n_u8(0x0f);
    let mut sumf = 0.0f32;
    for (bw, ba) in w.chunks_exact(Q4K).zip(a.chunks_exact(Q8K)) {
        let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
        let mut total = vdupq_n_s32(0);
        for j in 0..4 {
            let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
            for c in 0..2 {
                // SAFETY: qs bytes 16+32j+16c+16 <= 144; q8 bytes 4+64j+16c+48 <= 260.
                unsafe {
                    let q = ld_u8(bw, 16 + 32 * j + 16 * c);
                    let ql = vreinterpretq_s8_u8(vandq_u8(q, m4));
                    let qh = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
                    lo = dot16(lo, ql, ld_s8(ba, 4 + 64 * j + 16 * c));
                    hi = dot16(hi, qh, ld_s8(ba, 36 + 64 * j + 16 * c));
                }
            }
            total = vmlaq_n_s32(total, lo, i32::from(sm[2 * j]));
            total = vmlaq_n_s32(total, hi, i32::from(sm[2 * j + 1]));
        }
        let mut summ = 0i32;
        for j in 0..8 {
            let bs = |g: usize| i32::from(i16::from_le_bytes([ba[260 + 2 * g], ba[261 + 2 * g]]));
            summ += i32::from(sm[8 + j]) * (bs(2 * j) + bs(2 * j + 1));
        }
        let sumi = vaddvq_s32(total);
        let dy = f32_at(ba, 0);
        let d = f16_at(bw, 0) * dy;
        let dmin = f16_at(bw, 2) * dy;
        sumf += d * sumi as f32 - dmin * summ as f32;
    }
    sumf
}

/// q6_k·q8_k dot, bit-identical to the reference.
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_q6_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(w.len() == Q6K * nb && a.len() == Q8K * nb);
    let (m4, m3, off) = (vdupq_n_u8(0x0f), vdupq_n_u8(0x03), vdupq_n_s8(32));
    let mut sumf = 0.0f32;
    for (bw, ba) in w.chunks_exact(Q6K).zip(a.chunks_exact(Q8K)) {
        let mut total = vdupq_n_s32(0);
        for h in 0..2 {
            for c in 0..2 {
                // SAFETY: ql 64h+16c+48 <= 128, qh 128+32h+16c+16 <= 192 (of 210); q8 bytes
                // 4+128h+16c+96+16 <= 260.
                unsafe {
                    let qa = ld_u8(bw, 64 * h + 16 * c);
                    let qb = ld_u8(bw, 64 * h + 32 + 16 * c);
                    let qh = ld_u8(bw, 128 + 32 * h + 16 * c);
                    let hi = |s: uint8x16_t| vshlq_n_u8::<4>(vandq_u8(s, m3));
                    let e = [
                        vorrq_u8(vandq_u8(qa, m4), hi(qh)),
                        vorrq_u8(vandq_u8(qb, m4), hi(vshrq_n_u8::<2>(qh))),
                        vorrq_u8(vshrq_n_u8::<4>(qa), hi(vshrq_n_u8::<4>(qh))),
                        vorrq_u8(vshrq_n_u8::<4>(qb), hi(vshrq_n_u8::<6>(qh))),
                    ];
                    for (k, q) in e.into_iter().enumerate() {
                        let x = vsubq_s8(vreinterpretq_s8_u8(q), off);
                        let s = dot16(vdupq_n_s32(0), x, ld_s8(ba, 4 + 128 * h + 32 * k + 16 * c));
                        let sc = i32::from(bw[192 + 8 * h + 2 * k + c] as i8);
                        total = vmlaq_n_s32(total, s, sc);
                    }
                }
            }
        }
        let d = f16_at(bw, 208) * f32_at(ba, 0);
        sumf += d * vaddvq_s32(total) as f32;
    }
    sumf
}

/// Widens 4 f16 bit patterns to f32, exactly (normals, subnormals, ±inf; NaN stays NaN).
#[inline]
#[target_feature(enable = "neon")]
fn f16x4_to_f32(h: uint16x4_t) -> float32x4_t {
    let h = vmovl_u16(h);
    let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
    let em = vshlq_n_u32::<13>(vandq_u32(h, vdupq_n_u32(0x7fff)));
    // ×2¹¹² rebiases the exponent (15 → 127) and normalizes subnormals, exactly.
    let scaled = vreinterpretq_u32_f32(vmulq_f32(
        vreinterpretq_f32_u32(em),
        vdupq_n_f32(f32::from_bits(0x7780_0000)),
    ));
    let infnan = vceqq_u32(vandq_u32(h, vdupq_n_u32(0x7c00)), vdupq_n_u32(0x7c00));
    let special = vorrq_u32(em, vdupq_n_u32(0x7f80_0000));
    vreinterpretq_f32_u32(vorrq_u32(vbslq_u32(infnan, special, scaled), sign))
}

/// `Σ load(i)·a[i..i+4]` with 4 accumulators plus a scalar tail.
#[inline]
#[target_feature(enable = "neon")]
fn dot_with(
    n: usize,
    a: &[u8],
    load: impl Fn(usize) -> float32x4_t,
    tail: impl Fn(usize) -> f32,
) -> f32 {
    assert!(a.len() == 4 * n);
    let act = |i: usize| {
        // SAFETY: callers only pass i + 4 <= n, and a holds 4n bytes.
        unsafe { vld1q_f32(a.as_ptr().add(4 * i).cast()) }
    };
    let mut acc = [vdupq_n_f32(0.0); 4];
    let n16 = n / 16 * 16;
    for i in (0..n16).step_by(16) {
        for (u, s) in acc.iter_mut().enumerate() {
            *s = vfmaq_f32(*s, load(i + 4 * u), act(i + 4 * u));
        }
    }
    let n4 = n / 4 * 4;
    for i in (n16..n4).step_by(4) {
        acc[0] = vfmaq_f32(acc[0], load(i), act(i));
    }
    let mut sum = vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    for i in n4..n {
        sum += tail(i) * f32_at(a, 4 * i);
    }
    sum
}

/// f32·f32 dot.
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    assert!(w.len() == 4 * n);
    dot_with(
        n,
        a,
        // SAFETY: dot_with only loads at i + 4 <= n; w holds 4n bytes.
        |i| unsafe { vld1q_f32(w.as_ptr().add(4 * i).cast()) },
        |i| f32_at(w, 4 * i),
    )
}

/// f16·f32 dot.
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    assert!(w.len() == 2 * n);
    dot_with(
        n,
        a,
        // SAFETY: dot_with only loads at i + 4 <= n; w holds 2n bytes.
        |i| f16x4_to_f32(unsafe { vld1_u16(w.as_ptr().add(2 * i).cast()) }),
        |i| f16_at(w, 2 * i),
    )
}

/// bf16·f32 dot.
#[target_feature(enable = "neon")]
pub(crate) fn vec_dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    assert!(w.len() == 2 * n);
    dot_with(
        n,
        a,
        |i| {
            // SAFETY: dot_with only loads at i + 4 <= n; w holds 2n bytes.
            let h = unsafe { vld1_u16(w.as_ptr().add(2 * i).cast()) };
            vreinterpretq_f32_u32(vshll_n_u16::<16>(h))
        },
        |i| bf16_to_f32(bf16::from_le_bytes([w[2 * i], w[2 * i + 1]])),
    )
}
