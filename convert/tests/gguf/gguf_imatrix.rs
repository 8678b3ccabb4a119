//! Importance-matrix files against llama-imatrix's own (`fixtures/imatrix`, made by
//! `make_imatrix.sh`): GGUF and legacy `.dat` reading, write → read round trips byte for byte,
//! merging as llama-imatrix merges, every hostile input refused with one error naming the file
//! and the tensor, and gguf-py reading our file.

use std::path::{Path, PathBuf};
use std::process::Command;

use llamapack_convert::gguf::imatrix::{
    read_imatrix, read_imatrix_file, read_imatrix_legacy, write_imatrix,
};
use llamapack_convert::gguf::{Array, GgmlType, GgufWriter, TensorDesc, Value};
use llamapack_quantize::imatrix::Imatrix;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/imatrix")
        .join(name)
}

fn llama_gguf() -> Imatrix {
    read_imatrix_file(&fixture("tiny.imatrix.gguf"), 128).unwrap()
}

const Q0: &str = "layers.0.attention.wq.weight";

#[test]
fn reads_llama_imatrix_gguf() {
    let im = llama_gguf();
    assert_eq!(im.len(), 4 * 7 + 1, "7 matrices per layer and output");
    assert_eq!((im.chunk_count, im.chunk_size), (8, 128));
    assert_eq!(im.datasets, ["corpus.txt"]);
    for (name, e) in im.entries() {
        assert_eq!(e.counts(), &[1024], "{name}: 8 chunks of 128 tokens");
        let cols = if name.ends_with("w2.weight") {
            512
        } else {
            256
        };
        assert_eq!((e.cols(), e.n_mat()), (cols, 1), "{name}");
    }
    // wq/wk/wv share their input, so llama.cpp's three sums are the same.
    let q = im.get(Q0).unwrap();
    assert_eq!(q, im.get("layers.0.attention.wk.weight").unwrap());
    assert_eq!(q, im.get("layers.0.attention.wv.weight").unwrap());
    assert!(im.get("output.weight").is_some());
    assert!(im.get("tok_embeddings.weight").is_none());
}

#[test]
fn write_then_read_gives_llama_imatrix_bytes_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rt.gguf");
    let im = llama_gguf();
    write_imatrix(&out, &im).unwrap();
    let ours = std::fs::read(&out).unwrap();
    let theirs = std::fs::read(fixture("tiny.imatrix.gguf")).unwrap();
    assert!(ours == theirs, "our writer changed llama-imatrix's file");
    assert_eq!(read_imatrix(&ours, "rt.gguf", 1).unwrap(), im);
    // No temp file left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn reads_the_legacy_dat_of_the_same_run() {
    let dat = read_imatrix_file(&fixture("tiny.imatrix.dat"), 128).unwrap();
    let gguf = llama_gguf();
    assert_eq!(dat.len(), gguf.len());
    assert_eq!(dat.chunk_count, 8);
    assert_eq!(dat.datasets, ["corpus.txt"]);
    for (name, e) in gguf.entries() {
        let d = dat.get(name).unwrap();
        // ncall = ceil(1024 / 128) = 8 chunks; read back as 8 · chunk size tokens.
        assert_eq!(d.counts(), &[1024], "{name}");
        // The .dat stores (Σx²/count)·ncall in f32; the means agree to f32 rounding.
        for (j, (a, b)) in d.mean().iter().zip(e.mean()).enumerate() {
            assert!((a - b).abs() <= 2e-7 * b.abs(), "{name}[{j}]: {a} vs {b}");
        }
    }
    // The chunk size only scales sums and counts: the means are llama-quantize's either way.
    let other = read_imatrix_file(&fixture("tiny.imatrix.dat"), 512).unwrap();
    assert_eq!(other.get(Q0).unwrap().counts(), &[4096]);
    assert_eq!(other.get(Q0).unwrap().mean(), dat.get(Q0).unwrap().mean());
}

#[test]
fn merging_matches_llama_imatrix_byte_for_byte() {
    // llama-imatrix --in-file tiny.imatrix.gguf,tiny.imatrix.dat -c 128 → tiny.merged.gguf
    let mut im = Imatrix::new(128);
    for f in ["tiny.imatrix.gguf", "tiny.imatrix.dat"] {
        im.merge(read_imatrix_file(&fixture(f), 128).unwrap(), f)
            .unwrap();
    }
    assert_eq!(im.chunk_count, 16);
    assert_eq!(im.get(Q0).unwrap().counts(), &[2048]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged.gguf");
    write_imatrix(&out, &im).unwrap();
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(fixture("tiny.merged.gguf")).unwrap(),
        "our merge differs from llama-imatrix's"
    );
}

