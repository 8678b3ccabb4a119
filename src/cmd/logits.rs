//! `llamapack logits`: every position's logits, teacher-forced, as a .npy file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use llamapack_format::Lpk;
use llamapack_format::output::Outputs;
use llamapack_runner::{Model, State, Tokenizer, npy};

/// Write the logits of every position of a token sequence to a .npy file.
///
/// The output is float32 [n_tokens, vocab]: row i holds the logits after reading tokens 0..=i
/// (teacher forcing), the same layout PyTorch's `model(ids).logits[0]` has. --prompt is
/// tokenized with the model's tokenizer (BOS first); --tokens takes a JSON array or a .npy of
/// int32/int64 ids as they are.
///
/// Example:
///   llamapack logits 7b.lpk --prompt "Hello world" -o hello.npy
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The model (.lpk).
    pub model: PathBuf,
    /// Text to tokenize and run.
    #[arg(long, conflicts_with = "tokens")]
    pub prompt: Option<String>,
    /// Token ids: a JSON array or a .npy of int32/int64.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Output .npy file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Worker threads (default: one per physical core).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let threads = super::thread_count(args.threads)?;
    Outputs::new()
        .input("MODEL", &args.model)
        .inputs("--tokens", &args.tokens)
        .file("-o", &args.output)
        .check()?;
    let lpk = Lpk::open(&args.model)?;
    let model = Model::load_with_threads(&lpk, threads)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let vocab = model.config.vocab_size;
    let ids = match (&args.prompt, &args.tokens) {
        (Some(p), None) => {
            let tok = Tokenizer::from_data(lpk.tokenizer())?;
            tok.encode(p, tok.data().add_bos)?
        }
        (None, Some(f)) => super::scoring::read_token_file(f, vocab)?,
        _ => bail!("give exactly one of --prompt TEXT or --tokens FILE"),
    };
    if ids.is_empty() {
        bail!("no tokens to run");
    }
    if ids.len() > model.config.seq_len {
        bail!(
            "{} tokens exceed the context length {} of {}",
            ids.len(),
            model.config.seq_len,
            args.model.display()
        );
    }
    let mut state = State::with_context(&model.config, ids.len().min(512), ids.len());
    let logits = model.logits_all(&mut state, &ids, 0)?;
    npy::write_f32(&args.output, &[ids.len(), vocab], &logits)?;
    writeln!(
        std::io::stdout().lock(),
        "{} × {vocab} logits → {}",
        ids.len(),
        args.output.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
