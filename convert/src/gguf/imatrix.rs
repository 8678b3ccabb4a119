//! llama.cpp's importance-matrix files: the GGUF format `llama-imatrix` writes by default and
//! the legacy `.dat` format it and `llama-quantize` still read, to and from an
//! [`Imatrix`] (keyed by `.lpk` tensor names; llama.cpp's names are mapped by [`names`]).
//!
//! **GGUF** (`imatrix.cpp` `save_imatrix`, `common/imatrix-loader.cpp`): `general.type =
//! "imatrix"`, `imatrix.datasets` (string array), `imatrix.chunk_count` and
//! `imatrix.chunk_size` (u32); for each weight, sorted by name, `<weight>.in_sum2` (f32, the raw
//! Σx², dims `[ne0, n_mat]`) then `<weight>.counts` (f32 token counts, dims `[1, n_mat]`). ggml
//! writes only the dims up to the last one above 1, so a dense weight's tensors are `[ne0]` and
//! `[1]`; the writer here does the same, and reading then writing a llama.cpp file gives it back
//! byte for byte. A newer llama.cpp also writes `<weight>.in_sum` (Σx), which is skipped.
//!
//! **Legacy `.dat`**: i32 entry count; per entry i32 name length, the name, i32 `ncall`, i32
//! `nval`, `nval` f32 values = (Σx² / count) · ncall; then optionally i32 chunk count, i32
//! dataset-name length and the name. llama-quantize divides the values by `ncall` (by nothing
//! when `ncall` is 0); llama-imatrix, merging one, takes `value · chunk_size` as the sums and
//! `ncall · chunk_size` as the count. [`read_imatrix_legacy`] does the latter with the caller's
//! chunk size, so the mean is llama-quantize's whatever the chunk size (`ncall` 0 is read as 1,
//! which keeps llama-quantize's mean).
//!
//! Both readers check every count against the bytes that remain before allocating, and refuse
//! with one error naming the file and the tensor: a name that is not a llama tensor, a
//! non-finite or negative value, a missing half of a pair, a wrong type or shape, a `general.type`
//! other than `imatrix`, a truncated file.
//!
//! ```no_run
//! use std::path::Path;
//! use llamapack_convert::gguf::imatrix;
//!
//! // llama.cpp's file (GGUF or .dat; chunk size 512 for a .dat, which has none)…
//! let mut im = imatrix::read_imatrix_file(Path::new("imatrix.gguf"), 512)?;
//! // …merged with another, and written back as GGUF.
//! let other = imatrix::read_imatrix_file(Path::new("old.dat"), 512)?;
//! im.merge(other, "old.dat")?;
//! imatrix::write_imatrix(Path::new("merged.gguf"), &im)?;
//! # Ok::<(), llamapack_convert::gguf::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use llamapack_quantize::imatrix::{Entry, Imatrix};

use super::names::{gguf_to_meta, meta_to_gguf};
use super::reader::{MAGIC, MAX_NAME_LEN};
use super::{Error, GgmlType, GgufFile, TensorDesc, TensorInfo, Value};
use crate::gguf::value::Array;
use crate::gguf::writer::GgufWriter;

/// The `general.type` of an imatrix file.
pub const GENERAL_TYPE: &str = "imatrix";
/// Key of the calibration file names.
pub const KEY_DATASETS: &str = "imatrix.datasets";
/// Key of the chunk count.
pub const KEY_CHUNK_COUNT: &str = "imatrix.chunk_count";
/// Key of the tokens per chunk.
pub const KEY_CHUNK_SIZE: &str = "imatrix.chunk_size";
const SUMS: &str = ".in_sum2";
const COUNTS: &str = ".counts";
/// Σx, written by newer llama.cpp versions; not used.
const FIRST_MOMENT: &str = ".in_sum";

fn bad_file(file: &str, reason: impl Into<String>) -> Error {
    Error::Imatrix {
        file: file.to_owned(),
        reason: reason.into(),
    }
}

fn bad_tensor(file: &str, tensor: &str, reason: impl Into<String>) -> Error {
    Error::BadTensor {
        file: file.to_owned(),
        tensor: tensor.to_owned(),
        reason: reason.into(),
    }
}

