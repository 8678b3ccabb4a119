//! q4_1, q5_0 and q5_1 encoders with AVX2, byte-identical to the scalar references
//! ([`crate::q4_1::quantize_row_q4_1_ref`], [`crate::q5_0::quantize_row_q5_0_ref`],
//! [`crate::q5_1::quantize_row_q5_1_ref`]).
//!
//! Eight blocks at a time: their minima and maxima are reduced into one register (block `j` in
//! lane `j`), the eight scales and inverses are computed with one vector division each (IEEE
//! division gives the reference's scalar bits) and converted to f16 together; then each block
//! is quantized on four registers as in q4_0's encoder. A row's last `nb mod 8` blocks are
//! encoded from a zero-padded copy (blocks are independent). The reference's C conversions are
//! reproduced lane by lane:
//! - `(int8_t)f` / `(uint8_t)f` are `cvttss2si` then the low byte: `vcvttps2dq` gives the same
//!   i32 (`0x8000_0000` for NaN, ±inf and out-of-range values, whose low byte is 0), and the low
//!   bytes are extracted exactly (mask to 0..=255, unsigned packs), never saturated;
//! - `MIN(15, ·)` / `MIN(31, ·)` act on the int8 value: a signed byte minimum;
//! - the `v < min` / `v > max` scans keep the first of equal values: vector minima and maxima
//!   give the right value, and where an extreme is zero (the only equal values with different
//!   bits are ±0; the table rejects NaN and inf) the first zero of the block is taken instead;
//! - q5_0's signed value of largest magnitude is the maximum or the minimum, whichever has the
//!   larger magnitude, +0 for a block of ±0, and the first of the two in the block when they tie
//!   (`max == −min`, found by [`first_abs_max`]);
//! - `(x − min) · id + 0.5` is a subtraction, a multiplication and an addition, each rounded
//!   (no FMA), as in the reference.

use std::arch::x86_64::*;

use super::block32::{first_abs_max, load_block};

/// Bytes of a q4_1 block: `d`, `m`, 16 bytes of nibbles.
const Q41B: usize = 20;
/// Bytes of a q5_0 block: `d`, `qh`, 16 bytes of nibbles.
const Q50B: usize = 22;
/// Bytes of a q5_1 block: `d`, `m`, `qh`, 16 bytes of nibbles.
const Q51B: usize = 24;

/// Which format [`encode`] writes.
const Q4_1: u8 = 0;
/// See [`Q4_1`].
const Q5_0: u8 = 1;
/// See [`Q4_1`].
const Q5_1: u8 = 2;

/// Bytes of a block of format `K`.
const fn block_bytes(k: u8) -> usize {
    match k {
        Q4_1 => Q41B,
        Q5_0 => Q50B,
        _ => Q51B,
    }
}

/// In each 128-bit half, `[op(a0, a1), op(a2, a3), op(b0, b1), op(b2, b3)]`: one level of the
/// transposing reduction of [`min_max8`].
#[inline]
#[target_feature(enable = "avx2")]
fn pair(a: __m256, b: __m256, op: impl Fn(__m256, __m256) -> __m256) -> __m256 {
    op(
        _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
        _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
    )
}

/// `op` folded over the four registers of a block (a tree of 3).
#[inline]
#[target_feature(enable = "avx2")]
fn fold4(v: &[__m256; 4], op: impl Fn(__m256, __m256) -> __m256) -> __m256 {
    op(op(v[0], v[1]), op(v[2], v[3]))
}

/// `op` of the two 128-bit halves of each of 8 blocks: `a` holds half-reductions of blocks
/// 0..4, `b` of blocks 4..8.
#[inline]
#[target_feature(enable = "avx2")]
fn halves(a: __m256, b: __m256, op: impl Fn(__m256, __m256) -> __m256) -> __m256 {
    op(
        _mm256_permute2f128_ps::<0x20>(a, b),
        _mm256_permute2f128_ps::<0x31>(a, b),
    )
}

