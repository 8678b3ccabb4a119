//! q4_0, iq4_nl, q5_0 and q8_0 weights in panels of 16 rows ([`crate::panel::repack_x16`])
//! against q8_0 activations:
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

use crate::panel::ROWS as PANEL_ROWS;

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

/// A panel format: its block bytes (16 rows), the bias its unsigned values carry, and how a
/// block's values unpack. Every panel block starts with the 16 rows' f16 scales.
trait Fmt {
    /// Bytes of one block of 16 rows.
    const BLOCK: usize;
    /// What the unsigned values exceed the format's values by.
    const BIAS: i32;
    /// The 32 values of the 16 rows of the panel block at `p`, as unsigned bytes: vector `c`
    /// holds values `4c..4c + 4` of every row (row `i` in dword `i`), the partners of the q8_0
    /// quant dword at byte `2 + 4c`.
    ///
    /// # Safety
    /// `p` points at a whole panel block; the caller enables AVX-512 F/BW.
    unsafe fn values(p: *const u8) -> [__m512i; 8];
}

/// The nibbles of a q4_0/iq4_nl panel block: low ones are values `4j..`, high ones `16 + 4j..`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn nibbles(p: *const u8) -> [__m512i; 8] {
    let m4 = _mm512_set1_epi8(0x0f);
    // SAFETY: the 4 × 64 nibble bytes follow the 32 bytes of scales.
    let q: [__m512i; 4] =
        std::array::from_fn(|j| unsafe { _mm512_loadu_si512(p.add(32 + 64 * j).cast()) });
    std::array::from_fn(|c| {
        if c < 4 {
            _mm512_and_si512(q[c], m4)
        } else {
            _mm512_and_si512(_mm512_srli_epi16::<4>(q[c - 4]), m4)
        }
    })
}

/// q4_0: the nibbles as they are (its values are them minus 8).
struct Q4;
impl Fmt for Q4 {
    const BLOCK: usize = PANEL_ROWS * 18;
    const BIAS: i32 = 8;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn values(p: *const u8) -> [__m512i; 8] {
        // SAFETY: as the caller promises.
        unsafe { nibbles(p) }
    }
}

/// iq4_nl: the nibbles looked up in its grid plus 128 (one `vpshufb`).
struct Iq4;
impl Fmt for Iq4 {
    const BLOCK: usize = PANEL_ROWS * 18;
    const BIAS: i32 = 128;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn values(p: *const u8) -> [__m512i; 8] {
        let g = llamapack_format::blocks::KVALUES_IQ4NL.map(|k| (i16::from(k) + 128) as u8);
        // SAFETY: g holds 16 bytes.
        let grid = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(g.as_ptr().cast()) });
        // SAFETY: as the caller promises.
        unsafe { nibbles(p) }.map(|v| _mm512_shuffle_epi8(grid, v))
    }
}

/// q5_0: the nibble plus 16 where the fifth bit is set. Values `4j..4j + 4` have their bits
/// in byte `j / 2` of the row's high-bit word, values `16 + 4j..` in byte `2 + j / 2`, bits
/// `4·(j % 2) + k` there; one `vpshufb` (per 128-bit lane of 4 rows) spreads that byte over
/// the row's 4 values, one `vptestmb` and a masked add place the bits.
struct Q5;
impl Fmt for Q5 {
    const BLOCK: usize = PANEL_ROWS * 22;
    const BIAS: i32 = 16;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn values(p: *const u8) -> [__m512i; 8] {
        let bytes16 = |f: &dyn Fn(usize) -> u8| {
            let c: [u8; 16] = std::array::from_fn(f);
            // SAFETY: c holds 16 bytes.
            _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(c.as_ptr().cast()) })
        };
        // SAFETY: the 16 rows' high-bit words are bytes 32..96 of the panel block.
        let qh = unsafe { _mm512_loadu_si512(p.add(32).cast()) };
        // SAFETY: the nibble bytes follow at 96 (the same layout as q4_0's from 32).
        let nib = unsafe { nibbles(p.add(64)) };
        std::array::from_fn(|c| {
            let (j, byte) = (c % 4, (c / 4) as u8 * 2 + (c % 4) as u8 / 2);
            let sel = bytes16(&|e| 4 * (e as u8 / 4) + byte);
            let bit = bytes16(&|e| 1u8 << (4 * (j % 2) + e % 4));
            let m = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, sel), bit);
            _mm512_mask_add_epi8(nib[c], m, nib[c], _mm512_set1_epi8(16))
        })
    }
}

