//! Accuracy of a candidate model against a reference, token by token: the statistics
//! llama.cpp's `llama-perplexity --kl-divergence` prints, with the same definitions and
//! uncertainties, computed in f64 from full-precision log-softmax.
//!
//! ```
//! use llamapack_runner::accuracy::Accumulator;
//!
//! let base = [2.0f32, 1.0, 0.0];
//! let mut acc = Accumulator::default();
//! acc.add(&base, &base, 0);
//! let s = acc.summary();
//! assert_eq!(s.kld_mean, 0.0);
//! assert_eq!(s.top1_agreement, 1.0);
//! assert_eq!(s.ppl_ratio, 1.0);
//! ```

use serde::Serialize;

use crate::forward::Logits;
use crate::metrics::{argmax, kl_divergence, log_softmax};

/// Running sums over scored tokens.
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    count: u64,
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    n_same_top: u64,
    kld_values: Vec<f32>,
    p_diff_values: Vec<f32>,
    scratch_base: Vec<f64>,
    scratch_cand: Vec<f64>,
}

/// Every figure of the report. Probabilities are fractions (0..1), not percent. Uncertainties
/// and the correlation are NaN (serialized as `null`) when fewer than
/// [`MIN_TOKENS_FOR_UNCERTAINTY`] tokens were scored: see [`Summary::has_uncertainties`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Tokens scored.
    pub n_tokens: u64,
    /// Perplexity of the candidate, exp(mean NLL).
    pub ppl: f64,
    /// Its uncertainty.
    pub ppl_unc: f64,
    /// Perplexity of the reference.
    pub ppl_base: f64,
    /// Its uncertainty.
    pub ppl_base_unc: f64,
    /// Pearson correlation of the per-token NLLs of candidate and reference.
    pub ln_ppl_correlation: f64,
    /// Mean ln(PPL(Q)/PPL(base)).
    pub ln_ppl_ratio: f64,
    /// Its uncertainty.
    pub ln_ppl_ratio_unc: f64,
    /// PPL(Q)/PPL(base).
    pub ppl_ratio: f64,
    /// Its uncertainty.
    pub ppl_ratio_unc: f64,
    /// PPL(Q) − PPL(base).
    pub ppl_diff: f64,
    /// Its uncertainty.
    pub ppl_diff_unc: f64,
    /// Mean KL divergence KL(base ‖ Q) in nats.
    pub kld_mean: f64,
    /// Its uncertainty.
    pub kld_unc: f64,
    /// Largest per-token KLD.
    pub kld_max: f64,
    /// 99.9th percentile.
    pub kld_p999: f64,
    /// 99th percentile.
    pub kld_p99: f64,
    /// 95th percentile.
    pub kld_p95: f64,
    /// 90th percentile.
    pub kld_p90: f64,
    /// Median.
    pub kld_median: f64,
    /// 10th percentile.
    pub kld_p10: f64,
    /// 5th percentile.
    pub kld_p5: f64,
    /// 1st percentile.
    pub kld_p1: f64,
    /// 0.1th percentile.
    pub kld_p01: f64,
    /// Smallest per-token KLD.
    pub kld_min: f64,
    /// Mean Δp = p_Q(correct) − p_base(correct).
    pub dp_mean: f64,
    /// Its uncertainty.
    pub dp_unc: f64,
    /// Largest Δp.
    pub dp_max: f64,
    /// 99.9th percentile of Δp.
    pub dp_p999: f64,
    /// 99th percentile.
    pub dp_p99: f64,
    /// 95th percentile.
    pub dp_p95: f64,
    /// 90th percentile.
    pub dp_p90: f64,
    /// 75th percentile.
    pub dp_p75: f64,
    /// Median Δp.
    pub dp_median: f64,
    /// 25th percentile.
    pub dp_p25: f64,
    /// 10th percentile.
    pub dp_p10: f64,
    /// 5th percentile.
    pub dp_p5: f64,
    /// 1st percentile.
    pub dp_p1: f64,
    /// 0.1th percentile.
    pub dp_p01: f64,
    /// Smallest Δp.
    pub dp_min: f64,
    /// Root mean square of Δp.
    pub rms_dp: f64,
    /// Its uncertainty.
    pub rms_dp_unc: f64,
    /// Fraction of tokens whose most likely next token is the same ("same top p").
    pub top1_agreement: f64,
    /// Its uncertainty.
    pub top1_unc: f64,
}

