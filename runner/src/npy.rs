//! A small, bounds-checked `.npy` reader (float32, float16, int32, int64; format versions 1–3)
//! and a float32 writer, for reference logits and token files.

use std::path::Path;

use half::f16;
use llamapack_format::output::OutputFile;

use crate::error::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";
/// Largest header accepted (numpy itself writes a few hundred bytes).
const MAX_HEADER: usize = 1 << 20;

/// The elements of an array.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `<f4`.
    F32(Vec<f32>),
    /// `<f2`.
    F16(Vec<f16>),
    /// `<i4`.
    I32(Vec<i32>),
    /// `<i8`.
    I64(Vec<i64>),
}

/// A C-order array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: NpyData,
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as f32 (floats only).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        match &self.data {
            NpyData::F32(v) => Ok(v.clone()),
            NpyData::F16(v) => Ok(v.iter().map(|x| x.to_f32()).collect()),
            _ => Err(npy_err("<array>", "expected a float array")),
        }
    }

    /// The elements as i64 (integers only).
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        match &self.data {
            NpyData::I32(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            NpyData::I64(v) => Ok(v.clone()),
            _ => Err(npy_err("<array>", "expected an integer array")),
        }
    }
}

fn npy_err(file: &str, reason: impl Into<String>) -> Error {
    Error::Npy {
        file: file.into(),
        reason: reason.into(),
    }
}

/// Reads a `.npy` file.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&bytes, &path.display().to_string())
}

/// Parses `.npy` bytes; `file` names them in errors.
pub fn parse(bytes: &[u8], file: &str) -> Result<NpyArray> {
    let err = |r: String| npy_err(file, r);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("not a .npy file (bad magic)".into()));
    }
    let major = bytes[6];
    let (hlen, hstart) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            let b = bytes
                .get(8..12)
                .ok_or_else(|| err("truncated preamble".into()))?;
            (
                u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize,
                12,
            )
        }
        v => return Err(err(format!("unsupported .npy version {v}"))),
    };
    if hlen > MAX_HEADER {
        return Err(err(format!("header of {hlen} bytes is too large")));
    }
    let header = bytes.get(hstart..hstart + hlen).ok_or_else(|| {
        err(format!(
            "header of {hlen} bytes runs past the end of the file"
        ))
    })?;
    let header = std::str::from_utf8(header).map_err(|_| err("header is not UTF-8".into()))?;
    let descr = dict_value(header, "descr")
        .and_then(|v| v.strip_prefix('\'').or_else(|| v.strip_prefix('"')))
        .and_then(|v| v.split(['\'', '"']).next())
        .ok_or_else(|| err(format!("no descr in header {header:?}")))?;
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| err("no fortran_order in header".into()))?;
    let shape =
        parse_shape(dict_value(header, "shape").ok_or_else(|| err("no shape in header".into()))?)
            .ok_or_else(|| err(format!("bad shape in header {header:?}")))?;
    if fortran.starts_with("True") && shape.len() > 1 {
        return Err(err("Fortran-order arrays are not supported".into()));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("shape {shape:?} overflows")))?;
    let (item, kind) = match descr {
        "<f4" => (4, 'f'),
        "<f2" => (2, 'h'),
        "<i4" => (4, 'i'),
        "<i8" => (8, 'l'),
        d => {
            return Err(err(format!(
                "unsupported dtype {d} (expected little-endian <f4, <f2, <i4 or <i8)"
            )));
        }
    };
    let data = &bytes[hstart + hlen..];
    let need = count
        .checked_mul(item)
        .ok_or_else(|| err(format!("shape {shape:?} overflows")))?;
    if data.len() != need {
        return Err(err(format!(
            "{descr} {shape:?} needs {need} data bytes, the file has {}",
            data.len()
        )));
    }
    let data = match kind {
        'f' => NpyData::F32(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4")))
                .collect(),
        ),
        'h' => NpyData::F16(
            data.chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]))
                .collect(),
        ),
        'i' => NpyData::I32(
            data.chunks_exact(4)
                .map(|b| i32::from_le_bytes(b.try_into().expect("4")))
                .collect(),
        ),
        _ => NpyData::I64(
            data.chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8")))
                .collect(),
        ),
    };
    Ok(NpyArray { shape, data })
}

