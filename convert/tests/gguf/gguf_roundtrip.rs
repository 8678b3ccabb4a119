//! Write → read round trips, and `.lpk` → GGUF → `.lpk` without loss.

use half::{bf16, f16};
use llamapack_convert::gguf::{
    self, Array, ExportOptions, GGML_TYPES, GgmlType, GgufFile, GgufWriter, ImportOptions,
    TensorDesc, Value, dequant,
};
use llamapack_format::{DType, Lpk, LpkWriter, TokenizerKind};

use crate::gguf_common::{self as common, Rng};

fn all_values() -> Vec<(String, Value)> {
    let nested = Array::Array(vec![
        Array::U8(vec![1, 2, 3]),
        Array::String(vec!["x".into(), String::new()]),
        Array::Array(vec![Array::F64(vec![-0.5]), Array::Bool(vec![])]),
        Array::I64(vec![]),
    ]);
    let v = vec![
        Value::U8(200),
        Value::I8(-100),
        Value::U16(60000),
        Value::I16(-30000),
        Value::U32(4_000_000_000),
        Value::I32(-2_000_000_000),
        Value::U64(u64::MAX),
        Value::I64(i64::MIN),
        Value::F32(-1.5e-7),
        Value::F64(std::f64::consts::PI),
        Value::Bool(true),
        Value::Bool(false),
        Value::String("héllo ▁wörld".into()),
        Value::String(String::new()),
        Value::Array(Array::U8(vec![0, 255])),
        Value::Array(Array::I8(vec![-128, 127])),
        Value::Array(Array::U16(vec![1, 65535])),
        Value::Array(Array::I16(vec![-1, 2])),
        Value::Array(Array::U32(vec![7; 5])),
        Value::Array(Array::I32(vec![-7, 0, 7])),
        Value::Array(Array::U64(vec![u64::MAX])),
        Value::Array(Array::I64(vec![i64::MIN, i64::MAX])),
        Value::Array(Array::F32(vec![0.0, -0.0, f32::INFINITY, 1e-38])),
        Value::Array(Array::F64(vec![1e300, -1e-300])),
        Value::Array(Array::Bool(vec![true, false, true])),
        Value::Array(Array::String(vec![
            "a".into(),
            "<0x0A>".into(),
            String::new(),
        ])),
        Value::Array(Array::F32(vec![])),
        Value::Array(nested),
    ];
    v.into_iter()
        .enumerate()
        .map(|(i, v)| (format!("test.{}.{i}", v.value_type()), v))
        .collect()
}

#[test]
fn gguf_every_metadata_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.gguf");
    let mut meta = all_values();
    meta.push(("general.alignment".into(), Value::U32(64)));
    GgufWriter::create(&path, &meta, Vec::new())
        .unwrap()
        .finish()
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let f = GgufFile::parse(&bytes, "meta.gguf").unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.metadata(), &meta[..]);
    assert!(f.tensors().is_empty());
}

#[test]
fn gguf_tensors_of_every_type_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensors.gguf");
    let mut rng = Rng::new(7);
    let mut descs = Vec::new();
    let mut datas = Vec::new();
    for (i, r) in GGML_TYPES.iter().enumerate() {
        // Two rows of two blocks, plus a 3-D and a 4-D shape for some types.
        let dims = match i % 3 {
            0 => vec![r.block_len * 2, 2],
            1 => vec![r.block_len, 3, 2],
            _ => vec![r.block_len, 1, 2, 1],
        };
        let d = TensorDesc {
            name: format!("t.{}", r.name),
            dims,
            ty: r.ty,
        };
        datas.push(rng.bytes(r.ty.tensor_bytes(&d.dims).unwrap() as usize));
        descs.push(d);
    }
    let meta = vec![("general.architecture".to_owned(), Value::from("test"))];
    let mut w = GgufWriter::create(&path, &meta, descs.clone()).unwrap();
    for (d, b) in descs.iter().zip(&datas) {
        w.write_tensor(&d.name, b).unwrap();
    }
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let f = GgufFile::parse(&bytes, "tensors.gguf").unwrap();
    assert_eq!(f.tensors().len(), descs.len());
    for ((t, d), b) in f.tensors().iter().zip(&descs).zip(&datas) {
        assert_eq!((&t.name, &t.dims, t.ty), (&d.name, &d.dims, d.ty));
        assert_eq!(t.offset % 32, 0);
        assert_eq!(f.tensor_data(t), &b[..], "{}", t.name);
    }
    // Sizes straight from the table: bf16 and the integer types are 1-element "blocks".
    for t in f.tensors() {
        let r = t.ty.info();
        assert_eq!(
            t.nbytes,
            t.numel() / r.block_len * r.block_bytes,
            "{}",
            t.name
        );
    }
    assert_eq!(f.tensor("t.bf16").unwrap().nbytes, 3 * 2 * 2);
}

