//! `llamapack quantize`: a `.lpk` in, a quantized `.lpk` out, with an error report.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use llamapack_format::{DType, Lpk, LpkWriter, Metadata, SourceFile, TensorView};
use llamapack_quantize::recipe::{RECIPE_NAMES, Recipe};
use llamapack_quantize::stats::{ErrorReport, ErrorStats};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::ui;

/// Quantize a .lpk file to int8 / int4 block formats (ggml-compatible).
///
/// Recipes (--type):
///   q8_0, q4_0, q4_k, q6_k   every 2-D weight gets that type; 1-D norms stay f32
///   q4_k_m                   llama.cpp's mixture: output.weight → q6_k; attention.wv and
///                            feed_forward.w2 → q6_k on the use_more_bits layers; rest q4_k
///   f16, bf16, f32           plain conversion
///
/// A row length that is not a multiple of the block size falls back to a wider type with a
/// warning naming the tensor. Prints a per-tensor error table (worst first): RMSE, relative
/// RMS error, SNR in dB and max |error| of dequantize(quantize(w)) against w.
///
/// For a model with tied embeddings, tok_embeddings.weight is the output matrix and follows the
/// output's rules (--output-type, q4_k_m's q6_k), as in llama.cpp.
///
/// Note: llama-quantize's Q4_0/Q4_K files keep output.weight at q6_k; pass --output-type q6_k
/// to build the same mix.
///
/// Example:
///   llamapack quantize 7b.lpk -o 7b-q4km.lpk --type q4_k_m --report q4km.json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Input .lpk (normally the f16/bf16/f32 conversion).
    pub input: PathBuf,
    /// Output .lpk.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Recipe: q8_0, q4_0, q4_k, q6_k, q4_k_m, f16, bf16, f32.
    #[arg(long = "type", short = 't', value_name = "RECIPE")]
    pub recipe: String,
    /// Type of output.weight (overrides the recipe).
    #[arg(long, value_name = "TYPE")]
    pub output_type: Option<DType>,
    /// Type of tok_embeddings.weight (overrides the recipe).
    #[arg(long, value_name = "TYPE")]
    pub embedding_type: Option<DType>,
    /// Worker threads (default: one per physical core).
    #[arg(long)]
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

/// One row of the error report.
#[derive(Debug, Serialize)]
pub struct TensorReport {
    pub name: String,
    pub source_dtype: String,
    pub dtype: String,
    pub bytes: u64,
    #[serde(flatten)]
    pub error: ErrorReport,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut recipe = Recipe::parse(&args.recipe).with_context(|| {
        format!(
            "unknown recipe `{}` (expected one of {})",
            args.recipe,
            RECIPE_NAMES.join(", ")
        )
    })?;
    recipe.output_type = args.output_type;
    recipe.embedding_type = args.embedding_type;
    for t in [args.output_type, args.embedding_type]
        .into_iter()
        .flatten()
    {
        if !t.info().storable {
            bail!("{t} cannot be stored in a model file");
        }
    }
    crate::cmd::refuse_overwrite(&args.input, &args.output)?;
    let pool = crate::cmd::thread_pool(args.threads)?;
    let lpk = Lpk::open(&args.input)?;
    recipe.tied_output = lpk.config().tied_output;
    let started = Instant::now();
    let (reports, fallbacks) =
        pool.install(|| quantize_file(&lpk, &recipe, &args.input, &args.output))?;
    let secs = started.elapsed().as_secs_f64();