/// The text after `'key':` in a Python dict literal.
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// `(3, 4)`, `(5,)`, `()` → dimensions.
fn parse_shape(v: &str) -> Option<Vec<usize>> {
    let inner = v.strip_prefix('(')?.split(')').next()?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

/// The `.npy` header (version 1, padded to 64 bytes) of a float32 C-order array of `shape`:
/// what precedes its little-endian data, for writers that stream the rows.
pub fn header_f32(shape: &[usize]) -> Result<Vec<u8>> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let hlen = u16::try_from(header.len())
        .map_err(|_| Error::Invalid(format!("shape {shape:?} gives too long a header")))?;
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&hlen.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    Ok(out)
}

fn f32_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// [`header_f32`] for `len` values, checked against the shape.
fn header_for(shape: &[usize], len: usize) -> Result<Vec<u8>> {
    let count: usize = shape.iter().product();
    if count != len {
        return Err(Error::Invalid(format!(
            "shape {shape:?} has {count} elements, data has {len}"
        )));
    }
    header_f32(shape)
}

/// Encodes a float32 C-order array as `.npy` (version 1, header padded to 64 bytes).
pub fn to_bytes_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let mut out = header_for(shape, data.len())?;
    out.extend_from_slice(&f32_bytes(data));
    Ok(out)
}

/// Writes a float32 C-order array to `path`, streamed through llamapack's output writer
/// ([`OutputFile`]: a hidden temp file renamed into place when complete, nothing left on
/// error).
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let mut f = OutputFile::create(path)?;
    f.write_all(&header_for(shape, data.len())?)?;
    for chunk in data.chunks(1 << 16) {
        f.write_all(&f32_bytes(chunk))?;
    }
    f.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(header: &str, data: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn round_trips_f32() {
        let data = [1.0f32, -2.5, 3.25, 0.0, 7.0, 8.0];
        let b = to_bytes_f32(&[2, 3], &data).unwrap();
        assert_eq!((b.len() - data.len() * 4) % 64, 0);
        let a = parse(&b, "t").unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.to_f32().unwrap(), data);
        let b = to_bytes_f32(&[6], &data).unwrap();
        assert_eq!(parse(&b, "t").unwrap().shape, [6]);
    }

    #[test]
    fn reads_ints_f16_and_v2_headers() {
        let h = "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n";
        let mut d = 5i64.to_le_bytes().to_vec();
        d.extend_from_slice(&(-1i64).to_le_bytes());
        assert_eq!(parse(&v1(h, &d), "t").unwrap().to_i64().unwrap(), [5, -1]);
        let h = "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 1), }\n";
        let d = f16::from_f32(1.5).to_le_bytes();
        assert_eq!(parse(&v1(h, &d), "t").unwrap().to_f32().unwrap(), [1.5]);
        let h = "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }\n";
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[2, 0]);
        b.extend_from_slice(&(h.len() as u32).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(&7i32.to_le_bytes());
        assert_eq!(parse(&b, "t").unwrap().to_i64().unwrap(), [7]);
    }

    #[test]
    fn rejects_hostile_input() {
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
        for (h, d, why) in [
            (ok, &[0u8; 4][..], "needs 8 data bytes"),
            (
                "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                &[0u8; 4][..],
                "unsupported dtype",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }",
                &[][..],
                "overflows",
            ),
            (
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                &[0u8; 16][..],
                "Fortran",
            ),
        ] {
            let e = parse(&v1(h, d), "x.npy").unwrap_err().to_string();
            assert!(e.contains(why) && e.starts_with("x.npy"), "{e}");
        }
        assert!(parse(b"\x93NUMPY\x01\x00\xff\xff{", "t").is_err());
        assert!(parse(b"PK\x03\x04", "t").is_err());
    }
}
