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

/// `[Σ load(i)·a[t][i..i+8] for t in 0..T]`: 4 accumulators of 8 lanes per output over the
/// 8-aligned prefix, then a scalar tail. Every output sees the same operations in the same
/// order whatever `T`, so multi-token results are bit-identical to single dots.
///
/// # Safety
/// Every `a[t]` holds `n` f32 (as bytes) and `load(i)` is valid for every `i + 8 <= n`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows<const T: usize>(
    n: usize,
    a: [&[u8]; T],
    load: impl Fn(usize) -> __m256,
    tail: impl Fn(usize) -> f32,
) -> [f32; T] {
    debug_assert!(a.iter().all(|r| r.len() == 4 * n));
    let act = |t: usize, i: usize| {
        // SAFETY: i + 8 <= n and a[t] holds 4n bytes.
        unsafe { _mm256_loadu_ps(a[t].as_ptr().add(4 * i).cast()) }
    };
    let mut acc = [[_mm256_setzero_ps(); 4]; T];
    let n32 = n / 32 * 32;
    for i in (0..n32).step_by(32) {
        for u in 0..4 {
            let w = load(i + 8 * u);
            for (t, s) in acc.iter_mut().enumerate() {
                s[u] = _mm256_fmadd_ps(w, act(t, i + 8 * u), s[u]);
            }
        }
    }
    let n8 = n / 8 * 8;
    for i in (n32..n8).step_by(8) {
        let w = load(i);
        for (t, s) in acc.iter_mut().enumerate() {
            s[0] = _mm256_fmadd_ps(w, act(t, i), s[0]);
        }
    }
    let mut out = [0f32; T];
    for (t, (o, s)) in out.iter_mut().zip(&acc).enumerate() {
        *o = hsum_f32(_mm256_add_ps(
            _mm256_add_ps(s[0], s[1]),
            _mm256_add_ps(s[2], s[3]),
        ));
        let r = a[t];
        for i in n8..n {
            *o +=
                tail(i) * f32::from_le_bytes([r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]]);
        }
    }
    out
}

/// Weights `i..i+8` of an f32 row.
///
/// # Safety
/// `4i + 32 <= w.len()`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_f32(w: &[u8], i: usize) -> __m256 {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm256_loadu_ps(w.as_ptr().add(4 * i).cast()) }
}

/// Weights `i..i+8` of an f16 row, widened.
///
/// # Safety
/// `2i + 16 <= w.len()`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn load_f16(w: &[u8], i: usize) -> __m256 {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(2 * i).cast())) }
}

/// Weights `i..i+8` of a bf16 row, widened.
///
/// # Safety
/// `2i + 16 <= w.len()`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_bf16(w: &[u8], i: usize) -> __m256 {
    // SAFETY: guaranteed by the caller.
    unsafe { load_bf16x8(w.as_ptr().add(2 * i)) }
}

fn tail_f32(w: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]])
}

fn tail_f16(w: &[u8], i: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([w[2 * i], w[2 * i + 1]])).to_f32()
}

fn tail_bf16(w: &[u8], i: usize) -> f32 {
    bf16_to_f32(half::bf16::from_bits(u16::from_le_bytes([
        w[2 * i],
        w[2 * i + 1],
    ])))
}

/// Defines the single and the 4-token dot of one float weight format. AVX2 has 16 vector
/// registers: 4 tokens × 4 accumulators would not fit, so the 4-token dot is two passes of 2
/// tokens (each weight vector widened twice instead of 4 times).
macro_rules! float_dots {
    ($one:ident, $four:ident, $name:literal, $wbytes:literal, $load:ident, $tail:ident) => {
        #[doc = concat!($name, "·f32 dot.")]
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) fn $one(n: usize, w: &[u8], a: &[u8]) -> f32 {
            assert!(w.len() == $wbytes * n && a.len() == 4 * n);
            // SAFETY: lengths checked; loads at i + 8 <= n stay inside w.
            let [r] = unsafe { dot_rows(n, [a], |i| $load(w, i), |i| $tail(w, i)) };
            r
        }

        #[doc = concat!($name, "·f32 dot of one weight row with 4 activation rows; each result is")]
        #[doc = concat!("bit-identical to [`", stringify!($one), "`].")]
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) fn $four(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            assert!(w.len() == $wbytes * n && a.iter().all(|r| r.len() == 4 * n));
            // SAFETY: lengths checked; loads at i + 8 <= n stay inside w.
            let [r0, r1] = unsafe { dot_rows(n, [a[0], a[1]], |i| $load(w, i), |i| $tail(w, i)) };
            // SAFETY: as above.
            let [r2, r3] = unsafe { dot_rows(n, [a[2], a[3]], |i| $load(w, i), |i| $tail(w, i)) };
            [r0, r1, r2, r3]
        }
    };
}

float_dots!(vec_dot_f32, vec_dot4_f32, "f32", 4, load_f32, tail_f32);
float_dots!(vec_dot_f16, vec_dot4_f16, "f16", 2, load_f16, tail_f16);
float_dots!(vec_dot_bf16, vec_dot4_bf16, "bf16", 2, load_bf16, tail_bf16);
