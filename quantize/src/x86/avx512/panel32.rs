//! q4_0, iq4_nl, q5_0 and q8_0 weights against q8_0 activations, and q4_1 and q5_1 weights
//! against q8_1 activations, in panels of 16 rows ([`crate::panel::repack_x16`]):
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
use crate::x86::amx;

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
/// block's values unpack. Every panel block starts with the 16 rows' f16 scales, and for the
/// formats with a minimum (q4_1, q5_1: `HEAD` = 2) their f16 minimums; those are dotted with
/// q8_1 activations (`d`, `s` = `d·Σ y` as f16, then the quants), the others with q8_0 (`d`, the
/// quants).
trait Fmt {
    /// Bytes of one block of 16 rows.
    const BLOCK: usize;
    /// f16 words of 16 rows before the values (1: the scales; 2: the scales, the minimums).
    const HEAD: usize = 1;
    /// Bytes of one block of the activation format (q8_0: 34, q8_1: 36).
    const AB: usize = 32 + 2 * Self::HEAD;
    /// What the unsigned values exceed the format's values by.
    const BIAS: i32;
    /// Whether the panel's dwords after the scales are the values themselves, as `i8` (q8_0):
    /// then the AMX kernel loads them as they are.
    const RAW: bool = false;
    /// The 32 values of the 16 rows of a panel block whose dwords (after its head) start at
    /// `q`, as unsigned bytes: vector `c` holds values `4c..4c + 4` of every row (row `i` in
    /// dword `i`), the partners of the activation block's quant dword `c`.
    ///
    /// # Safety
    /// `q` points at the dwords of a whole panel block; the caller enables AVX-512 F/BW.
    unsafe fn values(q: *const u8) -> [__m512i; 8];
}

/// The nibbles of a q4_0/q4_1/iq4_nl panel block whose nibble dwords start at `q`: low ones are
/// values `4j..`, high ones `16 + 4j..`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn nibbles(q: *const u8) -> [__m512i; 8] {
    let m4 = _mm512_set1_epi8(0x0f);
    // SAFETY: the 4 × 64 nibble bytes are readable (caller).
    let q: [__m512i; 4] =
        std::array::from_fn(|j| unsafe { _mm512_loadu_si512(q.add(64 * j).cast()) });
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
    unsafe fn values(q: *const u8) -> [__m512i; 8] {
        // SAFETY: as the caller promises.
        unsafe { nibbles(q) }
    }
}

/// q4_1: the nibbles are its values (its minimum is added apart).
struct Q41;
impl Fmt for Q41 {
    const BLOCK: usize = PANEL_ROWS * 20;
    const HEAD: usize = 2;
    const BIAS: i32 = 0;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn values(q: *const u8) -> [__m512i; 8] {
        // SAFETY: as the caller promises.
        unsafe { nibbles(q) }
    }
}

/// iq4_nl: the nibbles looked up in its grid plus 128 (one `vpshufb`).
struct Iq4;
impl Fmt for Iq4 {
    const BLOCK: usize = PANEL_ROWS * 18;
    const BIAS: i32 = 128;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn values(q: *const u8) -> [__m512i; 8] {
        let g = llamapack_format::blocks::KVALUES_IQ4NL.map(|k| (i16::from(k) + 128) as u8);
        // SAFETY: g holds 16 bytes.
        let grid = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(g.as_ptr().cast()) });
        // SAFETY: as the caller promises.
        unsafe { nibbles(q) }.map(|v| _mm512_shuffle_epi8(grid, v))
    }
}