#[test]
fn gguf_writer_rejects_misuse_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gguf");
    let desc = |name: &str, dims: Vec<u64>, ty| TensorDesc {
        name: name.into(),
        dims,
        ty,
    };
    let err = GgufWriter::create(&path, &[], vec![desc("a", vec![33], GgmlType::Q4_0)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("tensor `a`") && err.contains("q4_0"), "{err}");
    let meta = vec![("general.alignment".to_owned(), Value::U64(32))];
    let err = GgufWriter::create(&path, &meta, vec![])
        .unwrap_err()
        .to_string();
    assert!(err.contains("general.alignment"), "{err}");
    let mut w = GgufWriter::create(
        &path,
        &[],
        vec![
            desc("a", vec![4], GgmlType::F32),
            desc("b", vec![4], GgmlType::F32),
        ],
    )
    .unwrap();
    let err = w.write_tensor("b", &[0; 16]).unwrap_err().to_string();
    assert!(err.contains("expected tensor `a` next"), "{err}");
    let err = w.write_tensor("a", &[0; 15]).unwrap_err().to_string();
    assert!(err.contains("takes 16 bytes, got 15"), "{err}");
    w.write_tensor("a", &[0; 16]).unwrap();
    let err = w.finish().unwrap_err().to_string();
    assert!(err.contains("only 1 of 2"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Exports `lpk_path`, checks the GGUF against the `.lpk`, imports it back and checks that
/// nothing changed.
fn round_trip(dir: &std::path::Path, lpk_path: &std::path::Path, tag: &str) {
    let lpk = Lpk::open(lpk_path).unwrap();
    let gguf_path = dir.join(format!("{tag}.gguf"));
    let s = gguf::export_gguf(&lpk, &gguf_path, &ExportOptions::default()).unwrap();
    assert_eq!(s.tensors, lpk.len());

    let bytes = std::fs::read(&gguf_path).unwrap();
    let f = GgufFile::parse(&bytes, tag).unwrap();
    let cfg = lpk.config();
    assert_eq!(f.get("general.architecture"), Some(&Value::from("llama")));
    assert_eq!(f.get("general.name"), Some(&Value::from(tag)));
    assert_eq!(f.get("general.file_type"), Some(&Value::U32(s.file_type)));
    assert_eq!(f.get("general.quantization_version"), Some(&Value::U32(2)));
    assert_eq!(f.get("llama.block_count"), Some(&Value::U32(cfg.n_layers)));
    assert_eq!(
        f.get("llama.attention.head_count_kv"),
        Some(&Value::U32(cfg.n_kv_heads))
    );
    assert_eq!(
        f.get("llama.rope.dimension_count"),
        Some(&Value::U32(cfg.head_dim()))
    );
    assert_eq!(
        f.get("llama.rope.freq_base"),
        Some(&Value::F32(cfg.rope_theta))
    );
    assert_eq!(
        f.get("llama.attention.layer_norm_rms_epsilon"),
        Some(&Value::F32(cfg.norm_eps))
    );
    assert_eq!(f.tensors().len(), lpk.len());
    for t in lpk.tensors() {
        let g = f
            .tensor(&gguf::names::meta_to_gguf(t.name).unwrap())
            .unwrap();
        assert_eq!(g.shape(), t.shape, "{}", t.name);
        assert_eq!(g.ty, GgmlType::from_dtype(t.dtype), "{}", t.name);
        assert_eq!(f.tensor_data(g), t.bytes, "{}", t.name);
    }

    let back = dir.join(format!("{tag}.back.lpk"));
    let s = gguf::import_gguf(&gguf_path, &back, &ImportOptions::default()).unwrap();
    assert!(s.dequantized.is_empty());
    assert_eq!(s.kept, lpk.len());
    let b = Lpk::open(&back).unwrap();
    assert!(b.verify().is_empty());
    assert_eq!(b.config(), lpk.config());
    assert_eq!(b.tokenizer(), lpk.tokenizer());
    assert_eq!(b.provenance().source_format, "gguf");
    assert_eq!(b.provenance().sources[0].name, format!("{tag}.gguf"));
    assert_eq!(b.provenance().sources[0].bytes, bytes.len() as u64);
    assert_eq!(b.len(), lpk.len());
    for t in lpk.tensors() {
        let u = b.tensor(t.name).unwrap();
        assert_eq!((u.dtype, u.shape), (t.dtype, t.shape), "{}", t.name);
        assert_eq!(u.bytes, t.bytes, "{}", t.name);
    }
}

#[test]
fn gguf_export_import_is_lossless_for_every_dtype() {
    let dir = tempfile::tempdir().unwrap();
    for d in DType::all().filter(|d| d.info().storable) {
        let p = dir.path().join(format!("{d}.lpk"));
        common::write_lpk(&p, &common::metadata(false), common::uniform(d), 1);
        round_trip(dir.path(), &p, d.name());
    }
    let p = dir.path().join("mixed.lpk");
    common::write_lpk(&p, &common::metadata(false), common::mixed, 2);
    round_trip(dir.path(), &p, "mixed");
}

#[test]
fn gguf_tied_model_and_gpt2_tokenizer_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut meta = common::metadata(true);
    let t = &mut meta.tokenizer;
    t.kind = TokenizerKind::Gpt2Bpe;
    t.merges = vec!["a b".into(), "ab c".into()];
    t.pre = Some("llama-bpe".into());
    t.add_dummy_prefix = false;
    t.add_eos = true;
    t.remove_extra_whitespaces = true;
    t.pad_id = Some(0);
    t.chat_template = Some("{% for m in messages %}{{ m.content }}{% endfor %}".into());
    let p = dir.path().join("tied.lpk");
    common::write_lpk(&p, &meta, common::uniform(DType::Q8_0), 3);
    round_trip(dir.path(), &p, "tied");
    let bytes = std::fs::read(dir.path().join("tied.gguf")).unwrap();
    let f = GgufFile::parse(&bytes, "tied").unwrap();
    assert!(f.tensor("output.weight").is_none());
    assert_eq!(f.get("tokenizer.ggml.model"), Some(&Value::from("gpt2")));
    assert_eq!(
        f.get("tokenizer.ggml.merges"),
        Some(&Value::Array(Array::String(vec![
            "a b".into(),
            "ab c".into()
        ])))
    );
}

#[test]
fn gguf_export_is_deterministic_and_converts_norms_to_f32() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.lpk");
    let pick = |_: &str, s: &[u64]| {
        if s.len() == 1 {
            DType::BF16
        } else {
            DType::Q4K
        }
    };
    common::write_lpk(&p, &common::metadata(false), pick, 4);
    let lpk = Lpk::open(&p).unwrap();
    let opts = ExportOptions {
        name: Some("same".into()),
    };
    let a = dir.path().join("a.gguf");
    let b = dir.path().join("b.gguf");
    let s = gguf::export_gguf(&lpk, &a, &opts).unwrap();
    gguf::export_gguf(&lpk, &b, &opts).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(s.file_type, 14, "q4_k without q6_k is Q4_K_S");
    assert_eq!(s.converted_to_f32.len(), 2 * 2 + 1);
    let bytes = std::fs::read(&a).unwrap();
    let f = GgufFile::parse(&bytes, "a").unwrap();
    let g = f.tensor("output_norm.weight").unwrap();
    assert_eq!(g.ty, GgmlType::F32);
    let want: Vec<u8> = lpk
        .tensor("norm.weight")
        .unwrap()
        .as_slice::<bf16>()
        .unwrap()
        .iter()
        .flat_map(|x| x.to_f32().to_le_bytes())
        .collect();
    assert_eq!(f.tensor_data(g), &want[..]);
}

#[test]
fn gguf_file_type_follows_recipe_then_dominant_type() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (DType::F32, 0),
        (DType::F16, 1),
        (DType::Q4_0, 2),
        (DType::Q8_0, 7),
        (DType::Q6K, 18),
        (DType::BF16, 32),
    ];
    for (d, ft) in cases {
        let p = dir.path().join(format!("{d}.lpk"));
        common::write_lpk(&p, &common::metadata(false), common::uniform(d), 5);
        assert_eq!(gguf::file_type_of(&Lpk::open(&p).unwrap()), ft, "{d}");
    }
    let mut meta = common::metadata(false);
    meta.provenance.quantization = Some(serde_json::json!({"recipe": "q4_k_m"}));
    let p = dir.path().join("m.lpk");
    common::write_lpk(&p, &meta, common::uniform(DType::Q4K), 5);
    assert_eq!(gguf::file_type_of(&Lpk::open(&p).unwrap()), 15);
}

