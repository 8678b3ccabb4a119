//! f32 / f16 / bf16 · f32 dots with AVX-512 (16 lanes, 4 accumulators).

use std::arch::x86_64::*;

use crate::float::bf16_to_f32;
use crate::x86::f16_to_f32;

/// `Σ load(i)·a[i..i+16]` over the 16-aligned prefix plus a scalar tail.
///
/// # Safety
/// `a` holds `n` f32 (as bytes) and `load(i)` is valid for every `i + 16 <= n`.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn dot_with(
    n: usize,
    a: &[u8],
    load: impl Fn(usize) -> __m512,
    tail: impl Fn(usize) -> f32,
) -> f32 {
    debug_assert!(a.len() == 4 * n);
    let act = |i: usize| {
        // SAFETY: i + 16 <= n and a holds 4n bytes.
        unsafe { _mm512_loadu_ps(a.as_ptr().add(4 * i).cast()) }
    };
    let mut acc = [_mm512_setzero_ps(); 4];
    let n64 = n / 64 * 64;
    for i in (0..n64).step_by(64) {
        for (u, s) in acc.iter_mut().enumerate() {
            *s = _mm512_fmadd_ps(load(i + 16 * u), act(i + 16 * u), *s);
        }
    }
    let n16 = n / 16 * 16;
    for i in (n64..n16).step_by(16) {
        acc[0] = _mm512_fmadd_ps(load(i), act(i), acc[0]);
    }
    let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ));
    for i in n16..n {
        sum += tail(i) * f32::from_le_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
    }
    sum
}

/// f32·f32 dot.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    assert!(w.len() == 4 * n && a.len() == 4 * n);
    // SAFETY: lengths checked; loads at i + 16 <= n stay inside w.
    unsafe {
        dot_with(
            n,
            a,
            |i| _mm512_loadu_ps(w.as_ptr().add(4 * i).cast()),
            |i| f32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]),
        )
    }
}

/// f16·f32 dot.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    assert!(w.len() == 2 * n && a.len() == 4 * n);
    // SAFETY: lengths checked; loads at i + 16 <= n stay inside w.
    unsafe {
        dot_with(
            n,
            a,
            |i| _mm512_cvtph_ps(_mm256_loadu_si256(w.as_ptr().add(2 * i).cast())),
            |i| f16_to_f32(u16::from_le_bytes([w[2 * i], w[2 * i + 1]])),
        )
    }
}

/// bf16·f32 dot.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    assert!(w.len() == 2 * n && a.len() == 4 * n);
    // SAFETY: lengths checked; loads at i + 16 <= n stay inside w.
    unsafe {
        dot_with(
            n,
            a,
            |i| {
                let h = _mm256_loadu_si256(w.as_ptr().add(2 * i).cast());
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            },
            |i| {
                bf16_to_f32(half::bf16::from_bits(u16::from_le_bytes([
                    w[2 * i],
                    w[2 * i + 1],
                ])))
            },
        )
    }
}
