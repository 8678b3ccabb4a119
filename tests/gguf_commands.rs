//! Every command that reads a model takes llama.cpp's own GGUF files (`fixtures/gguf`), read in
//! place, and gives what it gives on the same file converted to a `.lpk` first.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{fails, fixture, json, llamapack, ok, s, tensors};

const Q4KM: &str = "gguf/tiny-q4_k_m.gguf";
const F16: &str = "gguf/tiny-f16.gguf";

/// The fixture GGUF `rel` and its conversion to a `.lpk` in `dir`.
fn pair(dir: &Path, rel: &str) -> (PathBuf, PathBuf) {
    let gguf = fixture(rel);
    let lpk = dir.join(Path::new(rel).with_extension("lpk").file_name().unwrap());
    ok(&["convert", s(&gguf), "-o", s(&lpk)]);
    (gguf, lpk)
}

fn corpus() -> PathBuf {
    fixture("text/corpus.txt")
}

/// Name, dtype and shape of every tensor of an `inspect --json` report.
fn layouts(v: &Value) -> Vec<(String, String, Value)> {
    tensors(v)
        .into_iter()
        .map(|t| (t.name, t.dtype, t.shape))
        .collect()
}

#[test]
fn inspect_and_tokenize_read_a_gguf_as_its_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let (gguf, lpk) = pair(dir.path(), Q4KM);
    let g = json(&["inspect", s(&gguf), "--json"]);
    let l = json(&["inspect", s(&lpk), "--json"]);
    assert_eq!(g["file"]["format"], "gguf");
    assert_eq!(l["file"]["format"], "lpk");
    assert_eq!(g["config"], l["config"]);
    assert_eq!(g["tokenizer"], l["tokenizer"]);
    assert_eq!(layouts(&g), layouts(&l));
    assert!(g["tensors"][0]["checksum"].is_null());
    assert!(l["tensors"][0]["checksum"].is_string());
    let text = ok(&["inspect", s(&gguf)]);
    assert!(
        text.contains("GGUF v3") && text.contains("Q4_K_M"),
        "{text}"
    );

    let words = "Alice was beginning to get very tired";
    let a = json(&["tokenize", s(&gguf), "--text", words, "--bos", "--json"]);
    let b = json(&["tokenize", s(&lpk), "--text", words, "--bos", "--json"]);
    assert_eq!(a["ids"], b["ids"]);
    assert_eq!(a["ids"][0], 1);
}

#[test]
fn models_are_told_apart_by_content_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let (gguf, lpk) = pair(dir.path(), Q4KM);
    let gguf_as_bin = dir.path().join("model.bin");
    let lpk_as_gguf = dir.path().join("model.gguf");
    std::fs::copy(&gguf, &gguf_as_bin).unwrap();
    std::fs::copy(&lpk, &lpk_as_gguf).unwrap();
    let a = json(&["inspect", s(&gguf_as_bin), "--json"]);
    let b = json(&["inspect", s(&lpk_as_gguf), "--json"]);
    assert_eq!(
        (&a["file"]["format"], &b["file"]["format"]),
        (&"gguf".into(), &"lpk".into())
    );
    assert_eq!(layouts(&a), layouts(&b));
    // An importance matrix is a GGUF too, but not a model.
    let err = fails(&["run", s(&fixture("imatrix/tiny.imatrix.gguf")), "-p", "hi"]);
    assert!(err.contains("importance matrix, not a model"), "{err}");
}

#[test]
fn run_logits_and_bench_on_a_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let (gguf, lpk) = pair(dir.path(), Q4KM);
    let generate = |m: &Path| {
        ok(&[
            "run",
            s(m),
            "-p",
            "Alice was",
            "-n",
            "12",
            "--temperature",
            "0",
            "-t",
            "1",
        ])
    };
    let (a, b) = (generate(&gguf), generate(&lpk));
    assert_eq!(a, b);
    assert!(a.len() > "Alice was".len() + 5, "{a}");

    let (na, nb) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    ok(&[
        "logits",
        s(&gguf),
        "-p",
        "Alice was beginning",
        "-o",
        s(&na),
    ]);
    ok(&["logits", s(&lpk), "-p", "Alice was beginning", "-o", s(&nb)]);
    assert_eq!(std::fs::read(&na).unwrap(), std::fs::read(&nb).unwrap());

    let v = json(&[
        "bench",
        s(&gguf),
        "-p",
        "16",
        "-n",
        "4",
        "-r",
        "2",
        "--json",
    ]);
    assert_eq!(v["pp_samples"].as_array().unwrap().len(), 2);
    assert!(v["tg_tok_s"].as_f64().unwrap() > 0.0);
    assert!(v["dtype_mix"].as_str().unwrap().contains("q4_k"), "{v}");
}

