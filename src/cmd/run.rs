//! `llamapack run`: generate text, streaming it as it comes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use llamapack_runner::{Sampler, State, Tokenizer, chat_prompt};

/// Generate text with a model, streaming tokens as they are produced.
///
/// --temperature 0 is greedy decoding. With --chat the prompt is wrapped in Llama 2 Chat's
/// template (<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{prompt} [/INST]), or in ChatML
/// (<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n) when the model's stored chat
/// template is ChatML (e.g. SmolLM2). Generation stops at end-of-sequence (or <|im_end|>) or
/// after -n tokens; the prompt plus -n must fit the context length.
///
/// MODEL is a .lpk or a llama-architecture GGUF (read in place, not converted).
///
/// Examples:
///   llamapack run 7b-q4.lpk --prompt "The capital of France is" -n 32 --temperature 0
///   llamapack run 7b-chat-q4.lpk --chat --system "Answer briefly." --prompt "Why is the sky blue?"
///   llamapack run smollm2-q4_k_m.gguf -f prompt.txt
///   echo "Once upon a time" | llamapack run 7b-q4.lpk -f -
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "file"])))]
pub struct Args {
    /// The model (.lpk or .gguf).
    pub model: PathBuf,
    /// The prompt.
    #[arg(long, short)]
    pub prompt: Option<String>,
    /// Read the prompt from FILE (`-`: standard input).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 128)]
    pub n: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches this.
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Random seed (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads (default: one per physical core).
    #[arg(short = 't', long, value_parser = super::threads_parser())]
    pub threads: Option<usize>,
    /// Wrap the prompt in Llama 2 Chat's template.
    #[arg(long)]
    pub chat: bool,
    /// System prompt for --chat.
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Print speed figures to stderr at the end.
    #[arg(long)]
    pub stats: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        super::usage!("--temperature must be a number ≥ 0");
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        super::usage!("--top-p must be in (0, 1]");
    }
    let threads = super::thread_count(args.threads)?;
    let text = match (&args.prompt, &args.file) {
        (Some(p), None) => p.clone(),
        (None, Some(f)) => super::read_text(f)?,
        _ => super::usage!("give exactly one of --prompt TEXT or --file FILE"),
    };
    let lpk = llamapack_convert::open_model(&args.model)?;
    let model = super::load_model(&lpk, threads)?;
    let tok = Tokenizer::from_data(lpk.tokenizer())?;
    let chatml = tok
        .data()
        .chat_template
        .as_deref()
        .is_some_and(|t| t.contains("<|im_start|>"));
    let prompt = if args.chat && chatml {
        let system = args
            .system
            .as_ref()
            .map(|s| format!("<|im_start|>system\n{s}<|im_end|>\n"));
        let text = format!(
            "{}<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
            system.unwrap_or_default(),
            text
        );
        tok.encode(&text, tok.data().add_bos)?
    } else if args.chat {
        chat_prompt(&tok, args.system.as_deref(), &[text.as_str()])?
    } else {
        tok.encode(&text, tok.data().add_bos)?
    };
    let ctx = model.config.seq_len;
    if prompt.len() + args.n.saturating_sub(1) > ctx {
        bail!(
            "the prompt ({} tokens) plus -n {} exceeds the context length {ctx} of {}; lower -n or shorten the prompt",
            prompt.len(),
            args.n,
            args.model.display()
        );
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut sampler = if args.temperature == 0.0 {
        Sampler::greedy()
    } else {
        Sampler::new(model.config.vocab_size, args.temperature, args.top_p, seed)
    };
    let mut state = State::with_context(
        &model.config,
        prompt.len().clamp(1, 512),
        prompt.len() + args.n,
    );
    let eos = tok.eos_id();
    let im_end = if chatml {
        tok.data()
            .pieces
            .iter()
            .position(|p| p == "<|im_end|>")
            .map(|i| i as u32)
    } else {
        None
    };
    let mut decoder = tok.decoder();
    // Feed the prompt through the decoder first so the first generated piece keeps its space.
    let mut scratch = String::new();
    for &id in &prompt {
        decoder.push(id, &mut scratch)?;
    }
    let mut out = std::io::stdout().lock();
    if !args.chat {
        write!(out, "{text}")?;
        out.flush()?;
    }
    let mut io_err = None;
    let started = Instant::now();
    let mut first_token_at = None;
    let ids = model.generate(&mut state, &prompt, args.n, &mut sampler, |id| {
        first_token_at.get_or_insert_with(Instant::now);
        if Some(id) == eos || Some(id) == im_end {
            return false;
        }
        let mut piece = String::new();
        if decoder.push(id, &mut piece).is_err() {
            return false;
        }
        if let Err(e) = out.write_all(piece.as_bytes()).and_then(|()| out.flush()) {
            io_err = Some(e);
            return false;
        }
        true
    })?;
    if let Some(e) = io_err {
        return Err(e.into());
    }
    let mut rest = String::new();
    decoder.finish(&mut rest);
    writeln!(out, "{rest}")?;
    if args.stats {
        let total = started.elapsed().as_secs_f64();
        let prefill = first_token_at.map_or(total, |t| (t - started).as_secs_f64());
        let n_gen = ids.len().saturating_sub(1);
        eprintln!(
            "prompt {} tokens in {:.3} s ({:.1} tok/s) · generated {} tokens ({:.1} tok/s) · {threads} threads · simd {:?}",
            prompt.len(),
            prefill,
            prompt.len() as f64 / prefill.max(1e-9),
            ids.len(),
            n_gen as f64 / (total - prefill).max(1e-9),
            model.simd_level()
        );
    }
    Ok(ExitCode::SUCCESS)
}