/// Writes a GGUF holding the model of `common::config()` with every 2-D tensor in `ty`.
pub fn write_gguf_model(path: &std::path::Path, ty: GgmlType, rng: &mut Rng) -> Vec<Vec<u8>> {
    let dir = path.parent().unwrap();
    let src = dir.join("src.lpk");
    common::write_lpk(
        &src,
        &common::metadata(false),
        common::uniform(DType::F32),
        6,
    );
    let lpk = Lpk::open(&src).unwrap();
    let tmp = dir.join("src.gguf");
    gguf::export_gguf(&lpk, &tmp, &ExportOptions::default()).unwrap();
    let bytes = std::fs::read(&tmp).unwrap();
    let f = GgufFile::parse(&bytes, "src").unwrap();
    let mut descs = Vec::new();
    let mut datas = Vec::new();
    for t in f.tensors() {
        let ty = if t.dims.len() == 1 { GgmlType::F32 } else { ty };
        let d = TensorDesc {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty,
        };
        let mut b = rng.bytes(ty.tensor_bytes(&d.dims).unwrap() as usize);
        if ty == GgmlType::F32 {
            b = f.tensor_data(t).to_vec();
        } else {
            // Finite f16 scales at the start of every block (d; and m / dmin where present).
            let bb = ty.block_bytes() as usize;
            for block in b.chunks_exact_mut(bb) {
                let n = if matches!(ty, GgmlType::Q5_0 | GgmlType::Q8_0) {
                    1
                } else {
                    2
                };
                for k in 0..n {
                    let s = f16::from_f32(0.001 + rng.f32().abs() * 0.01).to_le_bytes();
                    block[2 * k..2 * k + 2].copy_from_slice(&s);
                }
            }
        }
        descs.push(d);
        datas.push(b);
    }
    let meta: Vec<(String, Value)> = f.metadata().to_vec();
    let mut w = GgufWriter::create(path, &meta, descs.clone()).unwrap();
    for (d, b) in descs.iter().zip(&datas) {
        w.write_tensor(&d.name, b).unwrap();
    }
    w.finish().unwrap();
    datas
}

