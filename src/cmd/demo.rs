//! `llamapack demo`: the whole pipeline on the bundled fixture model, in seconds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, ensure};
use llamapack_convert::{ConvertOptions, OutputDType};
use llamapack_format::Lpk;
use llamapack_quantize::recipe::Recipe;
use llamapack_runner::{Sampler, Tokenizer};

use super::compare;

/// Run convert → quantize → compare → generate on the bundled fixture model.
///
/// The fixture is a tiny Llama 2-architecture model trained with PyTorch on "Alice's
/// Adventures in Wonderland", shipped in Meta's format (two model-parallel bf16 shards). The
/// demo converts it to f16, quantizes it to q8_0, q4_0 and q4_k_m, measures each against the
/// f16 model on the book's text (KL divergence, top-1 agreement, perplexity ratio), writes a
/// chart, and lets each artifact continue a prompt greedily. A fourth artifact is made to a size
/// budget — q4_k_m's bytes, each tensor's type chosen by its measured effect on the KL divergence
/// (`quantize --target-size`), calibrated on the book's second half, which the comparison does
/// not score.
///
/// Needs no network and no Python; finishes in seconds.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Where to write the artifacts and the chart (default: a llamapack-demo folder in the
    /// system temp directory, replaced on each run).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The fixtures folder of a llamapack checkout.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))]
    pub fixtures: PathBuf,
    /// Tokens per evaluation window.
    #[arg(long, default_value_t = 128)]
    pub ctx: usize,
    /// Evaluation windows (0 = the whole text).
    #[arg(long, default_value_t = 32)]
    pub chunks: usize,
    /// Tokens each artifact generates after the prompt.
    #[arg(long, short = 'n', default_value_t = 24)]
    pub tokens: usize,
    /// Prompt for the generations.
    #[arg(long, default_value = "Alice was beginning to get very tired")]
    pub prompt: String,
    /// Worker threads (default: one per physical core).
    #[arg(short = 't', long, value_parser = super::threads_parser())]
    pub threads: Option<usize>,
}

