//! q8_0·q8_0 and q4_0·q8_0 with AVX-512 VNNI.

use std::arch::x86_64::*;

use crate::x86::{f16_to_f32, hsum_f32, rd_u16};

const QB: usize = 34;
const Q4B: usize = 18;

/// Loads 32 bytes at `off`.
///
/// # Safety
/// `off + 32 <= b.len()`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn ld256(b: &[u8], off: usize) -> __m256i {
    debug_assert!(off + 32 <= b.len());
    // SAFETY: guaranteed by the caller.
    unsafe { _mm256_loadu_si256(b.as_ptr().add(off).cast()) }
}

/// Two 256-bit halves as one register (`lo` in lanes 0..8).
#[inline]
#[target_feature(enable = "avx512f")]
fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// `[d0; 8] ++ [d1; 8]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn scales2(d0: f32, d1: f32) -> __m512 {
    _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(d0), _mm512_set1_ps(d1))
}

/// Runs `step(pair, acc)` over block pairs with 4 accumulators and returns the lane sum.
#[inline]
#[target_feature(enable = "avx512f")]
fn unrolled4(pairs: usize, mut step: impl FnMut(usize, __m512) -> __m512) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 4];
    let full = pairs / 4 * 4;
    for p in (0..full).step_by(4) {
        for (u, a) in acc.iter_mut().enumerate() {
            *a = step(p + u, *a);
        }
    }
    for p in full..pairs {
        acc[0] = step(p, acc[0]);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

/// `Σ x·y` of signed bytes (x, y in −127..=127) as 16 i32 lanes, with `vpdpbusd`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn dot_i8x64(x: __m512i, y: __m512i) -> __m512i {
    let z = _mm512_setzero_si512();
    let sy = _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(x), z, y);
    _mm512_dpbusd_epi32(z, _mm512_abs_epi8(x), sy)
}

/// q8_0·q8_0 dot.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_q8_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    assert!(w.len() == QB * nb && a.len() == QB * nb);
    let d = |i: usize| f16_to_f32(rd_u16(w, QB * i)) * f16_to_f32(rd_u16(a, QB * i));
    let mut sum = unrolled4(nb / 2, |p, acc| {
        let (i, j) = (2 * p, 2 * p + 1);
        // SAFETY: j < nb, so bytes QB·j + 2 .. QB·j + 34 are inside both rows (and those of i).
        let (x, y) = unsafe {
            (
                join(ld256(w, QB * i + 2), ld256(w, QB * j + 2)),
                join(ld256(a, QB * i + 2), ld256(a, QB * j + 2)),
            )
        };
        _mm512_fmadd_ps(
            scales2(d(i), d(j)),
            _mm512_cvtepi32_ps(dot_i8x64(x, y)),
            acc,
        )
    });
    if nb % 2 == 1 {
        let i = nb - 1;
        // SAFETY: block i is the last block of both rows.
        let (x, y) = unsafe { (ld256(w, QB * i + 2), ld256(a, QB * i + 2)) };
        let p = _mm512_castsi512_si256(dot_i8x64(
            _mm512_castsi256_si512(x),
            _mm512_castsi256_si512(y),
        ));
        sum += hsum_f32(_mm256_mul_ps(_mm256_set1_ps(d(i)), _mm256_cvtepi32_ps(p)));
    }
    sum
}

/// The 32 nibbles of the q4_0 block at `off` as bytes in element order.
///
/// # Safety
/// `off + 18 <= b.len()`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn nibbles(b: &[u8], off: usize) -> __m256i {
    debug_assert!(off + Q4B <= b.len());
    // SAFETY: bytes off+2..off+18 are inside b.
    let q = unsafe { _mm_loadu_si128(b.as_ptr().add(off + 2).cast()) };
    let m = _mm_set1_epi8(0x0f);
    _mm256_set_m128i(
        _mm_and_si128(_mm_srli_epi16::<4>(q), m),
        _mm_and_si128(q, m),
    )
}

/// `Σ (x − 8)·y` for unsigned nibbles x and signed bytes y, as 16 i32 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn dot_q4x64(x: __m512i, y: __m512i) -> __m512i {
    let z = _mm512_setzero_si512();
    _mm512_sub_epi32(
        _mm512_dpbusd_epi32(z, x, y),
        _mm512_dpbusd_epi32(z, _mm512_set1_epi8(8), y),
    )
}

/// q4_0·q8_0 dot.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    assert!(w.len() == Q4B * nb && a.len() == QB * nb);
    let d = |i: usize| f16_to_f32(rd_u16(w, Q4B * i)) * f16_to_f32(rd_u16(a, QB * i));
    let mut sum = unrolled4(nb / 2, |p, acc| {
        let (i, j) = (2 * p, 2 * p + 1);
        // SAFETY: j < nb: both q4_0 blocks and both q8_0 blocks are inside the rows.
        let (x, y) = unsafe {
            (
                join(nibbles(w, Q4B * i), nibbles(w, Q4B * j)),
                join(ld256(a, QB * i + 2), ld256(a, QB * j + 2)),
            )
        };
        _mm512_fmadd_ps(
            scales2(d(i), d(j)),
            _mm512_cvtepi32_ps(dot_q4x64(x, y)),
            acc,
        )
    });
    if nb % 2 == 1 {
        let i = nb - 1;
        // SAFETY: block i is the last block of both rows.
        let (x, y) = unsafe { (nibbles(w, Q4B * i), ld256(a, QB * i + 2)) };
        let p = _mm512_castsi512_si256(dot_q4x64(
            _mm512_castsi256_si512(x),
            _mm512_castsi256_si512(y),
        ));
        sum += hsum_f32(_mm256_mul_ps(_mm256_set1_ps(d(i)), _mm256_cvtepi32_ps(p)));
    }
    sum
}