#[test]
fn gguf_import_keeps_every_table_type_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(10);
    for d in DType::storable().filter(|d| d.is_quantized()) {
        let ty = GgmlType::from_dtype(d);
        let path = dir.path().join(format!("{ty}.gguf"));
        let datas = write_gguf_model(&path, ty, &mut rng);
        let out = dir.path().join(format!("{ty}.lpk"));
        let s = gguf::import_gguf(&path, &out, &ImportOptions::default()).unwrap();
        assert!(s.dequantized.is_empty(), "{ty}: {:?}", s.dequantized);
        let lpk = Lpk::open(&out).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let f = GgufFile::parse(&bytes, "x").unwrap();
        let wq = f.tensor("blk.1.attn_q.weight").unwrap();
        let t = lpk.tensor("layers.1.attention.wq.weight").unwrap();
        assert_eq!(t.dtype, d);
        assert_eq!(t.bytes, f.tensor_data(wq), "{ty}");
        assert!(datas.iter().any(|b| b.as_slice() == t.bytes));
    }
}

#[test]
fn gguf_import_dequantizes_types_lpk_cannot_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(11);
    for ty in [GgmlType::Q8_1] {
        for to in [DType::F32, DType::F16, DType::BF16] {
            let path = dir.path().join(format!("{ty}.gguf"));
            write_gguf_model(&path, ty, &mut rng);
            let out = dir.path().join(format!("{ty}.{to}.lpk"));
            let opts = ImportOptions { dequant_to: to };
            let s = gguf::import_gguf(&path, &out, &opts).unwrap();
            assert_eq!(s.dequantized.len(), 1 + 2 * 7 + 1, "{ty}");
            let lpk = Lpk::open(&out).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let f = GgufFile::parse(&bytes, "x").unwrap();
            let wq = f.tensor("blk.1.attn_q.weight").unwrap();
            let mut want = vec![0f32; wq.numel() as usize];
            assert!(dequant::dequantize_row(ty, f.tensor_data(wq), &mut want));
            let t = lpk.tensor("layers.1.attention.wq.weight").unwrap();
            assert_eq!(t.dtype, to);
            let got: Vec<f32> = match to {
                DType::F32 => t.as_slice::<f32>().unwrap().to_vec(),
                DType::F16 => t
                    .as_slice::<f16>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_f32())
                    .collect(),
                _ => t
                    .as_slice::<bf16>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_f32())
                    .collect(),
            };
            for (g, w) in got.iter().zip(&want) {
                let w = match to {
                    DType::F32 => *w,
                    DType::F16 => f16::from_f32(*w).to_f32(),
                    _ => bf16::from_f32(*w).to_f32(),
                };
                assert_eq!(*g, w, "{ty} → {to}");
            }
            let notes = &lpk.provenance().notes;
            assert!(
                notes["dequantized"]["layers.1.attention.wq.weight"]
                    .as_str()
                    .unwrap()
                    .starts_with(ty.name())
            );
        }
    }
}

