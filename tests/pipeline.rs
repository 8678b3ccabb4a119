//! The user's jobs end to end on the fixture checkpoint: convert, quantize, eval, compare,
//! export, demo — through the CLI, as a user runs them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{fails, fixture, inspect_tensors, json, ok, s, shared};

fn quantized(recipe: &str) -> PathBuf {
    quantized_with(recipe, &[])
}

/// The fixture quantized with `recipe` and extra `quantize` flags, made once per test run.
fn quantized_with(recipe: &str, flags: &[&str]) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sh = shared();
    let out = sh.dir.join(format!(
        "tiny-{recipe}{}.lpk",
        flags.concat().replace('-', "_")
    ));
    if !out.exists() {
        let mut a = vec!["quantize", s(&sh.f16), "-o", s(&out), "--type", recipe];
        a.extend_from_slice(flags);
        ok(&a);
    }
    out
}

#[test]
fn meta_and_hf_checkpoints_convert_to_identical_tensors() {
    let sh = shared();
    let hf = sh.dir.join("tiny-hf-f32.lpk");
    ok(&[
        "convert",
        s(&fixture("tiny/hf")),
        "-o",
        s(&hf),
        "--dtype",
        "f32",
    ]);
    assert_eq!(inspect_tensors(&sh.f32), inspect_tensors(&hf));
    let a = json(&["inspect", s(&sh.f32), "--json"]);
    let b = json(&["inspect", s(&hf), "--json"]);
    for key in [
        "dim",
        "n_layers",
        "n_heads",
        "n_kv_heads",
        "ffn_dim",
        "vocab_size",
        "norm_eps",
        "rope_theta",
        "tied_output",
    ] {
        assert_eq!(a["config"][key], b["config"][key], "{key}");
    }
    assert_eq!(a["tokenizer"]["n_pieces"], b["tokenizer"]["n_pieces"]);
    assert_eq!(a["provenance"]["source_format"], "meta");
    assert_eq!(b["provenance"]["source_format"], "hf");
    // The shards, params.json and tokenizer.model are recorded with their sha256.
    let sources = a["provenance"]["sources"].as_array().unwrap();
    assert!(
        sources.iter().any(
            |f| f["name"] == "consolidated.01.pth" && f["sha256"].as_str().unwrap().len() == 64
        )
    );
    assert!(ok(&["verify", s(&hf)]).starts_with("ok:"));
}

