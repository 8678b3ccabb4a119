//! The error-feedback quantizer over the block grids, for one format `F`.
//!
//! Rows are independent (they share only the [`Factor`]): tiles of rows run in parallel, and
//! each row's arithmetic does not depend on the tile it is in, so the bytes do not depend on
//! the thread count. Within a tile, columns are visited in batches of [`BATCH`]: inside a
//! batch every rounding error is passed on at once to the rest of its block, at a block's end
//! to the rest of the batch, and at a batch's end to every later column in one product over
//! the whole tile (GPTQ's lazy batch update).

use bytemuck::Zeroable;
use llamapack_format::blocks::QK_K;
use rayon::prelude::*;

use super::factor::Factor;
use super::grid::{Grid, nearest, tables};
use super::linalg::gemm_acc;
use super::refit::refit;
use super::{Options, Order};
use crate::Error;

/// Columns per lazy batch (a multiple of every block length).
const BATCH: usize = 256;
/// Most rows per parallel task: the batch's slice of `C` is reused by this many rows.
const TILE: usize = 128;

/// Quantizes `rows × cols` weights (checked by the caller) to `F` against `fac`.
pub(crate) fn quantize<F: Grid>(
    fac: &Factor,
    w: &[f32],
    rows: usize,
    cols: usize,
    opts: &Options,
) -> Result<Vec<u8>, Error> {
    let row_bytes = cols / F::BLOCK * size_of::<F::Block>();
    let mut out = vec![0u8; rows * row_bytes];
    let tile = rows
        .div_ceil(2 * rayon::current_num_threads())
        .clamp(4, TILE);
    out.par_chunks_mut(tile * row_bytes)
        .enumerate()
        .try_for_each(|(t, dst)| {
            let (r0, n) = (t * tile, dst.len() / row_bytes);
            let w = &w[r0 * cols..(r0 + n) * cols];
            let blocks = run_tile::<F>(fac, w, n, cols, opts).map_err(|(r, e)| match e {
                Error::NonFiniteAt { column, value, .. } => Error::NonFiniteAt {
                    row: r0 + r,
                    column,
                    value,
                },
                e => e,
            })?;
            dst.copy_from_slice(bytemuck::cast_slice(&blocks));
            Ok::<(), Error>(())
        })?;
    Ok(out)
}

/// One tile in the factor's order, its loops compiled for the best level: the rounding
/// passes are element-wise (the same bits at every vector width).
fn run_tile<F: Grid>(
    fac: &Factor,
    w: &[f32],
    n: usize,
    cols: usize,
    opts: &Options,
) -> Result<Vec<F::Block>, (usize, Error)> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
        fn avx512<F: Grid>(
            fac: &Factor,
            w: &[f32],
            n: usize,
            cols: usize,
            opts: &Options,
        ) -> Result<Vec<F::Block>, (usize, Error)> {
            tile_body::<F>(fac, w, n, cols, opts)
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        fn avx2<F: Grid>(
            fac: &Factor,
            w: &[f32],
            n: usize,
            cols: usize,
            opts: &Options,
        ) -> Result<Vec<F::Block>, (usize, Error)> {
            tile_body::<F>(fac, w, n, cols, opts)
        }
        match crate::simd_level() {
            // SAFETY: the level is the detected one (or a lower one the CPU supports).
            crate::Level::Avx512 => return unsafe { avx512::<F>(fac, w, n, cols, opts) },
            // SAFETY: as above.
            crate::Level::Avx2 => return unsafe { avx2::<F>(fac, w, n, cols, opts) },
            _ => {}
        }
    }
    tile_body::<F>(fac, w, n, cols, opts)
}

#[inline(always)]
fn tile_body<F: Grid>(
    fac: &Factor,
    w: &[f32],
    n: usize,
    cols: usize,
    opts: &Options,
) -> Result<Vec<F::Block>, (usize, Error)> {
    match fac.order() {
        Order::Natural | Order::Grouped => lazy_tile::<F>(fac, w, n, cols, opts),
        Order::ActOrder => act_order_tile::<F>(fac, w, n, cols, opts),
    }
}

