//! q4_1, q5_0, q5_1 (32-value weight blocks) and q8_1 (their activation format) with AVX2.
//!
//! The dots have the block loop of q4_0·q8_0 (`unrolled4`: block `i` into accumulator
//! `i mod 4`, 8 lanes each, one pairwise tree at the end): each block's integer sums are exact
//! and its scale products are the reference's (`f32(dx) · f32(dy)`, `f32(mx) · f32(sy)`), but the
//! sum over blocks is taken in lanes. Against the reference's sequential fold a result is within
//! `4·ε·(blocks + 8)·M`, `M = Σᵢ|(wᵢ − m)·aᵢ| + Σ_blocks |m · s|` (`m = 0` for q5_0). The
//! `m · s` term of a block is added to lane 0 of its accumulator (folded into the FMA of that
//! lane). The 4-token dots give each token the single dot's bits.

use std::arch::x86_64::*;

use super::block32::{abs_max, dot_i8x32, load_block, nibbles_at, q8_quants};
use super::iq4::iq4_nl_block;
use crate::x86::{f16_mul, f32_to_f16, hsum_i32, rd_u16_ptr, unrolled4, unrolled4_x4};

/// Bytes of a q8_0 block.
const QB: usize = 34;
/// Bytes of a q8_1 block: `d`, `s`, 32 quants.
const Q81B: usize = 36;
/// Bytes of a q4_1 block: `d`, `m`, 16 bytes of nibbles.
const Q41B: usize = 20;
/// Bytes of a q5_0 block: `d`, `qh`, 16 bytes of nibbles.
const Q50B: usize = 22;
/// Bytes of a q5_1 block: `d`, `m`, `qh`, 16 bytes of nibbles.
const Q51B: usize = 24;

/// q8_1 encoder, byte-identical to [`crate::q8_1::quantize_row_q8_1_ref`]: q8_0's quants,
/// then `s = f16(f32(Σ q) · d)` with the f32 scale.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q8_1(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == Q81B * nb);
    for (i, out) in y.chunks_exact_mut(Q81B).enumerate() {
        // SAFETY: i < nb, so block i is inside x.
        let v = unsafe { load_block(x, i) };
        let d = abs_max(&v) / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let q = q8_quants(&v, id);
        let sum = hsum_i32(_mm256_madd_epi16(
            _mm256_maddubs_epi16(_mm256_set1_epi8(1), q),
            _mm256_set1_epi16(1),
        ));
        out[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        out[2..4].copy_from_slice(&f32_to_f16(sum as f32 * d).to_le_bytes());
        // SAFETY: out is 36 bytes; bytes 4..36 hold the 32 quants.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(4).cast(), q) };
    }
}

/// Byte `j` is `0xff` where bit `j` of `qh` is set, else 0.
#[inline]
#[target_feature(enable = "avx2")]
fn bits_to_bytes(qh: u32) -> __m256i {
    let v = _mm256_shuffle_epi8(
        _mm256_set1_epi32(qh as i32),
        _mm256_setr_epi64x(
            0,
            0x0101_0101_0101_0101,
            0x0202_0202_0202_0202,
            0x0303_0303_0303_0303,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit)
}

/// The little-endian u32 at `p`.
///
/// # Safety
/// `p..p + 4` is readable.
#[inline]
pub(crate) unsafe fn rd_u32_ptr(p: *const u8) -> u32 {
    // SAFETY: guaranteed by the caller.
    u32::from_le(unsafe { p.cast::<u32>().read_unaligned() })
}

/// The scale terms of a q4_1 / q5_1 block against a q8_1 block, from the two f16 pairs at the
/// start of each (`d, m` and `d, s`): `dx · dy` in every lane and `mx · sy` in lane 0 only.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn scales_dm(w_dm: u32, a_ds: u32) -> (__m256, __m256) {
    let p = _mm_mul_ps(
        _mm_cvtph_ps(_mm_cvtsi32_si128(w_dm as i32)),
        _mm_cvtph_ps(_mm_cvtsi32_si128(a_ds as i32)),
    );
    // insertps: source lane 1 (bits 7:6) into lane 0 (bits 5:4), lanes 1..3 zeroed (bits 3:0)
    let ms = _mm_insert_ps::<0b0100_1110>(p, p);
    (_mm256_broadcastss_ps(p), _mm256_zextps128_ps256(ms))
}

