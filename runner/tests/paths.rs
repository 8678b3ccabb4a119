//! The runner's own paths against each other and against a naive f64 reference: batched vs
//! one token at a time, thread counts, GQA and MHA, tied output, float dtypes.

use half::{bf16, f16};
use llamapack_convert::OutputDType;
use llamapack_format::{DType, Lpk, ModelConfig, testing};
use llamapack_runner::testing::{Rng, random_model};
use llamapack_runner::{Error, Level, Logits, Model, Sampler};

use crate::support::{fixture, fixture_lpk, ids, json, max_abs, max_abs_diff};

/// A tensor as f64, whatever its dtype (quantized ones dequantized by the scalar reference).
fn tensor(lpk: &Lpk, name: &str) -> Vec<f64> {
    let t = lpk.tensor(name).unwrap();
    match t.dtype {
        DType::F32 => t
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .map(|&x| x.into())
            .collect(),
        DType::F16 => t
            .as_slice::<f16>()
            .unwrap()
            .iter()
            .map(|x| x.to_f64())
            .collect(),
        DType::BF16 => t
            .as_slice::<bf16>()
            .unwrap()
            .iter()
            .map(|x| x.to_f64())
            .collect(),
        d => {
            let k = llamapack_quantize::kernels_for(Level::Scalar).unwrap();
            let mut v = vec![0f32; t.numel()];
            let rb = t.bytes.len() / t.rows();
            for (src, dst) in t.bytes.chunks(rb).zip(v.chunks_mut(t.row_len())) {
                k.dequantize_row(d, src, dst).unwrap();
            }
            v.into_iter().map(f64::from).collect()
        }
    }
}

/// `y[i] = W[i] · x` for `W` `[rows, x.len()]`.
fn mv(w: &[f64], x: &[f64]) -> Vec<f64> {
    w.chunks_exact(x.len())
        .map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn rmsnorm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let s = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 + eps).sqrt();
    x.iter().zip(w).map(|(v, g)| v / s * g).collect()
}

/// `x` rounded through the activation format `act` (quantize, then dequantize), if any.
fn fake_quant(x: &[f64], act: Option<DType>) -> Vec<f64> {
    let Some(d) = act else { return x.to_vec() };
    let k = llamapack_quantize::kernels_for(Level::Scalar).unwrap();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let mut q = vec![0u8; d.row_bytes(x.len()).unwrap()];
    k.quantize_row(d, &x32, &mut q).unwrap();
    let mut back = vec![0f32; x.len()];
    k.dequantize_row(d, &q, &mut back).unwrap();
    back.into_iter().map(f64::from).collect()
}

