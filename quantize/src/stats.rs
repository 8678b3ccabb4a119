//! Error statistics of a quantized tensor: dequantize(quantize(w)) against w.
//!
//! ```
//! use llamapack_quantize::stats::ErrorStats;
//!
//! let w = [1.0f32, -2.0, 3.0, 0.5];
//! let q = [1.0f32, -2.0, 2.9, 0.5];
//! let mut s = ErrorStats::default();
//! s.add(&w, &q);
//! assert!((s.max_abs_err() - 0.1).abs() < 1e-6);
//! assert!(s.snr_db() > 25.0);
//! ```

use serde::Serialize;

/// Running sums over one tensor; [`merge`](Self::merge) combines rows done in parallel.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorStats {
    n: u64,
    sum_sq_w: f64,
    sum_sq_err: f64,
    max_abs_err: f64,
}

/// The reported figures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ErrorReport {
    /// Elements compared.
    pub n: u64,
    /// Root mean square error.
    pub rmse: f64,
    /// RMSE divided by the RMS of the original weights.
    pub rel_rms_err: f64,
    /// Signal-to-noise ratio in dB: 10·log10(Σw² / Σerr²); infinite when exact.
    pub snr_db: f64,
    /// Largest absolute error.
    pub max_abs_err: f64,
}

/// Values per step of [`ErrorStats::add`]: element `i` of a row goes to running sum `i mod K`.
pub(crate) const K: usize = 8;

/// The running sums of [`ErrorStats::add`], one per lane `k < K`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Lanes {
    /// Σw² of lane `k`.
    pub(crate) sw: [f64; K],
    /// Σ(q − w)² of lane `k`.
    pub(crate) se: [f64; K],
    /// Largest |q − w| of lane `k` (`if a > max { a } else { max }`, from 0).
    pub(crate) mx: [f64; K],
    /// Whether lane `k` saw a NaN error (the largest error is then NaN).
    pub(crate) nan: [bool; K],
}

/// [`ErrorStats::add`] without SIMD: the whole `K`-value steps, then [`add_tail`].
pub(crate) fn add_sums(s: &mut ErrorStats, original: &[f32], roundtrip: &[f32]) {
    let mut l = Lanes::default();
    let (wc, qc) = (original.chunks_exact(K), roundtrip.chunks_exact(K));
    for (w, q) in wc.zip(qc) {
        for k in 0..K {
            let wd = f64::from(w[k]);
            let e = f64::from(q[k]) - wd;
            l.sw[k] += wd * wd;
            l.se[k] += e * e;
            let a = e.abs();
            l.mx[k] = if a > l.mx[k] { a } else { l.mx[k] };
            l.nan[k] |= a.is_nan();
        }
    }
    add_tail(s, l, original, roundtrip);
}

/// The end of [`ErrorStats::add`] at every level: the values after the last whole step of `K`
/// into lanes `0..`, then the lanes folded into `s` in order.
pub(crate) fn add_tail(s: &mut ErrorStats, mut l: Lanes, original: &[f32], roundtrip: &[f32]) {
    debug_assert_eq!(original.len(), roundtrip.len());
    let done = original.len() / K * K;
    for (k, (&w, &q)) in original[done..].iter().zip(&roundtrip[done..]).enumerate() {
        let wd = f64::from(w);
        let e = f64::from(q) - wd;
        l.sw[k] += wd * wd;
        l.se[k] += e * e;
        let a = e.abs();
        l.mx[k] = if a > l.mx[k] { a } else { l.mx[k] };
        l.nan[k] |= a.is_nan();
    }
    for k in 0..K {
        s.sum_sq_w += l.sw[k];
        s.sum_sq_err += l.se[k];
        let m = if l.nan[k] { f64::NAN } else { l.mx[k] };
        s.max_abs_err = if m > s.max_abs_err || m.is_nan() {
            m
        } else {
            s.max_abs_err
        };
    }
    s.n += original.len() as u64;
}

impl ErrorStats {
    /// Adds a row: `original` and its round trip, of equal length. Runs at the widest SIMD
    /// level of [`crate::kernels`] (the same f64 operations in the same order at every level).
    pub fn add(&mut self, original: &[f32], roundtrip: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::x86::error_stats_add(self, original, roundtrip) {
            return;
        }
        add_sums(self, original, roundtrip);
    }

    /// Combines two partial sums.
    #[must_use]
    pub fn merge(self, other: ErrorStats) -> ErrorStats {
        ErrorStats {
            n: self.n + other.n,
            sum_sq_w: self.sum_sq_w + other.sum_sq_w,
            sum_sq_err: self.sum_sq_err + other.sum_sq_err,
            max_abs_err: self.max_abs_err.max(other.max_abs_err),
        }
    }

    /// Root mean square error.
    pub fn rmse(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.sum_sq_err / self.n as f64).sqrt()
        }
    }

    /// RMSE relative to the RMS of the weights (0 for an all-zero tensor quantized exactly).
    pub fn rel_rms_err(&self) -> f64 {
        if self.sum_sq_w == 0.0 {
            if self.sum_sq_err == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (self.sum_sq_err / self.sum_sq_w).sqrt()
        }
    }

    /// Signal-to-noise ratio in dB.
    pub fn snr_db(&self) -> f64 {
        if self.sum_sq_err == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.sum_sq_w / self.sum_sq_err).log10()
        }
    }

    /// Largest absolute error.
    pub fn max_abs_err(&self) -> f64 {
        self.max_abs_err
    }

    /// All figures.
    pub fn report(&self) -> ErrorReport {
        ErrorReport {
            n: self.n,
            rmse: self.rmse(),
            rel_rms_err: self.rel_rms_err(),
            snr_db: self.snr_db(),
            max_abs_err: self.max_abs_err(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_by_hand() {
        let mut s = ErrorStats::default();
        s.add(&[3.0, 4.0], &[3.0, 3.0]); // err = [0, -1]
        let r = s.report();
        assert_eq!(r.n, 2);
        assert!((r.rmse - (0.5f64).sqrt()).abs() < 1e-12);
        assert!((r.rel_rms_err - (1.0f64 / 25.0).sqrt()).abs() < 1e-12);
        assert!((r.snr_db - 10.0 * 25f64.log10()).abs() < 1e-12);
        assert_eq!(r.max_abs_err, 1.0);
    }

    #[test]
    fn merge_equals_one_pass() {
        let w: Vec<f32> = (0..100).map(|i| (i as f32).sin()).collect();
        let q: Vec<f32> = w.iter().map(|x| (x * 8.0).round() / 8.0).collect();
        let mut one = ErrorStats::default();
        one.add(&w, &q);
        let mut a = ErrorStats::default();
        let mut b = ErrorStats::default();
        a.add(&w[..37], &q[..37]);
        b.add(&w[37..], &q[37..]);
        let m = a.merge(b);
        assert_eq!(m.n, one.n);
        assert!((m.rmse() - one.rmse()).abs() < 1e-12);
        assert_eq!(m.max_abs_err(), one.max_abs_err());
    }

    #[test]
    fn exact_and_zero() {
        let mut s = ErrorStats::default();
        s.add(&[0.0; 4], &[0.0; 4]);
        assert_eq!(s.rel_rms_err(), 0.0);
        assert!(s.snr_db().is_infinite());
    }
}
