//! The quantization pipeline as a library: **plan** (which tensor gets which type) → **encode**
//! (rows in parallel on the current rayon pool, the next tensor while the last is written) →
//! **write** (a streaming `.lpk`, renamed into place only when complete). `llamapack quantize`, `demo` and calibrated quantization call it;
//! the CLI only parses arguments and prints.
//!
//! ```no_run
//! use llamapack_format::{Lpk, SourceFile};
//! use llamapack_quantize::pipeline::{self, Options};
//! use llamapack_quantize::recipe::Recipe;
//!
//! let lpk = Lpk::open("7b-f16.lpk")?;
//! let recipe = Recipe::parse("q4_k_m").unwrap();
//! let plan = pipeline::plan(&lpk, &recipe)?;
//! let parent = || Ok(SourceFile { name: "7b-f16.lpk".into(), sha256: String::new(), bytes: lpk.file_len() });
//! let done = pipeline::quantize(&lpk, &plan, "7b-q4_k_m.lpk".as_ref(), parent, &Options::default(), &|_| {})?;
//! println!("{} tensors, {} bytes", done.tensors.len(), done.output_bytes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use llamapack_format::{DType, Lpk, LpkWriter, Metadata, SourceFile, TensorView};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::Error;
use crate::imatrix::Imatrix;
use crate::recipe::{ModelShape, Recipe};
use crate::stats::{ErrorReport, ErrorStats};

/// One tensor of a [`Plan`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// Tensor name (Meta naming).
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
    /// The type it has in the input.
    pub from: DType,
    /// The type it gets.
    pub to: DType,
    /// Why `to` is not what the recipe asked for (row length not a whole number of blocks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// Which tensor gets which type, before any work is done.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// The recipe the plan follows.
    pub recipe: Recipe,
    /// Every tensor of the input, in file order.
    pub tensors: Vec<Planned>,
}

impl Plan {
    /// Bytes the tensors take once encoded.
    pub fn bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.to.tensor_bytes(&t.shape).unwrap_or(0) as u64)
            .sum()
    }

    /// Bits per weight over every tensor.
    pub fn bits_per_weight(&self) -> f64 {
        let n: u64 = self
            .tensors
            .iter()
            .map(|t| t.shape.iter().product::<u64>())
            .sum();
        if n == 0 {
            0.0
        } else {
            self.bytes() as f64 * 8.0 / n as f64
        }
    }

    /// The fallback messages, one per tensor that needed one.
    pub fn fallbacks(&self) -> Vec<String> {
        self.tensors
            .iter()
            .filter_map(|t| t.fallback.clone())
            .collect()
    }

    /// Tensors already quantized in the input that the plan re-encodes to another type.
    pub fn requantized(&self) -> Vec<&Planned> {
        self.tensors
            .iter()
            .filter(|t| t.from.is_quantized() && t.from != t.to)
            .collect()
    }
}

/// Plans `lpk` with `recipe`, tensor for tensor as llama-quantize does for the llama
/// architecture (the model's config supplies the layer and head counts and the tied output).
pub fn plan<B: AsRef<[u8]>>(lpk: &Lpk<B>, recipe: &Recipe) -> Result<Plan, Error> {
    let mut recipe = recipe.clone();
    let cfg = lpk.config();
    recipe.tied_output = cfg.tied_output;
    let shape = ModelShape::new(cfg.n_layers, cfg.n_heads, cfg.n_kv_heads);
    let planned = recipe
        .plan(lpk.tensors().map(|t| (t.name, t.shape)), shape)
        .map_err(|e| Error::Recipe {
            file: lpk.file_name().to_owned(),
            source: e,
        })?;
    let tensors = lpk
        .tensors()
        .zip(planned.tensors)
        .map(|(t, p)| {
            let fallback = p.choice().fallback;
            Planned {
                name: p.name,
                shape: p.shape,
                from: t.dtype,
                to: p.dtype,
                fallback,
            }
        })
        .collect();
    Ok(Plan { recipe, tensors })
}

/// Options of [`quantize`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// Re-encode tensors that are already quantized in the input (llama-quantize's
    /// `--allow-requantize`); without it such a plan is refused.
    pub allow_requantize: bool,
    /// Importance weights for the encoders (`--imatrix`), as llama-quantize uses them.
    pub imatrix: Option<ImatrixUse>,
    /// Tensors already encoded in their planned type (calibrated quantization encodes with its
    /// own rounding): written as given, their error measured against the input.
    pub encoded: BTreeMap<String, Vec<u8>>,
    /// Recorded in the provenance's `quantization.budget` (the size budget, the plan and the
    /// measured sensitivities of calibrated quantization).
    pub budget: Option<serde_json::Value>,
}