/// The 5-bit values of a q5_0/q5_1 panel block whose dwords start at `q`: the nibble plus 16
/// where the fifth bit is set. Values `4j..4j + 4` have their bits in byte `j / 2` of the row's
/// high-bit word (the first dword), values `16 + 4j..` in byte `2 + j / 2`, bits
/// `4·(j % 2) + k` there; one `vpshufb` (per 128-bit lane of 4 rows) spreads that byte over
/// the row's 4 values, one `vptestmb` and a masked add place the bits.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn fives(q: *const u8) -> [__m512i; 8] {
    let bytes16 = |f: &dyn Fn(usize) -> u8| {
        let c: [u8; 16] = std::array::from_fn(f);
        // SAFETY: c holds 16 bytes.
        _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(c.as_ptr().cast()) })
    };
    // SAFETY: the 16 rows' high-bit words are the first 64 bytes (caller).
    let qh = unsafe { _mm512_loadu_si512(q.cast()) };
    // SAFETY: the nibble dwords follow at 64 (caller).
    let nib = unsafe { nibbles(q.add(64)) };
    std::array::from_fn(|c| {
        let (j, byte) = (c % 4, (c / 4) as u8 * 2 + (c % 4) as u8 / 2);
        let sel = bytes16(&|e| 4 * (e as u8 / 4) + byte);
        let bit = bytes16(&|e| 1u8 << (4 * (j % 2) + e % 4));
        let m = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, sel), bit);
        _mm512_mask_add_epi8(nib[c], m, nib[c], _mm512_set1_epi8(16))
    })
}

/// q5_0: the 5-bit values ([`fives`]), 16 above its values.
struct Q5;
impl Fmt for Q5 {
    const BLOCK: usize = PANEL_ROWS * 22;
    const BIAS: i32 = 16;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn values(q: *const u8) -> [__m512i; 8] {
        // SAFETY: as the caller promises.
        unsafe { fives(q) }
    }
}

/// q5_1: the 5-bit values ([`fives`]) are its values (its minimum is added apart).
struct Q51;
impl Fmt for Q51 {
    const BLOCK: usize = PANEL_ROWS * 24;
    const HEAD: usize = 2;
    const BIAS: i32 = 0;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn values(q: *const u8) -> [__m512i; 8] {
        // SAFETY: as the caller promises.
        unsafe { fives(q) }
    }
}

/// q8_0: the int8 quants plus 128 (`x ^ 0x80`).
struct Q8;
impl Fmt for Q8 {
    const BLOCK: usize = PANEL_ROWS * 34;
    const BIAS: i32 = 128;
    const RAW: bool = true;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn values(q: *const u8) -> [__m512i; 8] {
        let flip = _mm512_set1_epi8(-128);
        // SAFETY: the 8 × 64 quant bytes are readable (caller).
        std::array::from_fn(|j| unsafe {
            _mm512_xor_si512(_mm512_loadu_si512(q.add(64 * j).cast()), flip)
        })
    }
}

/// The 16 rows' minimums of the panel block at `p` as f32 (zero for a format without them).
///
/// # Safety
/// `p` points at a whole panel block.
#[inline]
#[target_feature(enable = "avx512f,f16c")]
unsafe fn minimums<F: Fmt>(p: *const u8) -> __m512 {
    if F::HEAD == 2 {
        // SAFETY: the 16 minimums are bytes 32..64 of the block (caller).
        _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.add(32).cast()) })
    } else {
        _mm512_setzero_ps()
    }
}

/// `out[16t + i]` = the reference dot of panel row `i` with token `t`, for `T` tokens whose
/// rows start at `a[t]` and whose block sums `Σ y` are `s[t][b]` (read only if the format has
/// a bias): per block the exact `Σ x·y − bias·Σ y` of 8 `vpdpbusd` (each token's quant dwords
/// broadcast), then lane-wise the reference's `f32(sumi)·(dx·dy)` (plus `mx·sy` for the
/// formats with a minimum) added block by block from 0.
///
/// # Safety
/// `panel` holds `nb` panel blocks, every `a[t]` `nb` activation blocks, every `s[t]` `nb` sums
/// if `F::BIAS` ≠ 0; `out` holds `16·T` f32.
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
            let mw = minimums::<F>(p);
            let x = F::values(p.add(32 * F::HEAD));
            for t in 0..T {
                let y = a[t].add(F::AB * b);
                let mut acc = _mm512_setzero_si512();
                for (c, xc) in x.iter().enumerate() {
                    acc = _mm512_dpbusd_epi32(acc, *xc, bcast(y, 2 * F::HEAD + 4 * c));
                }
                let sumi = if F::BIAS == 0 {
                    acc
                } else {
                    _mm512_sub_epi32(acc, _mm512_set1_epi32(F::BIAS * s[t].add(b).read()))
                };
                let half = |o: usize| {
                    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                        y.add(o).cast::<u16>().read_unaligned(),
                    ))))
                };
                let d = _mm512_mul_ps(dw, _mm512_set1_ps(half(0)));
                let mut term = _mm512_mul_ps(_mm512_cvtepi32_ps(sumi), d);
                if F::HEAD == 2 {
                    term = _mm512_add_ps(term, _mm512_mul_ps(mw, _mm512_set1_ps(half(2))));
                }
                sumf[t] = _mm512_add_ps(sumf[t], term);
            }
        }
    }
    for (t, v) in sumf.iter().enumerate() {
        // SAFETY: out holds 16·T f32.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(PANEL_ROWS * t), *v) };
    }
}

