//! Meta checkpoints (`fixtures/pth/meta_*`, made by `make_pth_cases.py`): shard merging against
//! torch's merged values, and every way a Meta directory can be wrong.

use crate::common;

use std::path::Path;

use common::{f32s, listing, meta_case, quiet};
use llamapack_convert::{
    ConvertOptions, Error, OutputDType, SourceDType, SourceFormat, Warning, convert, inspect_source,
};
use llamapack_format::{DType, Lpk};
use serde_json::Value;

fn opts(dtype: OutputDType) -> ConvertOptions {
    ConvertOptions {
        dtype,
        ..ConvertOptions::default()
    }
}

#[test]
fn merges_shards_exactly_as_torch_cat_does() {
    let (t, dir) = meta_case("meta_ok");
    let out = t.path().join("out.lpk");
    let s = convert(&dir, &out, &opts(OutputDType::F32), &quiet).unwrap();
    assert_eq!(s.format, SourceFormat::Meta);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let lpk = Lpk::open(&out).unwrap();
    assert!(lpk.verify().is_empty());
    let merged: Value =
        serde_json::from_str(&std::fs::read_to_string(common::pth("meta_ok/merged.json")).unwrap())
            .unwrap();
    let merged = merged.as_object().unwrap();
    assert_eq!(
        lpk.len(),
        merged.len(),
        "rope.freqs is dropped, nothing else"
    );
    for (name, want) in merged {
        let t = lpk.tensor(name).unwrap();
        assert_eq!(t.dtype, DType::F32);
        let shape: Vec<u64> = serde_json::from_value(want["shape"].clone()).unwrap();
        assert_eq!(t.shape, shape, "{name}");
        let vals: Vec<f32> = want["values_x64"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap() as f32 / 64.0)
            .collect();
        assert_eq!(f32s(&lpk, name), vals, "{name}");
    }
    let cfg = lpk.config();
    assert_eq!(
        (cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads),
        (16, 1, 2, 1)
    );
    assert_eq!(
        (cfg.ffn_dim, cfg.vocab_size, cfg.context_length),
        (48, 512, 4096)
    );
    // Deterministic order: tok_embeddings, the layer, norm, output.
    let names: Vec<&str> = lpk.entries().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names[0], "tok_embeddings.weight");
    assert_eq!(names[1], "layers.0.attention.wq.weight");
    assert_eq!(names[9], "layers.0.ffn_norm.weight");
    assert_eq!(&names[10..], ["norm.weight", "output.weight"]);
    // Provenance: relative names, sha256, the tokenizer one level up, stored as a blob.
    let prov = lpk.provenance();
    assert_eq!(prov.source_format, "meta");
    let srcs: Vec<&str> = prov.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        srcs,
        [
            "../tokenizer.model",
            "consolidated.00.pth",
            "consolidated.01.pth",
            "params.json"
        ]
    );
    assert!(prov.sources.iter().all(|s| s.sha256.len() == 64));
    assert_eq!(
        lpk.blob("tokenizer.model").unwrap(),
        std::fs::read(t.path().join("tokenizer.model")).unwrap()
    );
    assert_eq!(lpk.tokenizer().pieces.len(), 512);
}

#[test]
fn keep_dtype_is_byte_identical_and_deterministic() {
    let (t, dir) = meta_case("meta_ok");
    let a = t.path().join("a.lpk");
    let b = t.path().join("b.lpk");
    convert(&dir, &a, &opts(OutputDType::Keep), &quiet).unwrap();
    convert(&dir, &b, &opts(OutputDType::Keep), &quiet).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let lpk = Lpk::open(&a).unwrap();
    assert!(lpk.tensors().all(|t| t.dtype == DType::BF16));
    // bf16 → f16 → f32 is exact for these values.
    let c = t.path().join("c.lpk");
    convert(&dir, &c, &opts(OutputDType::F16), &quiet).unwrap();
    let f16 = Lpk::open(&c).unwrap();
    for e in lpk.entries() {
        assert_eq!(f32s(&lpk, &e.name), f32s(&f16, &e.name), "{}", e.name);
    }
}

#[test]
fn progress_reaches_its_total() {
    let (t, dir) = meta_case("meta_ok");
    let last = std::cell::Cell::new((0, 0));
    convert(
        &dir,
        &t.path().join("o.lpk"),
        &opts(OutputDType::Keep),
        &|d, n| {
            assert!(d <= n);
            last.set((d, n));
        },
    )
    .unwrap();
    let (d, n) = last.get();
    assert!(n > 0 && d == n, "{d}/{n}");
}

