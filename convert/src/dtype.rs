//! Source element types and the streaming f32/f16/bf16 converter.
//!
//! Conversion goes through f32 in chunks: bf16 → f32 is a shift, f16 ↔ f32 uses `half`'s slice
//! conversions (F16C when the CPU has it, detected at run time), f32 → bf16 rounds to nearest
//! even with a loop the compiler vectorises. While converting, the converter notes non-finite
//! values (NaN/Inf) and, for an f16 output, finite values that overflow f16's range.

use half::f16;
use half::slice::HalfFloatSliceExt;
use llamapack_format::{DType, SlotSink, TensorSink};

use crate::error::Result;

/// Element type of a tensor in a source checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceDType {
    /// float64.
    F64,
    /// float32.
    F32,
    /// float16.
    F16,
    /// bfloat16.
    BF16,
    /// int64.
    I64,
    /// int32.
    I32,
    /// int16.
    I16,
    /// int8.
    I8,
    /// uint8.
    U8,
    /// bool.
    Bool,
}

impl SourceDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            SourceDType::F64 | SourceDType::I64 => 8,
            SourceDType::F32 | SourceDType::I32 => 4,
            SourceDType::F16 | SourceDType::BF16 | SourceDType::I16 => 2,
            SourceDType::I8 | SourceDType::U8 | SourceDType::Bool => 1,
        }
    }

    /// Lower-case name (`bf16`, `i64`).
    pub fn name(self) -> &'static str {
        match self {
            SourceDType::F64 => "f64",
            SourceDType::F32 => "f32",
            SourceDType::F16 => "f16",
            SourceDType::BF16 => "bf16",
            SourceDType::I64 => "i64",
            SourceDType::I32 => "i32",
            SourceDType::I16 => "i16",
            SourceDType::I8 => "i8",
            SourceDType::U8 => "u8",
            SourceDType::Bool => "bool",
        }
    }

    /// The `.lpk` dtype with the same bytes, for the three float types a model is stored in.
    pub fn to_lpk(self) -> Option<DType> {
        match self {
            SourceDType::F32 => Some(DType::F32),
            SourceDType::F16 => Some(DType::F16),
            SourceDType::BF16 => Some(DType::BF16),
            _ => None,
        }
    }
}

impl std::fmt::Display for SourceDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Elements converted per chunk.
const CHUNK: usize = 1 << 15;
/// Elements per on-stack f16 buffer (8 KB).
const HALF_CHUNK: usize = 1 << 12;

/// What the converter saw in one tensor.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Scan {
    /// Non-finite source values: count, first flat index, first value.
    pub nonfinite: u64,
    pub first_nonfinite: Option<(u64, f32)>,
    /// Finite values that became ±Inf in an f16 output.
    pub overflow: u64,
    pub first_overflow: Option<(u64, f32)>,
}

/// Where a [`Converter`] puts its bytes: a tensor of the streaming writer, or a reserved one
/// written by a worker thread.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]) -> Result<()>;
}

impl Sink for TensorSink<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        Ok(self.write(bytes)?)
    }
}

impl Sink for SlotSink<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        Ok(self.write(bytes)?)
    }
}

/// Streams one tensor's elements from `src` to `dst` dtype into a [`Sink`].
pub(crate) struct Converter {
    src: DType,
    dst: DType,
    index: u64,
    f32s: Vec<f32>,
    out: Vec<u8>,
    pub scan: Scan,
}

/// Decodes little-endian `bytes` of `src` into `out` (same element count).
pub(crate) fn decode_f32(src: DType, bytes: &[u8], out: &mut [f32]) {
    match src {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        DType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16);
            }
        }
        DType::F16 => {
            let mut bits = [f16::ZERO; HALF_CHUNK];
            for (o, c) in out.chunks_mut(HALF_CHUNK).zip(bytes.chunks(HALF_CHUNK * 2)) {
                let b = &mut bits[..o.len()];
                for (h, x) in b.iter_mut().zip(c.chunks_exact(2)) {
                    *h = f16::from_bits(u16::from_le_bytes([x[0], x[1]]));
                }
                b.convert_to_f32_slice(o);
            }
        }
        other => unreachable!("decode_f32 called with {other}"),
    }
}

