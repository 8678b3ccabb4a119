//! iq4_nl: blocks of 32 4-bit indices into the non-linear 16-value grid [`KVALUES_IQ4NL`] with
//! one f16 scale (4.5 bits per weight): `x = d · kvalues[q]`.
//!
//! This module also holds the search both iq4 formats share (`search_block`, ggml's
//! `quantize_row_iq4_nl_impl` for one 32-value block without an importance matrix: weights `x²`,
//! a first scale from the element of largest magnitude, then `2·ntry + 1` trial scales) and
//! ggml's `best_index_int8` (`best_index`); [`crate::iq4_xs`] adds the 6-bit sub-block scales.
//!
//! Two encoders, both byte-identical to ggml:
//! - [`quantize_row_iq4_nl_ref`] is ggml's `quantize_row_iq4_nl_ref` (the [`BlockFormat`]
//!   encoder, what every level of [`crate::quantize_row`] writes): `ntry = −1`, i.e. no trial
//!   scales — `d = max / −127`, indices from `x / d`, then the least-squares scale for them;
//! - [`quantize_iq4_nl`] is ggml's `quantize_iq4_nl` without an importance matrix (what
//!   `llama-quantize` writes): `ntry = 7`, the 15 trial scales, indices recomputed from the
//!   chosen scale. Its error is lower; its bytes differ from the reference's.
//!
//! [`BlockFormat`]: crate::format::BlockFormat

use half::f16;
use llamapack_format::blocks::{BlockIq4Nl, BlockQ8_0, KVALUES_IQ4NL, QK4_NL};

crate::format::block_format!(
    Iq4Nl,
    IQ4NL,
    BlockIq4Nl,
    BlockQ8_0,
    quantize_row_iq4_nl_ref,
    dequantize_row_iq4_nl_ref,
    block_dot,
    quantize_iq4_nl,
    weighted: crate::weighted::quantize_iq4_nl
);

/// ggml's `GROUP_MAX_EPS`: a block whose largest magnitude is below it gets scale 0.
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// The grid as f32 (C promotes the `int8_t` table entries to float in every comparison).
pub(crate) const GRID: [f32; 16] = {
    let mut g = [0f32; 16];
    let mut i = 0;
    while i < 16 {
        g[i] = KVALUES_IQ4NL[i] as f32;
        i += 1;
    }
    g
};

/// The index written for every element of a block that no earlier block of the row can lend
/// its indices to (see [`quantize_row_iq4_nl_ref`]): ggml's own deterministic choice for a
/// zero block (`best_index(0)`, grid value 1, so the block decodes to +0).
pub(crate) const ZERO_INDEX: u8 = 8;

