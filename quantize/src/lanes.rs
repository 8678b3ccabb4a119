//! ggml's group searches (`make_qx_quants`, `make_qkx2_quants` / `make_qkx3_quants`) on `L`
//! groups at once, in portable Rust that the compiler vectorizes across groups.
//!
//! Lane `j` of every array is one group (a block or sub-block) and runs exactly the scalar
//! search of [`crate::kquant_search`]: the same f32 operations in the same order, its own
//! running sums, ggml's `nearest_int`. Where the scalar code branches, a lane selects, so the
//! results are bit-identical per group whatever the other lanes hold (padding lanes of zeros
//! included). Element `i` of group `j` is `x[i][j]`.
//!
//! The searches are `#[inline(always)]`: each SIMD level compiles them (through the encoders of
//! [`crate::weighted`]) with its own target features, which is all that differs between levels.

use crate::kquant_search::{GROUP_MAX_EPS, Qkx2};
use crate::rounding::nearest_int;

/// `L` groups of `N` values, transposed: `[element][group]`.
pub(crate) type Groups<T, const N: usize, const L: usize> = [[T; L]; N];

/// Transposes `L` groups of `N` consecutive values of `src` (group `j` starts at `N·j`; groups
/// past the end of `src` are zero) into lanes.
#[inline(always)]
pub(crate) fn gather<const N: usize, const L: usize>(src: &[f32]) -> Groups<f32, N, L> {
    let mut out = [[0f32; L]; N];
    gather_into(src, &mut out);
    out
}

/// [`gather`] into `out` (filled in place: large arrays moved by value cost copies).
#[inline(always)]
pub(crate) fn gather_into<const N: usize, const L: usize>(
    src: &[f32],
    out: &mut Groups<f32, N, L>,
) {
    if let Some(full) = src.get(..N * L) {
        gather_full(full, out);
    } else {
        let mut padded = [[0f32; N]; L];
        for (p, g) in padded.iter_mut().zip(src.chunks(N)) {
            p[..g.len()].copy_from_slice(g);
        }
        gather_full(padded.as_flattened(), out);
    }
}

/// [`gather`] of exactly `N·L` values into `out`, element by element (strided loads,
/// contiguous stores: what the SIMD levels compile to gathers rather than scatters).
#[inline(always)]
fn gather_full<const N: usize, const L: usize>(src: &[f32], out: &mut Groups<f32, N, L>) {
    let src: &[f32] = &src[..N * L];
    for (i, o) in out.iter_mut().enumerate() {
        for (j, v) in o.iter_mut().enumerate() {
            *v = src[N * j + i];
        }
    }
}

