//! `llamapack eval`: how far a candidate's predictions are from a reference's, on real text.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, ensure};
use llamapack_format::output::Outputs;
use llamapack_runner::Tokenizer;
use llamapack_runner::accuracy::Summary;
use serde_json::json;

use super::scoring::{self, Reference};
use crate::ui;

/// Measure a quantized model against its fp16 reference: KL divergence, top-1, perplexity.
///
/// The text is tokenized with the candidate's tokenizer (BOS first), cut into windows of
/// --ctx tokens whose first token is replaced by BOS, and only the second half of each window
/// is scored — exactly as `llama-perplexity --kl-divergence` does, so the figures compare
/// directly with llama.cpp's. Everything is computed in f64 from full-precision log-softmax.
///
/// CANDIDATE is a .lpk or a llama-architecture GGUF (read in place). REFERENCE is a model (.lpk
/// or GGUF; normally the f16/bf16 conversion of the same checkpoint; its logits are computed
/// here on the same tokens) or a .npy of float32/float16 logits with exactly one row per
/// position of every window ([windows × ctx, vocab], BOS first in each window): written by
/// `llamapack logits --eval-reference` (which records beside it, in X.npy.json, the --ctx, BOS
/// and tokens it was computed on, all checked here), or e.g. by PyTorch, given with --tokens.
///
/// Fewer than 11 scored tokens give no uncertainties (shown as n/a, null in --json).
///
/// Examples:
///   llamapack eval 7b-q4.lpk --reference 7b-f16.lpk --text wiki.test.raw --ctx 512
///   llamapack eval llama.cpp-q4_k_m.gguf --reference 7b-f16.lpk --text wiki.test.raw
///   llamapack logits 7b-f16.lpk --eval-reference --ctx 512 --text wiki.test.raw -o ref.npy
///   llamapack eval 7b-q4.lpk --reference ref.npy --text wiki.test.raw --ctx 512 --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The model to judge (.lpk or .gguf).
    pub candidate: PathBuf,
    /// Reference: a model (.lpk or .gguf) or a .npy logits file.
    #[arg(long)]
    pub reference: PathBuf,
    #[command(flatten)]
    pub data: scoring::DataArgs,
    /// Worker threads (default: one per physical core).
    #[arg(short = 't', long, value_parser = super::threads_parser())]
    pub threads: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Store the summary in the candidate's provenance (shown by `inspect`).
    #[arg(long)]
    pub store: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let threads = super::thread_count(args.threads)?;
    if args.store && llamapack_convert::gguf::is_gguf(&args.candidate) {
        super::usage!(
            "--store records the report in a .lpk's provenance, and {} is a GGUF file; \
             convert it first (llamapack convert {} -o model.lpk)",
            args.candidate.display(),
            args.candidate.display()
        );
    }
    let mut outputs = Outputs::new();
    outputs.updated("CANDIDATE", &args.candidate);
    outputs.input("--reference", &args.reference);
    args.data.declare(&mut outputs);
    if args.store {
        outputs.file("--store", &args.candidate);
    }
    outputs.check()?;
    let (summary, data) = {
        let cand_lpk = llamapack_convert::open_model(&args.candidate)?;
        let tok = Tokenizer::from_data(cand_lpk.tokenizer())?;
        let data = args.data.load(&tok)?;
        let (tokens, windows) = (&data.tokens, &data.windows);
        let vocab = cand_lpk.config().vocab_size as usize;
        let ref_lpk;
        let mut reference = if scoring::is_logits_file(&args.reference) {
            Reference::Logits(scoring::read_reference_logits(
                &args.reference,
                tokens,
                windows,
                vocab,
            )?)
        } else {
            ref_lpk = llamapack_convert::open_model(&args.reference)?;
            ensure!(
                ref_lpk.config().vocab_size as usize == vocab,
                "the reference has a vocabulary of {} but the candidate {vocab}",
                ref_lpk.config().vocab_size
            );
            let (m, s) = scoring::model_for(&ref_lpk, threads, args.data.ctx)?;
            Reference::Model(Box::new((m, s)))
        };
        let mut cands = vec![scoring::model_for(&cand_lpk, threads, args.data.ctx)?];
        let bar = ui::count_bar(windows.n as u64, "eval");
        let accs = scoring::score_all(
            &mut reference,
            &mut cands,
            tokens,
            windows,
            vocab,
            |done, accs| {
                let (ppl, kld) = accs[0].running();
                bar.set_position(done as u64);
                bar.set_message(format!("PPL {ppl:.3} KLD {kld:.5}"));
            },
        )?;
        bar.finish_and_clear();
        (accs[0].summary(), data)
    };
    let windows = &data.windows;
    scoring::warn_if_too_few(&summary, windows);
    if args.store {
        let record = json!({
            "reference": file_name(&args.reference),
            "data": file_name(&data.path),
            "data_sha256": data.sha256,
            "ctx": windows.ctx,
            "windows": windows.n,
            "summary": summary,
        });
        llamapack_format::edit::rewrite_metadata(&args.candidate, |m| {
            m.provenance.accuracy = Some(record);
        })
        .with_context(|| format!("storing the report in {}", args.candidate.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut doc = serde_json::to_value(&summary)?;
        doc["ctx"] = json!(windows.ctx);
        doc["windows"] = json!(windows.n);
        doc["text_tokens"] = json!(data.tokens.len());
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        writeln!(
            out,
            "{} vs {}: {} windows of {} tokens, {} tokens scored",
            args.candidate.display(),
            args.reference.display(),
            windows.n,
            windows.ctx,
            summary.n_tokens
        )?;
        print_summary(&mut out, &summary)?;
        if args.store {
            writeln!(
                out,
                "\nstored in the provenance of {}",
                args.candidate.display()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `v` in `width.prec` format, or `n/a` right-aligned in the same width when it is NaN.
fn num(v: f64, width: usize, prec: usize) -> String {
    if v.is_nan() {
        format!("{:>width$}", "n/a")
    } else {
        format!("{v:width$.prec$}")
    }
}

/// The report in llama.cpp's layout; figures that cannot be computed (uncertainties from too
/// few tokens) read `n/a`.
pub fn print_summary(out: &mut impl Write, s: &Summary) -> std::io::Result<()> {
    let pm = |v: f64, u: f64| format!("{} ± {}", num(v, 10, 6), num(u, 10, 6));
    let pct = |v: f64, u: f64| format!("{} ± {} %", num(100.0 * v, 6, 3), num(100.0 * u, 5, 3));
    writeln!(out, "\n====== Perplexity statistics ======")?;
    writeln!(
        out,
        "Mean PPL(Q)                   : {}",
        pm(s.ppl, s.ppl_unc)
    )?;
    writeln!(
        out,
        "Mean PPL(base)                : {}",
        pm(s.ppl_base, s.ppl_base_unc)
    )?;
    let cor = s.ln_ppl_correlation;
    writeln!(
        out,
        "Cor(ln(PPL(Q)), ln(PPL(base))): {}{}",
        num(100.0 * cor, 6, 2),
        if cor.is_nan() { "" } else { "%" }
    )?;
    writeln!(
        out,
        "Mean ln(PPL(Q)/PPL(base))     : {}",
        pm(s.ln_ppl_ratio, s.ln_ppl_ratio_unc)
    )?;
    writeln!(
        out,
        "Mean PPL(Q)/PPL(base)         : {}",
        pm(s.ppl_ratio, s.ppl_ratio_unc)
    )?;
    writeln!(
        out,
        "Mean PPL(Q)-PPL(base)         : {}",
        pm(s.ppl_diff, s.ppl_diff_unc)
    )?;
    writeln!(out, "\n====== KL divergence statistics ======")?;
    writeln!(out, "Mean    KLD: {}", pm(s.kld_mean, s.kld_unc))?;
    for (label, v) in [
        ("Maximum", s.kld_max),
        ("99.9%  ", s.kld_p999),
        ("99.0%  ", s.kld_p99),
        ("95.0%  ", s.kld_p95),
        ("90.0%  ", s.kld_p90),
        ("Median ", s.kld_median),
        ("10.0%  ", s.kld_p10),
        (" 5.0%  ", s.kld_p5),
        (" 1.0%  ", s.kld_p1),
        (" 0.1%  ", s.kld_p01),
        ("Minimum", s.kld_min),
    ] {
        writeln!(out, "{label} KLD: {v:10.6}")?;
    }
    writeln!(out, "\n====== Token probability statistics ======")?;
    writeln!(out, "Mean    Δp: {}", pct(s.dp_mean, s.dp_unc))?;
    for (label, v) in [
        ("Maximum", s.dp_max),
        ("99.9%  ", s.dp_p999),
        ("99.0%  ", s.dp_p99),
        ("95.0%  ", s.dp_p95),
        ("90.0%  ", s.dp_p90),
        ("75.0%  ", s.dp_p75),
        ("Median ", s.dp_median),
        ("25.0%  ", s.dp_p25),
        ("10.0%  ", s.dp_p10),
        (" 5.0%  ", s.dp_p5),
        (" 1.0%  ", s.dp_p1),
        (" 0.1%  ", s.dp_p01),
        ("Minimum", s.dp_min),
    ] {
        writeln!(out, "{label} Δp: {:6.3}%", 100.0 * v)?;
    }
    writeln!(out, "RMS Δp    : {}", pct(s.rms_dp, s.rms_dp_unc))?;
    writeln!(out, "Same top p: {}", pct(s.top1_agreement, s.top1_unc))?;
    Ok(())
}