#[test]
fn gguf_import_rejects_unsupported_types_and_architectures() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(12);
    let path = dir.path().join("q2k.gguf");
    write_gguf_model(&path, GgmlType::IQ2XXS, &mut rng);
    let out = dir.path().join("q2k.lpk");
    let err = gguf::import_gguf(&path, &out, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor `token_embd.weight` has type iq2_xxs") && err.contains("q2k.gguf"),
        "{err}"
    );
    assert!(!out.exists());

    // Another architecture.
    let bytes = std::fs::read(&path).unwrap();
    let f = GgufFile::parse(&bytes, "q2k").unwrap();
    let mut meta = f.metadata().to_vec();
    meta[0].1 = Value::from("qwen2");
    let p2 = dir.path().join("qwen.gguf");
    GgufWriter::create(&p2, &meta, vec![])
        .unwrap()
        .finish()
        .unwrap();
    let err = gguf::import_gguf(&p2, &out, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("architecture `qwen2`"), "{err}");
}

#[test]
fn gguf_import_checks_shapes_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.lpk");
    common::write_lpk(&p, &common::metadata(false), common::uniform(DType::F16), 8);
    let g = dir.path().join("s.gguf");
    gguf::export_gguf(&Lpk::open(&p).unwrap(), &g, &ExportOptions::default()).unwrap();
    let bytes = std::fs::read(&g).unwrap();
    let f = GgufFile::parse(&bytes, "s").unwrap();
    let rewrite = |edit: &dyn Fn(&mut Vec<TensorDesc>)| -> String {
        let mut descs: Vec<TensorDesc> = f
            .tensors()
            .iter()
            .map(|t| TensorDesc {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ty: t.ty,
            })
            .collect();
        edit(&mut descs);
        let path = dir.path().join("edited.gguf");
        let mut w = GgufWriter::create(&path, f.metadata(), descs.clone()).unwrap();
        for d in &descs {
            w.write_tensor(
                &d.name,
                &vec![0; d.ty.tensor_bytes(&d.dims).unwrap() as usize],
            )
            .unwrap();
        }
        w.finish().unwrap();
        let out = dir.path().join("edited.lpk");
        gguf::import_gguf(&path, &out, &ImportOptions::default())
            .unwrap_err()
            .to_string()
    };
    let err = rewrite(&|d| d[1].dims = vec![256, 128]);
    assert!(
        err.contains("tensor `blk.0.attn_q.weight`: shape [256, 128]"),
        "{err}"
    );
    let err = rewrite(&|d| d[1].name = "rope_freqs.weight".into());
    assert!(err.contains("tensor `rope_freqs.weight`"), "{err}");
    let err = rewrite(&|d| {
        d.remove(2);
    });
    assert!(
        err.contains("tensor `blk.0.attn_k.weight`: missing"),
        "{err}"
    );
    let err = rewrite(&|d| {
        d.push(TensorDesc {
            name: "blk.7.ffn_norm.weight".into(),
            dims: vec![256],
            ty: GgmlType::F32,
        });
    });
    assert!(
        err.contains("blk.7.ffn_norm.weight") && err.contains("layers"),
        "{err}"
    );
}

