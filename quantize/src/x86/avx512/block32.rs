//! q8_0·q8_0 and q4_0·q8_0 with AVX-512 VNNI.
//!
//! The one-token and 4-token dots work on 256-bit registers (`vpdpbusd ymm`, AVX-512VL): one
//! 32-value block fills a ymm exactly, and joining two blocks of a row into a zmm costs more
//! shuffles than it saves; the gain over AVX2 is one `vpdpbusd` for `vpmaddubsw` + `vpmaddwd`.
//! The packed 4-token dots put the same block of 2 tokens in one zmm instead (the activations
//! were interleaved once per matmul by `pack_q8_0_x4`), which needs no shuffle at all.

use std::arch::x86_64::*;

use crate::x86::{
    f16_mul, f16_to_f32, hsum_f32, prefetch_ahead, rd_u16, rd_u16_ptr, unrolled4, unrolled4_x4,
};

const QB: usize = 34;
const Q4B: usize = 18;

/// Loads the 32 quants of the q8_0 block at `off`.
///
/// # Safety
/// `off + 34 <= b.len()`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn quants(b: &[u8], off: usize) -> __m256i {
    debug_assert!(off + QB <= b.len());
    // SAFETY: guaranteed by the caller.
    unsafe { _mm256_loadu_si256(b.as_ptr().add(off + 2).cast()) }
}

/// `Σ x·y` of 32 signed byte pairs (in −127..=127) as 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2,avx512vl,avx512vnni")]
pub(super) fn dot_i8x32(x: __m256i, y: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(
        _mm256_setzero_si256(),
        _mm256_sign_epi8(x, x),
        _mm256_sign_epi8(y, x),
    )
}

/// q8_0·q8_0 dot.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_q8_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    assert!(w.len() == QB * nb && a.len() == QB * nb);
    unrolled4(nb, (w, QB), |i, acc| {
        let o = QB * i;
        let d = f16_mul(rd_u16(w, o), rd_u16(a, o));
        // SAFETY: i < nb, so block i (bytes o..o + 34) is inside both rows.
        let (x, y) = unsafe { (quants(w, o), quants(a, o)) };
        _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_i8x32(x, y)), acc)
    })
}

/// q4_0·q8_0 dot.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    assert!(w.len() == Q4B * nb && a.len() == QB * nb);
    let (m4, eight) = (_mm_set1_epi8(0x0f), _mm256_set1_epi8(8));
    unrolled4(nb, (w, Q4B), |i, acc| {
        let (ow, oa) = (Q4B * i, QB * i);
        let d = f16_mul(rd_u16(w, ow), rd_u16(a, oa));
        // SAFETY: i < nb: bytes ow..ow + 18 of w and oa..oa + 34 of a are in range.
        let (q, y) = unsafe {
            (
                _mm_loadu_si128(w.as_ptr().add(ow + 2).cast()),
                quants(a, oa),
            )
        };
        let x = _mm256_set_m128i(
            _mm_and_si128(_mm_srli_epi16::<4>(q), m4),
            _mm_and_si128(q, m4),
        );
        let x = _mm256_sub_epi8(x, eight);
        _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_i8x32(x, y)), acc)
    })
}

/// q8_0·q8_0 dot of one weight row with 4 activation rows (weight quants loaded once per
/// block); each result is bit-identical to [`vec_dot_q8_0_q8_0`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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
                let p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, _mm256_sign_epi8(y, x));
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc[t]);
            }
        }
    })
}

/// q4_0·q8_0 dot of one weight row with 4 activation rows (nibbles unpacked once per block);
/// each result is bit-identical to [`vec_dot_q4_0_q8_0`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot4_q4_0_q8_0(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    let nb = n / 32;
    assert!(w.len() == Q4B * nb && a.iter().all(|r| r.len() == QB * nb));
    let (m4, eight) = (_mm_set1_epi8(0x0f), _mm256_set1_epi8(8));
    let (wp, ap) = (w.as_ptr(), a.map(<[u8]>::as_ptr));
    unrolled4_x4!(nb, w, Q4B, |i, acc| {
        let (ow, oa) = (Q4B * i, QB * i);
        // SAFETY: i < nb: bytes ow..ow + 18 of w and oa..oa + 34 of every activation row are
        // in range.
        unsafe {
            let sw = rd_u16_ptr(wp.add(ow));
            let q = _mm_loadu_si128(wp.add(ow + 2).cast());
            let x = _mm256_set_m128i(
                _mm_and_si128(_mm_srli_epi16::<4>(q), m4),
                _mm_and_si128(q, m4),
            );
            let x = _mm256_sub_epi8(x, eight);
            let ax = _mm256_sign_epi8(x, x);
            for t in 0..4 {
                let d = f16_mul(sw, rd_u16_ptr(ap[t].add(oa)));
                let y = _mm256_loadu_si256(ap[t].add(oa + 2).cast());
                let p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, _mm256_sign_epi8(y, x));
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc[t]);
            }
        }
    })
}

