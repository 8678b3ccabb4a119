//! What both importers produce — a list of output tensors, each a recipe over borrowed source
//! bytes — and the writer that turns it into a `.lpk`, tensors in parallel.
//!
//! A recipe never materialises a merged tensor: dim-0 merges append each shard, dim-1 merges
//! interleave the shards' rows, the Q/K un-permutation emits rows in Meta order, and each piece
//! is converted in small chunks on its way to the output file. Peak memory is therefore a few
//! MB plus, only for non-contiguous `.pth` views, one gathered shard of one tensor.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use llamapack_format::llama::Role;
use llamapack_format::{
    DType, Filled, LpkWriter, Metadata, ModelConfig, Provenance, Slot, Slots, SourceFile,
    TOOL_VERSION, TokenizerData,
};

use crate::dtype::{Converter, Sink, SourceDType};
use crate::error::{Error, Result};
use crate::permute::hf_row_for_meta_row;
use crate::pth::PthTensor;
use crate::source::{Mapped, check_output, hash_all};
use crate::{ConvertOptions, ConvertSummary, OutputDType, SourceFormat, Warning};

/// How an output tensor is assembled from its pieces (one piece per shard, or one in all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Pieces appended (model-parallel split on dim 0, or a single piece).
    Concat0,
    /// Row `r` of the output is row `r` of every piece in turn (split on dim 1).
    Concat1,
    /// Every piece is the same; they must agree bit for bit.
    Replicated,
    /// One piece in HF's rotary row order; emitted in Meta's.
    UnpermuteRows {
        /// Rows per head.
        head_dim: usize,
    },
}

/// Where a piece's bytes come from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PieceSrc<'a> {
    /// Contiguous bytes of a mapped file.
    Slice(&'a [u8]),
    /// A `.pth` view, gathered if it is not contiguous.
    Pth(&'a PthTensor<'a>),
}

/// One piece of an output tensor.
#[derive(Clone, Debug)]
pub(crate) struct Piece<'a> {
    /// File it comes from (for errors).
    pub file: String,
    /// Its shape.
    pub shape: Vec<u64>,
    /// Its bytes.
    pub src: PieceSrc<'a>,
}

impl<'a> Piece<'a> {
    /// The mapped bytes this piece reads (the whole storage for a `.pth` view).
    fn raw(&self) -> &'a [u8] {
        match self.src {
            PieceSrc::Slice(s) => s,
            PieceSrc::Pth(t) => t.storage(),
        }
    }

    fn bytes(&self) -> Result<Cow<'a, [u8]>> {
        match self.src {
            PieceSrc::Slice(s) => Ok(Cow::Borrowed(s)),
            PieceSrc::Pth(t) => t.bytes(),
        }
    }
}

/// One output tensor.
#[derive(Clone, Debug)]
pub(crate) struct Planned<'a> {
    /// Meta name.
    pub name: String,
    /// Name in the source, when different (HF).
    pub source_name: Option<String>,
    /// Output shape.
    pub shape: Vec<u64>,
    /// Source float type (the same in every piece).
    pub dtype: SourceDType,
    /// Assembly.
    pub layout: Layout,
    /// Pieces.
    pub pieces: Vec<Piece<'a>>,
}

impl Planned<'_> {
    pub fn source_bytes(&self) -> u64 {
        let per = crate::pth::numel(&self.shape).unwrap_or(0) * self.dtype.size() as u64;
        match self.layout {
            Layout::Replicated => per * self.pieces.len() as u64,
            _ => per,
        }
    }
}

/// A complete conversion, ready to write.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub format: SourceFormat,
    pub config: ModelConfig,
    pub tensors: Vec<Planned<'a>>,
    pub tokenizer: TokenizerData,
    /// Original tokenizer files stored as blobs (name, bytes).
    pub blobs: Vec<(String, &'a [u8])>,
    /// Every file read (hashed into provenance, and never overwritten).
    pub inputs: Vec<&'a Mapped>,
    pub warnings: Vec<Warning>,
}