#[test]
fn nan_is_a_warning_with_name_and_index() {
    let (t, dir) = meta_case("meta_nan");
    let out = t.path().join("out.lpk");
    let s = convert(&dir, &out, &opts(OutputDType::F16), &quiet).unwrap();
    match s.warnings.as_slice() {
        [
            Warning::NonFinite {
                tensor,
                count,
                first_index,
                value,
            },
        ] => {
            assert_eq!(tensor, "layers.0.feed_forward.w2.weight");
            assert_eq!((*count, first_index.as_slice()), (1, &[3u64, 5][..]));
            assert!(value.is_nan());
        }
        w => panic!("expected one NaN warning, got {w:?}"),
    }
    let msg = s.warnings[0].to_string();
    assert!(msg.contains("w2") && msg.contains("[3, 5]"), "{msg}");
    let lpk = Lpk::open(&out).unwrap();
    let w2 = f32s(&lpk, "layers.0.feed_forward.w2.weight");
    assert!(w2[3 * 48 + 5].is_nan());
    assert!(lpk.provenance().notes.contains_key("warnings"));
}

/// The error of converting the Meta checkpoint `dir` (dtypes kept) into `out_dir/o.lpk`.
fn refused(dir: &Path, out_dir: &Path) -> Error {
    convert(
        dir,
        &out_dir.join("o.lpk"),
        &opts(OutputDType::Keep),
        &quiet,
    )
    .unwrap_err()
}

fn no_output_left(dir: &Path) {
    let files = listing(dir);
    assert!(
        files.iter().all(|f| !f.contains("lpk")),
        "partial output left behind: {files:?}"
    );
}

#[test]
fn missing_shard_is_refused() {
    let (t, dir) = meta_case("meta_ok");
    std::fs::remove_file(dir.join("consolidated.00.pth")).unwrap();
    let e = refused(&dir, t.path());
    assert!(matches!(e, Error::Shards { .. }), "{e:?}");
    assert!(
        e.to_string().contains("missing shard consolidated.00.pth"),
        "{e}"
    );
    no_output_left(t.path());
}

#[test]
fn a_lone_first_shard_is_caught_by_the_shapes() {
    let (t, dir) = meta_case("meta_ok");
    std::fs::remove_file(dir.join("consolidated.01.pth")).unwrap();
    let e = refused(&dir, t.path());
    let msg = e.to_string();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    assert!(msg.contains("shard missing or extra"), "{msg}");
    no_output_left(t.path());
}

#[test]
fn an_extra_shard_is_caught() {
    let (t, dir) = meta_case("meta_ok");
    std::fs::copy(
        dir.join("consolidated.01.pth"),
        dir.join("consolidated.02.pth"),
    )
    .unwrap();
    let e = refused(&dir, t.path());
    assert!(e.to_string().contains("shard missing or extra"), "{e}");
}

#[test]
fn shards_with_different_shapes_are_refused() {
    let (t, dir) = meta_case("meta_shard_mismatch");
    let e = refused(&dir, t.path());
    let msg = e.to_string();
    assert!(matches!(e, Error::ShardMismatch { .. }), "{e:?}");
    assert!(
        msg.contains("consolidated.01.pth") && msg.contains("layers.0.attention.wq.weight"),
        "{msg}"
    );
    assert!(msg.contains("[10, 16]") && msg.contains("[8, 16]"), "{msg}");
}

