//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use llamapack_format::{DType, Lpk};

/// `fixtures/` at the workspace root.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// `fixtures/pth/<name>`.
pub fn pth(name: &str) -> PathBuf {
    fixtures().join("pth").join(name)
}

/// Copies the files of `src` (not recursively) into a new directory `dst`.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// A tiny Meta checkpoint from `fixtures/pth/<case>` in a temp dir, with the tiny tokenizer in
/// the parent directory (Meta's download layout).
pub fn meta_case(case: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("model");
    copy_dir(&pth(case), &dir);
    std::fs::remove_file(dir.join("merged.json")).ok();
    std::fs::copy(
        fixtures().join("tiny/tokenizer.model"),
        t.path().join("tokenizer.model"),
    )
    .unwrap();
    (t, dir)
}

/// A tensor of a `.lpk` decoded to f32.
pub fn f32s(lpk: &Lpk, name: &str) -> Vec<f32> {
    let t = lpk.tensor(name).unwrap();
    match t.dtype {
        DType::F32 => t.as_slice::<f32>().unwrap().to_vec(),
        DType::F16 => t
            .as_slice::<half::f16>()
            .unwrap()
            .iter()
            .map(|x| x.to_f32())
            .collect(),
        DType::BF16 => t
            .as_slice::<half::bf16>()
            .unwrap()
            .iter()
            .map(|x| x.to_f32())
            .collect(),
        d => panic!("{name}: unexpected dtype {d}"),
    }
}

/// Files in `dir` (names), sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A progress callback that ignores its input.
pub fn quiet(_: u64, _: u64) {}
