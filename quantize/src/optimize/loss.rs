//! The output error of quantized bytes: `Σ_rows (w − ŵ)ᵀ H (w − ŵ)` and its diagonal-only
//! form, for any storable type, decoded with the crate's one decoder.

use llamapack_format::DType;
use rayon::prelude::*;

use super::input::{InputStats, Matrix};
use super::linalg::{Kernel, Src, gemm_acc};
use crate::Error;

/// Rows per parallel task (the batch's rows of `H` are reused by every row of a task).
const TILE: usize = 64;
/// Rows of `H` per lazy batch.
const BATCH: usize = 256;

/// Checks the shapes shared by the two measures and returns the bytes of one row.
fn check(dtype: DType, w: &[f32], rows: usize, cols: usize, bytes: &[u8]) -> Result<usize, Error> {
    let row_bytes = dtype.row_bytes(cols).ok_or(Error::RowLength {
        dtype,
        len: cols,
        block_len: dtype.block_len(),
    })?;
    let n = rows.checked_mul(cols).ok_or(Error::Shape {
        what: "weights (rows × cols)",
        expected: usize::MAX,
        found: w.len(),
    })?;
    if w.len() != n {
        return Err(Error::Shape {
            what: "weights (rows × cols)",
            expected: n,
            found: w.len(),
        });
    }
    let nb = rows.saturating_mul(row_bytes);
    if bytes.len() != nb {
        return Err(Error::ByteLength {
            dtype,
            len: n,
            expected: nb,
            found: bytes.len(),
        });
    }
    Ok(row_bytes)
}

/// The errors `w − ŵ` of rows `r0..r0 + n` in f64.
fn deltas(
    dtype: DType,
    w: &[f32],
    cols: usize,
    bytes: &[u8],
    row_bytes: usize,
    r0: usize,
    n: usize,
) -> Result<Vec<f64>, Error> {
    let mut back = vec![0f32; cols];
    let mut out = vec![0f64; n * cols];
    for r in 0..n {
        let row = r0 + r;
        crate::dequantize_row(
            dtype,
            &bytes[row * row_bytes..(row + 1) * row_bytes],
            &mut back,
        )?;
        for ((o, &a), &b) in out[r * cols..(r + 1) * cols]
            .iter_mut()
            .zip(&w[row * cols..(row + 1) * cols])
            .zip(&back)
        {
            *o = f64::from(a) - f64::from(b);
        }
    }
    Ok(out)
}

/// `δᵀHδ` of each of the `n` rows of `d`: `Σ_i δ_i·(H_ii·δ_i + 2·v_i)` with
/// `v_i = Σ_{j<i} H_ji·δ_j` accumulated a batch of rows of `H` at a time.
fn tile_loss<S: Src<f64>>(h: &[S], cols: usize, d: &[f64], n: usize) -> Vec<f64>
where
    f64: Kernel<S>,
{
    let mut v = vec![0f64; n * cols];
    let hrow = |j: usize| &h[j * cols..(j + 1) * cols];
    // v[r][dst] += Σ_{j∈src} d[r][j]·H[j][dst].
    let add = |v: &mut [f64], src: std::ops::Range<usize>, dst: std::ops::Range<usize>| {
        let coef: Vec<&[f64]> = d.chunks_exact(cols).map(|r| &r[src.clone()]).collect();
        let panel: Vec<&[S]> = src.map(|j| &hrow(j)[dst.clone()]).collect();
        let mut acc: Vec<&mut [f64]> = v
            .chunks_exact_mut(cols)
            .map(|r| &mut r[dst.clone()])
            .collect();
        gemm_acc(&mut acc, &coef, &panel, dst.len());
    };
    for s in (0..cols).step_by(BATCH) {
        let se = (s + BATCH).min(cols);
        // The batch's own triangle, in sub-blocks of 32: row by row inside a sub-block, then
        // the sub-block onto the rest of the batch.
        for a in (s..se).step_by(32) {
            let b = (a + 32).min(se);
            for j in a..b {
                add(&mut v, j..j + 1, j + 1..b);
            }
            if b < se {
                add(&mut v, a..b, b..se);
            }
        }
        if se < cols {
            add(&mut v, s..se, se..cols);
        }
    }
    d.chunks_exact(cols)
        .zip(v.chunks_exact(cols))
        .map(|(dr, vr)| {
            let mut l = 0f64;
            for (i, (&di, &vi)) in dr.iter().zip(vr).enumerate() {
                l += di * (h[i * cols + i].get() * di + 2.0 * vi);
            }
            l
        })
        .collect()
}

/// The output error of `bytes` (`rows` rows of `dtype`, any storable type) as the quantization
/// of the weights `w` (`rows × cols`, row-major): `Σ_rows (w − ŵ)ᵀ H (w − ŵ)` with `H` the
/// undamped statistics, the expected squared error of the layer's output over the calibration
/// tokens. Computed in f64 (`rows·cols²/2` multiply-adds; the same bits at every thread count
/// and SIMD level).
pub fn output_error(
    dtype: DType,
    w: &[f32],
    rows: usize,
    cols: usize,
    bytes: &[u8],
    stats: &InputStats,
) -> Result<f64, Error> {
    let row_bytes = check(dtype, w, rows, cols, bytes)?;
    if stats.cols() != cols {
        return Err(Error::Shape {
            what: "input statistics columns",
            expected: cols,
            found: stats.cols(),
        });
    }
    let per_row: Vec<Vec<f64>> = (0..rows.div_ceil(TILE))
        .into_par_iter()
        .map(|t| -> Result<Vec<f64>, Error> {
            let (r0, n) = (t * TILE, TILE.min(rows - t * TILE));
            let d = deltas(dtype, w, cols, bytes, row_bytes, r0, n)?;
            Ok(match stats.matrix() {
                Matrix::F32(h) => tile_loss(h, cols, &d, n),
                Matrix::F64(h) => tile_loss(h, cols, &d, n),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(per_row.iter().flatten().sum())
}

/// The diagonal-only output error `Σ_rows Σ_i diag_i·(w_i − ŵ_i)²` (`diag` = `E[x²]` per
/// column, the importance matrix): what [`output_error`] becomes for uncorrelated inputs, in
/// `rows·cols` operations.
pub fn output_error_diag(
    dtype: DType,
    w: &[f32],
    rows: usize,
    cols: usize,
    bytes: &[u8],
    diag: &[f32],
) -> Result<f64, Error> {
    let row_bytes = check(dtype, w, rows, cols, bytes)?;
    if diag.len() != cols {
        return Err(Error::Shape {
            what: "importance (one per column)",
            expected: cols,
            found: diag.len(),
        });
    }
    if let Some(i) = diag.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            index: i,
            value: diag[i],
        });
    }
    let per_row: Vec<f64> = (0..rows)
        .into_par_iter()
        .map(|r| -> Result<f64, Error> {
            let d = deltas(dtype, w, cols, bytes, row_bytes, r, 1)?;
            Ok(d.iter()
                .zip(diag)
                .map(|(&e, &q)| f64::from(q) * e * e)
                .sum())
        })
        .collect::<Result<_, _>>()?;
    Ok(per_row.iter().sum())
}
