//! The k-quants' prompt-processing matmul: register tiles of 16 weight rows × 8 tokens whose
//! lanes are the 16 rows, so no sum is ever reduced across lanes.
//!
//! The multi-token dots of `kmulti` and `kquants` keep one weight row per vector (64 of its
//! values) and reduce every vector to one integer per super-block and token: at prompt shapes
//! that reduction, the scale shuffles and the register spills of 2 unpacked rows cost as much
//! as the multiply-adds. Here 16 rows' super-blocks are unpacked once into a [`Panel`]: for
//! every 4 consecutive values `4g..4g + 4` one vector holds them for all 16 rows (dword `i` =
//! row `i`), so one `vpdpbusd` with a token's 4 quants broadcast to every dword adds 64 products
//! into the 16 rows' sums for that token. The sub-block scales multiply those sums per 16
//! values (`vpmulld`, again lane = row), the bias or minimum term comes from the q8_k block sums
//! (`vpdpwssd`), and each lane then takes the one-token dot's f32 steps in its order
//! ([`Finish`]): every result has the bits of the one-token dot.
//!
//! Worth it only when the panel is reused: at fewer than [`MIN_TOKENS`] tokens (generation)
//! the pairs kernels run.
//!
//! On a CPU with AMX (the `_amx` entries, chosen by `kernels_tuned`), the panel's tokens go
//! 16 at a time through the int8 tile unit instead: the panel's value vectors are already
//! `tdpbssd`'s weight-operand layout, and the per-16-values scales, which a tile product
//! cannot apply, are folded into the weight bytes as small digits ([`Digits`]): 2 to 4
//! `tdpbssd` per 64 values × 16 tokens × 16 rows give the exact integer sums the VNNI tile
//! gets, and the same lane-wise f32 steps ([`add_term`]) follow. iq4_xs, whose grid values
//! leave no room for digits, keeps each 32-value sub-block's sums apart (two weight tiles
//! per 64 values, each zero on the other sub-block) and takes its f32 step per sub-block, as
//! its one-token dot does. The last `m % 16` tokens take the VNNI tiles.

use std::arch::x86_64::*;

use super::kmulti::{q3_k_block, q5_k_block, q6_k_block};
use super::kquants::{Q2K, Q3K, Q4K, Q5K, Q6K, Q8K, join, ld256};
use crate::q4_k::unpack_scales_mins;
use crate::x86::avx2::{Finish, q4k_mins16};
use crate::x86::{amx, f16x2_at, prefetch_ahead};

/// Weight rows per tile (the lanes of a vector of i32).
const ROWS: usize = 16;

/// Fewest tokens for which the panel pays for itself (below: the pairs kernels).
pub(crate) const MIN_TOKENS: usize = 8;

/// One weight super-block unpacked, in q8_k order (a row's part of a [`Panel`]).
#[derive(Clone, Copy)]
pub(super) struct TBlock {
    /// The 256 values as unsigned bytes: vector `v` holds values `64v..64v + 64`.
    x: [__m512i; 4],
    /// The scale of each 16 values (a 32-value sub-block's twice), i16.
    sc: __m256i,
    /// The partner of each q8_k block sum (the minimum, or the scale for a shifted type), i16.
    c: __m256i,
    /// The super-block scale and minimum scale (0 where the type has none).
    d: f32,
    dmin: f32,
}

/// 16 rows' super-blocks, transposed so that lane `i` is row `i` everywhere.
#[repr(C, align(64))]
struct Panel {
    /// `w[g]`, dword `i`: values `4g..4g + 4` of row `i`.
    w: [__m512i; 64],
    /// `sc[s]`, dword `i`: the scale of values `16s..16s + 16` of row `i` (i32).
    sc: [__m512i; 16],
    /// `c[p]`, dword `i`: the i16 pair (partner of block sum `2p`, of `2p + 1`) of row `i`.
    c: [__m512i; 8],
    d: __m512,
    dmin: __m512,
}