/// ggml's row statistic σ² = Σx²/n (f32, in order).
#[inline(always)]
fn row_sigma2(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s / x.len() as f32
}

/// `acc[r][k] += Σ_{j∈src} delta[r][j − s]·C[j][k]` for every row `r` of the tile and `k` in
/// `dst` (visit positions; `dst` starts after `src` ends).
fn push(
    fac: &Factor,
    acc: &mut [f32],
    delta: &[f32],
    cols: usize,
    src: std::ops::Range<usize>,
    s: usize,
    dst: std::ops::Range<usize>,
) {
    let panel: Vec<&[f32]> = src
        .clone()
        .map(|j| &fac.c_row(j)[dst.start - j - 1..dst.end - j - 1])
        .collect();
    let coef: Vec<&[f32]> = delta
        .chunks_exact(BATCH)
        .map(|d| &d[src.start - s..src.end - s])
        .collect();
    let mut accr: Vec<&mut [f32]> = acc
        .chunks_exact_mut(cols)
        .map(|row| &mut row[dst.clone()])
        .collect();
    gemm_acc(&mut accr, &coef, &panel, dst.len());
}

/// Scratch of one row's block: its grids.
struct Scratch {
    tables: Vec<f32>,
}

/// One row's state within a block after a rounding pass: codes, the scaled residuals
/// `R_kk·(target_k − ŵ_k)` (the block's terms of `Rᵀδ`) and their squared sum.
#[derive(Clone, Copy)]
struct Pass {
    codes: [u8; QK_K],
    g: [f32; QK_K],
    loss: f64,
}

/// Rounds the block at visit positions `bs..bs + F::BLOCK` of one row with `y`'s grids: each
/// value to the grid point nearest its target `w + acc`, its error passed on to the rest of
/// the block in `acc`. `elem[p − bs]` is position `p`'s element in the block; codes are by
/// element, `g` by position.
#[inline(always)]
fn round_block<F: Grid>(
    fac: &Factor,
    w: &[f32],
    acc: &mut [f32],
    bs: usize,
    elem: &[usize],
    y: &F::Block,
    sc: &mut Scratch,
) -> Pass {
    let be = bs + F::BLOCK;
    tables::<F>(y, &mut sc.tables);
    let perm = fac.perm();
    let mut p = Pass {
        codes: [0; QK_K],
        g: [0.0; QK_K],
        loss: 0.0,
    };
    for k in bs..be {
        let i = elem[k - bs];
        let wk = w[perm[k]];
        let x = wk + acc[k];
        let grid = &sc.tables[(i / F::SUB) * F::LEVELS..(i / F::SUB + 1) * F::LEVELS];
        let c = nearest(grid, F::FIRST, x);
        let v = grid[c];
        p.codes[i] = c as u8;
        let g = fac.rdiag(k) * (x - v);
        p.g[k - bs] = g;
        p.loss += f64::from(g) * f64::from(g);
        let d = wk - v;
        for (a, &cc) in acc[k + 1..be].iter_mut().zip(fac.c_row(k)) {
            *a += d * cc;
        }
    }
    p
}

