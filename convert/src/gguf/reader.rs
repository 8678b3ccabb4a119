//! Zero-copy GGUF reader (versions 2 and 3, little-endian) over a byte slice, normally an mmap.
//!
//! Everything is validated up front: every count and length against the bytes that remain
//! before anything is allocated, nesting depth, tensor dims (1 to 4, non-zero, no overflow),
//! tensor types, and each tensor's data span (aligned, inside the file, exactly the type's size
//! for its shape, overlapping no other). A [`GgufFile`] that parsed hands out in-bounds slices.

use std::collections::HashMap;

use super::Error;
use super::types::{GgmlType, ValueType};
use super::value::{Array, Value};

/// `GGUF` as the first four bytes.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// Most tensors a file may declare.
pub const MAX_TENSORS: u64 = 1 << 20;
/// Most metadata entries a file may declare.
pub const MAX_KV: u64 = 1 << 20;
/// Deepest nesting of arrays (an array of scalars is depth 1).
pub const MAX_DEPTH: usize = 8;
/// Most dimensions of a tensor (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Longest key or tensor name.
pub const MAX_NAME_LEN: u64 = 65535;

/// One tensor's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dims innermost first: `ne[0]` is the row length.
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Byte size (the type's size for `dims`).
    pub nbytes: u64,
}

impl TensorInfo {
    /// Shape outermost first (`PyTorch` / `.lpk` order): `dims` reversed.
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }

    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF file borrowing its bytes.
#[derive(Debug)]
pub struct GgufFile<'a> {
    file: String,
    bytes: &'a [u8],
    version: u32,
    alignment: u32,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    keys: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    names: HashMap<String, usize>,
}

/// A low-level failure, given its context (key, tensor) by the caller.
enum Fault {
    Short { need: u64, have: u64 },
    Bad(String),
}

type Res<T> = Result<T, Fault>;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64) -> Res<&'a [u8]> {
        let have = self.remaining();
        if n > have {
            return Err(Fault::Short { need: n, have });
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> Res<[u8; N]> {
        Ok(self.take(N as u64)?.try_into().expect("length checked"))
    }

    fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }

    fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    fn string(&mut self, max: u64) -> Res<String> {
        let len = self.u64()?;
        if len > max {
            return Err(Fault::Bad(format!("string length {len} exceeds {max}")));
        }
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|e| {
            Fault::Bad(format!(
                "string is not utf-8 (byte {} of {len})",
                e.utf8_error().valid_up_to()
            ))
        })
    }

    /// Reads `count` elements after checking that the bytes they need at the least remain.
    fn count(&mut self, count: u64, min_size: u64) -> Res<usize> {
        let need = count.saturating_mul(min_size);
        let have = self.remaining();
        if need > have {
            return Err(Fault::Short { need, have });
        }
        Ok(count as usize)
    }

    fn scalars<T, const N: usize>(&mut self, n: usize, f: fn([u8; N]) -> T) -> Res<Vec<T>> {
        let raw = self.take((n * N) as u64)?;
        Ok(raw
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunk of N")))
            .collect())
    }

    fn bool(b: u8) -> Res<bool> {
        match b {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Fault::Bad(format!("bool value {b} is neither 0 nor 1"))),
        }
    }

    fn value_type(&mut self) -> Res<ValueType> {
        let id = self.u32()?;
        ValueType::from_id(id).ok_or_else(|| Fault::Bad(format!("unknown value type {id}")))
    }

    fn value(&mut self, ty: ValueType, depth: usize) -> Res<Value> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.arr::<1>()?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.arr()?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.arr()?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.arr()?)),
            ValueType::U32 => Value::U32(self.u32()?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.arr()?)),
            ValueType::U64 => Value::U64(self.u64()?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.arr()?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.arr()?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.arr()?)),
            ValueType::Bool => Value::Bool(Self::bool(self.arr::<1>()?[0])?),
            ValueType::String => Value::String(self.string(u64::MAX)?),
            ValueType::Array => Value::Array(self.array(depth + 1)?),
        })
    }

    fn array(&mut self, depth: usize) -> Res<Array> {
        if depth > MAX_DEPTH {
            return Err(Fault::Bad(format!(
                "arrays nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let ty = self.value_type()?;
        let raw = self.u64()?;
        let n = self.count(raw, ty.min_size())?;
        Ok(match ty {
            ValueType::U8 => Array::U8(self.take(n as u64)?.to_vec()),
            ValueType::I8 => Array::I8(self.scalars(n, i8::from_le_bytes)?),
            ValueType::U16 => Array::U16(self.scalars(n, u16::from_le_bytes)?),
            ValueType::I16 => Array::I16(self.scalars(n, i16::from_le_bytes)?),
            ValueType::U32 => Array::U32(self.scalars(n, u32::from_le_bytes)?),
            ValueType::I32 => Array::I32(self.scalars(n, i32::from_le_bytes)?),
            ValueType::U64 => Array::U64(self.scalars(n, u64::from_le_bytes)?),
            ValueType::I64 => Array::I64(self.scalars(n, i64::from_le_bytes)?),
            ValueType::F32 => Array::F32(self.scalars(n, f32::from_le_bytes)?),
            ValueType::F64 => Array::F64(self.scalars(n, f64::from_le_bytes)?),
            ValueType::Bool => Array::Bool(
                self.take(n as u64)?
                    .iter()
                    .map(|&b| Self::bool(b))
                    .collect::<Res<_>>()?,
            ),
            ValueType::String => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.string(u64::MAX).map_err(|f| at_index(f, i))?);
                }
                Array::String(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.array(depth + 1).map_err(|f| at_index(f, i))?);
                }
                Array::Array(v)
            }
        })
    }
}

