//! f32 / f16 / bf16 · f32 dots with AVX-512: register tiles of weight rows × tokens.
//!
//! Every (weight row, token) pair is computed the same way, whatever kernel computes it: one
//! 16-lane accumulator takes the 16-value chunks in order (`acc = fma(w, a, acc)`), a fixed
//! tree sums its lanes, then the values past the last whole chunk are added one by one. The
//! single dot is the 1 × 1 tile; the batched matmul uses 4 × 4 tiles (16 accumulators, and 8
//! loads per 16 FMAs instead of 2: loads, not FMAs, bound these kernels on AVX-512 cores that
//! issue one 64-byte load per cycle), and generation 4 × 1 tiles (4 independent chains). All
//! give the same bits for a pair.

use std::arch::x86_64::*;

use crate::float::bf16_to_f32;
use crate::x86::{hsum_f32, prefetch_ahead};

/// Sum of the 16 lanes: halves added, then [`hsum_f32`]'s fixed tree.
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn hsum512(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    hsum_f32(_mm256_add_ps(lo, hi))
}

/// The `R × T` dots of weight rows `w[r]` with activation rows `a[t]` (`n` f32 each, as bytes):
/// `load(w, i)` widens weights `i..i+16` of a row, `tail(w, i)` weight `i`.
///
/// # Safety
/// Every `a[t]` holds `4n` bytes and `load(w[r], i)` is valid for every `i + 16 <= n`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn tile<const R: usize, const T: usize, const PF: bool>(
    n: usize,
    w: [&[u8]; R],
    a: [&[u8]; T],
    wbytes: usize,
    load: impl Fn(&[u8], usize) -> __m512,
    tail: impl Fn(&[u8], usize) -> f32,
) -> [[f32; T]; R] {
    debug_assert!(a.iter().all(|x| x.len() == 4 * n));
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    let n16 = n / 16 * 16;
    for i in (0..n16).step_by(16) {
        if PF && T == 1 && i % 64 == 0 {
            // Generation streams each row once: fetch ahead of it (where that pays: see
            // `PF` of `tiles`).
            for row in w {
                prefetch_ahead(row, wbytes * i, wbytes * 64);
            }
        }
        let wv: [__m512; R] = std::array::from_fn(|r| load(w[r], i));
        for t in 0..T {
            // SAFETY: i + 16 <= n and a[t] holds 4n bytes.
            let av = unsafe { _mm512_loadu_ps(a[t].as_ptr().add(4 * i).cast()) };
            for r in 0..R {
                acc[r][t] = _mm512_fmadd_ps(wv[r], av, acc[r][t]);
            }
        }
    }
    let mut out = [[0f32; T]; R];
    for r in 0..R {
        for t in 0..T {
            let mut s = hsum512(acc[r][t]);
            let x = a[t];
            for i in n16..n {
                s += tail(w[r], i)
                    * f32::from_le_bytes([x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]]);
            }
            out[r][t] = s;
        }
    }
    out
}

/// Rows per register tile of [`tiles`].
const TILE_ROWS: usize = 4;
/// Tokens per register tile of [`tiles`].
const TILE_TOKENS: usize = 4;
/// Tokens [`tiles`] takes through all its rows before the next (a multiple of
/// `TILE_TOKENS`): 64 activation rows of 4096 floats are 1 MiB, of 576 floats 144 KiB.
const TOKEN_BLOCK: usize = 64;