/// Fewest scored tokens with which uncertainties and the correlation are given (llama.cpp
/// gives none for 10 or fewer); with fewer they are NaN (`n/a` in reports, `null` in JSON).
pub const MIN_TOKENS_FOR_UNCERTAINTY: u64 = 11;

/// Mean and the standard error of the mean from Σx and Σx², as llama.cpp computes them
/// (no uncertainty below [`MIN_TOKENS_FOR_UNCERTAINTY`] samples: [`Accumulator::summary`] makes
/// those NaN).
fn mean_and_unc(sum: f64, sum2: f64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let c = n as f64;
    let mean = sum / c;
    let var = sum2 / c - mean * mean;
    let unc = if var > 0.0 && n >= MIN_TOKENS_FOR_UNCERTAINTY {
        (var / (c - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, unc)
}

/// Covariance of the two means (llama.cpp's definition).
fn covariance(sum_a: f64, sum_b: f64, sum_ab: f64, n: u64) -> f64 {
    if n < 10 {
        return 0.0;
    }
    let c = n as f64;
    (sum_ab / c - (sum_a / c) * (sum_b / c)) / (c - 1.0)
}

/// Linear interpolation between the closest ranks of sorted `v`.
pub fn percentile(v: &[f32], fraction: f64) -> f64 {
    match v.len() {
        0 => return 0.0,
        _ if fraction <= 0.0 => return f64::from(v[0]),
        _ if fraction >= 1.0 => return f64::from(v[v.len() - 1]),
        _ => {}
    }
    let p = fraction * (v.len() - 1) as f64;
    let i = p.floor() as usize;
    let t = p - i as f64;
    let j = (i + 1).min(v.len() - 1);
    (1.0 - t) * f64::from(v[i]) + t * f64::from(v[j])
}

impl Summary {
    /// Whether enough tokens were scored for the uncertainties and the correlation.
    pub fn has_uncertainties(&self) -> bool {
        self.n_tokens >= MIN_TOKENS_FOR_UNCERTAINTY
    }
}

/// What one scored position adds to an [`Accumulator`].
#[derive(Clone, Copy, Debug)]
struct Position {
    kld: f64,
    nll: f64,
    nll_base: f64,
    p_diff: f64,
    same_top: bool,
}

impl Position {
    /// The figures of one position; `lb`, `lc` are scratch rows for the two log-softmaxes.
    fn score(
        base: &[f32],
        cand: &[f32],
        target: usize,
        lb: &mut Vec<f64>,
        lc: &mut Vec<f64>,
    ) -> Position {
        debug_assert_eq!(base.len(), cand.len());
        lb.resize(base.len(), 0.0);
        lc.resize(cand.len(), 0.0);
        log_softmax(base, lb);
        log_softmax(cand, lc);
        Position {
            kld: kl_divergence(lb, lc),
            nll: -lc[target],
            nll_base: -lb[target],
            p_diff: lc[target].exp() - lb[target].exp(),
            same_top: argmax(lb) == argmax(lc),
        }
    }
}

impl Accumulator {
    /// Scores one position: `base` and `cand` are the two models' logits for it, `target` the
    /// id of the token that actually follows.
    pub fn add(&mut self, base: &[f32], cand: &[f32], target: usize) {
        let mut lb = std::mem::take(&mut self.scratch_base);
        let mut lc = std::mem::take(&mut self.scratch_cand);
        let p = Position::score(base, cand, target, &mut lb, &mut lc);
        self.push(p);
        self.scratch_base = lb;
        self.scratch_cand = lc;
    }

    /// Scores `targets.len()` consecutive positions, row `i` of `base` / `cand` (`vocab` logits
    /// each) predicting `targets[i]`: the rows are scored in parallel on the current rayon pool
    /// and added in order, so the sums are those of [`Accumulator::add`] row after row.
    ///
    /// # Panics
    /// If `base` or `cand` holds fewer than `targets.len()` rows.
    pub fn add_rows(&mut self, base: &[f32], cand: &[f32], targets: &[u32], vocab: usize) {
        use rayon::prelude::*;
        let m = targets.len();
        assert!(
            base.len() >= m * vocab && cand.len() >= m * vocab,
            "add_rows: {m} rows of {vocab} logits wanted"
        );
        let scored: Vec<Position> = (0..m)
            .into_par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(lb, lc), r| {
                    let row = r * vocab..(r + 1) * vocab;
                    Position::score(&base[row.clone()], &cand[row], targets[r] as usize, lb, lc)
                },
            )
            .collect();
        for p in scored {
            self.push(p);
        }
    }

    fn push(&mut self, p: Position) {
        let Position {
            kld,
            nll,
            nll_base,
            p_diff,
            same_top,
        } = p;
        self.count += 1;
        self.sum_nll += nll;
        self.sum_nll2 += nll * nll;
        self.sum_nll_base += nll_base;
        self.sum_nll_base2 += nll_base * nll_base;
        self.sum_nll_nll_base += nll * nll_base;
        self.sum_kld += kld;
        self.sum_kld2 += kld * kld;
        self.sum_p_diff += p_diff;
        self.sum_p_diff2 += p_diff * p_diff;
        self.sum_p_diff4 += p_diff.powi(4);
        if same_top {
            self.n_same_top += 1;
        }
        self.kld_values.push(kld as f32);
        self.p_diff_values.push(p_diff as f32);
    }

    /// Tokens scored so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Running perplexity of the candidate and mean KLD (for progress lines).
    pub fn running(&self) -> (f64, f64) {
        let c = self.count.max(1) as f64;
        ((self.sum_nll / c).exp(), self.sum_kld / c)
    }

    /// The report.
    pub fn summary(&self) -> Summary {
        let n = self.count;
        let (ln_ppl, ln_ppl_unc) = mean_and_unc(self.sum_nll, self.sum_nll2, n);
        let (ln_base, ln_base_unc) = mean_and_unc(self.sum_nll_base, self.sum_nll_base2, n);
        let ppl = ln_ppl.exp();
        let ppl_base = ln_base.exp();
        let cov = covariance(self.sum_nll, self.sum_nll_base, self.sum_nll_nll_base, n);
        // NaN when the uncertainties are (too few tokens) or when either is 0 (no variation).
        let cor = if ln_ppl_unc > 0.0 && ln_base_unc > 0.0 {
            cov / (ln_ppl_unc * ln_base_unc)
        } else {
            f64::NAN
        };
        let ln_ratio = ln_ppl - ln_base;
        let ln_ratio_unc = (ln_ppl_unc.powi(2) + ln_base_unc.powi(2) - 2.0 * cov)
            .max(0.0)
            .sqrt();
        let ppl_unc = ppl * ln_ppl_unc;
        let ppl_base_unc = ppl_base * ln_base_unc;
        let ppl_cov = ppl * ppl_base * cov;
        let (kld_mean, kld_unc) = mean_and_unc(self.sum_kld, self.sum_kld2, n);
        let (dp_mean, dp_unc) = mean_and_unc(self.sum_p_diff, self.sum_p_diff2, n);
        let (dp_mse, dp_mse_unc) = mean_and_unc(self.sum_p_diff2, self.sum_p_diff4, n);
        let rms_dp = dp_mse.sqrt();
        let top1 = if n == 0 {
            0.0
        } else {
            self.n_same_top as f64 / n as f64
        };
        let top1_unc = if n > 1 {
            (top1 * (1.0 - top1) / (n as f64 - 1.0)).sqrt()
        } else {
            0.0
        };
        let mut kld = self.kld_values.clone();
        kld.sort_by(f32::total_cmp);
        let mut dp = self.p_diff_values.clone();
        dp.sort_by(f32::total_cmp);
        let mut s = Summary {
            n_tokens: n,
            ppl,
            ppl_unc,
            ppl_base,
            ppl_base_unc,
            ln_ppl_correlation: cor,
            ln_ppl_ratio: ln_ratio,
            ln_ppl_ratio_unc: ln_ratio_unc,
            ppl_ratio: ln_ratio.exp(),
            ppl_ratio_unc: ln_ratio.exp() * ln_ratio_unc,
            ppl_diff: ppl - ppl_base,
            ppl_diff_unc: (ppl_unc.powi(2) + ppl_base_unc.powi(2) - 2.0 * ppl_cov)
                .max(0.0)
                .sqrt(),
            kld_mean,
            kld_unc,
            kld_max: percentile(&kld, 1.0),
            kld_p999: percentile(&kld, 0.999),
            kld_p99: percentile(&kld, 0.99),
            kld_p95: percentile(&kld, 0.95),
            kld_p90: percentile(&kld, 0.90),
            kld_median: percentile(&kld, 0.5),
            kld_p10: percentile(&kld, 0.10),
            kld_p5: percentile(&kld, 0.05),
            kld_p1: percentile(&kld, 0.01),
            kld_p01: percentile(&kld, 0.001),
            kld_min: percentile(&kld, 0.0),
            dp_mean,
            dp_unc,
            dp_max: percentile(&dp, 1.0),
            dp_p999: percentile(&dp, 0.999),
            dp_p99: percentile(&dp, 0.99),
            dp_p95: percentile(&dp, 0.95),
            dp_p90: percentile(&dp, 0.90),
            dp_p75: percentile(&dp, 0.75),
            dp_median: percentile(&dp, 0.5),
            dp_p25: percentile(&dp, 0.25),
            dp_p10: percentile(&dp, 0.10),
            dp_p5: percentile(&dp, 0.05),
            dp_p1: percentile(&dp, 0.01),
            dp_p01: percentile(&dp, 0.001),
            dp_min: percentile(&dp, 0.0),
            rms_dp,
            rms_dp_unc: if rms_dp > 0.0 {
                0.5 / rms_dp * dp_mse_unc
            } else {
                0.0
            },
            top1_agreement: top1,
            top1_unc,
        };
        if !s.has_uncertainties() {
            for v in [
                &mut s.ppl_unc,
                &mut s.ppl_base_unc,
                &mut s.ln_ppl_correlation,
                &mut s.ln_ppl_ratio_unc,
                &mut s.ppl_ratio_unc,
                &mut s.ppl_diff_unc,
                &mut s.kld_unc,
                &mut s.dp_unc,
                &mut s.rms_dp_unc,
                &mut s.top1_unc,
            ] {
                *v = f64::NAN;
            }
        }
        s
    }
}

/// How a token stream is cut into evaluation windows, as `llama-perplexity` does: windows of
/// `ctx` tokens, the first token of each replaced by BOS, and only the second half scored
/// (positions `ctx/2 .. ctx-1`, each predicting the token after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// Tokens per window.
    pub ctx: usize,
    /// Number of windows.
    pub n: usize,
    /// The id written over the first token of each window, if the model uses BOS.
    pub bos: Option<u32>,
}

