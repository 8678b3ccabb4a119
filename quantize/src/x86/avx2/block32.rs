//! q8_0 and q4_0 (32-value blocks) with AVX2.

use std::arch::x86_64::*;

use crate::x86::{
    f16_mul, f16_to_f32, f32_to_f16, hmax_f32, pack_i32x32_to_i8, rd_u16, rd_u16_ptr, roundf_ps,
    unrolled4, unrolled4_x4,
};

const QB: usize = 34; // bytes of a q8_0 block
const Q4B: usize = 18; // bytes of a q4_0 block

/// Loads the 32 floats of block `i`.
///
/// # Safety
/// `x.len() >= 32·(i + 1)`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn load_block(x: &[f32], i: usize) -> [__m256; 4] {
    debug_assert!(x.len() >= 32 * (i + 1));
    // SAFETY: the caller guarantees 32 floats from 32·i.
    unsafe {
        let p = x.as_ptr().add(32 * i);
        [
            _mm256_loadu_ps(p),
            _mm256_loadu_ps(p.add(8)),
            _mm256_loadu_ps(p.add(16)),
            _mm256_loadu_ps(p.add(24)),
        ]
    }
}

/// The largest |x| of a block.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn abs_max(v: &[__m256; 4]) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    let a01 = _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1]));
    let a23 = _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3]));
    hmax_f32(_mm256_max_ps(a01, a23))
}

/// The signed value of the first element of largest magnitude of the block `v` (loaded from
/// `xb`), as ggml's `amax < |x|` scan from 0 keeps it: +0 for a block of ±0. The position comes
/// from one 32-bit mask of the four lane compares (no data-dependent branch).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn first_abs_max(v: &[__m256; 4], xb: &[f32]) -> f32 {
    let amax = abs_max(v);
    if amax == 0.0 {
        return 0.0;
    }
    let (sign, am) = (_mm256_set1_ps(-0.0), _mm256_set1_ps(amax));
    let hit = |b: __m256| {
        _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, b), am)) as u32
    };
    let mask = hit(v[0]) | hit(v[1]) << 8 | hit(v[2]) << 16 | hit(v[3]) << 24;
    xb[mask.trailing_zeros() as usize]
}

/// q8_0 encoder, byte-identical to [`crate::q8_0::quantize_row_q8_0_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q8_0(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == QB * nb);
    for (i, out) in y.chunks_exact_mut(QB).enumerate() {
        // SAFETY: i < nb, so block i is inside x.
        let v = unsafe { load_block(x, i) };
        let d = abs_max(&v) / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        let q = q8_quants(&v, id);
        // SAFETY: out is 34 bytes; bytes 2..34 hold the 32 quants.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(2).cast(), q) };
    }
}

/// The 32 quants `(int8)roundf(x · id)` of a q8_0 / q8_1 block, in element order.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn q8_quants(v: &[__m256; 4], id: f32) -> __m256i {
    if id.is_infinite() {
        _mm256_setzero_si256() // C: (int8_t) of ±inf/NaN is 0 on x86-64
    } else {
        let idv = _mm256_set1_ps(id);
        pack_i32x32_to_i8(v.map(|b| _mm256_cvttps_epi32(roundf_ps(_mm256_mul_ps(b, idv)))))
    }
}

/// q8_0 decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q8_0(x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 32;
    assert!(y.len() == 32 * nb && x.len() == QB * nb);
    for (blk, out) in x.chunks_exact(QB).zip(y.chunks_exact_mut(32)) {
        let d = _mm256_set1_ps(f16_to_f32(rd_u16(blk, 0)));
        for k in 0..4 {
            // SAFETY: blk is 34 bytes; bytes 2+8k..10+8k are in range for k < 4; out has 32
            // floats, 8k..8k+8 in range.
            unsafe {
                let q = _mm_loadl_epi64(blk.as_ptr().add(2 + 8 * k).cast());
                let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                _mm256_storeu_ps(out.as_mut_ptr().add(8 * k), _mm256_mul_ps(f, d));
            }
        }
    }
}

