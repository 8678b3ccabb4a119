//! `llamapack inspect`: what is in a model file (`.lpk` or GGUF), a checkpoint or an imatrix.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use llamapack_format::Lpk;
use serde_json::json;

use crate::ui::human_bytes;

/// Show what is in a model file (.lpk or llama-architecture GGUF) — or in a checkpoint before
/// converting it, or in an importance matrix (llama.cpp's GGUF imatrix or legacy .dat, e.g.
/// from `llamapack imatrix`).
///
/// For a model: the config, a tokenizer summary, where the file came from (source files with
/// their sha256, tool version, quantization recipe, stored accuracy report; for a GGUF its
/// name and llama.cpp file type) and one row per tensor: name, dtype, shape, bytes and crc32c
/// (a GGUF has no checksums). The text fits 100 columns; --json has everything.
///
/// For a Meta directory, a Hugging Face directory, a .pth or a .safetensors file: the tensors
/// it holds (for a directory, the merged view under Meta names: what the .lpk will hold) and
/// the model config read from params.json / config.json.
///
/// For an importance matrix: its datasets and chunks, and per tensor the input width, the
/// token count and the smallest, mean and largest mean squared activation E[x²].
///
/// Use --json for scripts.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A .lpk or GGUF model, a checkpoint directory / .pth / .safetensors file, or an imatrix.
    pub file: PathBuf,
    /// Emit JSON: {"config", "tokenizer", "provenance", "tensors": [{"name", "dtype", "shape",
    /// "bytes", "checksum"}], ...}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if super::imatrix::is_imatrix_file(&args.file) {
        return super::imatrix::inspect(&args.file, args.json);
    }
    if !super::is_model_file(&args.file) && is_checkpoint(&args.file) {
        return inspect_checkpoint(args);
    }
    let lpk = llamapack_convert::open_model(&args.file)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &to_json(&lpk))?;
        writeln!(out)?;
    } else {
        print_text(&lpk, &mut out).context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn tokenizer_summary(lpk: &Lpk) -> serde_json::Value {
    let t = lpk.tokenizer();
    json!({
        "kind": t.kind,
        "n_pieces": t.pieces.len(),
        "bos_id": t.bos_id,
        "eos_id": t.eos_id,
        "unk_id": t.unk_id,
        "pad_id": t.pad_id,
        "add_bos": t.add_bos,
        "add_eos": t.add_eos,
        "add_dummy_prefix": t.add_dummy_prefix,
        "byte_fallback": t.byte_fallback,
        "n_merges": t.merges.len(),
        "chat_template": t.chat_template.is_some(),
    })
}

/// The `--json` document.
pub fn to_json(lpk: &Lpk) -> serde_json::Value {
    let tensors: Vec<_> = lpk
        .tensors()
        .map(|t| {
            json!({
                "name": t.name,
                "dtype": t.dtype.name(),
                "shape": t.shape,
                "bytes": t.bytes.len(),
                "checksum": t.crc32c.map(|c| format!("{c:08x}")),
            })
        })
        .collect();
    let (major, minor) = lpk.version();
    json!({
        "file": {
            "path": lpk.file_name(),
            "bytes": lpk.file_len(),
            "format": if lpk.has_checksums() { "lpk" } else { "gguf" },
            "format_version": if lpk.has_checksums() { format!("{major}.{minor}") } else { major.to_string() },
        },
        "config": lpk.config(),
        "tokenizer": tokenizer_summary(lpk),
        "provenance": lpk.provenance(),
        "tensors": tensors,
        "blobs": lpk.blobs().iter().map(|b| json!({"name": b.name, "bytes": b.nbytes})).collect::<Vec<_>>(),
        "summary": summary(lpk),
    })
}

fn summary(lpk: &Lpk) -> serde_json::Value {
    let mut by_dtype = std::collections::BTreeMap::<&str, (usize, u64, u64)>::new();
    let (mut params, mut bytes) = (0u64, 0u64);
    for t in lpk.tensors() {
        let e = by_dtype.entry(t.dtype.name()).or_default();
        e.0 += 1;
        e.1 += t.numel() as u64;
        e.2 += t.bytes.len() as u64;
        params += t.numel() as u64;
        bytes += t.bytes.len() as u64;
    }
    json!({
        "n_tensors": lpk.len(),
        "n_params": params,
        "tensor_bytes": bytes,
        "bits_per_weight": if params == 0 { 0.0 } else { bytes as f64 * 8.0 / params as f64 },
        "dtypes": by_dtype.iter().map(|(k, (n, p, b))| (k.to_string(), json!({"tensors": n, "params": p, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Widest line of the text output, in characters.
pub const COLUMNS: usize = 100;

fn print_text(lpk: &Lpk, out: &mut impl Write) -> std::io::Result<()> {
    let c = lpk.config();
    let (major, minor) = lpk.version();
    let kind = if lpk.has_checksums() {
        format!(".lpk v{major}.{minor}")
    } else {
        format!("GGUF v{major}, read in place (no checksums)")
    };
    writeln!(
        out,
        "{} — {kind}, {}",
        lpk.file_name(),
        human_bytes(lpk.file_len())
    )?;
    writeln!(out, "\nconfig")?;
    writeln!(
        out,
        "  {} · dim {} · {} layers · {} heads ({} kv, head_dim {}) · ffn {} · vocab {}",
        c.arch,
        c.dim,
        c.n_layers,
        c.n_heads,
        c.n_kv_heads,
        c.head_dim(),
        c.ffn_dim,
        c.vocab_size
    )?;
    writeln!(
        out,
        "  norm_eps {:e} · rope_theta {} · context {} · output {}",
        c.norm_eps,
        c.rope_theta,
        c.context_length,
        if c.tied_output {
            "tied to embeddings"
        } else {
            "separate"
        }
    )?;
    let t = lpk.tokenizer();
    let id = |v: Option<u32>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    writeln!(out, "\ntokenizer")?;
    writeln!(
        out,
        "  {:?} · {} pieces{}{}",
        t.kind,
        t.pieces.len(),
        if t.merges.is_empty() {
            String::new()
        } else {
            format!(" · {} merges", t.merges.len())
        },
        if t.chat_template.is_some() {
            " · chat template"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "  bos {} · eos {} · unk {} · pad {} · add_bos {} · byte_fallback {} · dummy_prefix {}",
        id(t.bos_id),
        id(t.eos_id),
        id(t.unk_id),
        id(t.pad_id),
        t.add_bos,
        t.byte_fallback,
        t.add_dummy_prefix
    )?;
    print_provenance(lpk, out)?;
    print_tensors(lpk, out)
}

/// The provenance, each part in words: sources, quantization, the stored accuracy report and
/// the notes, wrapped to [`COLUMNS`].
fn print_provenance(lpk: &Lpk, out: &mut impl Write) -> std::io::Result<()> {
    let p = lpk.provenance();
    writeln!(out, "\nprovenance")?;
    if lpk.has_checksums() {
        writeln!(
            out,
            "  written by {} from {} input",
            p.tool, p.source_format
        )?;
    }
    for s in &p.sources {
        writeln!(out, "  source {}  {}", s.name, human_bytes(s.bytes))?;
        writeln!(out, "    sha256 {}", s.sha256)?;
    }
    if let Some(q) = &p.quantization {
        for line in quantization_lines(q) {
            write_wrapped(out, &line, 2)?;
        }
    }
    if let Some(a) = &p.accuracy {
        for line in accuracy_lines(a) {
            write_wrapped(out, &line, 2)?;
        }
    }
    for (k, v) in &p.notes {
        match v {
            serde_json::Value::Array(items) if items.iter().all(serde_json::Value::is_string) => {
                writeln!(out, "  {k}:")?;
                for item in items {
                    write_wrapped(out, &format!("- {}", item.as_str().unwrap_or_default()), 4)?;
                }
            }
            _ => write_wrapped(out, &format!("{k}: {}", note_text(k, v)), 2)?,
        }
    }
    Ok(())
}

/// A provenance note as words: a GGUF file type by its name, a short value as it is, a long
/// object or array by its size.
fn note_text(key: &str, v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Number(n) if key == "gguf_file_type" => n.as_u64().map_or_else(
            || n.to_string(),
            |id| llamapack_quantize::recipe::llama_ftype_words(id as u32),
        ),
        Value::String(s) => s.clone(),
        Value::Object(m)
            if m.values().all(|x| !x.is_object() && !x.is_array()) && v.to_string().len() <= 80 =>
        {
            m.iter()
                .map(|(k, x)| match x {
                    Value::String(t) => format!("{k} {t}"),
                    _ => format!("{k} {x}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
        Value::Object(m) => format!("{} entries (see --json)", m.len()),
        Value::Array(a)
            if v.to_string().len() > 60 || a.iter().any(|x| x.is_object() || x.is_array()) =>
        {
            format!("{} items (see --json)", a.len())
        }
        _ => v.to_string(),
    }
}

/// The quantization record in words.
fn quantization_lines(q: &serde_json::Value) -> Vec<String> {
    use std::fmt::Write as _;
    let recipe = q.get("recipe").and_then(|r| r.as_str()).unwrap_or("?");
    let named = llamapack_quantize::recipe::llama_ftype(recipe)
        .and_then(llamapack_quantize::recipe::llama_ftype_name)
        .map_or_else(String::new, |n| format!(" ({n} in llama.cpp)"));
    let mut head = format!("quantized with the {recipe} recipe{named}");
    for (key, what) in [("output_type", "output"), ("embedding_type", "embeddings")] {
        if let Some(t) = q.get(key).and_then(|v| v.as_str()) {
            let _ = write!(head, ", {what} {t}");
        }
    }
    if q.get("pure").and_then(serde_json::Value::as_bool) == Some(true) {
        head.push_str(", pure");
    }
    let mut lines = vec![head];
    if let Some(o) = q.get("tensor_type_overrides").and_then(|v| v.as_array())
        && !o.is_empty()
    {
        let list: Vec<String> = o
            .iter()
            .map(|x| {
                format!(
                    "{}={}",
                    x.get("pattern").and_then(|v| v.as_str()).unwrap_or("?"),
                    x.get("dtype").and_then(|v| v.as_str()).unwrap_or("?")
                )
            })
            .collect();
        lines.push(format!("  tensor types: {}", list.join(", ")));
    }
    if let Some(im) = q.get("imatrix").filter(|v| v.is_object()) {
        lines.push(format!(
            "  importance matrix {} ({} entries, {} chunks of {} tokens)",
            im.get("file").and_then(|v| v.as_str()).unwrap_or("?"),
            im.get("entries").unwrap_or(&serde_json::Value::Null),
            im.get("chunk_count").unwrap_or(&serde_json::Value::Null),
            im.get("chunk_size").unwrap_or(&serde_json::Value::Null)
        ));
    }
    if let Some(b) = q.get("budget").filter(|v| v.is_object()) {
        lines.extend(budget_lines(b));
    }
    if let Some(f) = q.get("fallbacks").and_then(|v| v.as_array())
        && !f.is_empty()
    {
        lines.push(format!(
            "  {} tensors fell back to another type (see --json)",
            f.len()
        ));
    }
    lines
}

/// The size-budget record (`quantize --target-bpw/--target-size/--plan`) in words: the budget,
/// the calibration, the plan's totals and type mix, the most sensitive tensors.
fn budget_lines(b: &serde_json::Value) -> Vec<String> {
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    let plan = b.get("plan").cloned().unwrap_or_default();
    let target = match (num(b, "target_bpw"), num(b, "target_size")) {
        (Some(t), _) => format!("{t} bpw"),
        (_, Some(s)) => format!("{s} bytes"),
        _ => "a saved plan".to_owned(),
    };
    let cal = b.get("calibration").cloned().unwrap_or_default();
    let mut lines = vec![format!(
        "  size budget {target}: {} bytes, {:.3} bpw, predicted mean KLD {:.5}; calibrated on {} ({} windows of {}, {} probe windows){}",
        plan.get("bytes").unwrap_or(&serde_json::Value::Null),
        num(&plan, "bits_per_weight").unwrap_or(f64::NAN),
        num(&plan, "predicted_kld").unwrap_or(f64::NAN),
        cal.get("file").and_then(|v| v.as_str()).unwrap_or("?"),
        cal.get("windows").unwrap_or(&serde_json::Value::Null),
        cal.get("ctx").unwrap_or(&serde_json::Value::Null),
        cal.get("probe_windows").unwrap_or(&serde_json::Value::Null),
        if b.get("optimize").and_then(serde_json::Value::as_bool) == Some(true) {
            ", error-feedback rounding"
        } else {
            ""
        }
    )];
    let tensors = plan
        .get("tensors")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let mut mix = std::collections::BTreeMap::<String, usize>::default();
    for t in &tensors {
        *mix.entry(
            t.get("dtype")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_owned(),
        )
        .or_default() += 1;
    }
    let mix: Vec<String> = mix.iter().map(|(d, n)| format!("{d} ×{n}")).collect();
    lines.push(format!("  plan: {}", mix.join(", ")));
    if let Some(sens) = b
        .pointer("/sensitivities/tensors")
        .and_then(|v| v.as_array())
    {
        let mut by: Vec<(&str, f64, &str)> = sens
            .iter()
            .map(|t| {
                (
                    t.get("name").and_then(|v| v.as_str()).unwrap_or("?"),
                    num(t, "probe_kld").unwrap_or(0.0),
                    t.get("probe").and_then(|v| v.as_str()).unwrap_or("?"),
                )
            })
            .collect();
        by.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = by
            .iter()
            .take(3)
            .map(|(n, k, p)| format!("{n} ({k:.2e} as {p})"))
            .collect();
        lines.push(format!(
            "  most sensitive (KLD with only that tensor quantized): {} (all {} in --json)",
            top.join(", "),
            by.len()
        ));
    }
    lines
}

/// The stored accuracy report (`eval --store`) in words.
fn accuracy_lines(a: &serde_json::Value) -> Vec<String> {
    let text = |k: &str| a.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_owned();
    let s = a.get("summary").cloned().unwrap_or_default();
    let f = |k: &str| s.get(k).and_then(serde_json::Value::as_f64);
    // A figure, or n/a (null: too few tokens for an uncertainty).
    let fig = |k: &str, scale: f64, prec: usize| {
        f(k).map_or_else(|| "n/a".to_string(), |v| format!("{:.prec$}", v * scale))
    };
    let mut lines = vec![format!(
        "accuracy (eval --store): against {} on {}, ctx {}, {} windows, {} tokens scored",
        text("reference"),
        text("data"),
        a.get("ctx").unwrap_or(&serde_json::Value::Null),
        a.get("windows").unwrap_or(&serde_json::Value::Null),
        s.get("n_tokens").unwrap_or(&serde_json::Value::Null)
    )];
    lines.push(format!(
        "  PPL {} (reference {}) · PPL ratio {} ± {} · mean KLD {} ± {}",
        fig("ppl", 1.0, 4),
        fig("ppl_base", 1.0, 4),
        fig("ppl_ratio", 1.0, 4),
        fig("ppl_ratio_unc", 1.0, 4),
        fig("kld_mean", 1.0, 6),
        fig("kld_unc", 1.0, 6)
    ));
    lines.push(format!(
        "  p99 KLD {} · max KLD {} · same top token {} ± {} % · RMS Δp {} %",
        fig("kld_p99", 1.0, 6),
        fig("kld_max", 1.0, 6),
        fig("top1_agreement", 100.0, 2),
        fig("top1_unc", 100.0, 2),
        fig("rms_dp", 100.0, 3)
    ));
    if let Some(sha) = a.get("data_sha256").and_then(|v| v.as_str()) {
        lines.push(format!("  data sha256 {sha}"));
    }
    lines
}

/// Writes `text` at `indent`, wrapped at spaces to [`COLUMNS`] (continuations two further in;
/// a word longer than a line is cut).
fn write_wrapped(out: &mut impl Write, text: &str, indent: usize) -> std::io::Result<()> {
    for line in wrap(text, indent, COLUMNS) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `text` at `indent`, wrapped at spaces so that no line is wider than `width` characters.
pub fn wrap(text: &str, indent: usize, width: usize) -> Vec<String> {
    let lead = text.chars().take_while(|c| *c == ' ').count();
    let first = " ".repeat(indent + lead);
    let next = " ".repeat(indent + lead + 2);
    let mut lines = Vec::new();
    let mut line = first.clone();
    let mut empty = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = line.chars().count();
            let need = word.len() + usize::from(!empty);
            if used + need <= width {
                if !empty {
                    line.push(' ');
                }
                line.extend(word.iter());
                empty = false;
                break;
            }
            if empty {
                // A word wider than the line: cut it.
                let room = width.saturating_sub(used).max(1);
                let rest = word.split_off(room.min(word.len()));
                line.extend(word.iter());
                lines.push(std::mem::replace(&mut line, next.clone()));
                word = rest;
                if word.is_empty() {
                    break;
                }
                continue;
            }
            lines.push(std::mem::replace(&mut line, next.clone()));
            empty = true;
        }
    }
    if !empty {
        lines.push(line);
    }
    lines
}

/// The tensor table, columns as wide as their widest cell.
fn print_tensors(lpk: &Lpk, out: &mut impl Write) -> std::io::Result<()> {
    let s = summary(lpk);
    writeln!(
        out,
        "\ntensors ({} tensors, {} parameters, {:.3} bits/weight)",
        lpk.len(),
        s["n_params"],
        s["bits_per_weight"].as_f64().unwrap_or(0.0)
    )?;
    let rows: Vec<[String; 5]> = lpk
        .tensors()
        .map(|t| {
            [
                t.name.to_owned(),
                t.dtype.name().to_owned(),
                shape_text(t.shape),
                t.bytes.len().to_string(),
                t.crc32c
                    .map_or_else(|| "-".to_owned(), |c| format!("{c:08x}")),
            ]
        })
        .collect();
    let header = ["name", "dtype", "shape", "bytes", "crc32c"];
    let w: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: [&str; 5]| {
        format!(
            "  {:w0$}  {:w1$}  {:>w2$}  {:>w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        )
    };
    writeln!(out, "{}", line(header))?;
    for r in &rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]))?;
    }
    Ok(())
}

/// True for what `inspect_source` reads rather than a `.lpk`.
fn is_checkpoint(path: &std::path::Path) -> bool {
    if path.is_dir() {
        return true;
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    matches!(ext.as_str(), "pth" | "pt" | "bin" | "safetensors")
}

fn inspect_checkpoint(args: &Args) -> anyhow::Result<ExitCode> {
    let listing = llamapack_convert::inspect_source(&args.file)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let tensors: Vec<_> = listing
            .tensors
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "source_name": t.source_name,
                    "dtype": t.dtype.to_string(),
                    "shape": t.shape,
                    "pieces": t.pieces,
                })
            })
            .collect();
        let doc = json!({
            "file": {"path": args.file.display().to_string(), "format": listing.format.name()},
            "files": listing.files,
            "config": listing.config,
            "tensors": tensors,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{} — {} checkpoint ({} files)",
        args.file.display(),
        listing.format.name(),
        listing.files.len()
    )?;
    for f in &listing.files {
        writeln!(out, "  {f}")?;
    }
    if let Some(c) = &listing.config {
        writeln!(
            out,
            "\nconfig\n  dim {} · {} layers · {} heads ({} kv) · ffn {} · vocab {}",
            c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ffn_dim, c.vocab_size,
        )?;
        writeln!(
            out,
            "  context {} · rope_theta {} · norm_eps {:e}",
            c.context_length, c.rope_theta, c.norm_eps
        )?;
    }
    writeln!(out, "\ntensors ({})", listing.tensors.len())?;
    let width = listing
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let shape_w = listing
        .tensors
        .iter()
        .map(|t| shape_text(&t.shape).chars().count())
        .max()
        .unwrap_or(5);
    for t in &listing.tensors {
        let shape = shape_text(&t.shape);
        let from = match (&t.source_name, t.pieces) {
            (Some(s), _) => format!("  ← {s}"),
            (None, n) if n > 1 => format!("  ← {n} shards"),
            _ => String::new(),
        };
        let row = format!(
            "  {:width$}  {:5}  {:>shape_w$}",
            t.name,
            t.dtype.to_string(),
            shape
        );
        // The source name goes on its own line when the row would be too wide.
        if row.chars().count() + from.chars().count() <= COLUMNS {
            writeln!(out, "{row}{from}")?;
        } else {
            writeln!(out, "{row}\n   {from}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A tensor shape as `rows×cols`.
fn shape_text(shape: &[u64]) -> String {
    shape
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("×")
}