/// Compares the layer count a config claims in `field` with the layers the checkpoint's
/// tensors (`names`, Meta's) hold, before anything is planned from it: a count above them is an
/// error naming the field (the reason returned), not a plan of millions of names.
pub(crate) fn layer_count_mismatch<'n>(
    n_layers: u32,
    names: impl IntoIterator<Item = &'n str>,
    field: &str,
) -> Option<String> {
    let last = names
        .into_iter()
        .filter_map(|n| match Role::parse(n) {
            Some(Role::Layer { layer, .. }) => Some(layer),
            _ => None,
        })
        .max();
    let have = last.map_or(0, |l| u64::from(l) + 1);
    // Fewer layers than the tensors hold is reported where the extra tensors are met, by name.
    if have >= u64::from(n_layers) {
        return None;
    }
    let holds = match last {
        Some(l) => format!("tensors for only {have} (layers.0 to layers.{l})"),
        None => "no layer tensors".into(),
    };
    Some(format!(
        "`{field}` = {n_layers}, but the checkpoint holds {holds}"
    ))
}

/// [`layer_count_mismatch`] as a config error of `file`.
pub(crate) fn check_layer_count<'n>(
    n_layers: u32,
    names: impl IntoIterator<Item = &'n str>,
    field: &str,
    file: &str,
) -> Result<()> {
    match layer_count_mismatch(n_layers, names, field) {
        None => Ok(()),
        Some(reason) => Err(Error::Config {
            file: file.to_owned(),
            reason,
        }),
    }
}

/// Flat element index → coordinates.
fn coords(mut i: u64, shape: &[u64]) -> Vec<u64> {
    let mut c = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            c[k] = i % d;
            i /= d;
        }
    }
    c
}

fn target_dtype(want: OutputDType, src: SourceDType, name: &str) -> Result<DType> {
    let keep = src.to_lpk().ok_or_else(|| Error::Tensor {
        file: String::new(),
        tensor: name.to_owned(),
        reason: format!("dtype {src} is not a float type (f32, f16 or bf16)"),
    })?;
    Ok(match want {
        OutputDType::Keep => keep,
        OutputDType::F32 => DType::F32,
        OutputDType::F16 => DType::F16,
        OutputDType::BF16 => DType::BF16,
    })
}

/// Converts tensor `t` into `sink`, adding the source bytes done to `converted`, and drops
/// its source pages from the resident set when done.
fn write_tensor(
    t: &Planned<'_>,
    dst: DType,
    sink: &mut impl Sink,
    converted: &AtomicU64,
    inputs: &[&Mapped],
) -> Result<crate::dtype::Scan> {
    let src = t.dtype.to_lpk().expect("checked by target_dtype");
    let es = t.dtype.size();
    let mut conv = Converter::new(src, dst);
    let done = |n: usize| converted.fetch_add(n as u64, Ordering::Relaxed);
    match t.layout {
        Layout::Concat0 => {
            for p in &t.pieces {
                let b = p.bytes()?;
                for c in b.chunks(1 << 22) {
                    conv.feed(c, sink)?;
                    done(c.len());
                }
            }
        }
        Layout::Concat1 => {
            let bufs: Vec<Cow<'_, [u8]>> =
                t.pieces.iter().map(Piece::bytes).collect::<Result<_>>()?;
            let rows = t.shape[0] as usize;
            let widths: Vec<usize> = t.pieces.iter().map(|p| p.shape[1] as usize * es).collect();
            let row_bytes = widths.iter().sum::<usize>();
            for r in 0..rows {
                for (b, &wd) in bufs.iter().zip(&widths) {
                    conv.feed(&b[r * wd..(r + 1) * wd], sink)?;
                }
                if r % 256 == 255 || r + 1 == rows {
                    done(row_bytes * (r % 256 + 1));
                }
            }
        }
        Layout::Replicated => {
            let first = t.pieces[0].bytes()?;
            for p in &t.pieces[1..] {
                let b = p.bytes()?;
                if let Some(i) = first.iter().zip(b.iter()).position(|(x, y)| x != y) {
                    return Err(Error::ReplicaMismatch {
                        file: p.file.clone(),
                        tensor: t.name.clone(),
                        index: (i / es) as u64,
                    });
                }
                done(b.len());
            }
            conv.feed(&first, sink)?;
            done(first.len());
        }
        Layout::UnpermuteRows { head_dim } => {
            let b = t.pieces[0].bytes()?;
            let rows = t.shape[0] as usize;
            let wd = t.shape[1] as usize * es;
            for m in 0..rows {
                let h = hf_row_for_meta_row(m, head_dim);
                conv.feed(&b[h * wd..(h + 1) * wd], sink)?;
            }
            done(b.len());
        }
    }
    for p in &t.pieces {
        let raw = p.raw();
        for m in inputs {
            m.release(raw);
        }
    }
    Ok(conv.scan)
}

