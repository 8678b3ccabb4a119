//! q4_0 and iq4_nl weights (the same 18-byte blocks: an f16 scale and 16 bytes of nibbles) in
//! panels of 16 rows ([`crate::q4_0::repack_x16`]), and q8_0 weights
//! ([`crate::q8_0::repack_x16`]), against q8_0 activations:
//! one vector lane per weight row, for one token (generation) and for tiles of 8 tokens
//! (prompts).
//!
//! The one-row dots keep 4 × 8 f32 partial sums per row in lanes; here lane `i` is row `i`, so
//! a block's 8 `vpdpbusd` (the low and the high nibbles of 4 × 4 bytes, each dword broadcast
//! from the token's quants) give the 16 rows' exact block sums without any reduction, and one
//! 64-byte load feeds 16 rows: about 27 instructions per 288 weight bytes for one token,
//! where the one-row dot takes 12 per 18. Each lane then takes the scalar reference's steps
//! (`vec_dot_q4_0_q8_0_ref`: `f32(sumi)·(dx·dy)` added block by block from 0), so every result
//! has the reference's bits.

use std::arch::x86_64::*;

use crate::q4_0::{PANEL_BLOCK_BYTES, PANEL_ROWS};

/// Bytes of a q8_0 block.
const QB: usize = 34;

/// The dword at `p + off`, in every lane.
///
/// # Safety
/// The 4 bytes at `p + off` are readable.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn bcast(p: *const u8, off: usize) -> __m512i {
    // SAFETY: as the caller promises.
    _mm512_set1_epi32(unsafe { p.add(off).cast::<i32>().read_unaligned() })
}

/// `out[16t + i]` = the reference q4_0·q8_0 (`IQ`: iq4_nl·q8_0) dot of panel row `i` with
/// token `t`, for `T` tokens whose rows start at `a[t]` and whose block sums `Σ y` are
/// `s[t][b]`. The nibbles are taken as unsigned bytes: q4_0's as they are (its values are
/// them minus 8), iq4_nl's looked up in its grid plus 128; the bias times `Σ y` comes off the
/// exact sum.
///
/// # Safety
/// `panel` holds `nb` panel blocks, every `a[t]` `nb` q8_0 blocks, every `s[t]` `nb` sums;
/// `out` holds `16·T` f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile<const T: usize, const IQ: bool>(
    nb: usize,
    panel: *const u8,
    a: [*const u8; T],
    s: [*const i32; T],
    out: &mut [f32],
) {
    debug_assert!(out.len() == PANEL_ROWS * T);
    let m4 = _mm512_set1_epi8(0x0f);
    let g = llamapack_format::blocks::KVALUES_IQ4NL.map(|k| (i16::from(k) + 128) as u8);
    // SAFETY: g holds 16 bytes.
    let grid = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(g.as_ptr().cast()) });
    let value = |nib: __m512i| {
        if IQ {
            _mm512_shuffle_epi8(grid, nib)
        } else {
            nib
        }
    };
    let bias = if IQ { 128 } else { 8 };
    let mut sumf = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        // SAFETY: b < nb: the panel block, the q8_0 blocks and the sums are in range.
        unsafe {
            let p = panel.add(PANEL_BLOCK_BYTES * b);
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
            let q: [__m512i; 4] =
                std::array::from_fn(|j| _mm512_loadu_si512(p.add(32 + 64 * j).cast()));
            let lo = q.map(|v| value(_mm512_and_si512(v, m4)));
            let hi = q.map(|v| value(_mm512_and_si512(_mm512_srli_epi16::<4>(v), m4)));
            for t in 0..T {
                let y = a[t].add(QB * b);
                let mut acc = _mm512_setzero_si512();
                for j in 0..4 {
                    acc = _mm512_dpbusd_epi32(acc, lo[j], bcast(y, 2 + 4 * j));
                    acc = _mm512_dpbusd_epi32(acc, hi[j], bcast(y, 18 + 4 * j));
                }
                // Σ (x − bias)·y = Σ x·y − bias·Σ y, exact
                let sumi = _mm512_sub_epi32(acc, _mm512_set1_epi32(bias * s[t].add(b).read()));
                let dy = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                    y.cast::<u16>().read_unaligned(),
                ))));
                let d = _mm512_mul_ps(dw, _mm512_set1_ps(dy));
                sumf[t] = _mm512_add_ps(sumf[t], _mm512_mul_ps(_mm512_cvtepi32_ps(sumi), d));
            }
        }
    }
    for (t, v) in sumf.iter().enumerate() {
        // SAFETY: out holds 16·T f32.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(PANEL_ROWS * t), *v) };
    }
}