/// One GGUF tensor to write: name, dims, type, f32 values (as bytes of `ty`).
struct T(&'static str, Vec<u64>, GgmlType, Vec<f32>);

fn imatrix_meta(general_type: &str) -> Vec<(String, Value)> {
    vec![
        ("general.type".into(), Value::String(general_type.into())),
        (
            "imatrix.datasets".into(),
            Value::Array(Array::String(vec!["x.txt".into()])),
        ),
        ("imatrix.chunk_count".into(), Value::U32(1)),
        ("imatrix.chunk_size".into(), Value::U32(4)),
    ]
}

fn write(dir: &Path, meta: &[(String, Value)], tensors: &[T]) -> Vec<u8> {
    let path = dir.join("h.gguf");
    let descs = tensors
        .iter()
        .map(|t| TensorDesc {
            name: t.0.into(),
            dims: t.1.clone(),
            ty: t.2,
        })
        .collect();
    let mut w = GgufWriter::create(&path, meta, descs).unwrap();
    for t in tensors {
        let bytes: Vec<u8> = match t.2 {
            GgmlType::F16 => {
                t.3.iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect()
            }
            _ => t.3.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        w.write_tensor(t.0, &bytes).unwrap();
    }
    w.finish().unwrap();
    std::fs::read(&path).unwrap()
}

fn sums(v: Vec<f32>) -> T {
    T(
        "blk.0.attn_q.weight.in_sum2",
        vec![v.len() as u64],
        GgmlType::F32,
        v,
    )
}

fn counts(v: f32) -> T {
    T(
        "blk.0.attn_q.weight.counts",
        vec![1],
        GgmlType::F32,
        vec![v],
    )
}

#[track_caller]
fn refused(bytes: &[u8], want: &[&str]) {
    let err = read_imatrix(bytes, "h.gguf", 4).unwrap_err().to_string();
    assert!(err.starts_with("h.gguf: "), "{err}");
    for w in want {
        assert!(err.contains(w), "`{w}` not in: {err}");
    }
}

#[test]
fn hostile_gguf_imatrix_files_are_refused_naming_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = [sums(vec![1.0, 2.0]), counts(4.0)];
    let m = imatrix_meta("imatrix");
    let ok = write(d, &m, &good);
    assert_eq!(read_imatrix(&ok, "h.gguf", 4).unwrap().len(), 1);

    refused(
        &write(d, &imatrix_meta("model"), &good),
        &["general.type", "\"model\""],
    );
    let without = |key: &str| -> Vec<(String, Value)> {
        m.iter().filter(|(k, _)| k != key).cloned().collect()
    };
    for key in [
        "general.type",
        "imatrix.chunk_count",
        "imatrix.chunk_size",
        "imatrix.datasets",
    ] {
        refused(&write(d, &without(key), &good), &[key, "missing"]);
    }
    let mut wrong = without("imatrix.chunk_size");
    wrong.push(("imatrix.chunk_size".into(), Value::F32(4.0)));
    refused(
        &write(d, &wrong, &good),
        &["imatrix.chunk_size", "unsigned"],
    );

    let q = "blk.0.attn_q.weight";
    refused(
        &write(d, &m, &[sums(vec![1.0])]),
        &[&format!("{q}.counts"), "missing"],
    );
    refused(
        &write(d, &m, &[counts(1.0)]),
        &[&format!("{q}.in_sum2"), "missing"],
    );
    refused(
        &write(d, &m, &[sums(vec![1.0, f32::NAN]), counts(4.0)]),
        &[".in_sum2", "value 1 is NaN"],
    );
    refused(
        &write(d, &m, &[sums(vec![-1.0]), counts(4.0)]),
        &[".in_sum2", "value 0 is -1"],
    );
    refused(
        &write(d, &m, &[sums(vec![1.0]), counts(-2.0)]),
        &[".counts", "count 0 is -2"],
    );
    refused(
        &write(d, &m, &[sums(vec![1.0]), counts(f32::INFINITY)]),
        &[".counts", "inf"],
    );
    let f16_sums = T(
        "blk.0.attn_q.weight.in_sum2",
        vec![2],
        GgmlType::F16,
        vec![1.0, 2.0],
    );
    refused(
        &write(d, &m, &[f16_sums, counts(1.0)]),
        &[".in_sum2", "type f16, expected f32"],
    );
    // Two matrices of counts, sums for one.
    let two = T(
        "blk.0.attn_q.weight.counts",
        vec![1, 2],
        GgmlType::F32,
        vec![1.0, 1.0],
    );
    refused(
        &write(d, &m, &[sums(vec![1.0, 2.0, 3.0]), two]),
        &[".in_sum2", "do not hold 2 rows"],
    );
    let wide = T(
        "blk.0.attn_q.weight.counts",
        vec![2],
        GgmlType::F32,
        vec![1.0, 1.0],
    );
    refused(
        &write(d, &m, &[sums(vec![1.0]), wide]),
        &[".counts", "expected [1, n_mat]"],
    );
    // Names: not llama's, not an imatrix tensor.
    let moe = [
        T(
            "blk.0.ffn_gate_exps.weight.in_sum2",
            vec![1],
            GgmlType::F32,
            vec![1.0],
        ),
        T(
            "blk.0.ffn_gate_exps.weight.counts",
            vec![1],
            GgmlType::F32,
            vec![1.0],
        ),
    ];
    refused(
        &write(d, &m, &moe),
        &["blk.0.ffn_gate_exps.weight.in_sum2", "not a weight"],
    );
    let stray = T("blk.0.attn_q.weight", vec![1], GgmlType::F32, vec![1.0]);
    refused(
        &write(d, &m, &[stray]),
        &["tensor `blk.0.attn_q.weight`", "not an imatrix tensor"],
    );
    refused(&write(d, &m, &[]), &["no importance data"]);
    // llama.cpp's newer Σx tensors are skipped.
    let with_first_moment = [
        sums(vec![1.0]),
        counts(1.0),
        T(
            "blk.0.attn_q.weight.in_sum",
            vec![1],
            GgmlType::F32,
            vec![-1.0],
        ),
    ];
    assert_eq!(
        read_imatrix(&write(d, &m, &with_first_moment), "h", 4)
            .unwrap()
            .len(),
        1
    );

    // A model file is not an importance matrix.
    let model = std::fs::read(fixture("../gguf/tiny-f16.gguf")).unwrap();
    let err = read_imatrix(&model, "tiny-f16.gguf", 4)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tiny-f16.gguf") && err.contains("general.type"),
        "{err}"
    );
}

