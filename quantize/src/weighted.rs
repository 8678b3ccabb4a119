//! Importance-weighted encoders: ggml's `quantize_<type>(src, dst, nrow, n_per_row, imatrix)`
//! with a non-NULL imatrix (its `quantize_row_<type>_impl`), one row at a time, byte for byte.
//!
//! Each encoder takes one row `x`, its blocks `y` and `qw`, one importance weight per value (the
//! imatrix's E\[x²\] of the value's column). Where ggml uses a row statistic (σ² of q4_0, q4_1,
//! q5_0, q5_1) it is taken over the whole of `x`, so a row must be encoded on its own; the
//! k-quants take σ² per super-block of 256 and do not depend on the rest of the row.
//!
//! The f32 operation order follows the C code (no fused multiply-add, ggml's `nearest_int`, C's
//! integer truncations), as everywhere in this crate.

use half::f16;
use llamapack_format::blocks::{
    BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0,
    BlockQ5_1, BlockQ5K, BlockQ6K, QK_K, QK4_NL,
};

use crate::kquant_search::{GROUP_MAX_EPS, Qkx2, make_qkx2_quants, make_qx_quants};
use crate::rounding::nearest_int;

/// ggml's `make_qkx3_quants` as its weighted encoders call it (weights given, rmin −0.9,
/// rdelta 0.05, 36 steps, squared error). With weights given it is `make_qkx2_quants` with these
/// parameters: the two differ only in `max <= min` against `max == min`, the same for finite
/// input (the min is clamped to ≤ 0 and the max is ≥ the first value, so `max ≥ min`).
pub(crate) const fn qkx3(nmax: i32) -> Qkx2 {
    Qkx2 {
        nmax,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    }
}

/// Checks the lengths every weighted encoder relies on.
fn check_lengths(name: &str, x: &[f32], blocks: usize, block_len: usize, qw: &[f32]) {
    assert_eq!(
        x.len(),
        blocks * block_len,
        "{name}: row length must be {block_len} × blocks"
    );
    assert_eq!(qw.len(), x.len(), "{name}: one importance weight per value");
}

/// `w = qw·sqrt(σ² + x²)`, ggml's weights from the imatrix.
#[inline(always)]
fn sigma_weights(qw: &[f32], x: &[f32], sigma2: f32, w: &mut [f32]) {
    for ((w, &q), &v) in w.iter_mut().zip(qw).zip(x) {
        *w = q * (sigma2 + v * v).sqrt();
    }
}

