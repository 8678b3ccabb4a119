//! What `eval`, `compare` and `demo` share: loading evaluation tokens, the reference (a model
//! or a logits file), and scoring candidates window by window.

use std::path::Path;

use anyhow::{Context, ensure};
use llamapack_format::Lpk;
use llamapack_runner::accuracy::{Accumulator, Windows};
use llamapack_runner::{Model, State, Tokenizer, npy};

/// What to run on, shared by `eval`, `compare` and `imatrix`.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Text file, tokenized with the model's tokenizer (`-`: standard input).
    #[arg(long, conflicts_with = "tokens")]
    pub text: Option<std::path::PathBuf>,
    /// Token ids instead of text: a JSON array or a .npy of int32/int64 (`-`: standard input).
    #[arg(long)]
    pub tokens: Option<std::path::PathBuf>,
    /// Tokens per window (chunk).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Use at most this many windows (0 = all).
    #[arg(long, default_value_t = 0)]
    pub chunks: usize,
}

/// The evaluation data: its tokens, their windows, and the file they came from.
#[derive(Debug)]
pub struct Data {
    /// Every token of the text (BOS first when the model adds one).
    pub tokens: Vec<u32>,
    /// The windows of `--ctx`.
    pub windows: Windows,
    /// The file given (`-` for standard input).
    pub path: std::path::PathBuf,
    /// sha256 of its bytes.
    pub sha256: String,
}

impl DataArgs {
    /// Declares the data files as inputs of a command.
    pub fn declare(&self, outputs: &mut llamapack_format::output::Outputs) {
        outputs
            .inputs("--text", &self.text)
            .inputs("--tokens", &self.tokens);
    }

    /// The evaluation tokens (see [`load_tokens`]) and their windows of `--ctx` (each window
    /// starts with BOS when the model adds one); at least one window, or an error saying why.
    pub fn load(&self, tok: &Tokenizer) -> anyhow::Result<Data> {
        let (tokens, path, sha256) =
            load_tokens(tok, self.text.as_deref(), self.tokens.as_deref())?;
        let windows = cut(&tokens, tok, self.ctx, self.chunks)?;
        Ok(Data {
            tokens,
            windows,
            path,
            sha256,
        })
    }

    /// [`DataArgs::load`] without the file's name and hash.
    pub fn windows(&self, tok: &Tokenizer) -> anyhow::Result<(Vec<u32>, Windows)> {
        let d = self.load(tok)?;
        Ok((d.tokens, d.windows))
    }
}

/// `tokens` cut into windows of `ctx` as `eval` does (at most `chunks`, 0 = all; BOS written
/// over the first token of each when the model adds one); at least one, or an error saying why.
pub fn cut(tokens: &[u32], tok: &Tokenizer, ctx: usize, chunks: usize) -> anyhow::Result<Windows> {
    if ctx < 4 {
        super::usage!("--ctx must be at least 4");
    }
    let bos = if tok.data().add_bos {
        tok.bos_id()
    } else {
        None
    };
    let windows = Windows::new(tokens.len(), ctx, chunks, bos);
    ensure!(
        windows.n > 0,
        "{} tokens are fewer than one window of --ctx {ctx}; use a longer text or a smaller --ctx",
        tokens.len(),
    );
    Ok(windows)
}

/// Token ids to evaluate on: the text tokenized with the model's tokenizer (BOS first when
/// the model adds one, as `llama-perplexity` does), or ids from a JSON array / `.npy` file;
/// with the path given and the sha256 of its bytes.
pub fn load_tokens(
    tok: &Tokenizer,
    text: Option<&Path>,
    tokens: Option<&Path>,
) -> anyhow::Result<(Vec<u32>, std::path::PathBuf, String)> {
    match (text, tokens) {
        (Some(t), None) => {
            let s = super::read_text(t)?;
            let sha = super::sha256_hex(s.as_bytes());
            Ok((tok.encode(&s, tok.data().add_bos)?, t.to_path_buf(), sha))
        }
        (None, Some(p)) => {
            let bytes = super::read_bytes(p)?;
            let sha = super::sha256_hex(&bytes);
            Ok((
                parse_token_ids(&bytes, p, tok.vocab_size())?,
                p.to_path_buf(),
                sha,
            ))
        }
        _ => super::usage!("give exactly one of --text FILE or --tokens FILE"),
    }
}

/// Token ids from a JSON array or a `.npy` of int32/int64 (`-`: standard input), each checked
/// against `vocab`.
pub fn read_token_file(path: &Path, vocab: usize) -> anyhow::Result<Vec<u32>> {
    parse_token_ids(&super::read_bytes(path)?, path, vocab)
}