/// The minima and maxima of the 8 blocks of `xs` (256 floats), block `j` in lane `j` (values
/// only: a zero extreme may have either sign).
///
/// A transposing tree: per block, the four registers are folded to one ([`fold4`]), then two
/// levels of [`pair`]s and a fold of the two 128-bit halves give the 8 reductions in one
/// register (14 shuffles and 7 `op`s for 8 blocks instead of 8 horizontal reductions). Pairs
/// are folded as soon as their blocks are loaded, to keep few registers live.
///
/// # Safety
/// `xs.len() >= 256`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn min_max8(xs: &[f32]) -> (__m256, __m256) {
    let min = |a: __m256, b: __m256| _mm256_min_ps(a, b);
    let max = |a: __m256, b: __m256| _mm256_max_ps(a, b);
    // level 1: blocks 2k and 2k + 1
    let level1 = |k: usize| {
        // SAFETY: blocks 2k and 2k + 1 (k < 4) are inside xs (the caller's guarantee).
        let (a, b) = unsafe { (load_block(xs, 2 * k), load_block(xs, 2 * k + 1)) };
        (
            pair(fold4(&a, min), fold4(&b, min), min),
            pair(fold4(&a, max), fold4(&b, max), max),
        )
    };
    let (l0, h0) = level1(0);
    let (l1, h1) = level1(1);
    let (l01, h01) = (pair(l0, l1, min), pair(h0, h1, max));
    let (l2, h2) = level1(2);
    let (l3, h3) = level1(3);
    let (l23, h23) = (pair(l2, l3, min), pair(h2, h3, max));
    (halves(l01, l23, min), halves(h01, h23, max))
}

/// The first element of block `v` (loaded from `xb`) that compares equal to zero.
///
/// Only called when the block has a ±0.
#[inline]
#[target_feature(enable = "avx2")]
fn first_zero(v: &[__m256; 4], xb: &[f32]) -> f32 {
    let z = _mm256_setzero_ps();
    let hit = |b: __m256| _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(b, z)) as u32;
    let mask = hit(v[0]) | hit(v[1]) << 8 | hit(v[2]) << 16 | hit(v[3]) << 24;
    xb[mask.trailing_zeros() as usize]
}