/// Bytes between the rows of the AMX weight tile (16 rows' dwords side by side).
const AMX_W_STRIDE: usize = 64;

/// Bytes of one block's weight tile: 8 dwords × 16 rows.
const AMX_W_BLOCK: usize = 8 * AMX_W_STRIDE;

/// The AMX tiles of [`amx_tile16`]: for each of two blocks in flight, a 16 tokens × 16 rows
/// tile of int32 sums (`tmm0`, `tmm3`), the 16 tokens × 32 quants (`tmm1`, `tmm4`) and the
/// 8 dwords × 16 rows of the panel block's values (`tmm2`, `tmm5`).
fn amx_config() -> amx::TileConfig {
    amx::TileConfig::new(&[
        (0, 16, 64),
        (1, 16, 32),
        (2, 8, 64),
        (3, 16, 64),
        (4, 16, 32),
        (5, 8, 64),
    ])
}

/// The 16 × 16 int32 sums of two blocks into `c[0]` and `c[1]`: `tdpbssd` of the 16 tokens'
/// quants of each block (at `y0` and `y1`, rows `ab` bytes apart) with its weight tile (at `w0`
/// / `w1`, 8 rows 64 bytes apart). Both in flight on their own tiles.
///
/// # Safety
/// [`amx_config`] is loaded; the tiles' bytes are readable.
#[inline(always)]
unsafe fn amx_sums(
    (y0, w0): (*const u8, *const u8),
    (y1, w1): (*const u8, *const u8),
    ab: usize,
    c: &mut [[i32; PANEL_ROWS * PANEL_ROWS]; 2],
) {
    let (c0, c1) = (c[0].as_mut_ptr(), c[1].as_mut_ptr());
    // SAFETY: as the caller promises; the stores write the 2 KiB of `c`.
    unsafe {
        std::arch::asm!(
            "tilezero tmm0",
            "tilezero tmm3",
            "tileloadd tmm1, [{y0} + {ys} * 1]",
            "tileloadd tmm2, [{w0} + {ws} * 1]",
            "tileloadd tmm4, [{y1} + {ys} * 1]",
            "tileloadd tmm5, [{w1} + {ws} * 1]",
            "tdpbssd tmm0, tmm1, tmm2",
            "tdpbssd tmm3, tmm4, tmm5",
            "tilestored [{c0} + {cs} * 1], tmm0",
            "tilestored [{c1} + {cs} * 1], tmm3",
            y0 = in(reg) y0,
            y1 = in(reg) y1,
            ys = in(reg) ab,
            w0 = in(reg) w0,
            w1 = in(reg) w1,
            ws = in(reg) AMX_W_STRIDE,
            c0 = in(reg) c0,
            c1 = in(reg) c1,
            cs = in(reg) 4 * PANEL_ROWS,
            options(nostack)
        );
    }
}