/// One row's block at visit positions `bs..bs + F::BLOCK` (one ggml block, `y`; `elem` as
/// in [`round_block`]): scales chosen by the weighted encoder from the current targets, a
/// rounding pass, then up to `opts.refit_rounds` rounds of [`refit`] and re-rounding while the
/// loss falls. Writes the block into `y` and its errors `δ = w − ŵ` into `delta` by position
/// (batch-relative, the batch starting at `s`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lazy_block<F: Grid>(
    fac: &Factor,
    w: &[f32],
    acc: &mut [f32],
    delta: &mut [f32],
    s: usize,
    bs: usize,
    elem: &[usize],
    sigma2: f32,
    y: &mut F::Block,
    sc: &mut Scratch,
    opts: &Options,
) -> Result<(), Error> {
    let be = bs + F::BLOCK;
    let perm = fac.perm();
    let (mut t, mut qw) = ([0f32; QK_K], [0f32; QK_K]);
    for (k, &i) in (bs..be).zip(elem) {
        let col = perm[k];
        t[i] = w[col] + acc[k];
        qw[i] = fac.importance()[col];
        if !t[i].is_finite() {
            return Err(Error::InputStats {
                reason: format!(
                    "the error feedback diverged at column {col} (target {}): H is too \
                     ill-conditioned; raise the damping",
                    t[i]
                ),
            });
        }
    }
    F::choose(&t[..F::BLOCK], &qw[..F::BLOCK], sigma2, y);
    let mut saved = [0f32; QK_K];
    saved[..F::BLOCK].copy_from_slice(&acc[bs..be]);
    let mut best = round_block::<F>(fac, w, acc, bs, elem, y, sc);
    for _ in 0..opts.refit_rounds {
        let Some((fitted, model)) = refit::<F>(
            fac,
            bs,
            elem,
            y,
            &best.codes[..F::BLOCK],
            &best.g[..F::BLOCK],
        ) else {
            break;
        };
        *y = fitted;
        acc[bs..be].copy_from_slice(&saved[..F::BLOCK]);
        let again = round_block::<F>(fac, w, acc, bs, elem, y, sc);
        if again.loss < model {
            best = again;
        } else {
            // Keep the codes with the new scales (no better rounding found).
            best.loss = model;
            break;
        }
    }
    F::pack(&best.codes[..F::BLOCK], y);
    let mut v = [0f32; QK_K];
    F::dequantize_ref(std::slice::from_ref(y), &mut v[..F::BLOCK]);
    for (k, &i) in (bs..be).zip(elem) {
        if !v[i].is_finite() {
            return Err(Error::InputStats {
                reason: format!(
                    "a block scale overflows f16 at column {}: the weights are too large for \
                     this type",
                    perm[k]
                ),
            });
        }
        delta[k - s] = w[perm[k]] - v[i];
    }
    Ok(())
}

/// A tile of `n` rows in an order that keeps every block's columns together (natural or
/// grouped), each block's grids chosen lazily when the rounding reaches it.
#[inline(always)]
fn lazy_tile<F: Grid>(
    fac: &Factor,
    w: &[f32],
    n: usize,
    cols: usize,
    opts: &Options,
) -> Result<Vec<F::Block>, (usize, Error)> {
    let nb = cols / F::BLOCK;
    let perm = fac.perm();
    let mut blocks = vec![F::Block::zeroed(); n * nb];
    let mut acc = vec![0f32; n * cols];
    let mut delta = vec![0f32; n * BATCH];
    let sigma2: Vec<f32> = w.chunks_exact(cols).map(row_sigma2).collect();
    let mut sc = Scratch {
        tables: vec![0f32; F::BLOCK / F::SUB * F::LEVELS],
    };
    let mut elem = [0usize; QK_K];
    for s in (0..cols).step_by(BATCH) {
        let se = (s + BATCH).min(cols);
        for bs in (s..se).step_by(F::BLOCK) {
            let be = bs + F::BLOCK;
            let block = perm[bs] / F::BLOCK;
            for (e, &col) in elem.iter_mut().zip(&perm[bs..be]) {
                debug_assert_eq!(col / F::BLOCK, block, "the order keeps blocks together");
                *e = col % F::BLOCK;
            }
            for r in 0..n {
                lazy_block::<F>(
                    fac,
                    &w[r * cols..(r + 1) * cols],
                    &mut acc[r * cols..(r + 1) * cols],
                    &mut delta[r * BATCH..(r + 1) * BATCH],
                    s,
                    bs,
                    &elem[..F::BLOCK],
                    sigma2[r],
                    &mut blocks[r * nb + block],
                    &mut sc,
                    opts,
                )
                .map_err(|e| (r, e))?;
            }
            if be < se {
                push(fac, &mut acc, &delta, cols, bs..be, s, be..se);
            }
        }
        if se < cols {
            push(fac, &mut acc, &delta, cols, s..se, s, se..cols);
        }
    }
    Ok(blocks)
}