#[test]
fn quantize_every_recipe_with_the_sizes_of_the_table() {
    let sh = shared();
    let f16 = json(&["inspect", s(&sh.f16), "--json"]);
    let params_2d: u64 = f16["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["shape"].as_array().unwrap().len() == 2)
        .map(|t| {
            t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .product::<u64>()
        })
        .sum();
    // Every block type of the dtype table, pure: each 2-D weight has its type and its size.
    for dtype in llamapack_format::DType::storable().filter(|d| d.is_quantized()) {
        let (recipe, bpw) = (dtype.name(), dtype.bits_per_weight());
        let v = json(&["inspect", s(&quantized_with(recipe, &["--pure"])), "--json"]);
        let mut bytes_2d = 0u64;
        for t in v["tensors"].as_array().unwrap() {
            let is_2d = t["shape"].as_array().unwrap().len() == 2;
            let want = if is_2d { recipe } else { "f32" };
            assert_eq!(t["dtype"], want, "{recipe}: {}", t["name"]);
            if is_2d {
                bytes_2d += t["bytes"].as_u64().unwrap();
            }
        }
        assert_eq!(bytes_2d as f64 * 8.0, params_2d as f64 * bpw, "{recipe}");
        let q = &v["provenance"]["quantization"];
        let canonical = llamapack_quantize::recipe::Recipe::parse(recipe)
            .unwrap()
            .name;
        assert_eq!(q["recipe"], canonical.as_str());
        assert_eq!(q["pure"], true, "{recipe}");
    }
    // q4_k_m: output and the use_more_bits layers' wv/w2 in q6_k (4 layers: layers 2 and 3).
    let v = json(&["inspect", s(&quantized("q4_k_m")), "--json"]);
    let types: std::collections::HashMap<String, String> = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["dtype"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(types["output.weight"], "q6_k");
    assert_eq!(types["layers.0.attention.wv.weight"], "q4_k");
    assert_eq!(types["layers.2.attention.wv.weight"], "q6_k");
    assert_eq!(types["layers.3.feed_forward.w2.weight"], "q6_k");
    assert_eq!(types["layers.1.feed_forward.w2.weight"], "q4_k");
    assert_eq!(types["layers.3.attention.wq.weight"], "q4_k");
    assert_eq!(types["norm.weight"], "f32");
    assert!(ok(&["verify", s(&quantized("q4_k_m"))]).starts_with("ok:"));
}

#[test]
fn quantize_report_lists_every_tensor() {
    let sh = shared();
    let report = sh.dir.join("q4_0-report.json");
    let out = sh.dir.join("report-q4_0.lpk");
    ok(&[
        "quantize",
        s(&sh.f16),
        "-o",
        s(&out),
        "--type",
        "q4_0",
        "--report",
        s(&report),
    ]);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let rows = v["tensors"].as_array().unwrap();
    assert_eq!(rows.len(), inspect_tensors(&sh.f16).len());
    let rel: Vec<f64> = rows
        .iter()
        .map(|r| r["rel_rms_err"].as_f64().unwrap())
        .collect();
    assert!(rel.windows(2).all(|w| w[0] >= w[1]), "worst first");
    // q4_0 on trained weights: a few percent of relative error, never exact, never absurd.
    let w = rows
        .iter()
        .find(|r| r["name"] == "layers.0.attention.wq.weight")
        .unwrap();
    let e = w["rel_rms_err"].as_f64().unwrap();
    assert!(e > 0.01 && e < 0.3, "{e}");
    assert!(w["snr_db"].as_f64().unwrap() > 10.0);
}

fn eval(cand: &Path, reference: &Path, extra: &[&str]) -> Value {
    let tokens = fixture("tiny/ref/eval_tokens.json");
    let mut args = vec![
        "eval",
        s(cand),
        "--reference",
        s(reference),
        "--tokens",
        s(&tokens),
        "--ctx",
        "128",
        "--json",
    ];
    args.extend_from_slice(extra);
    json(&args)
}

#[test]
fn eval_of_a_model_against_itself_is_exactly_zero() {
    let sh = shared();
    let v = eval(&sh.f16, &sh.f16, &[]);
    assert_eq!(v["kld_mean"], 0.0);
    assert_eq!(v["kld_max"], 0.0);
    assert_eq!(v["top1_agreement"], 1.0);
    assert_eq!(v["ppl_ratio"], 1.0);
    assert_eq!(v["rms_dp"], 0.0);
    assert_eq!(v["windows"], 4);
    assert_eq!(v["n_tokens"], 4 * 63);
}

#[test]
fn more_bits_mean_less_divergence() {
    let sh = shared();
    let kld = |r: &str| {
        eval(&quantized(r), &sh.f16, &[])["kld_mean"]
            .as_f64()
            .unwrap()
    };
    let (q8, q4km, q40) = (kld("q8_0"), kld("q4_k_m"), kld("q4_0"));
    eprintln!(
        "mean KLD vs f16 on the held-out slice: q8_0 {q8:.3e}, q4_k_m {q4km:.3e}, q4_0 {q40:.3e}"
    );
    assert!(q8 > 0.0 && q8 < q4km && q4km < q40, "{q8} {q4km} {q40}");
    assert!(q40 < 0.5, "q4_0 diverges implausibly: {q40}");
}

#[test]
fn transformers_logits_and_the_f32_model_agree_as_references() {
    let sh = shared();
    // Our f32 model against the logits transformers computed (stored as f16): almost identical.
    let npy = fixture("tiny/ref/eval_logits_ctx128.npy");
    let v = eval(&sh.f32, &npy, &[]);
    assert!(v["kld_mean"].as_f64().unwrap() < 1e-4, "{v}");
    assert_eq!(v["top1_agreement"], 1.0);
    // And a quantized candidate measured against either reference gets the same figures.
    let q4 = quantized("q4_0");
    let a = eval(&q4, &npy, &[]);
    let b = eval(&q4, &sh.f32, &[]);
    let (ka, kb) = (
        a["kld_mean"].as_f64().unwrap(),
        b["kld_mean"].as_f64().unwrap(),
    );
    eprintln!("q4_0 mean KLD: vs transformers logits {ka:.6e}, vs f32 .lpk {kb:.6e}");
    assert!((ka - kb).abs() <= 0.02 * kb, "{ka} vs {kb}");
    let (pa, pb) = (
        a["ppl_base"].as_f64().unwrap(),
        b["ppl_base"].as_f64().unwrap(),
    );
    assert!((pa - pb).abs() <= 1e-3 * pb, "{pa} vs {pb}");
}

#[test]
fn eval_store_records_the_report_in_the_artifact() {
    let sh = shared();
    let cand = sh.dir.join("stored-q8_0.lpk");
    std::fs::copy(quantized("q8_0"), &cand).unwrap();
    let before = inspect_tensors(&cand);
    eval(&cand, &sh.f16, &["--store"]);
    let v = json(&["inspect", s(&cand), "--json"]);
    let acc = &v["provenance"]["accuracy"];
    assert_eq!(acc["ctx"], 128);
    assert!(acc["summary"]["kld_mean"].as_f64().unwrap() > 0.0);
    assert_eq!(inspect_tensors(&cand), before, "tensors must be untouched");
    assert!(ok(&["inspect", s(&cand)]).contains("accuracy (eval --store): against"));
}

#[test]
fn compare_writes_a_table_and_a_chart() {
    let sh = shared();
    let svg = sh.dir.join("compare.svg");
    let text = fixture("text/corpus.txt");
    let (q8, q4) = (quantized("q8_0"), quantized("q4_0"));
    let v = json(&[
        "compare",
        s(&q8),
        s(&q4),
        "--reference",
        s(&sh.f16),
        "--text",
        s(&text),
        "--ctx",
        "128",
        "--chunks",
        "3",
        "--svg",
        s(&svg),
        "--json",
    ]);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows[0]["bits_per_weight"].as_f64().unwrap() > rows[1]["bits_per_weight"].as_f64().unwrap()
    );
    assert_eq!(rows[0]["layer_rel_rms"].as_array().unwrap().len(), 4);
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("tiny-q8_0") && chart.contains("tiny-q4_0")
    );
}