/// The packed 4-token dot shared by q8_0 and q4_0 weights: `weight(i)` gives block `i`'s
/// scale and its 32 signed values (in a ymm). Each zmm holds one block of 2 tokens (lanes 0–7
/// the first, 8–15 the second), so one `vpdpbusd` serves 2 tokens, and the biased activations
/// (`y + 128`) are corrected exactly by starting the sums at `−128·Σx` per lane. Every lane
/// then takes the same i32 sums and f32 steps as the ymm lanes of the single dot's
/// `unrolled4` (block `i` into accumulator `i mod 4`, the leftover blocks into accumulator 0,
/// the same final tree), so each token's result has the single dot's bits.
///
/// # Safety
/// `p` holds `nb` packed blocks ([`crate::q8_0::pack_q8_0_x4`]) and `weight(i)` is valid for
/// every `i < nb`; the caller enables AVX-512 F/BW/VL/VNNI.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot4_packed(
    nb: usize,
    p: &[u8],
    prefetch: impl Fn(usize),
    weight: impl Fn(usize) -> (f32, __m256i),
) -> [f32; 4] {
    const PB: usize = crate::q8_0::Q8_0_X4_BLOCK_BYTES;
    debug_assert!(p.len() == PB * nb);
    let bias = _mm512_set1_epi8(-128);
    let pp = p.as_ptr();
    let step = |i: usize, acc: &mut [__m512; 2]| {
        let (dw, x) = weight(i);
        let x = _mm512_broadcast_i64x4(x);
        let start = _mm512_sub_epi32(
            _mm512_setzero_si512(),
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, x),
        );
        let dw = _mm512_set1_ps(dw);
        for (h, a) in acc.iter_mut().enumerate() {
            // SAFETY: block i < nb of p: bytes PB·i + 64h .. +64 and PB·i + 128 + 64h .. +64.
            let (y, da) = unsafe {
                (
                    _mm512_loadu_si512(pp.add(PB * i + 64 * h).cast()),
                    _mm512_loadu_ps(pp.add(PB * i + 128 + 64 * h).cast()),
                )
            };
            let s = _mm512_dpbusd_epi32(start, y, x);
            *a = _mm512_fmadd_ps(_mm512_mul_ps(da, dw), _mm512_cvtepi32_ps(s), *a);
        }
    };
    // acc[u][h]: accumulator u of tokens 2h (lanes 0–7) and 2h + 1 (lanes 8–15).
    let mut acc = [[_mm512_setzero_ps(); 2]; 4];
    let full = nb / 4 * 4;
    for i0 in (0..full).step_by(4) {
        prefetch(i0);
        for (u, a) in acc.iter_mut().enumerate() {
            step(i0 + u, a);
        }
    }
    for i in full..nb {
        step(i, &mut acc[0]);
    }
    let mut out = [0f32; 4];
    for h in 0..2 {
        let s = _mm512_add_ps(
            _mm512_add_ps(acc[0][h], acc[1][h]),
            _mm512_add_ps(acc[2][h], acc[3][h]),
        );
        out[2 * h] = hsum_f32(_mm512_castps512_ps256(s));
        out[2 * h + 1] = hsum_f32(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(s),
        )));
    }
    out
}

/// q8_0·q8_0 dot of one weight row with 4 packed activation rows; each result is
/// bit-identical to [`vec_dot_q8_0_q8_0`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot4_packed_q8_0_q8_0(n: usize, w: &[u8], p: &[u8]) -> [f32; 4] {
    let nb = n / 32;
    assert!(w.len() == QB * nb && p.len() == crate::q8_0::Q8_0_X4_BLOCK_BYTES * nb);
    let wp = w.as_ptr();
    // SAFETY: lengths checked; block i < nb of w is bytes 34i..34i + 34.
    unsafe {
        dot4_packed(
            nb,
            p,
            |i| prefetch_ahead(w, i * QB, 4 * QB),
            |i| {
                let o = QB * i;
                let d = f16_to_f32(rd_u16_ptr(wp.add(o)));
                (d, _mm256_loadu_si256(wp.add(o + 2).cast()))
            },
        )
    }
}

/// q4_0·q8_0 dot of one weight row with 4 packed activation rows; each result is
/// bit-identical to [`vec_dot_q4_0_q8_0`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn vec_dot4_packed_q4_0_q8_0(n: usize, w: &[u8], p: &[u8]) -> [f32; 4] {
    let nb = n / 32;
    assert!(w.len() == Q4B * nb && p.len() == crate::q8_0::Q8_0_X4_BLOCK_BYTES * nb);
    let (m4, eight) = (_mm_set1_epi8(0x0f), _mm256_set1_epi8(8));
    let wp = w.as_ptr();
    // SAFETY: lengths checked; block i < nb of w is bytes 18i..18i + 18.
    unsafe {
        dot4_packed(
            nb,
            p,
            |i| prefetch_ahead(w, i * Q4B, 4 * Q4B),
            |i| {
                let o = Q4B * i;
                let d = f16_to_f32(rd_u16_ptr(wp.add(o)));
                let q = _mm_loadu_si128(wp.add(o + 2).cast());
                let x = _mm256_set_m128i(
                    _mm_and_si128(_mm_srli_epi16::<4>(q), m4),
                    _mm_and_si128(q, m4),
                );
                (d, _mm256_sub_epi8(x, eight))
            },
        )
    }
}