/// The transpose of 16 vectors of 16 dwords: `out[j]` dword `i` = `r[i]` dword `j`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn transpose16(r: &[__m512i; 16]) -> [__m512i; 16] {
    // pairs of rows interleaved by dword, then by qword: u[4i + c], 128-bit lane L, holds
    // column 4L + c of rows 4i..4i + 4
    let t: [__m512i; 16] = std::array::from_fn(|k| {
        let (a, b) = (r[k & !1], r[k | 1]);
        if k % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    let u: [__m512i; 16] = std::array::from_fn(|k| {
        let (i, c) = (k / 4, k % 4);
        let (a, b) = (t[4 * i + c / 2], t[4 * i + 2 + c / 2]);
        if c % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // then a 4 × 4 transposition of 128-bit lanes for each c
    let mut out = [_mm512_setzero_si512(); 16];
    for c in 0..4 {
        let v0 = _mm512_shuffle_i32x4::<0x44>(u[c], u[4 + c]);
        let v1 = _mm512_shuffle_i32x4::<0xee>(u[c], u[4 + c]);
        let v2 = _mm512_shuffle_i32x4::<0x44>(u[8 + c], u[12 + c]);
        let v3 = _mm512_shuffle_i32x4::<0xee>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
        out[4 + c] = _mm512_shuffle_i32x4::<0xdd>(v0, v2);
        out[8 + c] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        out[12 + c] = _mm512_shuffle_i32x4::<0xdd>(v1, v3);
    }
    out
}

/// Builds the panel of super-block `b` of the 16 rows `w[i]` (`wb` bytes per block).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
fn panel(
    p: &mut Panel,
    w: &[&[u8]; ROWS],
    wb: usize,
    b: usize,
    scale: Scale,
    unpack: &impl Fn(&[u8]) -> TBlock,
) {
    let k: [TBlock; ROWS] = std::array::from_fn(|i| {
        prefetch_ahead(w[i], wb * b, wb);
        unpack(&w[i][wb * b..wb * (b + 1)])
    });
    for v in 0..4 {
        let t = transpose16(&k.map(|k| k.x[v]));
        p.w[16 * v..16 * v + 16].copy_from_slice(&t);
    }
    p.sc = transpose16(&k.map(|k| {
        if scale == Scale::Madd16 {
            _mm512_cvtepu16_epi32(k.sc)
        } else {
            _mm512_cvtepi16_epi32(k.sc)
        }
    }));
    let c = transpose16(&k.map(|k| _mm512_zextsi256_si512(k.c)));
    p.c.copy_from_slice(&c[..8]);
    let d: [f32; ROWS] = std::array::from_fn(|i| k[i].d);
    let dmin: [f32; ROWS] = std::array::from_fn(|i| k[i].dmin);
    // SAFETY: both hold 16 f32.
    unsafe {
        p.d = _mm512_loadu_ps(d.as_ptr());
        p.dmin = _mm512_loadu_ps(dmin.as_ptr());
    }
}

/// How a panel's per-row sums of 16 (or 32) values meet their scale.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// The sum of 16 values fits an i16 (|Σ| ≤ 16 · max value · 128 < 2¹⁵: q2_k, q3_k, q4_k),
    /// and the scale is stored zero-extended: one `vpdpwssd` multiplies and adds.
    Madd16,
    /// `vpmulld` per 16 values (q6_k: 16 · 63 · 128 does not fit an i16).
    Mul16,
    /// `vpmulld` per 32 values, for the types whose sub-blocks are 32 long (q5_k).
    Mul32,
}

/// The dword at byte `off` of a q8_k block, in every lane.
///
/// # Safety
/// `off + 4 <= 292` and `a` points at a whole q8_k block.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn bcast(a: *const u8, off: usize) -> __m512i {
    // SAFETY: as the caller promises, the 4 bytes are inside the block.
    _mm512_set1_epi32(unsafe { a.add(off).cast::<i32>().read_unaligned() })
}

/// `sumf[16t + i] += term(row i, token t)` for the `T` tokens whose super-block `b` starts at
/// `a[t]`: the one-token dot's super-block term, lane-wise.
///
/// # Safety
/// Every `a[t]` points at a whole q8_k block; `sumf` holds `16·T` f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile<const T: usize>(
    p: &Panel,
    a: [*const u8; T],
    finish: Finish,
    scale: Scale,
    sumf: &mut [f32],
) {
    debug_assert!(sumf.len() == ROWS * T);
    let mut sumi = [_mm512_setzero_si512(); T];
    // the integer sums of `span` groups of 4 values (one scale), then times the scale
    let span = if scale == Scale::Mul32 { 8 } else { 4 };
    for s in 0..64 / span {
        let mut acc = [_mm512_setzero_si512(); T];
        for j in 0..span {
            let g = span * s + j;
            for t in 0..T {
                // SAFETY: quants 4g..4g + 4 lie at 4 + 4g < 260 (g < 64).
                acc[t] = _mm512_dpbusd_epi32(acc[t], p.w[g], unsafe { bcast(a[t], 4 + 4 * g) });
            }
        }
        let sc = p.sc[s * span / 4];
        for t in 0..T {
            sumi[t] = match scale {
                // acc fits an i16, so its low half is it: lo·sc + hi·0
                Scale::Madd16 => _mm512_dpwssd_epi32(sumi[t], acc[t], sc),
                Scale::Mul16 | Scale::Mul32 => {
                    _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(acc[t], sc))
                }
            };
        }
    }
    let mut c = [_mm512_setzero_si512(); T];
    for q in 0..8 {
        for t in 0..T {
            // SAFETY: block sums 2q, 2q + 1 lie at 260 + 4q < 292 (q < 8).
            c[t] = _mm512_dpwssd_epi32(c[t], p.c[q], unsafe { bcast(a[t], 260 + 4 * q) });
        }
    }
    for t in 0..T {
        // SAFETY: the block's scale is its first 4 bytes.
        let dy = unsafe { a[t].cast::<f32>().read_unaligned() };
        let o = &mut sumf[ROWS * t..ROWS * (t + 1)];
        add_term((p.d, p.dmin), dy, sumi[t], c[t], finish, o);
    }
}

/// `o[i] +=` row `i`'s super-block term (its scales `pd`, `pdmin` in lane `i`) with a token
/// whose block scale is `dy`, from the exact integer sums `sumi` (values times sub-block
/// scales) and `c` (block sums times their partners): the one-token dot's f32 steps,
/// lane-wise.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn add_term(
    (pd, pdmin): (__m512, __m512),
    dy: f32,
    sumi: __m512i,
    c: __m512i,
    finish: Finish,
    o: &mut [f32],
) {
    assert!(o.len() == ROWS);
    let dy = _mm512_set1_ps(dy);
    let d = _mm512_mul_ps(pd, dy);
    let term = match finish {
        Finish::Mins => _mm512_sub_ps(
            _mm512_mul_ps(d, _mm512_cvtepi32_ps(sumi)),
            _mm512_mul_ps(_mm512_mul_ps(pdmin, dy), _mm512_cvtepi32_ps(c)),
        ),
        Finish::Shift(k) => _mm512_mul_ps(
            d,
            _mm512_cvtepi32_ps(_mm512_sub_epi32(
                sumi,
                _mm512_mullo_epi32(c, _mm512_set1_epi32(k)),
            )),
        ),
    };
    // SAFETY: o holds 16 f32 (asserted).
    unsafe {
        _mm512_storeu_ps(
            o.as_mut_ptr(),
            _mm512_add_ps(_mm512_loadu_ps(o.as_ptr()), term),
        );
    }
}

/// How a k-quant's super-block sums run on the AMX int8 unit (`tdpbssd`: signed bytes times
/// signed bytes), which has no per-16-values scale step: the sub-block scales are folded into
/// the weight bytes. Each scale `sc` (sign-extended) is split into `count` digits of `bits`
/// bits, `sc = Σ_j 2^(bits·j)·d_j` (the low ones `(sc >> bits·j) & mask`, the top one
/// `sc >> bits·(count − 1)` arithmetic, so signed where `sc` is), and digit tile `j` holds
/// `(x − shift)·d_j` per value, small enough for an `i8` by the choice of `bits` (for every
/// type: |value| · |digit| ≤ 127). Then `Σ_j 2^(bits·j)·C_j` is exactly the one-token dot's
/// `Σ sc·(x − shift)·y` for the super-block (the shift folded in: with it the block-sum term of
/// [`Finish::Shift`] is 0), and with `mins` one more tile holds each 16 values' minimum and
/// gives `Σ min·bsum` as [`Finish::Mins`] takes it. All in exact integers: same bits.
#[derive(Clone, Copy)]
pub(super) struct Digits {
    /// What the panel's unsigned values exceed the type's values by (folded in).
    shift: i8,
    bits: u32,
    count: usize,
    /// Whether the type has minimums (one tile more).
    mins: bool,
}

