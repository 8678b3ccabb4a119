//! Matrix × vector and matrix × matrix over any weight dtype, split over rayon threads.
//!
//! As ggml does, an activation row is converted once per matmul to the format the weight's dot
//! kernel pairs with (`q8_0` for `q8_0/q4_0`, `q8_1` for `q4_1/q5_1`, `q8_k` for the k-quants,
//! plain f32 for float weights), then every weight row is dotted with it.
//!
//! Where the level has a panel kernel for the weight type (AVX-512: q4_0, q4_1, iq4_nl, q5_0,
//! q5_1, q8_0),
//! the model keeps those matrices also repacked in groups of 16 rows ([`Panels`]): one vector
//! lane per row, for one token and for tiles of 8 tokens alike (`Kernels::panel16_dot`, the
//! scalar reference's bits). Otherwise:
//!
//! Generation (one token) splits the rows over the threads, one dot per row (float weights: 4
//! rows at a time, for independent accumulator chains; on AMD rows of up to 4 KB one after the
//! other and no software prefetch); the one-token dots are those of `kernels_tuned` (AVX2's for
//! quantized weights at AVX-512 on AMD, with the same bits).
//! Prompts (`n` tokens) read every weight row from memory once and dot it with all the tokens
//! while it is in cache, with the best multi-token kernel the level has for the weight type:
//! - float weights: register tiles of 4 rows × 4 tokens (`Kernels::vec_dot_tiled`);
//! - the k-quants: at AVX-512, panels of 16 rows × 8 tokens unpacked per super-block from 8
//!   tokens on (on AMX, q2_k..q6_k and iq4_xs: × 16 tokens on the tile unit), else 1–2 rows
//!   against all tokens (`vec_dot_tiled`);
//! - q8_0 / q4_0 / q5_0 / iq4_nl without panels: the activations are also packed 4 tokens at a
//!   time (`pack_q8_0_x4`), and cache-sized blocks of rows meet each group of 4
//!   (`vec_dot4_packed`, else `vec_dot4`), the tokens themselves in cache-sized blocks.
//!
//! Every multi-token kernel gives each (row, token) the bits of the single dot, so a token's
//! logits do not depend on the batch it was computed in.
//!
//! The kernels are `llamapack-quantize`'s; this is the only module that calls them.

use std::collections::HashMap;

use llamapack_format::DType;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::{Matrix, Weights};
use llamapack_quantize::panel::{ROWS as PANEL_ROWS, repack_x16};
use llamapack_quantize::q8_0::{Q8_0_X4_BLOCK_BYTES, pack_q8_0_x4};
use llamapack_quantize::{Kernels, vec_dot_type};

/// Bytes of weight rows the 32-block path keeps in cache while every group of 4 tokens passes
/// over them: inside L2 with room for the activations (measured on SmolLM2, when f16 still took
/// this path: 32–64 KiB gave pp64 ~300 tok/s against ~285 for 8 KiB or 256 KiB).
const ROW_BLOCK_BYTES: usize = 64 * 1024;

/// Bytes of activation rows (in the dot format) the 32-block path takes through a whole chunk
/// of rows before the next ones: without blocks, each cache block of rows met every token
/// again, and 512 tokens' activations (8 MiB of f32 at 4096 values) streamed from memory for
/// every 64 KiB of weights; in blocks they stay in cache while the chunk's rows are read once
/// per block.
const ACT_BLOCK_BYTES: usize = 1024 * 1024;

/// Rows per rayon task: a few tasks per thread for load balance, never tiny ones.
fn chunk_rows(rows: usize) -> usize {
    let tasks = rayon::current_num_threads() * 8;
    rows.div_ceil(tasks).max(16)
}

/// Checks that matrices of `dtype` can be multiplied (before any forward pass runs).
pub(crate) fn check_supported(name: &str, dtype: DType) -> Result<()> {
    if dtype.info().storable {
        Ok(())
    } else {
        Err(Error::DType {
            tensor: name.into(),
            dtype,
            reason: "an activation format, not a weight format".into(),
        })
    }
}

