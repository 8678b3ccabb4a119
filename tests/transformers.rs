//! transformers loads our safetensors export and computes the logits our runner computes.
//! Runs when `$PYTHON` (default `python3`) can import torch and transformers; otherwise prints
//! why it is skipped and passes (CI does not install the 5 GB of torch).

use std::process::Command;

use crate::common::{fixture, ok, root, s};

fn python() -> Option<String> {
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    Command::new(&py)
        .args(["-c", "import torch, transformers, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(py)
}

/// Max |Δ| and max |logit| between transformers on the export of `lpk` and our runner on `lpk`.
fn compare(py: &str, dir: &std::path::Path, lpk: &std::path::Path) -> (f32, f32) {
    let hf = lpk.with_extension("hf");
    ok(&[
        "export",
        s(lpk),
        "--format",
        "safetensors",
        "-o",
        s(&hf),
        "--dtype",
        "f32",
    ]);
    let prompts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny/ref/prompts.json")).unwrap())
            .unwrap();
    let ids = dir.join("ids.json");
    std::fs::write(&ids, prompts[2]["ids"].to_string()).unwrap();
    let theirs = lpk.with_extension("theirs.npy");
    let out = Command::new(py)
        .args([
            s(&root().join("tests/hf_logits.py")),
            s(&hf),
            s(&ids),
            s(&theirs),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "transformers failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = lpk.with_extension("ours.npy");
    ok(&["logits", s(lpk), "--tokens", s(&ids), "-o", s(&ours)]);
    let a = llamapack_runner::npy::read(&ours).unwrap();
    let b = llamapack_runner::npy::read(&theirs).unwrap();
    assert_eq!(a.shape, b.shape);
    let (a, b) = (a.to_f32().unwrap(), b.to_f32().unwrap());
    let max = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    (diff, max)
}

#[test]
fn transformers_runs_the_safetensors_export_to_the_same_logits() {
    let Some(py) = python() else {
        eprintln!(
            "skipped: no python with torch and transformers (set PYTHON=/path/to/venv/bin/python)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f32 = dir.path().join("f32.lpk");
    ok(&[
        "convert",
        s(&fixture("tiny/meta")),
        "-o",
        s(&f32),
        "--dtype",
        "f32",
    ]);
    let (diff, max) = compare(&py, dir.path(), &f32);
    eprintln!(
        "f32: transformers on the export vs our runner: max |Δ| {diff:.3e}, max |logit| {max:.2}"
    );
    assert!(diff <= 1e-4 * max, "max |Δ| {diff} vs max |logit| {max}");

    // A quantized artifact: the export dequantizes it, so transformers runs the same weights.
    let q = dir.path().join("q4_k_m.lpk");
    ok(&["quantize", s(&f32), "-o", s(&q), "--type", "q4_k_m"]);
    let (diff, max) = compare(&py, dir.path(), &q);
    eprintln!(
        "q4_k_m: transformers on the export vs our runner: max |Δ| {diff:.3e}, max |logit| {max:.2}"
    );
    // Our runner also quantizes activations to q8_k for the k-quant dots (as ggml does), which
    // transformers does not: the difference is that rounding, about 1% of the largest logit.
    assert!(diff <= 3e-2 * max, "max |Δ| {diff} vs max |logit| {max}");
}