impl Digits {
    /// Weight tiles per panel (at most 4: `tmm0..tmm3` accumulate).
    fn tiles(self) -> usize {
        self.count + usize::from(self.mins)
    }
}

/// One AMX weight operand for a super-block: `g[16c + k]` (dword `i`) is 4 bytes of row `i`
/// for values `64c + 4k..` — tile row `k` of chunk `c` (values `64c..64c + 64`); the panel's
/// [`Panel::w`] has this layout already.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct BTile([__m512i; 64]);

/// The AMX tiles of [`amx_tile16`]: `tmm0..tmm3` the 16 tokens × 16 rows int32 sums (one per
/// weight tile), `tmm4` 16 tokens × 64 quants, `tmm5..tmm7` the weight tiles of a chunk
/// (16 × 16 dwords), all 16 rows of 64 bytes.
fn amx_config() -> amx::TileConfig {
    amx::TileConfig::new(&[
        (0, 16, 64),
        (1, 16, 64),
        (2, 16, 64),
        (3, 16, 64),
        (4, 16, 64),
        (5, 16, 64),
        (6, 16, 64),
        (7, 16, 64),
    ])
}

/// Byte-wise `x·d` of the 64 bytes of `x` with the dword-wise `d` (its value in both words):
/// exact wherever the product fits a byte, signed or not (low bytes: the low byte of the
/// word product; high bytes: the word product of the high byte alone).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn mul_bytes(x: __m512i, d: __m512i) -> __m512i {
    let lo = _mm512_and_si512(_mm512_mullo_epi16(x, d), _mm512_set1_epi16(0x00ff));
    let hi = _mm512_mullo_epi16(_mm512_and_si512(x, _mm512_set1_epi16(-256)), d);
    _mm512_or_si512(lo, hi)
}

/// The weight tiles of panel `p` under plan `dg` into `bt` (`dg.tiles()` of them).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
fn amx_weights(p: &Panel, dg: Digits, bt: &mut [BTile]) {
    assert!(bt.len() == dg.tiles() && dg.count <= 4);
    let shift = _mm512_set1_epi8(dg.shift);
    let mask = _mm512_set1_epi32((1 << dg.bits) - 1);
    let words = |d: __m512i| {
        _mm512_or_si512(
            _mm512_and_si512(d, _mm512_set1_epi32(0xffff)),
            _mm512_slli_epi32::<16>(d),
        )
    };
    for s in 0..16 {
        // the scale sign-extended (Madd16 panels keep it zero-extended from 16 bits)
        let sc = _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(p.sc[s]));
        let mut d = [_mm512_setzero_si512(); 4];
        for (j, dj) in d.iter_mut().enumerate().take(dg.count) {
            let v = _mm512_srav_epi32(sc, _mm512_set1_epi32((dg.bits as usize * j) as i32));
            *dj = words(if j + 1 < dg.count {
                _mm512_and_si512(v, mask)
            } else {
                v
            });
        }
        for g in 4 * s..4 * s + 4 {
            let x = _mm512_sub_epi8(p.w[g], shift);
            for j in 0..dg.count {
                bt[j].0[g] = mul_bytes(x, d[j]);
            }
        }
        if dg.mins {
            // the minimum of values 16s..16s + 16 (an i16 of the pair), in all 4 bytes
            let m = _mm512_and_si512(
                _mm512_srlv_epi32(p.c[s / 2], _mm512_set1_epi32(16 * (s % 2) as i32)),
                _mm512_set1_epi32(0xff),
            );
            let m = _mm512_mullo_epi32(m, _mm512_set1_epi32(0x0101_0101));
            for g in 4 * s..4 * s + 4 {
                bt[dg.count].0[g] = m;
            }
        }
    }
}

/// `tileloadd` of weight tile rows at `$b` into `tmm$t`, then `tdpbssd tmm$c += tmm4 · tmm$t`.
macro_rules! amx_dp {
    ($c:literal, $t:literal, $b:expr) => {
        std::arch::asm!(
            concat!("tileloadd tmm", $t, ", [{b} + {s} * 1]"),
            concat!("tdpbssd tmm", $c, ", tmm4, tmm", $t),
            b = in(reg) $b,
            s = in(reg) 64usize,
            options(nostack)
        )
    };
}

/// `tilestored` of `tmm$c` to the 16 × 64 bytes at `$o`.
macro_rules! amx_store {
    ($c:literal, $o:expr) => {
        std::arch::asm!(
            concat!("tilestored [{o} + {s} * 1], tmm", $c),
            o = in(reg) $o,
            s = in(reg) 64usize,
            options(nostack)
        )
    };
}