/// Bytes each converting thread buffers before one positional write.
const SINK_BUFFER: usize = 1 << 20;

/// Converts the tensors into their reserved `slots` on `workers` threads, each taking the next
/// tensor in plan order; returns, per tensor, its result (`None` for tensors left undone after
/// another one failed).
fn convert_tensors(
    plan: &Plan<'_>,
    jobs: &[(DType, Slot)],
    out: &Slots<'_>,
    workers: usize,
    converted: &AtomicU64,
    stop: &AtomicBool,
    poll: &dyn Fn(),
) -> Vec<Option<Result<(Filled, crate::dtype::Scan)>>> {
    let next = AtomicUsize::new(0);
    let n = plan.tensors.len();
    let mut results: Vec<Option<Result<(Filled, crate::dtype::Scan)>>> =
        std::iter::repeat_with(|| None).take(n).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.clamp(1, n.max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(t) = plan.tensors.get(i) else { break };
                        let (dst, slot) = jobs[i];
                        let mut sink = out.sink(slot, SINK_BUFFER);
                        let r = write_tensor(t, dst, &mut sink, converted, &plan.inputs)
                            .and_then(|scan| Ok((sink.finish()?, scan)));
                        if r.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        done.push((i, r));
                    }
                    done
                })
            })
            .collect();
        while !handles
            .iter()
            .all(std::thread::ScopedJoinHandle::is_finished)
        {
            poll();
            std::thread::sleep(Duration::from_millis(50));
        }
        for h in handles {
            for (i, r) in h.join().expect("convert worker panicked") {
                results[i] = Some(r);
            }
        }
    });
    results
}

