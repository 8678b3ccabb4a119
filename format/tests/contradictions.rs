//! A config that contradicts the tensors is refused at load, once, by the reader (so every
//! consumer — runner, exports, inspect — gets it), with one error naming the tensor and both
//! numbers; the writer refuses to write one.

use llamapack_format::{Error, Lpk, LpkWriter, ModelConfig, testing};
use serde_json::Value;

/// A whole tiny model (64 wide, 2 layers, 4 heads, 2 KV heads, ffn 96, vocab 16), untied.
fn model(tied: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut meta = testing::tiny_metadata();
    meta.config.tied_output = tied;
    let p = testing::zero_model(&dir.path().join("m.lpk"), &meta).unwrap();
    std::fs::read(p).unwrap()
}

/// The tiny model with its header's config edited.
fn lying(tied: bool, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    testing::rewrite_header(&model(tied), |h| edit(&mut h["config"]))
}

fn refused(bytes: Vec<u8>, tensor: &str, parts: &[&str]) {
    let Err(e) = Lpk::parse(bytes, "lie.lpk") else {
        panic!("a lying config was accepted (expected an error naming {tensor})");
    };
    let msg = e.to_string();
    assert!(
        matches!(&e, Error::ConfigMismatch { tensor: t, .. } if t == tensor),
        "{msg}"
    );
    assert!(msg.starts_with("lie.lpk: "), "{msg}");
    for p in parts {
        assert!(msg.contains(p), "`{p}` not in: {msg}");
    }
}

#[test]
fn the_true_config_loads() {
    for tied in [false, true] {
        let lpk = Lpk::parse(model(tied), "ok.lpk").unwrap();
        assert_eq!(lpk.len() as u64, lpk.config().tensor_count());
    }
}

#[test]
fn head_counts_that_lie_are_refused_at_the_k_projection() {
    // n_heads = 1 (so one KV head): head_dim 64, wk would be 64 rows; it has 32.
    refused(
        lying(false, |c| {
            c["n_heads"] = 1.into();
            c["n_kv_heads"] = 1.into();
        }),
        "layers.0.attention.wk.weight",
        &["[32, 64]", "[64, 64]", "n_kv_heads 1 × head_dim 64 = 64"],
    );
    refused(
        lying(false, |c| c["n_kv_heads"] = 4.into()),
        "layers.0.attention.wk.weight",
        &["dimension 0 is 32", "n_kv_heads 4 × head_dim 16 = 64"],
    );
    refused(
        lying(false, |c| c["n_heads"] = 8.into()),
        "layers.0.attention.wk.weight",
        &["dimension 0 is 32", "n_kv_heads 2 × head_dim 8 = 16"],
    );
}

#[test]
fn widths_that_lie_are_refused() {
    refused(
        lying(false, |c| c["vocab_size"] = 32.into()),
        "tok_embeddings.weight",
        &["dimension 0 is 16", "vocab_size = 32"],
    );
    refused(
        lying(false, |c| c["ffn_dim"] = 128.into()),
        "layers.0.feed_forward.w1.weight",
        &["dimension 0 is 96", "ffn_dim = 128"],
    );
    refused(
        lying(false, |c| {
            c["dim"] = 128.into();
        }),
        "tok_embeddings.weight",
        &["dimension 1 is 64", "dim = 128"],
    );
}

#[test]
fn fewer_layers_than_the_tensors_is_refused() {
    refused(
        lying(false, |c| c["n_layers"] = 1.into()),
        "layers.1.attention.wq.weight",
        &["layer 1", "n_layers = 1"],
    );
}

#[test]
fn more_layers_than_the_tensors_is_refused_without_building_them() {
    for n in [3u32, 1 << 24] {
        refused(
            lying(false, |c| c["n_layers"] = n.into()),
            "layers.2.attention.wq.weight",
            &[&format!("n_layers = {n}"), "stop at layer 1"],
        );
    }
}

#[test]
fn a_tied_output_beside_an_output_weight_is_refused() {
    refused(
        lying(false, |c| c["tied_output"] = true.into()),
        "output.weight",
        &["tied_output = true"],
    );
    // And an untied config without the output.
    refused(
        lying(true, |c| c["tied_output"] = false.into()),
        "output.weight",
        &["missing"],
    );
}

#[test]
fn a_model_may_not_carry_other_tensors() {
    let bytes = testing::rewrite_header(&model(false), |h| {
        h["tensors"][3]["name"] = "layers.0.attention.wx.weight".into();
    });
    refused(
        bytes,
        "layers.0.attention.wx.weight",
        &["not a Llama tensor"],
    );
}

#[test]
fn the_writer_refuses_a_contradiction_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.lpk");
    let mut meta = testing::tiny_metadata();
    let mut w = LpkWriter::create(&p).unwrap();
    let lie = ModelConfig {
        n_kv_heads: 4,
        ..meta.config.clone()
    };
    for (name, shape) in meta.config.tensors() {
        let n: u64 = shape.iter().product();
        w.write_tensor(
            &name,
            llamapack_format::DType::F32,
            &shape,
            &vec![0; n as usize * 4],
        )
        .unwrap();
    }
    meta.config = lie;
    let e = w.finish(&meta).unwrap_err().to_string();
    assert!(
        e.contains("layers.0.attention.wk.weight") && e.contains("n_kv_heads 4"),
        "{e}"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
