//! `llamapack quantize --target-bpw / --target-size / --plan`: calibrated quantization to a
//! size budget (see [`crate::calibrate`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use llamapack_format::Lpk;
use llamapack_format::output::Outputs;
use llamapack_quantize::pipeline;
use llamapack_quantize::recipe::Recipe;
use llamapack_runner::accuracy::Windows;
use llamapack_runner::{Model, Tokenizer};
use serde_json::json;

use super::quantize::Args;
use crate::calibrate::plan::{BudgetPlan, allocate};
use crate::calibrate::{self, Sensitivities, Settings};
use crate::ui;

/// The size-budget options of `quantize`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Size budget (instead of --type)")]
pub struct BudgetArgs {
    /// Bits per weight of the whole file's tensors (e.g. 4.85): the types are chosen per tensor
    /// from q2_k … q8_0, iq4_nl, iq4_xs and f16 so that the measured loss is least.
    #[arg(
        long,
        value_name = "BPW",
        conflicts_with = "target_size",
        requires = "calibrate"
    )]
    pub target_bpw: Option<f64>,
    /// The tensors' total size instead: bytes, or with a unit (3.9GiB, 120MB, 800KiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "calibrate")]
    pub target_size: Option<u64>,
    /// Calibration text (never the text you evaluate on): the sensitivities and the rounding are
    /// measured on it with our forward pass.
    #[arg(long, value_name = "FILE")]
    pub calibrate: Option<PathBuf>,
    /// Tokens per calibration window.
    #[arg(long = "calibrate-ctx", value_name = "N", default_value_t = 512)]
    pub ctx: usize,
    /// Calibration windows for the input statistics (at most; fewer if the text is short).
    #[arg(long = "calibrate-chunks", value_name = "N", default_value_t = 16)]
    pub chunks: usize,
    /// Of those, windows the per-tensor KLD probes run on.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub probe_chunks: usize,
    /// Positions of each probe window the probes run (the first ones).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub probe_tokens: usize,
    /// Round each block as llama-quantize --imatrix does (diagonal statistics only) instead of
    /// the error-feedback rounding.
    #[arg(long)]
    pub no_optimize: bool,
    /// Print the plan (tensor, type, bytes, predicted ΔKLD, totals) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply a plan saved by --save-plan (no sensitivity measurement; --calibrate still gives
    /// the rounding its statistics).
    #[arg(long, value_name = "FILE", requires = "calibrate", conflicts_with_all = ["target_bpw", "target_size"])]
    pub plan: Option<PathBuf>,
    /// Write the plan (and the measured sensitivities) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub save_plan: Option<PathBuf>,
}