/// Block `i` of a q5_0 row: its f16 scale bits and 32 signed values `q − 16` (`qh` at byte 2,
/// nibbles at 6).
///
/// # Safety
/// `w` holds more than `i` blocks of 22 bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q5_0_block(w: &[u8], i: usize) -> (u16, __m256i) {
    let o = Q50B * i;
    debug_assert!(o + Q50B <= w.len());
    // SAFETY: bytes o..o + 22 are inside w.
    let (d, qh, nib) = unsafe {
        let p = w.as_ptr().add(o);
        (rd_u16_ptr(p), rd_u32_ptr(p.add(2)), nibbles_at(w, o + 6))
    };
    // q − 16 is the nibble where bit 4 is set, else the nibble − 16 = nibble | 0xf0
    let x = _mm256_or_si256(
        nib,
        _mm256_andnot_si256(bits_to_bytes(qh), _mm256_set1_epi8(0xf0u8 as i8)),
    );
    (d, x)
}

/// Block `i` of a q5_1 row: its `d, m` bits and 32 values `0..=31` (`qh` at byte 4, nibbles
/// at 8).
///
/// # Safety
/// `w` holds more than `i` blocks of 24 bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q5_1_block(w: &[u8], i: usize) -> (u32, __m256i) {
    let o = Q51B * i;
    debug_assert!(o + Q51B <= w.len());
    // SAFETY: bytes o..o + 24 are inside w.
    let (dm, qh, nib) = unsafe {
        let p = w.as_ptr().add(o);
        (rd_u32_ptr(p), rd_u32_ptr(p.add(4)), nibbles_at(w, o + 8))
    };
    let x = _mm256_or_si256(
        nib,
        _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)),
    );
    (dm, x)
}

/// Writes `f32(q) · d`, then `+ m` if given (two roundings, no FMA, as the references), for the
/// 32 signed bytes of `q` into `out[..32]`.
#[inline]
#[target_feature(enable = "avx2")]
fn store_scaled(out: &mut [f32], q: __m256i, d: f32, m: Option<f32>) {
    assert!(out.len() >= 32);
    let d = _mm256_set1_ps(d);
    let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
    for (k, part) in [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)]
        .into_iter()
        .enumerate()
    {
        let mut f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part)), d);
        if let Some(m) = m {
            f = _mm256_add_ps(f, _mm256_set1_ps(m));
        }
        // SAFETY: out has at least 32 floats; 8k..8k + 8 is in range for k < 4.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * k), f) };
    }
}

/// The two f16 values at the start of a block, as f32.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn f16_pair(bits: u32) -> (f32, f32) {
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// Decodes `nb = y.len() / 32` blocks of `bb` bytes with `block(i) -> (d, m, values)`, called
/// only with `i < nb` after checking that `x` holds `nb` blocks.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn dequantize_with(
    x: &[u8],
    y: &mut [f32],
    bb: usize,
    block: impl Fn(usize) -> (f32, Option<f32>, __m256i),
) {
    let nb = y.len() / 32;
    assert!(y.len() == 32 * nb && x.len() == bb * nb);
    for (i, out) in y.chunks_exact_mut(32).enumerate() {
        let (d, m, q) = block(i);
        store_scaled(out, q, d, m);
    }
}

/// q4_1 decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q4_1(x: &[u8], y: &mut [f32]) {
    dequantize_with(x, y, Q41B, |i| {
        // SAFETY: i < nb blocks (checked by dequantize_with).
        let (dm, q) = unsafe { q4_1_block(x, i) };
        let (d, m) = f16_pair(dm);
        (d, Some(m), q)
    });
}

/// q5_0 decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q5_0(x: &[u8], y: &mut [f32]) {
    dequantize_with(x, y, Q50B, |i| {
        // SAFETY: i < nb blocks (checked by dequantize_with).
        let (d, q) = unsafe { q5_0_block(x, i) };
        (f16_pair(u32::from(d)).0, None, q)
    });
}

/// q5_1 decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q5_1(x: &[u8], y: &mut [f32]) {
    dequantize_with(x, y, Q51B, |i| {
        // SAFETY: i < nb blocks (checked by dequantize_with).
        let (dm, q) = unsafe { q5_1_block(x, i) };
        let (d, m) = f16_pair(dm);
        (d, Some(m), q)
    });
}

