//! `llamapack verify`: recompute every checksum.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use llamapack_format::Lpk;
use rayon::prelude::*;

/// Recompute every tensor's crc32c and compare it with the index.
///
/// Exits 0 when every tensor and blob matches, 1 naming each one that does not.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .lpk file to check.
    pub file: PathBuf,
    /// Emit JSON: {"file", "tensors", "bytes", "bad": [names]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let lpk = Lpk::open(&args.file)?;
    let tensors: Vec<_> = lpk.tensors().collect();
    let bar = crate::ui::count_bar(tensors.len() as u64, "verify");
    let mut bad: Vec<String> = tensors
        .par_iter()
        .filter(|t| {
            let ok = t.checksum_ok();
            bar.inc(1);
            !ok
        })
        .map(|t| t.name.to_owned())
        .collect();
    bar.finish_and_clear();
    // Blobs are few and small.
    let blob_bad: Vec<String> = lpk
        .verify()
        .into_iter()
        .filter(|n| n.starts_with("blob:"))
        .collect();
    bad.extend(blob_bad);
    let bytes: u64 = tensors.iter().map(|t| t.bytes.len() as u64).sum();
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({
            "file": args.file.display().to_string(),
            "tensors": tensors.len(),
            "bytes": bytes,
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
    } else {
        for name in &bad {
            writeln!(out, "checksum mismatch: {name}")?;
        }
    }
    if bad.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {}: {} of {} tensors are corrupt",
            args.file.display(),
            bad.len(),
            tensors.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