/// Decodes little-endian f32/f16/bf16 `bytes` into f32 values (`None` for other dtypes).
pub fn decode_f32_bytes(src: SourceDType, bytes: &[u8]) -> Option<Vec<f32>> {
    let dt = src.to_lpk()?;
    let mut out = vec![0f32; bytes.len() / src.size()];
    decode_f32(dt, bytes, &mut out);
    Some(out)
}

/// f32 → bf16 bits, round to nearest even; NaN stays a (quiet) NaN.
#[inline]
fn f32_to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        ((b >> 16) | 0x40) as u16
    } else {
        (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16
    }
}

/// Encodes `vals` as `dst` little-endian bytes, appending to `out`.
pub(crate) fn encode(dst: DType, vals: &[f32], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + vals.len() * dst.block_bytes(), 0);
    let out = &mut out[start..];
    match dst {
        DType::F32 => {
            for (o, v) in out.chunks_exact_mut(4).zip(vals) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        DType::BF16 => {
            for (o, &v) in out.chunks_exact_mut(2).zip(vals) {
                o.copy_from_slice(&f32_to_bf16_bits(v).to_le_bytes());
            }
        }
        DType::F16 => {
            let mut h = [f16::ZERO; HALF_CHUNK];
            for (c, o) in vals.chunks(HALF_CHUNK).zip(out.chunks_mut(HALF_CHUNK * 2)) {
                let h = &mut h[..c.len()];
                h.convert_from_f32_slice(c);
                for (o, x) in o.chunks_exact_mut(2).zip(h.iter()) {
                    o.copy_from_slice(&x.to_bits().to_le_bytes());
                }
            }
        }
        other => unreachable!("encode called with {other}"),
    }
}

/// Whether a float of `dt` with these little-endian bytes is NaN or ±Inf.
#[inline]
fn nonfinite_bits(dt: DType, c: &[u8]) -> bool {
    match dt {
        DType::F32 => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x7F80_0000 == 0x7F80_0000,
        DType::BF16 => u16::from_le_bytes([c[0], c[1]]) & 0x7F80 == 0x7F80,
        _ => u16::from_le_bytes([c[0], c[1]]) & 0x7C00 == 0x7C00,
    }
}

/// How many floats of `dt` in `bytes` are NaN or ±Inf: one branch-free pass per dtype, which
/// the compiler vectorises (the element-wise [`nonfinite_bits`] is for finding the first).
fn count_nonfinite(dt: DType, bytes: &[u8]) -> u64 {
    fn count16(bytes: &[u8], exp: u16) -> u64 {
        let mut n = 0u64;
        for c in bytes.chunks(1 << 16) {
            let k: u32 = c
                .chunks_exact(2)
                .map(|x| u32::from(u16::from_le_bytes([x[0], x[1]]) & exp == exp))
                .sum();
            n += u64::from(k);
        }
        n
    }
    match dt {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|x| {
                u64::from(u32::from_le_bytes([x[0], x[1], x[2], x[3]]) & 0x7F80_0000 == 0x7F80_0000)
            })
            .sum(),
        DType::BF16 => count16(bytes, 0x7F80),
        _ => count16(bytes, 0x7C00),
    }
}

/// Whether `v` is finite and rounds to ±Inf in f16 (f16's largest finite is 65504; anything
/// at or above 65520 rounds to infinity).
#[inline]
fn overflows_f16(v: f32) -> bool {
    let a = v.abs();
    a >= 65520.0 && a != f32::INFINITY && !a.is_nan()
}

fn value_of(dt: DType, c: &[u8]) -> f32 {
    let mut v = [0f32];
    decode_f32(dt, c, &mut v);
    v[0]
}

