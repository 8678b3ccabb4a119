//! The small functions logits comparisons are made of: log-softmax, KL divergence, argmax and
//! perplexity, in f64 from f32 logits. [`crate::accuracy::Accumulator`] builds llama.cpp's
//! `--kl-divergence` report from them.

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

/// Negative log-likelihood of `target` under `logits` (natural log, in f64): `logsumexp − logit`.
pub fn nll(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln() - logits[target] as f64
}

/// Perplexity from negative log-likelihoods (natural log): `exp(mean(nll))`.
pub fn perplexity(nll: &[f64]) -> f64 {
    if nll.is_empty() {
        return f64::NAN;
    }
    (nll.iter().sum::<f64>() / nll.len() as f64).exp()
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
        let row = |l: &[f32]| {
            let mut v = vec![0.0; l.len()];
            log_softmax(l, &mut v);
            v
        };
        let l = row(&[0.3, -1.0, 2.0]);
        assert_eq!(kl_divergence(&l, &l), 0.0);
        assert_eq!(argmax(&l), 2);
        // p = [0.5, 0.5] vs q = [0.25, 0.75]: KL = 0.5 ln 2 + 0.5 ln(2/3).
        let q1 = (1.0f64 / 3.0).ln() as f32;
        let (p, q) = (row(&[0.0, 0.0]), row(&[q1, 0.0]));
        let want = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        let kld = kl_divergence(&p, &q);
        assert!((kld - want).abs() < 1e-7, "{kld} vs {want}");
        assert!((p[0].exp() - 0.5).abs() < 1e-12);
        assert!((q[0].exp() - 0.25).abs() < 1e-7);
    }

    #[test]
    fn argmax_takes_the_first_of_ties_and_perplexity_is_exp_mean() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert!((perplexity(&[8f64.ln(); 4]) - 8.0).abs() < 1e-12);
        assert!(perplexity(&[]).is_nan());
        // p = [0.25, 0.75]
        let q1 = (1.0f64 / 3.0).ln() as f32;
        assert!((nll(&[q1, 0.0], 0) - 4f64.ln()).abs() < 1e-7);
        assert!((nll(&[q1, 0.0], 1) - (4.0f64 / 3.0).ln()).abs() < 1e-7);
    }
}