impl Windows {
    /// Windows over `n_tokens` tokens; `max` caps their number (0 = no cap).
    pub fn new(n_tokens: usize, ctx: usize, max: usize, bos: Option<u32>) -> Windows {
        let n = if ctx < 2 { 0 } else { n_tokens / ctx };
        Windows {
            ctx,
            n: if max > 0 { n.min(max) } else { n },
            bos,
        }
    }

    /// The tokens of window `i`, first token replaced by BOS.
    pub fn window(&self, tokens: &[u32], i: usize) -> Vec<u32> {
        let mut w = tokens[i * self.ctx..(i + 1) * self.ctx].to_vec();
        if let Some(b) = self.bos {
            w[0] = b;
        }
        w
    }

    /// First scored position in a window.
    pub fn first(&self) -> usize {
        self.ctx / 2
    }

    /// Tokens scored per window.
    pub fn scored_per_window(&self) -> usize {
        self.ctx - 1 - self.first()
    }

    /// The logits a forward pass over a window must compute for [`Windows::score`]: the rows
    /// of positions `first()..ctx` only (as llama-perplexity asks for; the model then runs
    /// the last block's FFN and the output head for those rows alone).
    pub fn scored_logits(&self) -> Logits {
        Logits::Rows {
            from: self.first(),
            step: 1,
        }
    }