/// An importance matrix and where it came from, for [`Options::imatrix`].
#[derive(Clone, Debug, PartialEq)]
pub struct ImatrixUse {
    /// The data (entries by `.lpk` tensor name), already filtered by
    /// [`ImatrixUse::filter`] if the user asked.
    pub imatrix: Imatrix,
    /// The file's name, as recorded in provenance and in GGUF's `quantize.imatrix.file`.
    pub file: String,
    /// The file's sha256.
    pub sha256: String,
}

impl ImatrixUse {
    /// llama-quantize's `--exclude-weights` / `--include-weights`: drops the entries whose
    /// llama.cpp (GGUF) name contains one of `exclude`, then, if `include` is not empty, keeps
    /// only those whose GGUF name contains one of `include`.
    pub fn filter(&mut self, include: &[String], exclude: &[String]) {
        let gguf = |name: &str| crate::recipe::gguf_name(name).unwrap_or_else(|| name.to_owned());
        let names: Vec<String> = self.imatrix.entries().map(|(n, _)| n.to_owned()).collect();
        for name in names {
            let g = gguf(&name);
            let excluded = exclude.iter().any(|p| g.contains(p.as_str()));
            let included = include.is_empty() || include.iter().any(|p| g.contains(p.as_str()));
            if excluded || !included {
                self.imatrix.remove(&name);
            }
        }
    }
}

/// One row of the error report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorReport {
    /// Tensor name.
    pub name: String,
    /// Its type in the input.
    pub source_dtype: String,
    /// Its type in the output.
    pub dtype: String,
    /// Encoded bytes.
    pub bytes: u64,
    /// dequantize(quantize(w)) against w.
    #[serde(flatten)]
    pub error: ErrorReport,
}

/// What [`quantize`] wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quantized {
    /// Per-tensor error report, in file order.
    pub tensors: Vec<TensorReport>,
    /// The fallback messages of the plan.
    pub fallbacks: Vec<String>,
    /// Size of the output file.
    pub output_bytes: u64,
    /// With an imatrix: the quantized tensors it has no weights for (quantized without them, as
    /// llama-quantize does after its "did not find weights" warning).
    pub without_weights: Vec<String>,
}