/// `out[r·m + t]` = the dot of row `r` of `w` (`wbytes · n` bytes each) with activation row `t` of
/// `a` (`m = out.len() / rows` rows of `4n` bytes), in 4 × 4 tiles; leftover tokens in 4 × 1
/// tiles, leftover rows in 1 × 4 and 1 × 1 tiles (same bits per pair whatever the tile).
/// `PF`: one-token tiles prefetch `PF_DIST` ahead of each row. That paid on the Xeon this was
/// tuned on; on AMD Zen 4 the same generation runs 18 % faster without it (f16 tg16 at 7B
/// shapes, 2 threads: 9.5–9.7 → 11.2–11.5 tok/s, interleaved), the hardware prefetcher
/// streaming the 4 rows better alone; and without it one token's rows of up to
/// [`STREAM_ROW_BYTES`] go one after the other.
///
/// # Panics
/// If `w` and `a` are not whole rows of `n` values or `out` does not hold one result per
/// (row, token).
///
/// # Safety
/// `load(row, i)` is valid for every `i + 16 <= n` of a row of `wbytes · n` bytes.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn tiles<const PF: bool>(
    n: usize,
    w: &[u8],
    a: &[u8],
    out: &mut [f32],
    wbytes: usize,
    load: impl Fn(&[u8], usize) -> __m512 + Copy,
    tail: impl Fn(&[u8], usize) -> f32 + Copy,
) {
    let rb = wbytes * n;
    assert!(n > 0 && w.len().is_multiple_of(rb) && a.len().is_multiple_of(4 * n));
    assert!(out.len() == (w.len() / rb) * (a.len() / (4 * n)));
    let rows = w.len() / rb;
    let m = a.len() / (4 * n);
    let act = |t: usize| &a[4 * n * t..4 * n * (t + 1)];
    let row = |r: usize| &w[rb * r..rb * (r + 1)];
    if !PF && m == 1 && rb <= STREAM_ROW_BYTES {
        // One token, short rows, no prefetch (AMD): one row after the other, each the 1 × 1
        // tile's operations. Written out here: a call of `tile::<1, 1, _>` from this function
        // is not inlined, and its `load` then costs a call per 16 values (SmolLM2 f16 tg32:
        // 41–43 against 69–79 tok/s).
        let n16 = n / 16 * 16;
        for (r, o) in out.iter_mut().enumerate() {
            let w = row(r);
            let mut acc = _mm512_setzero_ps();
            for i in (0..n16).step_by(16) {
                // SAFETY: i + 16 <= n: `load` is valid there (the caller's guarantee), and `a`
                // holds 4n bytes.
                let av = unsafe { _mm512_loadu_ps(a.as_ptr().add(4 * i).cast()) };
                acc = _mm512_fmadd_ps(load(w, i), av, acc);
            }
            let mut s = hsum512(acc);
            for i in n16..n {
                s += tail(w, i)
                    * f32::from_le_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
            }
            *o = s;
        }
        return;
    }
    // tokens in blocks whose activations stay in L2 while every row of `w` passes over them
    // (512 tokens of a 576-wide model are 1.2 MB: streamed again from L3 for each 4 rows)
    for tb in (0..m).step_by(TOKEN_BLOCK) {
        let te = m.min(tb + TOKEN_BLOCK);
        let full_t = tb + (te - tb) / TILE_TOKENS * TILE_TOKENS;
        let mut r0 = 0;
        while r0 < rows {
            if r0 + TILE_ROWS <= rows {
                let wr: [&[u8]; TILE_ROWS] = std::array::from_fn(|r| row(r0 + r));
                for t0 in (tb..full_t).step_by(TILE_TOKENS) {
                    let at: [&[u8]; TILE_TOKENS] = std::array::from_fn(|t| act(t0 + t));
                    // SAFETY: guaranteed by the caller.
                    let y = unsafe {
                        tile::<TILE_ROWS, TILE_TOKENS, PF>(n, wr, at, wbytes, load, tail)
                    };
                    for (r, yr) in y.iter().enumerate() {
                        out[(r0 + r) * m + t0..][..TILE_TOKENS].copy_from_slice(yr);
                    }
                }
                for t in full_t..te {
                    // SAFETY: guaranteed by the caller.
                    let y =
                        unsafe { tile::<TILE_ROWS, 1, PF>(n, wr, [act(t)], wbytes, load, tail) };
                    for (r, yr) in y.iter().enumerate() {
                        out[(r0 + r) * m + t] = yr[0];
                    }
                }
                r0 += TILE_ROWS;
            } else {
                let wr = [row(r0)];
                for t0 in (tb..full_t).step_by(TILE_TOKENS) {
                    let at: [&[u8]; TILE_TOKENS] = std::array::from_fn(|t| act(t0 + t));
                    // SAFETY: guaranteed by the caller.
                    let [y] = unsafe { tile::<1, TILE_TOKENS, PF>(n, wr, at, wbytes, load, tail) };
                    out[r0 * m + t0..][..TILE_TOKENS].copy_from_slice(&y);
                }
                for t in full_t..te {
                    // SAFETY: guaranteed by the caller.
                    let [[y]] = unsafe { tile::<1, 1, PF>(n, wr, [act(t)], wbytes, load, tail) };
                    out[r0 * m + t] = y;
                }
                r0 += 1;
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
    debug_assert!(4 * i + 64 <= w.len());
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
    debug_assert!(2 * i + 32 <= w.len());
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
    debug_assert!(2 * i + 32 <= w.len());
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

/// Rows up to this many bytes are streamed one after the other by the one-token kernels without
/// prefetch (AMD's): on Zen 4, 4 short rows read side by side stream at half the rate of one
/// sequential pass (SmolLM2's 576-value f16 rows: 7 against 14 GB/s per core, measured by a
/// stand-alone loop), while 4 long rows side by side keep their accumulator chains busy.
const STREAM_ROW_BYTES: usize = 4096;

/// Defines the single dot, the 4-token dot and the tiled dot of one float weight format.
macro_rules! float_dots {
    ($one:ident, $four:ident, $tiled:ident, $streamed:ident, $name:literal, $wbytes:literal,
     $load:ident, $tail:ident) => {
        // (each function below passes `|w, i| $load(w, i)`: the kernels only load
        // at i + 16 <= n of a row, which the length checks make in bounds)
        #[doc = concat!($name, "·f32 dot (the 1 × 1 tile).")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $one(n: usize, w: &[u8], a: &[u8]) -> f32 {
            assert!(w.len() == $wbytes * n && a.len() == 4 * n);
            let [[r]] =
                // SAFETY: lengths checked; loads at i + 16 <= n stay inside w.
                unsafe { tile::<1, 1, true>(n, [w], [a], $wbytes, |w, i| $load(w, i), $tail) };
            r
        }

        #[doc = concat!($name, "·f32 dot of one weight row with 4 activation rows (a 1 × 4")]
        #[doc = concat!("tile), each result bit-identical to [`", stringify!($one), "`].")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $four(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            assert!(w.len() == $wbytes * n && a.iter().all(|r| r.len() == 4 * n));
            // SAFETY: lengths checked; loads at i + 16 <= n stay inside w.
            let [r] = unsafe { tile::<1, 4, true>(n, [w], a, $wbytes, |w, i| $load(w, i), $tail) };
            r
        }

        #[doc = concat!("Every row of `w` (", $name, ", `n` values each) dotted with every")]
        #[doc = "activation row of `a` into `out` (`[rows, tokens]`), in register tiles; each"]
        #[doc = concat!("result bit-identical to [`", stringify!($one), "`].")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $tiled(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
            // SAFETY: `$load` reads 16 values at i + 16 <= n of a row, inside it.
            unsafe { tiles::<true>(n, w, a, out, $wbytes, |w, i| $load(w, i), $tail) };
        }

        #[doc = concat!("[`", stringify!($tiled), "`] without software prefetch in one-token")]
        #[doc = "tiles (the same operations, the same bits): AMD's choice (`kernels_tuned`)."]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $streamed(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
            // SAFETY: `$load` reads 16 values at i + 16 <= n of a row, inside it.
            unsafe { tiles::<false>(n, w, a, out, $wbytes, |w, i| $load(w, i), $tail) };
        }
    };
}

float_dots!(
    vec_dot_f32,
    vec_dot4_f32,
    vec_dot_tiled_f32,
    vec_dot_tiled_f32_streamed,
    "f32",
    4,
    load_f32,
    tail_f32
);
float_dots!(
    vec_dot_f16,
    vec_dot4_f16,
    vec_dot_tiled_f16,
    vec_dot_tiled_f16_streamed,
    "f16",
    2,
    load_f16,
    tail_f16
);
float_dots!(
    vec_dot_bf16,
    vec_dot4_bf16,
    vec_dot_tiled_bf16,
    vec_dot_tiled_bf16_streamed,
    "bf16",
    2,
    load_bf16,
    tail_bf16
);