/// The panel × tokens product of [`tile`], tokens 8 at a time, then one by one.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn panel16<const IQ: bool>(n: usize, panel: &[u8], a: &[u8], sums: &[i32], out: &mut [f32]) {
    let nb = n / 32;
    let ab = QB * nb;
    assert!(nb > 0 && panel.len() == PANEL_BLOCK_BYTES * nb && a.len().is_multiple_of(ab));
    let m = a.len() / ab;
    assert!(sums.len() == m * nb && out.len() == PANEL_ROWS * m);
    let (pp, ap, sp) = (panel.as_ptr(), a.as_ptr(), sums.as_ptr());
    let row = |t: usize| ap.wrapping_add(ab * t);
    let sum = |t: usize| sp.wrapping_add(nb * t);
    let mut t = 0;
    while t + 8 <= m {
        let o = &mut out[PANEL_ROWS * t..PANEL_ROWS * (t + 8)];
        // SAFETY: tokens t..t + 8 < m: their rows and sums are in range (lengths checked).
        unsafe {
            tile::<8, IQ>(
                nb,
                pp,
                std::array::from_fn(|k| row(t + k)),
                std::array::from_fn(|k| sum(t + k)),
                o,
            );
        }
        t += 8;
    }
    while t < m {
        let o = &mut out[PANEL_ROWS * t..PANEL_ROWS * (t + 1)];
        // SAFETY: token t < m, as above.
        unsafe { tile::<1, IQ>(nb, pp, [row(t)], [sum(t)], o) };
        t += 1;
    }
}

/// `out[16t + i]` = `vec_dot_q4_0_q8_0_ref` of row `i` of the panel with activation row `t`
/// of `a` (q8_0 rows of `n` values), bit for bit; `sums[t·nb + b]` = the sum of the quants of
/// block `b` of row `t`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn panel16_dot_q4_0_q8_0(
    n: usize,
    panel: &[u8],
    a: &[u8],
    sums: &[i32],
    out: &mut [f32],
) {
    panel16::<false>(n, panel, a, sums, out);
}

/// `out[16t + i]` = `vec_dot_iq4_nl_q8_0_ref` of row `i` of the panel with activation row `t`,
/// bit for bit, as [`panel16_dot_q4_0_q8_0`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn panel16_dot_iq4_nl_q8_0(
    n: usize,
    panel: &[u8],
    a: &[u8],
    sums: &[i32],
    out: &mut [f32],
) {
    panel16::<true>(n, panel, a, sums, out);
}

/// [`tile`] for q8_0 weights: the 32 int8 quants of each row taken as unsigned bytes plus 128
/// (`x ^ 0x80`), 8 `vpdpbusd` per block, minus 128 · Σ y.
///
/// # Safety
/// As [`tile`], with `nb` q8_0 panel blocks.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_q8<const T: usize>(
    nb: usize,
    panel: *const u8,
    a: [*const u8; T],
    s: [*const i32; T],
    out: &mut [f32],
) {
    use crate::q8_0::PANEL_BLOCK_BYTES as P8;
    debug_assert!(out.len() == PANEL_ROWS * T);
    let flip = _mm512_set1_epi8(-128);
    let mut sumf = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        // SAFETY: b < nb: the panel block, the q8_0 blocks and the sums are in range.
        unsafe {
            let p = panel.add(P8 * b);
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
            let x: [__m512i; 8] = std::array::from_fn(|j| {
                _mm512_xor_si512(_mm512_loadu_si512(p.add(32 + 64 * j).cast()), flip)
            });
            for t in 0..T {
                let y = a[t].add(QB * b);
                let mut acc = _mm512_setzero_si512();
                for (j, xj) in x.iter().enumerate() {
                    acc = _mm512_dpbusd_epi32(acc, *xj, bcast(y, 2 + 4 * j));
                }
                // Σ x·y = Σ (x + 128)·y − 128·Σ y, exact
                let sumi = _mm512_sub_epi32(acc, _mm512_set1_epi32(128 * s[t].add(b).read()));
                let dy = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                    y.cast::<u16>().read_unaligned(),
                ))));
                let d = _mm512_mul_ps(dw, _mm512_set1_ps(dy));
                sumf[t] = _mm512_add_ps(sumf[t], _mm512_mul_ps(_mm512_cvtepi32_ps(sumi), d));
            }
        }
    }
    for (t, v) in sumf.iter().enumerate() {
        // SAFETY: out holds 16·T f32.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(PANEL_ROWS * t), *v) };
    }
}

