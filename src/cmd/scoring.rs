//! What `eval`, `compare` and `demo` share: loading evaluation tokens, the reference (a model
//! or a logits file), and scoring candidates window by window.

use std::path::Path;

use anyhow::{Context, bail, ensure};
use llamapack_format::Lpk;
use llamapack_runner::accuracy::{Accumulator, Windows};
use llamapack_runner::{Model, State, Tokenizer, npy};

/// What to run on, shared by `eval`, `compare` and `imatrix`.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Text file, tokenized with the model's tokenizer.
    #[arg(long, conflicts_with = "tokens")]
    pub text: Option<std::path::PathBuf>,
    /// Token ids instead of text: a JSON array or a .npy of int32/int64.
    #[arg(long)]
    pub tokens: Option<std::path::PathBuf>,
    /// Tokens per window (chunk).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Use at most this many windows (0 = all).
    #[arg(long, default_value_t = 0)]
    pub chunks: usize,
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
    pub fn windows(&self, tok: &Tokenizer) -> anyhow::Result<(Vec<u32>, Windows)> {
        let tokens = load_tokens(tok, self.text.as_deref(), self.tokens.as_deref())?;
        let bos = if tok.data().add_bos {
            tok.bos_id()
        } else {
            None
        };
        let windows = Windows::new(tokens.len(), self.ctx, self.chunks, bos);
        ensure!(
            windows.n > 0,
            "{} tokens are fewer than one window of --ctx {}; use a longer text or a smaller --ctx",
            tokens.len(),
            self.ctx
        );
        Ok((tokens, windows))
    }
}

/// Token ids to evaluate on: the text tokenized with the model's tokenizer (BOS first when
/// the model adds one, as `llama-perplexity` does), or ids from a JSON array / `.npy` file.
pub fn load_tokens(
    tok: &Tokenizer,
    text: Option<&Path>,
    tokens: Option<&Path>,
) -> anyhow::Result<Vec<u32>> {
    match (text, tokens) {
        (Some(t), None) => {
            let s =
                std::fs::read_to_string(t).with_context(|| format!("reading {}", t.display()))?;
            Ok(tok.encode(&s, tok.data().add_bos)?)
        }
        (None, Some(p)) => read_token_file(p, tok.vocab_size()),
        _ => bail!("give exactly one of --text FILE or --tokens FILE"),
    }
}

/// Token ids from a JSON array or a `.npy` of int32/int64, each checked against `vocab`.
pub fn read_token_file(path: &Path, vocab: usize) -> anyhow::Result<Vec<u32>> {
    let ids: Vec<i64> = if path.extension().is_some_and(|e| e == "npy") {
        npy::read(path)?
            .to_i64()
            .with_context(|| format!("{}: token ids must be integers", path.display()))?
    } else {
        let s =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&s)
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

/// The reference logits of each window.
pub enum Reference<'a> {
    /// Computed by the runner on a reference model.
    Model(Box<(Model<'a>, State)>),
    /// Read from a `.npy` file of `[windows × ctx, vocab]` logits.
    Logits(Vec<f32>),
}

/// Opens `path` as a reference: a `.npy` logits file, or anything else as a `.lpk` model whose
/// borrowed data lives in `lpk` (the caller keeps it alive).
pub fn is_logits_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "npy")
}

/// Reads a `.npy` reference and checks it covers `windows`.
pub fn read_reference_logits(
    path: &Path,
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
    let need = windows.n * windows.ctx;
    ensure!(
        arr.shape[0] >= need,
        "{}: {} rows of logits, but {} windows of {} tokens need {need} (one row per position of each window)",
        path.display(),
        arr.shape[0],
        windows.n,
        windows.ctx
    );
    let mut v = arr.to_f32()?;
    v.truncate(need * vocab);
    Ok(v)
}

/// Loads a model for evaluation with a state sized for one window.
pub fn model_for(lpk: &Lpk, threads: usize, ctx: usize) -> anyhow::Result<(Model<'_>, State)> {
    let model = Model::load_with_threads(lpk, threads)
        .with_context(|| format!("loading {}", lpk.file_name()))?;
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
    /// The `[ctx, vocab]` reference logits of window `i`.
    pub fn window_logits(
        &mut self,
        windows: &Windows,
        i: usize,
        window: &[u32],
        vocab: usize,
    ) -> anyhow::Result<Vec<f32>> {
        match self {
            Reference::Model(ms) => {
                let (m, s) = &mut **ms;
                Ok(m.logits_all(s, window, 0)?)
            }
            Reference::Logits(all) => {
                let row = windows.ctx * vocab;
                Ok(all[i * row..(i + 1) * row].to_vec())
            }
        }
    }
}

/// Scores every candidate on every window; `progress(done_windows, accumulators)` after each.
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
            let cand = model.logits_all(state, &window, 0)?;
            windows.score(acc, &window, &base, &cand, vocab);
        }
        progress(i + 1, &accs);
    }
    Ok(accs)
}
