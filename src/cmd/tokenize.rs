//! `llamapack tokenize`: text → token ids with a model's (or a tokenizer.model's) vocabulary.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use llamapack_format::Lpk;
use llamapack_runner::Tokenizer;
use serde_json::json;

/// Show how a text is tokenized: ids and pieces.
///
/// SOURCE is a .lpk model, a SentencePiece tokenizer.model or a Hugging Face tokenizer.json. SentencePiece vocabularies give
/// exactly sentencepiece's ids; GPT-2 byte-level BPE vocabularies (imported from GGUF or
/// tokenizer.json) give Hugging Face tokenizers' / llama.cpp's ids.
///
/// Example:
///   llamapack tokenize tokenizer.model --text "Hello world" --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A .lpk file, a tokenizer.model or a tokenizer.json.
    pub source: PathBuf,
    /// The text.
    #[arg(long)]
    pub text: String,
    /// Prepend BOS (as a prompt is).
    #[arg(long)]
    pub bos: bool,
    /// Print {"ids": [...], "pieces": [...]} as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let ext = args
        .source
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let label = args.source.display().to_string();
    let data = match ext.as_str() {
        "lpk" => Lpk::open(&args.source)?.tokenizer().clone(),
        "gguf" => bail!(
            "{label}: tokenize reads a .lpk, a tokenizer.model or a tokenizer.json; convert the GGUF first \
             (llamapack convert {label} -o model.lpk)"
        ),
        _ => {
            let bytes = std::fs::read(&args.source).with_context(|| format!("reading {label}"))?;
            if ext == "json" {
                llamapack_convert::hf_tokenizer::parse(&bytes, &label, None, None)?
            } else {
                llamapack_convert::sentencepiece::parse(&bytes, &label)?.data
            }
        }
    };
    let tok = Tokenizer::from_data(&data)?;
    let ids = tok.encode(&args.text, args.bos)?;
    let pieces: Vec<&str> = ids.iter().map(|&i| tok.piece(i).unwrap_or("?")).collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            json!({"ids": ids, "pieces": pieces, "n_tokens": ids.len()})
        )?;
    } else {
        writeln!(out, "{} tokens", ids.len())?;
        for (id, p) in ids.iter().zip(&pieces) {
            writeln!(out, "{id:>8}  {p:?}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
