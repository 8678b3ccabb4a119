//! Importance-weighted encoders: ggml's `quantize_<type>(src, dst, nrow, n_per_row, imatrix)`
//! with a non-NULL imatrix (its `quantize_row_<type>_impl`), one row at a time, byte for byte.
//!
//! Each encoder takes whole rows `x` (one or more, each `qw.len()` values), their blocks `y`
//! and `qw`, one importance weight per column (the imatrix's E\[x²\] of the column). Where ggml
//! uses a row statistic (σ² of q4_0, q4_1, q5_0, q5_1) it is taken over each row; the k-quants
//! take σ² per super-block of 256, iq4_nl per block. The encoders of blocks of 32 run their lanes
//! over the blocks of all the rows given, so a short row (SmolLM2's 18 blocks) does not leave
//! lanes empty; every block's bytes are those of its row encoded alone.
//!
//! The f32 operation order follows the C code (no fused multiply-add, ggml's `nearest_int`, C's
//! integer truncations), as everywhere in this crate.

use half::f16;
use llamapack_format::blocks::{
    BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0,
    BlockQ5_1, BlockQ5K, BlockQ6K, QK_K, QK4_NL,
};

use crate::kquant_search::{GROUP_MAX_EPS, Qkx2, make_qx_quants, signed_max_abs};
use crate::lanes::{self, Groups, gather};
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

/// Checks the lengths every weighted encoder relies on: `x` is whole rows of `qw.len()` values
/// (a whole number of blocks each) and `y` has their blocks. Returns the blocks per row.
fn check_lengths(name: &str, x: &[f32], blocks: usize, block_len: usize, qw: &[f32]) -> usize {
    assert_eq!(
        x.len(),
        blocks * block_len,
        "{name}: row length must be {block_len} × blocks"
    );
    assert!(
        qw.len().is_multiple_of(block_len) && (x.is_empty() || x.len().is_multiple_of(qw.len())),
        "{name}: rows of whole blocks, one importance weight per column"
    );
    qw.len() / block_len
}

