//! The dense kernels of the optimizer: one accumulate-product kernel (`acc += coef · panel`)
//! that the Cholesky factorization, the error feedback and the output-error measure all run,
//! and the blocked reversed Cholesky built on it.
//!
//! Every element of `acc` receives its products one at a time in ascending panel-row order as
//! a separate multiply and add (no fused multiply-add, no reassociation), whatever the row
//! grouping, the vector width or the thread split: so every SIMD level and thread count gives
//! the same bits. The SIMD versions are the same Rust code compiled with `avx2` or `avx512f`
//! enabled (wider register tiles), chosen from [`crate::simd_level`].

use std::ops::{Add, Mul};

use rayon::prelude::*;

use crate::Level;

/// An accumulator type (f32 or f64).
pub(crate) trait Acc:
    Copy + Default + Add<Output = Self> + Mul<Output = Self> + Send + Sync
{
}
impl Acc for f32 {}
impl Acc for f64 {}

/// A panel element type read into accumulator type `A` (exactly: f32 → f64 is exact).
pub(crate) trait Src<A>: Copy + Send + Sync {
    /// The value as an `A`.
    fn get(self) -> A;
}
impl Src<f32> for f32 {
    #[inline(always)]
    fn get(self) -> f32 {
        self
    }
}
impl Src<f64> for f64 {
    #[inline(always)]
    fn get(self) -> f64 {
        self
    }
}
impl Src<f64> for f32 {
    #[inline(always)]
    fn get(self) -> f64 {
        f64::from(self)
    }
}

/// Columns of `acc` per cache block: a panel of up to 256 rows × this many columns stays in L2
/// while every row group of the tile passes over it.
const COL_BLOCK: usize = 512;

/// `R` rows × `W` columns starting at column `t0`: `acc[r][t0 + t] += Σ_j coef[r][j] · panel[j][t0 + t]`.
#[inline(always)]
fn micro<A: Acc, S: Src<A>, const R: usize, const W: usize>(
    acc: &mut [&mut [A]],
    coef: &[&[A]],
    panel: &[&[S]],
    t0: usize,
) {
    let mut a = [[A::default(); W]; R];
    for (ar, row) in a.iter_mut().zip(acc.iter()) {
        ar.copy_from_slice(&row[t0..t0 + W]);
    }
    for (j, p) in panel.iter().enumerate() {
        let p: &[S; W] = p[t0..t0 + W].try_into().expect("panel row");
        let mut e = [A::default(); R];
        for (er, c) in e.iter_mut().zip(coef) {
            *er = c[j];
        }
        for (ar, &er) in a.iter_mut().zip(&e) {
            for (v, &s) in ar.iter_mut().zip(p) {
                *v = *v + er * s.get();
            }
        }
    }
    for (ar, row) in a.iter().zip(acc.iter_mut()) {
        row[t0..t0 + W].copy_from_slice(ar);
    }
}

/// Row groups of `R` (then single rows) over columns `lo..hi` in tiles of `W` (then single
/// columns).
#[inline(always)]
fn cols_pass<A: Acc, S: Src<A>, const R: usize, const W: usize>(
    acc: &mut [&mut [A]],
    coef: &[&[A]],
    panel: &[&[S]],
    lo: usize,
    hi: usize,
) {
    let mut r = 0;
    while r < acc.len() {
        let take = if acc.len() - r >= R { R } else { 1 };
        let (a, c) = (&mut acc[r..r + take], &coef[r..r + take]);
        let mut t = lo;
        if take == R {
            while t + W <= hi {
                micro::<A, S, R, W>(a, c, panel, t);
                t += W;
            }
            while t < hi {
                micro::<A, S, R, 1>(a, c, panel, t);
                t += 1;
            }
        } else {
            while t + W <= hi {
                micro::<A, S, 1, W>(a, c, panel, t);
                t += W;
            }
            while t < hi {
                micro::<A, S, 1, 1>(a, c, panel, t);
                t += 1;
            }
        }
        r += take;
    }
}