/// Encodes `lpk` by `plan` into the `.lpk` file `output`, rows in parallel on the current rayon
/// pool; `progress` is called with the input bytes done after each tensor.
///
/// Every input tensor's checksum is verified as its rows are read (the same parallel pass),
/// before its encoding is written, so a corrupt input is refused (naming the tensor) instead
/// of being laundered into a fresh file with valid checksums.
/// Nothing appears at `output` unless the whole file is written.
pub fn quantize<B: AsRef<[u8]> + Sync>(
    lpk: &Lpk<B>,
    plan: &Plan,
    output: &Path,
    parent: impl FnOnce() -> Result<SourceFile, llamapack_format::Error> + Send,
    opts: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Quantized, Error> {
    let file = lpk.file_name().to_owned();
    let requantized = plan.requantized();
    if !opts.allow_requantize && !requantized.is_empty() {
        let names: Vec<String> = requantized
            .iter()
            .take(4)
            .map(|t| format!("`{}` ({} → {})", t.name, t.from, t.to))
            .collect();
        let more = requantized.len().saturating_sub(names.len());
        return Err(Error::Requantize {
            file,
            count: requantized.len(),
            examples: names.join(", ")
                + &if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
        });
    }
    let in_tensor = |tensor: &str, e: Error| Error::InTensor {
        file: file.clone(),
        tensor: tensor.to_owned(),
        source: Box::new(e),
    };
    if let Some(im) = &opts.imatrix {
        im.imatrix.check_model(&im.file, |name| {
            lpk.tensor(name)
                .ok()
                .filter(|t| t.shape.len() == 2)
                .map(|t| t.row_len())
        })?;
    }
    let mut writer = LpkWriter::create(output)?;
    let mut reports = Vec::with_capacity(plan.tensors.len());
    let mut without_weights = Vec::new();
    let mut types = serde_json::Map::new();
    let mut done = 0u64;
    // One thread encodes tensor after tensor (each one's rows in parallel on the rayon pool) and
    // hands them over through a queue of two, so writing one overlaps encoding the next; another
    // hashes the input for the provenance meanwhile.
    let encode = |p: &Planned| -> Result<Encoded, Error> {
        let t = lpk
            .tensor(&p.name)
            .map_err(|_| in_tensor(&p.name, Error::NotInInput))?;
        let (weights, missing) = match &opts.imatrix {
            Some(im) if p.to.is_quantized() && p.to != t.dtype => {
                let w = im.imatrix.weights(&p.name);
                let missing = w.is_none();
                (w, missing)
            }
            _ => (None, false),
        };
        // the stored checksum is verified in the same parallel pass that reads the rows;
        // tensors encoded elsewhere (calibrated quantization) only have their error measured
        let given = opts.encoded.get(&p.name).map(Vec::as_slice);
        let e =
            encode_rows(&t, p.to, weights.as_deref(), t.crc32c.is_some(), given).map_err(|e| {
                // corrupt bytes can fail the encoding (a NaN): the checksum is the better message
                in_tensor(&p.name, if t.checksum_ok() { e } else { Error::Corrupt })
            })?;
        if t.crc32c.is_some_and(|c| c != e.crc) {
            return Err(in_tensor(&p.name, Error::Corrupt));
        }
        Ok(Encoded {
            chunks: e.chunks,
            stats: e.stats,
            missing,
            source_bytes: t.bytes.len() as u64,
        })
    };
    let parent = std::thread::scope(|s| -> Result<SourceFile, Error> {
        let hashing = s.spawn(parent);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Encoded, Error>>(2);
        s.spawn(move || {
            for p in &plan.tensors {
                let r = encode(p);
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    break;
                }
            }
        });
        for (p, e) in plan.tensors.iter().zip(rx) {
            let e = e?;
            let t = lpk
                .tensor(&p.name)
                .map_err(|_| in_tensor(&p.name, Error::NotInInput))?;
            if e.missing {
                without_weights.push(p.name.clone());
            }
            let mut sink = writer.begin_tensor(t.name, p.to, t.shape)?;
            for c in &e.chunks {
                sink.write(c)?;
            }
            sink.finish()?;
            types.insert(p.name.clone(), json!(p.to.name()));
            reports.push(TensorReport {
                name: p.name.clone(),
                source_dtype: t.dtype.name().to_owned(),
                dtype: p.to.name().to_owned(),
                bytes: e.chunks.iter().map(|c| c.len() as u64).sum(),
                error: e.stats.report(),
            });
            done += e.source_bytes;
            progress(done);
        }
        Ok(hashing.join().expect("hashing the input panicked")?)
    })?;
    for b in lpk.blobs() {
        let data = lpk.blob(&b.name).expect("listed blob");
        writer.write_blob(&b.name, data)?;
    }
    let fallbacks = plan.fallbacks();
    let mut meta: Metadata = lpk.metadata().clone();
    let p = &mut meta.provenance;
    p.notes.insert(
        "parent_sources".into(),
        serde_json::to_value(&p.sources).unwrap_or_default(),
    );
    p.notes.insert("parent_tool".into(), json!(p.tool));
    p.tool = llamapack_format::TOOL_VERSION.into();
    p.sources = vec![parent];
    p.accuracy = None;
    let r = &plan.recipe;
    let imatrix = opts.imatrix.as_ref().map(|im| {
        json!({
            "file": im.file,
            "sha256": im.sha256,
            "datasets": im.imatrix.datasets,
            "chunk_count": im.imatrix.chunk_count,
            "chunk_size": im.imatrix.chunk_size,
            "entries": im.imatrix.len(),
            "tensors_without_weights": without_weights,
        })
    });
    p.quantization = Some(json!({
        "recipe": r.name,
        "output_type": r.output_type.map(DType::name),
        "embedding_type": r.embedding_type.map(DType::name),
        "pure": r.pure,
        "tensor_type_overrides": r.tensor_types,
        "imatrix": imatrix,
        "fallbacks": fallbacks,
        "tensor_types": types,
        "budget": opts.budget,
    }));
    let out = writer.finish(&meta)?;
    let output_bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
    Ok(Quantized {
        tensors: reports,
        fallbacks,
        output_bytes,
        without_weights,
    })
}

/// One tensor encoded by [`quantize`]'s encoding thread.
struct Encoded {
    /// The encoded rows, batch after batch.
    chunks: Vec<Vec<u8>>,
    stats: ErrorStats,
    /// The imatrix has no weights for it.
    missing: bool,
    source_bytes: u64,
}