/// Dequantizes one row (any dtype) into f32.
pub(crate) fn dequantize_row(k: &Kernels, dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    k.dequantize_row(dtype, src, dst)
        .map_err(|e| Error::Kernel {
            dtype,
            reason: e.to_string(),
        })
}

/// Bytes of activation scratch a batch of `n` rows of `cols` needs, for any weight dtype: the
/// converted rows, then (q8_0) the same rows packed 4 tokens at a time.
pub(crate) fn act_scratch_bytes(n: usize, cols: usize) -> usize {
    // every activation format a weight can be dotted with (the table's vec_dot_type column)
    let rows = DType::storable()
        .map(DType::vec_dot_type)
        .filter_map(|d| d.row_bytes(cols.next_multiple_of(d.block_len())))
        .max()
        .unwrap_or(0)
        * n;
    // the packed groups start on the next cache line, the block sums after them
    let packed = packed_group_bytes(cols.next_multiple_of(32)) * (n / 4);
    rows.next_multiple_of(64) + packed + 4 * n * cols.div_ceil(32)
}

/// Whether q8_0 activations also get their block sums (some weight dotted with q8_0 has a
/// panel kernel).
fn sums(k: &Kernels, dtype: DType, cols: usize) -> bool {
    dtype == DType::Q8_0
        && cols.is_multiple_of(32)
        && DType::storable().any(|d| d.vec_dot_type() == DType::Q8_0 && k.has_panel16(d))
}

/// Weight matrices kept, for the level's panel kernels (`Kernels::panel16_dot`), repacked in
/// groups of 16 rows (`panel::repack_x16`): the same bytes in another order, a second copy of
/// those matrices in memory. Looked up by the matrix's bytes, so weights from elsewhere (a
/// calibration's own quantization) simply take the row kernels.
#[derive(Debug, Default)]
pub(crate) struct Panels(HashMap<(usize, usize), Box<[u8]>>);

impl Panels {
    /// Repacks every matrix of `w` whose dtype has a panel kernel in `k` and whose rows are
    /// whole groups of 16 (in parallel, on the caller's pool), handing each matrix's original
    /// bytes to `release` once its panels are made.
    pub(crate) fn build(k: &Kernels, w: &Weights<'_>, release: &(dyn Fn(&[u8]) + Sync)) -> Panels {
        let mut all: Vec<&Matrix<'_>> = vec![&w.output];
        for l in &w.layers {
            all.extend([&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2, &l.w3]);
        }
        all.sort_by_key(|m| (m.bytes.as_ptr() as usize, m.bytes.len()));
        all.dedup_by_key(|m| (m.bytes.as_ptr() as usize, m.bytes.len()));
        let map = all
            .into_par_iter()
            .filter(|m| k.has_panel16(m.dtype) && m.rows.is_multiple_of(PANEL_ROWS) && m.rows > 0)
            .map(|m| {
                let nb = m.cols / 32;
                let group = PANEL_ROWS * m.row_bytes;
                let mut p = vec![0u8; m.bytes.len()].into_boxed_slice();
                p.par_chunks_mut(group)
                    .zip(m.bytes.par_chunks(group))
                    .for_each(|(o, i)| repack_x16(m.dtype, nb, i, o));
                release(m.bytes);
                ((m.bytes.as_ptr() as usize, m.bytes.len()), p)
            })
            .collect();
        Panels(map)
    }

    /// The panels of `w`, if it was repacked.
    fn get(&self, w: &Matrix<'_>) -> Option<&[u8]> {
        self.0
            .get(&(w.bytes.as_ptr() as usize, w.bytes.len()))
            .map(|b| &b[..])
    }
}

/// Offset of the packed groups after `rows_bytes` of converted rows: the next multiple of 64,
/// so that packed blocks (256 bytes each) start on cache lines when the scratch does.
fn packed_start(rows_bytes: usize) -> usize {
    rows_bytes.next_multiple_of(64)
}

/// Bytes of one group of 4 q8_0 rows of `cols` in `pack_q8_0_x4`'s layout.
fn packed_group_bytes(cols: usize) -> usize {
    cols / 32 * Q8_0_X4_BLOCK_BYTES
}

