//! The command-line conventions: `-t/--threads` on every command that computes, `-f/--file` and
//! `-` for text, usage errors exit 2 with a suggestion for a misspelt value; `inspect` readable
//! within 100 columns; `tokenize --bos`; `bench -r`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{fixture, json, llamapack, ok, s, shared};

/// Runs the CLI with `stdin` as its standard input; returns stdout.
fn with_stdin(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llamapack"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Exit status 2 and a stderr containing every one of `wanted`.
fn usage_error(args: &[&str], wanted: &[&str]) {
    let out = llamapack(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    for w in wanted {
        assert!(err.contains(w), "{args:?}: `{w}` not in {err}");
    }
}

#[test]
fn every_computing_command_takes_dash_t() {
    for cmd in [
        "run", "logits", "bench", "eval", "compare", "quantize", "imatrix", "verify", "convert",
        "demo",
    ] {
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains("-t, --threads"), "{cmd}: {help}");
    }
    // quantize's -t is --threads; its type is --type only.
    let help = ok(&["quantize", "--help"]);
    assert!(!help.contains("-t, --type"), "{help}");
    usage_error(
        &["bench", s(&shared().f16), "-t", "0"],
        &["--threads", "at least 1"],
    );
}

#[test]
fn misspelt_values_are_usage_errors_with_a_suggestion() {
    let sh = shared();
    let m = s(&sh.f16);
    let out = sh.dir.join("never.lpk");
    let o = s(&out);
    for (args, wanted) in [
        (
            vec!["quantize", m, "-o", o, "--type", "q4km"],
            "did you mean `q4_k_m`?",
        ),
        (
            vec!["quantize", m, "-o", o, "--type", "Q5-K-S"],
            "did you mean `q5_k_s`?",
        ),
        (
            vec![
                "quantize",
                m,
                "-o",
                o,
                "--type",
                "q4_k_m",
                "--output-type",
                "q6k",
            ],
            "did you mean `q6_k`?",
        ),
        (
            vec![
                "quantize",
                m,
                "-o",
                o,
                "--type",
                "q4_k_m",
                "--embedding-type",
                "q8_k",
            ],
            "q8_k cannot be stored",
        ),
        (
            vec![
                "quantize",
                m,
                "-o",
                o,
                "--type",
                "q4_k_m",
                "--tensor-type",
                "attn_v=q5kk",
            ],
            "did you mean `q5_k`?",
        ),
        (
            vec!["export", m, "--format", "ggfu", "-o", o],
            "a similar value exists: 'gguf'",
        ),
        (
            vec![
                "export",
                m,
                "--format",
                "safetensors",
                "--dtype",
                "f61",
                "-o",
                o,
            ],
            "did you mean `f16`?",
        ),
        (
            vec![
                "convert",
                s(&fixture("tiny/meta")),
                "-o",
                o,
                "--dtype",
                "bf61",
            ],
            "did you mean `bf16`?",
        ),
    ] {
        usage_error(&args, &[wanted]);
    }
    assert!(!out.exists());
    // Contradictory or missing options are usage errors too.
    usage_error(&["run", m], &["--prompt"]);
    usage_error(
        &["run", m, "-p", "a", "-f", "b.txt"],
        &["cannot be used with"],
    );
    usage_error(
        &["run", m, "-p", "a", "--temperature", "-1"],
        &["--temperature"],
    );
    usage_error(&["bench", m, "-p", "0", "-n", "0"], &["nothing to measure"]);
    usage_error(
        &["logits", m, "-p", "a", "--ctx", "64", "-o", o],
        &["--eval-reference"],
    );
}

#[test]
fn prompts_come_from_a_file_or_stdin() {
    let sh = shared();
    let dir = tempfile::tempdir().unwrap();
    let prompt = "Alice was beginning to get very tired";
    let file = dir.path().join("prompt.txt");
    std::fs::write(&file, prompt).unwrap();
    let m = s(&sh.f16);
    fn run<'a>(m: &'a str, how: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["run", m, "-n", "8", "--temperature", "0"];
        args.extend_from_slice(how);
        args
    }
    let direct = ok(&run(m, &["-p", prompt]));
    assert_eq!(ok(&run(m, &["-f", s(&file)])), direct);
    assert_eq!(with_stdin(&run(m, &["--file", "-"]), prompt), direct);

    let ids = |out: String| serde_json::from_str::<serde_json::Value>(&out).unwrap()["ids"].clone();
    let direct = ids(ok(&["tokenize", m, "--text", prompt, "--json"]));
    assert_eq!(ids(ok(&["tokenize", m, "-f", s(&file), "--json"])), direct);
    assert_eq!(
        ids(with_stdin(&["tokenize", m, "-f", "-", "--json"], prompt)),
        direct
    );

    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    ok(&["logits", m, "-p", prompt, "-o", s(&a)]);
    with_stdin(&["logits", m, "-f", "-", "-o", s(&b)], prompt);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    // eval's --text - reads standard input.
    let text = std::fs::read_to_string(fixture("text/corpus.txt")).unwrap();
    let args = |t: &str| {
        vec![
            "eval".to_string(),
            m.into(),
            "--reference".into(),
            s(&sh.f32).into(),
            "--text".into(),
            t.into(),
            "--ctx".into(),
            "64".into(),
            "--chunks".into(),
            "2".into(),
            "--json".into(),
        ]
    };
    let from_file: Vec<String> = args(s(&fixture("text/corpus.txt")));
    let from_file: Vec<&str> = from_file.iter().map(String::as_str).collect();
    let from_stdin: Vec<String> = args("-");
    let from_stdin: Vec<&str> = from_stdin.iter().map(String::as_str).collect();
    assert_eq!(
        json(&from_file),
        serde_json::from_str::<serde_json::Value>(&with_stdin(&from_stdin, &text)).unwrap()
    );
}