/// [`tile`] of 16 tokens on the AMX int8 unit: per block one `tdpbssd` of the 16 tokens'
/// quants (straight from the activation rows) with the panel block's values as `i8` gives
/// the exact `Σ x·y` of all 16 × 16 pairs in `[token][row]` order, two blocks in flight;
/// then lane-wise the reference's `f32(sumi)·(dx·dy)` (plus `mx·sy`) added block by block
/// from 0, as [`tile`] does. The weight tile of block `b` is at `w(b)` (q8_0: the panel
/// block's own dwords; the other formats: their values unpacked, [`amx_unpack`]);
/// `dy[16·h·b + t]` is token `t`'s scale of block `b` as f32, and for the formats with a
/// minimum (`h` = `F::HEAD` = 2) `dy[16·h·b + 16 + t]` its `s`.
///
/// # Safety
/// `amx::usable()` and [`amx_config`] is loaded; `panel` holds `nb` panel blocks and every
/// `w(b)` 512 readable bytes; the 16 activation rows start `ab` bytes apart at `a`, each
/// `nb` activation blocks; `dy` holds `16·h·nb` f32, `out` 256.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn amx_tile16<F: Fmt>(
    nb: usize,
    panel: *const u8,
    w: impl Fn(usize) -> *const u8,
    a: *const u8,
    ab: usize,
    dy: &[f32],
    out: &mut [f32],
) {
    #[repr(C, align(64))]
    struct Sums([[i32; PANEL_ROWS * PANEL_ROWS]; 2]);
    debug_assert!(dy.len() == PANEL_ROWS * F::HEAD * nb && out.len() == PANEL_ROWS * PANEL_ROWS);
    let mut c = Sums([[0; PANEL_ROWS * PANEL_ROWS]; 2]);
    let mut sumf = [_mm512_setzero_ps(); PANEL_ROWS];
    let mut b = 0;
    while b < nb {
        let pair = b + 1 < nb;
        // SAFETY: b (and b + 1 if `pair`) < nb: the panel blocks, weight tiles, the tokens'
        // blocks and their scales are in range; the configuration is loaded (caller).
        unsafe {
            // a last odd block goes through both halves; only the first is used
            let b1 = if pair { b + 1 } else { b };
            let y = |b: usize| a.add(F::AB * b + 2 * F::HEAD);
            amx_sums((y(b), w(b)), (y(b1), w(b1)), ab, &mut c.0);
            for (k, ck) in c.0.iter().enumerate().take(1 + usize::from(pair)) {
                let bk = b + k;
                let pk = panel.add(F::BLOCK * bk);
                let dw = _mm512_cvtph_ps(_mm256_loadu_si256(pk.cast()));
                let mw = minimums::<F>(pk);
                let dk = dy.as_ptr().add(PANEL_ROWS * F::HEAD * bk);
                for (t, acc) in sumf.iter_mut().enumerate() {
                    let sumi = _mm512_load_si512(ck.as_ptr().add(PANEL_ROWS * t).cast());
                    let d = _mm512_mul_ps(dw, _mm512_set1_ps(*dk.add(t)));
                    let mut term = _mm512_mul_ps(_mm512_cvtepi32_ps(sumi), d);
                    if F::HEAD == 2 {
                        let sy = _mm512_set1_ps(*dk.add(PANEL_ROWS + t));
                        term = _mm512_add_ps(term, _mm512_mul_ps(mw, sy));
                    }
                    *acc = _mm512_add_ps(*acc, term);
                }
            }
        }
        b += 2;
    }
    for (t, v) in sumf.iter().enumerate() {
        // SAFETY: out holds 256 f32.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(PANEL_ROWS * t), *v) };
    }
}

/// The `nb` blocks of a panel's values as `i8` weight tiles (block `b` at `512·b` of `w`):
/// the format's unsigned values minus its bias.
///
/// # Safety
/// `panel` holds `nb` panel blocks; `w` holds `512·nb` bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn amx_unpack<F: Fmt>(nb: usize, panel: *const u8, w: &mut [u8]) {
    debug_assert!(w.len() == AMX_W_BLOCK * nb);
    let bias = _mm512_set1_epi8(F::BIAS as i8);
    for b in 0..nb {
        // SAFETY: block b < nb of the panel, and its 512 bytes of `w`.
        unsafe {
            for (c, v) in F::values(panel.add(F::BLOCK * b + 32 * F::HEAD))
                .iter()
                .enumerate()
            {
                _mm512_storeu_si512(
                    w.as_mut_ptr()
                        .add(AMX_W_BLOCK * b + AMX_W_STRIDE * c)
                        .cast(),
                    _mm512_sub_epi8(*v, bias),
                );
            }
        }
    }
}

