//! f32 / f16 / bf16 rows with AVX2 + FMA + F16C.

use std::arch::x86_64::*;

use crate::float::{bf16_to_f32, f32_to_bf16};
use crate::x86::{f16_to_f32, f32_to_f16, hsum_f32};

/// f32 → f16 (round to nearest even), byte-identical to the reference.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_f16(x: &[f32], y: &mut [u8]) {
    assert!(y.len() == 2 * x.len());
    let n8 = x.len() / 8 * 8;
    for i in (0..n8).step_by(8) {
        // SAFETY: i + 8 <= x.len() and 2i + 16 <= y.len().
        unsafe {
            let h =
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(x.as_ptr().add(i)));
            _mm_storeu_si128(y.as_mut_ptr().add(2 * i).cast(), h);
        }
    }
    for i in n8..x.len() {
        y[2 * i..2 * i + 2].copy_from_slice(&f32_to_f16(x[i]).to_le_bytes());
    }
}

/// f32 → bf16 (ggml's rounding), byte-identical to the reference.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_bf16(x: &[f32], y: &mut [u8]) {
    assert!(y.len() == 2 * x.len());
    let n16 = x.len() / 16 * 16;
    let round = |v: __m256| {
        let u = _mm256_castps_si256(v);
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(1));
        let r = _mm256_srli_epi32::<16>(_mm256_add_epi32(
            u,
            _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)),
        ));
        let abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fff_ffff));
        let nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f80_0000));
        let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(64));
        _mm256_blendv_epi8(r, quiet, nan)
    };
    for i in (0..n16).step_by(16) {
        // SAFETY: i + 16 <= x.len() and 2i + 32 <= y.len().
        unsafe {
            let a = round(_mm256_loadu_ps(x.as_ptr().add(i)));
            let b = round(_mm256_loadu_ps(x.as_ptr().add(i + 8)));
            let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(a, b));
            _mm256_storeu_si256(y.as_mut_ptr().add(2 * i).cast(), p);
        }
    }
    for i in n16..x.len() {
        y[2 * i..2 * i + 2].copy_from_slice(&f32_to_bf16(x[i]).to_bits().to_le_bytes());
    }
}

/// f16 → f32, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_f16(x: &[u8], y: &mut [f32]) {
    assert!(x.len() == 2 * y.len());
    let n8 = y.len() / 8 * 8;
    for i in (0..n8).step_by(8) {
        // SAFETY: 2i + 16 <= x.len() and i + 8 <= y.len().
        unsafe {
            let f = _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(2 * i).cast()));
            _mm256_storeu_ps(y.as_mut_ptr().add(i), f);
        }
    }
    for i in n8..y.len() {
        y[i] = f16_to_f32(u16::from_le_bytes([x[2 * i], x[2 * i + 1]]));
    }
}

/// Loads 8 bf16 as f32.
///
/// # Safety
/// `p` points to 16 readable bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_bf16x8(p: *const u8) -> __m256 {
    // SAFETY: guaranteed by the caller.
    let h = unsafe { _mm_loadu_si128(p.cast()) };
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
}

/// bf16 → f32, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_bf16(x: &[u8], y: &mut [f32]) {
    assert!(x.len() == 2 * y.len());
    let n8 = y.len() / 8 * 8;
    for i in (0..n8).step_by(8) {
        // SAFETY: 2i + 16 <= x.len() and i + 8 <= y.len().
        unsafe { _mm256_storeu_ps(y.as_mut_ptr().add(i), load_bf16x8(x.as_ptr().add(2 * i))) };
    }
    for i in n8..y.len() {
        y[i] = bf16_to_f32(half::bf16::from_bits(u16::from_le_bytes([
            x[2 * i],
            x[2 * i + 1],
        ])));
    }
}

/// Generic float dot: `load(i)` yields weights i..i+8 as f32; 4 accumulators of 8 lanes.
///
/// # Safety
/// `a` has `n` f32 (as bytes) and `load(i)` is valid for every `i + 8 <= n`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_with(
    n: usize,
    a: &[u8],
    load: impl Fn(usize) -> __m256,
    tail: impl Fn(usize) -> f32,
) -> f32 {
    debug_assert!(a.len() == 4 * n);
    let act = |i: usize| {
        // SAFETY: i + 8 <= n and a holds 4n bytes.
        unsafe { _mm256_loadu_ps(a.as_ptr().add(4 * i).cast()) }
    };
    let mut acc = [_mm256_setzero_ps(); 4];
    let n32 = n / 32 * 32;
    for i in (0..n32).step_by(32) {
        for (u, s) in acc.iter_mut().enumerate() {
            *s = _mm256_fmadd_ps(load(i + 8 * u), act(i + 8 * u), *s);
        }
    }
    let n8 = n / 8 * 8;
    for i in (n32..n8).step_by(8) {
        acc[0] = _mm256_fmadd_ps(load(i), act(i), acc[0]);
    }
    let mut sum = hsum_f32(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    for i in n8..n {
        sum += tail(i) * f32::from_le_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
    }
    sum
}

/// f32·f32 dot.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    assert!(w.len() == 4 * n && a.len() == 4 * n);
    // SAFETY: lengths checked; loads at i + 8 <= n stay inside w.
    unsafe {
        dot_with(
            n,
            a,
            |i| _mm256_loadu_ps(w.as_ptr().add(4 * i).cast()),
            |i| f32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]),
        )
    }
}

/// f16·f32 dot.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    assert!(w.len() == 2 * n && a.len() == 4 * n);
    // SAFETY: lengths checked; loads at i + 8 <= n stay inside w.
    unsafe {
        dot_with(
            n,
            a,
            |i| _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(2 * i).cast())),
            |i| f16_to_f32(u16::from_le_bytes([w[2 * i], w[2 * i + 1]])),
        )
    }
}

/// bf16·f32 dot.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    assert!(w.len() == 2 * n && a.len() == 4 * n);
    // SAFETY: lengths checked; loads at i + 8 <= n stay inside w.
    unsafe {
        dot_with(
            n,
            a,
            |i| load_bf16x8(w.as_ptr().add(2 * i)),
            |i| {
                bf16_to_f32(half::bf16::from_bits(u16::from_le_bytes([
                    w[2 * i],
                    w[2 * i + 1],
                ])))
            },
        )
    }
}
