//! Comparing the logits of a candidate model with those of a base model, position by position,
//! with the statistics llama.cpp's `llama-perplexity --kl-divergence` prints: KL divergence
//! (mean, median, p99, max), top-1 agreement, RMS of the change in the probability of the
//! correct token, and the perplexity of each model.
//!
//! Everything is computed in f64 from f32 logits.

/// `out[i] = logits[i] - logsumexp(logits)`, in f64.
pub fn log_softmax(logits: &[f32], out: &mut [f64]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = l as f64 - lse;
    }
}

/// `KL(base ‖ cand) = Σ p_base · (log p_base − log p_cand)` from two log-softmax rows.
pub fn kl_divergence(base_logp: &[f64], cand_logp: &[f64]) -> f64 {
    base_logp
        .iter()
        .zip(cand_logp)
        .map(|(&b, &c)| {
            if b == f64::NEG_INFINITY {
                0.0
            } else {
                b.exp() * (b - c)
            }
        })
        .sum()
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Perplexity from negative log-likelihoods (natural log): `exp(mean(nll))`.
pub fn perplexity(nll: &[f64]) -> f64 {
    if nll.is_empty() {
        return f64::NAN;
    }
    (nll.iter().sum::<f64>() / nll.len() as f64).exp()
}

/// What one position contributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionStats {
    /// `KL(base ‖ cand)` of the next-token distributions.
    pub kld: f64,
    /// Both models rank the same token first.
    pub top1_same: bool,
    /// The correct next token's probability under the base model (when it is known).
    pub p_base: Option<f64>,
    /// The correct next token's probability under the candidate.
    pub p_cand: Option<f64>,
}

/// Compares one position. `next` is the token that actually follows (for the perplexity and
/// Δp), `None` at the last position. `scratch` holds `2 · vocab` values.
pub fn compare_position(
    base: &[f32],
    cand: &[f32],
    next: Option<u32>,
    scratch: &mut Vec<f64>,
) -> PositionStats {
    let n = base.len();
    assert_eq!(n, cand.len(), "logit rows of different lengths");
    scratch.resize(2 * n, 0.0);
    let (lb, lc) = scratch.split_at_mut(n);
    log_softmax(base, lb);
    log_softmax(cand, lc);
    let tok = next.map(|t| t as usize).filter(|&t| t < n);
    PositionStats {
        kld: kl_divergence(lb, lc).max(0.0),
        top1_same: argmax(lb) == argmax(lc),
        p_base: tok.map(|t| lb[t].exp()),
        p_cand: tok.map(|t| lc[t].exp()),
    }
}

/// Accumulates [`PositionStats`] over a text.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    klds: Vec<f64>,
    top1_same: usize,
    nll_base: Vec<f64>,
    nll_cand: Vec<f64>,
    dp_sq: f64,
}

/// The summary of a [`Comparison`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Positions compared.
    pub positions: usize,
    /// Mean KL divergence.
    pub kld_mean: f64,
    /// Median KL divergence.
    pub kld_median: f64,
    /// 99th percentile (nearest rank) of the KL divergence.
    pub kld_p99: f64,
    /// Largest KL divergence.
    pub kld_max: f64,
    /// Fraction of positions where both models rank the same token first.
    pub top1_agreement: f64,
    /// RMS over scored positions of `p_cand(correct) − p_base(correct)`.
    pub rms_dp: f64,
    /// Perplexity of the base model on the scored positions.
    pub ppl_base: f64,
    /// Perplexity of the candidate.
    pub ppl_cand: f64,
    /// `ppl_cand / ppl_base`.
    pub ppl_ratio: f64,
}

impl Comparison {
    /// An empty accumulator.
    pub fn new() -> Comparison {
        Comparison::default()
    }

    /// Adds one position.
    pub fn add(&mut self, s: PositionStats) {
        self.klds.push(s.kld);
        self.top1_same += usize::from(s.top1_same);
        if let (Some(pb), Some(pc)) = (s.p_base, s.p_cand) {
            self.nll_base.push(-pb.ln());
            self.nll_cand.push(-pc.ln());
            self.dp_sq += (pc - pb) * (pc - pb);
        }
    }