/// Every token's block scales (and for q8_1 its block's `s`) as f32, 16 tokens at a time: for
/// the tile of tokens `16j..16j + 16`, `dy[16·h·(nb·j + b) + t]` = the scale of block `b` of
/// token `16j + t`, and with `h` = `F::HEAD` = 2, `dy[16·h·(nb·j + b) + 16 + t]` its `s` (one
/// gather of the 16 tokens' first dword per block).
///
/// # Safety
/// `a` holds `16·tiles` rows of `nb` activation blocks; `dy` holds `16·h·nb·tiles` f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn amx_scales<F: Fmt>(nb: usize, a: *const u8, tiles: usize, dy: &mut [f32]) {
    let ab = F::AB * nb;
    debug_assert!(dy.len() == PANEL_ROWS * F::HEAD * nb * tiles);
    // the byte offsets of 16 consecutive rows' block 0
    let idx = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32(ab as i32),
    );
    for j in 0..tiles {
        for b in 0..nb {
            // SAFETY: the 16 rows of tile j and their block b are in `a`; the gather reads the
            // 4 bytes at each block's start (its scale, then its `s` or first 2 quants); dy's
            // 16·h f32.
            unsafe {
                let base = a.add(ab * PANEL_ROWS * j + F::AB * b);
                let v = _mm512_i32gather_epi32::<1>(idx, base.cast());
                let o = dy.as_mut_ptr().add(PANEL_ROWS * F::HEAD * (nb * j + b));
                _mm512_storeu_ps(o, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)));
                if F::HEAD == 2 {
                    let s = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(v));
                    _mm512_storeu_ps(o.add(PANEL_ROWS), _mm512_cvtph_ps(s));
                }
            }
        }
    }
}

/// The product of `g` consecutive panels (`panel`) × `m` tokens: `out[16·m·p + 16t + i]` for
/// panel `p`. With `amx`, tokens 16 at a time on the AMX unit ([`amx_tile16`]; every
/// token's scales converted once per call, the panels but q8_0's unpacked once per panel);
/// then (or without `amx`) 8 at a time ([`tile`]), then one by one. `sums` are the
/// activations' block sums if the format has a bias (q8_0 activations), else empty.
///
/// # Safety
/// With `amx`, `amx::usable()`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn panel16<F: Fmt>(
    n: usize,
    panel: &[u8],
    a: &[u8],
    sums: &[i32],
    out: &mut [f32],
    amx: bool,
) {
    let nb = n / 32;
    let ab = F::AB * nb;
    let pb = F::BLOCK * nb;
    assert!(nb > 0 && panel.len().is_multiple_of(pb) && a.len().is_multiple_of(ab));
    let (g, m) = (panel.len() / pb, a.len() / ab);
    let nsums = if F::BIAS == 0 { 0 } else { m * nb };
    assert!(sums.len() == nsums && out.len() == PANEL_ROWS * m * g);
    let (ap, sp) = (a.as_ptr(), sums.as_ptr());
    let row = |t: usize| ap.wrapping_add(ab * t);
    let sum = |t: usize| sp.wrapping_add(nb * t);
    let tiles = if amx { m / PANEL_ROWS } else { 0 };
    let mut dy = vec![0f32; PANEL_ROWS * F::HEAD * nb * tiles];
    let mut w = vec![
        0u8;
        if tiles > 0 && !F::RAW {
            AMX_W_BLOCK * nb
        } else {
            0
        }
    ];
    if tiles > 0 {
        // SAFETY: all tiles' rows are in `a` (m ≥ 16·tiles); dy's length is as required.
        unsafe { amx_scales::<F>(nb, ap, tiles, &mut dy) };
        // SAFETY: the caller checked `amx::usable()`; released below.
        unsafe { amx_config().load() };
    }
    for (p, op) in out.chunks_exact_mut(PANEL_ROWS * m).enumerate() {
        let pp = panel[pb * p..].as_ptr();
        let mut t = 0;
        if tiles > 0 {
            if !F::RAW {
                // SAFETY: panel p holds nb blocks; w holds 512·nb bytes.
                unsafe { amx_unpack::<F>(nb, pp, &mut w) };
            }
            let wp = w.as_ptr();
            let wt = |b: usize| {
                if F::RAW {
                    pp.wrapping_add(F::BLOCK * b + 32 * F::HEAD)
                } else {
                    wp.wrapping_add(AMX_W_BLOCK * b)
                }
            };
            for j in 0..tiles {
                let o = &mut op[PANEL_ROWS * t..PANEL_ROWS * (t + PANEL_ROWS)];
                let d = &dy[PANEL_ROWS * F::HEAD * nb * j..][..PANEL_ROWS * F::HEAD * nb];
                // SAFETY: tokens t..t + 16 < m, ab bytes apart (lengths checked); the
                // weight tiles are the panel's or `w`'s; loaded above.
                unsafe { amx_tile16::<F>(nb, pp, wt, row(t), ab, d, o) };
                t += PANEL_ROWS;
            }
        }
        while t + 8 <= m {
            let o = &mut op[PANEL_ROWS * t..PANEL_ROWS * (t + 8)];
            let (rows, ss) = (
                std::array::from_fn(|k| row(t + k)),
                std::array::from_fn(|k| sum(t + k)),
            );
            // SAFETY: tokens t..t + 8 < m: their rows (and their sums, which only a format
            // with a bias reads) are in range (lengths checked).
            unsafe { tile::<F, 8>(nb, pp, rows, ss, o) };
            t += 8;
        }
        while t < m {
            let o = &mut op[PANEL_ROWS * t..PANEL_ROWS * (t + 1)];
            // SAFETY: token t < m, as above.
            unsafe { tile::<F, 1>(nb, pp, [row(t)], [sum(t)], o) };
            t += 1;
        }
    }
    if tiles > 0 {
        // SAFETY: loaded above.
        unsafe { amx::release() };
    }
}

