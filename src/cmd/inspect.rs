//! `llamapack inspect`: what is in a `.lpk` file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use llamapack_format::Lpk;
use serde_json::json;

use crate::ui::human_bytes;

/// Show a .lpk file's config, tokenizer, provenance and tensor table.
///
/// Prints the model config, a tokenizer summary, where the file came from (source files with
/// their sha256, tool version, quantization recipe, stored accuracy report) and one row per
/// tensor: name, dtype, shape, bytes and crc32c. Use --json for scripts.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The file to inspect.
    pub file: PathBuf,
    /// Emit JSON: {"config", "tokenizer", "provenance", "tensors": [{"name", "dtype", "shape",
    /// "bytes", "checksum"}], ...}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
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
    writeln!(out, "{} — .lpk v{major}.{minor}, {}", lpk.file_name(), human_bytes(lpk.file_len()))?;
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
        if c.tied_output { "tied to embeddings" } else { "separate" }
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
        if t.merges.is_empty() { String::new() } else { format!(" · {} merges", t.merges.len()) }
    )?;
    let p = lpk.provenance();
    writeln!(out, "\nprovenance")?;
    writeln!(out, "  written by {} from {} input", p.tool, p.source_format)?;
    for s in &p.sources {
        writeln!(out, "  {}  {}  {}", s.sha256, human_bytes(s.bytes), s.name)?;
    }
    if let Some(q) = &p.quantization {
        let recipe = q.get("recipe").and_then(|r| r.as_str()).unwrap_or("?");
        writeln!(out, "  quantization recipe: {recipe}")?;
    }
    if let Some(a) = &p.accuracy {
        writeln!(out, "  accuracy: {}", serde_json::to_string(a).unwrap_or_default())?;
    }
    for (k, v) in &p.notes {
        writeln!(out, "  {k}: {v}")?;
    }
    let s = summary(lpk);
    writeln!(
        out,
        "\ntensors ({} tensors, {} parameters, {:.3} bits/weight)",
        lpk.len(),
        s["n_params"],
        s["bits_per_weight"].as_f64().unwrap_or(0.0)
    )?;
    let width = lpk.tensors().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    writeln!(out, "  {:width$}  {:6}  {:>16}  {:>12}  {:8}", "name", "dtype", "shape", "bytes", "crc32c")?;
    for t in lpk.tensors() {
        let shape = t.shape.iter().map(u64::to_string).collect::<Vec<_>>().join("×");
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
