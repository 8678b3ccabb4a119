//! Streaming GGUF v3 writer: header, metadata and tensor infos first (offsets computed from
//! the declared shapes and types), then each tensor's bytes in declaration order, padded to
//! the alignment. Output goes to a sibling temp file (an
//! [`OutputFile`](llamapack_format::output::OutputFile)) renamed into place by
//! [`GgufWriter::finish`]; dropping the writer before that deletes it.

use std::path::{Path, PathBuf};

use llamapack_format::output::OutputFile;

use super::Error;
use super::reader::{DEFAULT_ALIGNMENT, MAGIC, MAX_DEPTH, MAX_DIMS, MAX_NAME_LEN};
use super::types::GgmlType;
use super::value::{Array, Value};

/// A tensor to be written: name, dims innermost first, type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorDesc {
    /// GGUF name.
    pub name: String,
    /// Dims innermost first (`ne[0]` is the row length).
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
}

/// Writes one GGUF file; see the module docs.
#[derive(Debug)]
pub struct GgufWriter {
    out: OutputFile,
    alignment: u64,
    tensors: Vec<(TensorDesc, u64)>,
    next: usize,
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_array(buf: &mut Vec<u8>, a: &Array) {
    buf.extend_from_slice(&a.elem_type().id().to_le_bytes());
    buf.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => buf.extend_from_slice(v),
        Array::I8(v) => each!(v),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::F64(v) => each!(v),
        Array::Bool(v) => buf.extend(v.iter().map(|&b| u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| put_str(buf, s)),
        Array::Array(v) => v.iter().for_each(|a| put_array(buf, a)),
    }
}

/// Nesting depth of an array (1 for an array of scalars), as the reader counts it.
fn depth(a: &Array) -> usize {
    match a {
        Array::Array(v) => 1 + v.iter().map(depth).max().unwrap_or(0),
        _ => 1,
    }
}

/// Appends the encoding of `v` (without its type tag) to `buf`.
fn put_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => buf.push(*x),
        Value::I8(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => buf.push(u8::from(*x)),
        Value::String(s) => put_str(buf, s),
        Value::Array(a) => put_array(buf, a),
    }
}

/// Encodes the header, metadata and tensor infos; returns them with each tensor's offset.
///
/// The alignment is `general.alignment` when present (it must then be a power-of-two `U32`),
/// else 32.
pub fn encode_header(
    metadata: &[(String, Value)],
    tensors: &[TensorDesc],
    file: &str,
) -> Result<(Vec<u8>, Vec<u64>, u64), Error> {
    let bad_key = |key: &str, reason: String| Error::Write {
        file: file.to_owned(),
        item: format!("metadata key `{key}`"),
        reason,
    };
    let mut seen = std::collections::HashSet::new();
    let mut alignment = u64::from(DEFAULT_ALIGNMENT);
    for (k, v) in metadata {
        if k.is_empty() || !seen.insert(k.as_str()) {
            return Err(bad_key(k, "empty or repeated key".into()));
        }
        if k.len() as u64 > MAX_NAME_LEN {
            return Err(bad_key(k, format!("longer than {MAX_NAME_LEN} bytes")));
        }
        if let Value::Array(a) = v
            && depth(a) > MAX_DEPTH
        {
            return Err(bad_key(
                k,
                format!("arrays nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        if k == "general.alignment" {
            match v {
                Value::U32(a) if a.is_power_of_two() => alignment = u64::from(*a),
                _ => return Err(bad_key(k, format!("{v:?} is not a power-of-two UINT32"))),
            }
        }
    }
    let mut buf = Vec::new();
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&3u32.to_le_bytes());
    buf.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    buf.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut buf, k);
        buf.extend_from_slice(&v.value_type().id().to_le_bytes());
        put_value(&mut buf, v);
    }
    let mut names = std::collections::HashSet::new();
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut offset = 0u64;
    for t in tensors {
        let bad = |reason: String| Error::Write {
            file: file.to_owned(),
            item: format!("tensor `{}`", t.name),
            reason,
        };
        if t.name.is_empty() || !names.insert(t.name.as_str()) || t.name.len() as u64 > MAX_NAME_LEN
        {
            return Err(bad("empty, repeated or over-long name".into()));
        }
        if t.dims.is_empty() || t.dims.len() > MAX_DIMS as usize || t.dims.contains(&0) {
            return Err(bad(format!("invalid dims {:?}", t.dims)));
        }
        let nbytes = t.ty.tensor_bytes(&t.dims).ok_or_else(|| {
            bad(format!(
                "dims {:?} are not a whole number of {} blocks",
                t.dims, t.ty
            ))
        })?;
        put_str(&mut buf, &t.name);
        buf.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            buf.extend_from_slice(&d.to_le_bytes());
        }
        buf.extend_from_slice(&t.ty.id().to_le_bytes());
        buf.extend_from_slice(&offset.to_le_bytes());
        offsets.push(offset);
        offset = (offset + nbytes).next_multiple_of(alignment);
    }
    buf.resize((buf.len() as u64).next_multiple_of(alignment) as usize, 0);
    Ok((buf, offsets, alignment))
}

impl GgufWriter {
    /// Starts writing `dest`: validates and writes everything before the tensor data.
    /// Tensor bytes then follow with [`write_tensor`](Self::write_tensor), in `tensors` order.
    pub fn create(
        dest: impl AsRef<Path>,
        metadata: &[(String, Value)],
        tensors: Vec<TensorDesc>,
    ) -> Result<Self, Error> {
        let dest = dest.as_ref().to_path_buf();
        let label = dest.display().to_string();
        let (head, offsets, alignment) = encode_header(metadata, &tensors, &label)?;
        let mut w = GgufWriter {
            out: OutputFile::create(&dest)?,
            alignment,
            tensors: tensors.into_iter().zip(offsets).collect(),
            next: 0,
        };
        w.out.write_all(&head)?;
        Ok(w)
    }

    /// The file being written.
    pub fn dest(&self) -> &Path {
        self.out.dest()
    }

    /// Writes the next tensor's bytes; `name` must be the next declared tensor and `data` its
    /// exact size.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<(), Error> {
        let fail = |reason: String| Error::Write {
            file: self.dest().display().to_string(),
            item: format!("tensor `{name}`"),
            reason,
        };
        let Some((t, _)) = self.tensors.get(self.next) else {
            return Err(fail("more tensors written than declared".into()));
        };
        if t.name != name {
            return Err(fail(format!("expected tensor `{}` next", t.name)));
        }
        let nbytes = t.ty.tensor_bytes(&t.dims).expect("checked in create");
        if data.len() as u64 != nbytes {
            return Err(fail(format!(
                "{} {:?} takes {nbytes} bytes, got {}",
                t.ty,
                t.dims,
                data.len()
            )));
        }
        self.next += 1;
        self.out.write_all(data)?;
        let pos = self.out.position();
        let pad = pos.next_multiple_of(self.alignment) - pos;
        Ok(self.out.write_all(&vec![0u8; pad as usize])?)
    }

    /// Checks that every tensor was written, flushes, syncs and renames into place.
    pub fn finish(self) -> Result<PathBuf, Error> {
        if self.next != self.tensors.len() {
            return Err(Error::Write {
                file: self.dest().display().to_string(),
                item: format!("tensor `{}`", self.tensors[self.next].0.name),
                reason: format!(
                    "only {} of {} tensors written",
                    self.next,
                    self.tensors.len()
                ),
            });
        }
        Ok(self.out.finish()?)
    }
}