/// Writes `plan` to `out`: every tensor's place is reserved first, then `opts.threads`
/// workers convert tensors in parallel straight into their places while the inputs are hashed
/// on background threads.
pub(crate) fn write(
    plan: Plan<'_>,
    out: &Path,
    opts: &ConvertOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<ConvertSummary> {
    let paths: Vec<&Path> = plan.inputs.iter().map(|m| m.path.as_path()).collect();
    check_output(out, &paths)?;
    // Resolve every dtype before creating the output.
    let dtypes: Vec<DType> = plan
        .tensors
        .iter()
        .map(|t| {
            target_dtype(opts.dtype, t.dtype, &t.name).map_err(|e| match e {
                Error::Tensor { tensor, reason, .. } => Error::Tensor {
                    file: t.pieces.first().map(|p| p.file.clone()).unwrap_or_default(),
                    tensor,
                    reason,
                },
                e => e,
            })
        })
        .collect::<Result<_>>()?;
    let tensor_bytes: u64 = plan.tensors.iter().map(Planned::source_bytes).sum();
    let file_bytes: u64 = plan.inputs.iter().map(|m| m.map.len() as u64).sum();
    let hashed = AtomicU64::new(0);
    let converted = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let total = tensor_bytes + file_bytes;
    let report = || {
        progress(
            converted.load(Ordering::Relaxed) + hashed.load(Ordering::Relaxed),
            total,
        );
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        opts.threads
    };
    let mut warnings = plan.warnings.clone();
    let written: Result<(PathBuf, u64, Vec<SourceFile>, f64)> = std::thread::scope(|s| {
        let hasher = s.spawn(|| hash_all(&plan.inputs, threads, &hashed, &stop));
        let written = (|| {
            let mut w = LpkWriter::create(out)?;
            let jobs: Vec<(DType, Slot)> = plan
                .tensors
                .iter()
                .zip(&dtypes)
                .map(|(t, &dst)| Ok((dst, w.reserve_tensor(&t.name, dst, &t.shape)?)))
                .collect::<Result<_>>()?;
            for (name, bytes) in &plan.blobs {
                w.write_blob(name, bytes)?;
            }
            let results = {
                let sl = w.slots()?;
                convert_tensors(&plan, &jobs, &sl, threads, &converted, &stop, &report)
            };
            // The first failure in plan order is the one a sequential conversion would meet.
            let mut filled = Vec::with_capacity(results.len());
            for (t, r) in plan.tensors.iter().zip(results) {
                match r {
                    Some(Ok(ok)) => filled.push((t, ok)),
                    Some(Err(e)) => return Err(e),
                    None => {}
                }
            }
            for (t, (f, scan)) in filled {
                w.fill(f);
                if let Some((i, value)) = scan.first_nonfinite {
                    warnings.push(Warning::NonFinite {
                        tensor: t.name.clone(),
                        count: scan.nonfinite,
                        first_index: coords(i, &t.shape),
                        value,
                    });
                }
                if let Some((i, value)) = scan.first_overflow {
                    warnings.push(Warning::Overflow {
                        tensor: t.name.clone(),
                        count: scan.overflow,
                        first_index: coords(i, &t.shape),
                        value,
                    });
                }
            }
            while !hasher.is_finished() {
                report();
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(w)
        })();
        if written.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let sources = hasher.join().expect("hash thread panicked");
        written.and_then(|w| {
            let sources = sources?;
            let mut notes = std::collections::BTreeMap::new();
            notes.insert(
                "convert".to_owned(),
                serde_json::json!({ "dtype": opts.dtype.name() }),
            );
            if !warnings.is_empty() {
                let list: Vec<String> = warnings.iter().map(ToString::to_string).collect();
                notes.insert("warnings".to_owned(), serde_json::json!(list));
            }
            let meta = Metadata {
                config: plan.config.clone(),
                tokenizer: plan.tokenizer.clone(),
                provenance: Provenance {
                    tool: TOOL_VERSION.to_owned(),
                    source_format: plan.format.name().to_owned(),
                    sources: sources.clone(),
                    notes,
                    ..Provenance::default()
                },
            };
            let bytes = w.position();
            let t = Instant::now();
            let path = w.finish(&meta)?;
            Ok((path, bytes, sources, t.elapsed().as_secs_f64()))
        })
    });
    let (path, bytes_written, sources, finish_seconds) = written?;
    report();
    Ok(ConvertSummary {
        out: path,
        format: plan.format,
        config: plan.config,
        tensors: plan.tensors.len(),
        bytes_read: tensor_bytes,
        bytes_written,
        sources,
        warnings,
        finish_seconds,
    })
}

/// The shape error for a tensor that disagrees with the config. `split` is the number of
/// shards and `split_dim` the dimension they were merged on, to hint at a missing shard.
pub(crate) fn shape_error(
    file: &str,
    name: &str,
    expected: &[u64],
    found: &[u64],
    split: Option<(usize, usize)>,
) -> Error {
    let mut hint = String::new();
    if let Some((n, d)) = split
        && let (Some(&e), Some(&f)) = (expected.get(d), found.get(d))
        && expected.len() == found.len()
        && f > 0
        && f != e
        && (e % (f / n as u64).max(1) == 0)
    {
        hint = format!(
            ": merged from {n} shard(s) along dim {d}; {} shard(s) would give {e} — is a shard missing or extra?",
            e / (f / n as u64).max(1)
        );
    }
    Error::Shape {
        file: file.to_owned(),
        tensor: name.to_owned(),
        expected: expected.into(),
        found: found.into(),
        hint,
    }
}