/// `Σx²` in order from 0.
#[inline(always)]
fn sum_squares(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// `Σw` in order from 0.
#[inline(always)]
fn sum(w: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in w {
        s += v;
    }
    s
}

/// ggml's `make_qp_quants`: quants `l` in 0..=nmax (no offset) of the non-negative values `x`
/// (the sub-block scales or mins of q2_k, q4_k, q5_k) and the scale minimizing
/// `Σ qw·(x − scale·l)²`: the best of 9 inverse scales `(nmax + 0.1·is)/max`, then up to 5
/// passes of coordinate descent on each quant. Quants are stored as C's `uint8_t` stores them
/// (a negative value wraps), and read back from there, as in ggml.
#[allow(clippy::needless_range_loop)] // indexes x, l and qw in lockstep, as ggml does
pub(crate) fn make_qp_quants(nmax: i32, x: &[f32], l: &mut [u8], qw: &[f32]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    for &v in x {
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / max;
    for i in 0..n {
        l[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * f32::from(l[i]);
        best_mse += qw[i] * diff * diff;
    }
    for is in -4..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1 * is as f32 + nmaxf) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let q = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * q as f32;
            mse += qw[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).min(nmax);
        l[i] = q as u8;
        let qf = q as f32;
        sumlx += qw[i] * x[i] * qf;
        suml2 += qw[i] * qf * qf;
    }
    for _ in 0..5 {
        let mut changed = false;
        for i in 0..n {
            let w = qw[i];
            let li = f32::from(l[i]);
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != i32::from(l[i]) {
                    let nf = new_l as f32;
                    slx += w * x[i] * nf;
                    sl2 += w * nf * nf;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// ggml's `quantize_row_q6_K_impl` with an imatrix: q6_k's encoder with the raw importance
/// weights `qw` in `make_qx_quants` (ggml leaves its `sqrt(σ² + x²)` factor commented out).
pub fn quantize_q6_k(x: &[f32], y: &mut [BlockQ6K], qw: &[f32]) {
    check_lengths("q6_k", x, y.len(), QK_K, qw);
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    for ((xb, qb), yb) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(y) {
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for ib in 0..QK_K / 16 {
            let r = 16 * ib..16 * ib + 16;
            let s = make_qx_quants(32, &xb[r.clone()], &mut l[r.clone()], Some(&qb[r]));
            scales[ib] = s;
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        crate::q6_k::finish_block(xb, &scales, max_scale, max_abs_scale, &mut l, yb);
    }
}

/// The first half of ggml's weighted q4_k and q5_k encoders on one super-block: σ² =
/// 2·Σx²/256, per sub-block of 32 the weights `qw·sqrt(σ² + x²)`, their sum, and
/// `make_qkx3_quants(nmax)`; then `make_qp_quants(63)` of the 8 scales and of the 8 mins,
/// weighted by the sums. Returns `(d, dmin, Ls, Lm)`; `l` gets the sub-block quants.
fn search_sub32_weighted(
    nmax: i32,
    xb: &[f32],
    qb: &[f32],
    l: &mut [u8; QK_K],
) -> (f32, f32, [u8; 8], [u8; 8]) {
    let sigma2 = 2.0 * sum_squares(xb) / QK_K as f32;
    let (mut scales, mut mins, mut sw) = ([0f32; 8], [0f32; 8], [0f32; 8]);
    let mut weights = [0f32; 32];
    let mut laux = [0u8; 32];
    for j in 0..QK_K / 32 {
        let r = 32 * j..32 * j + 32;
        sigma_weights(&qb[r.clone()], &xb[r.clone()], sigma2, &mut weights);
        sw[j] = sum(&weights);
        (scales[j], mins[j]) =
            make_qkx2_quants(qkx3(nmax), &xb[r.clone()], &weights, &mut l[r], &mut laux);
    }
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let d = make_qp_quants(63, &scales, &mut ls, &sw);
    let m = make_qp_quants(63, &mins, &mut lm, &sw);
    (d, m, ls, lm)
}

/// Packs the 8 scale and min quants as `get_scale_min_k4` reads them, with C's `uint8_t`
/// arithmetic (bits shifted past the byte are lost).
fn pack_k4(ls: &[u8; 8], lm: &[u8; 8], out: &mut [u8; 12]) {
    for j in 0..QK_K / 32 {
        let (s, m) = (ls[j], lm[j]);
        if j < 4 {
            out[j] = s;
            out[j + 4] = m;
        } else {
            out[j + 4] = (s & 0x0f) | ((m & 0x0f) << 4);
            out[j - 4] |= (s >> 4) << 6;
            out[j] |= (m >> 4) << 6;
        }
    }
}

/// ggml's `quantize_row_q4_K_impl` with an imatrix: [`make_qp_quants`]-fitted 6-bit scales and
/// mins (stored without a clamp to 63, as ggml's q4_k does), then every value re-quantized
/// against them.
pub fn quantize_q4_k(x: &[f32], y: &mut [BlockQ4K], qw: &[f32]) {
    check_lengths("q4_k", x, y.len(), QK_K, qw);
    let mut l = [0u8; QK_K];
    for ((xb, qb), yb) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(y) {
        let (d, m, ls, lm) = search_sub32_weighted(15, xb, qb, &mut l);
        pack_k4(&ls, &lm, &mut yb.scales);
        yb.d = f16::from_f32(d);
        yb.dmin = f16::from_f32(m);
        crate::q4_k::requantize_sub32(xb, &yb.scales, yb.d, yb.dmin, 15, &mut l);
        crate::q4_k::pack_quants(&l, yb);
    }
}

/// ggml's `quantize_row_q5_K_impl` with an imatrix: as [`quantize_q4_k`] with nmax 31 and the
/// scale and min quants clamped to 63 before packing.
pub fn quantize_q5_k(x: &[f32], y: &mut [BlockQ5K], qw: &[f32]) {
    check_lengths("q5_k", x, y.len(), QK_K, qw);
    let mut l = [0u8; QK_K];
    for ((xb, qb), yb) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(y) {
        let (d, m, mut ls, mut lm) = search_sub32_weighted(31, xb, qb, &mut l);
        for v in ls.iter_mut().chain(lm.iter_mut()) {
            *v = (*v).min(63);
        }
        pack_k4(&ls, &lm, &mut yb.scales);
        yb.d = f16::from_f32(d);
        yb.dmin = f16::from_f32(m);
        crate::q4_k::requantize_sub32(xb, &yb.scales, yb.d, yb.dmin, 31, &mut l);
        crate::q5_k::pack_quants(&l, yb);
    }
}

/// ggml's `quantize_row_q3_K_impl` with an imatrix: σ² = 2·Σx²/256, per sub-block of 16
/// `make_qx_quants(nmax 4)` with weights `qw·sqrt(σ² + x²)`, then the 16 scales themselves by
/// `make_qx_quants(nmax 32)` weighted by the sub-blocks' weight sums (6-bit signed, stored
/// `+32`; `d` is its scale), then every value re-quantized against them.
pub fn quantize_q3_k(x: &[f32], y: &mut [BlockQ3K], qw: &[f32]) {
    check_lengths("q3_k", x, y.len(), QK_K, qw);
    let mut l = [0i8; QK_K];
    let mut weight = [0f32; 16];
    for ((xb, qb), yb) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(y) {
        let sigma2 = 2.0 * sum_squares(xb) / QK_K as f32;
        let (mut scales, mut sw) = ([0f32; 16], [0f32; 16]);
        for j in 0..QK_K / 16 {
            let r = 16 * j..16 * j + 16;
            sigma_weights(&qb[r.clone()], &xb[r.clone()], sigma2, &mut weight);
            sw[j] = sum(&weight);
            scales[j] = make_qx_quants(4, &xb[r.clone()], &mut l[r], Some(&weight));
        }
        yb.scales = [0; 12];
        let mut ls = [0i8; 16];
        let d_block = make_qx_quants(32, &scales, &mut ls, Some(&sw));
        for (j, &q) in ls.iter().enumerate() {
            let q = i32::from(q);
            if j < 8 {
                yb.scales[j] = (q & 0x0f) as u8;
            } else {
                yb.scales[j - 8] |= ((q & 0x0f) << 4) as u8;
            }
            yb.scales[j % 4 + 8] |= ((q >> 4) << (2 * (j / 4))) as u8;
        }
        yb.d = f16::from_f32(d_block);
        crate::q3_k::requantize_pack(xb, &mut l, yb);
    }
}

/// The row statistic of ggml's weighted q4_0, q4_1, q5_0 and q5_1 encoders: σ² = Σx²/n over
/// the whole row.
fn row_sigma2(x: &[f32]) -> f32 {
    sum_squares(x) / x.len() as f32
}

/// The shared loop of the weighted q4_0 and q5_0 encoders: per block of 32, weights
/// `qw·sqrt(σ² + x²)` (σ² over the row) and `make_qx_quants(nmax)`; `emit` gets each block's
/// scale and quants (stored `+nmax`).
fn symmetric_blocks(x: &[f32], qw: &[f32], nmax: i32, mut emit: impl FnMut(usize, f32, &[u8; 32])) {
    let sigma2 = row_sigma2(x);
    let mut weight = [0f32; 32];
    let mut l = [0i8; 32];
    for (ib, (xb, qb)) in x.chunks_exact(32).zip(qw.chunks_exact(32)).enumerate() {
        sigma_weights(qb, xb, sigma2, &mut weight);
        let d = make_qx_quants(nmax, xb, &mut l, Some(&weight));
        emit(ib, d, &l.map(|q| q as u8));
    }
}

/// The shared loop of the weighted q4_1 and q5_1 encoders: per block of 32, weights
/// `qw·sqrt(σ² + x²)` (σ² over the row) and `make_qkx3_quants(nmax)`; `emit` gets each block's
/// scale, its min (`x ≈ d·l − min`) and the quants.
fn affine_blocks(
    x: &[f32],
    qw: &[f32],
    nmax: i32,
    mut emit: impl FnMut(usize, f32, f32, &[u8; 32]),
) {
    let sigma2 = row_sigma2(x);
    let mut weight = [0f32; 32];
    let (mut l, mut laux) = ([0u8; 32], [0u8; 32]);
    for (ib, (xb, qb)) in x.chunks_exact(32).zip(qw.chunks_exact(32)).enumerate() {
        sigma_weights(qb, xb, sigma2, &mut weight);
        let (d, the_min) = make_qkx2_quants(qkx3(nmax), xb, &weight, &mut l, &mut laux);
        emit(ib, d, the_min, &l);
    }
}

/// ggml's `quantize_row_q4_0_impl` with an imatrix: `make_qx_quants(nmax 8)` per block with
/// weights `qw·sqrt(σ² + x²)`, σ² the mean square of the whole row `x`.
pub fn quantize_q4_0(x: &[f32], y: &mut [BlockQ4_0], qw: &[f32]) {
    check_lengths("q4_0", x, y.len(), 32, qw);
    symmetric_blocks(x, qw, 8, |ib, d, l| {
        y[ib].d = f16::from_f32(d);
        for j in 0..16 {
            y[ib].qs[j] = l[j] | (l[j + 16] << 4);
        }
    });
}

/// ggml's `quantize_row_q5_0_impl` with an imatrix: as [`quantize_q4_0`] with nmax 16.
pub fn quantize_q5_0(x: &[f32], y: &mut [BlockQ5_0], qw: &[f32]) {
    check_lengths("q5_0", x, y.len(), 32, qw);
    symmetric_blocks(x, qw, 16, |ib, d, l| {
        y[ib].d = f16::from_f32(d);
        y[ib].qh = crate::q5_0::pack5(l, &mut y[ib].qs);
    });
}

/// ggml's `quantize_row_q4_1_impl` with an imatrix: `make_qkx3_quants(nmax 15)` per block
/// with weights `qw·sqrt(σ² + x²)`, σ² the mean square of the whole row `x`.
pub fn quantize_q4_1(x: &[f32], y: &mut [BlockQ4_1], qw: &[f32]) {
    check_lengths("q4_1", x, y.len(), 32, qw);
    affine_blocks(x, qw, 15, |ib, d, the_min, l| {
        y[ib].d = f16::from_f32(d);
        y[ib].m = f16::from_f32(-the_min);
        for j in 0..16 {
            y[ib].qs[j] = l[j] | (l[j + 16] << 4);
        }
    });
}

/// ggml's `quantize_row_q5_1_impl` with an imatrix: as [`quantize_q4_1`] with nmax 31.
pub fn quantize_q5_1(x: &[f32], y: &mut [BlockQ5_1], qw: &[f32]) {
    check_lengths("q5_1", x, y.len(), 32, qw);
    affine_blocks(x, qw, 31, |ib, d, the_min, l| {
        y[ib].d = f16::from_f32(d);
        y[ib].m = f16::from_f32(-the_min);
        y[ib].qh = crate::q5_0::pack5(l, &mut y[ib].qs);
    });
}

/// ggml's `quantize_row_q2_K_impl` (imatrix required there): σ² = Σx²/256 per super-block, per
/// sub-block of 16 the weights `qw·sqrt(σ² + x²)` and `make_qkx3_quants(nmax 3)`, then
/// [`make_qp_quants`]`(15)` of the 16 scales and of the 16 mins weighted by the sub-blocks'
/// weight sums (4-bit, `d` and `dmin` their scales), then every value re-quantized against
/// them.
pub fn quantize_q2_k(x: &[f32], y: &mut [BlockQ2K], qw: &[f32]) {
    check_lengths("q2_k", x, y.len(), QK_K, qw);
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weight = [0f32; 16];
    for ((xb, qb), yb) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(y) {
        let sigma2 = sum_squares(xb) / QK_K as f32;
        let (mut scales, mut mins, mut sw) = ([0f32; 16], [0f32; 16], [0f32; 16]);
        for j in 0..QK_K / 16 {
            let r = 16 * j..16 * j + 16;
            sigma_weights(&qb[r.clone()], &xb[r.clone()], sigma2, &mut weight);
            sw[j] = sum(&weight);
            (scales[j], mins[j]) =
                make_qkx2_quants(qkx3(3), &xb[r.clone()], &weight, &mut l[r], &mut laux);
        }
        let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
        let dm = make_qp_quants(15, &scales, &mut ls, &sw);
        let mm = make_qp_quants(15, &mins, &mut lm, &sw);
        yb.d = f16::from_f32(dm);
        yb.dmin = f16::from_f32(mm);
        for ((sc, &s), &m) in yb.scales.iter_mut().zip(&ls).zip(&lm) {
            *sc = s | (m << 4);
        }
        crate::q2_k::requantize_pack(xb, &mut l, yb);
    }
}

/// The σ² of ggml's weighted iq4 encoders over a super-block (32 values for iq4_nl, 256 for
/// iq4_xs): `Σx² · (2/n)`, in that order.
fn iq4_sigma2(xb: &[f32]) -> f32 {
    sum_squares(xb) * (2.0 / xb.len() as f32)
}

/// ggml's `quantize_iq4_nl` with an imatrix: per block of 32, σ² over the block, weights
/// `qw·sqrt(σ² + x²)` in the 15-trial scale search, then every index recomputed from the
/// chosen scale.
pub fn quantize_iq4_nl(x: &[f32], y: &mut [BlockIq4Nl], qw: &[f32]) {
    check_lengths("iq4_nl", x, y.len(), QK4_NL, qw);
    let mut l = [crate::iq4_nl::ZERO_INDEX; QK4_NL];
    let mut weight = [0f32; QK4_NL];
    for ((xb, qb), yb) in x.chunks_exact(QK4_NL).zip(qw.chunks_exact(QK4_NL)).zip(y) {
        sigma_weights(qb, xb, iq4_sigma2(xb), &mut weight);
        crate::iq4_nl::encode_block_trials(xb, Some(&weight), &mut l, yb);
    }
}

/// ggml's `quantize_iq4_xs` with an imatrix: σ² over the super-block of 256, per sub-block of
/// 32 the weights `qw·sqrt(σ² + x²)` in the 15-trial scale search, then the 6-bit sub-block
/// scales and every index recomputed against them.
pub fn quantize_iq4_xs(x: &[f32], y: &mut [BlockIq4Xs], qw: &[f32]) {
    check_lengths("iq4_xs", x, y.len(), QK_K, qw);
    let mut l = [0u8; 32];
    let mut weight = [0f32; 32];
    for ((xb, qb), yb) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(y) {
        let sigma2 = iq4_sigma2(xb);
        let mut scales = [0f32; 8];
        for (ib, s) in scales.iter_mut().enumerate() {
            let r = 32 * ib..32 * ib + 32;
            sigma_weights(&qb[r.clone()], &xb[r.clone()], sigma2, &mut weight);
            *s = crate::iq4_nl::search_block_weighted(&xb[r], Some(&weight), 7, &mut l)
                .unwrap_or(0.0);
        }
        crate::iq4_xs::finish_block(xb, &scales, yb);
    }
}