/// Reads `path` as an imatrix file of either format (GGUF when it starts with `GGUF`, else
/// legacy `.dat`, whose sums are scaled by `chunk_size`: see the module docs).
pub fn read_imatrix_file(path: &Path, chunk_size: u32) -> Result<Imatrix, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
    llamapack_format::output::note_input(path);
    read_imatrix(&bytes, &path.display().to_string(), chunk_size)
}

/// [`read_imatrix_file`] on bytes in memory; `file` names them in errors.
pub fn read_imatrix(bytes: &[u8], file: &str, chunk_size: u32) -> Result<Imatrix, Error> {
    if bytes.starts_with(&MAGIC) {
        read_imatrix_gguf(bytes, file)
    } else {
        read_imatrix_legacy(bytes, file, chunk_size)
    }
}

/// A GGUF imatrix file (see the module docs).
pub fn read_imatrix_gguf(bytes: &[u8], file: &str) -> Result<Imatrix, Error> {
    let f = GgufFile::parse(bytes, file)?;
    let bad_key = |key: &str, reason: String| Error::BadMetadata {
        file: file.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let missing = |key: &str| Error::MissingKey {
        file: file.to_owned(),
        key: key.to_owned(),
    };
    match f.get("general.type") {
        Some(Value::String(s)) if s == GENERAL_TYPE => {}
        Some(v) => {
            return Err(bad_key(
                "general.type",
                format!("{v:?}, expected \"imatrix\" (a model file is not an importance matrix)"),
            ));
        }
        None => return Err(missing("general.type")),
    }
    let u32_key = |key: &str| -> Result<u32, Error> {
        let v = f.get(key).ok_or_else(|| missing(key))?;
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| bad_key(key, format!("{v:?} is not an unsigned 32-bit integer")))
    };
    let chunk_count = u32_key(KEY_CHUNK_COUNT)?;
    let chunk_size = u32_key(KEY_CHUNK_SIZE)?;
    let datasets = match f.get(KEY_DATASETS) {
        Some(Value::Array(Array::String(v))) => v.clone(),
        Some(v) => {
            return Err(bad_key(
                KEY_DATASETS,
                format!("{v:?} is not an array of strings"),
            ));
        }
        None => return Err(missing(KEY_DATASETS)),
    };

    let mut pairs: BTreeMap<&str, (Option<&TensorInfo>, Option<&TensorInfo>)> = BTreeMap::new();
    for t in f.tensors() {
        if let Some(base) = t.name.strip_suffix(SUMS) {
            pairs.entry(base).or_default().0 = Some(t);
        } else if let Some(base) = t.name.strip_suffix(COUNTS) {
            pairs.entry(base).or_default().1 = Some(t);
        } else if !t.name.ends_with(FIRST_MOMENT) {
            return Err(bad_tensor(
                file,
                &t.name,
                format!("not an imatrix tensor (expected `<weight>{SUMS}` and `<weight>{COUNTS}`)"),
            ));
        }
    }
    if pairs.is_empty() {
        return Err(bad_file(file, "no importance data (no `.in_sum2` tensors)"));
    }
    let mut im = Imatrix::new(chunk_size);
    im.chunk_count = chunk_count;
    im.datasets = datasets;
    for (base, pair) in pairs {
        let (sums_t, counts_t) = match pair {
            (Some(s), Some(c)) => (s, c),
            (s, _) => {
                let (has, lacks) = if s.is_some() {
                    (SUMS, COUNTS)
                } else {
                    (COUNTS, SUMS)
                };
                return Err(bad_tensor(
                    file,
                    &format!("{base}{lacks}"),
                    format!("missing (`{base}{has}` is present)"),
                ));
            }
        };
        for t in [sums_t, counts_t] {
            if t.ty != GgmlType::F32 {
                return Err(bad_tensor(
                    file,
                    &t.name,
                    format!("type {}, expected f32", t.ty),
                ));
            }
        }
        let n_mat = counts_t.numel();
        if counts_t.dims[0] != 1 {
            return Err(bad_tensor(
                file,
                &counts_t.name,
                format!("dims {:?}, expected [1, n_mat]", counts_t.dims),
            ));
        }
        let cols = sums_t.dims[0];
        if sums_t.numel() != cols.saturating_mul(n_mat) {
            return Err(bad_tensor(
                file,
                &sums_t.name,
                format!(
                    "dims {:?} do not hold {n_mat} rows (the count of `{}`)",
                    sums_t.dims, counts_t.name
                ),
            ));
        }
        let meta = gguf_to_meta(base).ok_or_else(|| {
            bad_tensor(
                file,
                &sums_t.name,
                format!("`{base}` is not a weight of llama.cpp's llama architecture"),
            )
        })?;
        let sums = f32s(f.tensor_data(sums_t));
        if let Some((j, v)) = sums
            .iter()
            .enumerate()
            .find(|&(_, v)| !v.is_finite() || *v < 0.0)
        {
            return Err(bad_tensor(
                file,
                &sums_t.name,
                format!("value {j} is {v} (a sum of squares is finite and ≥ 0)"),
            ));
        }
        let counts = f32s(f.tensor_data(counts_t))
            .into_iter()
            .enumerate()
            .map(|(j, c)| {
                // below 2^64, so the rounded value fits a u64
                if (0.0..1.8e19).contains(&c) {
                    Ok(c.round() as u64)
                } else {
                    Err(bad_tensor(
                        file,
                        &counts_t.name,
                        format!("count {j} is {c}, not a token count"),
                    ))
                }
            })
            .collect::<Result<Vec<u64>, Error>>()?;
        im.insert(file, &meta, sums, counts)?;
    }
    Ok(im)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

/// A little-endian reader over a legacy file that reports what it was reading when it ran out.
struct Legacy<'a> {
    file: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Legacy<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                file: self.file.to_owned(),
                what: what.to_owned(),
                offset: self.pos as u64,
                needed: n as u64,
                available: self.remaining() as u64,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i32(&mut self, what: &str) -> Result<i32, Error> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    /// An i32 that must be in `min..=max`, as a usize (what it counts is checked against the
    /// bytes left when it is taken).
    fn len(&mut self, what: &str, min: i32, max: u64) -> Result<usize, Error> {
        let at = self.pos;
        let v = self.i32(what)?;
        if v < min || v as u64 > max {
            return Err(bad_file(
                self.file,
                format!("{what} at offset {at} is {v} (expected {min} to {max})"),
            ));
        }
        Ok(v as usize)
    }
}