/// A tile of `n` rows in act order with static grids: every block's scales are chosen before
/// the rounding (from the original weights), then columns are rounded by descending
/// importance (the factor's visit order) to the nearest point of their block's grid. Each of
/// `opts.refit_rounds` further rounds chooses the grids again from the targets the previous
/// round rounded (where the feedback moved the weights) and rounds again; each row keeps its
/// best round.
#[inline(always)]
fn act_order_tile<F: Grid>(
    fac: &Factor,
    w: &[f32],
    n: usize,
    cols: usize,
    opts: &Options,
) -> Result<Vec<F::Block>, (usize, Error)> {
    let nb = cols / F::BLOCK;
    let per_block = F::BLOCK / F::SUB * F::LEVELS;
    let perm = fac.perm();
    let sigma2: Vec<f32> = w.chunks_exact(cols).map(row_sigma2).collect();
    let mut best = vec![F::Block::zeroed(); n * nb];
    let mut best_loss = vec![f64::INFINITY; n];
    let mut blocks = vec![F::Block::zeroed(); n * nb];
    let mut grids = vec![0f32; n * nb * per_block];
    let mut source = w.to_vec();

    let mut acc = vec![0f32; n * cols];
    let mut delta = vec![0f32; n * BATCH];
    let mut codes = vec![0u8; n * cols];
    let mut loss = vec![0f64; n];
    for _ in 0..=opts.refit_rounds {
        for r in 0..n {
            let src = &source[r * cols..(r + 1) * cols];
            for b in 0..nb {
                let y = &mut blocks[r * nb + b];
                let range = b * F::BLOCK..(b + 1) * F::BLOCK;
                F::choose(&src[range.clone()], &fac.importance()[range], sigma2[r], y);
                let g = &mut grids[(r * nb + b) * per_block..(r * nb + b + 1) * per_block];
                tables::<F>(y, g);
                if g.iter().any(|v| !v.is_finite()) {
                    return Err((
                        r,
                        Error::InputStats {
                            reason: format!(
                                "a block scale overflows f16 in block {b}: the weights are too \
                                 large for this type"
                            ),
                        },
                    ));
                }
            }
        }
        acc.fill(0.0);
        loss.fill(0.0);
        for s in (0..cols).step_by(BATCH) {
            let se = (s + BATCH).min(cols);
            for r in 0..n {
                let wr = &w[r * cols..(r + 1) * cols];
                let accr = &mut acc[r * cols..(r + 1) * cols];
                let next = &mut source[r * cols..(r + 1) * cols];
                for p in s..se {
                    let k = perm[p];
                    let x = wr[k] + accr[p];
                    if !x.is_finite() {
                        return Err((r, diverged(k, x)));
                    }
                    next[k] = x;
                    let grid = &grids[r * nb * per_block + (k / F::SUB) * F::LEVELS..][..F::LEVELS];
                    let c = nearest(grid, F::FIRST, x);
                    codes[r * cols + k] = c as u8;
                    let g = f64::from(fac.rdiag(p) * (x - grid[c]));
                    loss[r] += g * g;
                    let d = wr[k] - grid[c];
                    delta[r * BATCH + p - s] = d;
                    for (a, &cc) in accr[p + 1..se].iter_mut().zip(fac.c_row(p)) {
                        *a += d * cc;
                    }
                }
            }
            if se < cols {
                push(fac, &mut acc, &delta, cols, s..se, s, se..cols);
            }
        }
        for r in 0..n {
            if loss[r] < best_loss[r] {
                best_loss[r] = loss[r];
                let cr = &codes[r * cols..(r + 1) * cols];
                for (b, c) in cr.chunks_exact(F::BLOCK).enumerate() {
                    let mut y = blocks[r * nb + b];
                    F::pack(c, &mut y);
                    best[r * nb + b] = y;
                }
            }
        }
    }
    Ok(best)
}

/// The error for a target that is no longer finite.
fn diverged(col: usize, x: f32) -> Error {
    Error::InputStats {
        reason: format!(
            "the error feedback diverged at column {col} (target {x}): H is too ill-conditioned; \
             raise the damping"
        ),
    }
}