/// Meta's `model.py`, written as plainly as possible in f64, without a KV cache: every
/// position's logits of `tokens`. With `act`, every matmul input is first rounded through
/// that activation format, as the runner does for quantized weights.
fn naive_logits(lpk: &Lpk, tokens: &[u32], act: Option<DType>) -> Vec<f32> {
    let mv = |w: &[f64], x: &[f64]| mv(w, &fake_quant(x, act));
    let c = lpk.config();
    let (dim, nh, nkv) = (c.dim as usize, c.n_heads as usize, c.n_kv_heads as usize);
    let hd = dim / nh;
    let eps = f64::from(c.norm_eps);
    let emb = tensor(lpk, "tok_embeddings.weight");
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| emb[t as usize * dim..][..dim].to_vec())
        .collect();
    let rope = |v: &mut [f64], pos: usize| {
        for head in v.chunks_exact_mut(hd) {
            for i in 0..hd / 2 {
                let f = f64::from(c.rope_theta).powf(-2.0 * i as f64 / hd as f64);
                let (s, co) = (pos as f64 * f).sin_cos();
                let (a, b) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = a * co - b * s;
                head[2 * i + 1] = a * s + b * co;
            }
        }
    };
    for l in 0..c.n_layers {
        let w = |s: &str| tensor(lpk, &format!("layers.{l}.{s}.weight"));
        let (wq, wk, wv, wo) = (
            w("attention.wq"),
            w("attention.wk"),
            w("attention.wv"),
            w("attention.wo"),
        );
        let xn: Vec<Vec<f64>> = x
            .iter()
            .map(|r| rmsnorm(r, &w("attention_norm"), eps))
            .collect();
        let mut q: Vec<Vec<f64>> = xn.iter().map(|r| mv(&wq, r)).collect();
        let mut k: Vec<Vec<f64>> = xn.iter().map(|r| mv(&wk, r)).collect();
        let v: Vec<Vec<f64>> = xn.iter().map(|r| mv(&wv, r)).collect();
        for p in 0..tokens.len() {
            rope(&mut q[p], p);
            rope(&mut k[p], p);
        }
        for i in 0..tokens.len() {
            let mut out = vec![0.0; dim];
            for h in 0..nh {
                let kvh = h / (nh / nkv);
                let qh = &q[i][h * hd..][..hd];
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        let kj = &k[j][kvh * hd..][..hd];
                        qh.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, p) in e.iter().enumerate() {
                    for d in 0..hd {
                        out[h * hd + d] += p / z * v[j][kvh * hd + d];
                    }
                }
            }
            let o = mv(&wo, &out);
            x[i].iter_mut().zip(o).for_each(|(a, b)| *a += b);
        }
        let (w1, w2, w3) = (
            w("feed_forward.w1"),
            w("feed_forward.w2"),
            w("feed_forward.w3"),
        );
        for r in &mut x {
            let xn = rmsnorm(r, &w("ffn_norm"), eps);
            let g: Vec<f64> = mv(&w1, &xn)
                .iter()
                .zip(mv(&w3, &xn))
                .map(|(a, b)| a / (1.0 + (-a).exp()) * b)
                .collect();
            r.iter_mut().zip(mv(&w2, &g)).for_each(|(a, b)| *a += b);
        }
    }
    let out = if c.tied_output {
        emb
    } else {
        tensor(lpk, "output.weight")
    };
    let norm = tensor(lpk, "norm.weight");
    x.iter()
        .flat_map(|r| mv(&out, &rmsnorm(r, &norm, eps)))
        .map(|v| v as f32)
        .collect()
}

fn random_tokens(n: usize, vocab: u32, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| ((r.next_f32() + 1.0) * 0.5 * vocab as f32) as u32 % vocab)
        .collect()
}

fn check_against_naive(config: &ModelConfig, dtype: DType, tol: f32) -> f32 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.lpk");
    random_model(&path, config, dtype, 42).unwrap();
    let lpk = Lpk::open(&path).unwrap();
    let model = Model::load_with_threads(&lpk, 2).unwrap();
    let tokens = random_tokens(19, config.vocab_size, 5);
    let got = model
        .logits_all(&mut model.new_state(8), &tokens, 0)
        .unwrap();
    let act = Some(llamapack_quantize::vec_dot_type(dtype)).filter(|&d| d != DType::F32);
    let want = naive_logits(&lpk, &tokens, act);
    let r = max_abs_diff(&got, &want) / max_abs(&want);
    println!(
        "{dtype} heads {}/{} tied {}: max|Δ| = {r:.2e} · max|logit| vs the naive f64 reference",
        config.n_heads, config.n_kv_heads, config.tied_output
    );
    assert!(r <= tol, "{r}");
    if act.is_some() {
        // And how far activation quantization itself moves the logits.
        let exact = naive_logits(&lpk, &tokens, None);
        let q = max_abs_diff(&got, &exact) / max_abs(&exact);
        println!("  vs exact activations: {q:.2e} · max|logit|");
        assert!(q <= 0.05, "{q}");
    }
    r
}

#[test]
fn gqa_matches_naive_reference() {
    let c = testing::tiny_config();
    assert!(c.n_kv_heads < c.n_heads);
    check_against_naive(&c, DType::F32, 1e-5);
}