/// [`tile`] of the 16 tokens whose rows start at `a + ab·t`, on the AMX unit, over all
/// `nb` super-blocks in order: per super-block and chunk of 64 values one load of the tokens'
/// quants and one `tdpbssd` per weight tile ([`Digits`]), the sums accumulating over the
/// super-block in `tmm0..`; then per token the digits combined into the exact `sumi` (and
/// the minimum sum `c`), and [`add_term`] with super-block `b`'s scales `ds[b]`.
///
/// # Safety
/// [`amx_config`] is loaded; `bt` holds `dg.tiles()` tiles per super-block (block `b`'s at
/// `dg.tiles()·b`); the 16 rows hold `nb` q8_k blocks each; `sumf` holds 256 f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn amx_tile16(
    ds: &[(__m512, __m512)],
    bt: &[BTile],
    dg: Digits,
    finish: Finish,
    a: *const u8,
    ab: usize,
    sumf: &mut [f32],
) {
    #[repr(C, align(64))]
    struct Sums([[i32; ROWS * ROWS]; 4]);
    let (nt, nb) = (dg.tiles(), ds.len());
    assert!(bt.len() == nt * nb && (1..=4).contains(&nt) && sumf.len() == ROWS * ROWS);
    let mut c = Sums([[0; ROWS * ROWS]; 4]);
    for (b, &scales) in ds.iter().enumerate() {
        let bt = &bt[nt * b..nt * (b + 1)];
        // SAFETY: b < nb: the quant loads read bytes 4..260 of the 16 tokens' block b; the
        // weight loads 1 KiB of `bt[k]`; the stores `c`'s 1 KiB each; configured (caller).
        unsafe {
            let ay = a.add(Q8K * b);
            std::arch::asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
            for ch in 0..4 {
                std::arch::asm!(
                    "tileloadd tmm4, [{a} + {s} * 1]",
                    a = in(reg) ay.add(4 + 64 * ch),
                    s = in(reg) ab,
                    options(nostack)
                );
                let w = |k: usize| bt[k].0[16 * ch..].as_ptr();
                amx_dp!("0", "5", w(0));
                if nt > 1 {
                    amx_dp!("1", "6", w(1));
                }
                if nt > 2 {
                    amx_dp!("2", "7", w(2));
                }
                if nt > 3 {
                    amx_dp!("3", "5", w(3));
                }
            }
            amx_store!("0", c.0[0].as_mut_ptr());
            if nt > 1 {
                amx_store!("1", c.0[1].as_mut_ptr());
            }
            if nt > 2 {
                amx_store!("2", c.0[2].as_mut_ptr());
            }
            if nt > 3 {
                amx_store!("3", c.0[3].as_mut_ptr());
            }
        }
        for t in 0..ROWS {
            let row = |k: usize| {
                // SAFETY: each sum tile holds 16 × 16 i32, row t at 16t.
                unsafe { _mm512_load_si512(c.0[k].as_ptr().add(ROWS * t).cast()) }
            };
            let mut sumi = row(dg.count - 1);
            for j in (0..dg.count - 1).rev() {
                // Horner: sumi = Σ_j 2^(bits·j)·C_j (exact: the result fits an i32)
                let up = _mm512_sllv_epi32(sumi, _mm512_set1_epi32(dg.bits as i32));
                sumi = _mm512_add_epi32(up, row(j));
            }
            let cm = if dg.mins {
                row(dg.count)
            } else {
                _mm512_setzero_si512()
            };
            // SAFETY: token t's block b starts at a + ab·t + Q8K·b; its scale is its first 4
            // bytes.
            let dy = unsafe { a.add(ab * t + Q8K * b).cast::<f32>().read_unaligned() };
            add_term(
                scales,
                dy,
                sumi,
                cm,
                finish,
                &mut sumf[ROWS * t..ROWS * (t + 1)],
            );
        }
    }
}

/// A kind of panel: how 16 rows' super-block `b` is unpacked into it, and the `T`-token tile
/// that adds each (row, token)'s super-block term to `sumf` (`[token][row]`).
trait Kind {
    /// Unpacks super-block `b` of the 16 rows `w[i]` (`wb` bytes per block).
    ///
    /// # Safety
    /// Every `w[i]` holds block `b`; the caller enables AVX-512 F/BW/VL/VNNI, AVX2, FMA, F16C.
    unsafe fn build(&mut self, w: &[&[u8]; ROWS], wb: usize, b: usize);
    /// `sumf[16t + i] +=` the term of row `i` with the token whose block `b` is at `a[t]`.
    ///
    /// # Safety
    /// Every `a[t]` points at a whole q8_k block, `sumf` holds `16·T` f32; features as above.
    unsafe fn tile<const T: usize>(&self, a: [*const u8; T], sumf: &mut [f32]);
    /// Whether this kind has an AMX path ([`Kind::amx_build`], [`Kind::amx_tile16`]).
    fn has_amx(&self) -> bool {
        false
    }
    /// Keeps the AMX weight tiles and scales of the panel last built (super-block `b` of
    /// `nb`).
    ///
    /// # Safety
    /// As for [`Kind::build`], which ran for `b`; [`Kind::has_amx`].
    unsafe fn amx_build(&mut self, b: usize, nb: usize) {
        let _ = (b, nb);
        unreachable!("amx_build without an AMX path");
    }
    /// [`Kind::tile`] of the 16 tokens whose rows start at `a + ab·t`, over every super-block
    /// kept by [`Kind::amx_build`], on the AMX unit.
    ///
    /// # Safety
    /// [`Kind::amx_build`] ran for every super-block of these rows; [`amx_config`] is loaded;
    /// the 16 rows hold whole q8_k rows; `sumf` holds 256 f32.
    unsafe fn amx_tile16(&self, a: *const u8, ab: usize, sumf: &mut [f32]) {
        let _ = (a, ab, sumf);
        unreachable!("amx_tile16 without an AMX path");
    }
}

/// The k-quants' panels ([`Panel`], [`tile`]).
struct KQuant<U> {
    p: Panel,
    finish: Finish,
    scale: Scale,
    unpack: U,
    /// The type's AMX plan; the weight tiles and scales of every super-block of the current
    /// 16 rows (kept only where AMX runs).
    digits: Digits,
    bt: Vec<BTile>,
    ds: Vec<(__m512, __m512)>,
}

impl<U: Fn(&[u8]) -> TBlock> Kind for KQuant<U> {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn build(&mut self, w: &[&[u8]; ROWS], wb: usize, b: usize) {
        panel(&mut self.p, w, wb, b, self.scale, &self.unpack);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn tile<const T: usize>(&self, a: [*const u8; T], sumf: &mut [f32]) {
        // SAFETY: as this function's caller promises.
        unsafe { tile::<T>(&self.p, a, self.finish, self.scale, sumf) }
    }

