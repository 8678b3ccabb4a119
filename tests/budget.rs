//! `quantize --target-bpw / --target-size / --plan` end to end on the fixture: calibrated on one
//! half of the corpus, evaluated on the other.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::{fails, fixture, inspect_tensors, json, ok, s, shared};

/// The corpus cut in two: (calibration, evaluation), written once.
fn halves() -> &'static (PathBuf, PathBuf) {
    static H: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    H.get_or_init(|| {
        let text = std::fs::read_to_string(fixture("text/corpus.txt")).unwrap();
        let mid = text.len() / 2;
        let cut = mid + text[mid..].find('\n').unwrap_or(0);
        let dir = &shared().dir;
        let (a, b) = (dir.join("calib.txt"), dir.join("heldout.txt"));
        std::fs::write(&a, &text[..cut]).unwrap();
        std::fs::write(&b, &text[cut..]).unwrap();
        (a, b)
    })
}

/// Bytes of every tensor of a model file.
fn tensor_bytes(model: &Path) -> u64 {
    inspect_tensors(model).iter().map(|t| t.bytes).sum()
}

fn mean_kld(model: &Path, heldout: &Path) -> f64 {
    let sh = shared();
    let v = json(&[
        "eval",
        s(model),
        "--reference",
        s(&sh.f16),
        "--text",
        s(heldout),
        "--ctx",
        "128",
        "--json",
    ]);
    v["kld_mean"].as_f64().unwrap()
}

const CAL: [&str; 4] = ["--calibrate-ctx", "128", "--calibrate-chunks", "12"];

#[test]
fn a_budget_fits_and_beats_the_fixed_recipe_on_held_out_text() {
    let sh = shared();
    let (calib, heldout) = halves();
    let d = &sh.dir;
    let im = d.join("budget.imatrix.gguf");
    ok(&[
        "imatrix",
        s(&sh.f16),
        "--text",
        s(calib),
        "--ctx",
        "128",
        "-o",
        s(&im),
    ]);
    let fixed = d.join("budget-q4_k_m.lpk");
    ok(&[
        "quantize",
        s(&sh.f16),
        "-o",
        s(&fixed),
        "--type",
        "q4_k_m",
        "--imatrix",
        s(&im),
    ]);
    let size = tensor_bytes(&fixed);
    let ours = d.join("budget-ours.lpk");
    let mut cmd = vec!["quantize", s(&sh.f16), "-o", s(&ours), "--target-size"];
    let size_s = size.to_string();
    cmd.push(&size_s);
    cmd.extend(["--calibrate", s(calib), "--json"]);
    cmd.extend(CAL);
    let report = json(&cmd);
    let got = tensor_bytes(&ours);
    assert!(got <= size, "{got} bytes for a budget of {size}");
    assert!(
        got as f64 > 0.98 * size as f64,
        "{got} bytes: the budget is not spent"
    );
    let (k_fixed, k_ours) = (mean_kld(&fixed, heldout), mean_kld(&ours, heldout));
    // Measured when written: 0.0079 (q4_k_m + imatrix) against 0.0023 at the same size.
    assert!(
        k_ours < 0.7 * k_fixed,
        "budget KLD {k_ours} vs q4_k_m+imatrix {k_fixed}"
    );
    // The additive prediction (measured on the calibration half) is close to what the held-out
    // half measures.
    let predicted = report["plan"]["predicted_kld"].as_f64().unwrap();
    assert!(
        predicted > k_ours / 2.0 && predicted < k_ours * 2.0,
        "predicted {predicted}, measured {k_ours}"
    );
    // The provenance records the plan and the sensitivities; inspect says so in words.
    let info = ok(&["inspect", s(&ours)]);
    assert!(info.contains("size budget"), "{info}");
    assert!(info.contains("most sensitive"), "{info}");
    let v = json(&["inspect", s(&ours), "--json"]);
    let b = &v["provenance"]["quantization"]["budget"];
    assert_eq!(
        b["plan"]["tensors"].as_array().unwrap().len(),
        b["sensitivities"]["tensors"].as_array().unwrap().len()
    );
    // Each tensor's measurement is timed (bench/budget_cost.sh extrapolates from these): the
    // per-tensor times add up to no more than the phases' totals.
    let sens = &b["sensitivities"];
    let per = |key: &str| -> f64 {
        sens["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let x = t[key].as_f64().unwrap();
                assert!(x > 0.0, "{key} of {}: {x}", t["name"]);
                x
            })
            .sum()
    };
    let (cand, probe) = (per("seconds_candidates"), per("seconds_probe"));
    assert!(cand <= sens["seconds_candidates"].as_f64().unwrap() + 1e-9);
    assert!(probe <= sens["seconds_probes"].as_f64().unwrap() + 1e-9);
    // llama.cpp's blocks: GGUF export takes it as it is.
    let gguf = d.join("budget-ours.gguf");
    ok(&["export", s(&ours), "--format", "gguf", "-o", s(&gguf)]);
}

