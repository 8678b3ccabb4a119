//! `llamapack inspect`: what is in a `.lpk` file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use llamapack_format::Lpk;
use serde_json::json;

use crate::ui::human_bytes;

/// Show what is in a .lpk file — or in a checkpoint before converting it, or in an importance
/// matrix (llama.cpp's GGUF imatrix or legacy .dat, e.g. from `llamapack imatrix`).
///
/// For a .lpk: the model config, a tokenizer summary, where the file came from (source files
/// with their sha256, tool version, quantization recipe, stored accuracy report) and one row
/// per tensor: name, dtype, shape, bytes and crc32c.
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
    /// A .lpk file, a checkpoint directory / .pth / .safetensors file, or an imatrix file.
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
    if is_checkpoint(&args.file) {
        return inspect_checkpoint(args);
    }
    let lpk = Lpk::open(&args.file)?;
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
                "checksum": format!("{:08x}", t.crc32c),
            })
        })
        .collect();
    let (major, minor) = lpk.version();
    json!({
        "file": {
            "path": lpk.file_name(),
            "bytes": lpk.file_len(),
            "format_version": format!("{major}.{minor}"),
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

fn print_text(lpk: &Lpk, out: &mut impl Write) -> std::io::Result<()> {
    let c = lpk.config();
    let (major, minor) = lpk.version();
    writeln!(
        out,
        "{} — .lpk v{major}.{minor}, {}",
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
        "  {:?} · {} pieces · bos {} eos {} unk {} pad {} · byte_fallback {} · dummy_prefix {}{}",
        t.kind,
        t.pieces.len(),
        id(t.bos_id),
        id(t.eos_id),
        id(t.unk_id),
        id(t.pad_id),
        t.byte_fallback,
        t.add_dummy_prefix,
        if t.merges.is_empty() {
            String::new()
        } else {
            format!(" · {} merges", t.merges.len())
        }
    )?;
    let p = lpk.provenance();
    writeln!(out, "\nprovenance")?;
    writeln!(
        out,
        "  written by {} from {} input",
        p.tool, p.source_format
    )?;
    for s in &p.sources {
        writeln!(out, "  {}  {}  {}", s.sha256, human_bytes(s.bytes), s.name)?;
    }
    if let Some(q) = &p.quantization {
        let recipe = q.get("recipe").and_then(|r| r.as_str()).unwrap_or("?");
        writeln!(out, "  quantization recipe: {recipe}")?;
    }
    if let Some(a) = &p.accuracy {
        writeln!(
            out,
            "  accuracy: {}",
            serde_json::to_string(a).unwrap_or_default()
        )?;
    }
    for (k, v) in &p.notes {
        let text = v.to_string();
        match v {
            serde_json::Value::Object(m) if text.len() > 160 => {
                writeln!(out, "  {k}: {} entries (see --json)", m.len())?;
            }
            serde_json::Value::Array(a) if text.len() > 160 => {
                writeln!(out, "  {k}: {} items (see --json)", a.len())?;
            }
            _ => writeln!(out, "  {k}: {text}")?,
        }
    }
    let s = summary(lpk);
    writeln!(
        out,
        "\ntensors ({} tensors, {} parameters, {:.3} bits/weight)",
        lpk.len(),
        s["n_params"],
        s["bits_per_weight"].as_f64().unwrap_or(0.0)
    )?;
    let width = lpk
        .tensors()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "  {:width$}  {:6}  {:>16}  {:>12}  {:8}",
        "name", "dtype", "shape", "bytes", "crc32c"
    )?;
    for t in lpk.tensors() {
        let shape = shape_text(t.shape);
        writeln!(
            out,
            "  {:width$}  {:6}  {:>16}  {:>12}  {:08x}",
            t.name,
            t.dtype.name(),
            shape,
            t.bytes.len(),
            t.crc32c
        )?;
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
            "\nconfig\n  dim {} · {} layers · {} heads ({} kv) · ffn {} · vocab {} · context {} · rope_theta {} · eps {:e}",
            c.dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.ffn_dim,
            c.vocab_size,
            c.context_length,
            c.rope_theta,
            c.norm_eps
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
    for t in &listing.tensors {
        let shape = shape_text(&t.shape);
        let from = match (&t.source_name, t.pieces) {
            (Some(s), _) => format!("  ← {s}"),
            (None, n) if n > 1 => format!("  ← {n} shards"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {:width$}  {:6}  {:>16}{from}",
            t.name,
            t.dtype.to_string(),
            shape
        )?;
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