/// `if take { a } else { b }` as bit masks, which the compiler keeps as a vector blend (a
/// plain `if` on floats it may turn into a branch per lane).
#[inline(always)]
fn select(take: bool, a: f32, b: f32) -> f32 {
    let m = u32::from(take).wrapping_neg();
    f32::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

/// Each group's largest magnitude and the element that has it (the first of ties; 0 and 0 for
/// an all-zero group), as ggml's `fabsf(x) > amax` scans from 0 find them.
#[inline(always)]
fn signed_max_abs<const N: usize, const L: usize>(x: &Groups<f32, N, L>) -> ([f32; L], [f32; L]) {
    let (mut amax, mut max) = ([0f32; L], [0f32; L]);
    for xi in x {
        for j in 0..L {
            let a = xi[j].abs();
            let gt = a > amax[j];
            amax[j] = if gt { a } else { amax[j] };
            max[j] = if gt { xi[j] } else { max[j] };
        }
    }
    (amax, max)
}

/// One trial of [`qx`]: `Σw·x·q` and `Σw·q²` of the quants for `iscale` (not stored: the
/// winner's are recomputed once by [`qx_quants`]).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lanes are indexed in lockstep across arrays
fn qx_trial<const N: usize, const L: usize>(
    nmax: i32,
    x: &Groups<f32, N, L>,
    w: &Groups<f32, N, L>,
    wx: &Groups<f32, N, L>,
    iscale: &[f32; L],
) -> ([f32; L], [f32; L]) {
    // The quant as a float: `nearest_int`'s `v + 1.5·2²³` then minus it again is the same
    // round-half-even integer, exactly, for |v| < 2²²; clamped in floats it is `q as f32`.
    // Every product here is in that range (|iscale·x| ≤ nmax + 0.9, since the group's largest
    // magnitude divides iscale) except in lanes whose largest magnitude is below
    // GROUP_MAX_EPS, whose results [`qx`] discards.
    const MAGIC: f32 = 12_582_912.0;
    let (lo, hi) = (-nmax as f32, (nmax - 1) as f32);
    let (mut sumlx, mut suml2) = ([0f32; L], [0f32; L]);
    for i in 0..N {
        for j in 0..L {
            let r = (iscale[j] * x[i][j] + MAGIC) - MAGIC;
            let r = if r < lo { lo } else { r };
            let qf = if r > hi { hi } else { r };
            // ggml's `w·x·q` is `(w·x)·q`: `wx` holds the products
            sumlx[j] += wx[i][j] * qf;
            suml2[j] += w[i][j] * qf * qf;
        }
    }
    (sumlx, suml2)
}

/// The quants of [`qx_trial`] at `iscale`, stored `+nmax` (0 in the lanes marked `tiny`).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lanes are indexed in lockstep across arrays
fn qx_quants<const N: usize, const L: usize>(
    nmax: i32,
    x: &Groups<f32, N, L>,
    iscale: &[f32; L],
    tiny: &[bool; L],
    l: &mut Groups<i32, N, L>,
) {
    for i in 0..N {
        for j in 0..L {
            let q = nearest_int(iscale[j] * x[i][j]).clamp(-nmax, nmax - 1) + nmax;
            l[i][j] = if tiny[j] { 0 } else { q };
        }
    }
}

/// `make_qx_quants(n = N, nmax, rmse_type = 1, weights = w)` on `L` groups: symmetric quants
/// stored `+nmax` in `l`, and each group's scale (0, with `l = 0`, for a group whose largest
/// magnitude is below [`GROUP_MAX_EPS`]).
///
/// The trials only keep each lane's winning inverse scale; its quants (the same `nearest_int`
/// of the same product) are computed once at the end.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lanes are indexed in lockstep across arrays
pub(crate) fn qx<const N: usize, const L: usize>(
    nmax: i32,
    x: &Groups<f32, N, L>,
    w: &Groups<f32, N, L>,
    l: &mut Groups<i32, N, L>,
) -> [f32; L] {
    let (amax, max) = signed_max_abs(x);
    let nmaxf = nmax as f32;
    let mut iscale = [0f32; L];
    for j in 0..L {
        iscale[j] = -nmaxf / max[j];
    }
    let mut wx = [[0f32; L]; N];
    for i in 0..N {
        for j in 0..L {
            wx[i][j] = w[i][j] * x[i][j];
        }
    }
    let (sumlx, suml2) = qx_trial(nmax, x, w, &wx, &iscale);
    let (mut scale, mut best) = ([0f32; L], [0f32; L]);
    for j in 0..L {
        scale[j] = if suml2[j] == 0.0 {
            0.0
        } else {
            sumlx[j] / suml2[j]
        };
        best[j] = scale[j] * sumlx[j];
    }
    let mut best_iscale = iscale;
    for is in (-9..=9).filter(|&is| is != 0) {
        for j in 0..L {
            iscale[j] = -(nmaxf + 0.1 * is as f32) / max[j];
        }
        let (sumlx, suml2) = qx_trial(nmax, x, w, &wx, &iscale);
        // Every lane's candidate first, then selects without branches (a division under a
        // branch per lane compiles to scalar code).
        let mut s = [0f32; L];
        for j in 0..L {
            s[j] = sumlx[j] / suml2[j];
        }
        for j in 0..L {
            // `&`, not `&&`: a branch-free select in every lane
            #[allow(clippy::needless_bitwise_bool)]
            let take = (suml2[j] > 0.0) & (sumlx[j] * sumlx[j] > best[j] * suml2[j]);
            scale[j] = select(take, s[j], scale[j]);
            best[j] = select(take, s[j] * sumlx[j], best[j]);
            best_iscale[j] = select(take, iscale[j], best_iscale[j]);
        }
    }
    let mut tiny = [false; L];
    for j in 0..L {
        tiny[j] = amax[j] < GROUP_MAX_EPS;
        scale[j] = if tiny[j] { 0.0 } else { scale[j] };
    }
    qx_quants(nmax, x, &best_iscale, &tiny, l);
    scale
}

/// The error term of one difference in [`qkx2`].
#[inline(always)]
fn qkx2_err(p: Qkx2, d: f32) -> f32 {
    if p.use_mad { d.abs() } else { d * d }
}

/// `make_qkx2_quants(p)` with weights `w` on `L` groups (ggml's `make_qkx3_quants` with
/// weights is this with [`crate::weighted::qkx3`]'s parameters): quants in `0..=nmax` in `l`,
/// and each group's `(scale, min)` with `x ≈ scale·l − min`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lanes are indexed in lockstep across arrays
pub(crate) fn qkx2<const N: usize, const L: usize>(
    p: Qkx2,
    x: &Groups<f32, N, L>,
    w: &Groups<f32, N, L>,
    l: &mut Groups<i32, N, L>,
) -> ([f32; L], [f32; L]) {
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = [0f32; L];
    for j in 0..L {
        sum_x[j] = sum_w[j] * x[0][j];
    }
    for i in 1..N {
        for j in 0..L {
            let v = x[i][j];
            min[j] = if v < min[j] { v } else { min[j] };
            max[j] = if v > max[j] { v } else { max[j] };
            sum_w[j] += w[i][j];
            sum_x[j] += w[i][j] * v;
        }
    }
    let (mut flat, mut scale) = ([false; L], [0f32; L]);
    for j in 0..L {
        min[j] = if min[j] > 0.0 { 0.0 } else { min[j] };
        flat[j] = max[j] == min[j];
    }
    let min0 = min;
    let mut iscale = [0f32; L];
    for j in 0..L {
        iscale[j] = p.nmax as f32 / (max[j] - min[j]);
        scale[j] = 1.0 / iscale[j];
    }
    let mut best_error = [0f32; L];
    for i in 0..N {
        for j in 0..L {
            let q = nearest_int(iscale[j] * (x[i][j] - min[j])).clamp(0, p.nmax);
            let diff = scale[j] * q as f32 + min[j] - x[i][j];
            best_error[j] += w[i][j] * qkx2_err(p, diff);
        }
    }
    // The inverse scale and min the winning quants were computed with (they are recomputed
    // once at the end instead of being kept per candidate).
    let (mut best_iscale, mut best_qmin) = (iscale, min);
    let mut laux = [[0f32; L]; N];
    for is in 0..=p.nstep {
        let num = p.numerator(is);
        let (mut sum_l, mut sum_l2, mut sum_xl) = ([0f32; L], [0f32; L], [0f32; L]);
        // The min of the best candidate so far, as in ggml (it moves as candidates win).
        for j in 0..L {
            iscale[j] = num / (max[j] - min[j]);
        }
        let qmin = min;
        for i in 0..N {
            for j in 0..L {
                let q = nearest_int(iscale[j] * (x[i][j] - qmin[j])).clamp(0, p.nmax);
                let lf = q as f32;
                laux[i][j] = lf;
                let wl = w[i][j] * lf;
                sum_l[j] += wl;
                sum_l2[j] += wl * lf;
                sum_xl[j] += wl * x[i][j];
            }
        }
        let (mut this_scale, mut this_min, mut det) = ([0f32; L], [0f32; L], [0f32; L]);
        for j in 0..L {
            det[j] = sum_w[j] * sum_l2[j] - sum_l[j] * sum_l[j];
            let s = (sum_w[j] * sum_xl[j] - sum_x[j] * sum_l[j]) / det[j];
            let m = (sum_l2[j] * sum_x[j] - sum_l[j] * sum_xl[j]) / det[j];
            let pos = m > 0.0;
            this_min[j] = if pos { 0.0 } else { m };
            this_scale[j] = if pos { sum_xl[j] / sum_l2[j] } else { s };
        }
        let mut cur_error = [0f32; L];
        for i in 0..N {
            for j in 0..L {
                let diff = this_scale[j] * laux[i][j] + this_min[j] - x[i][j];
                cur_error[j] += w[i][j] * qkx2_err(p, diff);
            }
        }
        for j in 0..L {
            // `&`, not `&&`: a branch-free select in every lane
            #[allow(clippy::needless_bitwise_bool)]
            let take = (det[j] > 0.0) & (cur_error[j] < best_error[j]);
            best_error[j] = if take { cur_error[j] } else { best_error[j] };
            scale[j] = if take { this_scale[j] } else { scale[j] };
            min[j] = if take { this_min[j] } else { min[j] };
            best_iscale[j] = if take { iscale[j] } else { best_iscale[j] };
            best_qmin[j] = if take { qmin[j] } else { best_qmin[j] };
        }
    }
    let mut neg_min = [0f32; L];
    for j in 0..L {
        scale[j] = if flat[j] { 0.0 } else { scale[j] };
        neg_min[j] = -(if flat[j] { min0[j] } else { min[j] });
    }
    for i in 0..N {
        for j in 0..L {
            let q = nearest_int(best_iscale[j] * (x[i][j] - best_qmin[j])).clamp(0, p.nmax);
            l[i][j] = if flat[j] { 0 } else { q };
        }
    }
    (scale, neg_min)
}

/// ggml's `best_index_int8` over the iq4 grid on lanes, as [`crate::iq4_nl::best_index`]
/// computes it: the grid value (not its index) nearest `v`, the upper one of two unless
/// `v − lower < upper − v`; the ends for `v ≤ grid[0]` and for `v ≥ grid[15]` or NaN.
#[inline(always)]
pub(crate) fn iq4_grid_value<const L: usize>(v: &[f32; L]) -> [f32; L] {
    let g = &crate::iq4_nl::GRID;
    let (mut lo, mut hi) = ([g[0]; L], [g[15]; L]);
    for &gi in g {
        for j in 0..L {
            lo[j] = if gi <= v[j] { gi } else { lo[j] };
        }
    }
    for &gi in g.iter().rev() {
        for j in 0..L {
            hi[j] = if gi > v[j] { gi } else { hi[j] };
        }
    }
    let mut q = [0f32; L];
    for j in 0..L {
        let x = v[j];
        let inner = if x - lo[j] < hi[j] - x { lo[j] } else { hi[j] };
        let below_top = if x < g[15] { inner } else { g[15] };
        q[j] = if x <= g[0] { g[0] } else { below_top };
    }
    q
}

/// One pass of [`iq4_scales`] at inverse scales `id`: `(Σw·q·x, Σw·q²)` per lane.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lanes are indexed in lockstep across arrays
fn iq4_sums<const L: usize>(
    x: &Groups<f32, 32, L>,
    w: &Groups<f32, 32, L>,
    id: &[f32; L],
) -> ([f32; L], [f32; L]) {
    let (mut sumqx, mut sumq2) = ([0f32; L], [0f32; L]);
    for i in 0..32 {
        let mut v = [0f32; L];
        for j in 0..L {
            v[j] = id[j] * x[i][j];
        }
        let q = iq4_grid_value(&v);
        for j in 0..L {
            sumqx[j] += w[i][j] * q[j] * x[i][j];
            sumq2[j] += w[i][j] * q[j] * q[j];
        }
    }
    (sumqx, sumq2)
}

/// [`iq4_grid_value`] as grid indices (what ggml's `best_index_int8` returns).
#[inline(always)]
pub(crate) fn iq4_grid_index<const L: usize>(v: &[f32; L]) -> [u8; L] {
    let q = iq4_grid_value(v);
    let mut k = [0u8; L];
    for &gi in &crate::iq4_nl::GRID {
        for j in 0..L {
            k[j] += u8::from(gi < q[j]);
        }
    }
    k
}

/// The scale search of ggml's `quantize_row_iq4_nl_impl` (`ntry` > 0 trial scales around
/// `−max / grid[0]`) on `L` blocks of 32 with weights `w`: each block's chosen scale, 0 for a
/// block whose largest magnitude is below [`GROUP_MAX_EPS`] — what
/// [`crate::iq4_nl::search_block_weighted`] returns per block (its indices are recomputed from
/// the scale by every caller).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lanes are indexed in lockstep across arrays
pub(crate) fn iq4_scales<const L: usize>(
    x: &Groups<f32, 32, L>,
    w: &Groups<f32, 32, L>,
    ntry: i32,
) -> [f32; L] {
    let (amax, max) = signed_max_abs(x);
    let mut id = [0f32; L];
    for j in 0..L {
        id[j] = crate::iq4_nl::first_id(max[j], ntry);
    }
    let (sumqx, sumq2) = iq4_sums(x, w, &id);
    let (mut d, mut best) = ([0f32; L], [0f32; L]);
    for j in 0..L {
        d[j] = if sumq2[j] > 0.0 {
            sumqx[j] / sumq2[j]
        } else {
            0.0
        };
        best[j] = d[j] * sumqx[j];
    }
    for itry in -ntry..=ntry {
        for j in 0..L {
            id[j] = crate::iq4_nl::trial_id(itry, max[j]);
        }
        let (sumqx, sumq2) = iq4_sums(x, w, &id);
        for j in 0..L {
            let take = sumq2[j] > 0.0 && sumqx[j] * sumqx[j] > best[j] * sumq2[j];
            let dj = sumqx[j] / sumq2[j];
            d[j] = if take { dj } else { d[j] };
            best[j] = if take { dj * sumqx[j] } else { best[j] };
        }
    }
    for j in 0..L {
        d[j] = if amax[j] < GROUP_MAX_EPS { 0.0 } else { d[j] };
    }
    d
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // lanes against their groups, by index
mod tests {
    use super::*;
    use crate::kquant_search::{make_qkx2_quants, make_qx_quants};
    use crate::weighted::qkx3;
    use proptest::prelude::*;

    /// `L` groups of `N` values from `v` (each group is scaled by its own factor; groups whose
    /// factor is 0 are all zero, the early-exit lane), and positive weights from `w`.
    fn groups<const N: usize, const L: usize>(
        v: &[f32],
        f: &[f32],
        w: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let x = (0..N * L).map(|k| v[k] * f[k / N]).collect();
        (x, w[..N * L].iter().map(|w| w.abs()).collect())
    }

    fn check_qx<const N: usize, const L: usize>(nmax: i32, x: &[f32], w: &[f32]) {
        let mut l = [[0i32; L]; N];
        let s = qx::<N, L>(nmax, &gather(x), &gather(w), &mut l);
        for j in 0..L {
            let r = N * j..N * j + N;
            let mut want = vec![0i8; N];
            let ws = make_qx_quants(nmax, &x[r.clone()], &mut want, Some(&w[r]));
            assert_eq!(s[j].to_bits(), ws.to_bits(), "group {j}: scale");
            let got: Vec<i8> = (0..N).map(|i| l[i][j] as i8).collect();
            assert_eq!(got, want, "group {j}: quants");
        }
    }

    fn check_qkx2<const N: usize, const L: usize>(p: Qkx2, x: &[f32], w: &[f32]) {
        let mut l = [[0i32; L]; N];
        let (s, m) = qkx2::<N, L>(p, &gather(x), &gather(w), &mut l);
        for j in 0..L {
            let r = N * j..N * j + N;
            let (mut want, mut aux) = (vec![0u8; N], vec![0u8; N]);
            let (ws, wm) = make_qkx2_quants(p, &x[r.clone()], &w[r], &mut want, &mut aux);
            assert_eq!(
                (s[j].to_bits(), m[j].to_bits()),
                (ws.to_bits(), wm.to_bits()),
                "group {j}"
            );
            let got: Vec<u8> = (0..N).map(|i| l[i][j] as u8).collect();
            assert_eq!(got, want, "group {j}: quants");
        }
    }

    #[test]
    fn grid_value_is_best_index() {
        let g = crate::iq4_nl::GRID;
        let mut v: Vec<f32> = vec![f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.0, -0.0, 1e30];
        for k in -1300..1300 {
            v.push(k as f32 * 0.1);
        }
        for w in g.windows(2) {
            v.push(f32::midpoint(w[0], w[1]));
        }
        for c in v.chunks(16) {
            let mut a = [0f32; 16];
            a[..c.len()].copy_from_slice(c);
            let q = iq4_grid_value(&a);
            for j in 0..16 {
                let want = crate::iq4_nl::best_index(a[j]);
                assert_eq!(
                    q[j].to_bits(),
                    g[usize::from(want)].to_bits(),
                    "at {}",
                    a[j]
                );
                assert_eq!(iq4_grid_index(&a)[j], want, "index at {}", a[j]);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn iq4_lanes_are_the_scalar_search(
            v in proptest::collection::vec(-4.0f32..4.0, 512),
            f in proptest::collection::vec(prop_oneof![Just(0.0f32), 1e-3f32..10.0], 16),
            w in proptest::collection::vec(-2.0f32..2.0, 512),
            sq: bool,
        ) {
            let (x, mut w) = groups::<32, 16>(&v, &f, &w);
            if sq {
                w = x.iter().map(|v| v * v).collect();
            }
            let d = iq4_scales::<16>(&gather(&x), &gather(&w), 7);
            for j in 0..16 {
                let r = 32 * j..32 * j + 32;
                let mut l = [0u8; 32];
                let want = crate::iq4_nl::search_block_weighted(&x[r.clone()], Some(&w[r]), 7, &mut l)
                    .unwrap_or(0.0);
                prop_assert_eq!(d[j].to_bits(), want.to_bits(), "block {}", j);
            }
        }

        #[test]
        fn lanes_are_the_scalar_searches(
            v in proptest::collection::vec(-4.0f32..4.0, 512),
            f in proptest::collection::vec(prop_oneof![Just(0.0f32), 1e-3f32..10.0], 16),
            w in proptest::collection::vec(-2.0f32..2.0, 512),
        ) {
            let (x, w) = groups::<32, 16>(&v, &f, &w);
            for nmax in [4, 8, 16, 32] {
                check_qx::<32, 16>(nmax, &x, &w);
                check_qx::<16, 16>(nmax, &x[..256], &w[..256]);
            }
            for p in [qkx3(3), qkx3(15), qkx3(31), crate::kquant_search::Q2K_SEARCH] {
                check_qkx2::<32, 16>(p, &x, &w);
                check_qkx2::<16, 16>(p, &x[..256], &w[..256]);
                check_qkx2::<32, 8>(p, &x[..256], &w[..256]);
            }
        }
    }
}
