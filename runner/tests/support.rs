//! Fixture paths, fixture conversion (once per test process) and comparison helpers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use llamapack_convert::{ConvertOptions, OutputDType};
use llamapack_format::TokenizerData;
use llamapack_runner::npy;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runner/ has a parent")
        .to_path_buf()
}

/// `fixtures/…`.
pub fn fixture(rel: &str) -> PathBuf {
    repo().join("fixtures").join(rel)
}

/// Meta's Llama 2 `tokenizer.model` from `shared/` (beside the repository), if present.
pub fn llama2_tokenizer_model() -> Option<PathBuf> {
    [
        repo().join("../shared/data/llama2/tokenizer.model"),
        PathBuf::from("/work/shared/data/llama2/tokenizer.model"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// The `TokenizerData` of a `SentencePiece` `tokenizer.model`, via the convert crate's reader.
pub fn sp_tokenizer(path: &Path) -> TokenizerData {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    llamapack_convert::sentencepiece::parse(&bytes, &path.display().to_string())
        .expect("tokenizer.model parses")
        .data
}

/// The tiny fixture converted to `.lpk` from `source` (`hf` or `meta`) as `dtype`; converted
/// once per test process into cargo's scratch directory.
pub fn fixture_lpk(source: &str, dtype: OutputDType) -> PathBuf {
    static DONE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let key = format!("{source}-{}", dtype.name());
    let mut done = DONE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.entry(key.clone())
        .or_insert_with(|| {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("runner-fixture-{key}-{}.lpk", std::process::id()));
            let opts = ConvertOptions {
                dtype,
                tokenizer: Some(fixture("tiny/tokenizer.model")),
                threads: 1,
                ..ConvertOptions::default()
            };
            llamapack_convert::convert(
                &fixture(&format!("tiny/{source}")),
                &out,
                &opts,
                &|_, _| {},
            )
            .unwrap_or_else(|e| panic!("converting the {source} fixture: {e}"));
            out
        })
        .clone()
}

/// A float `.npy` as `(shape, values)`.
pub fn npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = npy::read(path).unwrap_or_else(|e| panic!("{e}"));
    (a.shape.clone(), a.to_f32().unwrap())
}

/// `max |a - b|`.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `max |a|`.
pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}

/// A JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&s).unwrap()
}

/// A JSON array of integers as token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("an id")).unwrap())
        .collect()
}

/// SmolLM2-135M converted to `.lpk` (`$LLAMAPACK_SMOLLM2_LPK`, else `/work/data/smol-f16.lpk`
/// or `../data/smol-f16.lpk` beside the repository), if present.
pub fn smollm2_lpk() -> Option<PathBuf> {
    std::env::var_os("LLAMAPACK_SMOLLM2_LPK")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            PathBuf::from("/work/data/smol-f16.lpk"),
            repo().join("../data/smol-f16.lpk"),
        ])
        .find(|p| p.is_file())
}