/// `3.9GiB`, `120MB`, `800KiB`, `123456`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: a size is a number with an optional unit (3.9GiB, 120MB)"))?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        u => {
            return Err(format!(
                "`{s}`: unknown unit `{u}` (B, KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    let bytes = v * mul;
    if !(bytes.is_finite() && bytes >= 1.0) {
        return Err(format!("`{s}`: not a positive size"));
    }
    Ok(bytes as u64)
}

/// Runs `quantize` with a size budget or a saved plan.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let b = &args.budget;
    let calib = b
        .calibrate
        .as_ref()
        .context("a size budget needs --calibrate FILE (text to measure on)")?;
    let mut outputs = Outputs::new();
    outputs
        .input("INPUT", &args.input)
        .input("--calibrate", calib)
        .inputs("--plan", &b.plan)
        .files("--save-plan", &b.save_plan)
        .files("--report", &args.report);
    if !b.dry_run {
        outputs.file("-o", &args.output);
    }
    outputs.check()?;
    if let Some(t) = b.target_bpw
        && !(t.is_finite() && t > 0.0)
    {
        super::usage!("--target-bpw must be a positive number of bits per weight");
    }
    let threads = super::thread_count(args.threads)?;
    let pool = super::thread_pool(args.threads)?;
    let lpk = llamapack_convert::open_model(&args.input)?;
    let tok = Tokenizer::from_data(lpk.tokenizer())?;
    let (tokens, _, text_sha) = super::scoring::load_tokens(&tok, Some(calib), None)?;
    let windows = super::scoring::cut(&tokens, &tok, b.ctx, b.chunks).with_context(|| {
        format!(
            "{}: the calibration text must hold at least one window of --calibrate-ctx {}",
            calib.display(),
            b.ctx
        )
    })?;
    let model = super::load_model(&lpk, threads)?;
    ensure!(
        b.ctx <= model.config.seq_len,
        "--calibrate-ctx {} is longer than the context length {} of {}",
        b.ctx,
        model.config.seq_len,
        args.input.display()
    );
    let settings = Settings {
        windows: windows.n,
        probe_windows: b.probe_chunks,
        probe_tokens: b.probe_tokens,
        optimize: !b.no_optimize,
    };
    let started = Instant::now();
    let job = Job {
        lpk: &lpk,
        model: &model,
        input: &args.input,
        tokens: &tokens,
        windows: &windows,
        settings: &settings,
    };
    let (plan, sens) = if let Some(path) = &b.plan {
        (BudgetPlan::read(path)?, None)
    } else {
        let budget = match (b.target_bpw, b.target_size) {
            (Some(t), None) => (t * n_weights(&lpk) as f64 / 8.0).floor() as u64,
            (None, Some(s)) => s,
            _ => bail!("give one of --target-bpw, --target-size or --plan"),
        };
        let (plan, sens) = pool.install(|| job.plan(budget))?;
        (plan, Some(sens))
    };
    let measured_secs = started.elapsed().as_secs_f64();
    if let Some(path) = &b.save_plan {
        let mut v = serde_json::to_value(&plan)?;
        if let Some(s) = &sens {
            v["sensitivities"] = serde_json::to_value(s)?;
        }
        llamapack_format::output::write_file(
            path,
            (serde_json::to_string_pretty(&v)? + "\n").as_bytes(),
        )?;
    }
    if let Some(s) = &sens
        && !args.json
    {
        eprintln!(
            "measured {} tensors in {:.1} s: second moments {:.1} s, candidates {:.1} s, KLD probes {:.1} s",
            s.tensors.len(),
            s.seconds,
            s.seconds_moments,
            s.seconds_candidates,
            s.seconds_probes
        );
    }
    if b.dry_run {
        print_plan(args, &plan, measured_secs)?;
        return Ok(ExitCode::SUCCESS);
    }
    let types = plan.types()?;
    let name = match (b.target_bpw, b.target_size) {
        (Some(t), _) => format!("target-bpw {t}"),
        (_, Some(s)) => format!("target-size {s}"),
        _ => "plan".into(),
    };
    let record = json!({
        "target_bpw": b.target_bpw,
        "target_size": b.target_size,
        "calibration": { "file": calib.display().to_string(), "sha256": text_sha,
                         "ctx": b.ctx, "windows": windows.n, "probe_windows": settings.probe_windows.min(windows.n), "probe_tokens": settings.probe_tokens.min(b.ctx) },
        "optimize": settings.optimize,
        "plan": plan,
        "sensitivities": sens,
    });
    let done =
        pool.install(|| job.write(&types, &args.output, name, record, args.allow_requantize))?;
    let secs = started.elapsed().as_secs_f64();
    let doc = json!({
        "input": args.input.display().to_string(),
        "output": args.output.display().to_string(),
        "plan": plan,
        "output_bytes": done.output_bytes,
        "seconds": secs,
        "measure_seconds": measured_secs,
        "measure_phases": sens.as_ref().map(|s| json!({
            "second_moments": s.seconds_moments,
            "candidates": s.seconds_candidates,
            "probes": s.seconds_probes,
        })),
        "tensors": done.tensors,
    });
    if super::quantize::report(args, &doc)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} → {}: {} → {} ({:.3} bpw, predicted mean KLD {:.5}) in {secs:.1} s ({measured_secs:.1} s measuring)",
        args.input.display(),
        args.output.display(),
        ui::human_bytes(lpk.file_len()),
        ui::human_bytes(done.output_bytes),
        plan.bits_per_weight,
        plan.predicted_kld,
    )?;
    writeln!(out, "types: {}", mix(&plan))?;
    Ok(ExitCode::SUCCESS)
}