/// A legacy `.dat` imatrix file; sums are `value · chunk_size`, counts `ncall · chunk_size`
/// (see the module docs). `chunk_size` must be at least 1.
pub fn read_imatrix_legacy(bytes: &[u8], file: &str, chunk_size: u32) -> Result<Imatrix, Error> {
    if chunk_size == 0 {
        return Err(bad_file(
            file,
            "a legacy imatrix needs a chunk size of at least 1",
        ));
    }
    let mut r = Legacy {
        file,
        bytes,
        pos: 0,
    };
    // Each entry takes at least 16 bytes: name length, ncall, nval and one value.
    let n_entries = r.len("the entry count", 1, i32::MAX as u64)?;
    if n_entries > r.remaining() / 16 {
        return Err(bad_file(
            file,
            format!(
                "{n_entries} entries cannot fit in the {} bytes that follow (not a legacy imatrix file?)",
                r.remaining()
            ),
        ));
    }
    let mut im = Imatrix::new(chunk_size);
    let mut max_ncall = 0u32;
    let scale = chunk_size as f32;
    for i in 0..n_entries {
        let what = format!("the name of entry {i}");
        let len = r.len(&what, 0, MAX_NAME_LEN)?;
        let name = std::str::from_utf8(r.take(len, &what)?)
            .map_err(|_| bad_file(file, format!("{what} is not utf-8")))?
            .to_owned();
        let ncall = r.i32(&format!("ncall of `{name}`"))?;
        let ncall = u32::try_from(ncall).map_err(|_| {
            bad_tensor(
                file,
                &name,
                format!("ncall is {ncall}, expected at least 0"),
            )
        })?;
        let what = format!("the values of `{name}`");
        let nval = r.len(&format!("nval of `{name}`"), 1, i32::MAX as u64)?;
        let values = f32s(r.take(nval * 4, &what)?);
        let meta = gguf_to_meta(&name).ok_or_else(|| {
            bad_tensor(
                file,
                &name,
                "not a weight of llama.cpp's llama architecture",
            )
        })?;
        let mut sums = Vec::with_capacity(nval);
        for (j, &v) in values.iter().enumerate() {
            let s = v * scale;
            if !(v >= 0.0 && s.is_finite()) {
                return Err(bad_tensor(
                    file,
                    &name,
                    format!("value {j} is {v} (expected a finite mean square ≥ 0)"),
                ));
            }
            sums.push(s);
        }
        // ncall 0: llama-quantize uses the values as they are, i.e. as one call's.
        let calls = ncall.max(1);
        max_ncall = max_ncall.max(ncall);
        im.insert(
            file,
            &meta,
            sums,
            vec![u64::from(calls) * u64::from(chunk_size)],
        )?;
    }
    im.chunk_count = max_ncall;
    if r.remaining() > 0 {
        let n = r.len("the chunk count", 0, i32::MAX as u64)?;
        im.chunk_count = n as u32;
        if r.remaining() > 0 {
            let len = r.len("the dataset name length", 0, i32::MAX as u64)?;
            let name = r.take(len, "the dataset name")?;
            if len > 0 {
                im.datasets.push(String::from_utf8_lossy(name).into_owned());
            }
        }
        if r.remaining() > 0 {
            return Err(bad_file(
                file,
                format!("{} unexpected bytes after the dataset name", r.remaining()),
            ));
        }
    }
    Ok(im)
}