    fn has_amx(&self) -> bool {
        true
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn amx_build(&mut self, b: usize, nb: usize) {
        let nt = self.digits.tiles();
        self.bt.resize(nt * nb, BTile([_mm512_setzero_si512(); 64]));
        self.ds
            .resize(nb, (_mm512_setzero_ps(), _mm512_setzero_ps()));
        amx_weights(&self.p, self.digits, &mut self.bt[nt * b..nt * (b + 1)]);
        self.ds[b] = (self.p.d, self.p.dmin);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn amx_tile16(&self, a: *const u8, ab: usize, sumf: &mut [f32]) {
        let (ds, bt, dg) = (&self.ds, &self.bt, self.digits);
        // SAFETY: as this function's caller promises; `bt` and `ds` were kept for these rows.
        unsafe { amx_tile16(ds, bt, dg, self.finish, a, ab, sumf) }
    }
}

/// `out[r·m + t]` = the one-token dot of weight row `r` of `w` with activation row `t` of `a`
/// (`m` rows of `n / 256` q8_k blocks), bit for bit: 16-row groups through `kind`'s panels
/// when there are at least [`MIN_TOKENS`] tokens (with `amx` and a kind that has the path,
/// 16 at a time on the AMX unit, then 8, 4, 1 on VNNI), the other rows (and small batches)
/// through `rest` (the pairs kernel, same contract).
///
/// # Safety
/// `w` holds whole rows of `n / 256` blocks of `wb` bytes that `kind` reads, `a` whole q8_k
/// rows, `out` one f32 per (row, token); the caller enables AVX-512 F/BW/VL/VNNI, AVX2, FMA
/// and F16C; with `amx`, `amx::usable()`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows_by_panels(
    (n, wb): (usize, usize),
    w: &[u8],
    a: &[u8],
    out: &mut [f32],
    kind: &mut impl Kind,
    rest: impl Fn(&[u8], &mut [f32]),
    amx: bool,
) {
    let nb = n / 256;
    let (rb, ab) = (wb * nb, Q8K * nb);
    assert!(nb > 0 && w.len().is_multiple_of(rb) && a.len().is_multiple_of(ab));
    let (rows, m) = (w.len() / rb, a.len() / ab);
    assert!(out.len() == rows * m);
    let groups = if m >= MIN_TOKENS { rows / ROWS } else { 0 };
    let mut sumf = vec![0f32; ROWS * m];
    // the first 16·tiles tokens in 16-token tiles on the AMX unit where asked (and the kind
    // has that path): each tile through every super-block of a row group in turn (its 16
    // rows' quants streamed in order), against weight tiles kept for all the group's
    // super-blocks; the other tokens take the VNNI tiles as each panel is built.
    let tiles = if amx && groups > 0 && kind.has_amx() {
        m / ROWS
    } else {
        0
    };
    if tiles > 0 {
        // SAFETY: the caller checked `amx::usable()`; released below.
        unsafe { amx_config().load() };
    }
    for gi in 0..groups {
        let wr: [&[u8]; ROWS] = std::array::from_fn(|i| &w[rb * (ROWS * gi + i)..][..rb]);
        sumf.fill(0.0);
        for b in 0..nb {
            // SAFETY: every row holds nb blocks (lengths checked).
            unsafe { kind.build(&wr, wb, b) };
            if tiles > 0 {
                // SAFETY: `build` ran for block b; the kind has an AMX path.
                unsafe { kind.amx_build(b, nb) };
            }
            let at = |t: usize| a[ab * t + Q8K * b..][..Q8K].as_ptr();
            let mut t = ROWS * tiles;
            while t + 8 <= m {
                let s = &mut sumf[ROWS * t..ROWS * (t + 8)];
                // SAFETY: every pointer starts a whole q8_k block; the slice holds 8 × 16.
                unsafe { kind.tile::<8>(std::array::from_fn(|k| at(t + k)), s) };
                t += 8;
            }
            while t + 4 <= m {
                let s = &mut sumf[ROWS * t..ROWS * (t + 4)];
                // SAFETY: as above, 4 tokens.
                unsafe { kind.tile::<4>(std::array::from_fn(|k| at(t + k)), s) };
                t += 4;
            }
            while t < m {
                let s = &mut sumf[ROWS * t..ROWS * (t + 1)];
                // SAFETY: as above, 1 token.
                unsafe { kind.tile::<1>([at(t)], s) };
                t += 1;
            }
        }
        for j in 0..tiles {
            let s = &mut sumf[ROWS * ROWS * j..ROWS * ROWS * (j + 1)];
            // SAFETY: tokens 16j..16j + 16 ≤ m are whole q8_k rows ab bytes apart; every
            // super-block was kept above; the configuration is loaded; s holds 16 × 16.
            unsafe { kind.amx_tile16(a[ab * ROWS * j..].as_ptr(), ab, s) };
        }
        let o = &mut out[ROWS * gi * m..ROWS * (gi + 1) * m];
        for (t, s) in sumf.chunks_exact(ROWS).enumerate() {
            for (i, &v) in s.iter().enumerate() {
                o[i * m + t] = v;
            }
        }
    }
    if tiles > 0 {
        // SAFETY: loaded above.
        unsafe { amx::release() };
    }
    let done = ROWS * groups;
    if done < rows {
        rest(&w[rb * done..], &mut out[m * done..]);
    }
}

/// A fresh k-quant panel kind.
#[inline]
#[target_feature(enable = "avx512f")]
fn kquant<U: Fn(&[u8]) -> TBlock>(
    finish: Finish,
    scale: Scale,
    digits: Digits,
    unpack: U,
) -> KQuant<U> {
    KQuant {
        p: Panel {
            w: [_mm512_setzero_si512(); 64],
            sc: [_mm512_setzero_si512(); 16],
            c: [_mm512_setzero_si512(); 8],
            d: _mm512_setzero_ps(),
            dmin: _mm512_setzero_ps(),
        },
        finish,
        scale,
        unpack,
        digits,
        bt: Vec::new(),
        ds: Vec::new(),
    }
}

/// The iq4_xs panel: the 16 rows' grid values plus 128 as for the k-quants, the 8 sub-block
/// scales minus 32 as f32 and the super-block scale, lane = row; where AMX runs, the weight
/// tiles and scales of every super-block of the current 16 rows ([`Kind::amx_build`]).
struct Xs {
    w: [__m512i; 64],
    ls: [__m512; 8],
    d: __m512,
    /// Per super-block two weight tiles: the grid values as `i8` of the even sub-blocks of
    /// each 64 values (tile rows 0..8 of each chunk; rows 8..16 zero) and of the odd ones
    /// (rows 8..16; rows 0..8 zero), so that one 64-quant load of the tokens and two
    /// `tdpbssd` give the two sub-blocks' sums apart.
    bt: Vec<BTile>,
    /// Per super-block its scales `d` and `ls` as in [`Xs::build`].
    sc: Vec<(__m512, [__m512; 8])>,
}

/// [`Xs::tile`] of the 16 tokens whose rows start at `a + ab·t`, on the AMX unit, over all
/// super-blocks in order: per 64 values one load of the tokens' quants and two `tdpbssd`
/// ([`Xs::bt`]), two chunks (4 sub-blocks) per round of tiles; then per token and
/// sub-block the reference's f32 steps, as [`Xs::tile`] takes them.
///
/// # Safety
/// [`amx_config`] is loaded; `bt` holds 2 tiles per entry of `sc`; the 16 rows hold
/// `sc.len()` q8_k blocks each; `sumf` holds 256 f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn xs_amx_tile16(
    sc: &[(__m512, [__m512; 8])],
    bt: &[BTile],
    a: *const u8,
    ab: usize,
    sumf: &mut [f32],
) {
    #[repr(C, align(64))]
    struct Sums([[i32; ROWS * ROWS]; 4]);
    assert!(bt.len() == 2 * sc.len() && sumf.len() == ROWS * ROWS);
    let mut c = Sums([[0; ROWS * ROWS]; 4]);
    for (b, (d, ls)) in sc.iter().enumerate() {
        let (even, odd) = (&bt[2 * b].0, &bt[2 * b + 1].0);
        let dd: [__m512; ROWS] = std::array::from_fn(|t| {
            // SAFETY: token t's block b starts at a + ab·t + Q8K·b; its scale is its first 4
            // bytes.
            let dy = unsafe { a.add(ab * t + Q8K * b).cast::<f32>().read_unaligned() };
            _mm512_mul_ps(*d, _mm512_set1_ps(dy))
        });
        let mut blk = [_mm512_setzero_ps(); ROWS];
        for half in 0..2 {
            let (c0, c1) = (2 * half, 2 * half + 1);
            // SAFETY: the quant loads read bytes 4..260 of the 16 tokens' block b (chunks c0,
            // c1); the weight loads 1 KiB of each tile's chunk; the stores `c`'s 4 KiB;
            // configured (caller).
            unsafe {
                std::arch::asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "tileloadd tmm4, [{a0} + {s} * 1]",
                    "tileloadd tmm5, [{e0} + {w} * 1]",
                    "tileloadd tmm6, [{o0} + {w} * 1]",
                    "tdpbssd tmm0, tmm4, tmm5",
                    "tdpbssd tmm1, tmm4, tmm6",
                    "tileloadd tmm7, [{a1} + {s} * 1]",
                    "tileloadd tmm5, [{e1} + {w} * 1]",
                    "tileloadd tmm6, [{o1} + {w} * 1]",
                    "tdpbssd tmm2, tmm7, tmm5",
                    "tdpbssd tmm3, tmm7, tmm6",
                    "tilestored [{s0} + {w} * 1], tmm0",
                    "tilestored [{s1} + {w} * 1], tmm1",
                    "tilestored [{s2} + {w} * 1], tmm2",
                    "tilestored [{s3} + {w} * 1], tmm3",
                    a0 = in(reg) a.add(Q8K * b + 4 + 64 * c0),
                    a1 = in(reg) a.add(Q8K * b + 4 + 64 * c1),
                    s = in(reg) ab,
                    e0 = in(reg) even[16 * c0..].as_ptr(),
                    o0 = in(reg) odd[16 * c0..].as_ptr(),
                    e1 = in(reg) even[16 * c1..].as_ptr(),
                    o1 = in(reg) odd[16 * c1..].as_ptr(),
                    w = in(reg) 64usize,
                    s0 = in(reg) c.0[0].as_mut_ptr(),
                    s1 = in(reg) c.0[1].as_mut_ptr(),
                    s2 = in(reg) c.0[2].as_mut_ptr(),
                    s3 = in(reg) c.0[3].as_mut_ptr(),
                    options(nostack)
                );
            }
            // sub-blocks 4·half + k, in order
            for (k, ck) in c.0.iter().enumerate() {
                let l = ls[4 * half + k];
                for (t, bt) in blk.iter_mut().enumerate() {
                    // SAFETY: each sum tile holds 16 × 16 i32, row t at 16t.
                    let sum = unsafe { _mm512_load_si512(ck.as_ptr().add(ROWS * t).cast()) };
                    let term = _mm512_mul_ps(_mm512_mul_ps(dd[t], l), _mm512_cvtepi32_ps(sum));
                    *bt = _mm512_add_ps(*bt, term);
                }
            }
        }
        for (t, v) in blk.iter().enumerate() {
            let o = &mut sumf[ROWS * t..ROWS * (t + 1)];
            // SAFETY: o holds 16 f32.
            unsafe {
                _mm512_storeu_ps(
                    o.as_mut_ptr(),
                    _mm512_add_ps(_mm512_loadu_ps(o.as_ptr()), *v),
                );
            }
        }
    }
}