    /// Scores one window (its rows in parallel on the current rayon pool: run it inside
    /// [`crate::Model::install`] to use a model's threads): `base` and `cand` are the logits
    /// of positions `first()..ctx` of `window` (`[ctx - first(), vocab]`, what a pass asked for
    /// [`Windows::scored_logits`] returns; the last row predicts nothing and may be absent).
    ///
    /// # Panics
    /// If `base` or `cand` holds fewer than the `ctx - 1 - first()` scored rows.
    pub fn score(
        &self,
        acc: &mut Accumulator,
        window: &[u32],
        base: &[f32],
        cand: &[f32],
        vocab: usize,
    ) {
        // position j predicts window[j + 1]
        acc.add_rows(base, cand, &window[self.first() + 1..self.ctx], vocab);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_comparison_is_exact() {
        let mut acc = Accumulator::default();
        for t in 0..50 {
            let logits: Vec<f32> = (0..7)
                .map(|i| ((i * 13 + t * 7) % 11) as f32 * 0.3)
                .collect();
            acc.add(&logits, &logits, t % 7);
        }
        let s = acc.summary();
        assert_eq!(s.n_tokens, 50);
        assert_eq!(s.kld_mean, 0.0);
        assert_eq!(s.kld_max, 0.0);
        assert_eq!(s.top1_agreement, 1.0);
        assert_eq!(s.ppl_ratio, 1.0);
        assert_eq!(s.ln_ppl_ratio, 0.0);
        assert_eq!(s.rms_dp, 0.0);
        assert_eq!(s.ppl, s.ppl_base);
    }

    #[test]
    fn too_few_tokens_have_no_uncertainty() {
        let add = |acc: &mut Accumulator, t: usize| {
            let base: Vec<f32> = (0..7)
                .map(|i| ((i * 13 + t * 7) % 11) as f32 * 0.3)
                .collect();
            let cand: Vec<f32> = base.iter().map(|v| v * 0.9 + 0.01).collect();
            acc.add(&base, &cand, t % 7);
        };
        let mut acc = Accumulator::default();
        for t in 0..9 {
            add(&mut acc, t);
        }
        let s = acc.summary();
        assert!(!s.has_uncertainties());
        assert!(s.kld_mean > 0.0 && s.ppl.is_finite());
        for v in [
            s.ppl_unc,
            s.ln_ppl_correlation,
            s.ppl_ratio_unc,
            s.ppl_diff_unc,
            s.kld_unc,
            s.dp_unc,
            s.rms_dp_unc,
            s.top1_unc,
        ] {
            assert!(v.is_nan(), "{v}");
        }
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["kld_unc"].is_null() && json["kld_mean"].is_number());
        for t in 9..40 {
            add(&mut acc, t);
        }
        let s = acc.summary();
        assert!(s.has_uncertainties());
        assert!(s.kld_unc > 0.0 && s.ln_ppl_correlation.is_finite());
    }

