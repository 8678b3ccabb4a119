//! Sampling the next token: greedy, or temperature + top-p (nucleus) with a seeded RNG, as
//! llama2.c's `sample` does.

/// Picks the next token from logits.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// 0 (or below) means greedy.
    pub temperature: f32,
    /// Nucleus mass; `>= 1` (or `<= 0`) samples from the whole distribution.
    pub top_p: f32,
    rng: XorShift,
    probs: Vec<f32>,
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler over `vocab_size` logits.
    pub fn new(vocab_size: usize, temperature: f32, top_p: f32, seed: u64) -> Sampler {
        Sampler {
            temperature,
            top_p,
            rng: XorShift::new(seed),
            probs: Vec::with_capacity(vocab_size),
            candidates: Vec::with_capacity(vocab_size),
        }
    }

    /// The greedy sampler (argmax, first index on ties).
    pub fn greedy() -> Sampler {
        Sampler::new(0, 0.0, 1.0, 0)
    }

    /// Chooses a token id from `logits`.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        // NaN or ≤ 0: greedy.
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return argmax(logits);
        }
        self.probs.clear();
        self.probs
            .extend(logits.iter().map(|&l| l / self.temperature));
        crate::ops::softmax(&mut self.probs);
        let coin = self.rng.next_f32();
        if self.top_p <= 0.0 || self.top_p >= 1.0 {
            sample_mult(&self.probs, coin)
        } else {
            sample_top_p(&self.probs, self.top_p, coin, &mut self.candidates)
        }
    }
}

/// Index of the largest value (the first on ties, as `torch.argmax`).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Samples index `i` with probability `probs[i]`; `coin` is uniform in `[0, 1)`.
fn sample_mult(probs: &[f32], coin: f32) -> u32 {
    let mut cdf = 0.0;
    for (i, &p) in probs.iter().enumerate() {
        cdf += p;
        if coin < cdf {
            return i as u32;
        }
    }
    (probs.len() - 1) as u32
}

/// Top-p sampling: the smallest set of most likely tokens whose mass exceeds `top_p`, then
/// sampling within it.
fn sample_top_p(probs: &[f32], top_p: f32, coin: f32, cand: &mut Vec<(f32, u32)>) -> u32 {
    // Tokens below this probability can never be in the nucleus; skipping them keeps the
    // sort short.
    let cutoff = (1.0 - top_p) / (probs.len().max(2) - 1) as f32;
    cand.clear();
    cand.extend(
        probs
            .iter()
            .enumerate()
            .filter(|&(_, &p)| p >= cutoff)
            .map(|(i, &p)| (p, i as u32)),
    );
    if cand.is_empty() {
        // Only when top_p < 1/vocab on a near-uniform distribution: the nucleus is the top 1.
        return argmax(probs);
    }
    cand.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut cum = 0.0;
    let mut last = cand.len() - 1;
    for (i, &(p, _)) in cand.iter().enumerate() {
        cum += p;
        if cum > top_p {
            last = i;
            break;
        }
    }
    let r = coin * cum;
    let mut cdf = 0.0;
    for &(p, id) in &cand[..=last] {
        cdf += p;
        if r < cdf {
            return id;
        }
    }
    cand[last].1
}

/// xorshift64* (llama2.c's `random_u32`), seeded.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // A zero state would stay zero.
        XorShift(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// Uniform in `[0, 1)`.
    fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / 16_777_216.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::greedy();
        assert_eq!(s.sample(&[0.0, 3.0, 1.0, 3.0]), 1);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_follows_the_distribution() {
        let logits = [1.0f32, 2.0, 3.0, 0.5];
        let draw = |seed| {
            let mut s = Sampler::new(4, 1.0, 1.0, seed);
            (0..4000).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let d = draw(1);
        let frac = d.iter().filter(|&&t| t == 2).count() as f32 / d.len() as f32;
        let p2 = 3f32.exp() / logits.iter().map(|l| l.exp()).sum::<f32>();
        assert!((frac - p2).abs() < 0.03, "{frac} vs {p2}");
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // p ≈ [0.665, 0.245, 0.090]: top_p 0.5 keeps only token 0, 0.8 keeps 0 and 1.
        let logits = [2.0f32, 1.0, 0.0];
        let mut s = Sampler::new(3, 1.0, 0.5, 3);
        assert!((0..200).all(|_| s.sample(&logits) == 0));
        let mut s = Sampler::new(3, 1.0, 0.8, 3);
        let d: Vec<u32> = (0..500).map(|_| s.sample(&logits)).collect();
        assert!(d.contains(&1) && !d.contains(&2));
        // A nucleus smaller than any probability on a flat distribution.
        let mut s = Sampler::new(4, 1.0, 0.01, 3);
        assert_eq!(s.sample(&[1.0; 4]), 0);
    }
}