/// C's `(int8_t)` / `(uint8_t)` of four vectors of `vcvttps2dq` results: the low byte of every
/// lane, 32 bytes in element order.
#[inline]
#[target_feature(enable = "avx2")]
fn low_bytes(t: [__m256i; 4]) -> __m256i {
    let m = _mm256_set1_epi32(0xff);
    let t = t.map(|v| _mm256_and_si256(v, m));
    let p01 = _mm256_packus_epi32(t[0], t[1]);
    let p23 = _mm256_packus_epi32(t[2], t[3]);
    let p = _mm256_packus_epi16(p01, p23);
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Byte `j` of the 16: `lo[j] | (hi[j] << 4)` as u8, from the bytes of elements `j` (`lo`, low
/// half of `q`, masked by `lo_mask`: q4_1 ORs the whole byte as ggml does) and `j + 16` (`hi`).
#[inline]
#[target_feature(enable = "avx2")]
fn pack_nibbles(q: __m256i, lo_mask: __m128i) -> __m128i {
    let lo = _mm_and_si128(_mm256_castsi256_si128(q), lo_mask);
    let hi = _mm256_extracti128_si256::<1>(q);
    _mm_or_si128(
        lo,
        _mm_and_si128(_mm_slli_epi16::<4>(hi), _mm_set1_epi8(0xf0u8 as i8)),
    )
}

/// Bit 4 of each of the 32 bytes of `q`, element `j` in bit `j` (ggml's `qh`).
#[inline]
#[target_feature(enable = "avx2")]
fn bit4_mask(q: __m256i) -> u32 {
    // bit 4 of every byte to bit 7 (the 16-bit shift carries nothing into bit 7 of a byte)
    _mm256_movemask_epi8(_mm256_slli_epi16::<3>(q)) as u32
}

/// `1 / d` in every lane, 0 where `d` is ±0 (the references' `id`).
#[inline]
#[target_feature(enable = "avx2")]
fn inverse(d: __m256) -> __m256 {
    let zero = _mm256_cmp_ps::<_CMP_EQ_OQ>(d, _mm256_setzero_ps());
    _mm256_andnot_ps(zero, _mm256_div_ps(_mm256_set1_ps(1.0), d))
}

/// The per-block values of a group of 8 blocks that the quantization loop reads.
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Scales {
    /// The minimum subtracted (0 for q5_0, which adds 16.5 instead).
    min: [f32; 8],
    /// `1 / d` (or 0).
    id: [f32; 8],
    /// The f16 header of each block: `d | m << 16` (q5_0: `d`).
    head: [u32; 8],
}

/// Scales of the 8 blocks of `xs` (256 floats) for format `K`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn scales<const K: u8>(xs: &[f32]) -> Scales {
    assert!(xs.len() == 256);
    // SAFETY: xs has 8 blocks of 32 floats.
    let (mut mn, mut mx) = unsafe { min_max8(xs) };
    let z = _mm256_setzero_ps();
    let mut s = Scales {
        min: [0.0; 8],
        id: [0.0; 8],
        head: [0; 8],
    };
    let (d, id) = if K == Q5_0 {
        let neg = _mm256_xor_ps(mn, _mm256_set1_ps(-0.0));
        let amax = _mm256_max_ps(mx, neg);
        let zero = _mm256_cmp_ps::<_CMP_EQ_OQ>(amax, z);
        // the larger magnitude with its sign; +0 for ±0 blocks
        let mut max = _mm256_andnot_ps(
            zero,
            _mm256_blendv_ps(mn, mx, _mm256_cmp_ps::<_CMP_GE_OQ>(mx, neg)),
        );
        let tie = _mm256_andnot_ps(zero, _mm256_cmp_ps::<_CMP_EQ_OQ>(mx, neg));
        let ties = _mm256_movemask_ps(tie) as u32;
        if ties != 0 {
            let mut m = [0f32; 8];
            // SAFETY: m is 8 floats.
            unsafe { _mm256_storeu_ps(m.as_mut_ptr(), max) };
            for j in (0..8).filter(|j| ties >> j & 1 != 0) {
                // SAFETY: block j is inside xs.
                let b = unsafe { load_block(xs, j) };
                m[j] = first_abs_max(&b, &xs[32 * j..32 * j + 32]);
            }
            // SAFETY: m is 8 floats.
            max = unsafe { _mm256_loadu_ps(m.as_ptr()) };
        }
        let d = _mm256_div_ps(max, _mm256_set1_ps(-16.0));
        (d, inverse(d))
    } else {
        let zeros = _mm256_movemask_ps(_mm256_or_ps(
            _mm256_cmp_ps::<_CMP_EQ_OQ>(mn, z),
            _mm256_cmp_ps::<_CMP_EQ_OQ>(mx, z),
        )) as u32;
        if zeros != 0 {
            let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
            // SAFETY: a and b are 8 floats.
            unsafe {
                _mm256_storeu_ps(a.as_mut_ptr(), mn);
                _mm256_storeu_ps(b.as_mut_ptr(), mx);
            }
            for j in (0..8).filter(|j| zeros >> j & 1 != 0) {
                // SAFETY: block j is inside xs.
                let first = first_zero(&unsafe { load_block(xs, j) }, &xs[32 * j..32 * j + 32]);
                if a[j] == 0.0 {
                    a[j] = first;
                }
                if b[j] == 0.0 {
                    b[j] = first;
                }
            }
            // SAFETY: a and b are 8 floats.
            unsafe {
                mn = _mm256_loadu_ps(a.as_ptr());
                mx = _mm256_loadu_ps(b.as_ptr());
            }
        }
        let levels = _mm256_set1_ps(if K == Q4_1 { 15.0 } else { 31.0 });
        let d = _mm256_div_ps(_mm256_sub_ps(mx, mn), levels);
        // SAFETY: s.min is 8 floats.
        unsafe { _mm256_storeu_ps(s.min.as_mut_ptr(), mn) };
        (d, inverse(d))
    };
    let dh = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d);
    let head = if K == Q5_0 {
        _mm256_cvtepu16_epi32(dh)
    } else {
        let mh = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(mn);
        _mm256_set_m128i(_mm_unpackhi_epi16(dh, mh), _mm_unpacklo_epi16(dh, mh))
    };
    // SAFETY: s.id is 8 floats and s.head 8 u32.
    unsafe {
        _mm256_storeu_ps(s.id.as_mut_ptr(), id);
        _mm256_storeu_si256(s.head.as_mut_ptr().cast(), head);
    }
    s
}

