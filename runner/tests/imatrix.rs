//! The importance-matrix collector against a direct computation: a plain f64 forward pass over
//! the fixture's f32 weights (Meta's `model.py`, written out again here) that sums the square of
//! every matmul input itself; and llama-imatrix's rules (batches under 16, output only when
//! asked and untied).

use llamapack_convert::OutputDType;
use llamapack_format::{DType, Lpk, ModelConfig, testing};
use llamapack_runner::imatrix::{Collector, MIN_BATCH, Site};
use llamapack_runner::{Logits, Model, testing::random_model};

use crate::support::{fixture, fixture_lpk, ids, json};

/// A tensor of an f32 `.lpk` as f64 values.
fn tensor(lpk: &Lpk, name: &str) -> Vec<f64> {
    let t = lpk.tensor(name).unwrap();
    assert_eq!(t.dtype, DType::F32, "{name}");
    t.bytes
        .chunks_exact(4)
        .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
        .collect()
}

/// `w [rows, cols] · x [cols]`.
fn matvec(w: &[f64], x: &[f64]) -> Vec<f64> {
    w.chunks_exact(x.len())
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn rmsnorm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, w)| v * s * w).collect()
}

/// Meta's `apply_rotary_emb` on adjacent pairs of each head.
fn rope(x: &mut [f64], head_dim: usize, pos: usize, theta: f64) {
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..head_dim / 2 {
            let a = pos as f64 * theta.powf(-2.0 * i as f64 / head_dim as f64);
            let (re, im) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = re * a.cos() - im * a.sin();
            head[2 * i + 1] = re * a.sin() + im * a.cos();
        }
    }
}

fn add_sq(acc: &mut [f64], x: &[f64]) {
    for (a, v) in acc.iter_mut().zip(x) {
        *a += v * v;
    }
}