/// q8_1 decoder, exact (`s` is not read).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q8_1(x: &[u8], y: &mut [f32]) {
    dequantize_with(x, y, Q81B, |i| {
        // SAFETY: i < nb blocks of 36 bytes (checked by dequantize_with).
        let (ds, q) = unsafe {
            let p = x.as_ptr().add(Q81B * i);
            (rd_u32_ptr(p), _mm256_loadu_si256(p.add(4).cast()))
        };
        (f16_pair(ds).0, None, q)
    });
}

/// `Σ x·y` of 32 pairs as 8 i32 lanes, `x` unsigned (0..=31), `y` signed.
#[inline]
#[target_feature(enable = "avx2")]
fn dot_u8i8x32(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

/// One block of a dot against q8_1: `acc + (D · p + MS)` (`MS` is `m · s` in lane 0).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn add_block_dm(acc: __m256, (d, ms): (__m256, __m256), p: __m256i) -> __m256 {
    _mm256_add_ps(acc, _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), ms))
}

/// A dot of 32-value weights with a minimum against q8_1, in `unrolled4`'s loop:
/// `values(i)` gives block `i`'s `d, m` bits and its 32 unsigned values, `idot` the 8 lanes of
/// `Σ x·y` (unsigned `x`, signed `y`) — `vpmaddubsw` here, `vpdpbusd` at AVX-512. `values` is
/// only called with `i < nb` (the callers' unsafe block reads rely on it).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q8_1(
    nb: usize,
    (w, wb): (&[u8], usize),
    a: &[u8],
    values: impl Fn(usize) -> (u32, __m256i),
    idot: impl Fn(__m256i, __m256i) -> __m256i,
) -> f32 {
    assert!(w.len() == wb * nb && a.len() == Q81B * nb);
    let ap = a.as_ptr();
    unrolled4(nb, (w, wb), |i, acc| {
        let (dm, x) = values(i);
        // SAFETY: i < nb: block i of a is bytes 36i..36i + 36.
        let (ds, y) = unsafe {
            (
                rd_u32_ptr(ap.add(Q81B * i)),
                _mm256_loadu_si256(ap.add(Q81B * i + 4).cast()),
            )
        };
        add_block_dm(acc, scales_dm(dm, ds), idot(x, y))
    })
}

/// The 4-token form of [`dot_q8_1`]: the weight block is unpacked once for the 4 tokens, each
/// token's sums and scale steps are the single dot's, so each result has its bits. `values` is
/// only called with `i < nb`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot4_q8_1(
    nb: usize,
    (w, wb): (&[u8], usize),
    a: [&[u8]; 4],
    values: impl Fn(usize) -> (u32, __m256i),
    idot: impl Fn(__m256i, __m256i) -> __m256i,
) -> [f32; 4] {
    assert!(w.len() == wb * nb && a.iter().all(|r| r.len() == Q81B * nb));
    let ap = a.map(<[u8]>::as_ptr);
    unrolled4_x4!(nb, w, wb, |i, acc| {
        let (dm, x) = values(i);
        for t in 0..4 {
            // SAFETY: i < nb and every activation row is nb blocks of 36 bytes.
            let (ds, y) = unsafe {
                (
                    rd_u32_ptr(ap[t].add(Q81B * i)),
                    _mm256_loadu_si256(ap[t].add(Q81B * i + 4).cast()),
                )
            };
            acc[t] = add_block_dm(acc[t], scales_dm(dm, ds), idot(x, y));
        }
    })
}

/// A dot of offset 32-value weights against q8_0 (q4_0's step): `values(i)` gives block `i`'s
/// f16 scale bits and its 32 signed values, `idot` the 8 lanes of `Σ x·y` of signed bytes.
/// `values` is only called with `i < nb`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q8_0(
    nb: usize,
    (w, wb): (&[u8], usize),
    a: &[u8],
    values: impl Fn(usize) -> (u16, __m256i),
    idot: impl Fn(__m256i, __m256i) -> __m256i,
) -> f32 {
    assert!(w.len() == wb * nb && a.len() == QB * nb);
    let ap = a.as_ptr();
    unrolled4(nb, (w, wb), |i, acc| {
        let (dw, x) = values(i);
        // SAFETY: i < nb: block i of a is bytes 34i..34i + 34.
        let (da, y) = unsafe {
            (
                rd_u16_ptr(ap.add(QB * i)),
                _mm256_loadu_si256(ap.add(QB * i + 2).cast()),
            )
        };
        let d = f16_mul(dw, da);
        _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(idot(x, y)), acc)
    })
}