/// Encodes the 8 blocks of `xs` (256 floats) into `ys` (8 blocks of format `K`) with their
/// [`scales`] `s`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn quantize8<const K: u8>(xs: &[f32], ys: &mut [u8], s: &Scales) {
    let bb = block_bytes(K);
    assert!(xs.len() == 256 && ys.len() == 8 * bb);
    let half = _mm256_set1_ps(if K == Q5_0 { 16.5 } else { 0.5 });
    for (j, out) in ys.chunks_exact_mut(bb).enumerate() {
        // SAFETY: block j is inside xs.
        let v = unsafe { load_block(xs, j) };
        let idv = _mm256_set1_ps(s.id[j]);
        let q = if K == Q5_0 {
            low_bytes(v.map(|b| _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(b, idv), half))))
        } else {
            let mv = _mm256_set1_ps(s.min[j]);
            low_bytes(v.map(|b| {
                _mm256_cvttps_epi32(_mm256_add_ps(
                    _mm256_mul_ps(_mm256_sub_ps(b, mv), idv),
                    half,
                ))
            }))
        };
        let head = s.head[j].to_le_bytes();
        let (qs_at, packed) = match K {
            Q4_1 => {
                out[..4].copy_from_slice(&head);
                let q = _mm256_min_epi8(q, _mm256_set1_epi8(15));
                (4, pack_nibbles(q, _mm_set1_epi8(-1)))
            }
            Q5_0 => {
                out[..2].copy_from_slice(&head[..2]);
                let q = _mm256_min_epi8(q, _mm256_set1_epi8(31));
                out[2..6].copy_from_slice(&bit4_mask(q).to_le_bytes());
                (6, pack_nibbles(q, _mm_set1_epi8(0x0f)))
            }
            _ => {
                out[..4].copy_from_slice(&head);
                out[4..8].copy_from_slice(&bit4_mask(q).to_le_bytes());
                (8, pack_nibbles(q, _mm_set1_epi8(0x0f)))
            }
        };
        debug_assert_eq!(qs_at + 16, bb);
        // SAFETY: out is bb = qs_at + 16 bytes.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(qs_at).cast(), packed) };
    }
}

/// Encodes a row of format `K` in groups of 8 blocks (the last `nb mod 8` blocks from a
/// zero-padded copy, blocks being independent).
///
/// The scales of the next group are computed before the current group is quantized: their long
/// dependency chain (reductions, divisions) then overlaps independent work. Both kernels have
/// one call site, so they are inlined here.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn encode<const K: u8>(x: &[f32], y: &mut [u8]) {
    let bb = block_bytes(K);
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == bb * nb);
    if nb == 0 {
        return;
    }
    let (full, groups) = (nb / 8, nb.div_ceil(8));
    let mut xpad = [0f32; 256];
    let tail = &x[256 * full..];
    xpad[..tail.len()].copy_from_slice(tail);
    let group = |g: usize| -> &[f32] {
        if g < full {
            &x[256 * g..256 * g + 256]
        } else {
            &xpad
        }
    };
    let mut ypad = [0u8; 8 * Q51B];
    // step g computes the scales of group g and quantizes group g − 1
    let mut s = Scales::default();
    for g in 0..=groups {
        let next = if g < groups { scales::<K>(group(g)) } else { s };
        if let Some(q) = g.checked_sub(1) {
            if q < full {
                quantize8::<K>(group(q), &mut y[8 * bb * q..8 * bb * (q + 1)], &s);
            } else {
                quantize8::<K>(&xpad, &mut ypad[..8 * bb], &s);
                let done = 8 * bb * full;
                y[done..].copy_from_slice(&ypad[..bb * nb - done]);
            }
        }
        s = next;
    }
}

/// q4_1 encoder, byte-identical to [`crate::q4_1::quantize_row_q4_1_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q4_1(x: &[f32], y: &mut [u8]) {
    encode::<Q4_1>(x, y);
}

/// q5_0 encoder, byte-identical to [`crate::q5_0::quantize_row_q5_0_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q5_0(x: &[f32], y: &mut [u8]) {
    encode::<Q5_0>(x, y);
}

/// q5_1 encoder, byte-identical to [`crate::q5_1::quantize_row_q5_1_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q5_1(x: &[f32], y: &mut [u8]) {
    encode::<Q5_1>(x, y);
}