#[test]
fn every_truncation_of_a_real_file_is_an_error_or_the_same_matrix() {
    for (name, chunk) in [("tiny.imatrix.gguf", 128), ("tiny.imatrix.dat", 128)] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let full = read_imatrix(&bytes, name, chunk).unwrap();
        for n in (0..bytes.len())
            .step_by(7)
            .chain(bytes.len() - 8..bytes.len())
        {
            match read_imatrix(&bytes[..n], name, chunk) {
                Err(e) => assert!(e.to_string().starts_with(name), "{e}"),
                // Only the optional legacy trailer or GGUF padding can go unnoticed.
                Ok(im) => assert_eq!(im.len(), full.len(), "{name} cut at {n}"),
            }
        }
    }
}

/// Legacy `.dat` bytes: entries of (name, ncall, values), then an optional trailer.
fn dat(entries: &[(&str, i32, &[f32])], trailer: Option<(i32, &str)>) -> Vec<u8> {
    let mut b = (entries.len() as i32).to_le_bytes().to_vec();
    for (name, ncall, vals) in entries {
        b.extend((name.len() as i32).to_le_bytes());
        b.extend(name.as_bytes());
        b.extend(ncall.to_le_bytes());
        b.extend((vals.len() as i32).to_le_bytes());
        b.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
    }
    if let Some((chunks, ds)) = trailer {
        b.extend(chunks.to_le_bytes());
        b.extend((ds.len() as i32).to_le_bytes());
        b.extend(ds.as_bytes());
    }
    b
}