const RECIPES: [&str; 3] = ["q8_0", "q4_0", "q4_k_m"];

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let threads = super::thread_count(args.threads)?;
    let meta = args.fixtures.join("tiny/meta");
    let text = args.fixtures.join("text/corpus.txt");
    ensure!(
        meta.join("params.json").is_file() && text.is_file(),
        "the fixture checkpoint is not at {} (pass --fixtures DIR, the fixtures/ folder of a llamapack checkout)",
        meta.display()
    );
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("llamapack-demo"));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let f16 = out_dir.join("tiny-f16.lpk");
    let quantized = |name: &str| out_dir.join(format!("tiny-{name}.lpk"));
    let svg = out_dir.join("compare.svg");
    let budgeted = out_dir.join("tiny-budget.lpk");
    let calib = out_dir.join("calibration.txt");
    llamapack_format::output::Outputs::new()
        .input("--fixtures", &meta)
        .input("--fixtures", &text)
        .file("--out", &f16)
        .files("--out", RECIPES.map(quantized))
        .file("--out", &svg)
        .file("--out", &budgeted)
        .file("--out", &calib)
        .check()?;
    let mut out = std::io::stdout().lock();

    // 1. convert
    let opts = ConvertOptions {
        dtype: OutputDType::F16,
        ..ConvertOptions::default()
    };
    let t = Instant::now();
    let s = llamapack_convert::convert(&meta, &f16, &opts, &|_, _| {})?;
    writeln!(
        out,
        "1. convert   {} (Meta, {} shards) → {} ({} tensors, {:.0} ms)",
        rel(&meta, &args.fixtures),
        s.sources
            .iter()
            .filter(|f| Path::new(&f.name)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("pth")))
            .count(),
        f16.display(),
        s.tensors,
        t.elapsed().as_secs_f64() * 1e3
    )?;

    // 2. quantize
    let pool = super::thread_pool(Some(threads))?;
    let src = Lpk::open(&f16)?;
    let mut candidates = Vec::new();
    for name in RECIPES {
        let mut recipe = Recipe::parse(name).expect("known recipe");
        recipe.tied_output = src.config().tied_output;
        let dst = quantized(name);
        let t = Instant::now();
        let done = pool.install(|| {
            super::quantize::quantize_file(
                &src,
                &recipe,
                &f16,
                &dst,
                &llamapack_quantize::pipeline::Options::default(),
            )
        })?;
        let worst = done
            .tensors
            .iter()
            .map(|r| r.error.rel_rms_err)
            .fold(0.0, f64::max);
        writeln!(
            out,
            "2. quantize  {name:7} → {} ({:.0} ms, worst tensor relative RMS error {worst:.4})",
            dst.display(),
            t.elapsed().as_secs_f64() * 1e3
        )?;
        candidates.push(dst);
    }
    // A size budget: q4_k_m's bytes, types chosen per tensor by measured sensitivity,
    // calibrated on the second half of the book (the comparison scores the first part).
    let t = Instant::now();
    let size: u64 = Lpk::open(quantized("q4_k_m"))?
        .tensors()
        .map(|t| t.bytes.len() as u64)
        .sum();
    let book =
        std::fs::read_to_string(&text).with_context(|| format!("reading {}", text.display()))?;
    let half = book.len() / 2;
    let cut = half + book[half..].find('\n').unwrap_or(0);
    llamapack_format::output::write_file(&calib, &book.as_bytes()[cut..])?;
    let plan = {
        let model = super::load_model(&src, threads)?;
        let tok = Tokenizer::from_data(src.tokenizer())?;
        let (tokens, _, sha) = super::scoring::load_tokens(&tok, Some(&calib), None)?;
        let windows = super::scoring::cut(&tokens, &tok, args.ctx, 16)?;
        let settings = crate::calibrate::Settings {
            windows: windows.n,
            probe_windows: 2,
            probe_tokens: args.ctx,
            optimize: true,
        };
        let job = super::budget::Job {
            lpk: &src,
            model: &model,
            input: &f16,
            tokens: &tokens,
            windows: &windows,
            settings: &settings,
        };
        let (plan, sens) = pool.install(|| job.plan(size))?;
        let record = serde_json::json!({
            "target_size": size,
            "calibration": { "file": calib.display().to_string(), "sha256": sha, "ctx": args.ctx,
                             "windows": windows.n, "probe_windows": 2, "probe_tokens": args.ctx },
            "optimize": true,
            "plan": plan,
            "sensitivities": sens,
        });
        let types = plan.types()?;
        pool.install(|| {
            job.write(
                &types,
                &budgeted,
                format!("target-size {size}"),
                record,
                false,
            )
        })?;
        plan
    };
    writeln!(
        out,
        "2. quantize  budget  → {} ({:.0} ms; q4_k_m's {size} bytes, types chosen per tensor by measured sensitivity, calibrated on the book's second half; predicted mean KLD {:.5})",
        budgeted.display(),
        t.elapsed().as_secs_f64() * 1e3,
        plan.predicted_kld
    )?;
    candidates.push(budgeted.clone());
    drop(src);

    // 3. compare against the f16 conversion
    let cargs = compare::Args {
        candidates: candidates.clone(),
        reference: f16.clone(),
        data: super::scoring::DataArgs {
            text: Some(text),
            tokens: None,
            ctx: args.ctx,
            chunks: args.chunks,
        },
        bench_tokens: 16,
        svg: Some(svg.clone()),
        threads: Some(threads),
        json: false,
    };
    let done = compare::compare(&cargs, threads)?;
    let (rows, windows) = (&done.rows, &done.windows);
    compare::write_svg(&svg, rows, &compare::chart_title(&cargs, &done))?;
    writeln!(
        out,
        "3. compare   against {} on {} windows of {} tokens of Alice in Wonderland ({} tokens scored)",
        f16.file_name().unwrap_or_default().to_string_lossy(),
        windows.n,
        windows.ctx,
        rows.first().map_or(0, |r| r.summary.n_tokens)
    )?;
    compare::print_table(&mut out, rows)?;
    writeln!(out, "\n   chart: {}", svg.display())?;

    // 4. generate
    writeln!(
        out,
        "\n4. generate  greedy, {} tokens after \"{}\"",
        args.tokens, args.prompt
    )?;
    for path in std::iter::once(&f16).chain(&candidates) {
        let lpk = Lpk::open(path)?;
        let text = continuation(&lpk, threads, &args.prompt, args.tokens)?;
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        writeln!(
            out,
            "   {name:12} {}{}",
            args.prompt,
            text.replace('\n', "⏎")
        )?;
    }
    writeln!(
        out,
        "\ndone in {:.1} s; artifacts in {}",
        started.elapsed().as_secs_f64(),
        out_dir.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn rel(p: &Path, base: &Path) -> String {
    p.strip_prefix(base.parent().unwrap_or(base))
        .unwrap_or(p)
        .display()
        .to_string()
}

/// Greedy continuation of `prompt`.
fn continuation(lpk: &Lpk, threads: usize, prompt: &str, n: usize) -> anyhow::Result<String> {
    let model = super::load_model(lpk, threads)?;
    let tok = Tokenizer::from_data(lpk.tokenizer())?;
    let ids = tok.encode(prompt, true)?;
    let mut state =
        llamapack_runner::State::with_context(&model.config, ids.len().max(1), ids.len() + n);
    let out = model.generate(&mut state, &ids, n, &mut Sampler::greedy(), |_| true)?;
    // Decode with the prompt so the first piece keeps its leading space.
    let head = tok.decode(&ids)?;
    let all = tok.decode(&[ids.as_slice(), out.as_slice()].concat())?;
    Ok(all.strip_prefix(&head).map_or(all.clone(), str::to_owned))
}