    #[test]
    fn hand_computed_two_token_case() {
        // Token 1: base logits ln[0.5, 0.25, 0.25], candidate ln[0.25, 0.5, 0.25], target 0.
        // Token 2: base = candidate = ln[0.2, 0.3, 0.5], target 2.
        let ln = |v: [f64; 3]| v.map(|p| p.ln() as f32);
        let mut acc = Accumulator::default();
        acc.add(&ln([0.5, 0.25, 0.25]), &ln([0.25, 0.5, 0.25]), 0);
        acc.add(&ln([0.2, 0.3, 0.5]), &ln([0.2, 0.3, 0.5]), 2);
        let s = acc.summary();
        // KL(base‖Q) of token 1 = 0.5 ln2 + 0.25 ln(0.5) = 0.25 ln 2.
        let kld1 = 0.25 * 2f64.ln();
        assert!((s.kld_mean - kld1 / 2.0).abs() < 1e-6, "{}", s.kld_mean);
        assert!((s.kld_max - kld1).abs() < 1e-6);
        assert!(s.kld_min.abs() < 1e-6);
        // PPL(Q) = exp((ln 4 + ln 2)/2), PPL(base) = exp((ln 2 + ln 2)/2) = 2.
        assert!((s.ppl - (8f64).sqrt()).abs() < 1e-5, "{}", s.ppl);
        assert!((s.ppl_base - 2.0).abs() < 1e-5);
        assert!((s.ppl_ratio - 8f64.sqrt() / 2.0).abs() < 1e-5);
        // Δp = [-0.25, 0]; RMS = sqrt(0.0625/2).
        assert!((s.dp_mean + 0.125).abs() < 1e-6);
        assert!((s.rms_dp - (0.0625f64 / 2.0).sqrt()).abs() < 1e-6);
        assert_eq!(s.top1_agreement, 0.5);
        // 10 tokens or fewer: no uncertainty, like llama.cpp (NaN: "n/a", not 0).
        assert!(s.kld_unc.is_nan());
    }