/// Whether q8_0 activations of `n` tokens are also packed (some weight has a packed kernel at
/// this level and there is at least one group of 4).
fn packs(k: &Kernels, dtype: DType, n: usize, cols: usize) -> bool {
    dtype == DType::Q8_0
        && n >= 4
        && cols.is_multiple_of(32)
        && (k.has_vec_dot4_packed(DType::Q8_0) || k.has_vec_dot4_packed(DType::Q4_0))
}

/// Activations of `n` tokens in the dot format of some weight dtype.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acts<'s> {
    /// The activation format (`vec_dot_type` of the weight).
    pub dtype: DType,
    /// Elements per row.
    pub cols: usize,
    /// Bytes per row.
    pub row_bytes: usize,
    /// Number of rows (tokens).
    pub n: usize,
    /// `n` rows.
    pub bytes: &'s [u8],
    /// The first `n / 4 · 4` rows in groups of 4 packed by `pack_q8_0_x4` (q8_0 only, when
    /// the level has packed kernels).
    pub packed: Option<&'s [u8]>,
    /// `n · cols / 32` block sums of the quants (q8_0 only, when the level has panel kernels).
    pub sums: Option<&'s [i32]>,
}

impl<'s> Acts<'s> {
    /// Converts `x` (`n` rows of `cols` f32) into `scratch` in `dtype`, the dot format of
    /// some weight (nothing to do for f32).
    pub fn convert(
        k: &Kernels,
        dtype: DType,
        x: &[f32],
        n: usize,
        cols: usize,
        scratch: &mut [u8],
    ) -> Result<()> {
        if dtype == DType::F32 {
            return Ok(());
        }
        let kerr = |reason: String| Error::Kernel { dtype, reason };
        let row_bytes = dtype
            .row_bytes(cols)
            .ok_or_else(|| kerr(format!("a row of {cols} is not a whole number of blocks")))?;
        let packed = if packs(k, dtype, n, cols) {
            packed_group_bytes(cols) * (n / 4)
        } else {
            0
        };
        let start = packed_start(n * row_bytes);
        let nsums = if sums(k, dtype, cols) {
            n * cols / 32
        } else {
            0
        };
        let (dst, pack) = scratch
            .get_mut(..start + packed + 4 * nsums)
            .ok_or_else(|| kerr(format!("activation scratch too small for {n}×{cols}")))?
            .split_at_mut(start);
        let (pack, sum) = pack.split_at_mut(packed);
        let (dst, pack) = (&mut dst[..n * row_bytes], pack);
        dst.par_chunks_mut(row_bytes)
            .zip(x[..n * cols].par_chunks(cols))
            .try_for_each(|(d, s)| k.quantize_row(dtype, s, d))
            .map_err(|e| kerr(e.to_string()))?;
        if nsums > 0 {
            let sum: &mut [i32] = bytemuck::cast_slice_mut(sum);
            for (s, blk) in sum.iter_mut().zip(dst.chunks_exact(34)) {
                *s = blk[2..].iter().map(|&q| i32::from(q as i8)).sum();
            }
        }
        if packed > 0 {
            let dst = &*dst;
            pack.par_chunks_mut(packed_group_bytes(cols))
                .enumerate()
                .for_each(|(g, out)| {
                    let r = |t: usize| &dst[(4 * g + t) * row_bytes..(4 * g + t + 1) * row_bytes];
                    pack_q8_0_x4([r(0), r(1), r(2), r(3)], out);
                });
        }
        Ok(())
    }