/// Every line of `text` fits 100 columns, and none is a JSON dump.
fn assert_readable(text: &str, what: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= 100,
            "{what}: {} columns: {line}",
            line.chars().count()
        );
        assert!(!line.contains("{\""), "{what}: JSON in {line}");
    }
}

/// `inspect FILE` run inside FILE's folder (so that the path printed is short).
fn inspect_here(file: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_llamapack"))
        .args(["inspect", file.file_name().unwrap().to_str().unwrap()])
        .current_dir(file.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inspect_is_readable_in_100_columns() {
    let sh = shared();
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("tiny-q4_k_m.lpk");
    let im = fixture("imatrix/tiny.imatrix.gguf");
    ok(&[
        "quantize",
        s(&sh.f16),
        "-o",
        s(&q),
        "--type",
        "q4_k_m",
        "--imatrix",
        s(&im),
        "--tensor-type",
        "attn_v=q6_k",
    ]);
    ok(&[
        "eval",
        s(&q),
        "--reference",
        s(&sh.f16),
        "--text",
        s(&fixture("text/corpus.txt")),
        "--ctx",
        "64",
        "--chunks",
        "3",
        "--store",
    ]);
    let text = inspect_here(&q);
    assert_readable(&text, "quantized .lpk");
    for want in [
        "quantized with the q4_k_m recipe (Q4_K_M in llama.cpp)",
        "tensor types: attn_v=q6_k",
        "importance matrix",
        "accuracy (eval --store): against tiny-f16.lpk on corpus.txt, ctx 64, 3 windows",
        "mean KLD",
        "same top token",
    ] {
        assert!(text.contains(want), "`{want}` not in\n{text}");
    }
    let v = json(&["inspect", s(&q), "--json"]);
    assert!(v["provenance"]["accuracy"]["summary"]["kld_mean"].is_number());

    let gguf = dir.path().join("tiny-q4_k_m.gguf");
    std::fs::copy(fixture("gguf/tiny-q4_k_m.gguf"), &gguf).unwrap();
    let text = inspect_here(&gguf);
    assert_readable(&text, "GGUF");
    assert!(
        text.contains("gguf_file_type: Q4_K_M (llama.cpp file type 15)"),
        "{text}"
    );
    assert!(!text.contains("file type 15\n") || text.contains("Q4_K_M"));

    let conv = dir.path().join("from-gguf.lpk");
    ok(&["convert", s(&gguf), "-o", s(&conv)]);
    assert_readable(&inspect_here(&conv), "converted GGUF");
    assert_readable(
        &inspect_here(&fixture("tiny/hf/model.safetensors")),
        "safetensors",
    );
    assert_readable(&inspect_here(&fixture("tiny/meta")), "Meta checkpoint");
    assert_readable(&inspect_here(&im), "imatrix");
}

#[test]
fn tokenize_bos_adds_bos_for_every_source() {
    let text = "Alice was";
    let first = |src: &Path| {
        json(&["tokenize", s(src), "--text", text, "--bos", "--json"])["ids"][0].clone()
    };
    for src in [
        fixture("tiny/hf/tokenizer.json"),
        fixture("tiny/tokenizer.model"),
        shared().f16.clone(),
        fixture("gguf/tiny-f16.gguf"),
    ] {
        assert_eq!(first(&src), 1, "{}", src.display());
    }
    let without = json(&[
        "tokenize",
        s(&fixture("tiny/hf/tokenizer.json")),
        "--text",
        text,
        "--json",
    ]);
    assert_ne!(without["ids"][0], 1);
    // A tokenizer.json alone that names no BOS: an error, not ids without it.
    let out = llamapack(&[
        "tokenize",
        s(&fixture("tokenizer/gpt2_tiny/tokenizer.json")),
        "--text",
        text,
        "--bos",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no BOS token"));
}

#[test]
fn bench_repeats_and_reports_mean_and_deviation() {
    let m = s(&shared().f16);
    let v = json(&["bench", m, "-p", "16", "-n", "4", "-r", "3", "--json"]);
    let pp: Vec<f64> = v["pp_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(pp.len(), 3);
    assert_eq!(v["reps"], 3);
    let mean = pp.iter().sum::<f64>() / 3.0;
    assert!((v["pp_tok_s"].as_f64().unwrap() - mean).abs() <= 1e-9 * mean);
    let var = pp.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0;
    assert!((v["pp_tok_s_stddev"].as_f64().unwrap() - var.sqrt()).abs() <= 1e-6 * mean);
    let text = ok(&["bench", m, "-p", "16", "-n", "4", "--repetitions", "2"]);
    assert!(
        text.contains("pp16") && text.contains("tg4") && text.contains(" ± "),
        "{text}"
    );
    assert!(text.contains("2 runs each"), "{text}");
}