    let out_len = std::fs::metadata(&args.output).map_or(0, |m| m.len());
    let mut worst: Vec<&TensorReport> = reports.iter().collect();
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
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(path, text).with_context(|| format!("writing report {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(ExitCode::SUCCESS);
    }
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

pub type Quantized = (Vec<TensorReport>, Vec<String>);

/// Quantizes `lpk` (read from `input`) into `output` with `recipe`, on the current rayon pool.
pub fn quantize_file(
    lpk: &Lpk,
    recipe: &Recipe,
    input: &std::path::Path,
    output: &std::path::Path,
) -> anyhow::Result<Quantized> {
    let n_layers = lpk.config().n_layers;
    let total: u64 = lpk.tensors().map(|t| t.bytes.len() as u64).sum();
    let bar = ui::bytes_bar(total, "quantize");
    let mut writer = LpkWriter::create(output)?;
    let mut reports = Vec::new();
    let mut fallbacks = Vec::new();
    let mut types = serde_json::Map::new();
    for t in lpk.tensors() {
        let choice = recipe.choose(t.name, t.shape, n_layers);
        if let Some(why) = &choice.fallback {
            fallbacks.push(why.clone());
        }
        if t.dtype.is_quantized() && t.dtype != choice.dtype {
            bar.suspend(|| {
                eprintln!(
                    "warning: `{}` is already {}; re-quantizing it to {} compounds the error",
                    t.name, t.dtype, choice.dtype
                );
            });
        }
        let (bytes, stats) = convert_tensor(&t, choice.dtype)
            .with_context(|| format!("{}: tensor `{}`", lpk.file_name(), t.name))?;
        writer.write_tensor(t.name, choice.dtype, t.shape, &bytes)?;
        types.insert(t.name.to_owned(), json!(choice.dtype.name()));
        reports.push(TensorReport {
            name: t.name.to_owned(),
            source_dtype: t.dtype.name().to_owned(),
            dtype: choice.dtype.name().to_owned(),
            bytes: bytes.len() as u64,
            error: stats.report(),
        });
        bar.inc(t.bytes.len() as u64);
    }
    warn_fallbacks(&fallbacks);
    for b in lpk.blobs() {
        let data = lpk.blob(&b.name).expect("listed blob");
        writer.write_blob(&b.name, data)?;
    }
    bar.finish_and_clear();
    let mut meta: Metadata = lpk.metadata().clone();
    let input_name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = SourceFile {
        name: input_name,
        sha256: crate::cmd::sha256_of(input)?,
        bytes: lpk.file_len(),
    };
    let p = &mut meta.provenance;
    p.notes
        .insert("parent_sources".into(), serde_json::to_value(&p.sources)?);
    p.notes.insert("parent_tool".into(), json!(p.tool));
    p.tool = llamapack_format::TOOL_VERSION.into();
    p.sources = vec![parent];
    p.accuracy = None;
    p.quantization = Some(json!({
        "recipe": recipe.name,
        "output_type": recipe.output_type.map(DType::name),
        "embedding_type": recipe.embedding_type.map(DType::name),
        "fallbacks": fallbacks,
        "tensor_types": types,
    }));
    writer.finish(&meta)?;
    Ok((reports, fallbacks))
}

/// Re-encodes one tensor as `target`, row-parallel; returns the bytes and the round-trip error.
fn convert_tensor(t: &TensorView<'_>, target: DType) -> anyhow::Result<(Vec<u8>, ErrorStats)> {
    let rows = t.rows();
    let n = t.row_len();
    let src_row = t.dtype.row_bytes(n).expect("validated by the reader");
    let dst_row = target
        .row_bytes(n)
        .context("row length is not a whole number of blocks")?;
    let mut out = vec![0u8; rows * dst_row];
    if t.dtype == target {
        out.copy_from_slice(t.bytes);
        return Ok((out, ErrorStats::default()));
    }
    // Rows in batches so each worker reuses its scratch buffers.
    let batch = (1 << 16) / n.max(1) + 1;
    let stats = out
        .par_chunks_mut(dst_row * batch)
        .enumerate()
        .map(|(b, dst)| -> anyhow::Result<ErrorStats> {
            let mut x = vec![0f32; n];
            let mut back = vec![0f32; n];
            let mut stats = ErrorStats::default();
            for (i, dst) in dst.chunks_mut(dst_row).enumerate() {
                let r = b * batch + i;
                let src = &t.bytes[r * src_row..(r + 1) * src_row];
                llamapack_quantize::dequantize_row(t.dtype, src, &mut x)?;
                if let Some(j) = x.iter().position(|v| !v.is_finite()) {
                    bail!(
                        "non-finite value {} at row {r}, column {j} (element {})",
                        x[j],
                        r * n + j
                    );
                }
                llamapack_quantize::quantize_row(target, &x, dst)?;
                llamapack_quantize::dequantize_row(target, dst, &mut back)?;
                stats.add(&x, &back);
            }
            Ok(stats)
        })
        .try_reduce(ErrorStats::default, |a, b| Ok(a.merge(b)))?;
    Ok((out, stats))
}

/// One warning line per kind of fallback (`row length 576 … using q8_0`), naming a few tensors;
/// the full list goes to the report and the provenance.
fn warn_fallbacks(fallbacks: &[String]) {
    let mut groups: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for f in fallbacks {
        let (name, why) = f.split_once(": ").unwrap_or(("", f));
        groups.entry(why).or_default().push(name);
    }
    for (why, names) in groups {
        let shown: Vec<&str> = names.iter().take(3).copied().collect();
        let more = if names.len() > 3 {
            format!(" and {} more", names.len() - 3)
        } else {
            String::new()
        };
        eprintln!("warning: {}{more}: {why}", shown.join(", "));
    }
}
