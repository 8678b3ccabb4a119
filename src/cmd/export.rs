//! `llamapack export`: artifacts for other runtimes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use llamapack_convert::gguf::{self, ExportOptions};
use llamapack_convert::hf_export::{HfExportOptions, export_safetensors};
use llamapack_format::DType;
use llamapack_format::output::Outputs;

/// Output formats of `export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// GGUF v3 for llama.cpp (quantized blocks copied byte for byte).
    Gguf,
    /// A Hugging Face Llama directory for transformers (dequantized to --dtype).
    Safetensors,
}

/// Export a model for another runtime: GGUF for llama.cpp, safetensors for transformers.
///
/// MODEL is a .lpk or a llama-architecture GGUF (read in place).
///
/// GGUF: llama.cpp's metadata keys and value types, its tensor names, the tokenizer, and the
/// q8_0 / q4_0 / q4_k / q6_k blocks copied unchanged (they are ggml's); Q/K rows stay in Meta's
/// order, which llama.cpp's llama RoPE expects.
///
/// safetensors: a directory LlamaForCausalLM.from_pretrained loads: model.safetensors (sharded
/// above --shard-size), config.json, generation_config.json and tokenizer.model, HF tensor names,
/// HF's rotary permutation re-applied to q_proj/k_proj, quantized tensors dequantized to --dtype.
///
/// Examples:
///   llamapack export 7b-q4_k_m.lpk --format gguf -o 7b-q4_k_m.gguf
///   llamapack export 7b.lpk --format safetensors -o Llama-2-7b-hf/ --dtype f16
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The model to export (.lpk or .gguf).
    pub model: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Output file (gguf) or directory (safetensors).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Model name recorded in the output (default: the output's file name).
    #[arg(long)]
    pub name: Option<String>,
    /// safetensors: element type of the weights (f16, bf16 or f32).
    #[arg(long, default_value = "f16", value_parser = super::float_dtype)]
    pub dtype: llamapack_format::DType,
    /// safetensors: largest shard in bytes before splitting (default 5 GB, as transformers).
    #[arg(long, default_value_t = 5_000_000_000)]
    pub shard_size: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut outputs = Outputs::new();
    outputs.input("MODEL", &args.model);
    match args.format {
        Format::Gguf => outputs.file("-o", &args.output),
        Format::Safetensors => outputs.dir("-o", &args.output),
    };
    outputs.check()?;
    let lpk = llamapack_convert::open_model(&args.model)?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Gguf => {
            let s = gguf::export_gguf(
                &lpk,
                &args.output,
                &ExportOptions {
                    name: args.name.clone(),
                },
            )?;
            for n in &s.notes {
                eprintln!("note: {n}");
            }
            if args.json {
                let doc = serde_json::json!({
                    "output": s.out.display().to_string(),
                    "format": "gguf",
                    "file_type": s.file_type,
                    "file_type_name": llamapack_quantize::recipe::llama_ftype_name(s.file_type),
                    "tensors": s.tensors,
                    "bytes": s.bytes,
                    "converted_to_f32": s.converted_to_f32,
                    "notes": s.notes,
                });
                writeln!(out, "{doc}")?;
            } else {
                writeln!(
                    out,
                    "{} → {}: {} tensors, {}, {}",
                    args.model.display(),
                    s.out.display(),
                    s.tensors,
                    crate::ui::human_bytes(s.bytes),
                    llamapack_quantize::recipe::llama_ftype_words(s.file_type)
                )?;
            }
        }
        Format::Safetensors => {
            let opts = HfExportOptions {
                dtype: args.dtype,
                shard_size: args.shard_size,
            };
            let decode = |d: DType, src: &[u8], dst: &mut [f32]| {
                llamapack_quantize::dequantize_row(d, src, dst).map_err(|e| e.to_string())
            };
            let s = export_safetensors(&lpk, &args.output, &opts, &decode)?;
            for n in &s.notes {
                eprintln!("note: {n}");
            }
            if args.json {
                let doc = serde_json::json!({
                    "output": s.dir.display().to_string(),
                    "format": "safetensors",
                    "files": s.files,
                    "tensors": s.tensors,
                    "tensor_bytes": s.tensor_bytes,
                    "dtype": args.dtype.name(),
                    "notes": s.notes,
                });
                writeln!(out, "{doc}")?;
            } else {
                writeln!(
                    out,
                    "{} → {}/: {} tensors as {}, {} ({})",
                    args.model.display(),
                    s.dir.display(),
                    s.tensors,
                    args.dtype,
                    crate::ui::human_bytes(s.tensor_bytes),
                    s.files.join(", ")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