/// `Σ x·y` of 32 int8 pairs as 8 i32 lanes (x, y in −127..=127).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn dot_i8x32(x: __m256i, y: __m256i) -> __m256i {
    let p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// q8_0·q8_0 dot.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q8_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    assert!(w.len() == QB * nb && a.len() == QB * nb);
    let step = |i: usize, acc: __m256| {
        let (bw, ba) = (&w[QB * i..QB * i + QB], &a[QB * i..QB * i + QB]);
        let d = f16_mul(rd_u16(bw, 0), rd_u16(ba, 0));
        // SAFETY: both blocks are 34 bytes; the 32 quants start at byte 2.
        let (x, y) = unsafe {
            (
                _mm256_loadu_si256(bw.as_ptr().add(2).cast()),
                _mm256_loadu_si256(ba.as_ptr().add(2).cast()),
            )
        };
        _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_i8x32(x, y)), acc)
    };
    unrolled4(nb, (w, QB), step)
}

/// q4_0 encoder, byte-identical to [`crate::q4_0::quantize_row_q4_0_ref`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q4_0(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == Q4B * nb);
    for (i, out) in y.chunks_exact_mut(Q4B).enumerate() {
        // SAFETY: i < nb, so block i is inside x.
        let v = unsafe { load_block(x, i) };
        let d = first_abs_max(&v, &x[32 * i..32 * i + 32]) / -8.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        let packed = if id.is_infinite() {
            _mm_setzero_si128() // C: (int8_t) of ±inf/NaN is 0, MIN(15, 0) = 0
        } else {
            let (idv, half, fifteen) = (
                _mm256_set1_ps(id),
                _mm256_set1_ps(8.5),
                _mm256_set1_epi32(15),
            );
            let q = pack_i32x32_to_i8(v.map(|b| {
                let t = _mm256_add_ps(_mm256_mul_ps(b, idv), half);
                _mm256_min_epi32(_mm256_cvttps_epi32(t), fifteen)
            }));
            let lo = _mm256_castsi256_si128(q);
            let hi = _mm256_extracti128_si256::<1>(q);
            _mm_or_si128(lo, _mm_slli_epi16::<4>(hi))
        };
        // SAFETY: out is 18 bytes; bytes 2..18 hold the 16 packed bytes.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(2).cast(), packed) };
    }
}

/// The 32 nibbles of a q4_0 block as bytes 0..=15 in element order.
///
/// # Safety
/// `blk` has at least 18 bytes.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn q4_0_nibbles(blk: &[u8]) -> __m256i {
    debug_assert!(blk.len() >= Q4B);
    // SAFETY: bytes 2..18 are inside blk.
    unsafe { nibbles_at(blk, 2) }
}

/// The 32 nibbles of the 16 bytes at `off` (byte `j`: element `j` low, `j + 16` high) as bytes
/// 0..=15 in element order.
///
/// # Safety
/// `off + 16 <= b.len()`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn nibbles_at(b: &[u8], off: usize) -> __m256i {
    debug_assert!(off + 16 <= b.len());
    // SAFETY: guaranteed by the caller.
    let b = unsafe { _mm_loadu_si128(b.as_ptr().add(off).cast()) };
    let m = _mm_set1_epi8(0x0f);
    _mm256_set_m128i(
        _mm_and_si128(_mm_srli_epi16::<4>(b), m),
        _mm_and_si128(b, m),
    )
}

/// q4_0 decoder, exact.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q4_0(x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 32;
    assert!(y.len() == 32 * nb && x.len() == Q4B * nb);
    for (blk, out) in x.chunks_exact(Q4B).zip(y.chunks_exact_mut(32)) {
        let d = _mm256_set1_ps(f16_to_f32(rd_u16(blk, 0)));
        // SAFETY: blk is 18 bytes.
        let q = _mm256_sub_epi8(unsafe { q4_0_nibbles(blk) }, _mm256_set1_epi8(8));
        let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
        for (k, part) in [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)]
            .into_iter()
            .enumerate()
        {
            let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part));
            // SAFETY: out has 32 floats; 8k..8k+8 is in range for k < 4.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * k), _mm256_mul_ps(f, d)) };
        }
    }
}

