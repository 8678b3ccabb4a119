//! gguf-py as an independent reader of our export: runs when `python3 -c "import gguf"` works
//! (`pip install gguf numpy`), otherwise prints why it is skipped and passes.

use std::path::Path;
use std::process::Command;

use llamapack_convert::gguf::{self, Array, ExportOptions, GgufFile, Value, dequant};
use llamapack_format::Lpk;
use serde_json::{Value as Json, json};

use crate::gguf_common as common;

fn python() -> Option<String> {
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import gguf, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

fn array_json(a: &Array) -> Json {
    match a {
        Array::U8(v) => json!(v),
        Array::I8(v) => json!(v),
        Array::U16(v) => json!(v),
        Array::I16(v) => json!(v),
        Array::U32(v) => json!(v),
        Array::I32(v) => json!(v),
        Array::U64(v) => json!(v),
        Array::I64(v) => json!(v),
        Array::F32(v) => json!(v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()),
        Array::F64(v) => json!(v),
        Array::Bool(v) => json!(v),
        Array::String(v) => json!(v),
        Array::Array(_) => panic!("nested arrays are not exported"),
    }
}

/// Our value as gguf-py's `contents()` gives it, and its `types` list.
fn as_gguf_py(v: &Value) -> (Json, Vec<&'static str>) {
    let t = v.value_type().name();
    match v {
        Value::U8(x) => (json!(x), vec![t]),
        Value::I8(x) => (json!(x), vec![t]),
        Value::U16(x) => (json!(x), vec![t]),
        Value::I16(x) => (json!(x), vec![t]),
        Value::U32(x) => (json!(x), vec![t]),
        Value::I32(x) => (json!(x), vec![t]),
        Value::U64(x) => (json!(x), vec![t]),
        Value::I64(x) => (json!(x), vec![t]),
        Value::F32(x) => (json!(f64::from(*x)), vec![t]),
        Value::F64(x) => (json!(x), vec![t]),
        Value::Bool(x) => (json!(x), vec![t]),
        Value::String(x) => (json!(x), vec![t]),
        Value::Array(a) => (array_json(a), vec![t, a.elem_type().name()]),
    }
}

fn gguf_py_name(ty: gguf::GgmlType) -> String {
    ty.name().to_ascii_uppercase()
}

#[test]
fn gguf_py_reads_our_export() {
    let Some(py) = python() else {
        eprintln!(
            "skipped: python3 with the gguf and numpy packages is not available (pip install gguf numpy)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lpk_path = dir.path().join("mixed.lpk");
    let mut meta = common::metadata(false);
    meta.tokenizer.chat_template = Some("{{ bos_token }}{{ messages[0].content }}".into());
    common::write_lpk(&lpk_path, &meta, common::mixed, 21);
    let gguf_path = dir.path().join("mixed.gguf");
    gguf::export_gguf(
        &Lpk::open(&lpk_path).unwrap(),
        &gguf_path,
        &ExportOptions::default(),
    )
    .unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gguf/check_gguf.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(&gguf_path)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_gguf.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Json =
        serde_json::from_slice(&std::fs::read(dir.path().join("gguf_py.json")).unwrap()).unwrap();

    let bytes = std::fs::read(&gguf_path).unwrap();
    let f = GgufFile::parse(&bytes, "mixed.gguf").unwrap();
    assert_eq!(report["alignment"], json!(f.alignment()));

    let theirs = report["metadata"].as_array().unwrap();
    assert_eq!(theirs.len(), f.metadata().len());
    for ((k, v), t) in f.metadata().iter().zip(theirs) {
        let (value, types) = as_gguf_py(v);
        assert_eq!(t["key"], json!(k));
        assert_eq!(t["types"], json!(types), "{k}");
        assert_eq!(t["value"], value, "{k}");
    }
    for key in [
        "tokenizer.chat_template",
        "llama.rope.freq_base",
        "general.file_type",
    ] {
        assert!(theirs.iter().any(|t| t["key"] == key), "{key}");
    }

    let tensors = report["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), f.tensors().len());
    let mut types_seen = std::collections::BTreeSet::new();
    for (i, (ours, t)) in f.tensors().iter().zip(tensors).enumerate() {
        let name = &ours.name;
        assert_eq!(t["name"], json!(name));
        assert_eq!(t["type"], json!(gguf_py_name(ours.ty)), "{name}");
        assert_eq!(t["dims"], json!(ours.dims), "{name}");
        assert_eq!(t["n_bytes"], json!(ours.nbytes), "{name}");
        assert_eq!(
            t["data_offset"],
            json!(f.data_offset() + ours.offset),
            "{name}"
        );
        types_seen.insert(ours.ty.name());

        let raw = std::fs::read(dir.path().join(format!("{i}.f32"))).unwrap();
        let theirs: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mut mine = vec![0f32; ours.numel() as usize];
        assert!(dequant::dequantize_row(
            ours.ty,
            f.tensor_data(ours),
            &mut mine
        ));
        assert_eq!(theirs.len(), mine.len(), "{name}");
        // ggml's scalar decoders and gguf-py's numpy ones agree bit for bit.
        if let Some(k) = (0..mine.len()).find(|&k| mine[k].to_bits() != theirs[k].to_bits()) {
            panic!(
                "{name} ({}): element {k} is {} here, {} in gguf-py",
                ours.ty, mine[k], theirs[k]
            );
        }
    }
    assert_eq!(types_seen.len(), 7, "{types_seen:?}");
}