fn at_index(f: Fault, i: usize) -> Fault {
    match f {
        Fault::Bad(r) => Fault::Bad(format!("element {i}: {r}")),
        short @ Fault::Short { .. } => short,
    }
}

impl<'a> GgufFile<'a> {
    /// Parses and validates the GGUF file held in `bytes`; `file` names it in errors.
    pub fn parse(bytes: &'a [u8], file: impl Into<String>) -> Result<Self, Error> {
        let file = file.into();
        let mut c = Cursor { bytes, pos: 0 };
        let header = |reason: String| Error::BadHeader {
            file: file.clone(),
            reason,
        };
        // Maps a fault in the part of the file described by `what` to an error.
        let fault = |what: &str, at: usize, f: Fault| match f {
            Fault::Short { need, have } => Error::Truncated {
                file: file.clone(),
                what: what.to_owned(),
                offset: at as u64,
                needed: need,
                available: have,
            },
            Fault::Bad(reason) => Error::BadHeader {
                file: file.clone(),
                reason: format!("{what}: {reason}"),
            },
        };
        let magic = c.arr::<4>().map_err(|f| fault("magic", 0, f))?;
        if magic != MAGIC {
            return Err(header(format!(
                "magic {magic:02x?} is not `GGUF` ({MAGIC:02x?})"
            )));
        }
        let version = c.u32().map_err(|f| fault("version", 4, f))?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(header(
                    "version 1 (32-bit counts, 2023) is not supported; convert it again with a current llama.cpp".into(),
                ));
            }
            v if matches!(v.swap_bytes(), 2 | 3) => {
                return Err(header(format!(
                    "big-endian gguf (version {}) is not supported",
                    v.swap_bytes()
                )));
            }
            v => return Err(header(format!("unsupported version {v} (expected 2 or 3)"))),
        }
        let n_tensors = c.u64().map_err(|f| fault("tensor count", 8, f))?;
        let n_kv = c.u64().map_err(|f| fault("metadata count", 16, f))?;
        if n_tensors > MAX_TENSORS {
            return Err(header(format!(
                "{n_tensors} tensors exceed the limit of {MAX_TENSORS}"
            )));
        }
        if n_kv > MAX_KV {
            return Err(header(format!(
                "{n_kv} metadata entries exceed the limit of {MAX_KV}"
            )));
        }
        // key length (8) + type (4) + the smallest value (1).
        c.count(n_kv, 13)
            .map_err(|f| fault("metadata count", 16, f))?;

        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut keys = HashMap::with_capacity(n_kv as usize);
        for i in 0..n_kv as usize {
            let at = c.pos;
            let key = c
                .string(MAX_NAME_LEN)
                .map_err(|f| fault(&format!("key of metadata entry {i}"), at, f))?;
            let bad = |reason: String| Error::BadMetadata {
                file: file.clone(),
                key: key.clone(),
                reason,
            };
            if key.is_empty() {
                return Err(bad("empty key".into()));
            }
            let at = c.pos;
            let what = format!("metadata key `{key}`");
            let value = c
                .value_type()
                .and_then(|ty| c.value(ty, 0))
                .map_err(|f| match f {
                    Fault::Bad(r) => bad(r),
                    short @ Fault::Short { .. } => fault(&what, at, short),
                })?;
            if keys.insert(key.clone(), i).is_some() {
                return Err(bad("key appears twice".into()));
            }
            metadata.push((key, value));
        }

        let alignment = match keys.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if a.is_power_of_two() => *a,
            Some(v) => {
                return Err(Error::BadMetadata {
                    file,
                    key: "general.alignment".into(),
                    reason: format!("{v:?} is not a power of two of type UINT32"),
                });
            }
        };

        // name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
        c.count(n_tensors, 32)
            .map_err(|f| fault("tensor count", 8, f))?;
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut names = HashMap::with_capacity(n_tensors as usize);
        for i in 0..n_tensors as usize {
            let at = c.pos;
            let name = c
                .string(MAX_NAME_LEN)
                .map_err(|f| fault(&format!("name of tensor {i}"), at, f))?;
            let at = c.pos;
            let what = format!("tensor `{name}`");
            let t = read_tensor_info(&mut c, name.clone()).map_err(|f| match f {
                Fault::Bad(reason) => Error::BadTensor {
                    file: file.clone(),
                    tensor: name.clone(),
                    reason,
                },
                short @ Fault::Short { .. } => fault(&what, at, short),
            })?;
            if names.insert(name.clone(), i).is_some() {
                return Err(Error::BadTensor {
                    file,
                    tensor: name,
                    reason: "name appears twice".into(),
                });
            }
            tensors.push(t);
        }

        let end_of_infos = c.pos as u64;
        let data_offset = end_of_infos.next_multiple_of(u64::from(alignment));
        let len = bytes.len() as u64;
        if !tensors.is_empty() && data_offset > len {
            return Err(Error::Truncated {
                file,
                what: "padding before the tensor data".into(),
                offset: end_of_infos,
                needed: data_offset - end_of_infos,
                available: len - end_of_infos,
            });
        }
        let data_len = len.saturating_sub(data_offset);
        let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            let bad = |reason: String| Error::BadTensor {
                file: file.clone(),
                tensor: t.name.clone(),
                reason,
            };
            if t.offset % u64::from(alignment) != 0 {
                return Err(bad(format!(
                    "data offset {} is not a multiple of the alignment {alignment}",
                    t.offset
                )));
            }
            match t.offset.checked_add(t.nbytes) {
                Some(end) if end <= data_len => spans.push((t.offset, end, i)),
                _ => {
                    return Err(bad(format!(
                        "data {}+{} bytes lies outside the {data_len}-byte data section (file truncated?)",
                        t.offset, t.nbytes
                    )));
                }
            }
        }
        spans.sort_unstable();
        for w in spans.windows(2) {
            let (_, a_end, a) = w[0];
            let (b_off, _, b) = w[1];
            // Zero-length spans cannot occur: dims are non-zero.
            if b_off < a_end {
                return Err(Error::BadTensor {
                    file,
                    tensor: tensors[b].name.clone(),
                    reason: format!("data overlaps tensor `{}`", tensors[a].name),
                });
            }
        }
        Ok(GgufFile {
            file,
            bytes,
            version,
            alignment,
            data_offset,
            metadata,
            keys,
            tensors,
            names,
        })
    }

    /// The name used in errors.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// Format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u32 {
        self.alignment
    }

    /// Absolute offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.keys.get(key).map(|&i| &self.metadata[i].1)
    }

    /// Tensor entries in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The entry of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.names.get(name).map(|&i| &self.tensors[i])
    }

    /// The bytes of a tensor of this file (checked in [`parse`](Self::parse)).
    pub fn tensor_data(&self, t: &TensorInfo) -> &'a [u8] {
        let start = (self.data_offset + t.offset) as usize;
        &self.bytes[start..start + t.nbytes as usize]
    }
}