#[test]
fn params_disagreeing_with_tensors_are_refused() {
    for (edit, needle) in [
        (r#""multiple_of": 16"#, r#""multiple_of": 64"#),
        (r#""n_kv_heads": 1"#, r#""n_kv_heads": 2"#),
        (r#""vocab_size": -1"#, r#""vocab_size": 500"#),
    ] {
        let (t, dir) = meta_case("meta_ok");
        let p = dir.join("params.json");
        let text = std::fs::read_to_string(&p).unwrap();
        let changed = text.replace(edit, needle);
        assert_ne!(text, changed, "{edit}");
        std::fs::write(&p, changed).unwrap();
        let e = refused(&dir, t.path());
        assert!(matches!(e, Error::Shape { .. }), "{needle}: {e:?}");
        assert!(e.to_string().contains("expected"), "{e}");
        no_output_left(t.path());
    }
}

#[test]
fn output_over_an_input_is_refused_and_the_input_survives() {
    let (t, dir) = meta_case("meta_ok");
    let shard = dir.join("consolidated.00.pth");
    let before = std::fs::read(&shard).unwrap();
    for out in [
        shard.clone(),
        dir.join("params.json"),
        t.path().join("tokenizer.model"),
        dir.join("../model/./consolidated.01.pth"),
    ] {
        let e = convert(&dir, &out, &opts(OutputDType::Keep), &quiet).unwrap_err();
        assert!(
            matches!(e, Error::OutputIsInput { .. }),
            "{}: {e:?}",
            out.display()
        );
    }
    // A hard link to an input is the same file.
    let link = t.path().join("link.lpk");
    std::fs::hard_link(&shard, &link).unwrap();
    let e = convert(&dir, &link, &opts(OutputDType::Keep), &quiet).unwrap_err();
    assert!(matches!(e, Error::OutputIsInput { .. }), "{e:?}");
    assert_eq!(std::fs::read(&shard).unwrap(), before);
    // Writing into the input directory under a new name is fine.
    convert(
        &dir,
        &dir.join("model.lpk"),
        &opts(OutputDType::Keep),
        &quiet,
    )
    .unwrap();
}

#[test]
fn missing_tokenizer_is_a_clear_error_and_explicit_path_works() {
    let (t, dir) = meta_case("meta_ok");
    let tok = t.path().join("tokenizer.model");
    let elsewhere = t.path().join("tok.model");
    std::fs::rename(&tok, &elsewhere).unwrap();
    let e = refused(&dir, t.path());
    assert!(e.to_string().contains("no tokenizer.model"), "{e}");
    let mut o = opts(OutputDType::Keep);
    o.tokenizer = Some(elsewhere);
    o.context_length = Some(1024);
    let s = convert(&dir, &t.path().join("o.lpk"), &o, &quiet).unwrap();
    assert_eq!(s.config.context_length, 1024);
}

#[test]
fn inspect_shows_the_merged_view() {
    let (_t, dir) = meta_case("meta_ok");
    let l = inspect_source(&dir).unwrap();
    assert_eq!(l.format, SourceFormat::Meta);
    assert_eq!(l.config.as_ref().unwrap().vocab_size, 512);
    let wo = l
        .tensors
        .iter()
        .find(|t| t.name == "layers.0.attention.wo.weight")
        .unwrap();
    assert_eq!((wo.shape.as_slice(), wo.pieces), (&[16u64, 16][..], 2));
    assert_eq!(wo.dtype, SourceDType::BF16);
    assert!(l.tensors.iter().all(|t| t.name != "rope.freqs"));
    assert_eq!(
        l.files,
        ["params.json", "consolidated.00.pth", "consolidated.01.pth"]
    );
}

#[test]
fn a_single_pth_with_params_beside_it_converts() {
    let (t, dir) = meta_case("meta_ok");
    // Make a one-shard checkpoint by converting… no: a lone shard fails the shape check, which
    // is the point — a single .pth is only a whole model when it was saved unsharded.
    let e = convert(
        &dir.join("consolidated.00.pth"),
        &t.path().join("o.lpk"),
        &opts(OutputDType::Keep),
        &quiet,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
}

#[test]
fn not_a_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let e = convert(
        t.path(),
        &t.path().join("o.lpk"),
        &ConvertOptions::default(),
        &quiet,
    )
    .unwrap_err();
    assert!(matches!(e, Error::UnknownSource { .. }), "{e:?}");
    let e = inspect_source(&t.path().join("nope")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

/// Tensors are converted on several threads into reserved places: any thread count gives the
/// same bytes, the same warnings and, for a bad checkpoint, the same error as one thread.
#[test]
fn any_thread_count_gives_the_same_file_warnings_and_errors() {
    for case in ["meta_ok", "meta_nan", "meta_shard_mismatch"] {
        let (t, dir) = meta_case(case);
        let run = |threads: usize| {
            let out = t.path().join(format!("o{threads}.lpk"));
            let o = ConvertOptions {
                threads,
                ..opts(OutputDType::F16)
            };
            let r = convert(&dir, &out, &o, &quiet)
                .map(|s| {
                    let w: Vec<String> = s.warnings.iter().map(ToString::to_string).collect();
                    (std::fs::read(&out).unwrap(), w)
                })
                .map_err(|e| e.to_string());
            let _ = std::fs::remove_file(&out);
            r
        };
        let one = run(1);
        for threads in [2, 3, 8] {
            // (Not assert_eq: a failure would print the files' bytes.)
            assert!(
                run(threads) == one,
                "{case}: {threads} threads differ from one"
            );
        }
    }
}