/// Writes `im` as a GGUF imatrix file llama.cpp reads, through a sibling temp file renamed into
/// place (deleted on error or Ctrl-C). Tensors are sorted by their GGUF name, as llama-imatrix
/// sorts them; returns the path written.
pub fn write_imatrix(path: &Path, im: &Imatrix) -> Result<PathBuf, Error> {
    let file = path.display().to_string();
    let mut named: Vec<(String, &Entry)> = Vec::with_capacity(im.len());
    for (name, e) in im.entries() {
        let g = meta_to_gguf(name).ok_or_else(|| Error::Write {
            file: file.clone(),
            item: format!("tensor `{name}`"),
            reason: "it has no llama.cpp name".into(),
        })?;
        named.push((g, e));
    }
    if named.is_empty() {
        return Err(Error::Write {
            file,
            item: "the importance matrix".into(),
            reason: "it has no entries".into(),
        });
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = vec![
        (
            "general.type".to_owned(),
            Value::String(GENERAL_TYPE.into()),
        ),
        (
            KEY_DATASETS.to_owned(),
            Value::Array(Array::String(im.datasets.clone())),
        ),
        (KEY_CHUNK_COUNT.to_owned(), Value::U32(im.chunk_count)),
        (KEY_CHUNK_SIZE.to_owned(), Value::U32(im.chunk_size)),
    ];
    // ggml_n_dims: trailing dims of 1 are not written.
    let dims = |inner: usize, n_mat: usize| {
        if n_mat == 1 {
            vec![inner as u64]
        } else {
            vec![inner as u64, n_mat as u64]
        }
    };
    let mut descs = Vec::with_capacity(2 * named.len());
    for (g, e) in &named {
        descs.push(TensorDesc {
            name: format!("{g}{SUMS}"),
            dims: dims(e.cols(), e.n_mat()),
            ty: GgmlType::F32,
        });
        descs.push(TensorDesc {
            name: format!("{g}{COUNTS}"),
            dims: dims(1, e.n_mat()),
            ty: GgmlType::F32,
        });
    }
    let mut w = GgufWriter::create(path, &metadata, descs)?;
    for (g, e) in &named {
        let bytes: Vec<u8> = e.sums().iter().flat_map(|v| v.to_le_bytes()).collect();
        w.write_tensor(&format!("{g}{SUMS}"), &bytes)?;
        let bytes: Vec<u8> = e
            .counts()
            .iter()
            .flat_map(|&c| (c as f32).to_le_bytes())
            .collect();
        w.write_tensor(&format!("{g}{COUNTS}"), &bytes)?;
    }
    w.finish()
}