    /// Views activations already converted by [`Acts::convert`] with the same kernels (or `x`
    /// itself for f32).
    pub fn view(
        k: &Kernels,
        dtype: DType,
        x: &'s [f32],
        n: usize,
        cols: usize,
        scratch: &'s [u8],
    ) -> Acts<'s> {
        let (row_bytes, bytes, packed, sum) = if dtype == DType::F32 {
            (cols * 4, bytemuck::cast_slice(&x[..n * cols]), None, None)
        } else {
            let rb = dtype.row_bytes(cols).expect("checked by convert");
            let start = packed_start(n * rb);
            let plen = if packs(k, dtype, n, cols) {
                packed_group_bytes(cols) * (n / 4)
            } else {
                0
            };
            let packed = (plen > 0).then(|| &scratch[start..start + plen]);
            let sum = sums(k, dtype, cols).then(|| {
                let at = start + plen;
                bytemuck::cast_slice(&scratch[at..at + 4 * n * cols / 32])
            });
            (rb, &scratch[..n * rb], packed, sum)
        };
        Acts {
            dtype,
            cols,
            row_bytes,
            n,
            bytes,
            packed,
            sums: sum,
        }
    }

    fn row(&self, t: usize) -> &'s [u8] {
        &self.bytes[t * self.row_bytes..(t + 1) * self.row_bytes]
    }
}

/// Multiplies the `n` rows of `x` (`cols` wide) by each matrix, writing each product to its
/// output. Consecutive matrices whose dot format is the same share one conversion of `x`
/// (q, k and v; w1 and w3).
#[allow(clippy::too_many_arguments)]
pub(crate) fn project(
    k: &Kernels,
    panels: &Panels,
    x: &[f32],
    n: usize,
    cols: usize,
    scratch: &mut [u8],
    tr: &mut [f32],
    targets: &mut [(&Matrix<'_>, &mut [f32])],
) -> Result<()> {
    let mut converted = None;
    for (w, out) in targets.iter_mut() {
        let dtype = vec_dot_type(w.dtype);
        if converted != Some(dtype) {
            Acts::convert(k, dtype, x, n, cols, scratch)?;
            converted = Some(dtype);
        }
        let a = Acts::view(k, dtype, x, n, cols, scratch);
        // q8_0 activations carry their block sums beside them; q8_1 blocks hold theirs
        let sums = a.sums.or((dtype != DType::Q8_0).then_some(&[][..]));
        match panels.get(w).zip(sums) {
            Some((p, s)) if k.has_panel16(w.dtype) => matmul_panels(k, w, p, &a, s, out),
            _ => matmul(k, w, &a, out, tr),
        }
    }
    Ok(())
}

/// Panels per [`Kernels::panel16_dot`] call of the batched path: what the kernel does once per
/// call for the tokens (the AMX kernels convert every token's block scales) serves this many
/// panels, and the call's `[panel][token][16 rows]` products (128 rows × the tokens) stay
/// cache-sized for their copy into `out`.
const PANELS_PER_CALL: usize = 8;

/// [`matmul`] of a matrix kept in 16-row panels (`p`, `Panels`), with the activations' block
/// sums `s`: each task takes whole groups of 16 rows; the kernels' `[token][16 rows]` tiles are
/// copied into the task's pieces of `out` ([`column_pieces`]).
fn matmul_panels(k: &Kernels, w: &Matrix<'_>, p: &[u8], a: &Acts<'_>, s: &[i32], out: &mut [f32]) {
    let (rows, n) = (w.rows, a.n);
    let group = PANEL_ROWS * w.row_bytes;
    let chunk = chunk_rows(rows).next_multiple_of(PANEL_ROWS);
    // the panels of rows r0..r0 + len (whole groups of 16)
    let panels = |r0: usize, len: usize| &p[r0 / PANEL_ROWS * group..][..len / PANEL_ROWS * group];
    if n == 1 {
        // one token: the products of consecutive panels are the rows in order
        out[..rows]
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, o)| {
                k.panel16_dot(w.dtype, w.cols, panels(c * chunk, o.len()), a.bytes, s, o);
            });
        return;
    }
    column_pieces(out, rows, n, chunk)
        .into_par_iter()
        .enumerate()
        .for_each(|(c, mut pieces)| {
            let task_rows = pieces[0].len();
            let call_rows = PANELS_PER_CALL * PANEL_ROWS;
            let mut tile = vec![0f32; call_rows.min(task_rows) * n];
            for q0 in (0..task_rows).step_by(call_rows) {
                let len = call_rows.min(task_rows - q0);
                let tile = &mut tile[..len * n];
                k.panel16_dot(
                    w.dtype,
                    w.cols,
                    panels(c * chunk + q0, len),
                    a.bytes,
                    s,
                    tile,
                );
                for (g, tg) in tile.chunks_exact(PANEL_ROWS * n).enumerate() {
                    let r = q0 + g * PANEL_ROWS;
                    for (piece, v) in pieces.iter_mut().zip(tg.chunks_exact(PANEL_ROWS)) {
                        piece[r..r + PANEL_ROWS].copy_from_slice(v);
                    }
                }
            }
        });
}

