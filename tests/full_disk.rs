//! A failed write leaves nothing: no partial output and no temp file, for every kind of output
//! (`.lpk` from convert, quantize and `eval --store`, the `--report` JSON, GGUF from export and
//! imatrix, the safetensors folder, the `.npy` of logits, the SVG of compare), with one error
//! line that names the final path and the cause, never the temp name.
//!
//! The failure is the kernel's own: the command runs under a file-size limit (RLIMIT_FSIZE,
//! `ulimit -f`) with SIGXFSZ ignored, so the write that crosses the limit fails with EFBIG
//! ("File too large") exactly as a write to a full disk fails with ENOSPC, through the same
//! error path. Also: the hidden temp files a `kill -9` leaves are removed by the next write of
//! the same output, and concurrent runs to one output all succeed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use llamapack_format::{DType, ModelConfig};

use crate::common::{fixture, ok, s, shared};

/// Bytes per unit of `ulimit -f` in `sh` (512 in dash and POSIX shells, 1024 in bash).
fn ulimit_unit() -> u64 {
    static UNIT: OnceLock<u64> = OnceLock::new();
    *UNIT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        Command::new("sh")
            .args([
                "-c",
                "trap '' XFSZ; ulimit -f 1; head -c 4096 /dev/zero > \"$0\"",
                s(&probe),
            ])
            .output()
            .unwrap();
        std::fs::metadata(&probe).unwrap().len()
    })
}

/// Runs the CLI with no file larger than `limit` bytes.
fn limited(limit: u64, args: &[&str]) -> Output {
    let blocks = (limit / ulimit_unit()).max(1).to_string();
    Command::new("sh")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f \"$0\"; exec \"$@\"",
            &blocks,
            env!("CARGO_BIN_EXE_llamapack"),
        ])
        .args(args)
        .env_remove("LLAMAPACK_SIMD")
        .output()
        .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs `args` under `limit` and checks the failure: one error line naming `dest` and the
/// cause, no temp name, and `dir` holding exactly `expect` afterwards.
fn fails_cleanly(limit: u64, args: &[&str], dest: &Path, dir: &Path, expect: &[&str]) -> Output {
    let out = limited(limit, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} succeeded under {limit} bytes"
    );
    assert!(
        err.contains(&format!("{}: write: File too large", dest.display())),
        "{args:?}: {err}"
    );
    assert!(!err.contains(".tmp-"), "the temp name shows: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert_eq!(names(dir), expect, "{args:?} left files behind");
    out
}

struct Case {
    _tmp: tempfile::TempDir,
    out: PathBuf,
}

fn case() -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    Case { _tmp: tmp, out }
}

#[cfg(unix)]
#[test]
fn a_failed_write_of_any_output_leaves_nothing() {
    let sh = shared();
    let text = fixture("text/corpus.txt");
    let m = s(&sh.f16);

    let c = case();
    let dest = c.out.join("x.lpk");
    let meta = fixture("tiny/meta");
    fails_cleanly(
        64 << 10,
        &["convert", s(&meta), "-o", s(&dest)],
        &dest,
        &c.out,
        &[],
    );

    let c = case();
    let dest = c.out.join("q.lpk");
    let args = ["quantize", m, "-o", s(&dest), "--type", "q4_0"];
    fails_cleanly(64 << 10, &args, &dest, &c.out, &[]);

    let c = case();
    let dest = c.out.join("m.gguf");
    let args = ["export", m, "--format", "gguf", "-o", s(&dest)];
    fails_cleanly(64 << 10, &args, &dest, &c.out, &[]);

    let c = case();
    let hf = c.out.join("hf");
    let args = ["export", m, "--format", "safetensors", "-o", s(&hf)];
    fails_cleanly(64 << 10, &args, &hf.join("model.safetensors"), &c.out, &[]);

    let c = case();
    let dest = c.out.join("l.npy");
    let args = ["logits", m, "--prompt", "Alice was", "-o", s(&dest)];
    fails_cleanly(2 << 10, &args, &dest, &c.out, &[]);

    let c = case();
    let dest = c.out.join("im.gguf");
    let args = [
        "imatrix",
        m,
        "--text",
        s(&text),
        "--ctx",
        "64",
        "--chunks",
        "1",
    ];
    let args = [&args[..], &["-o", s(&dest)]].concat();
    fails_cleanly(8 << 10, &args, &dest, &c.out, &[]);

    // compare prints its table before it writes the chart.
    let c = case();
    let dest = c.out.join("c.svg");
    let args = [
        "compare",
        m,
        "--reference",
        m,
        "--text",
        s(&text),
        "--ctx",
        "64",
        "--chunks",
        "1",
        "--bench-tokens",
        "0",
        "--svg",
        s(&dest),
    ];
    let out = fails_cleanly(2 << 10, &args, &dest, &c.out, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("PPL ratio"));

    // eval --store rewrites the candidate: a failure leaves it as it was.
    let c = case();
    let cand = c.out.join("cand.lpk");
    std::fs::copy(&sh.f16, &cand).unwrap();
    let before = std::fs::read(&cand).unwrap();
    let args = [
        "eval",
        s(&cand),
        "--reference",
        m,
        "--text",
        s(&text),
        "--ctx",
        "64",
        "--chunks",
        "1",
        "--store",
    ];
    fails_cleanly(64 << 10, &args, &cand, &c.out, &["cand.lpk"]);
    assert!(
        std::fs::read(&cand).unwrap() == before,
        "the candidate changed"
    );
}