#[test]
fn legacy_values_are_normalised_as_llama_quantize_does() {
    let q = "blk.0.attn_q.weight";
    let b = dat(
        &[(q, 4, &[8.0, 2.0]), ("output.weight", 0, &[3.0])],
        Some((4, "wiki.txt")),
    );
    let im = read_imatrix_legacy(&b, "x.dat", 16).unwrap();
    assert_eq!(
        (im.chunk_count, im.datasets.as_slice()),
        (4, &["wiki.txt".to_owned()][..])
    );
    let e = im.get(Q0).unwrap();
    assert_eq!((e.sums(), e.counts()), (&[128.0, 32.0][..], &[64][..]));
    assert_eq!(e.mean(), [2.0, 0.5], "value / ncall");
    // ncall 0: llama-quantize takes the values as they are.
    assert_eq!(im.weights("output.weight").unwrap(), [3.0]);
    // No trailer: the chunk count is the largest ncall.
    let im = read_imatrix_legacy(&dat(&[(q, 4, &[1.0])], None), "x.dat", 16).unwrap();
    assert_eq!((im.chunk_count, im.datasets.len()), (4, 0));
}

#[test]
fn hostile_legacy_files_are_refused_naming_file_and_tensor() {
    let q = "blk.0.attn_q.weight";
    let check = |b: &[u8], want: &[&str]| {
        let err = read_imatrix_legacy(b, "x.dat", 16).unwrap_err().to_string();
        assert!(err.starts_with("x.dat: "), "{err}");
        for w in want {
            assert!(err.contains(w), "`{w}` not in: {err}");
        }
    };
    check(&0i32.to_le_bytes(), &["entry count", "is 0"]);
    check(&[1, 2], &["truncated", "entry count"]);
    // A lying entry count is refused before anything is allocated.
    check(&i32::MAX.to_le_bytes(), &["2147483647 entries cannot fit"]);
    let mut b = dat(&[(q, 1, &[1.0])], None);
    b[4..8].copy_from_slice(&(-5i32).to_le_bytes());
    check(&b, &["the name of entry 0", "is -5"]);
    let mut b = dat(&[(q, 1, &[1.0])], None);
    b[4..8].copy_from_slice(&1000i32.to_le_bytes());
    check(&b, &["truncated", "the name of entry 0"]);
    let mut b = dat(&[(q, 1, &[1.0])], None);
    let nval_at = 4 + 4 + q.len() + 4;
    b[nval_at..nval_at + 4].copy_from_slice(&i32::MAX.to_le_bytes());
    check(
        &b,
        &[
            "truncated",
            &format!("the values of `{q}`"),
            "8589934588 bytes",
        ],
    );
    b[nval_at..nval_at + 4].copy_from_slice(&0i32.to_le_bytes());
    check(&b, &[&format!("nval of `{q}`"), "is 0"]);
    check(
        &dat(&[(q, -1, &[1.0])], None),
        &[&format!("tensor `{q}`"), "ncall is -1"],
    );
    check(
        &dat(&[(q, 1, &[1.0, f32::NAN])], None),
        &[&format!("tensor `{q}`"), "value 1 is NaN"],
    );
    check(&dat(&[(q, 1, &[-3.0])], None), &["value 0 is -3"]);
    check(&dat(&[(q, 1, &[f32::MAX])], None), &["value 0 is"]);
    check(
        &dat(&[("blk.0.ffn_up_exps.weight", 1, &[1.0])], None),
        &["tensor `blk.0.ffn_up_exps.weight`", "not a weight"],
    );
    check(
        &dat(&[(q, 1, &[1.0]), (q, 1, &[1.0])], None),
        &["appears twice"],
    );
    let mut b = dat(&[(q, 1, &[1.0])], Some((1, "t.txt")));
    b.push(0);
    check(&b, &["1 unexpected bytes"]);
    let mut b = dat(&[(q, 1, &[1.0])], Some((1, "t.txt")));
    b.truncate(b.len() - 2);
    check(&b, &["truncated", "the dataset name"]);
    let mut b = dat(&[(q, 1, &[1.0])], None);
    b.extend([1, 0]);
    check(&b, &["truncated", "the chunk count"]);
    let err = read_imatrix_legacy(&dat(&[(q, 1, &[1.0])], None), "x.dat", 0).unwrap_err();
    assert!(err.to_string().contains("chunk size"), "{err}");
}