#[test]
fn gguf_export_and_import_round_trip_every_type() {
    let sh = shared();
    for src in [
        sh.f32.clone(),
        quantized("q8_0"),
        quantized("q4_0"),
        quantized("q4_k_m"),
        sh.f16.clone(),
    ] {
        let gguf = src.with_extension("gguf");
        let back = src.with_extension("back.lpk");
        ok(&["export", s(&src), "--format", "gguf", "-o", s(&gguf)]);
        ok(&["convert", s(&gguf), "-o", s(&back)]);
        let (a, b) = (inspect_tensors(&src), inspect_tensors(&back));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            if x.name.ends_with("norm.weight") && x.dtype == "f16" {
                // llama.cpp wants f32 norms: an f16 norm comes back as f32.
                assert_eq!(
                    (&x.name, y.dtype.as_str()),
                    (&y.name, "f32"),
                    "{}",
                    src.display()
                );
            } else {
                assert_eq!(x, y, "{}", src.display());
            }
        }
    }
}

#[test]
fn safetensors_export_converts_back_to_the_same_weights() {
    let sh = shared();
    let dir = sh.dir.join("hf-export");
    let _ = std::fs::remove_dir_all(&dir);
    ok(&[
        "export",
        s(&sh.f32),
        "--format",
        "safetensors",
        "-o",
        s(&dir),
        "--dtype",
        "f32",
    ]);
    for f in [
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.model",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let back = sh.dir.join("hf-back.lpk");
    ok(&["convert", s(&dir), "-o", s(&back), "--dtype", "f32"]);
    assert_eq!(inspect_tensors(&sh.f32), inspect_tensors(&back));
    // The export matches the HF checkpoint transformers wrote, tensor for tensor.
    let fx = sh.dir.join("hf-fixture-f32.lpk");
    ok(&[
        "convert",
        s(&fixture("tiny/hf")),
        "-o",
        s(&fx),
        "--dtype",
        "f32",
    ]);
    assert_eq!(inspect_tensors(&fx), inspect_tensors(&back));
    // Exporting over a non-empty directory is refused.
    let err = fails(&[
        "export",
        s(&sh.f32),
        "--format",
        "safetensors",
        "-o",
        s(&dir),
    ]);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn logits_command_matches_transformers() {
    let sh = shared();
    let prompts: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny/ref/prompts.json")).unwrap())
            .unwrap();
    let first = &prompts.as_array().unwrap()[1];
    let ids = sh.dir.join("ids.json");
    std::fs::write(&ids, first["ids"].to_string()).unwrap();
    let out = sh.dir.join("logits.npy");
    ok(&["logits", s(&sh.f32), "--tokens", s(&ids), "-o", s(&out)]);
    let ours = llamapack_runner::npy::read(&out).unwrap();
    let theirs = llamapack_runner::npy::read(fixture("tiny/ref/logits_f32_1.npy")).unwrap();
    assert_eq!(ours.shape, theirs.shape);
    let (a, b) = (ours.to_f32().unwrap(), theirs.to_f32().unwrap());
    let max = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff <= 1e-4 * max, "max |Δ| {diff} vs max |logit| {max}");
}

#[test]
fn run_is_deterministic_when_greedy() {
    let sh = shared();
    let a = ok(&[
        "run",
        s(&sh.f16),
        "--prompt",
        "Alice",
        "-n",
        "12",
        "--temperature",
        "0",
    ]);
    let b = ok(&[
        "run",
        s(&sh.f16),
        "--prompt",
        "Alice",
        "-n",
        "12",
        "--temperature",
        "0",
    ]);
    assert_eq!(a, b);
    assert!(a.starts_with("Alice") && a.len() > "Alice".len() + 5, "{a}");
    let err = fails(&["run", s(&sh.f16), "--prompt", "Alice", "-n", "100000"]);
    assert!(err.contains("context length"), "{err}");
}

#[test]
fn demo_runs_the_whole_pipeline() {
    let out = shared().dir.join("demo");
    let text = ok(&["demo", "--out", s(&out), "--chunks", "2", "-n", "4"]);
    for needle in [
        "1. convert",
        "2. quantize",
        "3. compare",
        "4. generate",
        "tiny-q8_0.lpk",
        "tiny-q4_k_m.lpk",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(out.join("compare.svg").is_file());
}

#[test]
fn user_mistakes_get_one_clear_line() {
    let sh = shared();
    let err = fails(&["quantize", s(&sh.f16), "-o", s(&sh.f16), "--type", "q4_0"]);
    assert!(err.contains("refusing to overwrite"), "{err}");
    let err = fails(&["quantize", s(&sh.f16), "-o", "/tmp/x.lpk", "--type", "q7_0"]);
    assert!(err.contains("unknown recipe `q7_0`"), "{err}");
    let short = sh.dir.join("short.json");
    std::fs::write(&short, "[1, 5, 9]").unwrap();
    let err = fails(&[
        "eval",
        s(&sh.f16),
        "--reference",
        s(&sh.f16),
        "--tokens",
        s(&short),
        "--ctx",
        "128",
    ]);
    assert!(err.contains("fewer than one window"), "{err}");
    let bad = sh.dir.join("bad.json");
    std::fs::write(&bad, "[1, 99999]").unwrap();
    let err = fails(&[
        "eval",
        s(&sh.f16),
        "--reference",
        s(&sh.f16),
        "--tokens",
        s(&bad),
    ]);
    assert!(err.contains("outside the vocabulary"), "{err}");
    let meta = fixture("tiny/meta");
    let err = fails(&[
        "convert",
        s(&meta),
        "-o",
        s(&meta.join("consolidated.00.pth")),
    ]);
    assert!(err.contains("overwrite"), "{err}");
}

#[test]
fn a_full_disk_is_one_clear_error_and_leaves_nothing() {
    // A 1 MB tmpfs stands in for a full disk; mounting needs root, so skip elsewhere.
    let dir = shared().dir.join("full-disk");
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", s(&dir)])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let out = dir.join("out.lpk");
    let err = fails(&["convert", s(&fixture("tiny/meta")), "-o", s(&out)]);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let _ = std::process::Command::new("umount").arg(s(&dir)).status();
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