    /// Compares `[n, vocab]` logits of both models over `tokens` (the `n` input tokens:
    /// position `i` is scored on `tokens[i + 1]`).
    pub fn add_sequence(&mut self, base: &[f32], cand: &[f32], vocab: usize, tokens: &[u32]) {
        let mut scratch = Vec::new();
        for (i, (b, c)) in base
            .chunks_exact(vocab)
            .zip(cand.chunks_exact(vocab))
            .enumerate()
        {
            let next = tokens.get(i + 1).copied();
            self.add(compare_position(b, c, next, &mut scratch));
        }
    }

    /// The statistics so far.
    pub fn summary(&self) -> Summary {
        let n = self.klds.len();
        let mut sorted = self.klds.clone();
        sorted.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            if n == 0 {
                f64::NAN
            } else {
                sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
            }
        };
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
        };
        let scored = self.nll_base.len();
        let (ppl_base, ppl_cand) = (perplexity(&self.nll_base), perplexity(&self.nll_cand));
        Summary {
            positions: n,
            kld_mean: if n == 0 {
                f64::NAN
            } else {
                self.klds.iter().sum::<f64>() / n as f64
            },
            kld_median: median,
            kld_p99: pick(0.99),
            kld_max: sorted.last().copied().unwrap_or(f64::NAN),
            top1_agreement: if n == 0 {
                f64::NAN
            } else {
                self.top1_same as f64 / n as f64
            },
            rms_dp: if scored == 0 {
                f64::NAN
            } else {
                (self.dp_sq / scored as f64).sqrt()
            },
            ppl_base,
            ppl_cand,
            ppl_ratio: ppl_cand / ppl_base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_is_normalized_and_shift_invariant() {
        let mut a = [0.0; 3];
        let mut b = [0.0; 3];
        log_softmax(&[1.0, 2.0, 3.0], &mut a);
        log_softmax(&[1001.0, 1002.0, 1003.0], &mut b);
        assert!((a.iter().map(|x| x.exp()).sum::<f64>() - 1.0).abs() < 1e-12);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-9);
        }
    }

    #[test]
    fn kl_of_identical_rows_is_zero_and_known_value() {
        let mut s = Vec::new();
        let l = [0.3f32, -1.0, 2.0];
        let st = compare_position(&l, &l, Some(2), &mut s);
        assert_eq!(st.kld, 0.0);
        assert!(st.top1_same);
        // p = [0.5, 0.5] vs q = [0.25, 0.75]: KL = 0.5 ln 2 + 0.5 ln(2/3).
        let q1 = (1.0f64 / 3.0).ln() as f32;
        let st = compare_position(&[0.0, 0.0], &[q1, 0.0], Some(0), &mut s);
        let want = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert!((st.kld - want).abs() < 1e-7, "{} vs {want}", st.kld);
        assert!((st.p_base.unwrap() - 0.5).abs() < 1e-12);
        assert!((st.p_cand.unwrap() - 0.25).abs() < 1e-7);
    }

    #[test]
    fn perplexity_of_uniform_is_vocab_size() {
        let vocab = 8;
        let logits = vec![0.5f32; vocab * 4];
        let mut c = Comparison::new();
        c.add_sequence(&logits, &logits, vocab, &[1, 2, 3, 4]);
        let s = c.summary();
        assert_eq!(s.positions, 4);
        assert!((s.ppl_base - 8.0).abs() < 1e-9);
        assert!((s.ppl_ratio - 1.0).abs() < 1e-12);
        assert_eq!(s.top1_agreement, 1.0);
        assert_eq!(s.rms_dp, 0.0);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut c = Comparison::new();
        for k in 1..=100 {
            c.add(PositionStats {
                kld: f64::from(k),
                top1_same: k % 2 == 0,
                p_base: None,
                p_cand: None,
            });
        }
        let s = c.summary();
        assert_eq!((s.kld_median, s.kld_p99, s.kld_max), (50.5, 99.0, 100.0));
        assert_eq!(s.top1_agreement, 0.5);
        assert!(s.ppl_base.is_nan());
    }
}
