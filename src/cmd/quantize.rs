//! `llamapack quantize`: a `.lpk` in, a quantized `.lpk` out, with an error report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use llamapack_convert::gguf::imatrix::read_imatrix_file;
use llamapack_format::output::Outputs;
use llamapack_format::{DType, Lpk, SourceFile};
use llamapack_quantize::pipeline::{self, Quantized, TensorReport};
use llamapack_quantize::recipe::{RECIPES, Recipe, TensorTypeOverride};
use serde_json::json;

use crate::ui;

/// Quantize a model (.lpk, or a GGUF read in place) to ggml block formats, tensor for tensor as
/// llama-quantize does; the output is a .lpk.
///
/// --type takes llama.cpp's file types (listed below with their size on Llama-2-7B): each
/// gives every tensor the type llama-quantize gives it for the llama architecture (output and
/// embedding rules, the use_more_bits layers, the attn_v rules that depend on the GQA factor,
/// and the fallbacks for rows that are not a multiple of 256: q4_k → q5_0, q5_k → q5_1,
/// q6_k → q8_0, q2_k/q3_k → q4_0, iq4_xs → iq4_nl; f16 when even that does not divide).
/// 1-D norms stay f32. Fallbacks are reported once per kind.
///
/// Per-tensor controls, as llama-quantize's: --output-type, --embedding-type,
/// --tensor-type REGEX=TYPE (repeatable; matched against llama.cpp's tensor names such as
/// blk.3.attn_v.weight; the first matching pattern wins), --tensor-type-file (one REGEX=TYPE
/// per line), --pure (every 2-D weight the recipe's base type).
///
/// Prints a per-tensor error table (worst first): RMSE, relative RMS error, SNR in dB and
/// max |error| of dequantize(quantize(w)) against w. An input that is already quantized is
/// refused (re-quantizing compounds the error) unless --allow-requantize.
///
/// Examples:
///   llamapack quantize 7b.lpk -o 7b-q4km.lpk --type q4_k_m --report q4km.json
///   llamapack quantize 7b.lpk -o 7b-q5.lpk --type q5_k_m --tensor-type 'ffn_down=q6_k'
///   llamapack quantize 7b.lpk -o 7b-iq4.lpk --type iq4_xs --pure --output-type q8_0
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, after_long_help = recipes_help())]
pub struct Args {
    /// Input model, .lpk or .gguf (normally the f16/bf16/f32 conversion).
    pub input: PathBuf,
    /// Output .lpk.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Recipe: llama.cpp's file type (q4_k_m, Q5_K_S, q8_0, … — see the list in --help).
    /// Not with a size budget (--target-bpw, --target-size, --plan).
    #[arg(
        long = "type",
        value_name = "RECIPE",
        value_parser = super::recipe_name,
        required_unless_present_any = ["target_bpw", "target_size", "plan"],
        conflicts_with_all = ["target_bpw", "target_size", "plan"]
    )]
    pub recipe: Option<String>,
    #[command(flatten)]
    pub budget: super::budget::BudgetArgs,
    /// Type of output.weight (overrides the recipe).
    #[arg(long, value_name = "TYPE", value_parser = super::storable_dtype)]
    pub output_type: Option<DType>,
    /// Type of tok_embeddings.weight (overrides the recipe).
    #[arg(long, value_name = "TYPE", value_parser = super::storable_dtype)]
    pub embedding_type: Option<DType>,
    /// REGEX=TYPE: tensors whose llama.cpp name matches REGEX get TYPE (repeatable; the first
    /// matching pattern wins).
    #[arg(long = "tensor-type", value_name = "REGEX=TYPE")]
    pub tensor_types: Vec<TensorTypeOverride>,
    /// A file of REGEX=TYPE lines (after the --tensor-type patterns; blank lines and lines
    /// starting with # are skipped).
    #[arg(long, value_name = "FILE")]
    pub tensor_type_file: Option<PathBuf>,
    /// Every 2-D weight gets the recipe's base type (no mixture).
    #[arg(long)]
    pub pure: bool,
    /// Importance matrix (llama.cpp's GGUF imatrix or legacy .dat, e.g. from `llamapack
    /// imatrix` or `llama-imatrix`): the weighted encoders use it, and the recipe applies
    /// llama-quantize's imatrix rules. Tensors it has no entry for are quantized without it.
    #[arg(long, value_name = "FILE")]
    pub imatrix: Option<PathBuf>,
    /// Use the imatrix only for tensors whose llama.cpp name contains NAME (repeatable).
    #[arg(
        long,
        value_name = "NAME",
        requires = "imatrix",
        conflicts_with = "exclude_weights"
    )]
    pub include_weights: Vec<String>,
    /// Do not use the imatrix for tensors whose llama.cpp name contains NAME (repeatable).
    #[arg(long, value_name = "NAME", requires = "imatrix")]
    pub exclude_weights: Vec<String>,
    /// Re-encode tensors that are already quantized (compounds the error; as llama-quantize's
    /// --allow-requantize). Without it an already-quantized input is refused.
    #[arg(long)]
    pub allow_requantize: bool,
    /// Worker threads (default: one per physical core).
    #[arg(short = 't', long, value_parser = super::threads_parser())]
    pub threads: Option<usize>,
    /// Write the per-tensor error report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the summary and report as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print only the N worst tensors in the table (0 = all).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

