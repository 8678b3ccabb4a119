//! What a `.npy` of logits was computed on: `logits` records it beside the file
//! (`X.npy.json`), and `eval` / `compare` check it before using the rows as a reference.
//!
//! `eval` cuts its tokens into windows of `--ctx`, writes BOS over the first token of each and
//! needs one row of reference logits per position of every window, nothing more, nothing less.
//! A `.npy` from anywhere else (one teacher-forced sequence, another `--ctx`, another text or
//! tokenizer) has the right width and plausible numbers, and would give a wrong report without
//! an error; the record makes each of those an error that says what differs.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use llamapack_runner::accuracy::Windows;
use serde::{Deserialize, Serialize};

/// How the rows of a logits file are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `eval`'s windows: `windows × ctx` rows, BOS written over the first token of each window.
    EvalWindows,
    /// One teacher-forced sequence, the ids as given.
    Sequence,
}

/// The record beside a logits file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What wrote it (`llamapack 0.1.0 logits`).
    pub tool: String,
    /// The model whose logits these are (its file name).
    pub model: String,
    /// How the rows are laid out.
    pub layout: Layout,
    /// Tokens per window (eval windows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<usize>,
    /// Number of windows (eval windows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<usize>,
    /// The id written over the first token of each window (eval windows with a BOS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos: Option<u32>,
    /// Rows of logits.
    pub rows: usize,
    /// Logits per row.
    pub vocab: usize,
    /// sha256 of the token ids of every row, in order, as little-endian u32.
    pub tokens_sha256: String,
    /// Bytes of the `.npy` file it describes.
    pub npy_bytes: u64,
}

/// `X.npy` → `X.npy.json`.
pub fn sidecar_path(npy: &Path) -> PathBuf {
    let mut name = npy.file_name().unwrap_or_default().to_os_string();
    name.push(".json");
    npy.with_file_name(name)
}

/// sha256 of token ids as little-endian u32.
pub fn ids_sha256(ids: impl IntoIterator<Item = u32>) -> String {
    let bytes: Vec<u8> = ids.into_iter().flat_map(u32::to_le_bytes).collect();
    super::sha256_hex(&bytes)
}

/// sha256 of the ids `eval` runs: every window, BOS written over its first token.
pub fn windows_sha256(tokens: &[u32], windows: &Windows) -> String {
    ids_sha256((0..windows.n).flat_map(|i| windows.window(tokens, i)))
}

/// The record for eval windows.
pub fn for_windows(model: &str, tokens: &[u32], w: &Windows, vocab: usize) -> Record {
    Record {
        tool: format!("{} logits", llamapack_format::TOOL_VERSION),
        model: model.to_owned(),
        layout: Layout::EvalWindows,
        ctx: Some(w.ctx),
        windows: Some(w.n),
        bos: w.bos,
        rows: w.n * w.ctx,
        vocab,
        tokens_sha256: windows_sha256(tokens, w),
        npy_bytes: 0,
    }
}

/// The record for one sequence of `ids`.
pub fn for_sequence(model: &str, ids: &[u32], vocab: usize) -> Record {
    Record {
        tool: format!("{} logits", llamapack_format::TOOL_VERSION),
        model: model.to_owned(),
        layout: Layout::Sequence,
        ctx: None,
        windows: None,
        bos: None,
        rows: ids.len(),
        vocab,
        tokens_sha256: ids_sha256(ids.iter().copied()),
        npy_bytes: 0,
    }
}

/// The command that writes a reference for these windows.
fn how_to_make(npy: &Path, w: &Windows) -> String {
    format!(
        "write one with `llamapack logits REFERENCE-MODEL --eval-reference --ctx {}{} --text FILE -o {}`",
        w.ctx,
        if w.n > 0 {
            format!(" --chunks {}", w.n)
        } else {
            String::new()
        },
        npy.display()
    )
}

/// Checks that the `.npy` reference at `npy` (`rows` rows of `vocab` logits) holds exactly the
/// rows of `windows` over `tokens`: its shape always, and, when `logits` recorded what produced
/// it, the layout, `--ctx`, BOS, window count and the token ids. Returns whether a record was
/// there (without one, only the shape can be checked).
pub fn check(
    npy: &Path,
    rows: usize,
    vocab: usize,
    tokens: &[u32],
    windows: &Windows,
) -> anyhow::Result<bool> {
    let need = windows.n * windows.ctx;
    let side = sidecar_path(npy);
    let record: Option<Record> = match std::fs::read(&side) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a record of a logits file", side.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", side.display())),
    };
    let name = npy.display();
    if let Some(r) = &record {
        let npy_bytes = std::fs::metadata(npy).map_or(0, |m| m.len());
        if r.npy_bytes != npy_bytes || r.rows != rows || r.vocab != vocab {
            bail!(
                "{}: records {} rows of {} logits in {} bytes, but {name} holds {rows} rows of {vocab} in {npy_bytes} bytes: they do not belong together",
                side.display(),
                r.rows,
                r.vocab,
                r.npy_bytes
            );
        }
        if r.layout == Layout::Sequence {
            bail!(
                "{name} holds the logits of one sequence of {} tokens (`logits` without --eval-reference), \
                 not eval's windows of --ctx tokens with BOS first in each; {}",
                r.rows,
                how_to_make(npy, windows)
            );
        }
        let differs = |what: &str, theirs: String, ours: String| {
            anyhow::anyhow!(
                "{name} was computed with {what} {theirs}, but this evaluation uses {ours}; {}",
                how_to_make(npy, windows)
            )
        };
        if r.ctx != Some(windows.ctx) {
            return Err(differs(
                "--ctx",
                r.ctx.map_or_else(|| "?".into(), |c| c.to_string()),
                windows.ctx.to_string(),
            ));
        }
        if r.windows != Some(windows.n) {
            return Err(differs(
                "windows:",
                r.windows.map_or_else(|| "?".into(), |c| c.to_string()),
                windows.n.to_string(),
            ));
        }
        let id = |b: Option<u32>| b.map_or_else(|| "none".into(), |b| b.to_string());
        if r.bos != windows.bos {
            return Err(differs("BOS", id(r.bos), id(windows.bos)));
        }
    }
    if rows != need {
        bail!(
            "{name}: {rows} rows of logits, but {} windows of {} tokens need exactly {need} (one row per position of each window, BOS first in each); {}",
            windows.n,
            windows.ctx,
            how_to_make(npy, windows)
        );
    }
    if let Some(r) = &record
        && r.tokens_sha256 != windows_sha256(tokens, windows)
    {
        bail!(
            "{name} was computed on other tokens than this evaluation's (another text, tokenizer or \
             --chunks; token sha256 {} recorded); {}",
            short(&r.tokens_sha256),
            how_to_make(npy, windows)
        );
    }
    Ok(record.is_some())
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Writes `record` beside `npy` (through a hidden temp file, renamed into place).
pub fn write(npy: &Path, record: &Record) -> anyhow::Result<()> {
    let side = sidecar_path(npy);
    let mut bytes = serde_json::to_vec_pretty(record)?;
    bytes.push(b'\n');
    llamapack_format::output::write_file(&side, &bytes)?;
    Ok(())
}

/// Removes the record beside `npy`, if any (before `npy` is replaced, so that a stale record
/// never describes a new file).
pub fn remove(npy: &Path) -> anyhow::Result<()> {
    let side = sidecar_path(npy);
    match std::fs::remove_file(&side) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing the stale {}", side.display())),
    }
}