/// The rows of `x` (`n` values each) and of `y` (`per_row` blocks each); none when `n` is 0.
#[inline(always)]
fn rows<'a, B>(
    x: &'a [f32],
    y: &'a mut [B],
    n: usize,
    per_row: usize,
) -> impl Iterator<Item = (&'a [f32], &'a mut [B])> {
    let x = if n == 0 { &[][..] } else { x };
    x.chunks_exact(n.max(1))
        .zip(y.chunks_exact_mut(per_row.max(1)))
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

/// Sub-blocks (or blocks) searched at once, one per lane of [`crate::lanes`].
const LANES: usize = 16;
/// Blocks of 32 searched at once by the q4_0/q4_1/q5_0/q5_1 encoders: two vectors of 16 per
/// value, so two independent chains of running sums hide the add latency.
const WIDE: usize = 32;

/// `w = qw·sqrt(σ² + x²)` on lanes, σ² per lane.
#[inline(always)]
fn sigma_weights_lanes<const N: usize, const L: usize>(
    q: &Groups<f32, N, L>,
    x: &Groups<f32, N, L>,
    sigma2: &[f32; L],
) -> Groups<f32, N, L> {
    let mut w = [[0f32; L]; N];
    for ((wi, qi), xi) in w.iter_mut().zip(q).zip(x) {
        for j in 0..L {
            wi[j] = qi[j] * (sigma2[j] + xi[j] * xi[j]).sqrt();
        }
    }
    w
}

/// Each lane's `Σw`, in element order from 0.
#[inline(always)]
fn lane_sums<const N: usize>(w: &Groups<f32, N, LANES>) -> [f32; LANES] {
    let mut s = [0f32; LANES];
    for wi in w {
        for j in 0..LANES {
            s[j] += wi[j];
        }
    }
    s
}

/// Lane `j`'s quants as bytes at `out[N·j..N·j + N]`, for the groups `out` holds.
#[inline(always)]
fn scatter<const N: usize, const L: usize>(l: &Groups<i32, N, L>, out: &mut [u8]) {
    for (j, o) in out.chunks_exact_mut(N).take(L).enumerate() {
        let o: &mut [u8; N] = o.try_into().expect("N bytes");
        for (i, v) in o.iter_mut().enumerate() {
            *v = l[i][j] as u8;
        }
    }
}

/// ggml's `quantize_row_q6_K_impl` with an imatrix: q6_k's encoder with the raw importance
/// weights `qw` in `make_qx_quants` (ggml leaves its `sqrt(σ² + x²)` factor commented out).
#[inline(always)]
pub fn quantize_q6_k(x: &[f32], y: &mut [BlockQ6K], qw: &[f32]) {
    let per_row = check_lengths("q6_k", x, y.len(), QK_K, qw);
    for (xr, yr) in rows(x, y, qw.len(), per_row) {
        quantize_q6_k_row(xr, yr, qw);
    }
}

/// One row of [`quantize_q6_k`].
#[inline(always)]
fn quantize_q6_k_row(x: &[f32], y: &mut [BlockQ6K], qw: &[f32]) {
    for ((xb, qb), yb) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(y) {
        let mut lq = [[0i32; LANES]; 16];
        let scales = lanes::qx(32, &gather::<16, LANES>(xb), &gather(qb), &mut lq);
        let mut l = [0i8; QK_K];
        scatter(&lq, bytemuck::cast_slice_mut(&mut l));
        let (max_scale, max_abs_scale) = signed_max_abs(&scales);
        crate::q6_k::finish_block(xb, &scales, max_scale, max_abs_scale, &mut l, yb);
    }
}

/// What the first half of the weighted q4_k/q5_k encoders gives a super-block: `(d, dmin,
/// Ls, Lm)` — the scales of the 6-bit sub-block scales and mins, and those quants.
type Sub32 = (f32, f32, [u8; 8], [u8; 8]);

/// The first half of ggml's weighted q4_k and q5_k encoders on one or two super-blocks `xs`
/// (their 8 or 16 sub-blocks of 32 in lanes): σ² = 2·Σx²/256 per super-block, per sub-block
/// the weights `qw·sqrt(σ² + x²)`, their sum, and `make_qkx3_quants(nmax)`; then
/// `make_qp_quants(63)` of each super-block's 8 scales and of its 8 mins, weighted by the sums.
/// `l` gets the sub-block quants.
#[inline(always)]
fn search_sub32_weighted(
    nmax: i32,
    xs: &[f32],
    qs: &[f32],
    l: &mut [u8; 2 * QK_K],
) -> [Option<Sub32>; 2] {
    let mut sigma2 = [0f32; LANES];
    for (xb, s) in xs.chunks_exact(QK_K).zip(sigma2.chunks_exact_mut(8)) {
        s.fill(2.0 * sum_squares(xb) / QK_K as f32);
    }
    let xt = gather::<32, LANES>(xs);
    let wt = sigma_weights_lanes(&gather(qs), &xt, &sigma2);
    let sw = lane_sums(&wt);
    let mut lq = [[0i32; LANES]; 32];
    let (scales, mins) = lanes::qkx2(qkx3(nmax), &xt, &wt, &mut lq);
    scatter(&lq, &mut l[..xs.len()]);
    let mut out = [None; 2];
    for (h, o) in out.iter_mut().enumerate().take(xs.len() / QK_K) {
        let r = 8 * h..8 * h + 8;
        let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
        let d = make_qp_quants(63, &scales[r.clone()], &mut ls, &sw[r.clone()]);
        let m = make_qp_quants(63, &mins[r.clone()], &mut lm, &sw[r]);
        *o = Some((d, m, ls, lm));
    }
    out
}

/// The weighted q4_k/q5_k encoder loop: super-blocks in pairs through
/// [`search_sub32_weighted`], each finished by `finish(xb, search result, its quants, block)`.
#[inline(always)]
fn sub32_weighted_blocks<B>(
    nmax: i32,
    x: &[f32],
    y: &mut [B],
    qw: &[f32],
    mut finish: impl FnMut(&[f32], Sub32, &mut [u8; QK_K], &mut B),
) {
    let mut l2 = [0u8; 2 * QK_K];
    for (xr, yr) in rows(x, y, qw.len(), qw.len() / QK_K) {
        for ((xs, qs), ys) in xr
            .chunks(2 * QK_K)
            .zip(qw.chunks(2 * QK_K))
            .zip(yr.chunks_mut(2))
        {
            let found = search_sub32_weighted(nmax, xs, qs, &mut l2);
            for (h, yb) in ys.iter_mut().enumerate() {
                let mut l: [u8; QK_K] = l2[QK_K * h..QK_K * (h + 1)].try_into().expect("256");
                let sub = found[h].expect("searched super-block");
                finish(&xs[QK_K * h..QK_K * (h + 1)], sub, &mut l, yb);
            }
        }
    }
}

/// Packs the 8 scale and min quants as `get_scale_min_k4` reads them, with C's `uint8_t`
/// arithmetic (bits shifted past the byte are lost).
pub(crate) fn pack_k4(ls: [u8; 8], lm: [u8; 8], out: &mut [u8; 12]) {
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
#[inline(always)]
pub fn quantize_q4_k(x: &[f32], y: &mut [BlockQ4K], qw: &[f32]) {
    check_lengths("q4_k", x, y.len(), QK_K, qw);
    sub32_weighted_blocks(15, x, y, qw, |xb, (d, m, ls, lm), l, yb| {
        pack_k4(ls, lm, &mut yb.scales);
        yb.d = f16::from_f32(d);
        yb.dmin = f16::from_f32(m);
        crate::q4_k::requantize_sub32(xb, &yb.scales, yb.d, yb.dmin, 15, l);
        crate::q4_k::pack_quants(l, yb);
    });
}

/// ggml's `quantize_row_q5_K_impl` with an imatrix: as [`quantize_q4_k`] with nmax 31 and the
/// scale and min quants clamped to 63 before packing.
#[inline(always)]
pub fn quantize_q5_k(x: &[f32], y: &mut [BlockQ5K], qw: &[f32]) {
    check_lengths("q5_k", x, y.len(), QK_K, qw);
    sub32_weighted_blocks(31, x, y, qw, |xb, (d, m, mut ls, mut lm), l, yb| {
        for v in ls.iter_mut().chain(lm.iter_mut()) {
            *v = (*v).min(63);
        }
        pack_k4(ls, lm, &mut yb.scales);
        yb.d = f16::from_f32(d);
        yb.dmin = f16::from_f32(m);
        crate::q4_k::requantize_sub32(xb, &yb.scales, yb.d, yb.dmin, 31, l);
        crate::q5_k::pack_quants(l, yb);
    });
}

/// ggml's `quantize_row_q3_K_impl` with an imatrix: σ² = 2·Σx²/256, per sub-block of 16
/// `make_qx_quants(nmax 4)` with weights `qw·sqrt(σ² + x²)`, then the 16 scales themselves by
/// `make_qx_quants(nmax 32)` weighted by the sub-blocks' weight sums (6-bit signed, stored
/// `+32`; `d` is its scale), then every value re-quantized against them.
#[inline(always)]
pub fn quantize_q3_k(x: &[f32], y: &mut [BlockQ3K], qw: &[f32]) {
    let per_row = check_lengths("q3_k", x, y.len(), QK_K, qw);
    for (xr, yr) in rows(x, y, qw.len(), per_row) {
        quantize_q3_k_row(xr, yr, qw);
    }
}

/// One row of [`quantize_q3_k`].
#[inline(always)]
fn quantize_q3_k_row(x: &[f32], y: &mut [BlockQ3K], qw: &[f32]) {
    let mut l = [0i8; QK_K];
    for ((xb, qb), yb) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(y) {
        let sigma2 = 2.0 * sum_squares(xb) / QK_K as f32;
        let xt = gather::<16, LANES>(xb);
        let wt = sigma_weights_lanes(&gather(qb), &xt, &[sigma2; LANES]);
        let sw = lane_sums(&wt);
        let mut lq = [[0i32; LANES]; 16];
        let scales = lanes::qx(4, &xt, &wt, &mut lq);
        scatter(&lq, bytemuck::cast_slice_mut(&mut l));
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

/// The row statistic of ggml's weighted q4_0, q4_1, q5_0 and q5_1 encoders, σ² = Σx²/n, of
/// every row of `x` (rows of `n` values), each sum in order from the row's first value. Eight
/// rows at a time, so that their chains of additions overlap.
fn row_sigma2s(x: &[f32], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() / n);
    let mut eights = x.chunks_exact(8 * n);
    for r8 in eights.by_ref() {
        let r: [&[f32]; 8] = std::array::from_fn(|k| &r8[k * n..(k + 1) * n]);
        let mut s = [0f32; 8];
        // each sum adds its row in order, as before
        for (sk, rk) in s.iter_mut().zip(&r) {
            for &v in *rk {
                *sk += v * v;
            }
        }
        out.extend(s.map(|s| s / n as f32));
    }
    for r in eights.remainder().chunks_exact(n) {
        out.push(sum_squares(r) / n as f32);
    }
    out
}

/// One row's importance weights (`qw`, whole blocks of 32) in lanes for runs of [`WIDE`]
/// consecutive blocks that may start at any block of a row and run on into the next rows:
/// lane `j` of a run starting at block `b` holds the weights of block `b + j` of the rows.
struct BlockWeights {
    /// `t[i·stride + c]` = element `i` of the row's block `c mod blocks`, for `c < stride`.
    t: Vec<f32>,
    stride: usize,
    blocks: usize,
}

impl BlockWeights {
    fn new(qw: &[f32]) -> Self {
        let blocks = qw.len() / 32;
        // a run wraps a row at most WIDE / blocks + 1 times; the table repeats the row that far
        let stride = blocks + WIDE;
        let mut t = vec![0f32; 32 * stride];
        for (i, ti) in t.chunks_exact_mut(stride).enumerate() {
            for (v, qb) in ti.iter_mut().zip(qw.chunks_exact(32).cycle()) {
                *v = qb[i];
            }
        }
        BlockWeights { t, stride, blocks }
    }

    /// The weights of blocks `b..b + WIDE` (counted over the rows), in lanes, into `out`.
    #[inline(always)]
    fn lanes(&self, b: usize, out: &mut Groups<f32, 32, WIDE>) {
        let c = b % self.blocks;
        for (o, ti) in out.iter_mut().zip(self.t.chunks_exact(self.stride)) {
            o.copy_from_slice(&ti[c..c + WIDE]);
        }
    }
}

/// The lanes of the 32-value block encoders (q4_0, q4_1, q5_0, q5_1) over rows `x`: runs of
/// [`WIDE`] consecutive blocks (a run may cross into the next row), each run's values and
/// weights `qw·sqrt(σ² + x²)` (σ² of each block's own row) in lanes.
struct Block32Runs<'a> {
    x: &'a [f32],
    per_row: usize,
    sigma2s: Vec<f32>,
    weights: BlockWeights,
}

impl<'a> Block32Runs<'a> {
    /// `None` for no rows.
    fn new(x: &'a [f32], qw: &[f32]) -> Option<Self> {
        if qw.is_empty() || x.is_empty() {
            return None;
        }
        Some(Block32Runs {
            x,
            per_row: qw.len() / 32,
            sigma2s: row_sigma2s(x, qw.len()),
            weights: BlockWeights::new(qw),
        })
    }

    /// Runs in the rows.
    fn len(&self) -> usize {
        self.x.len().div_ceil(32 * WIDE)
    }

    /// Run `g` into `xt` (values) and `wt` (weights): returns its first block (counted over
    /// the rows) and number of real blocks (the last run's lanes past the end hold zeros).
    #[inline(always)]
    fn run(
        &self,
        g: usize,
        xt: &mut Groups<f32, 32, WIDE>,
        wt: &mut Groups<f32, 32, WIDE>,
    ) -> (usize, usize) {
        let b = WIDE * g;
        let xs = &self.x[32 * b..self.x.len().min(32 * (b + WIDE))];
        lanes::gather_into(xs, xt);
        let mut sigma2 = [0f32; WIDE];
        for (j, s) in sigma2.iter_mut().enumerate() {
            // lanes past the last block take the last row's
            *s = self.sigma2s[((b + j) / self.per_row).min(self.sigma2s.len() - 1)];
        }
        self.weights.lanes(b, wt);
        for (wi, xi) in wt.iter_mut().zip(xt.iter()) {
            for j in 0..WIDE {
                wi[j] *= (sigma2[j] + xi[j] * xi[j]).sqrt();
            }
        }
        (b, xs.len() / 32)
    }
}

/// The shared loop of the weighted q4_0 and q5_0 encoders: blocks of 32 in [`Block32Runs`]
/// and `make_qx_quants(nmax)`; `emit` gets each block's index (over the rows), scale and quants
/// (stored `+nmax`).
#[inline(always)]
fn symmetric_blocks(x: &[f32], qw: &[f32], nmax: i32, mut emit: impl FnMut(usize, f32, &[u8; 32])) {
    let Some(runs) = Block32Runs::new(x, qw) else {
        return;
    };
    let mut l = [0u8; 32 * WIDE];
    let (mut xt, mut wt) = ([[0f32; WIDE]; 32], [[0f32; WIDE]; 32]);
    for g in 0..runs.len() {
        let (b, real) = runs.run(g, &mut xt, &mut wt);
        let mut lq = [[0i32; WIDE]; 32];
        let d = lanes::qx(nmax, &xt, &wt, &mut lq);
        scatter(&lq, &mut l);
        for (j, lb) in l.chunks_exact(32).take(real).enumerate() {
            emit(b + j, d[j], lb.try_into().expect("32 quants"));
        }
    }
}

/// The shared loop of the weighted q4_1 and q5_1 encoders: blocks of 32 in [`Block32Runs`]
/// and `make_qkx3_quants(nmax)`; `emit` gets each block's index (over the rows), scale, min
/// (`x ≈ d·l − min`) and quants.
#[inline(always)]
fn affine_blocks(
    x: &[f32],
    qw: &[f32],
    nmax: i32,
    mut emit: impl FnMut(usize, f32, f32, &[u8; 32]),
) {
    let Some(runs) = Block32Runs::new(x, qw) else {
        return;
    };
    let mut l = [0u8; 32 * WIDE];
    let (mut xt, mut wt) = ([[0f32; WIDE]; 32], [[0f32; WIDE]; 32]);
    for g in 0..runs.len() {
        let (b, real) = runs.run(g, &mut xt, &mut wt);
        let mut lq = [[0i32; WIDE]; 32];
        let (d, the_min) = lanes::qkx2(qkx3(nmax), &xt, &wt, &mut lq);
        scatter(&lq, &mut l);
        for (j, lb) in l.chunks_exact(32).take(real).enumerate() {
            emit(b + j, d[j], the_min[j], lb.try_into().expect("32 quants"));
        }
    }
}

/// ggml's `quantize_row_q4_0_impl` with an imatrix: `make_qx_quants(nmax 8)` per block with
/// weights `qw·sqrt(σ² + x²)`, σ² the mean square of the block's row.
#[inline(always)]
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
#[inline(always)]
pub fn quantize_q5_0(x: &[f32], y: &mut [BlockQ5_0], qw: &[f32]) {
    check_lengths("q5_0", x, y.len(), 32, qw);
    symmetric_blocks(x, qw, 16, |ib, d, l| {
        y[ib].d = f16::from_f32(d);
        y[ib].qh = crate::q5_0::pack5(l, &mut y[ib].qs);
    });
}

/// ggml's `quantize_row_q4_1_impl` with an imatrix: `make_qkx3_quants(nmax 15)` per block
/// with weights `qw·sqrt(σ² + x²)`, σ² the mean square of the block's row.
#[inline(always)]
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
#[inline(always)]
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
#[inline(always)]
pub fn quantize_q2_k(x: &[f32], y: &mut [BlockQ2K], qw: &[f32]) {
    let per_row = check_lengths("q2_k", x, y.len(), QK_K, qw);
    for (xr, yr) in rows(x, y, qw.len(), per_row) {
        quantize_q2_k_row(xr, yr, qw);
    }
}

/// One row of [`quantize_q2_k`].
#[inline(always)]
fn quantize_q2_k_row(x: &[f32], y: &mut [BlockQ2K], qw: &[f32]) {
    let mut l = [0u8; QK_K];
    for ((xb, qb), yb) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(y) {
        let sigma2 = sum_squares(xb) / QK_K as f32;
        let xt = gather::<16, LANES>(xb);
        let wt = sigma_weights_lanes(&gather(qb), &xt, &[sigma2; LANES]);
        let sw = lane_sums(&wt);
        let mut lq = [[0i32; LANES]; 16];
        let (scales, mins) = lanes::qkx2(qkx3(3), &xt, &wt, &mut lq);
        scatter(&lq, &mut l);
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
#[inline(always)]
pub fn quantize_iq4_nl(x: &[f32], y: &mut [BlockIq4Nl], qw: &[f32]) {
    let per_row = check_lengths("iq4_nl", x, y.len(), QK4_NL, qw);
    let mut w = [0f32; LANES * QK4_NL];
    for (g, (xs, ys)) in x
        .chunks(LANES * QK4_NL)
        .zip(y.chunks_mut(LANES))
        .enumerate()
    {
        for (j, (xb, wb)) in xs
            .chunks_exact(QK4_NL)
            .zip(w.chunks_exact_mut(QK4_NL))
            .enumerate()
        {
            // the block's column: its index within its row
            let c = (LANES * g + j) % per_row;
            let qb = &qw[QK4_NL * c..QK4_NL * (c + 1)];
            sigma_weights(qb, xb, iq4_sigma2(xb), wb);
        }
        crate::iq4_nl::encode_blocks_trials(xs, &w[..xs.len()], ys);
    }
}

/// ggml's `quantize_iq4_xs` with an imatrix: σ² over the super-block of 256, per sub-block of
/// 32 the weights `qw·sqrt(σ² + x²)` in the 15-trial scale search (two super-blocks' 16
/// sub-blocks at once in lanes), then the 6-bit sub-block scales and every index recomputed
/// against them.
#[inline(always)]
pub fn quantize_iq4_xs(x: &[f32], y: &mut [BlockIq4Xs], qw: &[f32]) {
    let per_row = check_lengths("iq4_xs", x, y.len(), QK_K, qw);
    for (xr, yr) in rows(x, y, qw.len(), per_row) {
        quantize_iq4_xs_row(xr, yr, qw);
    }
}

/// One row of [`quantize_iq4_xs`].
#[inline(always)]
fn quantize_iq4_xs_row(x: &[f32], y: &mut [BlockIq4Xs], qw: &[f32]) {
    let mut w = [0f32; 2 * QK_K];
    for ((xs, qs), ys) in x
        .chunks(2 * QK_K)
        .zip(qw.chunks(2 * QK_K))
        .zip(y.chunks_mut(2))
    {
        for ((xb, qb), wb) in xs
            .chunks_exact(QK_K)
            .zip(qs.chunks_exact(QK_K))
            .zip(w.chunks_exact_mut(QK_K))
        {
            sigma_weights(qb, xb, iq4_sigma2(xb), wb);
        }
        let scales = crate::lanes::iq4_scales::<LANES>(&gather(xs), &gather(&w[..xs.len()]), 7);
        for ((xb, yb), sc) in xs.chunks_exact(QK_K).zip(ys).zip(scales.chunks_exact(8)) {
            crate::iq4_xs::finish_block(xb, sc.try_into().expect("8 scales"), yb);
        }
    }
}
