//! `llamapack logits`: every position's logits, teacher-forced, as a .npy file — of one
//! sequence, or of `eval`'s windows (a reference for `eval --reference`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use llamapack_format::Lpk;
use llamapack_format::output::{OutputFile, Outputs};
use llamapack_runner::accuracy::Windows;
use llamapack_runner::{Model, State, Tokenizer, npy};

use super::reference::{self, Record};

/// Write the logits of every position of a token sequence to a .npy file.
///
/// The output is float32 [n_tokens, vocab]: row i holds the logits after reading tokens 0..=i
/// (teacher forcing), the same layout PyTorch's `model(ids).logits[0]` has. --prompt and
/// --file are tokenized with the model's tokenizer (BOS first); --tokens takes a JSON array or
/// a .npy of int32/int64 ids as they are.
///
/// With --eval-reference the tokens are cut into `eval`'s windows instead: --ctx tokens each,
/// BOS written over the first token of each, at most --chunks of them; the output has one row
/// per position of every window ([windows × ctx, vocab]), which is what `eval --reference`
/// takes. Either way what produced the file (the model, the layout, --ctx, BOS, a sha256 of the
/// token ids) is recorded beside it in OUT.json, and `eval` refuses a reference that does not
/// match its own windows.
///
/// MODEL is a .lpk or a llama-architecture GGUF (read in place).
///
/// Examples:
///   llamapack logits 7b.lpk --prompt "Hello world" -o hello.npy
///   llamapack logits 7b-f16.lpk --eval-reference --ctx 512 --text wiki.test.raw -o ref.npy
///   llamapack eval 7b-q4.lpk --reference ref.npy --ctx 512 --text wiki.test.raw
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "file", "tokens"])))]
pub struct Args {
    /// The model (.lpk or .gguf).
    pub model: PathBuf,
    /// Text to tokenize and run.
    #[arg(long, short)]
    pub prompt: Option<String>,
    /// Read the text from FILE (`-`: standard input).
    #[arg(long, short = 'f', visible_alias = "text", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Token ids: a JSON array or a .npy of int32/int64 (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Cut the tokens into `eval`'s windows and write a reference for `eval --reference`.
    #[arg(long)]
    pub eval_reference: bool,
    /// Tokens per window (with --eval-reference).
    #[arg(long, default_value_t = 512, requires = "eval_reference")]
    pub ctx: usize,
    /// Use at most this many windows (with --eval-reference; 0 = all).
    #[arg(long, default_value_t = 0, requires = "eval_reference")]
    pub chunks: usize,
    /// Output .npy file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Worker threads (default: one per physical core).
    #[arg(short = 't', long, value_parser = super::threads_parser())]
    pub threads: Option<usize>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let threads = super::thread_count(args.threads)?;
    Outputs::new()
        .input("MODEL", &args.model)
        .inputs("--tokens", &args.tokens)
        .file("-o", &args.output)
        .check()?;
    let lpk = llamapack_convert::open_model(&args.model)?;
    let model = super::load_model(&lpk, threads)?;
    let vocab = model.config.vocab_size;
    let tok = Tokenizer::from_data(lpk.tokenizer())?;
    let ids = match (&args.prompt, &args.file, &args.tokens) {
        (Some(p), None, None) => tok.encode(p, tok.data().add_bos)?,
        (None, Some(f), None) => tok.encode(&super::read_text(f)?, tok.data().add_bos)?,
        (None, None, Some(f)) => super::scoring::read_token_file(f, vocab)?,
        _ => super::usage!("give exactly one of --prompt TEXT, --file FILE or --tokens FILE"),
    };
    if ids.is_empty() {
        anyhow::bail!("no tokens to run");
    }
    let name = file_name(&args.model);
    let mut out = std::io::stdout().lock();
    if args.eval_reference {
        let windows = super::scoring::cut(&ids, &tok, args.ctx, args.chunks)?;
        let record = reference::for_windows(&name, &ids, &windows, vocab);
        write_windows(&lpk, &model, &ids, &windows, &args.output, record)?;
        writeln!(
            out,
            "{} windows of {} tokens: {} × {vocab} logits → {} (a reference for eval --ctx {})",
            windows.n,
            windows.ctx,
            windows.n * windows.ctx,
            args.output.display(),
            windows.ctx
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if ids.len() > model.config.seq_len {
        anyhow::bail!(
            "{} tokens exceed the context length {} of {}",
            ids.len(),
            model.config.seq_len,
            args.model.display()
        );
    }
    let mut state = State::with_context(&model.config, ids.len().min(512), ids.len());
    let logits = model.logits_all(&mut state, &ids, 0)?;
    let record = reference::for_sequence(&name, &ids, vocab);
    write_npy(&args.output, &[ids.len(), vocab], record, |w| {
        write_rows(w, &logits)
    })?;
    writeln!(
        out,
        "{} × {vocab} logits → {}",
        ids.len(),
        args.output.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Computes the logits of every window and streams them into `out`, one window at a time.
fn write_windows(
    lpk: &Lpk,
    model: &Model<'_>,
    ids: &[u32],
    windows: &Windows,
    out: &Path,
    record: Record,
) -> anyhow::Result<()> {
    let limit = model.config.seq_len;
    if windows.ctx > limit {
        super::usage!(
            "--ctx {} is longer than the context length {limit} of {}",
            windows.ctx,
            lpk.file_name()
        );
    }
    let mut state = State::with_context(&model.config, windows.ctx, windows.ctx);
    let vocab = model.config.vocab_size;
    let bar = crate::ui::count_bar(windows.n as u64, "logits");
    write_npy(out, &[windows.n * windows.ctx, vocab], record, |w| {
        for i in 0..windows.n {
            let logits = model.logits_all(&mut state, &windows.window(ids, i), 0)?;
            write_rows(w, &logits)?;
            bar.set_position(i as u64 + 1);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(())
}

fn write_rows(w: &mut OutputFile, logits: &[f32]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = logits.iter().flat_map(|x| x.to_le_bytes()).collect();
    w.write_all(&bytes)?;
    Ok(())
}

/// Writes a float32 `.npy` of `shape` whose data `rows` streams, through a hidden temp file
/// renamed into place, then its `record` beside it (a stale record is removed first, so that it
/// never describes the new file).
fn write_npy(
    path: &Path,
    shape: &[usize],
    mut record: Record,
    rows: impl FnOnce(&mut OutputFile) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut f = OutputFile::create(path)?;
    f.write_all(&npy::header_f32(shape)?)?;
    rows(&mut f)?;
    record.npy_bytes = f.position();
    // the record of the file being replaced must never describe the new one
    reference::remove(path)?;
    f.finish()?;
    reference::write(path, &record)
}