/// q4_0·q8_0 dot.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    assert!(w.len() == Q4B * nb && a.len() == QB * nb);
    let step = |i: usize, acc: __m256| {
        let (bw, ba) = (&w[Q4B * i..Q4B * i + Q4B], &a[QB * i..QB * i + QB]);
        let d = f16_mul(rd_u16(bw, 0), rd_u16(ba, 0));
        // SAFETY: bw is 18 bytes; ba is 34 bytes with the quants at 2..34.
        let (x, y) = unsafe {
            (
                q4_0_nibbles(bw),
                _mm256_loadu_si256(ba.as_ptr().add(2).cast()),
            )
        };
        let x = _mm256_sub_epi8(x, _mm256_set1_epi8(8));
        _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_i8x32(x, y)), acc)
    };
    unrolled4(nb, (w, Q4B), step)
}

/// q8_0·q8_0 dot of one weight row with 4 activation rows: the weight block's quants are
/// loaded once per block; each token's result is bit-identical to [`vec_dot_q8_0_q8_0`] (same
/// integer dot, same scale product, same accumulators in the same order).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot4_q8_0_q8_0(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    let nb = n / 32;
    assert!(w.len() == QB * nb && a.iter().all(|r| r.len() == QB * nb));
    let (wp, ap) = (w.as_ptr(), a.map(<[u8]>::as_ptr));
    unrolled4_x4!(nb, w, QB, |i, acc| {
        let o = QB * i;
        // SAFETY: i < nb and every row is nb blocks of 34 bytes: bytes o..o + 34 are in range.
        unsafe {
            let sw = rd_u16_ptr(wp.add(o));
            let x = _mm256_loadu_si256(wp.add(o + 2).cast());
            let ax = _mm256_sign_epi8(x, x);
            for t in 0..4 {
                let d = f16_mul(sw, rd_u16_ptr(ap[t].add(o)));
                let y = _mm256_loadu_si256(ap[t].add(o + 2).cast());
                let p = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(ax, _mm256_sign_epi8(y, x)),
                    _mm256_set1_epi16(1),
                );
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc[t]);
            }
        }
    })
}

/// q4_0·q8_0 dot of one weight row with 4 activation rows (nibbles unpacked once per block);
/// each result is bit-identical to [`vec_dot_q4_0_q8_0`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot4_q4_0_q8_0(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    let nb = n / 32;
    assert!(w.len() == Q4B * nb && a.iter().all(|r| r.len() == QB * nb));
    let ap = a.map(<[u8]>::as_ptr);
    unrolled4_x4!(nb, w, Q4B, |i, acc| {
        let (ow, oa) = (Q4B * i, QB * i);
        let bw = &w[ow..ow + Q4B];
        let sw = rd_u16(bw, 0);
        // SAFETY: bw is 18 bytes.
        let x = _mm256_sub_epi8(unsafe { q4_0_nibbles(bw) }, _mm256_set1_epi8(8));
        let ax = _mm256_sign_epi8(x, x);
        for t in 0..4 {
            // SAFETY: i < nb and every activation row is nb blocks of 34 bytes.
            let (sa, y) = unsafe {
                (
                    rd_u16_ptr(ap[t].add(oa)),
                    _mm256_loadu_si256(ap[t].add(oa + 2).cast()),
                )
            };
            let d = f16_mul(sw, sa);
            let p = _mm256_madd_epi16(
                _mm256_maddubs_epi16(ax, _mm256_sign_epi8(y, x)),
                _mm256_set1_epi16(1),
            );
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc[t]);
        }
    })
}