/// `out[16t + i]` = `vec_dot_q8_0_q8_0_ref` of row `i` of a q8_0 panel
/// ([`crate::q8_0::repack_x16`]) with activation row `t`, bit for bit, as
/// [`panel16_dot_q4_0_q8_0`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn panel16_dot_q8_0_q8_0(
    n: usize,
    panel: &[u8],
    a: &[u8],
    sums: &[i32],
    out: &mut [f32],
) {
    use crate::q8_0::PANEL_BLOCK_BYTES as P8;
    let nb = n / 32;
    let ab = QB * nb;
    assert!(nb > 0 && panel.len() == P8 * nb && a.len().is_multiple_of(ab));
    let m = a.len() / ab;
    assert!(sums.len() == m * nb && out.len() == PANEL_ROWS * m);
    let (pp, ap, sp) = (panel.as_ptr(), a.as_ptr(), sums.as_ptr());
    let row = |t: usize| ap.wrapping_add(ab * t);
    let sum = |t: usize| sp.wrapping_add(nb * t);
    let mut t = 0;
    while t + 8 <= m {
        let o = &mut out[PANEL_ROWS * t..PANEL_ROWS * (t + 8)];
        // SAFETY: tokens t..t + 8 < m: their rows and sums are in range (lengths checked).
        unsafe {
            tile_q8::<8>(
                nb,
                pp,
                std::array::from_fn(|k| row(t + k)),
                std::array::from_fn(|k| sum(t + k)),
                o,
            );
        }
        t += 8;
    }
    while t < m {
        let o = &mut out[PANEL_ROWS * t..PANEL_ROWS * (t + 1)];
        // SAFETY: token t < m, as above.
        unsafe { tile_q8::<1>(nb, pp, [row(t)], [sum(t)], o) };
        t += 1;
    }
}