/// The recipe list of `--help`, from the recipe table.
fn recipes_help() -> String {
    use std::fmt::Write as _;
    let mut s =
        String::from("Recipes (bits per weight on Llama-2-7B, as llama-quantize plans it):\n");
    for r in &RECIPES {
        let _ = writeln!(
            s,
            "  {:<8} {:>5.2} bpw  {}",
            r.name, r.bpw_7b, r.description
        );
    }
    s.push_str("Aliases: q3_k, q4_k, q5_k = the _m mixtures; llama.cpp's upper-case names and ftype ids are accepted.");
    s
}

/// Builds the recipe from the command line's options.
fn recipe_of(args: &Args) -> anyhow::Result<Recipe> {
    let mut recipe = Recipe::parse(args.recipe.as_deref().unwrap_or("f16"))?;
    recipe.output_type = args.output_type;
    recipe.embedding_type = args.embedding_type;
    recipe.pure = args.pure;
    recipe
        .tensor_types
        .extend(args.tensor_types.iter().cloned());
    if let Some(path) = &args.tensor_type_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --tensor-type-file {}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let o = TensorTypeOverride::parse(line)
                .with_context(|| format!("{}:{}", path.display(), i + 1))?;
            recipe.tensor_types.push(o);
        }
    }
    Ok(recipe)
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.recipe.is_none() {
        return super::budget::run(args);
    }
    Outputs::new()
        .input("INPUT", &args.input)
        .inputs("--tensor-type-file", &args.tensor_type_file)
        .inputs("--imatrix", &args.imatrix)
        .file("-o", &args.output)
        .files("--report", &args.report)
        .check()?;
    let mut recipe = recipe_of(args)?;
    let pool = crate::cmd::thread_pool(args.threads)?;
    let lpk = llamapack_convert::open_model(&args.input)?;
    let imatrix = match &args.imatrix {
        Some(path) => {
            let im = read_imatrix_file(path, 512)?;
            let mut u = pipeline::ImatrixUse {
                imatrix: im,
                file: path.display().to_string(),
                sha256: crate::cmd::sha256_of(path)?,
            };
            u.filter(&args.include_weights, &args.exclude_weights);
            if u.imatrix.is_empty() {
                eprintln!(
                    "warning: {}: no importance-matrix entry is left to use; quantizing without it",
                    path.display()
                );
                None
            } else {
                Some(u)
            }
        }
        None => None,
    };
    recipe.has_imatrix = imatrix.is_some();
    let opts = pipeline::Options {
        allow_requantize: args.allow_requantize,
        imatrix,
        ..Default::default()
    };
    let started = Instant::now();
    let done = pool.install(|| quantize_file(&lpk, &recipe, &args.input, &args.output, &opts))?;
    let secs = started.elapsed().as_secs_f64();

    let out_len = done.output_bytes;
    let fallbacks = &done.fallbacks;
    let mut worst: Vec<&TensorReport> = done.tensors.iter().collect();
    worst.sort_by(|a, b| b.error.rel_rms_err.total_cmp(&a.error.rel_rms_err));
    let doc = json!({
        "input": args.input.display().to_string(),
        "output": args.output.display().to_string(),
        "recipe": recipe,
        "input_bytes": lpk.file_len(),
        "output_bytes": out_len,
        "seconds": secs,
        "fallbacks": fallbacks,
        "tensors": worst,
    });
    if report(args, &doc)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} → {}: {} → {} in {secs:.2} s ({} recipe)",
        args.input.display(),
        args.output.display(),
        ui::human_bytes(lpk.file_len()),
        ui::human_bytes(out_len),
        recipe.name
    )?;
    let shown = if args.top == 0 {
        worst.len()
    } else {
        args.top.min(worst.len())
    };
    let width = worst
        .iter()
        .take(shown)
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .max(6);
    writeln!(
        out,
        "\nworst {shown} of {} tensors by relative RMS error",
        worst.len()
    )?;
    writeln!(
        out,
        "  {:width$}  {:>6}  {:>10}  {:>9}  {:>8}  {:>10}",
        "tensor", "type", "rmse", "rel_rms", "snr_db", "max_abs"
    )?;
    for r in worst.iter().take(shown) {
        writeln!(
            out,
            "  {:width$}  {:>6}  {:>10.3e}  {:>9.5}  {:>8.2}  {:>10.3e}",
            r.name, r.dtype, r.error.rmse, r.error.rel_rms_err, r.error.snr_db, r.error.max_abs_err
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `doc` to `--report` when asked, and prints it on stdout with `--json`: true when it
/// was printed (the table is then not).
pub fn report(args: &Args, doc: &serde_json::Value) -> anyhow::Result<bool> {
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(doc)? + "\n";
        llamapack_format::output::write_file(path, text.as_bytes())?;
    }
    if args.json {
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(doc)?
        )?;
    }
    Ok(args.json)
}