/// The portable body of [`gemm_acc`], tiles of 4 rows × `W` columns.
#[inline(always)]
fn gemm_body<A: Acc, S: Src<A>, const W: usize>(
    acc: &mut [&mut [A]],
    coef: &[&[A]],
    panel: &[&[S]],
    len: usize,
) {
    let mut lo = 0;
    while lo < len {
        let hi = (lo + COL_BLOCK).min(len);
        cols_pass::<A, S, 4, W>(acc, coef, panel, lo, hi);
        lo = hi;
    }
}

/// An accumulate-product kernel: `(acc, coef, panel, len)`.
type GemmFn<A, S> = fn(&mut [&mut [A]], &[&[A]], &[&[S]], usize);

/// The kernels of one (accumulator, panel) type pair: portable and per x86 level.
pub(crate) trait Kernel<S>: Acc {
    /// AVX-512F and AVX2 kernels, if the pair has them.
    const X86: Option<(GemmFn<Self, S>, GemmFn<Self, S>)>;
}

#[cfg(target_arch = "x86_64")]
mod x86_pairs {
    use super::super::linalg_x86 as k;
    use super::{GemmFn, Kernel};

    /// Wraps a `#[target_feature]` kernel as a plain fn pointer.
    macro_rules! tf {
        ($f:path, $A:ty, $S:ty) => {{
            fn call(acc: &mut [&mut [$A]], coef: &[&[$A]], panel: &[&[$S]], len: usize) {
                // SAFETY: `gemm_acc` picks this kernel only when the level is supported.
                unsafe { $f(acc, coef, panel, len) }
            }
            call as GemmFn<$A, $S>
        }};
    }
    impl Kernel<f32> for f32 {
        const X86: Option<(GemmFn<f32, f32>, GemmFn<f32, f32>)> = Some((
            tf!(k::gemm_f32_avx512, f32, f32),
            tf!(k::gemm_f32_avx2, f32, f32),
        ));
    }
    impl Kernel<f64> for f64 {
        const X86: Option<(GemmFn<f64, f64>, GemmFn<f64, f64>)> = Some((
            tf!(k::gemm_f64_avx512, f64, f64),
            tf!(k::gemm_f64_avx2, f64, f64),
        ));
    }
    impl Kernel<f32> for f64 {
        const X86: Option<(GemmFn<f64, f32>, GemmFn<f64, f32>)> = Some((
            tf!(k::gemm_f64_f32_avx512, f64, f32),
            tf!(k::gemm_f64_f32_avx2, f64, f32),
        ));
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod portable_pairs {
    use super::{GemmFn, Kernel};
    impl Kernel<f32> for f32 {
        const X86: Option<(GemmFn<f32, f32>, GemmFn<f32, f32>)> = None;
    }
    impl Kernel<f64> for f64 {
        const X86: Option<(GemmFn<f64, f64>, GemmFn<f64, f64>)> = None;
    }
    impl Kernel<f32> for f64 {
        const X86: Option<(GemmFn<f64, f32>, GemmFn<f64, f32>)> = None;
    }
}

/// `acc[r][t] += Σ_j coef[r][j] · panel[j][t]` for every row `r` of `acc`, `t < len`, `j`
/// ascending. `coef[r]` holds at least `panel.len()` values, every `acc[r]` and `panel[j]` at
/// least `len`.
pub(crate) fn gemm_acc<A: Kernel<S>, S: Src<A>>(
    acc: &mut [&mut [A]],
    coef: &[&[A]],
    panel: &[&[S]],
    len: usize,
) {
    gemm_at(crate::simd_level(), acc, coef, panel, len);
}

/// [`gemm_acc`] at `level` (a supported one).
pub(crate) fn gemm_at<A: Kernel<S>, S: Src<A>>(
    level: Level,
    acc: &mut [&mut [A]],
    coef: &[&[A]],
    panel: &[&[S]],
    len: usize,
) {
    assert_eq!(
        acc.len(),
        coef.len(),
        "one coefficient row per accumulator row"
    );
    assert!(coef.iter().all(|c| c.len() >= panel.len()), "coefficients");
    assert!(acc.iter().all(|a| a.len() >= len), "accumulator rows");
    assert!(panel.iter().all(|p| p.len() >= len), "panel rows");
    match (level, A::X86) {
        (Level::Avx512, Some((k, _))) | (Level::Avx2, Some((_, k))) => k(acc, coef, panel, len),
        _ => {
            let lanes = 16 / size_of::<A>();
            if lanes == 4 {
                gemm_body::<A, S, 16>(acc, coef, panel, len);
            } else {
                gemm_body::<A, S, 8>(acc, coef, panel, len);
            }
        }
    }
}

/// Splits `buf` into consecutive mutable rows of the given lengths.
pub(crate) fn split_rows<T>(mut buf: &mut [T], lens: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for n in lens {
        let (row, rest) = std::mem::take(&mut buf).split_at_mut(n);
        out.push(row);
        buf = rest;
    }
    out
}

/// Offset of row `i` of a packed lower triangle (row `i` holds columns `0..=i`).
#[inline(always)]
pub(crate) fn lower_offset(i: usize) -> usize {
    i * (i + 1) / 2
}

/// Columns per panel of the blocked Cholesky.
const PANEL: usize = 128;
/// Rows per parallel task of the trailing update.
const TASK_ROWS: usize = 128;

/// The lower Cholesky factor `L` (`A = L·Lᵀ`) of the symmetric matrix `a`, stored as a packed
/// lower triangle (row `i` at [`lower_offset`]`(i)`, columns `0..=i`), computed in place.
///
/// Blocked right-looking: per panel of [`PANEL`] columns, the diagonal block (left-looking
/// dot products), the panel below it (a triangular solve vectorized over rows), then the
/// trailing update `A −= P·Pᵀ` with [`gemm_acc`] over rows in parallel. Returns the first
/// column whose pivot is not positive (not positive definite) as an error.
pub(crate) fn cholesky_packed(a: &mut [f64], n: usize) -> Result<(), usize> {
    assert_eq!(a.len(), lower_offset(n), "packed size");
    let mut kb = 0;
    while kb < n {
        let ke = (kb + PANEL).min(n);
        let nb = ke - kb;
        // 1. The diagonal block.
        for i in kb..ke {
            for j in kb..=i {
                let (ri, rj) = (lower_offset(i), lower_offset(j));
                let mut s = a[ri + j];
                for p in kb..j {
                    s -= a[ri + p] * a[rj + p];
                }
                if i == j {
                    if s.is_nan() || s <= 0.0 {
                        return Err(i);
                    }
                    a[ri + i] = s.sqrt();
                } else {
                    a[ri + j] = s / a[rj + j];
                }
            }
        }
        if ke == n {
            break;
        }
        // 2. The panel below: column-major copy, solved vectorized over its rows.
        let m = n - ke;
        let mut pt = vec![0f64; nb * m];
        for i in ke..n {
            let ri = lower_offset(i);
            for j in kb..ke {
                pt[(j - kb) * m + (i - ke)] = a[ri + j];
            }
        }
        let diag: Vec<f64> = (kb..ke).map(|j| a[lower_offset(j) + j]).collect();
        let lblock: Vec<Vec<f64>> = (kb..ke)
            .map(|j| {
                let rj = lower_offset(j);
                a[rj + kb..rj + j].to_vec()
            })
            .collect();
        solve_panel(&mut pt, m, &lblock, &diag);
        for i in ke..n {
            let ri = lower_offset(i);
            for j in kb..ke {
                a[ri + j] = pt[(j - kb) * m + (i - ke)];
            }
        }
        // 3. Trailing update A[i][j] −= Σ_p L[i][p]·L[j][p] for ke ≤ j ≤ i: with the negated
        // panel as coefficients, acc += coef · panel.
        let neg: Vec<f64> = pt.iter().map(|&v| -v).collect();
        let panel: Vec<&[f64]> = pt.chunks_exact(m).collect();
        let (_, trailing) = a.split_at_mut(lower_offset(ke));
        let rows = split_rows(trailing, (ke..n).map(|i| i + 1));
        let mut tasks: Vec<(usize, Vec<&mut [f64]>)> = Vec::new();
        let mut it = rows.into_iter();
        let mut i0 = ke;
        while i0 < n {
            let take = TASK_ROWS.min(n - i0);
            tasks.push((i0, it.by_ref().take(take).collect()));
            i0 += take;
        }
        tasks.into_par_iter().for_each(|(i0, rows)| {
            // Row i updates columns ke..=i: the common range ke..=i0 for the whole task, then
            // the small triangle row by row.
            let count = rows.len();
            let coefs: Vec<Vec<f64>> = (0..count)
                .map(|r| (0..nb).map(|p| neg[p * m + (i0 + r - ke)]).collect())
                .collect();
            let coef_refs: Vec<&[f64]> = coefs.iter().map(Vec::as_slice).collect();
            let mut rows = rows;
            {
                let mut acc: Vec<&mut [f64]> = rows.iter_mut().map(|r| &mut r[ke..=i0]).collect();
                gemm_acc(&mut acc, &coef_refs, &panel, i0 + 1 - ke);
            }
            for (r, row) in rows.iter_mut().enumerate().skip(1) {
                let lo = i0 + 1 - ke;
                let hi = i0 + r + 1 - ke;
                let sub: Vec<&[f64]> = panel.iter().map(|p| &p[lo..hi]).collect();
                let mut acc = [&mut row[i0 + 1..=i0 + r]];
                gemm_acc(&mut acc, &coef_refs[r..=r], &sub, hi - lo);
            }
        });
        kb = ke;
    }
    Ok(())
}

/// Solves the panel `X·L_bᵀ = P` in place, `P` column-major (`nb` columns of `m` rows),
/// `L_b` the factored diagonal block (`lblock[j]` its row `j` left of the diagonal, `diag`
/// its diagonal): column `j` becomes `(P_j − Σ_{p<j} L_b[j][p]·X_p) / L_b[j][j]`, each element's
/// terms in ascending `p`, vectorized over the rows.
fn solve_panel(pt: &mut [f64], m: usize, lblock: &[Vec<f64>], diag: &[f64]) {
    const CHUNK: usize = 256;
    let nb = diag.len();
    // Rows are independent: split them into chunks, each solved over all columns.
    let mut cols: Vec<&mut [f64]> = pt.chunks_exact_mut(m).collect();
    let mut starts = Vec::new();
    let mut s = 0;
    while s < m {
        starts.push(s);
        s += CHUNK;
    }
    // Hand each chunk its slices of every column.
    let mut per_chunk: Vec<Vec<&mut [f64]>> =
        starts.iter().map(|_| Vec::with_capacity(nb)).collect();
    for col in &mut cols {
        let mut rest: &mut [f64] = std::mem::take(col);
        for (c, &st) in per_chunk.iter_mut().zip(&starts) {
            let len = CHUNK.min(m - st);
            let (head, tail) = rest.split_at_mut(len);
            c.push(head);
            rest = tail;
        }
    }
    per_chunk.into_par_iter().for_each(|mut colz| {
        for j in 0..nb {
            let (done, cur) = colz.split_at_mut(j);
            let cur = &mut *cur[0];
            let len = cur.len();
            let coef: Vec<f64> = lblock[j].iter().map(|&l| -l).collect();
            let src: Vec<&[f64]> = done.iter().map(|c| &**c).collect();
            gemm_acc(&mut [cur], &[&coef], &src, len);
            let cur = &mut *colz[j];
            let d = diag[j];
            for v in cur.iter_mut() {
                *v /= d;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_naive_order() {
        let (rows, k, len) = (7, 19, 1100);
        let coef: Vec<Vec<f32>> = (0..rows)
            .map(|r| {
                (0..k)
                    .map(|j| ((r * 31 + j * 17) % 23) as f32 / 7.0 - 1.3)
                    .collect()
            })
            .collect();
        let panel: Vec<Vec<f32>> = (0..k)
            .map(|j| {
                (0..len)
                    .map(|t| ((j * 13 + t * 7) % 29) as f32 / 11.0 - 1.1)
                    .collect()
            })
            .collect();
        let acc: Vec<Vec<f32>> = (0..rows).map(|r| vec![r as f32 * 0.1; len]).collect();
        let mut want = acc.clone();
        for r in 0..rows {
            for j in 0..k {
                for t in 0..len {
                    want[r][t] += coef[r][j] * panel[j][t];
                }
            }
        }
        let cr: Vec<&[f32]> = coef.iter().map(Vec::as_slice).collect();
        let pr: Vec<&[f32]> = panel.iter().map(Vec::as_slice).collect();
        for level in Level::ALL.into_iter().filter(|l| l.is_supported()) {
            let mut got = acc.clone();
            let mut ar: Vec<&mut [f32]> = got.iter_mut().map(Vec::as_mut_slice).collect();
            gemm_at(level, &mut ar, &cr, &pr, len);
            assert_eq!(got, want, "{level:?}");
            // f64 accumulators, f64 and f32 panels.
            let wide = |v: &Vec<Vec<f32>>| -> Vec<Vec<f64>> {
                v.iter()
                    .map(|r| r.iter().map(|&x| f64::from(x)).collect())
                    .collect()
            };
            let (c64, p64) = (wide(&coef), wide(&panel));
            let mut want64 = wide(&acc);
            for r in 0..rows {
                for j in 0..k {
                    for t in 0..len {
                        want64[r][t] += c64[r][j] * p64[j][t];
                    }
                }
            }
            let cr64: Vec<&[f64]> = c64.iter().map(Vec::as_slice).collect();
            let pr64: Vec<&[f64]> = p64.iter().map(Vec::as_slice).collect();
            let mut got64 = wide(&acc);
            let mut ar: Vec<&mut [f64]> = got64.iter_mut().map(Vec::as_mut_slice).collect();
            gemm_at(level, &mut ar, &cr64, &pr64, len);
            assert_eq!(got64, want64, "{level:?} f64");
            let mut got64 = wide(&acc);
            let mut ar: Vec<&mut [f64]> = got64.iter_mut().map(Vec::as_mut_slice).collect();
            gemm_at(level, &mut ar, &cr64, &pr, len);
            assert_eq!(got64, want64, "{level:?} f64 · f32");
        }
    }

    #[test]
    fn cholesky_reconstructs() {
        let n = 150;
        // A = B·Bᵀ + n·I.
        let b: Vec<f64> = (0..n * n)
            .map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let mut full = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut s = 0.0;
                for k in 0..n {
                    s += b[i * n + k] * b[j * n + k];
                }
                full[i * n + j] = s + if i == j { n as f64 } else { 0.0 };
            }
        }
        let mut packed = vec![0f64; lower_offset(n)];
        for i in 0..n {
            for j in 0..=i {
                packed[lower_offset(i) + j] = full[i * n + j];
            }
        }
        cholesky_packed(&mut packed, n).unwrap();
        for i in 0..n {
            for j in 0..=i {
                let mut s = 0.0;
                for k in 0..=j {
                    s += packed[lower_offset(i) + k] * packed[lower_offset(j) + k];
                }
                assert!(
                    (s - full[i * n + j]).abs() < 1e-9 * full[i * n + i],
                    "{i} {j}"
                );
            }
        }
        let mut bad = vec![0f64; lower_offset(3)];
        bad[0] = 1.0;
        bad[2] = -1.0;
        bad[5] = 1.0;
        assert_eq!(cholesky_packed(&mut bad, 3), Err(1));
    }
}