/// ggml's `best_index_int8` over the grid: 0 for `x ≤ −127`, 15 for `x ≥ 113` (and NaN),
/// else the nearer of the two grid values around `x`, the upper one unless
/// `x − lower < upper − x` in f32.
#[inline(always)]
pub(crate) fn best_index(x: f32) -> u8 {
    let v = &GRID;
    if x <= v[0] {
        return 0;
    }
    if x >= v[15] {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = usize::midpoint(ml, mu);
        if x < v[mav] {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - v[mu - 1] < v[mu] - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// The element of largest magnitude (the first on ties) and that magnitude, as ggml finds
/// them (`fabsf(x) > amax`, starting from 0).
#[inline(always)]
pub(crate) fn signed_max(xb: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in xb {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (amax, max)
}

/// `(Σ w·q·x, Σ w·q²)` in element order (`w` = the given weights, else `x²`;
/// `q = GRID[index(id·x)]`), as ggml's loops accumulate them; `l` receives the indices when
/// given.
#[inline(always)]
fn weighted_sums(
    xb: &[f32],
    weights: Option<&[f32]>,
    id: f32,
    mut l: Option<&mut [u8]>,
) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for (j, &x) in xb.iter().enumerate() {
        let k = best_index(id * x);
        if let Some(l) = l.as_deref_mut() {
            l[j] = k;
        }
        let q = GRID[usize::from(k)];
        let w = weights.map_or(x * x, |w| w[j]);
        sumqx += w * q * x;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// ggml's choice among trial scales, in its order: starting from the first pass's
/// `(Σqx, Σq²)`, a trial replaces the scale when `Σq² > 0` and `Σqx² > best · Σq²`.
///
/// `sums[0]` is the first pass, `sums[1..]` the trials `itry = −ntry..=ntry` in order.
#[inline(always)]
pub(crate) fn choose_scale(sums: impl IntoIterator<Item = (f32, f32)>) -> f32 {
    let mut it = sums.into_iter();
    let (sumqx, sumq2) = it.next().expect("the first pass");
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for (sumqx, sumq2) in it {
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// The trial inverse scales `(itry + kvalues[0]) / max` for `itry = −ntry..=ntry`.
#[inline(always)]
pub(crate) fn trial_id(itry: i32, max: f32) -> f32 {
    (itry + i32::from(KVALUES_IQ4NL[0])) as f32 / max
}

/// The first pass's inverse scale: `1 / d` with `d = −max / kvalues[0]` when there are
/// trials (`ntry > 0`), else `d = max / kvalues[0]`.
#[inline(always)]
pub(crate) fn first_id(max: f32, ntry: i32) -> f32 {
    let d = if ntry > 0 {
        -max / GRID[0]
    } else {
        max / GRID[0]
    };
    1.0 / d
}

/// One 32-value block of ggml's `quantize_row_iq4_nl_impl` without an importance matrix:
/// the block's scale, with the first pass's indices written to `l`; `None` (and `l`
/// untouched, as in ggml) when the largest magnitude is below [`GROUP_MAX_EPS`].
pub(crate) fn search_block(xb: &[f32], ntry: i32, l: &mut [u8]) -> Option<f32> {
    search_block_weighted(xb, None, ntry, l)
}

/// [`search_block`] with importance weights (`weights`, ggml's `qw·sqrt(σ² + x²)`) in place
/// of `x²` when given: one block of ggml's `quantize_row_iq4_nl_impl` with an imatrix.
pub(crate) fn search_block_weighted(
    xb: &[f32],
    weights: Option<&[f32]>,
    ntry: i32,
    l: &mut [u8],
) -> Option<f32> {
    let (amax, max) = signed_max(xb);
    if amax < GROUP_MAX_EPS {
        return None;
    }
    let first = weighted_sums(xb, weights, first_id(max, ntry), Some(l));
    let trials = (-ntry..=ntry).map(|itry| weighted_sums(xb, weights, trial_id(itry, max), None));
    Some(choose_scale(std::iter::once(first).chain(trials)))
}

/// Up to 16 blocks of ggml's `quantize_iq4_nl` (`ntry = 7`) at once, with weights `ws` (one
/// per value of `xs`: `x²` without an importance matrix, else ggml's `qw·sqrt(σ² + x²)`): the
/// trial search in lanes ([`crate::lanes::iq4_scales`]), `d` stored, then every index
/// recomputed from `d` (`best_index(x / d)`, index 8 where `d = 0`).
#[inline(always)]
pub(crate) fn encode_blocks_trials(xs: &[f32], ws: &[f32], ys: &mut [BlockIq4Nl]) {
    use crate::lanes::{gather, iq4_scales};
    let d = iq4_scales::<16>(&gather(xs), &gather(ws), 7);
    for ((xb, yb), &d) in xs.chunks_exact(QK4_NL).zip(ys).zip(&d) {
        yb.d = f16::from_f32(d);
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let mut v = [0f32; QK4_NL];
        for (o, &x) in v.iter_mut().zip(xb) {
            *o = id * x;
        }
        pack_indices(&crate::lanes::iq4_grid_index(&v), &mut yb.qs);
    }
}

/// Packs 32 indices as ggml stores them: byte `j` = index `j` (low nibble) | index `j + 16`.
#[inline(always)]
pub(crate) fn pack_indices(l: &[u8], qs: &mut [u8]) {
    for j in 0..16 {
        qs[j] = l[j] | (l[j + 16] << 4);
    }
}

/// Quantizes `x` (a multiple of 32 values) into `y`, byte for byte as ggml's
/// `quantize_row_iq4_nl_ref` (no trial scales: see the module docs).
///
/// A block whose largest magnitude is below 1e-15 (zeros, subnormals, ±1e-38…) gets `d = +0`,
/// and ggml leaves its indices as whatever its index buffer held: the indices of the latest
/// earlier block of the same call. This encoder does the same; a row that *starts* with such
/// blocks gets index 8 for them (ggml would copy uninitialized memory there). So the bytes of a
/// zero block depend on the row it is encoded in, as in ggml; its values (±0) do not.
pub fn quantize_row_iq4_nl_ref(x: &[f32], y: &mut [BlockIq4Nl]) {
    assert_eq!(
        x.len(),
        y.len() * QK4_NL,
        "iq4_nl: row length must be 32 × blocks"
    );
    let mut l = [ZERO_INDEX; QK4_NL];
    for (xb, yb) in x.chunks_exact(QK4_NL).zip(y.iter_mut()) {
        let d = search_block(xb, -1, &mut l).unwrap_or(0.0);
        yb.d = f16::from_f32(d);
        pack_indices(&l, &mut yb.qs);
    }
}

/// Quantizes `x` (a multiple of 32 values) into `y`, byte for byte as ggml's
/// `quantize_iq4_nl` without an importance matrix (what `llama-quantize` writes for iq4_nl):
/// the 15 trial scales, then every index recomputed from the chosen scale `d`
/// (`best_index(x / d)`, index 8 where `d = 0`).
#[inline(always)]
pub fn quantize_iq4_nl(x: &[f32], y: &mut [BlockIq4Nl]) {
    assert_eq!(
        x.len(),
        y.len() * QK4_NL,
        "iq4_nl: row length must be 32 × blocks"
    );
    let mut w = [0f32; 16 * QK4_NL];
    for (xs, ys) in x.chunks(16 * QK4_NL).zip(y.chunks_mut(16)) {
        for (w, &v) in w.iter_mut().zip(xs) {
            *w = v * v;
        }
        encode_blocks_trials(xs, &w[..xs.len()], ys);
    }
}

/// Dequantizes `x` into `y`: `y[j] = f32(d) · kvalues[q_j]`.
pub fn dequantize_row_iq4_nl_ref(x: &[BlockIq4Nl], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK4_NL,
        "iq4_nl: output length must be 32 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK4_NL)) {
        let d = xb.d.to_f32();
        for (j, &b) in xb.qs.iter().enumerate() {
            yb[j] = d * GRID[usize::from(b & 0x0f)];
            yb[j + 16] = d * GRID[usize::from(b >> 4)];
        }
    }
}

/// One block's term of ggml's `ggml_vec_dot_iq4_nl_q8_0_generic`:
/// `(f32(dy) · f32(dx)) · f32(Σ q8 · kvalues[q])`.
#[inline(always)]
pub(crate) fn block_dot(x: &BlockIq4Nl, y: &BlockQ8_0) -> f32 {
    let d = y.d.to_f32() * x.d.to_f32();
    let (mut sumi1, mut sumi2) = (0i32, 0i32);
    for (j, &b) in x.qs.iter().enumerate() {
        sumi1 += i32::from(y.qs[j]) * i32::from(KVALUES_IQ4NL[usize::from(b & 0x0f)]);
        sumi2 += i32::from(y.qs[j + 16]) * i32::from(KVALUES_IQ4NL[usize::from(b >> 4)]);
    }
    d * (sumi1 + sumi2) as f32
}

/// Dot product of an iq4_nl row with a q8_0 row: ggml's generic scalar kernel, blocks in
/// order accumulated in f32 from 0.
pub fn vec_dot_iq4_nl_q8_0_ref(x: &[BlockIq4Nl], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len(), "iq4_nl dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C binary search, transcribed once more as a linear scan of the same decisions.
    fn index_by_scan(x: f32) -> u8 {
        if x <= GRID[0] {
            return 0;
        }
        if x >= GRID[15] || x.is_nan() {
            return 15;
        }
        let mu = GRID.iter().position(|&v| x < v).unwrap();
        if x - GRID[mu - 1] < GRID[mu] - x {
            (mu - 1) as u8
        } else {
            mu as u8
        }
    }

    #[test]
    fn best_index_is_ggml_binary_search() {
        assert_eq!(best_index(-1e30), 0);
        assert_eq!(best_index(-127.0), 0);
        assert_eq!(best_index(113.0), 15);
        assert_eq!(best_index(f32::NAN), 15);
        assert_eq!(best_index(f32::INFINITY), 15);
        assert_eq!(best_index(f32::NEG_INFINITY), 0);
        assert_eq!(best_index(0.0), 8);
        assert_eq!(best_index(-0.0), 8);
        // ties go up: −4.5 is halfway between −10 and 1
        assert_eq!(best_index(-4.5), 8);
        assert_eq!(best_index(-4.500_001), 7);
        for i in -140_000..140_000 {
            let x = i as f32 / 1000.0;
            assert_eq!(best_index(x), index_by_scan(x), "{x}");
        }
        // every midpoint and its neighbours
        for w in GRID.windows(2) {
            let m = f32::midpoint(w[0], w[1]);
            for x in [m, m.next_down(), m.next_up()] {
                assert_eq!(best_index(x), index_by_scan(x), "{x}");
            }
        }
    }

    fn block(x: &[f32; 32]) -> BlockIq4Nl {
        let mut b = [BlockIq4Nl::zeroed()];
        quantize_row_iq4_nl_ref(x, &mut b);
        b[0]
    }

    use bytemuck::Zeroable;

    #[test]
    fn grid_values_are_reproduced_exactly() {
        // x = grid · s (s a power of two): d₀ = max/−127 = −s, indices exact, lsq scale −s
        let s = 0.25f32;
        let mut x = [0f32; 32];
        for (j, v) in x.iter_mut().enumerate() {
            *v = -GRID[j % 16] * s;
        }
        x[3] = 127.0 * s; // the largest magnitude, positive: d₀ = −s
        let b = block(&x);
        assert_eq!(b.d.to_f32(), -s);
        let mut back = [0f32; 32];
        dequantize_row_iq4_nl_ref(&[b], &mut back);
        assert_eq!(back, x);
        // element 0 is 127·s: index 0 (grid −127) times d = −s
        assert_eq!(b.qs[0] & 0x0f, 0);
    }

    #[test]
    fn zero_blocks_borrow_the_previous_indices() {
        let mut x = vec![0f32; 96];
        for (j, v) in x[32..64].iter_mut().enumerate() {
            *v = j as f32 - 10.0;
        }
        let mut y = [BlockIq4Nl::zeroed(); 3];
        quantize_row_iq4_nl_ref(&x, &mut y);
        assert_eq!(y[0].d.to_bits(), 0);
        assert_eq!(y[0].qs, [0x88; 16]);
        assert_eq!(y[2].d.to_bits(), 0);
        assert_eq!(y[2].qs, y[1].qs);
        assert_ne!(y[1].qs, [0x88; 16]);
        // the search variant recomputes the indices: 8 everywhere
        quantize_iq4_nl(&x, &mut y);
        assert_eq!(y[0].qs, [0x88; 16]);
        assert_eq!(y[2].qs, [0x88; 16]);
    }

    #[test]
    fn block_dot_is_the_exact_integer_sum_scaled() {
        let mut w = BlockIq4Nl::zeroed();
        w.d = f16::from_f32(0.5);
        for (j, b) in w.qs.iter_mut().enumerate() {
            *b = (j as u8) | ((15 - j as u8) << 4);
        }
        let mut a = BlockQ8_0::zeroed();
        a.d = f16::from_f32(0.25);
        for (j, q) in a.qs.iter_mut().enumerate() {
            *q = j as i8 - 16;
        }
        let mut wv = [0f32; 32];
        dequantize_row_iq4_nl_ref(&[w], &mut wv);
        let want: f32 = wv
            .iter()
            .zip(&a.qs)
            .map(|(x, &q)| f64::from(*x) * f64::from(q) * 0.25)
            .sum::<f64>() as f32;
        assert_eq!(block_dot(&w, &a), want);
    }
}