/// Re-encodes one tensor as `target`, rows in parallel; returns the bytes and the round-trip
/// error of `dequantize(quantize(w))` against `w`. A tensor already of type `target` is copied.
pub fn encode_tensor(t: &TensorView<'_>, target: DType) -> Result<(Vec<u8>, ErrorStats), Error> {
    encode_tensor_weighted(t, target, None)
}

/// [`encode_tensor`] with importance weights (one per column) for the weighted encoders.
pub fn encode_tensor_weighted(
    t: &TensorView<'_>,
    target: DType,
    weights: Option<&[f32]>,
) -> Result<(Vec<u8>, ErrorStats), Error> {
    let e = encode_rows(t, target, weights, false, None)?;
    Ok((e.chunks.concat(), e.stats))
}

/// A tensor encoded by [`encode_rows`].
struct EncodedRows {
    /// The encoded rows, batch after batch.
    chunks: Vec<Vec<u8>>,
    stats: ErrorStats,
    /// The crc32c of the source bytes (0 when not asked for).
    crc: u32,
}

/// Encodes `t` as `target` in batches of rows on the rayon pool (each batch its own buffer,
/// so that no thread zeroes the whole output first); with `crc`, each batch also takes the
/// crc32c of its source bytes, combined in order into the tensor's. With `given` (all rows
/// already encoded as `target` elsewhere) each batch takes its rows from it instead of
/// encoding, and only the error is measured.
fn encode_rows(
    t: &TensorView<'_>,
    target: DType,
    weights: Option<&[f32]>,
    crc: bool,
    given: Option<&[u8]>,
) -> Result<EncodedRows, Error> {
    let rows = t.rows();
    let n = t.row_len();
    let row_err = |dtype: DType| Error::RowLength {
        dtype,
        len: n,
        block_len: dtype.block_len(),
    };
    let src_row = t.dtype.row_bytes(n).ok_or_else(|| row_err(t.dtype))?;
    let dst_row = target.row_bytes(n).ok_or_else(|| row_err(target))?;
    if given.is_some_and(|g| g.len() != rows * dst_row) {
        return Err(Error::RowLength {
            dtype: target,
            len: given.map_or(0, <[u8]>::len),
            block_len: dst_row,
        });
    }
    if (t.dtype == target && given.is_none()) || rows == 0 || n == 0 {
        return Ok(EncodedRows {
            chunks: vec![t.bytes.to_vec()],
            stats: ErrorStats::default(),
            crc: if crc { crc32c::crc32c(t.bytes) } else { 0 },
        });
    }
    // Rows in batches: each worker reuses its buffers, the weighted encoders fill their lanes
    // with the blocks of a whole batch, and there are at least 4 batches per thread, so that a
    // small tensor's last batch does not leave the other threads idle for long.
    let threads = rayon::current_num_threads().max(1);
    let batch = ((1 << 16) / n + 1).min(rows.div_ceil(4 * threads)).max(1);
    let at = |r: usize| {
        move |e: Error| match e {
            Error::NonFinite { index, value } => Error::NonFiniteAt {
                row: r + index / n,
                column: index % n,
                value,
            },
            e => e,
        }
    };
    let done = (0..rows.div_ceil(batch))
        .into_par_iter()
        .map(|b| -> Result<(Vec<u8>, ErrorStats, u32), Error> {
            let (r0, r1) = (b * batch, ((b + 1) * batch).min(rows));
            let src = &t.bytes[r0 * src_row..r1 * src_row];
            let crc = if crc { crc32c::crc32c(src) } else { 0 };
            let mut x = vec![0f32; (r1 - r0) * n];
            for (s, xr) in src.chunks_exact(src_row).zip(x.chunks_exact_mut(n)) {
                crate::dequantize_row(t.dtype, s, xr)?;
            }
            let mut dst = vec![0u8; (r1 - r0) * dst_row];
            match (given, weights) {
                (Some(g), _) => dst.copy_from_slice(&g[r0 * dst_row..r1 * dst_row]),
                (None, Some(qw)) => crate::kernels()
                    .quantize_weighted_rows(target, &x, &mut dst, qw)
                    .map_err(at(r0))?,
                (None, None) => {
                    for (i, (xr, d)) in x.chunks_exact(n).zip(dst.chunks_mut(dst_row)).enumerate() {
                        crate::quantize_weights_row(target, xr, d).map_err(at(r0 + i))?;
                    }
                }
            }
            let mut back = vec![0f32; n];
            let mut stats = ErrorStats::default();
            for (xr, d) in x.chunks_exact(n).zip(dst.chunks(dst_row)) {
                crate::dequantize_row(target, d, &mut back)?;
                stats.add(xr, &back);
            }
            Ok((dst, stats, crc))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let mut out = EncodedRows {
        chunks: Vec::with_capacity(done.len()),
        stats: ErrorStats::default(),
        crc: 0,
    };
    let shift = crc.then(|| CrcShift::new(batch * src_row));
    let last = done.len().saturating_sub(1);
    for (b, (dst, stats, c)) in done.into_iter().enumerate() {
        out.crc = match &shift {
            None => 0,
            Some(_) if b == last => {
                let len = (rows - b * batch) * src_row;
                crc32c::crc32c_combine(out.crc, c, len)
            }
            Some(s) => s.combine(out.crc, c),
        };
        out.stats = out.stats.merge(stats);
        out.chunks.push(dst);
    }
    Ok(out)
}

/// crc32c's "append `len` zero bytes" as a 32×32 matrix over GF(2) (entry `i`: the image of
/// bit `i`), as zlib's `crc32_combine` builds it: combining many pieces of one length then
/// costs one matrix-vector product each, where `crc32c_combine` rebuilds it every call.
struct CrcShift([u32; 32]);

impl CrcShift {
    fn times(m: &[u32; 32], mut v: u32) -> u32 {
        let (mut s, mut i) = (0, 0);
        while v != 0 {
            if v & 1 != 0 {
                s ^= m[i];
            }
            v >>= 1;
            i += 1;
        }
        s
    }

    fn square(m: &[u32; 32]) -> [u32; 32] {
        std::array::from_fn(|n| Self::times(m, m[n]))
    }

    fn new(len: usize) -> Self {
        // the operator of one zero bit (crc32c's reflected polynomial), then of 2 and 4
        let mut bit = [0u32; 32];
        bit[0] = 0x82F6_3B78;
        for (n, b) in bit.iter_mut().enumerate().skip(1) {
            *b = 1 << (n - 1);
        }
        let mut op = Self::square(&Self::square(&bit));
        let mut shift: [u32; 32] = std::array::from_fn(|n| 1 << n);
        let mut len = len;
        while len != 0 {
            // 1, 2, 4, … zero bytes
            op = Self::square(&op);
            if len & 1 != 0 {
                shift = std::array::from_fn(|n| Self::times(&op, shift[n]));
            }
            len >>= 1;
        }
        CrcShift(shift)
    }

    /// The crc32c of a message with crc `crc1` followed by one of this length with `crc2`.
    fn combine(&self, crc1: u32, crc2: u32) -> u32 {
        Self::times(&self.0, crc1) ^ crc2
    }
}

/// Groups fallback messages (`name: why`) by their reason: one line per kind of fallback,
/// naming up to three tensors (`a, b, c and 27 more: why`).
pub fn group_fallbacks(fallbacks: &[String]) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in fallbacks {
        let (name, why) = f.split_once(": ").unwrap_or(("", f));
        groups.entry(why).or_default().push(name);
    }
    groups
        .into_iter()
        .map(|(why, names)| {
            let shown: Vec<&str> = names.iter().take(3).copied().collect();
            let more = if names.len() > 3 {
                format!(" and {} more", names.len() - 3)
            } else {
                String::new()
            };
            format!("{}{more}: {why}", shown.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::CrcShift;

    #[test]
    fn crc_shift_combines_as_crc32c() {
        let data: Vec<u8> = (0..5000u32)
            .map(|i| ((i * 2_654_435_761) >> 13) as u8)
            .collect();
        for (a, b) in [(0, 1), (1, 1), (7, 64), (100, 999), (3000, 2000), (0, 5000)] {
            let (x, y) = (&data[..a], &data[a..a + b]);
            let s = CrcShift::new(b);
            let want = crc32c::crc32c(&data[..a + b]);
            assert_eq!(
                s.combine(crc32c::crc32c(x), crc32c::crc32c(y)),
                want,
                "{a}+{b}"
            );
            assert_eq!(
                crc32c::crc32c_combine(crc32c::crc32c(x), crc32c::crc32c(y), b),
                want
            );
        }
        assert_eq!(CrcShift::new(0).combine(0x1234_5678, 0), 0x1234_5678);
    }
}