/// The 4-token form of [`dot_q8_0`], bit-identical to it for each token. `values` is only
/// called with `i < nb`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot4_q8_0(
    nb: usize,
    (w, wb): (&[u8], usize),
    a: [&[u8]; 4],
    values: impl Fn(usize) -> (u16, __m256i),
    idot: impl Fn(__m256i, __m256i) -> __m256i,
) -> [f32; 4] {
    assert!(w.len() == wb * nb && a.iter().all(|r| r.len() == QB * nb));
    let ap = a.map(<[u8]>::as_ptr);
    unrolled4_x4!(nb, w, wb, |i, acc| {
        let (dw, x) = values(i);
        for t in 0..4 {
            // SAFETY: i < nb and every activation row is nb blocks of 34 bytes.
            let (da, y) = unsafe {
                (
                    rd_u16_ptr(ap[t].add(QB * i)),
                    _mm256_loadu_si256(ap[t].add(QB * i + 2).cast()),
                )
            };
            let d = f16_mul(dw, da);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(idot(x, y)), acc[t]);
        }
    })
}

/// Block `i` of a q4_1 row: its `d, m` bits and 32 nibbles.
///
/// # Safety
/// `w` holds more than `i` blocks of 20 bytes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn q4_1_block(w: &[u8], i: usize) -> (u32, __m256i) {
    let o = Q41B * i;
    debug_assert!(o + Q41B <= w.len());
    // SAFETY: guaranteed by the caller.
    unsafe { (rd_u32_ptr(w.as_ptr().add(o)), nibbles_at(w, o + 4)) }
}

/// The six dot wrappers of one level — single and 4-token, for q4_1·q8_1, q5_1·q8_1 and
/// q5_0·q8_0 — from the invoking module's block unpackers (`q4_1_block`, `q5_1_block`,
/// `q5_0_block`) and integer dots (`dot_u8i8x32`, `dot_i8x32`), under its target features. AVX2
/// and AVX-512 differ only in those primitives, so both levels take their wrappers from here.
macro_rules! legacy_dots {
    ($features:literal) => {
        $crate::x86::avx2::legacy_dots!(@one $features, vec_dot_q4_1_q8_1, vec_dot4_q4_1_q8_1,
            dot_q8_1, dot4_q8_1, q4_1_block, BlockQ4_1, dot_u8i8x32, "q4_1·q8_1");
        $crate::x86::avx2::legacy_dots!(@one $features, vec_dot_q5_1_q8_1, vec_dot4_q5_1_q8_1,
            dot_q8_1, dot4_q8_1, q5_1_block, BlockQ5_1, dot_u8i8x32, "q5_1·q8_1");
        $crate::x86::avx2::legacy_dots!(@one $features, vec_dot_q5_0_q8_0, vec_dot4_q5_0_q8_0,
            dot_q8_0, dot4_q8_0, q5_0_block, BlockQ5_0, dot_i8x32, "q5_0·q8_0");
        $crate::x86::avx2::legacy_dots!(@one $features, vec_dot_iq4_nl_q8_0,
            vec_dot4_iq4_nl_q8_0, dot_q8_0, dot4_q8_0, iq4_nl_block, BlockIq4Nl, dot_i8x32,
            "iq4_nl·q8_0");
    };
    (@one $features:literal, $dot:ident, $dot4:ident, $loop:ident, $loop4:ident,
        $block:ident, $blocktype:ident, $idot:ident, $what:literal) => {
        #[doc = concat!($what, " dot (tolerance in the AVX2 module doc).")]
        #[target_feature(enable = $features)]
        pub(crate) fn $dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let (nb, bb) = (n / 32, size_of::<llamapack_format::blocks::$blocktype>());
            assert!(w.len() == bb * nb);
            // SAFETY: i < nb blocks, checked above.
            $loop(nb, (w, bb), a, |i| unsafe { $block(w, i) }, |x, y| $idot(x, y))
        }

        #[doc = concat!($what, " dot of one weight row with 4 activation rows; each result is \
            bit-identical to [`", stringify!($dot), "`].")]
        #[target_feature(enable = $features)]
        pub(crate) fn $dot4(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            let (nb, bb) = (n / 32, size_of::<llamapack_format::blocks::$blocktype>());
            assert!(w.len() == bb * nb);
            // SAFETY: i < nb blocks, checked above.
            $loop4(nb, (w, bb), a, |i| unsafe { $block(w, i) }, |x, y| $idot(x, y))
        }
    };
}
pub(crate) use legacy_dots;

legacy_dots!("avx2,fma,f16c");