/// Token ids from the bytes of a `.npy` of int32/int64 (by its magic) or a JSON array.
fn parse_token_ids(bytes: &[u8], path: &Path, vocab: usize) -> anyhow::Result<Vec<u32>> {
    let ids: Vec<i64> = if bytes.starts_with(NPY_MAGIC) {
        npy::parse(bytes, &path.display().to_string())?
            .to_i64()
            .with_context(|| format!("{}: token ids must be integers", path.display()))?
    } else {
        serde_json::from_slice(bytes)
            .with_context(|| format!("{}: expected a JSON array of token ids", path.display()))?
    };
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            u32::try_from(id)
                .ok()
                .filter(|&v| (v as usize) < vocab)
                .with_context(|| {
                    format!(
                        "{}: token {i} is {id}, outside the vocabulary of {vocab}",
                        path.display()
                    )
                })
        })
        .collect()
}

/// The first bytes of every `.npy` file.
const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// The reference logits of each window.
pub enum Reference<'a> {
    /// Computed by the runner on a reference model.
    Model(Box<(Model<'a>, State)>),
    /// Read from a `.npy` file of `[windows × ctx, vocab]` logits.
    Logits(Vec<f32>),
}

/// Whether `path` is a `.npy` file (by its content) rather than a model.
pub fn is_logits_file(path: &Path) -> bool {
    let mut magic = [0u8; 6];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == NPY_MAGIC
}

/// Reads a `.npy` reference and checks that it holds exactly the rows of `windows` over
/// `tokens` (and, when `logits` recorded how it was made, that it was made for them).
pub fn read_reference_logits(
    path: &Path,
    tokens: &[u32],
    windows: &Windows,
    vocab: usize,
) -> anyhow::Result<Vec<f32>> {
    let arr = npy::read(path)?;
    ensure!(
        arr.shape.len() == 2 && arr.shape[1] == vocab,
        "{}: reference logits have shape {:?}; expected [n_tokens, {vocab}]",
        path.display(),
        arr.shape
    );
    let recorded = super::reference::check(path, arr.shape[0], vocab, tokens, windows)?;
    if !recorded {
        eprintln!(
            "warning: {} has no record of what produced it ({}); its rows are taken as the windows              of --ctx {} with BOS first in each, as `logits --eval-reference` writes them",
            path.display(),
            super::reference::sidecar_path(path).display(),
            windows.ctx
        );
    }
    Ok(arr.to_f32()?)
}

/// Warns on stderr when too few tokens were scored for uncertainties (they read `n/a`).
pub fn warn_if_too_few(s: &llamapack_runner::accuracy::Summary, windows: &Windows) {
    if !s.has_uncertainties() {
        eprintln!(
            "warning: only {} tokens were scored ({} windows of {} tokens, the second half of each); \
             uncertainties and the correlation need at least {} and read n/a: use more text or a larger --ctx",
            s.n_tokens,
            windows.n,
            windows.ctx,
            llamapack_runner::accuracy::MIN_TOKENS_FOR_UNCERTAINTY
        );
    }
}

/// Loads a model for evaluation with a state sized for one window.
pub fn model_for(lpk: &Lpk, threads: usize, ctx: usize) -> anyhow::Result<(Model<'_>, State)> {
    let model = super::load_model(lpk, threads)?;
    let limit = model.config.seq_len;
    ensure!(
        ctx <= limit,
        "--ctx {ctx} is longer than the context length {limit} of {}",
        lpk.file_name()
    );
    let state = State::with_context(&model.config, ctx, ctx);
    Ok((model, state))
}

impl Reference<'_> {
    /// The reference logits of window `i` at its scored positions: `[ctx - first, vocab]`
    /// (see [`Windows::score`]), borrowed from the reference model's state or the file's rows.
    pub fn window_logits(
        &mut self,
        windows: &Windows,
        i: usize,
        window: &[u32],
        vocab: usize,
    ) -> anyhow::Result<&[f32]> {
        match self {
            Reference::Model(ms) => {
                let (m, s) = &mut **ms;
                Ok(m.forward_batch(s, window, 0, windows.scored_logits())?)
            }
            Reference::Logits(all) => {
                let row = windows.ctx * vocab;
                Ok(&all[i * row + windows.first() * vocab..(i + 1) * row])
            }
        }
    }
}

/// Scores every candidate on every window; `progress(done_windows, accumulators)` after each.
/// Each model computes only the logits of the scored positions, in its own state (a window is
/// one batch: the states are sized for `ctx` tokens), and nothing is copied.
pub fn score_all(
    reference: &mut Reference<'_>,
    candidates: &mut [(Model<'_>, State)],
    tokens: &[u32],
    windows: &Windows,
    vocab: usize,
    mut progress: impl FnMut(usize, &[Accumulator]),
) -> anyhow::Result<Vec<Accumulator>> {
    let mut accs = vec![Accumulator::default(); candidates.len()];
    for i in 0..windows.n {
        let window = windows.window(tokens, i);
        let base = reference.window_logits(windows, i, &window, vocab)?;
        for ((model, state), acc) in candidates.iter_mut().zip(&mut accs) {
            let cand = model.forward_batch(state, &window, 0, windows.scored_logits())?;
            model.install(|| windows.score(acc, &window, base, cand, vocab));
        }
        progress(i + 1, &accs);
    }
    Ok(accs)
}
