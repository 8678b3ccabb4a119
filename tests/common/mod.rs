//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