impl Kind for Xs {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn build(&mut self, w: &[&[u8]; ROWS], wb: usize, b: usize) {
        let k: [_; ROWS] = std::array::from_fn(|i| {
            prefetch_ahead(w[i], wb * b, wb);
            super::kmulti::iq4_xs_block(&w[i][wb * b..wb * (b + 1)])
        });
        for v in 0..4 {
            let t = transpose16(&k.map(|k| k.0[v]));
            self.w[16 * v..16 * v + 16].copy_from_slice(&t);
        }
        let ls = transpose16(&k.map(|k| _mm512_zextsi256_si512(_mm256_castps_si256(k.1))));
        self.ls = std::array::from_fn(|s| _mm512_castsi512_ps(ls[s]));
        let d: [f32; ROWS] = std::array::from_fn(|i| k[i].2);
        // SAFETY: d holds 16 f32.
        self.d = unsafe { _mm512_loadu_ps(d.as_ptr()) };
    }

    fn has_amx(&self) -> bool {
        true
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn amx_build(&mut self, b: usize, nb: usize) {
        // zero-filled once: each tile's other half is never written
        self.bt.resize(2 * nb, BTile([_mm512_setzero_si512(); 64]));
        self.sc
            .resize(nb, (_mm512_setzero_ps(), [_mm512_setzero_ps(); 8]));
        let flip = _mm512_set1_epi8(-128);
        for g in 0..64 {
            // the grid value itself: (v + 128) ^ 0x80 read as i8
            let odd = usize::from(g % 16 >= 8);
            self.bt[2 * b + odd].0[g] = _mm512_xor_si512(self.w[g], flip);
        }
        self.sc[b] = (self.d, self.ls);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn amx_tile16(&self, a: *const u8, ab: usize, sumf: &mut [f32]) {
        // SAFETY: as this function's caller promises; `bt` and `sc` were kept for these rows.
        unsafe { xs_amx_tile16(&self.sc, &self.bt, a, ab, sumf) }
    }

    /// Per sub-block of 32: the exact `Σ (v + 128)·y − 128·Σ y`, then the reference's f32
    /// steps lane-wise: `((d·dy)·ls)·f32(Σ)` added in sub-block order from 0, then to the sum.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn tile<const T: usize>(&self, a: [*const u8; T], sumf: &mut [f32]) {
        debug_assert!(sumf.len() == ROWS * T);
        let dd: [__m512; T] = std::array::from_fn(|t| {
            // SAFETY: every block's scale is its first 4 bytes.
            let dy = unsafe { a[t].cast::<f32>().read_unaligned() };
            _mm512_mul_ps(self.d, _mm512_set1_ps(dy))
        });
        let mut blk = [_mm512_setzero_ps(); T];
        for s in 0..8 {
            let mut acc = [_mm512_setzero_si512(); T];
            for j in 0..8 {
                let g = 8 * s + j;
                for t in 0..T {
                    // SAFETY: quants 4g..4g + 4 lie at 4 + 4g < 260 (g < 64).
                    acc[t] =
                        _mm512_dpbusd_epi32(acc[t], self.w[g], unsafe { bcast(a[t], 4 + 4 * g) });
                }
            }
            for t in 0..T {
                // SAFETY: block sums 2s, 2s + 1 (i16) lie at 260 + 4s < 292 (s < 8).
                let bs = unsafe {
                    let p = a[t].add(260 + 4 * s);
                    let v = |o: usize| i32::from(i16::from_le_bytes([*p.add(o), *p.add(o + 1)]));
                    v(0) + v(2)
                };
                let sum = _mm512_sub_epi32(acc[t], _mm512_set1_epi32(128 * bs));
                let term = _mm512_mul_ps(_mm512_mul_ps(dd[t], self.ls[s]), _mm512_cvtepi32_ps(sum));
                blk[t] = _mm512_add_ps(blk[t], term);
            }
        }
        for (t, b) in blk.iter().enumerate() {
            let o = &mut sumf[ROWS * t..ROWS * (t + 1)];
            // SAFETY: o holds 16 f32.
            unsafe {
                _mm512_storeu_ps(
                    o.as_mut_ptr(),
                    _mm512_add_ps(_mm512_loadu_ps(o.as_ptr()), *b),
                );
            }
        }
    }
}

/// `out[r·m + t]` = the iq4_xs·q8_k dot of weight row `r` of `w` with activation row `t` of
/// `a`: 16-row panels × 8-token tiles from [`MIN_TOKENS`] tokens on, else (and for the last
/// rows) the pairs kernel; each result bit-identical to the one-token dot.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_tiled_iq4_xs_q8_k(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    // SAFETY: no AMX; the features are this function's.
    unsafe { iq4_xs_rows(n, w, a, out, false) }
}