/// Width 256 so every block format fits a row (k-quants have 256-element blocks).
fn quant_config() -> ModelConfig {
    ModelConfig {
        dim: 256,
        n_heads: 4,
        n_kv_heads: 2,
        ffn_dim: 512,
        vocab_size: 32,
        context_length: 64,
        ..testing::tiny_config()
    }
}

#[test]
fn quantized_weights_match_naive_reference_on_their_dequantized_values() {
    // The reference multiplies the dequantized weights with activations rounded through
    // q8_0 / q8_k, as the runner's kernels do. The two agree to f32 rounding until an f32-vs-
    // f64 difference flips one activation scale by an ulp; from there the roundings decorrelate
    // and they differ by the activation-quantization noise itself (~1% of max|logit| here;
    // q8_0 happens to stay at 7e-8). The matmul unit tests check the kernels' arithmetic
    // tightly; this checks the wiring of every block format through the whole model.
    for (dtype, tol) in [
        (DType::Q8_0, 0.03),
        (DType::Q4_0, 0.03),
        (DType::Q4K, 0.03),
        (DType::Q6K, 0.03),
    ] {
        check_against_naive(&quant_config(), dtype, tol);
    }
}

#[test]
fn every_simd_level_gives_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = random_tokens(12, 32, 9);
    let levels: Vec<Level> = Level::ALL
        .into_iter()
        .filter(|l| l.is_supported())
        .collect();
    println!("supported levels: {levels:?}");
    for dtype in llamapack_quantize::WEIGHT_TYPES {
        let path = dir.path().join(format!("{dtype}.lpk"));
        random_model(&path, &quant_config(), dtype, 3).unwrap();
        let lpk = Lpk::open(&path).unwrap();
        let mut model = Model::load_with_threads(&lpk, 2).unwrap();
        model.set_simd_level(Level::Scalar).unwrap();
        let base = model
            .logits_all(&mut model.new_state(8), &tokens, 0)
            .unwrap();
        for &level in &levels {
            model.set_simd_level(level).unwrap();
            assert_eq!(model.simd_level(), level);
            let got = model
                .logits_all(&mut model.new_state(8), &tokens, 0)
                .unwrap();
            let r = max_abs_diff(&got, &base) / max_abs(&base);
            println!(
                "{dtype} {}: max|Δ| = {r:.2e} · max|logit| vs scalar",
                level.name()
            );
            // The 256-value block dots are bit-exact across levels; the others sum blocks in
            // lanes, in another order. q4_1/q5_1 (dotted with q8_1) add the large `m·s` terms
            // of their minimums, which nearly cancel the quants' sum on these zero-mean random
            // weights: the same rounding differences become ~1e-7 absolute on dots of ~1e-4
            // (measured on this model's q4_1 rows; both levels are as far from the exact dot,
            // which the f16 `s` itself moves by ~1e-4), and this 3-layer random q4_1 model
            // amplifies them to 9.4e-3 of the logits (its q5_1 twin: 2.5e-7).
            let tol = if dtype.block_len() == 256 {
                0.0
            } else if dtype.vec_dot_type() == DType::Q8_1 {
                2e-2
            } else {
                1e-5
            };
            assert!(r <= tol, "{dtype} at {}: {r:e}", level.name());
        }
    }
}

#[test]
fn mha_and_tied_output_match_naive_reference() {
    let mut c = testing::tiny_config();
    c.n_kv_heads = c.n_heads;
    c.tied_output = true;
    check_against_naive(&c, DType::F32, 1e-5);
}

#[test]
fn f16_and_bf16_weights_match_naive_reference() {
    // Same values as the reference reads, so only f32 accumulation separates them.
    let mut c = testing::tiny_config();
    c.n_kv_heads = 1; // multi-query: every head shares one KV head
    check_against_naive(&c, DType::F16, 1e-5);
    check_against_naive(&c, DType::BF16, 1e-5);
}