/// Σx² of every matmul input, by tensor name, over `tokens` at positions 0.. (one sequence).
fn direct_sums(lpk: &Lpk, tokens: &[u32]) -> Vec<(String, Vec<f64>)> {
    let c = lpk.config();
    let (dim, nh, nkv) = (c.dim as usize, c.n_heads as usize, c.n_kv_heads as usize);
    let hd = dim / nh;
    let eps = f64::from(c.norm_eps);
    let theta = f64::from(c.rope_theta);
    let emb = tensor(lpk, "tok_embeddings.weight");
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| emb[t as usize * dim..(t as usize + 1) * dim].to_vec())
        .collect();
    let mut out = Vec::new();
    for l in 0..c.n_layers {
        let w = |s: &str| tensor(lpk, &format!("layers.{l}.{s}.weight"));
        let (wq, wk, wv, wo) = (
            w("attention.wq"),
            w("attention.wk"),
            w("attention.wv"),
            w("attention.wo"),
        );
        let (w1, w2, w3) = (
            w("feed_forward.w1"),
            w("feed_forward.w2"),
            w("feed_forward.w3"),
        );
        let (an, fnorm) = (w("attention_norm"), w("ffn_norm"));
        let (mut s_att, mut s_wo) = (vec![0.0; dim], vec![0.0; dim]);
        let (mut s_ffn, mut s_w2) = (vec![0.0; dim], vec![0.0; w2.len() / dim]);
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        for (pos, h) in x.iter_mut().enumerate() {
            let xn = rmsnorm(h, &an, eps);
            add_sq(&mut s_att, &xn);
            let (mut q, mut k) = (matvec(&wq, &xn), matvec(&wk, &xn));
            rope(&mut q, hd, pos, theta);
            rope(&mut k, hd, pos, theta);
            keys.push(k);
            values.push(matvec(&wv, &xn));
            let mut att = vec![0.0; dim];
            for head in 0..nh {
                let kvh = head / (nh / nkv) * hd;
                let qh = &q[head * hd..(head + 1) * hd];
                let scores: Vec<f64> = keys
                    .iter()
                    .map(|k| {
                        qh.iter()
                            .zip(&k[kvh..kvh + hd])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for (p, v) in values.iter().enumerate() {
                    for i in 0..hd {
                        att[head * hd + i] += e[p] / z * v[kvh + i];
                    }
                }
            }
            add_sq(&mut s_wo, &att);
            for (a, b) in h.iter_mut().zip(matvec(&wo, &att)) {
                *a += b;
            }
            let xn = rmsnorm(h, &fnorm, eps);
            add_sq(&mut s_ffn, &xn);
            let g: Vec<f64> = matvec(&w1, &xn)
                .iter()
                .zip(matvec(&w3, &xn))
                .map(|(a, b)| a / (1.0 + (-a).exp()) * b)
                .collect();
            add_sq(&mut s_w2, &g);
            for (a, b) in h.iter_mut().zip(matvec(&w2, &g)) {
                *a += b;
            }
        }
        let n = |s: &str| format!("layers.{l}.{s}.weight");
        for s in ["attention.wq", "attention.wk", "attention.wv"] {
            out.push((n(s), s_att.clone()));
        }
        out.push((n("attention.wo"), s_wo));
        out.push((n("feed_forward.w1"), s_ffn.clone()));
        out.push((n("feed_forward.w3"), s_ffn));
        out.push((n("feed_forward.w2"), s_w2));
    }
    let norm = tensor(lpk, "norm.weight");
    let mut s_out = vec![0.0; dim];
    for h in &x {
        add_sq(&mut s_out, &rmsnorm(h, &norm, eps));
    }
    out.push(("output.weight".into(), s_out));
    out
}

#[test]
fn collected_sums_match_a_direct_computation_on_the_fixture() {
    let lpk = Lpk::open(fixture_lpk("meta", OutputDType::F32)).unwrap();
    let model = Model::load_with_threads(&lpk, 2).unwrap();
    let tokens: Vec<u32> = ids(&json(&fixture("tiny/ref/eval_tokens.json")))
        .into_iter()
        .take(100)
        .collect();
    assert_eq!(tokens.len(), 100);
    let mut state = model.new_state(64);
    state.imatrix = Some(Collector::new(&model.config, true));
    // Two batches (64 + 36 tokens) at consecutive positions: sums add across calls.
    model.logits_all(&mut state, &tokens, 0).unwrap();
    let im = state
        .imatrix
        .as_ref()
        .unwrap()
        .to_imatrix(&model.weights, 50)
        .unwrap();
    assert_eq!(im.chunk_count, 2, "100 tokens / chunks of 50");
    let want = direct_sums(&lpk, &tokens);
    assert_eq!(im.len(), want.len());
    let mut worst = 0f64;
    for (name, sums) in &want {
        let e = im.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(e.counts(), &[100], "{name}");
        let scale = sums.iter().copied().fold(0.0, f64::max);
        for (j, (&got, &exact)) in e.sums().iter().zip(sums).enumerate() {
            let err = (f64::from(got) - exact).abs() / (exact + 1e-3 * scale);
            worst = worst.max(err);
            assert!(err < 2e-5, "{name}[{j}]: {got} vs {exact}");
        }
    }
    println!("max relative error of the collected Σx² against f64: {worst:.2e}");
}

#[test]
fn collecting_changes_no_logit() {
    let lpk = Lpk::open(fixture_lpk("meta", OutputDType::F32)).unwrap();
    let model = Model::load_with_threads(&lpk, 2).unwrap();
    let tokens: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % 512).collect();
    let plain = model
        .logits_all(&mut model.new_state(40), &tokens, 0)
        .unwrap();
    let mut s = model.new_state(40);
    s.imatrix = Some(Collector::new(&model.config, true));
    assert_eq!(model.logits_all(&mut s, &tokens, 0).unwrap(), plain);
}

fn random(dir: &std::path::Path, tied: bool) -> std::path::PathBuf {
    let path = dir.join(format!("r-{tied}.lpk"));
    let config = ModelConfig {
        tied_output: tied,
        ..testing::tiny_config()
    };
    random_model(&path, &config, DType::F32, 3).unwrap();
    path
}

