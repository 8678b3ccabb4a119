//! A `.lpk` whose config contradicts its tensors: every command that loads it stops with the
//! reader's one error, naming the tensor and both numbers, without `--verbose`, and writes
//! nothing (before, `export --format safetensors` panicked on this file, `export --format
//! gguf` wrote an inconsistent GGUF and `logits` computed something else).

use llamapack_format::testing;

use crate::common::{fails, s};

#[test]
fn every_command_refuses_a_config_that_contradicts_the_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let good =
        testing::zero_model(&dir.path().join("good.lpk"), &testing::tiny_metadata()).unwrap();
    // One head (so one KV head): wk would need 64 rows; the file's has 32.
    let bytes = testing::rewrite_header(&std::fs::read(&good).unwrap(), |h| {
        h["config"]["n_heads"] = 1.into();
        h["config"]["n_kv_heads"] = 1.into();
    });
    let bad = dir.path().join("bad.lpk");
    std::fs::write(&bad, bytes).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = |n: &str| out.join(n).display().to_string();
    let b = s(&bad);
    let (gguf, st, npy, q) = (o("x.gguf"), o("st"), o("x.npy"), o("q.lpk"));
    for args in [
        vec!["inspect", b],
        vec!["verify", b],
        vec!["export", b, "--format", "gguf", "-o", &gguf],
        vec!["export", b, "--format", "safetensors", "-o", &st],
        vec!["logits", b, "--prompt", "ab", "-o", &npy],
        vec!["run", b, "--prompt", "ab", "-n", "2"],
        vec!["quantize", b, "-o", &q, "--type", "q8_0"],
    ] {
        let err = fails(&args);
        for part in [
            "bad.lpk",
            "layers.0.attention.wk.weight",
            "[32, 64]",
            "n_kv_heads 1 × head_dim 64 = 64",
        ] {
            assert!(err.contains(part), "{args:?}: `{part}` not in: {err}");
        }
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing written"
    );
}