    #[test]
    fn windows_follow_llama_perplexity() {
        let tokens: Vec<u32> = (10..31).collect(); // 21 tokens
        let w = Windows::new(tokens.len(), 8, 0, Some(1));
        assert_eq!(w.n, 2);
        assert_eq!(w.window(&tokens, 1), vec![1, 19, 20, 21, 22, 23, 24, 25]);
        assert_eq!((w.first(), w.scored_per_window()), (4, 3));
        assert_eq!(Windows::new(21, 8, 1, None).n, 1);
        assert_eq!(Windows::new(5, 8, 0, None).n, 0);
        // Scoring reads positions 4, 5, 6 and their next tokens.
        let vocab = 30;
        let mut logits = vec![0f32; 8 * vocab];
        for j in 0..8 {
            logits[j * vocab + (j % vocab)] = 5.0;
        }
        let mut acc = Accumulator::default();
        w.score(&mut acc, &w.window(&tokens, 0), &logits, &logits, vocab);
        assert_eq!(acc.count(), 3);
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [0.0f32, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert_eq!(percentile(&v, 0.125), 0.5);
        assert_eq!(percentile(&v, 1.0), 4.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn uncertainties_appear_with_enough_tokens() {
        let mut acc = Accumulator::default();
        for t in 0..100usize {
            let base: Vec<f32> = (0..5).map(|i| ((i * 3 + t) % 5) as f32).collect();
            let cand: Vec<f32> = base
                .iter()
                .enumerate()
                .map(|(i, v)| v + 0.1 * ((i + t) % 3) as f32)
                .collect();
            acc.add(&base, &cand, t % 5);
        }
        let s = acc.summary();
        assert!(s.kld_mean > 0.0 && s.kld_unc > 0.0 && s.kld_unc < s.kld_mean);
        assert!(s.ppl_unc > 0.0 && s.ln_ppl_ratio_unc > 0.0);
        assert!(s.ln_ppl_correlation > 0.5 && s.ln_ppl_correlation <= 1.0 + 1e-9);
        assert!(s.top1_unc > 0.0 || s.top1_agreement == 1.0);
    }

    #[test]
    fn perplexity_of_uniform_is_vocab_size() {
        let vocab = 8;
        let logits = vec![0.5f32; vocab];
        let mut acc = Accumulator::default();
        for t in 1..=4 {
            acc.add(&logits, &logits, t);
        }
        let s = acc.summary();
        assert_eq!(s.n_tokens, 4);
        assert!((s.ppl_base - 8.0).abs() < 1e-9);
        assert!((s.ppl_ratio - 1.0).abs() < 1e-12);
        assert_eq!(s.top1_agreement, 1.0);
        assert_eq!(s.rms_dp, 0.0);
    }

    #[test]
    fn kld_percentiles_and_top1_over_many_tokens() {
        // 100 tokens whose KLDs are 0 (identical rows) or > 0, half with a different top token.
        let mut acc = Accumulator::default();
        let base = [1.0f32, 0.0, 0.0];
        for k in 0..100 {
            let cand = if k % 2 == 0 {
                [0.0f32, 1.0 + k as f32 * 0.01, 0.0]
            } else {
                base
            };
            acc.add(&base, &cand, 0);
        }
        let s = acc.summary();
        assert_eq!(s.top1_agreement, 0.5);
        assert_eq!(s.kld_min, 0.0);
        assert!(s.kld_p10 == 0.0 && s.kld_median > 0.0);
        assert!(s.kld_p90 > 0.0 && s.kld_p90 <= s.kld_p99 && s.kld_p99 <= s.kld_max);
        assert!(s.ppl > s.ppl_base);
    }
}
