//! A reader treats the file as hostile: every lie gives a typed error naming file and tensor.

use llamapack_format::{DType, Error, Lpk, LpkWriter, header, testing};
use serde_json::{Value, json};

/// A valid file with two tensors and a blob.
fn valid() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.lpk");
    let mut w = LpkWriter::create(&p).unwrap();
    w.write_tensor("a", DType::F32, &[2, 4], &[1u8; 32])
        .unwrap();
    w.write_tensor("b", DType::Q8_0, &[1, 32], &[2u8; 34])
        .unwrap();
    w.write_blob("tokenizer.model", b"spm").unwrap();
    w.finish(&testing::tiny_metadata()).unwrap();
    std::fs::read(p).unwrap()
}

fn preamble(bytes: &[u8]) -> header::Preamble {
    header::Preamble::from_bytes(bytes[..64].try_into().unwrap()).2
}

/// Rewrites the JSON header with `edit` and fixes the preamble so only the lie remains.
fn with_header(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    testing::rewrite_header(&valid(), edit)
}

fn parse(bytes: Vec<u8>) -> Error {
    Lpk::parse(bytes, "evil.lpk").expect_err("hostile input was accepted")
}

fn assert_msg(e: &Error, parts: &[&str]) {
    let s = e.to_string();
    assert!(
        s.starts_with("evil.lpk"),
        "error does not name the file: {s}"
    );
    for p in parts {
        assert!(s.contains(p), "`{s}` does not mention `{p}`");
    }
}

#[test]
fn valid_file_parses() {
    let lpk = Lpk::parse(valid(), "ok.lpk").unwrap();
    assert_eq!(lpk.len(), 2);
    assert_eq!(lpk.blob("tokenizer.model").unwrap(), b"spm");
}

#[test]
fn truncated_anywhere() {
    let bytes = valid();
    for cut in [0, 10, 63, 64, 100, bytes.len() - 1] {
        let e = parse(bytes[..cut].to_vec());
        assert!(matches!(e, Error::Truncated { .. }), "cut at {cut}: {e}");
        assert_msg(&e, &["truncated"]);
    }
}

#[test]
fn wrong_magic() {
    let mut b = valid();
    b[0] = b'X';
    let e = parse(b);
    assert!(matches!(e, Error::BadMagic { .. }), "{e}");
    assert_msg(&e, &["not a .lpk file"]);
}

#[test]
fn newer_major_version() {
    let mut b = valid();
    b[8..10].copy_from_slice(&2u16.to_le_bytes());
    let e = parse(b);
    assert!(
        matches!(e, Error::UnsupportedVersion { major: 2, .. }),
        "{e}"
    );
    assert_msg(&e, &["2.0", "newer"]);
}

#[test]
fn newer_minor_version_with_unknown_fields_is_read() {
    let mut b = with_header(|v| {
        v["future_field"] = json!({"x": 1});
        v["tensors"][0]["future"] = json!(true);
    });
    b[10..12].copy_from_slice(&7u16.to_le_bytes());
    let lpk = Lpk::parse(b, "newer.lpk").unwrap();
    assert_eq!(lpk.version(), (1, 7));
}

#[test]
fn header_pointing_past_the_end() {
    let mut b = valid();
    let pre = header::Preamble {
        header_offset: u64::MAX - 3,
        ..preamble(&b)
    };
    b[..64].copy_from_slice(&pre.to_bytes());
    assert_msg(&parse(b), &["outside the file"]);
}

#[test]
fn huge_header_length() {
    let mut b = valid();
    let pre = header::Preamble {
        header_len: 1 << 40,
        ..preamble(&b)
    };
    b[..64].copy_from_slice(&pre.to_bytes());
    assert_msg(&parse(b), &["limit"]);
}

#[test]
fn header_checksum() {
    let mut b = valid();
    let n = b.len();
    b[n - 2] ^= 0x20;
    assert_msg(&parse(b), &["header checksum"]);
}

#[test]
fn corrupt_json() {
    let e = parse(with_header(|v| *v = json!([1, 2])));
    assert!(matches!(e, Error::HeaderJson { .. }), "{e}");
}