/// [`vec_dot_tiled_iq4_xs_q8_k`] with the panels' tokens 16 at a time on the AMX unit.
///
/// # Safety
/// `amx::usable()` (besides the features enabled).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_tiled_iq4_xs_q8_k_amx(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    // SAFETY: the caller checked `amx::usable()`.
    unsafe { iq4_xs_rows(n, w, a, out, true) }
}

/// The iq4_xs panels through [`rows_by_panels`].
///
/// # Safety
/// The caller enables AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; with `amx`, `amx::usable()`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn iq4_xs_rows(n: usize, w: &[u8], a: &[u8], out: &mut [f32], amx: bool) {
    let mut kind = Xs {
        w: [_mm512_setzero_si512(); 64],
        ls: [_mm512_setzero_ps(); 8],
        d: _mm512_setzero_ps(),
        bt: Vec::new(),
        sc: Vec::new(),
    };
    // SAFETY: 136-byte blocks, which `Xs` reads; `rows_by_panels` checks the lengths; the
    // features are the caller's (and `amx::usable()` with `amx`).
    unsafe {
        rows_by_panels(
            (n, 136),
            w,
            a,
            out,
            &mut kind,
            |w, o| {
                super::kmulti::pairs_iq4_xs_q8_k(n, w, a, o);
            },
            amx,
        );
    }
}

/// A q2_k super-block (scales 0..16: low nibble scale, high nibble min; qs 16..80; d 80,
/// dmin 82): the 2-bit values as they are.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
fn q2_k_tile(bw: &[u8]) -> TBlock {
    let m4 = _mm_set1_epi8(0x0f);
    let x = super::kmulti::q2_k_values(bw);
    // SAFETY: the 16 scale bytes are at 0..16 of the 84-byte block (checked by q2_k_values).
    let sc8 = unsafe { _mm_loadu_si128(bw.as_ptr().cast()) };
    let (d, dmin) = f16x2_at(bw, 80);
    TBlock {
        x,
        sc: _mm256_cvtepu8_epi16(_mm_and_si128(sc8, m4)),
        c: _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc8), m4)),
        d,
        dmin,
    }
}

/// The 8 sub-block scales of 32 values of a q4_k/q5_k super-block, each twice (one per 16).
#[inline]
#[target_feature(enable = "avx2")]
fn scales16(sm: &[u8; 16]) -> __m256i {
    let mut t = [0u8; 16];
    t[8..].copy_from_slice(&sm[..8]);
    q4k_mins16(&t)
}

/// A q3_k (values plus 4) or q6_k (plus 32) super-block: the scales are also the block sums'
/// partners, which shift the values back.
#[inline]
#[target_feature(enable = "avx512f")]
fn shifted(k: &super::kmulti::KBlock) -> TBlock {
    TBlock {
        x: k.x,
        sc: k.c,
        c: k.c,
        d: _mm_cvtss_f32(k.d),
        dmin: 0.0,
    }
}

/// A q3_k super-block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
fn q3_k_tile(bw: &[u8]) -> TBlock {
    shifted(&q3_k_block(bw))
}

