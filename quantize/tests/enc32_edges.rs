//! The 32-value block encoders (q4_0, q4_1, q5_0, q5_1, q8_0, q8_1) at every level against the
//! scalar reference on blocks built to hit each of their C corner cases one at a time, in every
//! position of a row (the SIMD encoders work on groups of blocks and pad a row's tail):
//!
//! - a zero extreme with ±0 mixed in at any position (the first zero's sign is the stored
//!   minimum, and decides `max − min` for a block of zeros);
//! - ties of magnitude of opposite sign in any of the four registers (q4_0/q5_0's signed max);
//! - `max − min` overflowing f32, f16-overflowing scales, subnormal scales whose inverse
//!   overflows, constant blocks;
//! - arbitrary finite bit patterns, block by block at random exponents.

use crate::common;

use common::{Rng, encode, levels};
use llamapack_quantize::DType;
use proptest::prelude::*;

const TYPES: [DType; 6] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q8_1,
];

fn check(x: &[f32]) {
    for dtype in TYPES {
        let want = encode(dtype, x);
        for k in levels() {
            let mut got = vec![0u8; want.len()];
            k.quantize_row(dtype, x, &mut got).unwrap();
            if let Some(i) = want.iter().zip(&got).position(|(a, b)| a != b) {
                let b = i / dtype.block_bytes();
                panic!(
                    "{dtype} at {}: byte {i} (block {b}: {:?}) is {} vs ref {}",
                    k.level(),
                    &x[32 * b..32 * b + 32],
                    got[i],
                    want[i]
                );
            }
        }
    }
}

/// `check`s `b` as each block of a 9-block row of ordinary blocks (every lane of a group of 8
/// blocks, and a row's tail).
fn check_everywhere(b: &[f32; 32]) {
    let mut r = Rng::new(7);
    let mut x: Vec<f32> = (0..9 * 32).map(|_| r.normal()).collect();
    for pos in 0..9 {
        let saved: Vec<f32> = x[32 * pos..32 * pos + 32].to_vec();
        x[32 * pos..32 * pos + 32].copy_from_slice(b);
        check(&x);
        x[32 * pos..32 * pos + 32].copy_from_slice(&saved);
    }
}

/// A finite f32 from random bits (exponent 255 replaced by 254).
fn finite(bits: u32) -> f32 {
    let v = f32::from_bits(bits);
    if v.is_finite() {
        v
    } else {
        f32::from_bits(bits & 0xff7f_ffff)
    }
}

/// One block of the shape `kind` from `r`.
fn block(kind: u64, r: &mut Rng) -> [f32; 32] {
    let mut b: [f32; 32] = std::array::from_fn(|_| r.normal());
    let signed_zero = |r: &mut Rng| if r.below(2) == 0 { 0.0 } else { -0.0 };
    match kind {
        0 | 1 => {
            // one sign only, zeros of both signs sprinkled (the zero is the min, or the max)
            let neg = kind == 1;
            for v in &mut b {
                *v = if neg { -v.abs() } else { v.abs() };
            }
            for _ in 0..=r.below(4) {
                b[r.below(32) as usize] = signed_zero(r);
            }
        }
        2 => b.iter_mut().for_each(|v| *v = signed_zero(r)),
        3 => {
            // constant block, possibly with one ±0
            let c = r.normal() * 10f32.powi(r.below(20) as i32 - 10);
            b.fill(c);
            if r.below(2) == 0 {
                b[r.below(32) as usize] = signed_zero(r);
            }
        }
        4 => {
            // max − min overflows f32 (and the f16 scale)
            let big = f32::MAX * (0.5 + 0.5 * r.uniform().abs());
            b[r.below(32) as usize] = big;
            b[r.below(32) as usize] = -big;
        }
        5 => {
            // equal magnitudes of both signs anywhere, as the block's largest
            let m = 1.0 + r.uniform().abs();
            for _ in 0..=r.below(3) {
                b[r.below(32) as usize] = if r.below(2) == 0 { m } else { -m };
            }
            for v in &mut b {
                *v = v.clamp(-m, m);
            }
        }
        6 => {
            // subnormal and tiny normal values: scales whose inverse overflows or is inexact
            let scale = f32::from_bits(1 + r.below(0x0180_0000) as u32);
            for v in &mut b {
                *v = (*v * scale).abs() * v.signum();
            }
        }
        7 => {
            // f16 overflow of d and m
            let s = 10f32.powi(5 + r.below(30) as i32);
            for v in &mut b {
                *v *= s;
            }
        }
        _ => {
            // arbitrary finite bits
            let e = r.below(256) as u32;
            for v in &mut b {
                let bits = r.next_u64() as u32;
                *v = finite(if r.below(2) == 0 {
                    bits
                } else {
                    (bits & 0x807f_ffff) | (e << 23)
                });
            }
        }
    }
    b
}

#[test]
fn every_zero_position_and_sign() {
    // min (or max) zero, the first zero at each position p, the other zeros of the other sign.
    for neg in [false, true] {
        for p in 0..32 {
            for first in [0.0f32, -0.0] {
                let mut r = Rng::new(p as u64);
                let mut b: [f32; 32] = std::array::from_fn(|_| r.normal().abs() + 0.1);
                if neg {
                    for v in &mut b {
                        *v = -*v;
                    }
                }
                b[p] = first;
                for j in (p + 1..32).step_by(3) {
                    b[j] = -first;
                }
                check_everywhere(&b);
                // and a block of zeros only
                let mut z = [-first; 32];
                z[p] = first;
                z[..p].fill(first);
                check_everywhere(&z);
            }
        }
    }
}

#[test]
fn ties_of_magnitude_in_every_register() {
    for p in 0..32 {
        for q in 0..32 {
            if p == q {
                continue;
            }
            let mut b = [0.25f32; 32];
            b[p] = 3.0;
            b[q] = -3.0;
            check_everywhere(&b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn corner_case_blocks_match_reference(kinds in prop::collection::vec(0u64..10, 1..12), seed: u64) {
        let mut r = Rng::new(seed);
        let x: Vec<f32> = kinds.iter().flat_map(|&k| block(k, &mut r)).collect();
        check(&x);
    }
}