#[test]
fn tensor_offset_past_the_end() {
    let e = parse(with_header(|v| {
        v["tensors"][1]["offset"] = json!(1u64 << 50);
    }));
    assert_msg(&e, &["`b`", "outside the data region"]);
}

#[test]
fn offset_plus_length_overflows() {
    // The largest aligned offset: the end does not wrap but lies far outside the file.
    let e = parse(with_header(|v| {
        v["tensors"][1]["offset"] = json!(u64::MAX - 63);
    }));
    assert_msg(&e, &["`b`", "outside the data region"]);
}

#[test]
fn overlapping_tensors() {
    let e = parse(with_header(|v| {
        let a = v["tensors"][0]["offset"].clone();
        v["tensors"][1]["offset"] = a;
    }));
    assert_msg(&e, &["overlaps"]);
}

#[test]
fn shape_times_dtype_is_not_the_length() {
    let e = parse(with_header(|v| v["tensors"][0]["shape"] = json!([2, 5])));
    assert_msg(&e, &["`a`", "needs 40"]);
}

#[test]
fn absurd_dimensions_overflow() {
    let e = parse(with_header(|v| {
        v["tensors"][0]["shape"] = json!([u64::MAX, u64::MAX, 4]);
    }));
    assert_msg(&e, &["`a`", "overflows"]);
    let e = parse(with_header(|v| {
        v["tensors"][0]["shape"] = json!([1, 1, 1, 1, 1, 8]);
    }));
    assert_msg(&e, &["`a`", "dimensions"]);
    let e = parse(with_header(|v| v["tensors"][0]["shape"] = json!([0, 8])));
    assert_msg(&e, &["`a`", "zero dimension"]);
}

#[test]
fn row_not_whole_blocks() {
    let e = parse(with_header(|v| v["tensors"][1]["shape"] = json!([2, 17])));
    assert_msg(&e, &["`b`", "multiple of 32"]);
}

#[test]
fn misaligned_tensor() {
    let e = parse(with_header(|v| {
        let o = v["tensors"][0]["offset"].as_u64().unwrap();
        v["tensors"][0]["offset"] = json!(o + 4);
    }));
    assert_msg(&e, &["`a`", "multiple of 64"]);
}

#[test]
fn unknown_dtype() {
    let e = parse(with_header(|v| v["tensors"][0]["dtype"] = json!("q3_xs")));
    assert_msg(&e, &["`a`", "unknown dtype `q3_xs`"]);
    // q8_k is an activation format, never stored.
    let e = parse(with_header(|v| v["tensors"][0]["dtype"] = json!("q8_k")));
    assert_msg(&e, &["`a`", "unknown dtype"]);
}

#[test]
fn duplicate_names() {
    let e = parse(with_header(|v| v["tensors"][1]["name"] = json!("a")));
    assert_msg(&e, &["`a`", "twice"]);
}

#[test]
fn lying_config_and_tokenizer() {
    let e = parse(with_header(|v| v["config"]["n_heads"] = json!(0)));
    assert_msg(&e, &["config", "n_heads"]);
    let e = parse(with_header(|v| v["config"]["n_kv_heads"] = json!(3)));
    assert_msg(&e, &["config", "n_kv_heads"]);
    let e = parse(with_header(|v| v["tokenizer"]["bos_id"] = json!(99_999)));
    assert_msg(&e, &["tokenizer", "bos_id"]);
    let e = parse(with_header(|v| v["tokenizer"]["scores"] = json!([1.0])));
    assert_msg(&e, &["tokenizer", "scores"]);
}

#[test]
fn trailing_garbage() {
    let mut b = valid();
    b.extend_from_slice(b"junk");
    assert_msg(&parse(b), &["trailing"]);
}

#[test]
fn corrupt_tensor_data_is_found_by_verify() {
    let mut b = valid();
    let pre = preamble(&b);
    let v: Value = serde_json::from_slice(&b[pre.header_offset as usize..]).unwrap();
    let off = v["tensors"][1]["offset"].as_u64().unwrap() as usize;
    b[off + 5] ^= 1;
    let lpk = Lpk::parse(b, "flip.lpk").unwrap();
    assert_eq!(lpk.verify(), vec!["b".to_string()]);
}
