//! `llamapack imatrix`: collect an importance matrix (llama-imatrix's) for calibrated
//! quantization, merge earlier ones, write llama.cpp's GGUF imatrix file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow, bail, ensure};
use llamapack_convert::gguf::imatrix::{read_imatrix, read_imatrix_file, write_imatrix};
use llamapack_format::Lpk;
use llamapack_format::output::Outputs;
use llamapack_quantize::imatrix::Imatrix;
use llamapack_runner::imatrix::{Collector, MIN_BATCH};
use llamapack_runner::{Tokenizer, metrics};
use serde_json::json;

use super::scoring;
use crate::ui;

/// Collect an importance matrix for calibrated quantization, as llama.cpp's llama-imatrix does.
///
/// An importance matrix records how large the inputs of every weight matrix are: for each input
/// column, Σx² over some calibration text, and how many tokens were summed. A quantizer that
/// knows which columns carry large activations spends its precision on them (llama-quantize
/// --imatrix reads the file written here).
///
/// What is collected, with llama-imatrix's rules:
///   wq, wk, wv   the attention_norm output        wo   the attention output
///   w1, w3       the ffn_norm output              w2   silu(w1 x) · w3 x
///   output       only with --process-output, and only when the model has its own output.weight
///                (with tied embeddings llama.cpp multiplies by token_embd, which it never collects)
/// Σx² in f32 per column and one token count per matrix; batches under 16 tokens are skipped,
/// so --ctx must be at least 16.
///
/// The data is tokenized as `eval` does it (BOS first when the model uses one) and cut into
/// chunks of --ctx tokens, the first token of each replaced by BOS; each chunk is one forward
/// pass, every position's logits computed. The progress line shows tokens/s and the perplexity
/// of the second half of each chunk so far, as llama-imatrix prints it.
///
/// The output is llama.cpp's GGUF imatrix (general.type = imatrix, imatrix.datasets,
/// imatrix.chunk_count, imatrix.chunk_size, <weight>.in_sum2 and <weight>.counts under
/// llama.cpp's tensor names), written to a temp file and renamed when complete. --in-file adds
/// earlier files (GGUF, or llama.cpp's legacy .dat) to it, as llama-imatrix merges them;
/// without --text/--tokens it only merges. Every file is checked against MODEL.
///
/// Calibration text: text like what the model will see; never the text you evaluate on.
///
/// Examples:
///   llamapack imatrix 7b-f16.lpk --text calibration.txt -o 7b.imatrix.gguf
///   llamapack imatrix 7b-f16.lpk --text more.txt --in-file 7b.imatrix.gguf -o 7b.imatrix.gguf
///   llamapack imatrix 7b-f16.lpk --in-file a.gguf --in-file b.dat -o merged.gguf
///   llama-quantize --imatrix 7b.imatrix.gguf 7b-f16.gguf 7b-q4_k_m.gguf Q4_K_M
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The model (.lpk or .gguf): normally the f16/bf16 conversion (a quantized one works too).
    pub model: PathBuf,
    #[command(flatten)]
    pub data: scoring::DataArgs,
    /// Also collect the input of output.weight (llama-imatrix leaves it out by default).
    #[arg(long)]
    pub process_output: bool,
    /// An earlier importance matrix (GGUF or legacy .dat) to merge into the output; repeat the
    /// option or separate files with commas (llama-imatrix's form).
    #[arg(long = "in-file", value_name = "FILE", value_delimiter = ',')]
    pub in_files: Vec<PathBuf>,
    /// Where to write the importance matrix (GGUF).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Worker threads (default: one per physical core).
    #[arg(short = 't', long, value_parser = super::threads_parser())]
    pub threads: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What collecting on the data gave.
struct Collected {
    imatrix: Imatrix,
    chunks: usize,
    tokens: u64,
    seconds: f64,
    /// (PPL, its uncertainty) of the second halves.
    ppl: (f64, f64),
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let threads = super::thread_count(args.threads)?;
    let mut outputs = Outputs::new();
    outputs.input("MODEL", &args.model);
    args.data.declare(&mut outputs);
    // Merging into one of the --in-file matrices is by design (it is read whole first).
    outputs
        .updated_all("--in-file", &args.in_files)
        .file("-o", &args.output)
        .check()?;
    let ctx = args.data.ctx;
    ensure!(
        ctx >= MIN_BATCH,
        "--ctx must be at least {MIN_BATCH}: batches under {MIN_BATCH} tokens are not collected (llama-imatrix's rule)"
    );
    let chunk_size = u32::try_from(ctx).context("--ctx is too large")?;
    let has_data = args.data.text.is_some() || args.data.tokens.is_some();
    if !has_data && args.in_files.is_empty() {
        bail!(
            "nothing to do: give --text FILE or --tokens FILE to collect on, or --in-file FILE to merge"
        );
    }
    let lpk = llamapack_convert::open_model(&args.model)?;
    // The model's matrices, by name: their input width (what every entry must match).
    let cols_of = |name: &str| {
        lpk.tensor(name)
            .ok()
            .filter(|t| t.shape.len() == 2)
            .map(|t| t.shape[1] as usize)
    };

