//! The refit of one block's scales with its codes fixed: the f16 `d` (and `dmin`/`m`) and, in
//! the k-quants and iq4_xs, the integer sub-block scales (and mins), chosen to minimize the
//! block's exact terms of the output error.
//!
//! A block decodes to `Σ_s d·sc_s·U_s + e·m_s·V_s`: `U_s` the codes' grid values in sub-block
//! `s` at unit scale, `V_s` its unit min pattern (both found by decoding the block with unit
//! fields), `sc_s`, `m_s` the sub-block integers (1 in formats without them). Moving the
//! fields moves the block's terms of `Rᵀδ` from `g` (the rounding pass's) by
//! `−R_bbᵀ(ŵ' − ŵ)`, linear in `θ = (d·sc_s, e·m_s)`: the loss is the quadratic
//! `‖g‖² − 2xᵀh + xᵀGx` in `x = θ − θ₀`, with `G` the Gram matrix of the vectors `R_bbᵀU_s`,
//! `R_bbᵀV_s` and `h` their products with `g`. Coordinate descent on it: `(d, e)` by least
//! squares then f16 rounding (the rounding and its neighbours compared), each integer by its
//! optimum rounded and clamped to the format's range (and the neighbours), three sweeps.

// Small dense systems (≤ 16 unknowns) written with the indices of their formulas.
#![allow(clippy::needless_range_loop)]

use half::f16;
use llamapack_format::blocks::QK_K;

use super::factor::Factor;
use super::grid::Grid;

/// Sub-blocks of a block at most (q2_k, q3_k, q6_k: 16).
const MAX_SUBS: usize = 16;
/// Sweeps of coordinate descent.
const SWEEPS: usize = 3;

/// `f16` values next to `x`: its rounding and the two neighbours of that, the finite ones.
#[inline(always)]
fn f16_candidates(x: f64) -> impl Iterator<Item = f16> {
    let r = f16::from_f64(x);
    let b = r.to_bits();
    [
        Some(r),
        b.checked_add(1).map(f16::from_bits),
        b.checked_sub(1).map(f16::from_bits),
    ]
    .into_iter()
    .flatten()
    .filter(|v| v.is_finite())
}

/// The block's fields as the refit moves them.
#[derive(Clone, Copy)]
struct Fields {
    d: f16,
    e: f16,
    sc: [i32; MAX_SUBS],
    m: [i32; MAX_SUBS],
}

/// The quadratic: `gg − 2xᵀh + xᵀGx` over `nv` coefficients.
struct Quad {
    nv: usize,
    g: [[f64; 2 * MAX_SUBS]; 2 * MAX_SUBS],
    h: [f64; 2 * MAX_SUBS],
    gg: f64,
}

impl Quad {
    #[inline(always)]
    fn loss(&self, x: &[f64]) -> f64 {
        let mut l = self.gg;
        for i in 0..self.nv {
            let mut gx = 0.0;
            for j in 0..self.nv {
                gx += self.g[i][j] * x[j];
            }
            l += x[i] * (gx - 2.0 * self.h[i]);
        }
        l
    }
}

