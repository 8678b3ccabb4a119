//! `eval --reference X.npy`: exactly the rows of eval's windows, made by `logits
//! --eval-reference` and checked against the record beside it; and too few scored tokens read
//! n/a, not ± 0.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{fixture, llamapack, ok, s, shared};

fn corpus() -> PathBuf {
    fixture("text/corpus.txt")
}

/// `eval` of the f16 model against `reference` on `text`, in windows of `ctx`, at most
/// `chunks` (with `--json` when `as_json`).
fn run_eval(
    reference: &Path,
    ctx: &str,
    chunks: &str,
    text: &Path,
    as_json: bool,
) -> std::process::Output {
    let mut args = vec![
        "eval",
        s(&shared().f16),
        "--reference",
        s(reference),
        "--text",
        s(text),
        "--ctx",
        ctx,
        "--chunks",
        chunks,
    ];
    if as_json {
        args.push("--json");
    }
    llamapack(&args)
}

/// [`run_eval`] with `--json`: the report, or stderr.
fn eval(reference: &Path, ctx: &str, chunks: &str, text: &Path) -> Result<Value, String> {
    let out = run_eval(reference, ctx, chunks, text, true);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `logits` of the f32 model as an eval reference of `chunks` windows of `ctx`, into `out`;
/// returns its stdout.
fn make_reference(ctx: &str, chunks: &str, out: &Path) -> String {
    ok(&[
        "logits",
        s(&shared().f32),
        "--eval-reference",
        "--ctx",
        ctx,
        "--chunks",
        chunks,
        "--text",
        s(&corpus()),
        "-o",
        s(out),
    ])
}

#[test]
fn logits_writes_an_eval_reference_that_gives_the_models_figures() {
    let sh = shared();
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("ref.npy");
    let out = make_reference("64", "3", &npy);
    assert!(
        out.contains("3 windows of 64 tokens: 192 × 512 logits"),
        "{out}"
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ref.npy.json")).unwrap()).unwrap();
    assert_eq!(record["layout"], "eval-windows");
    assert_eq!(
        (record["ctx"].as_u64(), record["windows"].as_u64()),
        (Some(64), Some(3))
    );
    assert_eq!(record["bos"], 1);
    assert_eq!(record["rows"], 192);

    let from_npy = eval(&npy, "64", "3", &corpus()).unwrap();
    let from_model = eval(&sh.f32, "64", "3", &corpus()).unwrap();
    assert_eq!(from_npy, from_model);
    assert_eq!(from_npy["n_tokens"], 3 * (64 - 1 - 32));
}

#[test]
fn a_reference_for_other_windows_or_tokens_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("ref.npy");
    make_reference("64", "3", &npy);
    // Fewer windows than the reference holds: no silent truncation.
    let e = eval(&npy, "64", "2", &corpus()).unwrap_err();
    assert!(e.contains("windows: 3") && e.contains("uses 2"), "{e}");
    // Another --ctx.
    let e = eval(&npy, "32", "6", &corpus()).unwrap_err();
    assert!(e.contains("--ctx 64") && e.contains("uses 32"), "{e}");
    // Other text, same shape.
    let other = dir.path().join("other.txt");
    let text = std::fs::read_to_string(corpus()).unwrap();
    std::fs::write(&other, text.replace("Alice", "Bob")).unwrap();
    let e = eval(&npy, "64", "3", &other).unwrap_err();
    assert!(e.contains("computed on other tokens"), "{e}");
    assert!(e.contains("--eval-reference --ctx 64 --chunks 3"), "{e}");
}

#[test]
fn the_logits_of_one_sequence_are_not_an_eval_reference() {
    let sh = shared();
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("seq.npy");
    // 64 tokens: the shape of one window, but BOS is not written over a window's first token.
    let ids: Vec<u32> = (0..64).map(|i| 3 + (i * 7) % 500).collect();
    let ids_file = dir.path().join("ids.json");
    std::fs::write(&ids_file, serde_json::to_string(&ids).unwrap()).unwrap();
    ok(&[
        "logits",
        s(&sh.f32),
        "--tokens",
        s(&ids_file),
        "-o",
        s(&npy),
    ]);
    let out = llamapack(&[
        "eval",
        s(&sh.f16),
        "--reference",
        s(&npy),
        "--tokens",
        s(&ids_file),
        "--ctx",
        "64",
    ]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("one sequence of 64 tokens"), "{e}");
    assert!(
        e.contains("llamapack logits REFERENCE-MODEL --eval-reference"),
        "{e}"
    );
}

#[test]
fn a_reference_without_a_record_must_have_exactly_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("ref.npy");
    make_reference("64", "3", &npy);
    std::fs::remove_file(dir.path().join("ref.npy.json")).unwrap();
    // 192 rows for 2 windows of 64 (128 needed): refused, not truncated.
    let e = eval(&npy, "64", "2", &corpus()).unwrap_err();
    assert!(
        e.contains("192 rows of logits, but 2 windows of 64 tokens need exactly 128"),
        "{e}"
    );
    // The right shape without a record: used, with a warning.
    let out = run_eval(&npy, "64", "3", &corpus(), false);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no record of what produced it"));
    // A record that describes another file.
    let other = dir.path().join("other.npy");
    make_reference("32", "1", &other);
    std::fs::copy(
        dir.path().join("other.npy.json"),
        dir.path().join("ref.npy.json"),
    )
    .unwrap();
    let e = eval(&npy, "64", "3", &corpus()).unwrap_err();
    assert!(e.contains("do not belong together"), "{e}");
}

#[test]
fn too_few_scored_tokens_read_n_a_with_a_warning() {
    let sh = shared();
    // 3 windows of 8 tokens score 3 tokens each: 9.
    let out = run_eval(&sh.f32, "8", "3", &corpus(), false);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: only 9 tokens were scored"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("± 0.000000") && !stdout.contains(" 0.00%"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Cor(ln(PPL(Q)), ln(PPL(base))):    n/a\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Mean    KLD:") && stdout.contains("±        n/a"),
        "{stdout}"
    );
    let v = eval(&sh.f32, "8", "3", &corpus()).unwrap();
    assert!(
        v["kld_unc"].is_null() && v["ln_ppl_correlation"].is_null(),
        "{v}"
    );
    assert!(v["kld_mean"].is_number());
    // Enough tokens: figures, no warning.
    let out = run_eval(&sh.f32, "64", "2", &corpus(), false);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("n/a"));
}
