//! f32 / f16 / bf16 · f32 dots with AVX-512 (16 lanes, 4 accumulators per output).
//!
//! One generic loop, [`dot_rows`], serves the single dot and the 4-token dot: every output
//! keeps its own 4 accumulators and sees the same operations in the same order, so the
//! 4-token results are bit-identical to 4 single dots while each weight vector is loaded (and
//! widened from f16/bf16) once for the 4 tokens.

use std::arch::x86_64::*;

use crate::float::bf16_to_f32;
use crate::x86::prefetch_ahead;

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

/// Columns per pass of [`dot4_rows`]: 4 tokens × 1024 f32 = 16 KiB of activations, which stay
/// in L1 while every row of the call streams past them.
const K_BLOCK: usize = 1024;

/// Rows per call of [`dot4_rows`] (their accumulators live on the stack between passes).
pub(crate) const ROWS_PER_CALL: usize = 8;

const _: () = assert!(K_BLOCK.is_multiple_of(64));

/// `out[r] = dot_rows(n, a, |i| load(r, i), |i| tail(r, i))` for `rows ≤ ROWS_PER_CALL` weight
/// rows, computed in passes of [`K_BLOCK`] columns so that the activations come from L1 even
/// when 4 rows of them do not fit there (Llama 2 7B: 4 × 16 KiB). Every row keeps its 4
/// accumulators per token across the passes and sees the same FMAs in the same order as
/// [`dot_rows`], so each result has its bits.
///
/// # Safety
/// As [`dot_rows`] for every row `r < rows`.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn dot4_rows(
    n: usize,
    rows: usize,
    a: [&[u8]; 4],
    out: &mut [[f32; 4]],
    load: impl Fn(usize, usize) -> __m512,
    tail: impl Fn(usize, usize) -> f32,
) {
    debug_assert!(rows <= ROWS_PER_CALL && out.len() == rows);
    debug_assert!(a.iter().all(|r| r.len() == 4 * n));
    let act = |t: usize, i: usize| {
        // SAFETY: i + 16 <= n and a[t] holds 4n bytes.
        unsafe { _mm512_loadu_ps(a[t].as_ptr().add(4 * i).cast()) }
    };
    let mut state = [[[_mm512_setzero_ps(); 4]; 4]; ROWS_PER_CALL];
    let n64 = n / 64 * 64;
    for k0 in (0..n64).step_by(K_BLOCK) {
        let k1 = (k0 + K_BLOCK).min(n64);
        for (r, st) in state.iter_mut().enumerate().take(rows) {
            let mut acc = *st;
            for i in (k0..k1).step_by(64) {
                for u in 0..4 {
                    let w = load(r, i + 16 * u);
                    for (t, s) in acc.iter_mut().enumerate() {
                        s[u] = _mm512_fmadd_ps(w, act(t, i + 16 * u), s[u]);
                    }
                }
            }
            *st = acc;
        }
    }
    let n16 = n / 16 * 16;
    for (r, (o, acc)) in out.iter_mut().zip(&mut state).enumerate() {
        for i in (n64..n16).step_by(16) {
            let w = load(r, i);
            for (t, s) in acc.iter_mut().enumerate() {
                s[0] = _mm512_fmadd_ps(w, act(t, i), s[0]);
            }
        }
        for (t, (o, s)) in o.iter_mut().zip(acc.iter()).enumerate() {
            *o = _mm512_reduce_add_ps(_mm512_add_ps(
                _mm512_add_ps(s[0], s[1]),
                _mm512_add_ps(s[2], s[3]),
            ));
            let x = a[t];
            for i in n16..n {
                *o += tail(r, i)
                    * f32::from_le_bytes([x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]]);
            }
        }
    }
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
    ($one:ident, $four:ident, $rows:ident, $name:literal, $wbytes:literal, $load:ident, $tail:ident) => {
        #[doc = concat!($name, "·f32 dot.")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $one(n: usize, w: &[u8], a: &[u8]) -> f32 {
            assert!(w.len() == $wbytes * n && a.len() == 4 * n);
            // SAFETY: lengths checked; loads at i + 16 <= n stay inside w.
            let [r] = unsafe {
                dot_rows(
                    n,
                    [a],
                    |i| {
                        // One row is streamed once per token here (generation): fetch ahead.
                        if i % 64 == 0 {
                            prefetch_ahead(w, $wbytes * i, $wbytes * 64);
                        }
                        $load(w, i)
                    },
                    |i| $tail(w, i),
                )
            };
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

        #[doc = concat!("[`", stringify!($four), "`] of each of the `out.len()` consecutive")]
        #[doc = "rows in `w` (at most 8), in column passes that keep the activations in L1."]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $rows(n: usize, w: &[u8], a: [&[u8]; 4], out: &mut [[f32; 4]]) {
            let (rows, rb) = (out.len(), $wbytes * n);
            assert!(rows <= ROWS_PER_CALL && w.len() == rows * rb);
            assert!(a.iter().all(|r| r.len() == 4 * n));
            let mut wr: [&[u8]; ROWS_PER_CALL] = [&[]; ROWS_PER_CALL];
            for (r, row) in wr.iter_mut().zip(w.chunks_exact(rb)) {
                *r = row;
            }
            // SAFETY: lengths checked; row r < rows is wr[r] (rb bytes) and loads at
            // i + 16 <= n stay inside it.
            unsafe {
                dot4_rows(
                    n,
                    rows,
                    a,
                    out,
                    |r, i| $load(wr[r], i),
                    |r, i| $tail(wr[r], i),
                )
            };
        }
    };
}

float_dots!(
    vec_dot_f32,
    vec_dot4_f32,
    vec_dot4_rows_f32,
    "f32",
    4,
    load_f32,
    tail_f32
);
float_dots!(
    vec_dot_f16,
    vec_dot4_f16,
    vec_dot4_rows_f16,
    "f16",
    2,
    load_f16,
    tail_f16
);
float_dots!(
    vec_dot_bf16,
    vec_dot4_bf16,
    vec_dot4_rows_bf16,
    "bf16",
    2,
    load_bf16,
    tail_bf16
);