/// [`tile`] for q5_0 weights: each value is its nibble plus 16 where its fifth bit is set (one
/// `vpshufb` spreads the high-bit byte of each row over its 4 values, one `vptestmb` and a
/// masked add place the bits), taken as unsigned bytes, minus 16 · Σ y.
///
/// # Safety
/// As [`tile`], with `nb` q5_0 panel blocks.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_q5<const T: usize>(
    nb: usize,
    panel: *const u8,
    a: [*const u8; T],
    s: [*const i32; T],
    out: &mut [f32],
) {
    use crate::q5_0::PANEL_BLOCK_BYTES as P5;
    debug_assert!(out.len() == PANEL_ROWS * T);
    let (m4, sixteen) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(16));
    // Values 4j..4j + 4 have their fifth bits in byte j / 2 of the row's qh, values
    // 16 + 4j.. in byte 2 + j / 2; within the byte, bits 4·(j % 2) + k. `vpshufb` works
    // per 128-bit lane (4 rows), so the byte of row r of a lane is 4r + that byte.
    let spread = |byte: u8| {
        let c: [u8; 16] = std::array::from_fn(|e| 4 * (e as u8 / 4) + byte);
        // SAFETY: c holds 16 bytes.
        _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(c.as_ptr().cast()) })
    };
    let sel_lo: [__m512i; 4] = std::array::from_fn(|j| spread(j as u8 / 2));
    let sel_hi: [__m512i; 4] = std::array::from_fn(|j| spread(2 + j as u8 / 2));
    let bit = |j: usize| {
        let c: [u8; 16] = std::array::from_fn(|e| 1u8 << (4 * (j % 2) + e % 4));
        // SAFETY: c holds 16 bytes.
        _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(c.as_ptr().cast()) })
    };
    let bits = [bit(0), bit(1)];
    let mut sumf = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        // SAFETY: b < nb: the panel block, the q8_0 blocks and the sums are in range.
        unsafe {
            let p = panel.add(P5 * b);
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
            let qh = _mm512_loadu_si512(p.add(32).cast());
            let q: [__m512i; 4] =
                std::array::from_fn(|j| _mm512_loadu_si512(p.add(96 + 64 * j).cast()));
            let five = |nib: __m512i, sel: __m512i, j: usize| {
                let m = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, sel), bits[j % 2]);
                _mm512_mask_add_epi8(nib, m, nib, sixteen)
            };
            let lo: [__m512i; 4] =
                std::array::from_fn(|j| five(_mm512_and_si512(q[j], m4), sel_lo[j], j));
            let hi: [__m512i; 4] = std::array::from_fn(|j| {
                five(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(q[j]), m4),
                    sel_hi[j],
                    j,
                )
            });
            for t in 0..T {
                let y = a[t].add(QB * b);
                let mut acc = _mm512_setzero_si512();
                for j in 0..4 {
                    acc = _mm512_dpbusd_epi32(acc, lo[j], bcast(y, 2 + 4 * j));
                    acc = _mm512_dpbusd_epi32(acc, hi[j], bcast(y, 18 + 4 * j));
                }
                // Σ (x − 16)·y = Σ x·y − 16·Σ y, exact
                let sumi = _mm512_sub_epi32(acc, _mm512_set1_epi32(16 * s[t].add(b).read()));
                let dy = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                    y.cast::<u16>().read_unaligned(),
                ))));
                let d = _mm512_mul_ps(dw, _mm512_set1_ps(dy));
                sumf[t] = _mm512_add_ps(sumf[t], _mm512_mul_ps(_mm512_cvtepi32_ps(sumi), d));
            }
        }
    }
    for (t, v) in sumf.iter().enumerate() {
        // SAFETY: out holds 16·T f32.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(PANEL_ROWS * t), *v) };
    }
}

/// `out[16t + i]` = `vec_dot_q5_0_q8_0_ref` of row `i` of a q5_0 panel
/// ([`crate::q5_0::repack_x16`]) with activation row `t`, bit for bit, as
/// [`panel16_dot_q4_0_q8_0`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn panel16_dot_q5_0_q8_0(
    n: usize,
    panel: &[u8],
    a: &[u8],
    sums: &[i32],
    out: &mut [f32],
) {
    use crate::q5_0::PANEL_BLOCK_BYTES as P5;
    let nb = n / 32;
    let ab = QB * nb;
    assert!(nb > 0 && panel.len() == P5 * nb && a.len().is_multiple_of(ab));
    let m = a.len() / ab;
    assert!(sums.len() == m * nb && out.len() == PANEL_ROWS * m);
    let (pp, ap, sp) = (panel.as_ptr(), a.as_ptr(), sums.as_ptr());
    let row = |t: usize| ap.wrapping_add(ab * t);
    let sum = |t: usize| sp.wrapping_add(nb * t);
    let mut t = 0;
    while t + 8 <= m {
        let o = &mut out[PANEL_ROWS * t..PANEL_ROWS * (t + 8)];
        // SAFETY: tokens t..t + 8 < m: their rows and sums are in range (lengths checked).
        unsafe {
            tile_q5::<8>(
                nb,
                pp,
                std::array::from_fn(|k| row(t + k)),
                std::array::from_fn(|k| sum(t + k)),
                o,
            );
        }
        t += 8;
    }
    while t < m {
        let o = &mut out[PANEL_ROWS * t..PANEL_ROWS * (t + 1)];
        // SAFETY: token t < m, as above.
        unsafe { tile_q5::<1>(nb, pp, [row(t)], [sum(t)], o) };
        t += 1;
    }
}
