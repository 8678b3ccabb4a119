//! `inspect --json` and `verify` on a `.lpk` written by the format crate.

use llamapack_format::{DType, LpkWriter, testing};

use crate::common::{fails, ok, s};

/// The tiny model (21 tensors; the reader refuses a partial one): an f32 embedding, a q8_0
/// `wq` of layer 0, zeros elsewhere.
fn write_tiny(path: &std::path::Path) {
    let meta = testing::tiny_metadata();
    let mut w = LpkWriter::create(path).unwrap();
    for (name, shape) in meta.config.tensors() {
        let n: u64 = shape.iter().product();
        match name.as_str() {
            "tok_embeddings.weight" => {
                let emb: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
                w.write_tensor(&name, DType::F32, &shape, bytemuck::cast_slice(&emb))
            }
            "layers.0.attention.wq.weight" => {
                w.write_tensor(&name, DType::Q8_0, &shape, &vec![3u8; 64 * 2 * 34])
            }
            _ => w.write_tensor(&name, DType::F32, &shape, &vec![0u8; n as usize * 4]),
        }
        .unwrap();
    }
    w.finish(&meta).unwrap();
}

#[test]
fn inspect_json_lists_config_tensors_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.lpk");
    write_tiny(&p);
    let v: serde_json::Value = serde_json::from_str(&ok(&["inspect", s(&p), "--json"])).unwrap();
    assert_eq!(v["config"]["dim"], 64);
    assert_eq!(v["config"]["n_kv_heads"], 2);
    assert_eq!(v["provenance"]["source_format"], "test");
    let t = &v["tensors"][1];
    assert_eq!(t["name"], "layers.0.attention.wq.weight");
    assert_eq!(t["dtype"], "q8_0");
    assert_eq!(t["shape"], serde_json::json!([64, 64]));
    assert_eq!(t["bytes"], 64 * 2 * 34);
    assert_eq!(t["checksum"].as_str().unwrap().len(), 8);
    assert_eq!(v["tensors"].as_array().unwrap().len(), 21);

    let text = ok(&["inspect", s(&p)]);
    assert!(text.contains("layers.0.attention.wq.weight"), "{text}");
    assert!(text.contains("q8_0"), "{text}");
}

#[test]
fn verify_passes_then_names_the_corrupt_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.lpk");
    write_tiny(&p);
    assert!(ok(&["verify", s(&p)]).starts_with("ok: 21 tensors"));

    let v: serde_json::Value = serde_json::from_str(&ok(&["inspect", s(&p), "--json"])).unwrap();
    let lpk = llamapack_format::Lpk::open(&p).unwrap();
    let off = lpk.entries()[1].offset as usize;
    drop(lpk);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[off + 100] ^= 0x40;
    std::fs::write(&p, &bytes).unwrap();
    let out = crate::common::llamapack(&["verify", s(&p)]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("checksum mismatch: layers.0.attention.wq.weight"),
        "{stdout}"
    );
    assert!(!stdout.contains("tok_embeddings"), "{stdout}");
    assert_eq!(v["tensors"][1]["name"], "layers.0.attention.wq.weight");

    // Nothing that rewrites tensors launders the corruption into a fresh, valid-looking file.
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    for args in [
        vec!["quantize", s(&p), "-o", "q.lpk", "--type", "q8_0"],
        vec!["export", s(&p), "--format", "gguf", "-o", "x.gguf"],
        vec!["export", s(&p), "--format", "safetensors", "-o", "hf"],
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains('.') && !a.contains('/') || *a == "hf" {
                    out_dir.join(a).display().to_string()
                } else {
                    (*a).to_owned()
                }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&args);
        assert!(
            err.contains("layers.0.attention.wq.weight") && err.contains("corrupt"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
}

#[test]
fn bad_files_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.lpk");
    std::fs::write(
        &p,
        b"definitely not a model file, but long enough to have a preamble......",
    )
    .unwrap();
    let err = fails(&["inspect", s(&p)]);
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("junk.lpk") && err.contains("not a .lpk file"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let missing = fails(&["verify", s(&dir.path().join("nope.lpk"))]);
    assert!(
        missing.contains("nope.lpk") && missing.contains("open"),
        "{missing}"
    );
}