/// q8_0: the int8 quants plus 128 (`x ^ 0x80`).
struct Q8;
impl Fmt for Q8 {
    const BLOCK: usize = PANEL_ROWS * 34;
    const BIAS: i32 = 128;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn values(p: *const u8) -> [__m512i; 8] {
        let flip = _mm512_set1_epi8(-128);
        // SAFETY: the 8 × 64 quant bytes follow the 32 bytes of scales.
        std::array::from_fn(|j| unsafe {
            _mm512_xor_si512(_mm512_loadu_si512(p.add(32 + 64 * j).cast()), flip)
        })
    }
}

/// `out[16t + i]` = the reference dot of panel row `i` with token `t`, for `T` tokens whose
/// rows start at `a[t]` and whose block sums `Σ y` are `s[t][b]`: per block the exact
/// `Σ x·y − bias·Σ y` of 8 `vpdpbusd` (each token's quant dwords broadcast), then lane-wise the
/// reference's `f32(sumi)·(dx·dy)` added block by block from 0.
///
/// # Safety
/// `panel` holds `nb` panel blocks, every `a[t]` `nb` q8_0 blocks, every `s[t]` `nb` sums;
/// `out` holds `16·T` f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile<F: Fmt, const T: usize>(
    nb: usize,
    panel: *const u8,
    a: [*const u8; T],
    s: [*const i32; T],
    out: &mut [f32],
) {
    debug_assert!(out.len() == PANEL_ROWS * T);
    let mut sumf = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        // SAFETY: b < nb: the panel block, the q8_0 blocks and the sums are in range.
        unsafe {
            let p = panel.add(F::BLOCK * b);
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
            let x = F::values(p);
            for t in 0..T {
                let y = a[t].add(QB * b);
                let mut acc = _mm512_setzero_si512();
                for (c, xc) in x.iter().enumerate() {
                    acc = _mm512_dpbusd_epi32(acc, *xc, bcast(y, 2 + 4 * c));
                }
                let sumi = _mm512_sub_epi32(acc, _mm512_set1_epi32(F::BIAS * s[t].add(b).read()));
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
fn panel16<F: Fmt>(n: usize, panel: &[u8], a: &[u8], sums: &[i32], out: &mut [f32]) {
    let nb = n / 32;
    let ab = QB * nb;
    assert!(nb > 0 && panel.len() == F::BLOCK * nb && a.len().is_multiple_of(ab));
    let m = a.len() / ab;
    assert!(sums.len() == m * nb && out.len() == PANEL_ROWS * m);
    let (pp, ap, sp) = (panel.as_ptr(), a.as_ptr(), sums.as_ptr());
    let row = |t: usize| ap.wrapping_add(ab * t);
    let sum = |t: usize| sp.wrapping_add(nb * t);
    let mut t = 0;
    while t + 8 <= m {
        let o = &mut out[PANEL_ROWS * t..PANEL_ROWS * (t + 8)];
        let (rows, ss) = (
            std::array::from_fn(|k| row(t + k)),
            std::array::from_fn(|k| sum(t + k)),
        );
        // SAFETY: tokens t..t + 8 < m: their rows and sums are in range (lengths checked).
        unsafe { tile::<F, 8>(nb, pp, rows, ss, o) };
        t += 8;
    }
    while t < m {
        let o = &mut out[PANEL_ROWS * t..PANEL_ROWS * (t + 1)];
        // SAFETY: token t < m, as above.
        unsafe { tile::<F, 1>(nb, pp, [row(t)], [sum(t)], o) };
        t += 1;
    }
}

/// Defines the public panel dot of a format.
macro_rules! panel_dot {
    ($name:ident, $fmt:ty, $reference:literal, $repack:literal) => {
        #[doc = concat!("`out[16t + i]` = `", $reference, "` of row `i` of a panel (`", $repack, "`)")]
        #[doc = "with activation row `t` of `a` (q8_0 rows of `n` values), bit for bit;"]
        #[doc = "`sums[t·nb + b]` = the sum of the quants of block `b` of row `t`."]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $name(n: usize, panel: &[u8], a: &[u8], sums: &[i32], out: &mut [f32]) {
            panel16::<$fmt>(n, panel, a, sums, out);
        }
    };
}

panel_dot!(
    panel16_dot_q4_0_q8_0,
    Q4,
    "vec_dot_q4_0_q8_0_ref",
    "panel::repack_x16"
);
panel_dot!(
    panel16_dot_iq4_nl_q8_0,
    Iq4,
    "vec_dot_iq4_nl_q8_0_ref",
    "panel::repack_x16"
);
panel_dot!(
    panel16_dot_q5_0_q8_0,
    Q5,
    "vec_dot_q5_0_q8_0_ref",
    "panel::repack_x16"
);
panel_dot!(
    panel16_dot_q8_0_q8_0,
    Q8,
    "vec_dot_q8_0_q8_0_ref",
    "panel::repack_x16"
);