/// `out` (`[n, rows]`) cut into what each task of `chunk` rows writes: for task `c`, the
/// pieces `out[t][c·chunk..(c + 1)·chunk]` (the last task's shorter) of every token `t`, in
/// token order — so that a task stores its products into `out` while they are in its cache,
/// instead of a transpose of the whole `[rows, n]` scratch afterwards.
fn column_pieces(out: &mut [f32], rows: usize, n: usize, chunk: usize) -> Vec<Vec<&mut [f32]>> {
    let tasks = rows.div_ceil(chunk);
    let mut pieces: Vec<Vec<&mut [f32]>> = (0..tasks).map(|_| Vec::with_capacity(n)).collect();
    for row in out[..n * rows].chunks_mut(rows) {
        for (c, p) in row.chunks_mut(chunk).enumerate() {
            pieces[c].push(p);
        }
    }
    pieces
}

/// Stores a task's products `ys` (`[task rows, n]`: row after row, every token of a row
/// together) into its `pieces` (piece `t` = token `t`'s outputs of those rows), in blocks of
/// 16 tokens × 64 rows (64 cache lines of `ys`, in L1 while each of the 16 pieces takes its
/// 64 values in a row).
fn scatter(ys: &[f32], n: usize, pieces: &mut [&mut [f32]]) {
    const T: usize = 16;
    const R: usize = 64;
    let task_rows = ys.len() / n;
    for t0 in (0..n).step_by(T) {
        for r0 in (0..task_rows).step_by(R) {
            let r1 = task_rows.min(r0 + R);
            for (j, piece) in pieces[t0..n.min(t0 + T)].iter_mut().enumerate() {
                let src = ys[r0 * n + t0 + j..].iter().step_by(n);
                for (y, &v) in piece[r0..r1].iter_mut().zip(src) {
                    *y = v;
                }
            }
        }
    }
}

/// `out[t][r] = W[r] · x[t]` for the `a.n` tokens: `out` is `[a.n, w.rows]`.
///
/// One token is a matrix × vector product split by rows. Several tokens go through `tr`, a
/// `[w.rows, a.n]` scratch that each task fills for its rows (a cache-sized block of rows
/// dotted with every token, 4 tokens at a time, before the next block), which the task then
/// stores into its pieces of `out` while they are in its cache ([`scatter`]).
pub(crate) fn matmul(k: &Kernels, w: &Matrix<'_>, a: &Acts<'_>, out: &mut [f32], tr: &mut [f32]) {
    matmul_blocked(k, w, a, out, tr, ROW_BLOCK_BYTES, ACT_BLOCK_BYTES);
}