#[test]
fn llama_imatrix_rules_small_batches_output_and_tied_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let lpk = Lpk::open(random(dir.path(), false)).unwrap();
    let model = Model::load_with_threads(&lpk, 1).unwrap();
    let toks = |n: usize| -> Vec<u32> { (0..n as u32).map(|i| i % 16).collect() };
    let counts = |s: &llamapack_runner::State, name: &str| {
        let im = s
            .imatrix
            .as_ref()
            .unwrap()
            .to_imatrix(&model.weights, 16)
            .unwrap();
        im.get(name).map(|e| e.counts()[0])
    };
    let w2 = "layers.1.feed_forward.w2.weight";

    let mut s = model.new_state(64);
    s.imatrix = Some(Collector::new(&model.config, true));
    // 15 tokens: skipped, like llama-imatrix's `ne[1] < 16`; so is generation.
    model
        .forward_batch(&mut s, &toks(MIN_BATCH - 1), 0, Logits::All)
        .unwrap();
    model.forward(&mut s, 1, MIN_BATCH - 1).unwrap();
    assert!(
        s.imatrix
            .as_ref()
            .unwrap()
            .to_imatrix(&model.weights, 16)
            .unwrap()
            .is_empty()
    );
    // 16 with every logit: all matrices, output too.
    model
        .forward_batch(&mut s, &toks(MIN_BATCH), 0, Logits::All)
        .unwrap();
    assert_eq!(counts(&s, w2), Some(16));
    assert_eq!(counts(&s, "output.weight"), Some(16));
    // Only the last logit: the output projection sees one row, too few to collect.
    model
        .forward_batch(&mut s, &toks(20), 16, Logits::Last)
        .unwrap();
    assert_eq!(counts(&s, w2), Some(36));
    assert_eq!(counts(&s, "output.weight"), Some(16));
    assert_eq!(s.imatrix.as_ref().unwrap().tokens(), 36);

    // Without --process-output: no output entry.
    let mut s = model.new_state(16);
    s.imatrix = Some(Collector::new(&model.config, false));
    model
        .forward_batch(&mut s, &toks(16), 0, Logits::All)
        .unwrap();
    assert_eq!(counts(&s, "output.weight"), None);
    assert_eq!(counts(&s, w2), Some(16));

    // Tied embeddings: llama-imatrix never sees an `output.weight` (it multiplies by
    // token_embd.weight, which it does not collect), so neither do we.
    let tied = Lpk::open(random(dir.path(), true)).unwrap();
    let tm = Model::load_with_threads(&tied, 1).unwrap();
    let mut s = tm.new_state(16);
    s.imatrix = Some(Collector::new(&tm.config, true));
    tm.forward_batch(&mut s, &toks(16), 0, Logits::All).unwrap();
    let im = s
        .imatrix
        .as_ref()
        .unwrap()
        .to_imatrix(&tm.weights, 16)
        .unwrap();
    assert_eq!(im.len(), 2 * 7);
    assert!(im.get("tok_embeddings.weight").is_none());
}

#[test]
fn non_finite_activations_and_mismatched_models_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let lpk = Lpk::open(random(dir.path(), false)).unwrap();
    let model = Model::load_with_threads(&lpk, 1).unwrap();
    let mut c = Collector::new(&model.config, false);
    let mut x = vec![1.0f32; 16 * 96];
    x[5] = f32::NAN;
    let err = c.add(Site::FfnDown(1), &x, 16).unwrap_err().to_string();
    assert!(
        err.contains("w2 of layer 1") && err.contains("finite"),
        "{err}"
    );
    let err = c.add(Site::Ffn(0), &x, 16).unwrap_err().to_string();
    assert!(err.contains("1536 values for 16 rows of 64"), "{err}");

    let fixture = Lpk::open(fixture_lpk("meta", OutputDType::F32)).unwrap();
    let other = Model::load_with_threads(&fixture, 1).unwrap();
    let err = c.to_imatrix(&other.weights, 16).unwrap_err().to_string();
    assert!(err.contains("2 layers for a model of 4"), "{err}");
}