/// `q4_k ×120, q6_k ×31, …` by tensor count.
fn mix(plan: &BudgetPlan) -> String {
    let mut m: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for t in &plan.tensors {
        let e = m.entry(t.dtype.as_str()).or_default();
        e.0 += 1;
        e.1 += t.bytes;
    }
    m.iter()
        .map(|(d, (n, bytes))| format!("{d} ×{n} ({})", ui::human_bytes(*bytes)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_plan(args: &Args, plan: &BudgetPlan, secs: f64) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(plan)?)?;
        return Ok(());
    }
    let width = plan
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    writeln!(
        out,
        "  {:width$}  {:>6}  {:>12}  {:>12}",
        "tensor", "type", "bytes", "pred. ΔKLD"
    )?;
    for t in &plan.tensors {
        writeln!(
            out,
            "  {:width$}  {:>6}  {:>12}  {:>12.3e}",
            t.name, t.dtype, t.bytes, t.predicted
        )?;
    }
    writeln!(
        out,
        "total: {} bytes of a budget of {} ({:.3} bpw), predicted mean KLD {:.5}; measured in {secs:.1} s",
        plan.bytes, plan.budget_bytes, plan.bits_per_weight, plan.predicted_kld
    )?;
    writeln!(out, "types: {}", mix(plan))?;
    Ok(())
}

/// What encoding and writing a planned model needs.
pub struct Job<'a> {
    /// The input model.
    pub lpk: &'a Lpk,
    /// It, loaded.
    pub model: &'a Model<'a>,
    /// Its path (for provenance).
    pub input: &'a Path,
    /// Calibration tokens and their windows.
    pub tokens: &'a [u32],
    /// The windows of `tokens`.
    pub windows: &'a Windows,
    /// The calibration settings.
    pub settings: &'a Settings,
}

impl Job<'_> {
    /// Measures every tensor and solves for `budget_bytes` (all tensors' bytes).
    pub fn plan(&self, budget_bytes: u64) -> anyhow::Result<(BudgetPlan, Sensitivities)> {
        let bar = ui::count_bar(0, "measure");
        let sens = calibrate::measure(
            self.model,
            self.tokens,
            self.windows,
            self.settings,
            &|done, total, name| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(name.to_owned());
            },
        )?;
        bar.finish_and_clear();
        let planned: std::collections::BTreeSet<&str> =
            sens.tensors.iter().map(|t| t.name.as_str()).collect();
        let fixed: u64 = self
            .lpk
            .tensors()
            .filter(|t| !planned.contains(t.name))
            .map(|t| t.bytes.len() as u64)
            .sum();
        let plan = allocate(&sens, budget_bytes, fixed, n_weights(self.lpk))?;
        Ok((plan, sens))
    }

    /// Encodes every tensor of `types` in its type and writes the `.lpk` to `output`, the
    /// recipe named `name`, `record` in the provenance's `quantization.budget`.
    pub fn write(
        &self,
        types: &BTreeMap<String, llamapack_format::DType>,
        output: &Path,
        name: String,
        record: serde_json::Value,
        allow_requantize: bool,
    ) -> anyhow::Result<pipeline::Quantized> {
        for t in types.keys() {
            self.lpk.tensor(t).map_err(|_| {
                anyhow::anyhow!("plan: tensor `{t}` is not in {}", self.input.display())
            })?;
        }
        let bar = ui::count_bar(types.len() as u64, "encode");
        let encoded = calibrate::encode(
            self.model,
            self.tokens,
            self.windows,
            self.settings,
            types,
            &|done, _| bar.set_position(done as u64),
        )?;
        bar.finish_and_clear();
        let mut pplan = pipeline::plan(self.lpk, &Recipe::parse("f16")?)?;
        for t in &mut pplan.tensors {
            t.to = types.get(&t.name).copied().unwrap_or(t.from);
            t.fallback = None;
        }
        pplan.recipe.name = name;
        let opts = pipeline::Options {
            allow_requantize,
            encoded,
            budget: Some(record),
            ..Default::default()
        };
        super::quantize::quantize_planned(self.lpk, &pplan, self.input, output, &opts)
    }
}

/// Elements of every tensor of `lpk`.
pub fn n_weights(lpk: &Lpk) -> u64 {
    lpk.tensors().map(|t| t.shape.iter().product::<u64>()).sum()
}
