//! Ctrl-C leaves nothing half-written: an interrupted `llamapack quantize` removes its hidden
//! temp file and exits with 130.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use llamapack_format::{DType, ModelConfig};

/// A random f32 model big enough (~120 MB) that quantizing it on one thread takes about a
/// second.
fn big_model(path: &Path) {
    let config = ModelConfig {
        dim: 512,
        n_layers: 8,
        n_heads: 8,
        n_kv_heads: 8,
        ffn_dim: 1536,
        vocab_size: 4096,
        context_length: 128,
        ..llamapack_format::testing::tiny_config()
    };
    llamapack_runner::testing::random_model(path, &config, DType::F32, 5).expect("write model");
}

#[cfg(unix)]
#[test]
fn interrupted_quantize_removes_its_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.lpk");
    big_model(&src);
    let out = dir.path().join("q.lpk");
    let mut child = Command::new(env!("CARGO_BIN_EXE_llamapack"))
        .args([
            "quantize",
            src.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--type", "q4_k_m", "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run llamapack");
    // The writer's temp file: a hidden sibling named after the child's pid.
    let temp = out.with_file_name(format!(".q.lpk.tmp-{}", child.id()));
    // Wait until the output is being written, then interrupt.
    let start = Instant::now();
    while !temp.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "quantize ended before its temp file was seen"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temp file after 60 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "stderr: {stderr}");
    assert!(
        stderr.contains("interrupted; removed unfinished"),
        "stderr: {stderr}"
    );
    assert!(!temp.exists(), "{} left behind", temp.display());
    assert!(!out.exists(), "a partial {} was published", out.display());
}
