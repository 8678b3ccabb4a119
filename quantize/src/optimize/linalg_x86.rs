//! x86-64 register-tiled versions of [`super::linalg::gemm_acc`]: AVX-512F and AVX2, for
//! f32 += f32·f32, f64 += f64·f64 and f64 += f64·f32 (the f32 panel widened exactly).
//!
//! Tiles of 4 rows × 4 vectors (then 4 rows × 1 vector, then single columns; a leftover row
//! alone), each accumulator element receiving `a = a + c·p` for the panel rows in ascending
//! order, as separate multiply and add instructions: the bits of the portable kernel.

use std::arch::x86_64::*;

/// Generates one kernel: `$name(acc, coef, panel, len)`.
macro_rules! kernel {
    ($name:ident, $feat:literal, $A:ty, $S:ty, $V:ty, $lanes:expr,
     load: |$lp:ident| $load:expr, set1: $set1:ident, mul: $mul:ident, add: $add:ident,
     loadu: $loadu:ident, storeu: $storeu:ident, zero: $zero:ident) => {
        /// See the module docs. The caller has checked that every `acc` row and panel row
        /// holds at least `len` values and every `coef` row at least `panel.len()`.
        #[target_feature(enable = $feat)]
        pub(crate) fn $name(acc: &mut [&mut [$A]], coef: &[&[$A]], panel: &[&[$S]], len: usize) {
            const L: usize = $lanes;
            let k = panel.len();
            assert!(acc.iter().all(|a| a.len() >= len) && panel.iter().all(|p| p.len() >= len));
            assert!(coef.len() == acc.len() && coef.iter().all(|c| c.len() >= k));
            // The panel load, pasted where it is used (no closure: it must compile with the
            // function's target features).
            macro_rules! load {
                ($ptr:expr) => {{
                    let $lp = $ptr;
                    $load
                }};
            }
            // Column blocks whose panel slice (up to 256 rows) stays in L2 while every row
            // group of the tile passes over it.
            const CB: usize = 2048 / size_of::<$A>();
            let mut lo = 0;
            while lo < len {
                let hi = (lo + CB).min(len);
                let mut r = 0;
                while r < acc.len() {
                    let rows = if acc.len() - r >= 4 { 4 } else { 1 };
                    let mut t = lo;
                    // SAFETY (every block below): reads panel[j][t..t + width] and
                    // acc[r + q][t..t + width] with t + width ≤ len, within the rows checked above;
                    // coef[r + q][j] with j < k.
                    while t + 4 * L <= hi {
                        let mut a = [[$zero(); 4]; 4];
                        for q in 0..rows {
                            let p = acc[r + q].as_ptr();
                            for v in 0..4 {
                                // SAFETY: in bounds, as stated at the top of this loop (t + width ≤ hi ≤ len, j < k).
                                a[q][v] = unsafe { $loadu(p.add(t + v * L)) };
                            }
                        }
                        if rows == 4 {
                            for j in 0..k {
                                let p = panel[j].as_ptr();
                                let mut pv = [$zero(); 4];
                                for (v, o) in pv.iter_mut().enumerate() {
                                    // SAFETY: in bounds, as stated at the top of this loop (t + width ≤ hi ≤ len, j < k).
                                    *o = unsafe { load!(p.add(t + v * L)) };
                                }
                                for q in 0..4 {
                                    // SAFETY: in bounds, as stated at the top of this loop (t + width ≤ hi ≤ len, j < k).
                                    let e = $set1(unsafe { *coef[r + q].get_unchecked(j) });
                                    for v in 0..4 {
                                        a[q][v] = $add(a[q][v], $mul(e, pv[v]));
                                    }
                                }
                            }
                        } else {
                            for j in 0..k {
                                let p = panel[j].as_ptr();
                                // SAFETY: in bounds, as stated at the top of this loop (t + width ≤ hi ≤ len, j < k).
                                let e = $set1(unsafe { *coef[r].get_unchecked(j) });
                                for v in 0..4 {
                                    // SAFETY: in bounds, as stated at the top of this loop (t + width ≤ hi ≤ len, j < k).
                                    let pv = unsafe { load!(p.add(t + v * L)) };
                                    a[0][v] = $add(a[0][v], $mul(e, pv));
                                }
                            }
                        }
                        for q in 0..rows {
                            let p = acc[r + q].as_mut_ptr();
                            for v in 0..4 {
                                // SAFETY: in bounds, as stated at the top of this loop (t + width ≤ hi ≤ len, j < k).
                                unsafe { $storeu(p.add(t + v * L), a[q][v]) };
                            }
                        }
                        t += 4 * L;
                    }
                    while t + L <= hi {
                        let mut a = [$zero(); 4];
                        for q in 0..rows {
                            // SAFETY: in bounds, as stated at the top of this loop (t + width ≤ hi ≤ len, j < k).
                            a[q] = unsafe { $loadu(acc[r + q].as_ptr().add(t)) };
                        }
                        for j in 0..k {
                            // SAFETY: in bounds, as stated at the top of this loop (t + width ≤ hi ≤ len, j < k).
                            let pv = unsafe { load!(panel[j].as_ptr().add(t)) };
                            for q in 0..rows {
                                // SAFETY: in bounds, as stated at the top of this loop (t + width ≤ hi ≤ len, j < k).
                                let e = $set1(unsafe { *coef[r + q].get_unchecked(j) });
                                a[q] = $add(a[q], $mul(e, pv));
                            }
                        }
                        for q in 0..rows {
                            // SAFETY: in bounds, as stated at the top of this loop (t + width ≤ hi ≤ len, j < k).
                            unsafe { $storeu(acc[r + q].as_mut_ptr().add(t), a[q]) };
                        }
                        t += L;
                    }
                    while t < hi {
                        for q in 0..rows {
                            let mut a = acc[r + q][t];
                            for j in 0..k {
                                a += coef[r + q][j] * <$A>::from(panel[j][t]);
                            }
                            acc[r + q][t] = a;
                        }
                        t += 1;
                    }
                    r += rows;
                }
                lo = hi;
            }
        }
    };
}

