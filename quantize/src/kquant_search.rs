//! The sub-block searches of ggml's k-quant reference encoders, shared by every k-quant format
//! (q2_k, q3_k, q4_k, q5_k, q6_k) and mirrored lane for lane by the SIMD encoders.
//!
//! Each function follows its C counterpart in `ggml-quants.c` operation for operation: the same
//! f32 order (no fused multiply-add), ggml's `nearest_int`, and its comparisons, so the results
//! are bit-identical on every input, degenerate ones included.

use crate::rounding::nearest_int;

/// ggml's `GROUP_MAX_EPS`: groups whose largest magnitude is below it quantize to zero.
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// The parameters of one use of `make_qkx2_quants`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Qkx2 {
    /// Largest quant (`L` in `0..=nmax`).
    pub(crate) nmax: i32,
    /// Offset of the first candidate inverse scale (`(rmin + nmax) / (max − min)`).
    pub(crate) rmin: f32,
    /// Step between candidates.
    pub(crate) rdelta: f32,
    /// Number of steps (`nstep + 1` candidates).
    pub(crate) nstep: i32,
    /// Weighted absolute error instead of weighted squared error.
    pub(crate) use_mad: bool,
}

/// q2_k's search: 16 values, nmax 3, absolute error.
pub(crate) const Q2K_SEARCH: Qkx2 = Qkx2 {
    nmax: 3,
    rmin: -0.5,
    rdelta: 0.1,
    nstep: 15,
    use_mad: true,
};
/// q4_k's search: 32 values, nmax 15.
pub(crate) const Q4K_SEARCH: Qkx2 = Qkx2 {
    nmax: 15,
    rmin: -1.0,
    rdelta: 0.1,
    nstep: 20,
    use_mad: false,
};
/// q5_k's search: 32 values, nmax 31.
pub(crate) const Q5K_SEARCH: Qkx2 = Qkx2 {
    nmax: 31,
    rmin: -0.5,
    rdelta: 0.1,
    nstep: 15,
    use_mad: false,
};

impl Qkx2 {
    /// The numerator of candidate `is`: `(rmin + rdelta·is) + nmax`, in C's order.
    #[inline(always)]
    pub(crate) fn numerator(self, is: i32) -> f32 {
        self.rmin + self.rdelta * is as f32 + self.nmax as f32
    }

    /// The error term of one difference.
    #[inline(always)]
    fn err(self, diff: f32) -> f32 {
        if self.use_mad {
            diff.abs()
        } else {
            diff * diff
        }
    }
}

/// ggml's `make_qkx2_quants`: fits `x ≈ scale·L − min` (L in 0..=nmax, min ≥ 0) minimizing the
/// weighted error over a grid of `nstep + 1` candidate scales. Returns `(scale, min)`; `l` gets
/// the quants, `laux` is scratch (both at least `x.len()` long).
pub(crate) fn make_qkx2_quants(
    p: Qkx2,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let nmax = p.nmax;
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let diff = scale * f32::from(l[i]) + min - x[i];
        best_error += weights[i] * p.err(diff);
    }
    for is in 0..=p.nstep {
        iscale = p.numerator(is) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let w = weights[i];
            let lf = q as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                cur_error += weights[i] * p.err(diff);
            }
            if cur_error < best_error {
                l[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// The weights q4_k and q5_k give `make_qkx2_quants`: `sqrt(Σx²/32) + |x|`.
pub(crate) fn rms_abs_weights(xs: &[f32; 32], w: &mut [f32; 32]) {
    let mut sum_x2 = 0.0f32;
    for &v in xs {
        sum_x2 += v * v;
    }
    let av_x = (sum_x2 / 32.0).sqrt();
    for (w, &v) in w.iter_mut().zip(xs) {
        *w = av_x + v.abs();
    }
}

/// The first half of the q4_k and q5_k encoders: `make_qkx2_quants(p)` on the 8 sub-blocks of
/// 32 of `xb` with [`rms_abs_weights`]. Returns the scales and mins; `l` gets the quants.
pub(crate) fn search_sub32(p: Qkx2, xb: &[f32], l: &mut [u8; 256]) -> ([f32; 8], [f32; 8]) {
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    for j in 0..8 {
        let xs: &[f32; 32] = xb[32 * j..32 * j + 32].try_into().expect("32 values");
        rms_abs_weights(xs, &mut weights);
        (scales[j], mins[j]) =
            make_qkx2_quants(p, xs, &weights, &mut l[32 * j..32 * j + 32], &mut laux);
    }
    (scales, mins)
}

/// C's `if (v > max) max = v` over `v`, from 0: the largest value, or 0 if none is positive.
#[inline(always)]
pub(crate) fn max_from_zero(v: &[f32]) -> f32 {
    let mut max = 0.0f32;
    for &s in v {
        if s > max {
            max = s;
        }
    }
    max
}

/// The element of largest magnitude with its sign (the first one of ties), and that magnitude;
/// `(0, 0)` if every element is ±0.
#[inline(always)]
pub(crate) fn signed_max_abs(v: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &s in v {
        if s.abs() > amax {
            amax = s.abs();
            max = s;
        }
    }
    (max, amax)
}

/// ggml's `make_qx_quants` with `rmse_type = 1`: symmetric quants `L` in 0..2·nmax (stored with
/// the `+nmax` offset) and the scale minimizing `Σ w·(x − scale·l)²`, searching 18 perturbed
/// inverse scales around `−nmax/max`. Weights are `qw` if given (importance matrix), else `x²`.
#[allow(clippy::needless_range_loop)] // indexes x, l and the weights in lockstep, as ggml does
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [i8], qw: Option<&[f32]>) -> f32 {
    let n = x.len();
    let (max, amax) = signed_max_abs(x);
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let weight = |i: usize| qw.map_or(x[i] * x[i], |w| w[i]);
    let nmaxf = nmax as f32;
    let mut iscale = -nmaxf / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = (q + nmax) as i8;
        let w = weight(i);
        let qf = q as f32;
        sumlx += w * x[i] * qf;
        suml2 += w * qf * qf;
    }
    let mut scale = if suml2 == 0.0 { 0.0 } else { sumlx / suml2 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for i in 0..n {
            let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
            let w = weight(i);
            let qf = q as f32;
            sumlx += w * x[i] * qf;
            suml2 += w * qf * qf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
                l[i] = (nmax + q) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse = true` (q3_k): symmetric quants `l` in
/// `−nmax..nmax` from `−nmax/max`, then up to 5 passes of coordinate descent on each quant,
/// keeping a change when it raises `(Σw·x·l)² / Σw·l²` (`w = x²`). Stores `l + nmax` and returns
/// `Σw·x·l / Σw·l²` (0 if that sum is 0). A group whose largest magnitude is below
/// [`GROUP_MAX_EPS`] gets `L = 0` (not `nmax`) and scale 0, as in ggml.
#[allow(clippy::needless_range_loop)] // indexes x and l in lockstep, as ggml does
pub(crate) fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let n = x.len();
    let (max, amax) = signed_max_abs(x);
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = q as i8;
        let w = x[i] * x[i];
        let qf = q as f32;
        sumlx += w * x[i] * qf;
        suml2 += w * qf * qf;
    }
    for _ in 0..5 {
        let mut changed = false;
        for i in 0..n {
            let w = x[i] * x[i];
            let li = f32::from(l[i]);
            let mut slx = sumlx - w * x[i] * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(l[i]) {
                    let nf = new_l as f32;
                    slx += w * x[i] * nf;
                    sl2 += w * nf * nf;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l as i8;
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
    for q in &mut l[..n] {
        *q += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}
