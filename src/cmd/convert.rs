//! `llamapack convert`: a Meta or Hugging Face checkpoint in, one `.lpk` out.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use llamapack_convert::{ConvertOptions, OutputDType};
use serde_json::json;

use crate::ui;

/// Convert a checkpoint into one packed, memory-mappable .lpk file.
///
/// SRC is one of:
///   a Meta download      params.json + consolidated.00.pth … (tokenizer.model here or in ..)
///   a Hugging Face dir   config.json + model.safetensors (or sharded + index.json),
///                        tokenizer.model or tokenizer.json
///   a single .pth file   with params.json beside it
///   a GGUF file          llama architecture; every type llamapack stores (f32, f16, bf16,
///                        q8_0, q4_0, q4_1, q5_0, q5_1, q2_k…q6_k, iq4_nl, iq4_xs) kept as
///                        it is; q8_1 dequantized to --dtype (default f16)
///
/// Model-parallel shards are merged exactly as Meta split them, HF's rotary permutation of
/// q_proj/k_proj is undone (the .lpk always holds Meta's row order), tensors stream from the
/// source mmap straight into their places in the output, one per thread, and the output
/// appears only when complete (one fsync at the end).
/// Provenance records every source file with its sha256.
///
/// Examples:
///   llamapack convert llama-2-7b/ -o 7b.lpk --dtype f16
///   llamapack convert Llama-2-7b-hf/ -o 7b.lpk
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The checkpoint: a directory, a single .pth / .safetensors file, or a GGUF file.
    pub src: PathBuf,
    /// Output .lpk file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Element type of the output: keep (as in the source), f16, bf16 or f32.
    #[arg(long, default_value = "keep")]
    pub dtype: OutputDType,
    /// Tokenizer file to use instead of the one found beside the checkpoint.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Context length to record (default: 4096 for Meta checkpoints, max_position_embeddings
    /// for Hugging Face ones).
    #[arg(long)]
    pub context_length: Option<u32>,
    /// Threads converting tensors, and hashing the sources meanwhile (default: all cores).
    #[arg(short = 't', long, value_parser = super::threads_parser())]
    pub threads: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    llamapack_format::output::Outputs::new()
        .input("SRC", &args.src)
        .inputs("--tokenizer", &args.tokenizer)
        .file("-o", &args.output)
        .check()?;
    if llamapack_convert::gguf::is_gguf(&args.src) {
        return import_gguf(args);
    }
    let opts = ConvertOptions {
        dtype: args.dtype,
        tokenizer: args.tokenizer.clone(),
        context_length: args.context_length,
        threads: args.threads.unwrap_or(0),
    };
    let started = Instant::now();
    let bar = ui::bytes_bar(0, "convert");
    let progress = |done: u64, total: u64| {
        if bar.length() != Some(total) {
            bar.set_length(total);
        }
        bar.set_position(done);
    };
    let summary = llamapack_convert::convert(&args.src, &args.output, &opts, &progress)?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    for w in &summary.warnings {
        eprintln!("warning: {w}");
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = json!({
            "output": summary.out.display().to_string(),
            "format": summary.format.name(),
            "config": summary.config,
            "tensors": summary.tensors,
            "bytes_read": summary.bytes_read,
            "bytes_written": summary.bytes_written,
            "seconds": secs,
            "finish_seconds": summary.finish_seconds,
            "sources": summary.sources,
            "warnings": summary.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        let c = &summary.config;
        writeln!(
            out,
            "{} ({} checkpoint) → {}: {} tensors, {} in {secs:.2} s ({}/s; {:.2} s of it the final sync to disk)",
            args.src.display(),
            summary.format.name(),
            summary.out.display(),
            summary.tensors,
            ui::human_bytes(summary.bytes_written),
            ui::human_bytes((summary.bytes_read as f64 / secs.max(1e-9)) as u64),
            summary.finish_seconds,
        )?;
        writeln!(
            out,
            "  dim {} · {} layers · {} heads ({} kv) · ffn {} · vocab {} · dtype {}",
            c.dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.ffn_dim,
            c.vocab_size,
            args.dtype.name()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn import_gguf(args: &Args) -> anyhow::Result<ExitCode> {
    let dequant_to = match args.dtype {
        OutputDType::Keep | OutputDType::F16 => llamapack_format::DType::F16,
        OutputDType::BF16 => llamapack_format::DType::BF16,
        OutputDType::F32 => llamapack_format::DType::F32,
    };
    let started = Instant::now();
    let opts = llamapack_convert::gguf::ImportOptions { dequant_to };
    let s = llamapack_convert::gguf::import_gguf(&args.src, &args.output, &opts)?;
    for n in &s.notes {
        eprintln!("note: {n}");
    }
    let mut out = std::io::stdout().lock();
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let doc = json!({
            "output": s.out.display().to_string(),
            "format": "gguf",
            "config": s.config,
            "tensors": s.tensors,
            "kept": s.kept,
            "dequantized": s.dequantized.iter().map(|(n, t)| json!({"name": n, "type": t.name()})).collect::<Vec<_>>(),
            "seconds": secs,
            "sources": [s.source],
            "notes": s.notes,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        writeln!(
            out,
            "{} (gguf) → {}: {} tensors ({} kept as they were, {} dequantized to {}) in {secs:.2} s",
            args.src.display(),
            s.out.display(),
            s.tensors,
            s.kept,
            s.dequantized.len(),
            dequant_to
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
