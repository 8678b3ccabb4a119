//! `llamapack tokenize`: text → token ids with a model's (or a tokenizer file's) vocabulary.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use llamapack_runner::Tokenizer;
use serde_json::json;

/// Show how a text is tokenized: ids and pieces.
///
/// SOURCE is a model (.lpk or GGUF, told apart by their content), a SentencePiece
/// tokenizer.model or a Hugging Face tokenizer.json (read with the tokenizer_config.json and
/// config.json beside it, which name BOS). SentencePiece vocabularies give exactly
/// sentencepiece's ids; GPT-2 byte-level BPE vocabularies give Hugging Face tokenizers' /
/// llama.cpp's ids. --bos prepends BOS (an error when the vocabulary names none).
///
/// Examples:
///   llamapack tokenize tokenizer.model --text "Hello world" --json
///   llamapack tokenize smollm2.gguf -f prompt.txt --bos
///   echo "Hello" | llamapack tokenize tokenizer.json -f -
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["text", "file"])))]
pub struct Args {
    /// A .lpk or .gguf model, a tokenizer.model or a tokenizer.json.
    pub source: PathBuf,
    /// The text.
    #[arg(long)]
    pub text: Option<String>,
    /// Read the text from FILE (`-`: standard input).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Prepend BOS (as a prompt is).
    #[arg(long)]
    pub bos: bool,
    /// Print {"ids": [...], "pieces": [...]} as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let text = match (&args.text, &args.file) {
        (Some(t), None) => t.clone(),
        (None, Some(f)) => super::read_text(f)?,
        _ => super::usage!("give exactly one of --text TEXT or --file FILE"),
    };
    let label = args.source.display().to_string();
    let is_json = args
        .source
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let data = if super::is_model_file(&args.source) {
        llamapack_convert::open_model(&args.source)?
            .tokenizer()
            .clone()
    } else if is_json {
        llamapack_convert::hf_tokenizer::parse_file(&args.source)?
    } else {
        let bytes = std::fs::read(&args.source).with_context(|| format!("reading {label}"))?;
        llamapack_convert::sentencepiece::parse(&bytes, &label)?.data
    };
    let tok = Tokenizer::from_data(&data)?;
    if args.bos && tok.bos_id().is_none() {
        anyhow::bail!(
            "{label}: the vocabulary names no BOS token, so --bos cannot add one{}",
            if is_json {
                " (tokenizer_config.json, which names it, is not beside tokenizer.json)"
            } else {
                ""
            }
        );
    }
    let ids = tok.encode(&text, args.bos)?;
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