    let mut total = Imatrix::new(chunk_size);
    for path in &args.in_files {
        let label = path.display().to_string();
        let im = read_imatrix_file(path, chunk_size)?;
        im.check_model(&label, cols_of)
            .map_err(|e| anyhow!("{e} (in {})", args.model.display()))?;
        total.merge(im, &label)?;
    }
    let collected = if has_data {
        let c = collect(args, &lpk, threads)?;
        c.imatrix
            .check_model("collected", cols_of)
            .context("internal: the collected matrix does not fit the model")?;
        total.merge(c.imatrix.clone(), "collected")?;
        Some(c)
    } else {
        None
    };
    write_imatrix(&args.output, &total)?;
    report(args, &total, collected.as_ref())?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the model over the data windows with a collector in its state.
fn collect(args: &Args, lpk: &Lpk, threads: usize) -> anyhow::Result<Collected> {
    let tok = Tokenizer::from_data(lpk.tokenizer())?;
    let (tokens, windows) = args.data.windows(&tok)?;
    let (model, mut state) = scoring::model_for(lpk, threads, windows.ctx)?;
    if args.process_output && model.config.tied_output {
        eprintln!(
            "note: the output of {} is tied to the embeddings; like llama-imatrix (which never collects token_embd.weight), --process-output adds nothing",
            args.model.display()
        );
    }
    state.imatrix = Some(Collector::new(&model.config, args.process_output));
    let vocab = model.config.vocab_size;
    let bar = ui::status_bar(windows.n as u64, "imatrix");
    let (mut nll, mut nll2, mut scored) = (0f64, 0f64, 0u64);
    let start = Instant::now();
    for i in 0..windows.n {
        let window = windows.window(&tokens, i);
        let logits = model.logits_all(&mut state, &window, 0)?;
        for j in windows.first()..windows.ctx - 1 {
            let v = metrics::nll(&logits[j * vocab..(j + 1) * vocab], window[j + 1] as usize);
            nll += v;
            nll2 += v * v;
            scored += 1;
        }
        let done = (i + 1) * windows.ctx;
        let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(i as u64 + 1);
        bar.set_message(format!(
            "chunks, {rate:.0} tok/s, PPL {:.4}",
            (nll / scored as f64).exp()
        ));
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let collector = state.imatrix.take().expect("set above");
    let mut imatrix = collector.to_imatrix(&model.weights, windows.ctx as u32)?;
    let data = args
        .data
        .text
        .as_ref()
        .or(args.data.tokens.as_ref())
        .expect("has_data");
    imatrix.datasets = vec![data.display().to_string()];
    Ok(Collected {
        imatrix,
        chunks: windows.n,
        tokens: (windows.n * windows.ctx) as u64,
        seconds,
        ppl: ppl_with_uncertainty(nll, nll2, scored),
    })
}

/// exp(mean NLL) and llama-imatrix's uncertainty of it: `ppl · sqrt(var(nll) / (n − 1))`.
fn ppl_with_uncertainty(nll: f64, nll2: f64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = nll / n as f64;
    let var = nll2 / n as f64 - mean * mean;
    let ppl = mean.exp();
    let unc = if n > 1 && var > 0.0 {
        (var / (n - 1) as f64).sqrt() * ppl
    } else {
        f64::NAN
    };
    (ppl, unc)
}

fn report(args: &Args, total: &Imatrix, c: Option<&Collected>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let rate = c.map(|c| c.tokens as f64 / c.seconds.max(1e-9));
    if args.json {
        let doc = json!({
            "output": args.output.display().to_string(),
            "tensors": total.len(),
            "chunk_count": total.chunk_count,
            "chunk_size": total.chunk_size,
            "datasets": total.datasets,
            "merged": args.in_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "process_output": args.process_output,
            "collected": c.map(|c| json!({
                "chunks": c.chunks,
                "tokens": c.tokens,
                "seconds": c.seconds,
                "tokens_per_second": rate,
                "ppl": finite(c.ppl.0),
                "ppl_uncertainty": finite(c.ppl.1),
            })),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    if let Some(c) = c {
        writeln!(
            out,
            "collected {} chunks of {} tokens ({} tokens) in {:.1} s: {:.1} tokens/s",
            c.chunks,
            total.chunk_size,
            c.tokens,
            c.seconds,
            rate.unwrap_or(0.0)
        )?;
        writeln!(
            out,
            "PPL {:.4} ± {:.5} (second half of each chunk)",
            c.ppl.0, c.ppl.1
        )?;
    }
    for p in &args.in_files {
        writeln!(out, "merged {}", p.display())?;
    }
    writeln!(
        out,
        "wrote {}: {} tensors, {} chunks of {} tokens, datasets {:?}",
        args.output.display(),
        total.len(),
        total.chunk_count,
        total.chunk_size,
        total.datasets
    )?;
    Ok(())
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Largest file `inspect` reads whole to see whether it is a GGUF imatrix (a 70B model's
/// imatrix is tens of MB; a GGUF model file is not read).
const SNIFF_LIMIT: u64 = 1 << 30;

/// Whether `path` looks like an importance-matrix file (for `inspect`): a `.dat`, or a GGUF
/// file (of at most [`SNIFF_LIMIT`] bytes) whose `general.type` is `imatrix`.
pub fn is_imatrix_file(path: &Path) -> bool {
    use std::io::Read;
    if path.extension().is_some_and(|e| e == "dat") {
        return true;
    }
    let mut magic = [0u8; 4];
    let gguf = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"GGUF";
    let small = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= SNIFF_LIMIT);
    let Some(bytes) = (gguf && small).then(|| std::fs::read(path).ok()).flatten() else {
        return false;
    };
    llamapack_convert::gguf::GgufFile::parse(&bytes, "")
        .is_ok_and(|f| f.get("general.type").and_then(|v| v.as_str()) == Some("imatrix"))
}

/// `llamapack inspect` of an importance-matrix file: its metadata and, per tensor, the input
/// width, the token count and the spread of the mean squared activation (the quantizer's
/// weights). A legacy `.dat` is read with chunk size 1, so its counts are llama.cpp's `ncall`.
pub fn inspect(path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let legacy = !bytes.starts_with(b"GGUF");
    let im = read_imatrix(&bytes, &path.display().to_string(), 1)?;
    let rows: Vec<_> = im
        .entries()
        .map(|(name, e)| {
            let mean = e.mean();
            let (lo, hi) = mean
                .iter()
                .fold((f32::INFINITY, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
            let avg = mean.iter().map(|&v| f64::from(v)).sum::<f64>() / mean.len() as f64;
            (name, e, lo, avg, hi)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if as_json {
        let tensors: Vec<_> = rows
            .iter()
            .map(|(name, e, lo, avg, hi)| {
                json!({
                    "name": name,
                    "gguf_name": llamapack_convert::gguf::names::meta_to_gguf(name),
                    "cols": e.cols(),
                    "n_mat": e.n_mat(),
                    "counts": e.counts(),
                    "mean_sq_min": lo,
                    "mean_sq_mean": avg,
                    "mean_sq_max": hi,
                })
            })
            .collect();
        let doc = json!({
            "file": path.display().to_string(),
            "format": if legacy { "dat" } else { "gguf" },
            "datasets": im.datasets,
            "chunk_count": im.chunk_count,
            "chunk_size": (!legacy).then_some(im.chunk_size),
            "tensors": tensors,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let format = if legacy {
        "legacy .dat (counts are ncall)"
    } else {
        "gguf"
    };
    writeln!(out, "{}: importance matrix, {format}", path.display())?;
    writeln!(out, "  datasets {:?}", im.datasets)?;
    if legacy {
        writeln!(out, "  {} chunks", im.chunk_count)?;
    } else {
        writeln!(
            out,
            "  {} chunks of {} tokens",
            im.chunk_count, im.chunk_size
        )?;
    }
    writeln!(out, "\n{} tensors", rows.len())?;
    writeln!(
        out,
        "  {:<36} {:>6} {:>5} {:>10}  {:>10} {:>10} {:>10}",
        "name", "cols", "n_mat", "count", "min E[x²]", "mean", "max"
    )?;
    for (name, e, lo, avg, hi) in &rows {
        let count = match e.counts() {
            [c] => c.to_string(),
            cs => format!(
                "{}..{}",
                cs.iter().min().unwrap_or(&0),
                cs.iter().max().unwrap_or(&0)
            ),
        };
        writeln!(
            out,
            "  {name:<36} {:>6} {:>5} {count:>10}  {lo:>10.4e} {avg:>10.4e} {hi:>10.4e}",
            e.cols(),
            e.n_mat()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