impl Converter {
    pub fn new(src: DType, dst: DType) -> Self {
        Converter {
            src,
            dst,
            index: 0,
            f32s: Vec::new(),
            out: Vec::new(),
            scan: Scan::default(),
        }
    }

    fn note_nonfinite(&mut self, bytes: &[u8]) {
        let es = self.src.block_bytes();
        let n = count_nonfinite(self.src, bytes);
        if n > 0 {
            if self.scan.first_nonfinite.is_none() {
                let i = bytes
                    .chunks_exact(es)
                    .position(|c| nonfinite_bits(self.src, c))
                    .expect("counted one");
                let v = value_of(self.src, &bytes[i * es..(i + 1) * es]);
                self.scan.first_nonfinite = Some((self.index + i as u64, v));
            }
            self.scan.nonfinite += n;
        }
    }

    fn note_overflow(&mut self, vals: &[f32], base: u64) {
        let n: u64 = vals.iter().map(|&v| u64::from(overflows_f16(v))).sum();
        if n > 0 {
            if self.scan.first_overflow.is_none() {
                let i = vals
                    .iter()
                    .position(|&v| overflows_f16(v))
                    .expect("counted one");
                self.scan.first_overflow = Some((base + i as u64, vals[i]));
            }
            self.scan.overflow += n;
        }
    }

    /// Converts and writes `bytes` (a whole number of source elements).
    pub fn feed(&mut self, bytes: &[u8], sink: &mut impl Sink) -> Result<()> {
        let es = self.src.block_bytes();
        debug_assert_eq!(bytes.len() % es, 0);
        self.note_nonfinite(bytes);
        if self.src == self.dst {
            sink.put(bytes)?;
            self.index += (bytes.len() / es) as u64;
            return Ok(());
        }
        for c in bytes.chunks(CHUNK * es) {
            let n = c.len() / es;
            self.f32s.resize(n, 0.0);
            decode_f32(self.src, c, &mut self.f32s);
            if self.dst == DType::F16 && self.src != DType::F16 {
                let vals = std::mem::take(&mut self.f32s);
                self.note_overflow(&vals, self.index);
                self.f32s = vals;
            }
            self.out.clear();
            encode(self.dst, &self.f32s, &mut self.out);
            sink.put(&self.out)?;
            self.index += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_matches_half() {
        for bits in (0u32..=u32::MAX).step_by(65_537) {
            let x = f32::from_bits(bits);
            let ours = f32_to_bf16_bits(x);
            let theirs = half::bf16::from_f32(x).to_bits();
            if x.is_nan() {
                assert_eq!(ours & 0x7F80, 0x7F80);
                assert_ne!(ours & 0x7F, 0);
            } else {
                assert_eq!(ours, theirs, "{x:e}");
            }
        }
    }

    #[test]
    fn round_trips_through_every_pair() {
        let vals: Vec<f32> = vec![0.0, -0.0, 1.0, -2.5, 0.125, 1024.0, -3.0e-3];
        for src in [DType::F32, DType::F16, DType::BF16] {
            let mut b = Vec::new();
            encode(src, &vals, &mut b);
            for dst in [DType::F32, DType::F16, DType::BF16] {
                let mut back = vec![0f32; vals.len()];
                let mut enc = Vec::new();
                let mut f = vec![0f32; vals.len()];
                decode_f32(src, &b, &mut f);
                encode(dst, &f, &mut enc);
                decode_f32(dst, &enc, &mut back);
                for (a, b) in vals.iter().zip(&back) {
                    // All test values are exact in f16 up to bf16's 8-bit mantissa.
                    assert!((a - b).abs() <= a.abs() * 1e-2, "{src}->{dst}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn nonfinite_detection() {
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let mut b = Vec::new();
            encode(dt, &[1.0, f32::NAN, f32::INFINITY, -1.0], &mut b);
            let es = dt.block_bytes();
            let flags: Vec<bool> = b.chunks(es).map(|c| nonfinite_bits(dt, c)).collect();
            assert_eq!(flags, [false, true, true, false], "{dt}");
        }
    }
}