/// Defines the public panel dot of a format.
macro_rules! panel_dot {
    ($name:ident, $amx:ident, $fmt:ty, $reference:literal, $act:literal, $sums:literal) => {
        #[doc = concat!("`out[16t + i]` = `", $reference, "` of row `i` of a panel (`panel::repack_x16`)")]
        #[doc = concat!("with activation row `t` of `a` (", $act, " rows of `n` values), bit for bit;")]
        #[doc = $sums]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $name(n: usize, panel: &[u8], a: &[u8], sums: &[i32], out: &mut [f32]) {
            // SAFETY: without AMX.
            unsafe { panel16::<$fmt>(n, panel, a, sums, out, false) };
        }

        #[doc = concat!("[`", stringify!($name), "`] with tokens 16 at a time on the AMX unit.")]
        ///
        /// # Safety
        /// `amx::usable()` (besides the features enabled).
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) unsafe fn $amx(n: usize, panel: &[u8], a: &[u8], sums: &[i32], out: &mut [f32]) {
            // SAFETY: the caller checked `amx::usable()`.
            unsafe { panel16::<$fmt>(n, panel, a, sums, out, true) };
        }
    };
}

panel_dot!(
    panel16_dot_q4_0_q8_0,
    panel16_dot_q4_0_q8_0_amx,
    Q4,
    "vec_dot_q4_0_q8_0_ref",
    "q8_0",
    "`sums[t·nb + b]` = the sum of the quants of block `b` of row `t`."
);
panel_dot!(
    panel16_dot_iq4_nl_q8_0,
    panel16_dot_iq4_nl_q8_0_amx,
    Iq4,
    "vec_dot_iq4_nl_q8_0_ref",
    "q8_0",
    "`sums[t·nb + b]` = the sum of the quants of block `b` of row `t`."
);
panel_dot!(
    panel16_dot_q5_0_q8_0,
    panel16_dot_q5_0_q8_0_amx,
    Q5,
    "vec_dot_q5_0_q8_0_ref",
    "q8_0",
    "`sums[t·nb + b]` = the sum of the quants of block `b` of row `t`."
);
panel_dot!(
    panel16_dot_q8_0_q8_0,
    panel16_dot_q8_0_q8_0_amx,
    Q8,
    "vec_dot_q8_0_q8_0_ref",
    "q8_0",
    "`sums[t·nb + b]` = the sum of the quants of block `b` of row `t`."
);
panel_dot!(
    panel16_dot_q4_1_q8_1,
    panel16_dot_q4_1_q8_1_amx,
    Q41,
    "vec_dot_q4_1_q8_1_ref",
    "q8_1",
    "`sums` is empty (q8_1 blocks carry their sums)."
);
panel_dot!(
    panel16_dot_q5_1_q8_1,
    panel16_dot_q5_1_q8_1_amx,
    Q51,
    "vec_dot_q5_1_q8_1_ref",
    "q8_1",
    "`sums` is empty (q8_1 blocks carry their sums)."
);