/// The refit (see the module docs) of block `y` whose rounding pass gave `codes` (by element)
/// and the scaled residuals `g` (by visit position; `elem[k]` is position `bs + k`'s element).
/// Returns the block with its new fields (codes packed) and the quadratic's loss, if lower
/// than the pass's.
#[inline(always)]
pub(crate) fn refit<F: Grid>(
    fac: &Factor,
    bs: usize,
    elem: &[usize],
    y: &F::Block,
    codes: &[u8],
    g: &[f32],
) -> Option<(F::Block, f64)> {
    let n = F::BLOCK;
    let subs = F::SUB_SCALES.is_some();
    let ns = if subs { n / F::SUB } else { 1 };
    let mins = F::N_SCALES == 2;
    let nv = if mins { 2 * ns } else { ns };
    let mut b = *y;
    F::pack(codes, &mut b);
    let s0 = F::scales(&b);
    let mut f0 = Fields {
        d: s0[0],
        e: s0[1],
        sc: [1; MAX_SUBS],
        m: [1; MAX_SUBS],
    };
    if subs {
        F::sub_scales(&b, &mut f0.sc[..ns], &mut f0.m[..ns]);
    }
    // Unit patterns by visit position: U (d = 1, sub-scales 1) and V (e = 1, sub-mins 1).
    let unit = |scales: [f16; 2], sc: i32, m: i32, out: &mut [f32]| {
        let mut t = b;
        F::set_scales(&mut t, scales);
        if subs {
            F::set_sub_scales(&mut t, &[sc; MAX_SUBS][..ns], &[m; MAX_SUBS][..ns]);
        }
        let mut v = [0f32; QK_K];
        F::dequantize_ref(std::slice::from_ref(&t), &mut v[..n]);
        for (o, &i) in out.iter_mut().zip(elem) {
            *o = v[i];
        }
    };
    let (mut u, mut v) = ([0f32; QK_K], [0f32; QK_K]);
    unit([f16::ONE, f16::ZERO], 1, 0, &mut u[..n]);
    if mins {
        unit([f16::ZERO, f16::ONE], 0, 1, &mut v[..n]);
    }
    // R_bbᵀ of each group's restriction: t[s][k] = Σ_{j<k, j in s} C_jk·u_j.
    let group = |k: usize| if subs { elem[k] / F::SUB } else { 0 };
    let mut tu = [[0f32; QK_K]; MAX_SUBS];
    let mut tv = [[0f32; QK_K]; MAX_SUBS];
    for j in 0..n {
        let s = group(j);
        let c = &fac.c_row(bs + j)[..n - j - 1];
        let (uj, vj) = (u[j], v[j]);
        for (o, &cc) in tu[s][j + 1..n].iter_mut().zip(c) {
            *o += uj * cc;
        }
        if mins {
            for (o, &cc) in tv[s][j + 1..n].iter_mut().zip(c) {
                *o += vj * cc;
            }
        }
    }
    let mut vecs = vec![[0f64; QK_K]; nv];
    for k in 0..n {
        let r = f64::from(fac.rdiag(bs + k));
        for s in 0..ns {
            let own = if group(k) == s {
                (u[k], v[k])
            } else {
                (0.0, 0.0)
            };
            vecs[s][k] = r * f64::from(own.0 + tu[s][k]);
            if mins {
                vecs[ns + s][k] = r * f64::from(own.1 + tv[s][k]);
            }
        }
    }
    let mut q = Quad {
        nv,
        g: [[0.0; 2 * MAX_SUBS]; 2 * MAX_SUBS],
        h: [0.0; 2 * MAX_SUBS],
        gg: 0.0,
    };
    for k in 0..n {
        q.gg += f64::from(g[k]) * f64::from(g[k]);
    }
    for i in 0..nv {
        q.h[i] = (0..n).map(|k| vecs[i][k] * f64::from(g[k])).sum();
        for j in i..nv {
            let dot: f64 = (0..n).map(|k| vecs[i][k] * vecs[j][k]).sum();
            q.g[i][j] = dot;
            q.g[j][i] = dot;
        }
    }
    let theta = |f: &Fields, out: &mut [f64]| {
        for s in 0..ns {
            out[s] = f.d.to_f64() * f64::from(f.sc[s]);
            if mins {
                out[ns + s] = f.e.to_f64() * f64::from(f.m[s]);
            }
        }
    };
    let mut t0 = [0f64; 2 * MAX_SUBS];
    theta(&f0, &mut t0);
    let x_of = |f: &Fields| {
        let mut x = [0f64; 2 * MAX_SUBS];
        theta(f, &mut x);
        for (xi, &t) in x.iter_mut().zip(&t0).take(nv) {
            *xi -= t;
        }
        x
    };
    let base = q.gg;
    let mut cur = f0;
    let mut cur_loss = base;
    for _ in 0..if subs { SWEEPS } else { 1 } {
        // (d, e): x = d·SC + e·M − θ₀.
        let (mut sc_v, mut m_v) = ([0f64; 2 * MAX_SUBS], [0f64; 2 * MAX_SUBS]);
        for s in 0..ns {
            sc_v[s] = f64::from(cur.sc[s]);
            if mins {
                m_v[ns + s] = f64::from(cur.m[s]);
            }
        }
        let quad = |a: &[f64], b: &[f64]| -> f64 {
            (0..nv)
                .map(|i| a[i] * (0..nv).map(|j| q.g[i][j] * b[j]).sum::<f64>())
                .sum()
        };
        // Right-hand side: SC·(h + Gθ₀).
        let mut rhs_v = [0f64; 2 * MAX_SUBS];
        for i in 0..nv {
            rhs_v[i] = q.h[i] + (0..nv).map(|j| q.g[i][j] * t0[j]).sum::<f64>();
        }
        let dot = |a: &[f64], b: &[f64]| (0..nv).map(|i| a[i] * b[i]).sum::<f64>();
        let (ss, sm, mm) = (quad(&sc_v, &sc_v), quad(&sc_v, &m_v), quad(&m_v, &m_v));
        let (rs, rm) = (dot(&sc_v, &rhs_v), dot(&m_v, &rhs_v));
        let (dopt, eopt) = if mins {
            let det = ss * mm - sm * sm;
            if det > 1e-12 * ss * mm && det > 0.0 {
                ((rs * mm - rm * sm) / det, (rm * ss - rs * sm) / det)
            } else if ss > 0.0 {
                (rs / ss, cur.e.to_f64())
            } else {
                (cur.d.to_f64(), cur.e.to_f64())
            }
        } else if ss > 0.0 {
            (rs / ss, 0.0)
        } else {
            (cur.d.to_f64(), 0.0)
        };
        let e_cands: Vec<f16> = if mins {
            f16_candidates(eopt).collect()
        } else {
            vec![cur.e]
        };
        for dc in f16_candidates(dopt) {
            for &ec in &e_cands {
                let f = Fields {
                    d: dc,
                    e: ec,
                    ..cur
                };
                let l = q.loss(&x_of(&f));
                if l < cur_loss {
                    cur = f;
                    cur_loss = l;
                }
            }
        }
        if !subs {
            break;
        }
        // The integers, one at a time, on the exact quadratic.
        let (lo, hi) = F::SUB_SCALES.expect("sub-scale format");
        let mut x = x_of(&cur);
        let mut gx = [0f64; 2 * MAX_SUBS];
        for i in 0..nv {
            gx[i] = (0..nv).map(|j| q.g[i][j] * x[j]).sum();
        }
        let families: &[(usize, f64, (i32, i32))] = if mins {
            &[
                (0, cur.d.to_f64(), (lo, hi)),
                (ns, cur.e.to_f64(), F::SUB_MINS.expect("mins")),
            ]
        } else {
            &[(0, cur.d.to_f64(), (lo, hi))]
        };
        for &(off, scale, (lo, hi)) in families {
            if scale == 0.0 {
                continue;
            }
            for s in 0..ns {
                let i = off + s;
                let gii = q.g[i][i];
                if gii <= 0.0 {
                    continue;
                }
                let r = q.h[i] - gx[i];
                let now = if off == 0 { cur.sc[s] } else { cur.m[s] };
                let theta_now = scale * f64::from(now);
                let ideal = ((theta_now + r / gii) / scale).round();
                let ideal = ideal.clamp(f64::from(lo), f64::from(hi)) as i32;
                let (mut best_c, mut best_dl) = (now, 0.0);
                for c in [ideal - 1, ideal, ideal + 1] {
                    if c < lo || c > hi || c == now {
                        continue;
                    }
                    let t = scale * f64::from(c) - theta_now;
                    let dl = -2.0 * t * r + t * t * gii;
                    if dl < best_dl {
                        best_dl = dl;
                        best_c = c;
                    }
                }
                if best_c != now {
                    let t = scale * f64::from(best_c) - theta_now;
                    x[i] += t;
                    for (j, o) in gx.iter_mut().enumerate().take(nv) {
                        *o += q.g[j][i] * t;
                    }
                    if off == 0 {
                        cur.sc[s] = best_c;
                    } else {
                        cur.m[s] = best_c;
                    }
                }
            }
        }
        cur_loss = q.loss(&x);
    }
    if cur_loss >= base {
        return None;
    }
    F::set_scales(&mut b, [cur.d, cur.e]);
    if subs {
        F::set_sub_scales(&mut b, &cur.sc[..ns], &cur.m[..ns]);
    }
    Some((b, cur_loss))
}