#[test]
fn dry_run_writes_nothing_and_a_saved_plan_reapplies_to_the_same_bytes() {
    let sh = shared();
    let (calib, _) = halves();
    let d = &sh.dir;
    let (out, plan) = (d.join("dry.lpk"), d.join("dry.plan.json"));
    let mut cmd = vec![
        "quantize",
        s(&sh.f16),
        "-o",
        s(&out),
        "--target-bpw",
        "4.5",
        "--calibrate",
        s(calib),
        "--dry-run",
        "--save-plan",
        s(&plan),
    ];
    cmd.extend(CAL);
    let text = ok(&cmd);
    assert!(text.contains("predicted mean KLD"), "{text}");
    assert!(!out.exists(), "--dry-run wrote {}", out.display());
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(saved["kind"], "plan");
    assert!(saved["bits_per_weight"].as_f64().unwrap() <= 4.5);

    let (a, b) = (d.join("plan-a.lpk"), d.join("plan-b.lpk"));
    let mut direct = vec!["quantize", s(&sh.f16), "-o", s(&a), "--target-bpw", "4.5"];
    direct.extend(["--calibrate", s(calib)]);
    direct.extend(CAL);
    ok(&direct);
    let mut again = vec!["quantize", s(&sh.f16), "-o", s(&b), "--plan", s(&plan)];
    again.extend(["--calibrate", s(calib)]);
    again.extend(CAL);
    ok(&again);
    assert_eq!(inspect_tensors(&a), inspect_tensors(&b));
}

#[test]
fn budgets_out_of_range_and_short_texts_are_refused() {
    let sh = shared();
    let (calib, _) = halves();
    let d = &sh.dir;
    let out = d.join("refused.lpk");
    for bpw in ["0.5", "40"] {
        let mut cmd = vec!["quantize", s(&sh.f16), "-o", s(&out), "--target-bpw", bpw];
        cmd.extend(["--calibrate", s(calib)]);
        cmd.extend(CAL);
        let e = fails(&cmd);
        assert!(e.contains("reachable"), "--target-bpw {bpw}: {e}");
        assert!(!out.exists());
    }
    let short = d.join("short.txt");
    std::fs::write(&short, "Alice was beginning to get very tired.").unwrap();
    let mut cmd = vec!["quantize", s(&sh.f16), "-o", s(&out), "--target-bpw", "4.5"];
    cmd.extend(["--calibrate", s(&short)]);
    cmd.extend(CAL);
    let e = fails(&cmd);
    assert!(e.contains("fewer than one window"), "{e}");
    // A recipe and a budget at once, or a budget without calibration text: usage errors.
    let e = fails(&[
        "quantize",
        s(&sh.f16),
        "-o",
        s(&out),
        "--type",
        "q4_0",
        "--target-bpw",
        "4",
    ]);
    assert!(e.contains("cannot be used with"), "{e}");
    let e = fails(&["quantize", s(&sh.f16), "-o", s(&out), "--target-bpw", "4"]);
    assert!(e.contains("--calibrate"), "{e}");
    let e = fails(&[
        "quantize",
        s(&sh.f16),
        "-o",
        s(&out),
        "--target-size",
        "12 parsecs",
        "--calibrate",
        s(calib),
    ]);
    assert!(e.contains("unknown unit"), "{e}");
}
