//! `llamapack verify`: recompute every checksum of a `.lpk`; check what can be checked of a GGUF.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use llamapack_format::{Lpk, TensorView};
use rayon::prelude::*;

/// Check a model file: recompute every checksum of a .lpk; of a GGUF, what can be checked.
///
/// .lpk: every tensor's and blob's crc32c is recomputed and compared with the index.
///
/// GGUF (which has no checksums): the structure (header, metadata, tensor index), every
/// tensor's name, type, shape and size against the model's hyper-parameters, its bounds,
/// alignment and overlap are checked on opening, as for any command; then every weight is
/// decoded and must be a finite number (a corrupt scale or float gives NaN or ±inf). A flipped
/// bit that leaves the values finite cannot be detected in a GGUF.
///
/// Exits 0 when everything checked is right, 1 naming each tensor that is not.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The file to check (.lpk or .gguf).
    pub file: PathBuf,
    /// Worker threads (default: one per physical core).
    #[arg(short = 't', long, value_parser = super::threads_parser())]
    pub threads: Option<usize>,
    /// Emit JSON: {"file", "format", "tensors", "bytes", "checked": [...], "bad": [names]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let pool = super::thread_pool(args.threads)?;
    let lpk = llamapack_convert::open_model(&args.file)?;
    let tensors: Vec<_> = lpk.tensors().collect();
    let bar = crate::ui::count_bar(tensors.len() as u64, "verify");
    let (bad, checked): (Vec<String>, Vec<&str>) = if lpk.has_checksums() {
        let mut bad: Vec<String> = pool.install(|| {
            tensors
                .par_iter()
                .filter(|t| {
                    let ok = t.checksum_ok();
                    bar.inc(1);
                    !ok
                })
                .map(|t| format!("checksum mismatch: {}", t.name))
                .collect()
        });
        // Blobs are few and small.
        bad.extend(
            lpk.verify()
                .into_iter()
                .filter(|n| n.starts_with("blob:"))
                .map(|n| format!("checksum mismatch: {n}")),
        );
        (bad, vec!["the crc32c of every tensor and blob"])
    } else {
        let bad = pool.install(|| {
            tensors
                .par_iter()
                .filter_map(|t| {
                    let r = non_finite(t);
                    bar.inc(1);
                    r
                })
                .collect()
        });
        (
            bad,
            vec![
                "header, metadata and tensor index",
                "names, types and shapes against the hyper-parameters",
                "sizes, bounds, alignment and overlap of every tensor",
                "every weight decodes to a finite number",
            ],
        )
    };
    bar.finish_and_clear();
    report(args, &lpk, &tensors, &bad, &checked)
}

/// The first non-finite value of `t` decoded, as a line naming it; `None` when all are finite.
fn non_finite(t: &TensorView<'_>) -> Option<String> {
    let n = t.row_len();
    let row_bytes = t.dtype.row_bytes(n)?;
    let mut x = vec![0f32; n];
    for (row, src) in t.bytes.chunks_exact(row_bytes).enumerate() {
        if let Err(e) = llamapack_quantize::dequantize_row(t.dtype, src, &mut x) {
            return Some(format!("cannot decode {}: {e}", t.name));
        }
        if let Some(col) = x.iter().position(|v| !v.is_finite()) {
            return Some(format!(
                "non-finite value: {} row {row} column {col} decodes to {}",
                t.name, x[col]
            ));
        }
    }
    None
}

fn report(
    args: &Args,
    lpk: &Lpk,
    tensors: &[TensorView<'_>],
    bad: &[String],
    checked: &[&str],
) -> anyhow::Result<ExitCode> {
    let bytes: u64 = tensors.iter().map(|t| t.bytes.len() as u64).sum();
    let mut out = std::io::stdout().lock();
    let format = if lpk.has_checksums() { "lpk" } else { "gguf" };
    if args.json {
        let doc = serde_json::json!({
            "file": args.file.display().to_string(),
            "format": format,
            "tensors": tensors.len(),
            "bytes": bytes,
            "checked": checked,
            "bad": bad,
        });
        writeln!(out, "{doc}")?;
    } else if bad.is_empty() {
        writeln!(
            out,
            "ok: {} tensors, {} checked in {}",
            tensors.len(),
            crate::ui::human_bytes(bytes),
            args.file.display()
        )?;
        for c in checked {
            writeln!(out, "  checked: {c}")?;
        }
        if !lpk.has_checksums() {
            writeln!(
                out,
                "  not checkable: a GGUF has no checksums, so a change that leaves the values finite goes unseen"
            )?;
        }
    } else {
        for line in bad {
            writeln!(out, "{line}")?;
        }
    }
    if bad.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        let what = if lpk.has_checksums() {
            "corrupt"
        } else {
            "not finite"
        };
        eprintln!(
            "error: {}: {} of {} tensors are {what}",
            args.file.display(),
            bad.len(),
            tensors.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
