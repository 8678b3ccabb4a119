//! [`Factor`]: what the error feedback needs of `H`, computed once per layer input and shared
//! by every tensor that reads that input (q/k/v, gate/up) and every candidate type.
//!
//! With the damped `H = R·Rᵀ`, `R` upper triangular (the Cholesky factor of `H` with the index
//! order reversed), the output error of a row is
//! `δᵀHδ = ‖Rᵀδ‖² = Σ_k R_kk²·(δ_k + Σ_{j<k} C_jk·δ_j)²` with `C_jk = R_jk / R_kk` and
//! `δ = w − ŵ`. Quantizing columns left to right, column `k` is rounded from the target
//! `w_k + Σ_{j<k} C_jk·δ_j`, which zeroes everything of term `k` but its own rounding: GPTQ's
//! update (Frantar et al. 2022) in the LDLQ form of QuIP (Chee et al. 2023), where `R` plays
//! the part of GPTQ's Cholesky factor of `H⁻¹` without inverting anything.

use rayon::prelude::*;

use super::input::{InputStats, Matrix};
use super::linalg::{cholesky_packed, lower_offset, split_rows};
use super::{Options, Order};
use crate::Error;

/// The factored input statistics of one layer input (see the module docs), in the column
/// order the optimizer visits: natural, or by descending `E[x²]` ([`Order::ActOrder`]).
#[derive(Clone, Debug)]
pub struct Factor {
    cols: usize,
    order: Order,
    /// Visit position → column.
    perm: Vec<usize>,
    /// `C` by visit position: row `j` holds `C[j][j+1..cols]` from [`upper_offset`]`(j)`.
    c: Vec<f32>,
    /// `R_kk` by visit position.
    rdiag: Vec<f32>,
    /// The damped diagonal by column: the importance the weighted encoders choose scales with.
    importance: Vec<f32>,
    /// The damping added to the diagonal.
    damp: f64,
}

/// Offset of row `j` of a packed strict upper triangle of order `n` (row `j` holds columns
/// `j+1..n`).
#[inline(always)]
fn upper_offset(j: usize, n: usize) -> usize {
    j * (2 * n - j - 1) / 2
}

impl Factor {
    /// Columns of the layer.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The column order of the error feedback.
    pub fn order(&self) -> Order {
        self.order
    }

    /// The value added to every diagonal entry of `H`: `damp · mean(diag H)`.
    pub fn damping(&self) -> f64 {
        self.damp
    }

    /// The importance of each column (the damped diagonal of `H`).
    pub fn importance(&self) -> &[f32] {
        &self.importance
    }

    /// Visit position → column.
    pub(crate) fn perm(&self) -> &[usize] {
        &self.perm
    }

    /// `C[j][j+1..]` for visit position `j`.
    #[inline(always)]
    pub(crate) fn c_row(&self, j: usize) -> &[f32] {
        let off = upper_offset(j, self.cols);
        &self.c[off..off + self.cols - 1 - j]
    }

    /// `R_kk` for visit position `k`.
    #[inline(always)]
    pub(crate) fn rdiag(&self, k: usize) -> f32 {
        self.rdiag[k]
    }
}

/// Visit position → column for `order` (see [`Order`]); `diag` is `E[x²]` per column.
fn visit_order(order: Order, diag: &[f64]) -> Vec<usize> {
    let n = diag.len();
    // Descending E[x²] (or mass), ties by index.
    let by_weight = |weight: &dyn Fn(usize) -> f64, items: &mut [usize]| {
        items.sort_by(|&a, &b| weight(b).total_cmp(&weight(a)).then(a.cmp(&b)));
    };
    let mut perm: Vec<usize> = (0..n).collect();
    match order {
        Order::Natural => {}
        Order::ActOrder => by_weight(&|c| diag[c], &mut perm),
        Order::Grouped => {
            let mass = |r: std::ops::Range<usize>| diag[r].iter().sum::<f64>();
            let mut groups: Vec<usize> = (0..n.div_ceil(256)).collect();
            by_weight(&|g| mass(256 * g..(256 * g + 256).min(n)), &mut groups);
            perm.clear();
            for g in groups {
                let mut blocks: Vec<usize> = (8 * g..(8 * g + 8).min(n.div_ceil(32))).collect();
                by_weight(&|b| mass(32 * b..(32 * b + 32).min(n)), &mut blocks);
                for b in blocks {
                    let mut c: Vec<usize> = (32 * b..(32 * b + 32).min(n)).collect();
                    by_weight(&|c| diag[c], &mut c);
                    perm.extend(c);
                }
            }
        }
    }
    perm
}