/// A q4_k super-block (d 0, dmin 2, scales 4..16, qs 16..144).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
fn q4_k_tile(bw: &[u8]) -> TBlock {
    assert!(bw.len() >= Q4K);
    let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
    let mask = _mm512_set1_epi8(0x0f);
    let x = std::array::from_fn(|j| {
        // SAFETY: qs bytes 16+32j..48+32j <= 144 (j < 4).
        let q = unsafe { ld256(bw, 16 + 32 * j) };
        _mm512_and_si512(join(q, _mm256_srli_epi16::<4>(q)), mask)
    });
    let (d, dmin) = f16x2_at(bw, 0);
    TBlock {
        x,
        sc: scales16(&sm),
        c: q4k_mins16(&sm),
        d,
        dmin,
    }
}

/// A q5_k super-block (d 0, dmin 2, scales 4..16, qh 16..48, qs 48..176).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
fn q5_k_tile(bw: &[u8]) -> TBlock {
    let k = q5_k_block(bw);
    let sm = unpack_scales_mins(bw[4..16].try_into().expect("12 scale bytes"));
    TBlock {
        x: k.x,
        sc: scales16(&sm),
        c: k.c,
        d: _mm_cvtss_f32(k.d),
        dmin: _mm_cvtss_f32(k.dmin),
    }
}

/// A q6_k super-block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
fn q6_k_tile(bw: &[u8]) -> TBlock {
    shifted(&q6_k_block(bw))
}

/// Defines a k-quant's `vec_dot_tiled`, and its AMX twin, from its panel unpacker, its
/// pairs kernel and its AMX plan.
macro_rules! kgemm {
    ($tiled:ident, $amx:ident, $pairs:path, $tile:ident, $finish:expr, $scale:expr,
     $digits:expr, $wb:expr, $name:literal) => {
        #[doc = concat!("`out[r·m + t]` = the ", $name, "·q8_k dot of weight row `r` of `w` with")]
        #[doc = "activation row `t` of `a` (`m` rows): 16-row panels × 8-token tiles from"]
        #[doc = "[`MIN_TOKENS`] tokens on, else (and for the last rows) the pairs kernel; each"]
        #[doc = "result bit-identical to the one-token dot."]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) fn $tiled(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
            // SAFETY: no AMX; otherwise as in `$amx`.
            unsafe { kgemm!(@rows ($pairs, $tile, $finish, $scale, $digits, $wb), n, w, a, out, false) }
        }

        #[doc = concat!("[`", stringify!($tiled), "`] with the panels' tokens 16 at a time on")]
        #[doc = "the AMX int8 unit (same bits)."]
        ///
        /// # Safety
        /// `amx::usable()` (besides the features enabled).
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) unsafe fn $amx(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
            // SAFETY: the block size is the type's, `rows_by_panels` checks the lengths; the
            // features are this function's; the caller checked `amx::usable()`.
            unsafe { kgemm!(@rows ($pairs, $tile, $finish, $scale, $digits, $wb), n, w, a, out, true) }
        }
    };
    (@rows ($pairs:path, $tile:ident, $finish:expr, $scale:expr, $digits:expr, $wb:expr),
     $n:ident, $w:ident, $a:ident, $out:ident, $amx:expr) => {
        rows_by_panels(
            ($n, $wb),
            $w,
            $a,
            $out,
            &mut kquant($finish, $scale, $digits, |b| $tile(b)),
            |w, o| $pairs($n, w, $a, o),
            $amx,
        )
    };
}

kgemm!(
    vec_dot_tiled_q2_k_q8_k,
    vec_dot_tiled_q2_k_q8_k_amx,
    super::kmulti::pairs_q2_k_q8_k,
    q2_k_tile,
    Finish::Mins,
    Scale::Madd16,
    // values 0..3 × scales 0..15: one digit
    Digits {
        shift: 0,
        bits: 4,
        count: 1,
        mins: true
    },
    Q2K,
    "q2_k"
);
kgemm!(
    vec_dot_tiled_q3_k_q8_k,
    vec_dot_tiled_q3_k_q8_k_amx,
    super::kmulti::pairs_q3_k_q8_k,
    q3_k_tile,
    Finish::Shift(4),
    Scale::Madd16,
    // values -4..3 × scale digits 0..7 and -4..3
    Digits {
        shift: 4,
        bits: 3,
        count: 2,
        mins: false
    },
    Q3K,
    "q3_k"
);
kgemm!(
    vec_dot_tiled_q4_k_q8_k,
    vec_dot_tiled_q4_k_q8_k_amx,
    super::kquants::pairs_q4_k_q8_k,
    q4_k_tile,
    Finish::Mins,
    Scale::Madd16,
    // values 0..15 × scale digits 0..7
    Digits {
        shift: 0,
        bits: 3,
        count: 2,
        mins: true
    },
    Q4K,
    "q4_k"
);
kgemm!(
    vec_dot_tiled_q5_k_q8_k,
    vec_dot_tiled_q5_k_q8_k_amx,
    super::kmulti::pairs_q5_k_q8_k,
    q5_k_tile,
    Finish::Mins,
    Scale::Mul32,
    // values 0..31 × scale digits 0..3
    Digits {
        shift: 0,
        bits: 2,
        count: 3,
        mins: true
    },
    Q5K,
    "q5_k"
);
kgemm!(
    vec_dot_tiled_q6_k_q8_k,
    vec_dot_tiled_q6_k_q8_k_amx,
    super::kmulti::pairs_q6_k_q8_k,
    q6_k_tile,
    Finish::Shift(32),
    Scale::Mul16,
    // values -32..31 × scale digits 0..3 and (the top one) -2..1
    Digits {
        shift: 32,
        bits: 2,
        count: 4,
        mins: false
    },
    Q6K,
    "q6_k"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose16_transposes() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: no AVX-512 on this CPU");
            return;
        }
        let a: Vec<[i32; 16]> = (0..16)
            .map(|i| std::array::from_fn(|j| 100 * i + j as i32))
            .collect();
        // SAFETY: AVX-512 F detected above; each array holds 16 i32.
        let out = unsafe {
            let r = std::array::from_fn(|i| _mm512_loadu_si512(a[i].as_ptr().cast()));
            transpose16(&r)
        };
        for (j, v) in out.iter().enumerate() {
            let mut got = [0i32; 16];
            // SAFETY: as above.
            unsafe { _mm512_storeu_si512(got.as_mut_ptr().cast(), *v) };
            let want: [i32; 16] = std::array::from_fn(|i| 100 * i as i32 + j as i32);
            assert_eq!(got, want, "column {j}");
        }
    }
}