#[test]
fn writer_refuses_what_llama_cpp_cannot_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut im = Imatrix::new(4);
    let out = dir.path().join("x.gguf");
    assert!(
        write_imatrix(&out, &im)
            .unwrap_err()
            .to_string()
            .contains("no entries")
    );
    im.insert("t", "rope.freqs", vec![1.0], vec![1]).unwrap();
    let err = write_imatrix(&out, &im).unwrap_err().to_string();
    assert!(
        err.contains("rope.freqs") && err.contains("no llama.cpp name"),
        "{err}"
    );
    assert!(!out.exists());
}

/// A Python that imports gguf-py and numpy: `$PYTHON` (else `python3`, then the project venv),
/// as is or with the peer llama.cpp's `gguf-py` (`$GGUF_PY`) on `PYTHONPATH`.
fn gguf_python() -> Option<(String, Option<String>)> {
    let pythons = match std::env::var("PYTHON") {
        Ok(p) => vec![p],
        Err(_) => vec!["python3".into(), "/work/venv/bin/python".into()],
    };
    let peer = std::env::var("GGUF_PY").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/llamapack-peer/src/llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py")
    });
    let paths = [None, Path::new(&peer).is_dir().then_some(peer)];
    for py in &pythons {
        for path in &paths {
            let mut c = Command::new(py);
            c.args(["-c", "import gguf, numpy"]);
            if let Some(p) = path {
                c.env("PYTHONPATH", p);
            }
            if c.output().is_ok_and(|o| o.status.success()) {
                return Some((py.clone(), path.clone()));
            }
        }
    }
    None
}

#[test]
fn gguf_py_reads_our_imatrix() {
    let Some((py, path)) = gguf_python() else {
        eprintln!(
            "skipped: no python3 with gguf-py and numpy (pip install gguf numpy, or set GGUF_PY)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ours.gguf");
    let mut im = llama_gguf();
    im.merge(
        read_imatrix_file(&fixture("tiny.imatrix.dat"), 128).unwrap(),
        "dat",
    )
    .unwrap();
    write_imatrix(&out, &im).unwrap();
    let script = r#"
import json, sys, gguf, numpy as np
r = gguf.GGUFReader(sys.argv[1])
f = r.fields
print(json.dumps({
    "type": f["general.type"].contents(),
    "datasets": f["imatrix.datasets"].contents(),
    "chunk_count": f["imatrix.chunk_count"].contents(),
    "chunk_size": f["imatrix.chunk_size"].contents(),
    "chunk_count_type": f["imatrix.chunk_count"].types[0].name,
    "tensors": [[t.name, [int(x) for x in t.shape], t.tensor_type.name, float(np.asarray(t.data, dtype=np.float64).sum())] for t in r.tensors],
}))
"#;
    let mut c = Command::new(&py);
    c.arg("-c").arg(script).arg(&out);
    if let Some(p) = &path {
        c.env("PYTHONPATH", p);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["type"], "imatrix");
    assert_eq!(
        v["datasets"],
        serde_json::json!(["corpus.txt", "corpus.txt"])
    );
    assert_eq!(
        (v["chunk_count"].as_u64(), v["chunk_size"].as_u64()),
        (Some(16), Some(128))
    );
    assert_eq!(v["chunk_count_type"], "UINT32");
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 2 * im.len());
    let mut names: Vec<&str> = Vec::new();
    for t in tensors {
        let name = t[0].as_str().unwrap();
        names.push(name);
        assert_eq!(t[2], "F32", "{name}");
        let base = name.rsplit_once('.').unwrap().0;
        let meta = llamapack_convert::gguf::names::gguf_to_meta(base).unwrap();
        let e = im.get(&meta).unwrap();
        if name.ends_with(".counts") {
            assert_eq!(t[1], serde_json::json!([1]), "{name}");
            assert_eq!(t[3].as_f64(), Some(2048.0), "{name}");
        } else {
            assert_eq!(t[1], serde_json::json!([e.cols()]), "{name}");
            let sum: f64 = e.sums().iter().map(|&x| f64::from(x)).sum();
            assert!((t[3].as_f64().unwrap() - sum).abs() <= 1e-9 * sum, "{name}");
        }
    }
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.rsplit_once('.').unwrap().0);
    assert_eq!(names, sorted, "tensors sorted by weight name");
}