/// Factors the damped statistics for the error feedback.
///
/// `H + damp·mean(diag H)·I` (`damp` = [`Options::damp`]) makes every matrix of a finite
/// calibration set positive definite: fewer tokens than columns, or dead columns (`E[x²] = 0`,
/// an input that never fires: its weight keeps its value, is rounded to the nearest grid
/// point and passes no error on, since nothing correlates with it). A matrix that still fails
/// to factor is not positive semi-definite (an accumulation bug upstream) and is refused.
///
/// Cost: `cols³/6` multiply-adds in f64 (about 2.5 s at 4096 columns and 40 s at 11008 on
/// 2 cores of this machine; see the module docs), memory `6·cols²` bytes at the peak.
pub fn factor(stats: &InputStats, opts: &Options) -> Result<Factor, Error> {
    let n = stats.cols();
    if !(opts.damp.is_finite() && opts.damp >= 0.0) {
        return Err(Error::InputStats {
            reason: format!("damping {} is not a finite value ≥ 0", opts.damp),
        });
    }
    let diag: Vec<f64> = (0..n).map(|i| stats.get(i, i)).collect();
    let mean = diag.iter().sum::<f64>() / n as f64;
    if mean.is_nan() || mean <= 0.0 {
        return Err(Error::InputStats {
            reason: "every diagonal entry is 0 (the layer input is always zero)".into(),
        });
    }
    let damp = opts.damp * mean;
    let importance: Vec<f32> = diag.iter().map(|&d| (d + damp) as f32).collect();
    let perm = visit_order(opts.order, &diag);
    // A[i][j] = H[p(n−1−i)][p(n−1−j)] (i ≥ j): H in visit order, indices reversed, so the
    // lower Cholesky factor L of A gives R[j][k] = L[n−1−j][n−1−k].
    let mut a = vec![0f64; lower_offset(n)];
    {
        let rows = split_rows(&mut a, (0..n).map(|i| i + 1));
        let fill = |get: &(dyn Fn(usize, usize) -> f64 + Sync)| {
            rows.into_par_iter().enumerate().for_each(|(i, row)| {
                let pi = perm[n - 1 - i];
                for (j, o) in row.iter_mut().enumerate() {
                    let pj = perm[n - 1 - j];
                    // Upper triangle of H: the smaller index first.
                    *o = get(pi.min(pj), pi.max(pj));
                }
                row[i] += damp;
            });
        };
        match stats.matrix() {
            Matrix::F32(h) => fill(&|i, j| f64::from(h[i * n + j])),
            Matrix::F64(h) => fill(&|i, j| h[i * n + j]),
        }
    }
    cholesky_packed(&mut a, n).map_err(|i| Error::InputStats {
        reason: format!(
            "the damped matrix is not positive definite (pivot of column {}): H is not a \
             second-moment matrix",
            perm[n - 1 - i]
        ),
    })?;
    let rdiag: Vec<f32> = (0..n)
        .map(|k| {
            let r = n - 1 - k;
            a[lower_offset(r) + r] as f32
        })
        .collect();
    let mut c = vec![0f32; upper_offset(n, n)];
    {
        let rows = split_rows(&mut c, (0..n).map(|j| n - 1 - j));
        rows.into_par_iter().enumerate().for_each(|(j, row)| {
            // C[j][k] = L[n−1−j][n−1−k] / L[n−1−k][n−1−k], k = j+1..n.
            let la = &a[lower_offset(n - 1 - j)..];
            for (t, o) in row.iter_mut().enumerate() {
                let b = n - 2 - j - t;
                *o = (la[b] / a[lower_offset(b) + b]) as f32;
            }
        });
    }
    Ok(Factor {
        cols: n,
        order: opts.order,
        perm,
        c,
        rdiag,
        importance,
        damp,
    })
}
