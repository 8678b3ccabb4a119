//! `llamapack bench`: prompt-processing and generation speed, like llama.cpp's llama-bench.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::ensure;
use llamapack_runner::{Logits, State};
use serde_json::json;

/// Measure tokens per second: pp (a prompt of -p tokens processed as one batch) and tg (-n
/// tokens generated one at a time), -r runs of each after a warm-up, reported as mean ± sample
/// standard deviation, as llama.cpp's llama-bench does.
///
/// MODEL is a .lpk or a llama-architecture GGUF (read in place).
///
/// Example:
///   llamapack bench 7b-q4.lpk -p 512 -n 128 -t 8 -r 5 --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The model (.lpk or .gguf).
    pub model: PathBuf,
    /// Prompt tokens processed as one batch.
    #[arg(short = 'p', long, default_value_t = 64)]
    pub prompt_tokens: usize,
    /// Tokens generated one at a time.
    #[arg(short = 'n', long, default_value_t = 32)]
    pub gen_tokens: usize,
    /// Worker threads (default: one per physical core).
    #[arg(short = 't', long, value_parser = super::threads_parser())]
    pub threads: Option<usize>,
    /// Runs of each test; their mean ± standard deviation is reported.
    #[arg(short = 'r', long = "repetitions", visible_alias = "reps", default_value_t = 5,
          value_parser = super::at_least_one)]
    pub reps: usize,
    /// Print {"pp_tok_s", "pp_tok_s_stddev", "tg_tok_s", "tg_tok_s_stddev", "pp_samples",
    /// "tg_samples", "threads", "model_bytes", "dtype_mix", ...} as JSON (tok/s: the means).
    #[arg(long)]
    pub json: bool,
}

/// Mean and sample standard deviation (0 for one sample), as llama-bench reports them.
pub fn mean_stddev(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.prompt_tokens == 0 && args.gen_tokens == 0 {
        super::usage!("nothing to measure: -p and -n are both 0");
    }
    let threads = super::thread_count(args.threads)?;
    let lpk = llamapack_convert::open_model(&args.model)?;
    let model = super::load_model(&lpk, threads)?;
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
    let pp_stat = (!pp.is_empty()).then(|| mean_stddev(&pp));
    let tg_stat = (!tg.is_empty()).then(|| mean_stddev(&tg));
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = json!({
            "model": args.model.display().to_string(),
            "pp_tok_s": pp_stat.map(|s| s.0),
            "pp_tok_s_stddev": pp_stat.map(|s| s.1),
            "tg_tok_s": tg_stat.map(|s| s.0),
            "tg_tok_s_stddev": tg_stat.map(|s| s.1),
            "pp_samples": pp,
            "tg_samples": tg,
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
        writeln!(out, "  {:<8} {:>22}", "test", "t/s")?;
        for (name, stat) in [
            (format!("pp{}", args.prompt_tokens), pp_stat),
            (format!("tg{}", args.gen_tokens), tg_stat),
        ] {
            if let Some((mean, sd)) = stat {
                writeln!(out, "  {name:<8} {:>22}", format!("{mean:.2} ± {sd:.2}"))?;
            }
        }
        writeln!(
            out,
            "  ({} runs each, mean ± standard deviation)",
            args.reps
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
