//! The tiny model's Meta checkpoint (2 bf16 shards) and its HF checkpoint (f16) — written by
//! torch and transformers in `fixtures/make_fixtures.py` — convert to identical tensors.

use crate::common;

use std::path::{Path, PathBuf};

use common::{copy_dir, quiet};
use llamapack_convert::{ConvertOptions, OutputDType, SourceFormat, convert, inspect_source};
use llamapack_format::{DType, Lpk};

fn tiny() -> PathBuf {
    common::fixtures().join("tiny")
}

fn opts(dtype: OutputDType) -> ConvertOptions {
    ConvertOptions {
        dtype,
        // Meta's params.json has no context length; use the HF one for both.
        context_length: Some(256),
        ..ConvertOptions::default()
    }
}

fn meta_dir(t: &Path) -> PathBuf {
    // Meta's layout: tokenizer.model beside the shard folder.
    let d = t.join("llama-tiny");
    copy_dir(&tiny().join("meta"), &d);
    std::fs::copy(tiny().join("tokenizer.model"), t.join("tokenizer.model")).unwrap();
    d
}

fn assert_same_tensors(a: &Lpk, b: &Lpk) {
    let names = |l: &Lpk| {
        l.entries()
            .iter()
            .map(|e| e.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(a), names(b));
    for (x, y) in a.entries().iter().zip(b.entries()) {
        assert_eq!((&x.dtype, &x.shape), (&y.dtype, &y.shape), "{}", x.name);
        assert_eq!(x.crc32c, y.crc32c, "{}", x.name);
        assert_eq!(
            a.tensor(&x.name).unwrap().bytes,
            b.tensor(&y.name).unwrap().bytes,
            "{}",
            x.name
        );
    }
}

#[test]
fn meta_and_hf_checkpoints_give_identical_lpk_tensors() {
    let t = tempfile::tempdir().unwrap();
    let meta = meta_dir(t.path());
    for dtype in [OutputDType::F32, OutputDType::F16] {
        let m_out = t.path().join(format!("meta-{}.lpk", dtype.name()));
        let h_out = t.path().join(format!("hf-{}.lpk", dtype.name()));
        let ms = convert(&meta, &m_out, &opts(dtype), &quiet).unwrap();
        let hs = convert(&tiny().join("hf"), &h_out, &opts(dtype), &quiet).unwrap();
        assert_eq!(
            (ms.format, hs.format),
            (SourceFormat::Meta, SourceFormat::Hf)
        );
        assert!(
            ms.warnings.is_empty() && hs.warnings.is_empty(),
            "{ms:?} {hs:?}"
        );
        let (m, h) = (Lpk::open(&m_out).unwrap(), Lpk::open(&h_out).unwrap());
        assert!(m.verify().is_empty() && h.verify().is_empty());
        assert_same_tensors(&m, &h);
        assert!(
            m.tensors()
                .all(|t| t.dtype == DType::from_name(dtype.name()).unwrap())
        );
        let (mc, hc) = (m.config(), h.config());
        assert_eq!(mc, hc);
        assert_eq!(
            (mc.n_heads, mc.n_kv_heads),
            (8, 4),
            "GQA: k_proj un-permuted with 4 heads"
        );
        let (mt, ht) = (m.tokenizer(), h.tokenizer());
        assert_eq!(mt, ht);
        assert_eq!(m.blob("tokenizer.model"), h.blob("tokenizer.model"));
        assert_eq!(m.provenance().source_format, "meta");
        assert_eq!(h.provenance().source_format, "hf");
    }
}

#[test]
fn hf_with_only_tokenizer_json_keeps_the_same_pieces() {
    let t = tempfile::tempdir().unwrap();
    let hf = t.path().join("hf");
    copy_dir(&tiny().join("hf"), &hf);
    std::fs::remove_file(hf.join("tokenizer.model")).unwrap();
    let out = t.path().join("o.lpk");
    convert(&hf, &out, &opts(OutputDType::Keep), &quiet).unwrap();
    let lpk = Lpk::open(&out).unwrap();
    let tok = lpk.tokenizer();
    let sp = llamapack_convert::sentencepiece::parse(
        &std::fs::read(tiny().join("tokenizer.model")).unwrap(),
        "tokenizer.model",
    )
    .unwrap()
    .data;
    assert_eq!(tok.pieces, sp.pieces);
    assert_eq!(tok.types, sp.types);
    assert_eq!(
        (tok.bos_id, tok.eos_id, tok.unk_id),
        (sp.bos_id, sp.eos_id, sp.unk_id)
    );
    assert!(lpk.blob("tokenizer.json").is_some());
    assert!(
        lpk.tensors().all(|t| t.dtype == DType::F16),
        "keep = f16 for this checkpoint"
    );
    let names: Vec<&str> = lpk
        .provenance()
        .sources
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
}

#[test]
fn inspect_hf_uses_meta_names_and_keeps_hf_names() {
    let l = inspect_source(&tiny().join("hf")).unwrap();
    assert_eq!(l.format, SourceFormat::Hf);
    let q = &l.tensors[1];
    assert_eq!(q.name, "layers.0.attention.wq.weight");
    assert_eq!(
        q.source_name.as_deref(),
        Some("model.layers.0.self_attn.q_proj.weight")
    );
    let raw = inspect_source(&tiny().join("hf/model.safetensors")).unwrap();
    assert_eq!(raw.format, SourceFormat::Safetensors);
    assert_eq!(raw.tensors.len(), l.tensors.len());
}

#[test]
fn inspect_meta_merges_the_shards() {
    let t = tempfile::tempdir().unwrap();
    let l = inspect_source(&meta_dir(t.path())).unwrap();
    let h = inspect_source(&tiny().join("hf")).unwrap();
    let shapes = |l: &llamapack_convert::SourceListing| {
        l.tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(shapes(&l), shapes(&h));
}

/// Splits the tiny HF checkpoint into two safetensors shards with an index (as `save_pretrained`
/// does for large models), optionally dropping `lm_head` and tying the embeddings.
fn sharded_hf(t: &Path, tie: bool) -> PathBuf {
    use safetensors::SafeTensors;
    let src = tiny().join("hf");
    let dir = t.join(if tie { "hf-tied" } else { "hf-sharded" });
    copy_dir(&src, &dir);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_owned).collect();
    names.sort();
    if tie {
        names.retain(|n| n != "lm_head.weight");
    }
    let half = names.len() / 2;
    let mut map = serde_json::Map::new();
    for (i, part) in [&names[..half], &names[half..]].iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = part
            .iter()
            .map(|n| (n.clone(), st.tensor(n).unwrap()))
            .collect();
        std::fs::write(
            dir.join(&file),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
        for n in *part {
            map.insert(n.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    if tie {
        let p = dir.join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        cfg["tie_word_embeddings"] = true.into();
        std::fs::write(&p, cfg.to_string()).unwrap();
    }
    dir
}

#[test]
fn sharded_hf_with_index_converts_like_the_single_file() {
    let t = tempfile::tempdir().unwrap();
    let dir = sharded_hf(t.path(), false);
    let (a, b) = (t.path().join("a.lpk"), t.path().join("b.lpk"));
    convert(&dir, &a, &opts(OutputDType::Keep), &quiet).unwrap();
    convert(&tiny().join("hf"), &b, &opts(OutputDType::Keep), &quiet).unwrap();
    let (a, b) = (Lpk::open(&a).unwrap(), Lpk::open(&b).unwrap());
    assert_same_tensors(&a, &b);
    let names: Vec<&str> = a
        .provenance()
        .sources
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert!(names.contains(&"model.safetensors.index.json"), "{names:?}");
    assert!(
        names.contains(&"model-00002-of-00002.safetensors"),
        "{names:?}"
    );
}

#[test]
fn tied_embeddings_leave_out_the_output_tensor() {
    let t = tempfile::tempdir().unwrap();
    let dir = sharded_hf(t.path(), true);
    let out = t.path().join("tied.lpk");
    convert(&dir, &out, &opts(OutputDType::Keep), &quiet).unwrap();
    let lpk = Lpk::open(&out).unwrap();
    assert!(lpk.config().tied_output);
    assert!(!lpk.contains("output.weight"));
    assert!(lpk.contains("tok_embeddings.weight"));
}

#[test]
fn hf_index_pointing_outside_the_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = sharded_hf(t.path(), false);
    let p = dir.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&p).unwrap().replacen(
        "model-00001-of-00002",
        "../../etc/passwd",
        1,
    );
    std::fs::write(&p, text).unwrap();
    let e = convert(
        &dir,
        &t.path().join("o.lpk"),
        &opts(OutputDType::Keep),
        &quiet,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("not a file name in this directory"),
        "{e}"
    );
}