/// Plans and quantizes `lpk` (read from `input`) into `output` with `recipe`, on the current
/// rayon pool, with a progress bar; fallbacks are reported on stderr, one line per kind.
pub fn quantize_file(
    lpk: &Lpk,
    recipe: &Recipe,
    input: &Path,
    output: &Path,
    opts: &pipeline::Options,
) -> anyhow::Result<Quantized> {
    let plan = pipeline::plan(lpk, recipe)?;
    quantize_planned(lpk, &plan, input, output, opts)
}

/// [`quantize_file`] with the plan given.
pub fn quantize_planned(
    lpk: &Lpk,
    plan: &pipeline::Plan,
    input: &Path,
    output: &Path,
    opts: &pipeline::Options,
) -> anyhow::Result<Quantized> {
    let total: u64 = lpk.tensors().map(|t| t.bytes.len() as u64).sum();
    let bar = ui::bytes_bar(total, "quantize");
    let parent = || {
        Ok(SourceFile {
            name: input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            // the file as mapped (the tensors are read from the same pages): no second read
            sha256: crate::cmd::sha256_hex(lpk.file_bytes()),
            bytes: lpk.file_len(),
        })
    };
    let done = pipeline::quantize(lpk, plan, output, parent, opts, &|n| bar.set_position(n))?;
    bar.finish_and_clear();
    for line in pipeline::group_fallbacks(&done.fallbacks) {
        eprintln!("warning: {line}");
    }
    if !done.without_weights.is_empty() {
        let w = &done.without_weights;
        let shown: Vec<&str> = w.iter().take(3).map(String::as_str).collect();
        let more = w.len().saturating_sub(3);
        eprintln!(
            "warning: the importance matrix has no weights for {}{}: quantized without them",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    Ok(done)
}