#[test]
fn batched_path_equals_one_token_path_at_every_position() {
    let lpk = Lpk::open(fixture_lpk("hf", OutputDType::F32)).unwrap();
    let model = Model::load_with_threads(&lpk, 2).unwrap();
    let tokens = ids(&json(&fixture("tiny/ref/prompts.json"))[2]["ids"]);
    let n = tokens.len();
    let vocab = model.config.vocab_size;
    let batched = model
        .logits_all(&mut model.new_state(n), &tokens, 0)
        .unwrap();
    // One token at a time (matrix × vector), reading each position's logits.
    let mut state = model.new_state(1);
    let mut single = Vec::with_capacity(n * vocab);
    for (pos, &t) in tokens.iter().enumerate() {
        single.extend_from_slice(model.forward(&mut state, t, pos).unwrap());
    }
    // Uneven chunks: a batch, then single tokens, then a batch again.
    let mut state = model.new_state(7);
    let mut mixed = model.logits_all(&mut state, &tokens[..10], 0).unwrap();
    mixed.extend_from_slice(model.forward(&mut state, tokens[10], 10).unwrap());
    mixed.extend(model.logits_all(&mut state, &tokens[11..], 11).unwrap());
    let (d1, d2) = (
        max_abs_diff(&batched, &single),
        max_abs_diff(&batched, &mixed),
    );
    println!("{n} positions: batched vs one-token max|Δ| = {d1:e}, vs mixed chunks {d2:e}");
    // Every logit is computed by the same kernels on the same inputs: identical.
    assert_eq!(d1, 0.0);
    assert_eq!(d2, 0.0);
}

#[test]
fn thread_count_does_not_change_logits() {
    let lpk = Lpk::open(fixture_lpk("hf", OutputDType::F32)).unwrap();
    let tokens = ids(&json(&fixture("tiny/ref/prompts.json"))[1]["ids"]);
    let run = |threads| {
        let m = Model::load_with_threads(&lpk, threads).unwrap();
        assert_eq!(m.threads(), threads);
        m.logits_all(&mut m.new_state(64), &tokens, 0).unwrap()
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.lpk");
    let c = testing::tiny_config();
    random_model(&path, &c, DType::F32, 1).unwrap();
    let lpk = Lpk::open(&path).unwrap();
    let model = Model::load(&lpk).unwrap();
    let mut s = llamapack_runner::State::with_context(&model.config, 4, 8);
    assert!(matches!(
        model.forward_batch(&mut s, &[1, 2, 3], 6, Logits::Last),
        Err(Error::Context {
            pos: 6,
            n: 3,
            ctx: 8
        })
    ));
    assert!(matches!(
        model.forward(&mut s, 16, 0),
        Err(Error::TokenId { id: 16, .. })
    ));
    assert!(
        model
            .forward_batch(&mut s, &[1; 5], 0, Logits::All)
            .is_err()
    );
    assert!(model.forward_batch(&mut s, &[], 0, Logits::All).is_err());
    let e = model
        .generate(&mut s, &[1, 2, 3], 7, &mut Sampler::greedy(), |_| true)
        .unwrap_err();
    assert!(e.to_string().contains("context length 8"), "{e}");
    // The state is still usable, and generation stops when the callback says so.
    let got = model
        .generate(&mut s, &[1, 2, 3], 5, &mut Sampler::greedy(), |_| false)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        model
            .generate(&mut s, &[1, 2, 3], 6, &mut Sampler::greedy(), |_| true)
            .unwrap()
            .len(),
        6
    );
}

