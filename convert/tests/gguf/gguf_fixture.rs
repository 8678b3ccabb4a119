//! Import of a GGUF written and quantized by another tool (gguf-py's `GGUFWriter` and numpy
//! quantizers; see `fixtures/make_tiny_ggufpy.py`), without Python.

use std::path::Path;

use half::{bf16, f16};
use llamapack_convert::gguf::{self, GgmlType, ImportOptions};
use llamapack_format::{DType, Lpk, TokenizerKind, testing};
use sha2::{Digest, Sha256};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gguf/fixtures/tiny-ggufpy.gguf")
}

/// (GGUF type in the fixture, largest error its encoding may add for |x| ≤ 0.5).
fn tolerance(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::F32 => 0.0,
        GgmlType::F16 => 2.5e-4,
        GgmlType::BF16 => 2e-3,
        GgmlType::Q8_0 => 0.5 / 127.0,
        GgmlType::Q5_0 | GgmlType::Q5_1 => 0.5 / 15.0 + 1e-3,
        _ => 0.5 / 7.0 + 1e-3,
    }
}

#[test]
fn gguf_fixture_from_gguf_py_imports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny.lpk");
    let s = gguf::import_gguf(&fixture(), &out, &ImportOptions::default()).unwrap();
    let want_cfg = testing::tiny_config();
    assert_eq!(s.config, want_cfg);
    assert_eq!(s.tensors, 2 * 9 + 3);
    // q4_1 (attn_v), q5_0 (attn_output), q5_1 (ffn_gate) are kept as they are.
    assert!(s.dequantized.is_empty(), "{:?}", s.dequantized);
    let bytes = std::fs::read(fixture()).unwrap();
    let sha = Sha256::digest(&bytes)
        .iter()
        .fold(String::new(), |s, b| s + &format!("{b:02x}"));
    assert_eq!(s.source.sha256, sha);

    let lpk = Lpk::open(&out).unwrap();
    assert!(lpk.verify().is_empty());
    let tok = lpk.tokenizer();
    let want_tok = testing::tiny_tokenizer();
    assert_eq!(tok.kind, TokenizerKind::SentencePiece);
    assert_eq!(tok.pieces, want_tok.pieces);
    assert_eq!(tok.scores, want_tok.scores);
    assert_eq!(tok.types, want_tok.types);
    assert_eq!(
        (tok.bos_id, tok.eos_id, tok.unk_id),
        (Some(1), Some(2), Some(0))
    );
    assert!(tok.add_bos && !tok.add_eos && tok.add_dummy_prefix);
    assert_eq!(lpk.provenance().notes["gguf_general_name"], "tiny-ggufpy");

    // The fixture's tensor order and types, as make_tiny_ggufpy.py writes them.
    let mut order: Vec<(String, GgmlType)> = vec![("tok_embeddings.weight".into(), GgmlType::F16)];
    for i in 0..2 {
        for (n, ty) in [
            ("attention.wq.weight", GgmlType::Q8_0),
            ("attention.wk.weight", GgmlType::Q4_0),
            ("attention.wv.weight", GgmlType::Q4_1),
            ("attention.wo.weight", GgmlType::Q5_0),
            ("feed_forward.w1.weight", GgmlType::Q5_1),
            ("feed_forward.w2.weight", GgmlType::BF16),
            ("feed_forward.w3.weight", GgmlType::F32),
            ("attention_norm.weight", GgmlType::F32),
            ("ffn_norm.weight", GgmlType::F32),
        ] {
            order.push((format!("layers.{i}.{n}"), ty));
        }
    }
    order.push(("norm.weight".into(), GgmlType::F32));
    order.push(("output.weight".into(), GgmlType::Q8_0));

    for (k, (name, ty)) in order.iter().enumerate() {
        let t = lpk.tensor(name).unwrap();
        let want_dtype = ty.to_dtype().unwrap_or(DType::F16);
        assert_eq!(t.dtype, want_dtype, "{name}");
        let mut got = vec![0f32; t.numel()];
        match t.dtype {
            DType::F16 if *ty != GgmlType::F16 => {
                for (g, x) in got.iter_mut().zip(t.as_slice::<f16>().unwrap()) {
                    *g = x.to_f32();
                }
            }
            DType::BF16 => {
                for (g, x) in got.iter_mut().zip(t.as_slice::<bf16>().unwrap()) {
                    *g = x.to_f32();
                }
            }
            d => {
                let g = GgmlType::from_dtype(d);
                assert!(gguf::dequant::dequantize_row(g, t.bytes, &mut got));
            }
        }
        // Dequantized to f16 on import: one more f16 rounding.
        let tol = tolerance(*ty) + if t.dtype == DType::F16 { 2.5e-4 } else { 0.0 };
        for (i, g) in got.iter().enumerate() {
            let x = (0.5 * (0.37 * i as f64 + 1.3 * k as f64).sin()) as f32;
            assert!((g - x).abs() <= tol, "{name}[{i}]: {g} vs {x} ({ty})");
        }
    }
}