/// [`matmul`] with rows blocked by `block_bytes` of weights and tokens by `act_block_bytes` of
/// activations in the batched 32-block / float path.
fn matmul_blocked(
    k: &Kernels,
    w: &Matrix<'_>,
    a: &Acts<'_>,
    out: &mut [f32],
    tr: &mut [f32],
    block_bytes: usize,
    act_block_bytes: usize,
) {
    debug_assert_eq!(a.dtype, vec_dot_type(w.dtype));
    debug_assert_eq!(a.cols, w.cols);
    let (rows, n) = (w.rows, a.n);
    let chunk = chunk_rows(rows);
    if n == 1 {
        let act = a.row(0);
        // float weights: 4 rows at a time (independent accumulator chains); quantized ones
        // row by row with the table's one-token dot (`vec_dot_tiled` of one token is that
        // too, but would bypass `kernels_tuned`'s choice of it)
        let tiled = k.has_vec_dot_tiled(w.dtype) && w.dtype.block_len() == 1;
        out[..rows]
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, o)| {
                let first = c * chunk;
                if tiled {
                    // several rows at once (independent accumulator chains).
                    let bytes = &w.bytes[first * w.row_bytes..(first + o.len()) * w.row_bytes];
                    k.vec_dot_tiled(w.dtype, w.cols, bytes, act, o);
                    return;
                }
                for (j, y) in o.iter_mut().enumerate() {
                    *y = k.vec_dot(w.dtype, w.cols, w.row(first + j), act);
                }
            });
        return;
    }
    let packed = a.packed.filter(|_| k.has_vec_dot4_packed(w.dtype));
    let quads = if packed.is_some() || k.has_vec_dot4(w.dtype) {
        n / 4
    } else {
        0
    };
    let group = packed_group_bytes(w.cols);
    let tiled = packed.is_none() && k.has_vec_dot_tiled(w.dtype);
    let block_rows = (block_bytes / w.row_bytes.max(1)).clamp(1, chunk);
    let tr = &mut tr[..rows * n];
    tr.par_chunks_mut(chunk * n)
        .zip(column_pieces(out, rows, n, chunk))
        .enumerate()
        .for_each(|(c, (ys, mut pieces))| {
            let first = c * chunk;
            if tiled {
                // float weights and k-quants: several dots per loaded vector.
                let rows = ys.len() / n;
                let bytes = &w.bytes[first * w.row_bytes..(first + rows) * w.row_bytes];
                k.vec_dot_tiled(w.dtype, w.cols, bytes, a.bytes, ys);
            } else {
                // Tokens in blocks of about `act_block_bytes` of activations, and for each
                // block, rows in blocks that stay in cache while the block's tokens pass over
                // them; tokens 4 at a time where a multi-token kernel exists (each weight
                // block unpacked once for the 4), so the 4 activation rows stay in L1 while
                // the row block streams past them.
                let block_quads = (act_block_bytes / (4 * a.row_bytes).max(1)).max(1);
                for q0 in (0..quads).step_by(block_quads) {
                    let q1 = quads.min(q0 + block_quads);
                    for (b, yb) in ys.chunks_mut(block_rows * n).enumerate() {
                        let r0 = first + b * block_rows;
                        for q in q0..q1 {
                            let t = 4 * q;
                            let acts = [a.row(t), a.row(t + 1), a.row(t + 2), a.row(t + 3)];
                            let p = packed.map(|p| &p[q * group..(q + 1) * group]);
                            for (j, yr) in yb.chunks_exact_mut(n).enumerate() {
                                let row = w.row(r0 + j);
                                let y4 = match p {
                                    Some(p) => k.vec_dot4_packed(w.dtype, w.cols, row, p),
                                    None => k.vec_dot4(w.dtype, w.cols, row, acts),
                                };
                                yr[t..t + 4].copy_from_slice(&y4);
                            }
                        }
                    }
                }
                // the last n % 4 tokens (or all, without a multi-token kernel): few enough
                // to stay in cache
                for (b, yb) in ys.chunks_mut(block_rows * n).enumerate() {
                    let r0 = first + b * block_rows;
                    for t in 4 * quads..n {
                        let act = a.row(t);
                        for (j, yr) in yb.chunks_exact_mut(n).enumerate() {
                            yr[t] = k.vec_dot(w.dtype, w.cols, w.row(r0 + j), act);
                        }
                    }
                }
            }
            scatter(ys, n, &mut pieces);
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;
    use llamapack_quantize::{Level, kernels_for};

    /// Every weight format, every level, 1, 5 and 9 tokens, row blocks of 1, 3 and many rows:
    /// each output equals the f64 dot of the dequantized weight row with the dequantized
    /// (converted) activation row, and keeps the bits of the one-token product.
    #[test]
    fn matmul_equals_dequantized_products() {
        let (rows, cols) = (40, 512);
        let mut rng = Rng::new(11);
        let w32: Vec<f32> = (0..rows * cols).map(|_| rng.next_f32()).collect();
        let x: Vec<f32> = (0..9 * cols).map(|_| rng.next_f32()).collect();
        let scalar = kernels_for(Level::Scalar).unwrap();
        for dtype in llamapack_quantize::WEIGHT_TYPES {
            let rb = dtype.row_bytes(cols).unwrap();
            let mut bytes = vec![0u8; rows * rb];
            for (r, b) in w32.chunks(cols).zip(bytes.chunks_mut(rb)) {
                scalar.quantize_row(dtype, r, b).unwrap();
            }
            let w = Matrix {
                name: "w",
                dtype,
                rows,
                cols,
                row_bytes: rb,
                bytes: &bytes,
            };
            let vdt = vec_dot_type(dtype);
            let wf: Vec<Vec<f32>> = (0..rows)
                .map(|r| {
                    let mut wr = vec![0f32; cols];
                    scalar.dequantize_row(dtype, w.row(r), &mut wr).unwrap();
                    wr
                })
                .collect();
            for level in Level::ALL.into_iter().filter(|l| l.is_supported()) {
                let k = kernels_for(level).unwrap();
                // One token at a time: the reference bits.
                let single: Vec<Vec<f32>> = (0..9)
                    .map(|t| {
                        let xt = &x[t * cols..(t + 1) * cols];
                        let mut s1 = vec![0u8; act_scratch_bytes(1, cols)];
                        Acts::convert(k, vdt, xt, 1, cols, &mut s1).unwrap();
                        let mut o = vec![0f32; rows];
                        matmul(
                            k,
                            &w,
                            &Acts::view(k, vdt, xt, 1, cols, &s1),
                            &mut o,
                            &mut [],
                        );
                        o
                    })
                    .collect();
                // (the activations of 9 tokens also in token blocks of 4, one group each)
                let act_rb = vdt.row_bytes(cols).unwrap();
                for (n, block_bytes, act_block) in [
                    (1, ROW_BLOCK_BYTES, ACT_BLOCK_BYTES),
                    (5, rb, ACT_BLOCK_BYTES),
                    (9, 3 * rb, ACT_BLOCK_BYTES),
                    (9, ROW_BLOCK_BYTES, ACT_BLOCK_BYTES),
                    (9, 3 * rb, 4 * act_rb),
                    (9, rb, 4 * act_rb),
                ] {
                    let mut scratch = vec![0u8; act_scratch_bytes(n, cols)];
                    Acts::convert(k, vdt, &x, n, cols, &mut scratch).unwrap();
                    let mut tr = vec![0f32; rows * n];
                    let mut out = vec![0f32; rows * n];
                    let a = Acts::view(k, vdt, &x, n, cols, &scratch);
                    matmul_blocked(k, &w, &a, &mut out, &mut tr, block_bytes, act_block);
                    for t in 0..n {
                        let mut xa = vec![0f32; cols];
                        scalar.dequantize_row(vdt, a.row(t), &mut xa).unwrap();
                        for r in 0..rows {
                            let exact: f64 =
                                wf[r].iter().zip(&xa).map(|(p, q)| f64::from(p * q)).sum();
                            let mag: f64 = wf[r]
                                .iter()
                                .zip(&xa)
                                .map(|(p, q)| f64::from((p * q).abs()))
                                .sum();
                            // q8_1 activations carry their block sums as f16 (ggml's `s`),
                            // which the q4_1/q5_1 dots use for the minimum's term.
                            let s_term: f64 = if vdt == DType::Q8_1 {
                                wf[r]
                                    .chunks(32)
                                    .zip(xa.chunks(32))
                                    .map(|(wb, ab)| {
                                        let m =
                                            wb.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
                                        let s: f64 = ab.iter().map(|v| f64::from(*v)).sum();
                                        m * s.abs() * 2f64.powi(-10)
                                    })
                                    .sum()
                            } else {
                                0.0
                            };
                            let got = out[t * rows + r];
                            assert!(
                                (f64::from(got) - exact).abs() <= 1e-5 * mag + s_term,
                                "{dtype} {level:?} n={n} t={t} r={r}: {got} vs {exact}"
                            );
                            assert_eq!(
                                got.to_bits(),
                                single[t][r].to_bits(),
                                "{dtype} {level:?} n={n} block {block_bytes} / {act_block} t={t} r={r}"
                            );
                        }
                    }
                }
            }
        }
    }
}