#[test]
fn seeded_sampling_is_reproducible() {
    let lpk = Lpk::open(fixture_lpk("hf", OutputDType::F32)).unwrap();
    let model = Model::load(&lpk).unwrap();
    let run = |seed| {
        let mut s = model.new_state(8);
        let mut sampler = Sampler::new(model.config.vocab_size, 0.8, 0.9, seed);
        model
            .generate(&mut s, &[1, 319, 316], 20, &mut sampler, |_| true)
            .unwrap()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn quantized_batched_path_equals_one_token_path_at_every_level() {
    // The batched matmul dots each weight row with 4 tokens at once (`vec_dot4`) and the rest
    // one by one; every token's logits must keep the bits of the one-token path.
    let dir = tempfile::tempdir().unwrap();
    // 19 tokens in batches of 16 then 3: the k-quant panels (16 rows × 8 tokens), quads and
    // a remainder.
    let tokens = random_tokens(19, 32, 13);
    for dtype in [
        DType::Q8_0,
        DType::Q4_0,
        DType::Q5_0,
        DType::IQ4NL,
        DType::Q2K,
        DType::Q3K,
        DType::Q4K,
        DType::Q5K,
        DType::Q6K,
        DType::IQ4XS,
        DType::F16,
    ] {
        let path = dir.path().join(format!("{dtype}.lpk"));
        random_model(&path, &quant_config(), dtype, 5).unwrap();
        let lpk = Lpk::open(&path).unwrap();
        let mut model = Model::load_with_threads(&lpk, 2).unwrap();
        for level in Level::ALL.into_iter().filter(|l| l.is_supported()) {
            model.set_simd_level(level).unwrap();
            let batched = model
                .logits_all(&mut model.new_state(16), &tokens, 0)
                .unwrap();
            let mut state = model.new_state(1);
            let mut single = Vec::new();
            for (pos, &t) in tokens.iter().enumerate() {
                single.extend_from_slice(model.forward(&mut state, t, pos).unwrap());
            }
            assert_eq!(
                max_abs_diff(&batched, &single),
                0.0,
                "{dtype} at {}",
                level.name()
            );
        }
    }
}

#[test]
fn last_block_keeps_only_the_wanted_rows_with_their_bits() {
    // With `Logits::Last` / `Rows` the last block runs wo, the FFN and the head on the wanted
    // rows only; each must equal its row of `Logits::All`.
    let dir = tempfile::tempdir().unwrap();
    let tokens = random_tokens(19, 32, 29);
    for dtype in [DType::F32, DType::Q4K, DType::Q8_0, DType::Q4_0] {
        let path = dir.path().join(format!("{dtype}.lpk"));
        random_model(&path, &quant_config(), dtype, 7).unwrap();
        let lpk = Lpk::open(&path).unwrap();
        let model = Model::load_with_threads(&lpk, 2).unwrap();
        let vocab = model.config.vocab_size;
        let all = model
            .forward_batch(&mut model.new_state(19), &tokens, 0, Logits::All)
            .unwrap()
            .to_vec();
        let last = model
            .forward_batch(&mut model.new_state(19), &tokens, 0, Logits::Last)
            .unwrap()
            .to_vec();
        assert_eq!(last, all[18 * vocab..], "{dtype} Logits::Last");
        let rows = model
            .forward_batch(
                &mut model.new_state(19),
                &tokens,
                0,
                Logits::Rows { from: 2, step: 3 },
            )
            .unwrap()
            .to_vec();
        let want: Vec<f32> = (2..19)
            .step_by(3)
            .flat_map(|t| all[t * vocab..(t + 1) * vocab].to_vec())
            .collect();
        assert_eq!(rows, want, "{dtype} Logits::Rows");
        // a head-only pass (the residual leaving the last block given) picks the same rows
        let mut s = model.new_state(19);
        model
            .forward_batch(&mut s, &tokens, 0, Logits::None)
            .unwrap();
        let layers = model.config.n_layers;
        let head = model
            .forward_layers(
                &model.weights,
                &mut s,
                None,
                19,
                layers..layers,
                0,
                Logits::Rows { from: 2, step: 3 },
            )
            .unwrap()
            .to_vec();
        assert_eq!(head, want, "{dtype} head-only Logits::Rows");
        // and the next token after a pruned pass still sees every position's keys
        let mut s = model.new_state(19);
        model
            .forward_batch(&mut s, &tokens, 0, Logits::Last)
            .unwrap();
        let next = model.forward(&mut s, 3, 19).unwrap().to_vec();
        let mut s = model.new_state(19);
        model
            .forward_batch(&mut s, &tokens, 0, Logits::All)
            .unwrap();
        assert_eq!(
            next,
            model.forward(&mut s, 3, 19).unwrap(),
            "{dtype} next token"
        );
    }
}

#[test]
fn head_in_chunks_keeps_every_row_bits() {
    // More tokens in one batch than the output head takes at once (HEAD_TOKENS = 64): its
    // chunks, and a request for the rows from 70 on only (as eval asks), keep the one-token
    // path's bits; a panel format, a k-quant and f16.
    let dir = tempfile::tempdir().unwrap();
    let config = ModelConfig {
        context_length: 160,
        vocab_size: 300,
        ..quant_config()
    };
    let n = 2 * llamapack_runner::state::HEAD_TOKENS + 13;
    let tokens = random_tokens(n, 300, 29);
    for dtype in [DType::Q8_0, DType::Q4K, DType::F16] {
        let path = dir.path().join(format!("{dtype}.lpk"));
        random_model(&path, &config, dtype, 7).unwrap();
        let lpk = Lpk::open(&path).unwrap();
        let model = Model::load_with_threads(&lpk, 2).unwrap();
        let vocab = model.config.vocab_size;
        let mut s = model.new_state(n);
        let all = model
            .forward_batch(&mut s, &tokens, 0, Logits::All)
            .unwrap()
            .to_vec();
        let mut s = model.new_state(n);
        let tail = Logits::Rows { from: 70, step: 1 };
        let rows = model
            .forward_batch(&mut s, &tokens, 0, tail)
            .unwrap()
            .to_vec();
        let mut state = model.new_state(1);
        let mut single = Vec::new();
        for (pos, &t) in tokens.iter().enumerate() {
            single.extend_from_slice(model.forward(&mut state, t, pos).unwrap());
        }
        assert_eq!(all.len(), n * vocab);
        assert_eq!(max_abs_diff(&all, &single), 0.0, "{dtype}: all rows");
        assert_eq!(
            max_abs_diff(&rows, &single[70 * vocab..]),
            0.0,
            "{dtype}: rows 70.."
        );
    }
}

#[test]
fn released_file_pages_change_no_logit() {
    // A model whose repacked matrices' file pages are dropped at load (as the CLI loads) gives
    // the logits of one loaded plainly; what is released is whole tensors of the file.
    let dir = tempfile::tempdir().unwrap();
    let tokens = random_tokens(12, 300, 5);
    let config = ModelConfig {
        vocab_size: 300,
        ..quant_config()
    };
    for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4K] {
        let path = dir.path().join(format!("{dtype}.lpk"));
        random_model(&path, &config, dtype, 3).unwrap();
        let lpk = Lpk::open(&path).unwrap();
        let plain = Model::load_with_threads(&lpk, 2).unwrap();
        let want = plain
            .logits_all(&mut plain.new_state(12), &tokens, 0)
            .unwrap();
        let released = std::sync::Mutex::new(Vec::new());
        let model = Model::load_releasing(&lpk, 2, &|b| {
            released.lock().unwrap().push(b.len());
            lpk.release(b);
        })
        .unwrap();
        let sizes: Vec<usize> = lpk.tensors().map(|t| t.bytes.len()).collect();
        for len in released.lock().unwrap().iter() {
            assert!(
                sizes.contains(len),
                "{dtype}: released {len} bytes, no tensor's size"
            );
        }
        let got = model
            .logits_all(&mut model.new_state(12), &tokens, 0)
            .unwrap();
        assert_eq!(max_abs_diff(&got, &want), 0.0, "{dtype}");
        let mut state = model.new_state(1);
        let one = model.forward(&mut state, tokens[0], 0).unwrap().to_vec();
        assert_eq!(max_abs_diff(&one, &want[..300]), 0.0, "{dtype}: one token");
    }
}