/// The `--report` JSON fails alone when it is the largest file: a small model, and many
/// `--tensor-type` patterns that match nothing (the report prints its recipe indented, the
/// `.lpk` stores it compactly), so the model fits under the limit and the report does not.
#[cfg(unix)]
#[test]
fn a_failed_report_write_leaves_no_partial_report() {
    let c = case();
    let dir = c.out.parent().unwrap();
    let model = dir.join("small.lpk");
    let config = ModelConfig {
        context_length: 64,
        ..llamapack_format::testing::tiny_config()
    };
    llamapack_runner::testing::random_model(&model, &config, DType::F32, 3).unwrap();
    let patterns = dir.join("types.txt");
    let lines: Vec<String> = (0..5000).map(|i| format!("zz{i}=q8_0")).collect();
    std::fs::write(&patterns, lines.join("\n")).unwrap();
    let q = c.out.join("q.lpk");
    let report = c.out.join("q.json");
    let args = [
        "quantize",
        s(&model),
        "-o",
        s(&q),
        "--type",
        "q4_0",
        "--tensor-type-file",
        s(&patterns),
        "--report",
        s(&report),
    ];
    // Without a limit: the model is well under 280 kB, the report well over.
    let free = c.out.join("free");
    std::fs::create_dir(&free).unwrap();
    let (fq, fr) = (free.join("q.lpk"), free.join("q.json"));
    let mut free_args = args;
    (free_args[3], free_args[9]) = (s(&fq), s(&fr));
    ok(&free_args);
    let (ql, rl) = (
        std::fs::metadata(&fq).unwrap().len(),
        std::fs::metadata(&fr).unwrap().len(),
    );
    assert!(ql < 250_000 && rl > 310_000, "sizes {ql} and {rl}");
    std::fs::remove_dir_all(&free).unwrap();
    // The model is complete and published; the report is not, and leaves nothing.
    fails_cleanly(280_000, &args, &report, &c.out, &["q.lpk"]);
    ok(&["verify", s(&q)]);
}

/// What `kill -9` leaves — `.NAME.tmp-PID` — is removed the next time NAME is written (a file
/// or, for a safetensors export, a folder), unless its process still runs.
#[cfg(target_os = "linux")]
#[test]
fn stale_temp_files_of_killed_runs_are_removed_by_the_next_write() {
    let sh = shared();
    let c = case();
    let dead = llamapack_format::testing::ended_pid();
    let npy = c.out.join("l.npy");
    let stale = c.out.join(format!(".l.npy.tmp-{dead}"));
    std::fs::write(&stale, b"half a file").unwrap();
    let running = c.out.join(".l.npy.tmp-1");
    std::fs::write(&running, b"another run's").unwrap();
    ok(&["logits", s(&sh.f16), "--prompt", "hi", "-o", s(&npy)]);
    assert!(!stale.exists(), "{} is left", stale.display());
    assert!(running.exists() && npy.is_file());

    let hf = c.out.join("hf");
    let stale_dir = c.out.join(format!(".hf.tmp-{dead}"));
    std::fs::create_dir(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("model.safetensors"), b"part").unwrap();
    ok(&[
        "export",
        s(&sh.f16),
        "--format",
        "safetensors",
        "-o",
        s(&hf),
    ]);
    assert!(!stale_dir.exists());
    assert!(hf.join("model.safetensors").is_file());
}

/// Concurrent runs to one output each write their own temp file: all succeed and the output
/// is whole.
#[test]
fn concurrent_runs_to_one_output_all_succeed() {
    let sh = shared();
    let c = case();
    let npy = c.out.join("l.npy");
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_llamapack"))
                .args(["logits", s(&sh.f16), "--prompt", "Alice", "-o", s(&npy)])
                .args(["--threads", "1"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(names(&c.out), ["l.npy", "l.npy.json"]);
    let a = llamapack_runner::npy::read(&npy).unwrap();
    assert_eq!(a.shape.len(), 2);
}
