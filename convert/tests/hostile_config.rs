//! Hostile numbers in `params.json`, `config.json` and GGUF metadata: each is an error naming
//! the field (or the tensor that contradicts it), found before anything is allocated from it.
//! `n_layers: 16777216` used to make `inspect` and `convert` build a plan of 150 million names
//! (~7.4 GB) and abort.

use std::path::Path;

use crate::alloc::peak;
use crate::common;

use llamapack_convert::{ConvertOptions, convert, inspect_source};
use serde_json::Value;

/// Allocation allowed for refusing a hostile config (the fixtures are a few hundred KB).
const SMALL: usize = 16 << 20;

/// Rewrites the JSON file at `path` with `edit`.
fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

/// `what` failed naming every one of `parts` (`msg` is its error, or what it accepted) after
/// allocating `bytes`, which is little.
fn check(what: &str, msg: &str, bytes: usize, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{what}: `{p}` not in: {msg}");
    }
    assert!(
        bytes < SMALL,
        "{what} allocated {bytes} bytes to refuse it: {msg}"
    );
}

/// `inspect_source` and `convert` of `dir` both fail naming every one of `parts`, allocating
/// little, and write nothing.
fn refused_cheaply(dir: &Path, parts: &[&str]) {
    let (r, bytes) = peak(|| inspect_source(dir));
    let msg = r.map_or_else(|e| e.to_string(), |l| format!("accepted: {:?}", l.config));
    check("inspect", &msg, bytes, parts);
    let out = dir.parent().unwrap().join("out.lpk");
    let (r, bytes) = peak(|| convert(dir, &out, &ConvertOptions::default(), &common::quiet));
    let msg = r.map_or_else(|e| e.to_string(), |s| format!("accepted: {:?}", s.config));
    check("convert", &msg, bytes, parts);
    assert!(!out.exists());
}

#[test]
fn huge_or_wrong_layer_counts_in_params_json_name_the_field() {
    // (Fewer layers than the tensors: an unexpected tensor, by name; see the config.json test.)
    for n in [16_777_216u32, 2, 0] {
        let (_t, dir) = common::meta_case("meta_ok");
        edit_json(&dir.join("params.json"), |v| v["n_layers"] = n.into());
        let want = if n == 0 {
            "n_layers = 0 is out of range".to_owned()
        } else {
            format!(
                "`n_layers` = {n}, but the checkpoint holds tensors for only 1 (layers.0 to layers.0)"
            )
        };
        refused_cheaply(&dir, &["params.json", &want]);
    }
}

#[test]
fn huge_widths_in_params_json_are_refused_cheaply() {
    for (field, value, says) in [
        ("dim", 4_194_304u64, "tok_embeddings.weight"),
        ("vocab_size", 16_777_216, "tok_embeddings.weight"),
        ("n_heads", 4, "attention.wk.weight"),
        ("n_kv_heads", 2, "attention.wk.weight"),
        (
            "multiple_of",
            4_294_967_295,
            "ffn_dim = 4294967295 is out of range",
        ),
        ("n_layers", 4_294_967_295, "out of range"),
    ] {
        let (_t, dir) = common::meta_case("meta_ok");
        edit_json(&dir.join("params.json"), |v| v[field] = value.into());
        refused_cheaply(&dir, &[says]);
    }
}

#[test]
fn a_huge_layer_count_in_config_json_names_the_field() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("hf");
    common::copy_dir(&common::fixtures().join("tiny/hf"), &dir);
    edit_json(&dir.join("config.json"), |v| {
        v["num_hidden_layers"] = 16_777_216.into();
    });
    refused_cheaply(
        &dir,
        &["`num_hidden_layers` = 16777216, but the checkpoint holds tensors for only 4"],
    );
    edit_json(&dir.join("config.json"), |v| {
        v["num_hidden_layers"] = 2.into();
    });
    refused_cheaply(
        &dir,
        &["unexpected tensor `model.layers.2.", "(as layers.2."],
    );
    edit_json(&dir.join("config.json"), |v| {
        v["num_hidden_layers"] = 4.into();
        v["vocab_size"] = 16_777_216.into();
    });
    refused_cheaply(&dir, &["embed_tokens", "16777216"]);
}

#[test]
fn a_huge_block_count_in_a_gguf_names_the_key() {
    let bytes = std::fs::read(common::fixtures().join("gguf/tiny-f16.gguf")).unwrap();
    // The key, its type (u32 = 4) and the value follow one another.
    let key = b"llama.block_count";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    assert_eq!(&bytes[at..at + 4], &4u32.to_le_bytes());
    let mut m = bytes.clone();
    m[at + 4..at + 8].copy_from_slice(&16_777_216u32.to_le_bytes());
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("huge.gguf");
    std::fs::write(&src, &m).unwrap();
    let out = t.path().join("out.lpk");
    let (r, allocated) = peak(|| {
        llamapack_convert::gguf::import_gguf(
            &src,
            &out,
            &llamapack_convert::gguf::ImportOptions::default(),
        )
    });
    let msg = r.map_or_else(|e| e.to_string(), |_| "accepted".to_owned());
    assert!(
        msg.contains("llama.block_count") && msg.contains("16777216"),
        "{msg}"
    );
    assert!(allocated < 2 * bytes.len() + SMALL, "{allocated}");
    assert!(!out.exists());
}
