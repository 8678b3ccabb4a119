//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture path.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures").join(rel)
}

/// Runs the CLI with `args`.
pub fn llamapack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llamapack"))
        .args(args)
        .env_remove("LLAMAPACK_SIMD")
        .output()
        .expect("run llamapack")
}

/// Runs the CLI and asserts success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = llamapack(args);
    assert!(
        out.status.success(),
        "llamapack {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs the CLI and asserts failure; returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = llamapack(args);
    assert!(
        !out.status.success(),
        "llamapack {args:?} unexpectedly succeeded"
    );
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

/// `p` as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A scratch folder shared by the tests of this binary, with the fixture's Meta checkpoint
/// converted once to f32 and once to f16.
pub struct Shared {
    pub dir: PathBuf,
    pub f32: PathBuf,
    pub f16: PathBuf,
}

pub fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let meta = fixture("tiny/meta");
        let f32 = dir.join("tiny-f32.lpk");
        let f16 = dir.join("tiny-f16.lpk");
        ok(&["convert", s(&meta), "-o", s(&f32), "--dtype", "f32"]);
        ok(&["convert", s(&meta), "-o", s(&f16), "--dtype", "f16"]);
        Shared { dir, f32, f16 }
    })
}

/// Runs the CLI and parses its stdout as JSON.
pub fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).expect("json output")
}

/// One row of `inspect --json`'s tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub dtype: String,
    pub shape: serde_json::Value,
    pub bytes: u64,
    /// `None` for a GGUF, which stores no checksums.
    pub checksum: Option<String>,
}

/// The tensor table of an `inspect --json` report.
/// Every tensor of an `.lpk` has a checksum; only a GGUF may lack them.
pub fn tensors(report: &serde_json::Value) -> Vec<Tensor> {
    let gguf = report["file"]["format"] == "gguf";
    report["tensors"]
        .as_array()
        .expect("inspect --json has a tensor table")
        .iter()
        .map(|t| {
            let checksum = t["checksum"].as_str().map(str::to_owned);
            assert!(gguf || checksum.is_some(), "no checksum: {t}");
            Tensor {
                name: t["name"].as_str().unwrap().to_owned(),
                dtype: t["dtype"].as_str().unwrap().to_owned(),
                shape: t["shape"].clone(),
                bytes: t["bytes"].as_u64().unwrap(),
                checksum,
            }
        })
        .collect()
}

/// The tensor table of a model file, by `inspect --json`.
pub fn inspect_tensors(model: &Path) -> Vec<Tensor> {
    tensors(&json(&["inspect", s(model), "--json"]))
}