#[test]
fn eval_and_compare_put_llama_cpp_files_beside_ours() {
    let dir = tempfile::tempdir().unwrap();
    let (q_gguf, q_lpk) = pair(dir.path(), Q4KM);
    let (f_gguf, f_lpk) = pair(dir.path(), F16);
    let eval = |cand: &Path, reference: &Path| {
        let mut v = json(&[
            "eval",
            s(cand),
            "--reference",
            s(reference),
            "--text",
            s(&corpus()),
            "--ctx",
            "64",
            "--chunks",
            "4",
            "--json",
        ]);
        v.as_object_mut().unwrap().remove("text_tokens");
        v
    };
    let a = eval(&q_gguf, &f_gguf);
    assert_eq!(a, eval(&q_lpk, &f_lpk));
    assert!(a["kld_mean"].as_f64().unwrap() > 0.0);

    // One table: our q4_k_m, llama.cpp's, against the f16 GGUF.
    let ours = dir.path().join("ours-q4_k_m.lpk");
    ok(&["quantize", s(&f_gguf), "-o", s(&ours), "--type", "q4_k_m"]);
    let svg = dir.path().join("c.svg");
    let v = json(&[
        "compare",
        s(&ours),
        s(&q_gguf),
        "--reference",
        s(&f_gguf),
        "--text",
        s(&corpus()),
        "--ctx",
        "64",
        "--chunks",
        "4",
        "--bench-tokens",
        "0",
        "--svg",
        s(&svg),
        "--json",
    ]);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows[1]["file"], "tiny-q4_k_m.gguf");
    // llama-quantize and our quantizer give these tensors the same blocks.
    assert_eq!(rows[0]["kld_mean"], rows[1]["kld_mean"]);
    assert_eq!(rows[0]["kld_mean"], a["kld_mean"]);
    assert!(!rows[1]["layer_rel_rms"].as_array().unwrap().is_empty());
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.contains("2 artifacts against tiny-f16.gguf"),
        "{chart}"
    );
    assert!(
        chart.contains("text corpus.txt · ctx 64 · 4 windows"),
        "{chart}"
    );
}

#[test]
fn quantize_export_and_imatrix_read_a_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (f_gguf, f_lpk) = pair(d, F16);
    let (qa, qb) = (d.join("qa.lpk"), d.join("qb.lpk"));
    ok(&[
        "quantize",
        s(&f_gguf),
        "-o",
        s(&qa),
        "--type",
        "q4_k_m",
        "-t",
        "1",
    ]);
    ok(&[
        "quantize",
        s(&f_lpk),
        "-o",
        s(&qb),
        "--type",
        "q4_k_m",
        "-t",
        "1",
    ]);
    let sums = |p: &Path| -> Vec<Value> {
        json(&["inspect", s(p), "--json"])["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["checksum"].clone())
            .collect()
    };
    assert_eq!(sums(&qa), sums(&qb));

    let (q_gguf, _) = pair(d, Q4KM);
    let out = d.join("again.gguf");
    let msg = ok(&["export", s(&q_gguf), "--format", "gguf", "-o", s(&out)]);
    assert!(msg.contains("Q4_K_M (llama.cpp file type 15)"), "{msg}");
    assert!(!msg.contains(", llama.cpp file type 15"), "{msg}");
    let st = d.join("st");
    ok(&[
        "export",
        s(&q_gguf),
        "--format",
        "safetensors",
        "-o",
        s(&st),
    ]);
    assert!(st.join("model.safetensors").is_file());

    let (ia, ib) = (d.join("a.imatrix.gguf"), d.join("b.imatrix.gguf"));
    for (m, o) in [(&f_gguf, &ia), (&f_lpk, &ib)] {
        ok(&[
            "imatrix",
            s(m),
            "--text",
            s(&corpus()),
            "--ctx",
            "64",
            "--chunks",
            "2",
            "-o",
            s(o),
        ]);
    }
    assert_eq!(std::fs::read(&ia).unwrap(), std::fs::read(&ib).unwrap());
}

#[test]
fn verify_says_what_it_checked_of_a_gguf_and_finds_a_nan_scale() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = fixture(Q4KM);
    let out = ok(&["verify", s(&gguf)]);
    assert!(out.starts_with("ok: 39 tensors"), "{out}");
    for what in ["tensor index", "alignment", "finite", "no checksums"] {
        assert!(out.contains(what), "{what}: {out}");
    }
    let v = json(&["verify", s(&gguf), "--json"]);
    assert_eq!(v["format"], "gguf");
    assert_eq!(v["checked"].as_array().unwrap().len(), 4);

    // The super-block scale `d` (the first f16 of a q4_k block) of token_embd.weight's 3rd
    // block set to NaN.
    let mut bytes = std::fs::read(&gguf).unwrap();
    let f = llamapack_convert::gguf::GgufFile::parse(&bytes, "t").unwrap();
    let t = f.tensor("token_embd.weight").unwrap();
    assert_eq!(t.ty.name(), "q4_k");
    let at = (f.data_offset() + t.offset) as usize + 2 * 144;
    bytes[at..at + 2].copy_from_slice(&0x7e00u16.to_le_bytes());
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, &bytes).unwrap();
    let r = llamapack(&["verify", s(&bad)]);
    assert_eq!(r.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        stdout.contains("non-finite value: tok_embeddings.weight row 2 column 0"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("1 of 39 tensors are not finite"));
}

#[test]
fn eval_store_into_a_gguf_is_a_usage_error() {
    let r = llamapack(&[
        "eval",
        s(&fixture(Q4KM)),
        "--reference",
        s(&fixture(F16)),
        "--text",
        s(&corpus()),
        "--store",
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("convert it first"));
}
