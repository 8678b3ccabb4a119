//! Shared helpers for the integration tests: row generators and level iteration.
#![allow(dead_code)]

use llamapack_quantize::{DType, Kernels, Level, kernels_for};

/// Every level this CPU supports (always includes the scalar reference).
pub fn levels() -> Vec<&'static Kernels> {
    Level::ALL.iter().filter_map(|&l| kernels_for(l)).collect()
}

/// The scalar reference table.
pub fn reference() -> &'static Kernels {
    kernels_for(Level::Scalar).expect("scalar is always supported")
}

/// xorshift64*: deterministic, seedable, no dependencies.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Roughly normal (sum of 4 uniforms).
    pub fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() * 0.87
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Row shapes exercised by the tests. `kind` selects one; every kind is finite.
pub const KINDS: u64 = 12;

/// A row of `n` values of the given kind (see the match for the list).
pub fn row(kind: u64, n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    let mut v: Vec<f32> = (0..n).map(|_| r.normal()).collect();
    match kind {
        0 => {}           // normal-ish weights
        1 => v.fill(0.0), // all zeros
        2 => {
            // one huge outlier
            let i = r.below(n as u64) as usize;
            v[i] = if r.below(2) == 0 { 1e4 } else { -1e4 };
        }
        3 => {
            // ±0 only
            for x in &mut v {
                *x = if r.below(2) == 0 { 0.0 } else { -0.0 };
            }
        }
        4 => {
            // subnormals (and zeros)
            for x in &mut v {
                *x = f32::from_bits((r.next_u64() as u32) & 0x807f_ffff);
            }
        }
        5 => v.iter_mut().for_each(|x| *x *= 1e6), // overflows q4_0's f16 scale
        6 => v.iter_mut().for_each(|x| *x *= 1e9), // overflows every f16 scale
        7 => v.iter_mut().for_each(|x| *x *= 1e-38), // 1/d overflows f32
        8 => {
            // exact halves against scale 1: ties for roundf / nearest_int
            for (i, x) in v.iter_mut().enumerate() {
                *x = if i % 32 == 0 {
                    127.0
                } else {
                    (r.below(254) as f32 - 127.0) + 0.5
                };
            }
        }
        9 => {
            // one sign only, with ties of magnitude (first occurrence decides q4_0's sign)
            for (i, x) in v.iter_mut().enumerate() {
                *x = if i % 5 == 0 {
                    -3.0
                } else if i % 7 == 0 {
                    3.0
                } else {
                    x.abs()
                };
            }
        }
        10 => v.iter_mut().for_each(|x| *x = x.abs() + 0.5), // all positive: q4_k min = 0
        _ => {
            // sparse: mostly zeros, a few values
            for x in &mut v {
                if r.below(8) != 0 {
                    *x = 0.0;
                }
            }
        }
    }
    v
}

/// Whether two float slices are identical bit for bit (any NaN equals any NaN).
pub fn same_bits(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()))
}

/// Encodes with the reference.
pub fn encode(dtype: DType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; dtype.row_bytes(x.len()).expect("whole blocks")];
    reference()
        .quantize_row(dtype, x, &mut out)
        .expect("finite input");
    out
}

/// Decodes with the reference.
pub fn decode(dtype: DType, b: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    reference()
        .dequantize_row(dtype, b, &mut out)
        .expect("sizes match");
    out
}

/// The first byte where `got` and `want` (encoded rows) differ, ignoring — on CPUs other than
/// x86-64 — the sign of an f16 NaN: ggml's golden bytes were made on x86-64, whose default NaN
/// (0/0, ∞−∞ in a scale computed from extreme weights) is negative, while aarch64's is
/// positive, so ggml itself writes the other sign there. Every f16 field of every ggml block
/// sits at an even offset, so the 2-byte word around a difference is checked.
pub fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    let i = got.iter().zip(want).position(|(a, b)| a != b)?;
    if cfg!(target_arch = "x86_64") {
        return Some(i);
    }
    let word = |b: &[u8], w: usize| u16::from_le_bytes([b[2 * w], b[2 * w + 1]]);
    let nan = |h: u16| h & 0x7c00 == 0x7c00 && h & 0x03ff != 0;
    for w in i / 2..got.len().min(want.len()) / 2 {
        let (g, x) = (word(got, w), word(want, w));
        if g != x && !(g ^ x == 0x8000 && nan(g) && nan(x)) {
            return Some(2 * w + usize::from(got[2 * w] == want[2 * w]));
        }
    }
    None
}