kernel!(gemm_f32_avx512, "avx512f", f32, f32, __m512, 16,
    load: |p| _mm512_loadu_ps(p),
    set1: _mm512_set1_ps, mul: _mm512_mul_ps, add: _mm512_add_ps,
    loadu: _mm512_loadu_ps, storeu: _mm512_storeu_ps, zero: _mm512_setzero_ps);
kernel!(gemm_f64_avx512, "avx512f", f64, f64, __m512d, 8,
    load: |p| _mm512_loadu_pd(p),
    set1: _mm512_set1_pd, mul: _mm512_mul_pd, add: _mm512_add_pd,
    loadu: _mm512_loadu_pd, storeu: _mm512_storeu_pd, zero: _mm512_setzero_pd);
kernel!(gemm_f64_f32_avx512, "avx512f", f64, f32, __m512d, 8,
    load: |p| _mm512_cvtps_pd(_mm256_loadu_ps(p)),
    set1: _mm512_set1_pd, mul: _mm512_mul_pd, add: _mm512_add_pd,
    loadu: _mm512_loadu_pd, storeu: _mm512_storeu_pd, zero: _mm512_setzero_pd);
kernel!(gemm_f32_avx2, "avx2", f32, f32, __m256, 8,
    load: |p| _mm256_loadu_ps(p),
    set1: _mm256_set1_ps, mul: _mm256_mul_ps, add: _mm256_add_ps,
    loadu: _mm256_loadu_ps, storeu: _mm256_storeu_ps, zero: _mm256_setzero_ps);
kernel!(gemm_f64_avx2, "avx2", f64, f64, __m256d, 4,
    load: |p| _mm256_loadu_pd(p),
    set1: _mm256_set1_pd, mul: _mm256_mul_pd, add: _mm256_add_pd,
    loadu: _mm256_loadu_pd, storeu: _mm256_storeu_pd, zero: _mm256_setzero_pd);
kernel!(gemm_f64_f32_avx2, "avx2", f64, f32, __m256d, 4,
    load: |p| _mm256_cvtps_pd(_mm_loadu_ps(p)),
    set1: _mm256_set1_pd, mul: _mm256_mul_pd, add: _mm256_add_pd,
    loadu: _mm256_loadu_pd, storeu: _mm256_storeu_pd, zero: _mm256_setzero_pd);
