//! `llamapack bench`: prompt-processing and generation speed, like llama.cpp's llama-bench.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, ensure};
use llamapack_format::Lpk;
use llamapack_runner::{Logits, Model, State};
use serde_json::json;

/// Measure tokens per second: pp (a prompt of -p tokens processed as one batch) and tg (-n
/// tokens generated one at a time), median of --reps runs, as llama.cpp's llama-bench does.
///
/// Example:
///   llamapack bench 7b-q4.lpk -p 512 -n 128 --threads 8 --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The model (.lpk).
    pub model: PathBuf,
    /// Prompt tokens processed as one batch.
    #[arg(short = 'p', long, default_value_t = 64)]
    pub prompt_tokens: usize,
    /// Tokens generated one at a time.
    #[arg(short = 'n', long, default_value_t = 32)]
    pub gen_tokens: usize,
    /// Worker threads (default: one per physical core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Print {"pp_tok_s", "tg_tok_s", "threads", "model_bytes", "dtype_mix", ...} as JSON.
    #[arg(long)]
    pub json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    ensure!(args.reps > 0, "--reps must be at least 1");
    ensure!(
        args.prompt_tokens > 0 || args.gen_tokens > 0,
        "nothing to measure: -p and -n are both 0"
    );
    let threads = super::thread_count(args.threads)?;
    let lpk = Lpk::open(&args.model)?;
    let model = Model::load_with_threads(&lpk, threads)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let c = &model.config;
    ensure!(
        args.prompt_tokens.max(args.gen_tokens) <= c.seq_len,
        "-p/-n exceed the context length {}",
        c.seq_len
    );
    // Deterministic pseudo-random ids, like llama-bench's random tokens.
    let vocab = c.vocab_size as u64;
    let ids: Vec<u32> = (0..args.prompt_tokens.max(args.gen_tokens) as u64)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ 0x9e37) % vocab) as u32)
        .collect();
    let mut state = State::with_context(
        &model.config,
        args.prompt_tokens.max(1),
        args.prompt_tokens.max(args.gen_tokens),
    );
    // Warm-up: page the weights in, spin the pool up.
    model.forward_batch(
        &mut state,
        &ids[..args.prompt_tokens.clamp(1, 8)],
        0,
        Logits::Last,
    )?;
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for _ in 0..args.reps {
        if args.prompt_tokens > 0 {
            let t = Instant::now();
            model.forward_batch(&mut state, &ids[..args.prompt_tokens], 0, Logits::Last)?;
            pp.push(args.prompt_tokens as f64 / t.elapsed().as_secs_f64());
        }
        if args.gen_tokens > 0 {
            let t = Instant::now();
            for (pos, &id) in ids[..args.gen_tokens].iter().enumerate() {
                model.forward(&mut state, id, pos)?;
            }
            tg.push(args.gen_tokens as f64 / t.elapsed().as_secs_f64());
        }
    }
    let (_, mix) = super::compare::size_and_mix(&lpk);
    let pp_tok_s = (!pp.is_empty()).then(|| median(pp));
    let tg_tok_s = (!tg.is_empty()).then(|| median(tg));
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = json!({
            "model": args.model.display().to_string(),
            "pp_tok_s": pp_tok_s,
            "tg_tok_s": tg_tok_s,
            "prompt_tokens": args.prompt_tokens,
            "gen_tokens": args.gen_tokens,
            "reps": args.reps,
            "threads": threads,
            "simd": format!("{:?}", model.simd_level()),
            "model_bytes": lpk.file_len(),
            "dtype_mix": mix,
        });
        writeln!(out, "{doc}")?;
    } else {
        writeln!(
            out,
            "{} · {} · {threads} threads · simd {:?} · {mix}",
            args.model.display(),
            crate::ui::human_bytes(lpk.file_len()),
            model.simd_level()
        )?;
        if let Some(v) = pp_tok_s {
            writeln!(out, "  pp{:<5} {v:10.2} tok/s", args.prompt_tokens)?;
        }
        if let Some(v) = tg_tok_s {
            writeln!(out, "  tg{:<5} {v:10.2} tok/s", args.gen_tokens)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