#[test]
fn gguf_export_refuses_unknown_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.lpk");
    let mut w = LpkWriter::create(&p).unwrap();
    w.write_tensor("rope.freqs", DType::F32, &[4], &[0; 16])
        .unwrap();
    w.finish(&common::metadata(false)).unwrap();
    let out = dir.path().join("x.gguf");
    let err = gguf::export_gguf(&Lpk::open(&p).unwrap(), &out, &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rope.freqs") && err.contains("no llama.cpp name"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn gguf_writer_limits_match_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.gguf");
    let nest = |levels: usize| {
        let mut a = Array::U8(vec![1]);
        for _ in 1..levels {
            a = Array::Array(vec![a]);
        }
        vec![("deep".to_owned(), Value::Array(a))]
    };
    GgufWriter::create(&path, &nest(8), vec![])
        .unwrap()
        .finish()
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        GgufFile::parse(&bytes, "deep").unwrap().metadata(),
        &nest(8)[..]
    );
    let err = GgufWriter::create(&path, &nest(9), vec![])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("metadata key `deep`") && err.contains("nested deeper"),
        "{err}"
    );
    let long = vec![("k".repeat(65536), Value::U8(0))];
    assert!(GgufWriter::create(&path, &long, vec![]).is_err());
}

#[test]
fn gguf_export_pads_a_short_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let mut meta = common::metadata(false);
    let t = &mut meta.tokenizer;
    t.pieces.truncate(14);
    t.scores.truncate(14);
    t.types.truncate(14);
    let p = dir.path().join("short.lpk");
    common::write_lpk(&p, &meta, common::uniform(DType::F16), 9);
    let g = dir.path().join("short.gguf");
    let s = gguf::export_gguf(&Lpk::open(&p).unwrap(), &g, &ExportOptions::default()).unwrap();
    assert!(s.notes[0].contains("padded from 14 to 16"), "{:?}", s.notes);
    let bytes = std::fs::read(&g).unwrap();
    let f = GgufFile::parse(&bytes, "short").unwrap();
    let tokens = f.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap();
    assert_eq!(tokens.as_strings().unwrap()[15], "[PAD15]");
    let back = dir.path().join("back.lpk");
    gguf::import_gguf(&g, &back, &ImportOptions::default()).unwrap();
    let b = Lpk::open(&back).unwrap();
    assert_eq!(b.tokenizer().len(), 16);
    assert_eq!(b.tokenizer().types[15], 5);
    assert_eq!(b.tokenizer().pieces[..14], meta.tokenizer.pieces[..]);
}