fn read_tensor_info(c: &mut Cursor<'_>, name: String) -> Res<TensorInfo> {
    let n_dims = c.u32()?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(Fault::Bad(format!(
            "{n_dims} dimensions (expected 1 to {MAX_DIMS})"
        )));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let d = c.u64()?;
        if d == 0 || d > i64::MAX as u64 {
            return Err(Fault::Bad(format!("dimension {d} is out of range")));
        }
        dims.push(d);
    }
    let id = c.u32()?;
    let offset = c.u64()?;
    let ty = GgmlType::from_id(id).ok_or_else(|| Fault::Bad(format!("unknown ggml type {id}")))?;
    let numel = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or_else(|| Fault::Bad(format!("dims {dims:?} overflow the element count")))?;
    if dims[0] % ty.block_len() != 0 {
        return Err(Fault::Bad(format!(
            "dims {dims:?}: the row length {} is not a multiple of the {ty} block of {}",
            dims[0],
            ty.block_len()
        )));
    }
    let nbytes = ty.tensor_bytes(&dims).ok_or_else(|| {
        Fault::Bad(format!(
            "{ty} dims {dims:?}: {numel} elements overflow the byte size"
        ))
    })?;
    Ok(TensorInfo {
        name,
        dims,
        ty,
        offset,
        nbytes,
    })
}
