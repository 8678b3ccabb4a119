//! f32 / f16 / bf16 · f32 dots with AVX-512 (16 lanes, 4 accumulators per output).
//!
//! One generic loop, [`dot_rows`], serves the single dot and the 4-token dot: every output
//! keeps its own 4 accumulators and sees the same operations in the same order, so the
//! 4-token results are bit-identical to 4 single dots while each weight vector is loaded (and
//! widened from f16/bf16) once for the 4 tokens.

use std::arch::x86_64::*;

use crate::float::bf16_to_f32;

/// `[Σ load(i)·a[t][i..i+16] for t in 0..T]` over the 16-aligned prefix plus a scalar tail.
///
/// # Safety
/// Every `a[t]` holds `n` f32 (as bytes) and `load(i)` is valid for every `i + 16 <= n`.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn dot_rows<const T: usize>(
    n: usize,
    a: [&[u8]; T],
    load: impl Fn(usize) -> __m512,
    tail: impl Fn(usize) -> f32,
) -> [f32; T] {
    debug_assert!(a.iter().all(|r| r.len() == 4 * n));
    let act = |t: usize, i: usize| {
        // SAFETY: i + 16 <= n and a[t] holds 4n bytes.
        unsafe { _mm512_loadu_ps(a[t].as_ptr().add(4 * i).cast()) }
    };
    let mut acc = [[_mm512_setzero_ps(); 4]; T];
    let n64 = n / 64 * 64;
    for i in (0..n64).step_by(64) {
        for u in 0..4 {
            let w = load(i + 16 * u);
            for (t, s) in acc.iter_mut().enumerate() {
                s[u] = _mm512_fmadd_ps(w, act(t, i + 16 * u), s[u]);
            }
        }
    }
    let n16 = n / 16 * 16;
    for i in (n64..n16).step_by(16) {
        let w = load(i);
        for (t, s) in acc.iter_mut().enumerate() {
            s[0] = _mm512_fmadd_ps(w, act(t, i), s[0]);
        }
    }
    let mut out = [0f32; T];
    for (t, (o, s)) in out.iter_mut().zip(&acc).enumerate() {
        *o = _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(s[0], s[1]),
            _mm512_add_ps(s[2], s[3]),
        ));
        let r = a[t];
        for i in n16..n {
            *o +=
                tail(i) * f32::from_le_bytes([r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]]);
        }
    }
    out
}

/// Weights `i..i+16` of an f32 row.
///
/// # Safety
/// `4i + 64 <= w.len()`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_f32(w: &[u8], i: usize) -> __m512 {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm512_loadu_ps(w.as_ptr().add(4 * i).cast()) }
}

/// Weights `i..i+16` of an f16 row, widened.
///
/// # Safety
/// `2i + 32 <= w.len()`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_f16(w: &[u8], i: usize) -> __m512 {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(w.as_ptr().add(2 * i).cast())) }
}

/// Weights `i..i+16` of a bf16 row, widened.
///
/// # Safety
/// `2i + 32 <= w.len()`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_bf16(w: &[u8], i: usize) -> __m512 {
    // SAFETY: guaranteed by the caller.
    let h = unsafe { _mm256_loadu_si256(w.as_ptr().add(2 * i).cast()) };
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
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

/// Defines the single and the 4-token dot of one float weight format.
macro_rules! float_dots {
    ($one:ident, $four:ident, $name:literal, $wbytes:literal, $load:ident, $tail:ident) => {
        #[doc = concat!($name, "·f32 dot.")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $one(n: usize, w: &[u8], a: &[u8]) -> f32 {
            assert!(w.len() == $wbytes * n && a.len() == 4 * n);
            // SAFETY: lengths checked; loads at i + 16 <= n stay inside w.
            let [r] = unsafe { dot_rows(n, [a], |i| $load(w, i), |i| $tail(w, i)) };
            r
        }

        #[doc = concat!($name, "·f32 dot of one weight row with 4 activation rows; each result is")]
        #[doc = concat!("bit-identical to [`", stringify!($one), "`].")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $four(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            assert!(w.len() == $wbytes * n && a.iter().all(|r| r.len() == 4 * n));
            // SAFETY: lengths checked; loads at i + 16 <= n stay inside w.
            unsafe { dot_rows(n, a, |i| $load(w, i), |i| $tail(w, i)) }
        }
    };
}

float_dots!(vec_dot_f32, vec_dot4_f32, "f32", 4, load_f32, tail_f32);
float_dots!(vec_dot_f16, vec_dot4_f16, "f16", 2, load_f16, tail_f16);
float_dots!(vec_dot_bf16, vec_dot4_bf16, "bf16", 2, load_bf16, tail_bf16);
