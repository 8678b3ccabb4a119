//! Every SIMD level against the scalar reference, on random and adversarial rows.
//!
//! - quantize: byte-identical (every encoder is deterministic here);
//! - dequantize: bit-identical, on arbitrary block bytes (NaN/inf scales included);
//! - vec_dot: the 256-value block types (k-quants, iq4_xs) bit-identical; the 32-value ones
//!   (q8_0, q4_0, q5_0, iq4_nl) within `4·ε·(blocks + 8)·Σ|wᵢaᵢ|`, q4_1/q5_1 within
//!   `4·ε·(blocks + 8)·(Σ|(wᵢ − m)·aᵢ| + Σ_blocks |m·s|)`; f32/f16/bf16 within
//!   `2·ε·(n + 16)·Σ|wᵢaᵢ|`.

use crate::common;

use common::{KINDS, Rng, decode, encode, levels, reference, row, same_bits};
use std::mem::offset_of;

use half::f16;
use llamapack_format::blocks::{BlockQ2K, BlockQ4_1, BlockQ4K, BlockQ5_1, BlockQ5K, BlockQ8_1};
use llamapack_quantize::{DType, vec_dot_type};
use proptest::prelude::*;

/// Row lengths: 1 block, a few blocks, many blocks, and a float row with a ragged tail.
fn len_for(dtype: DType, blocks: usize, extra: usize) -> usize {
    if dtype.block_len() == 1 {
        256 * blocks + extra
    } else {
        dtype.block_len() * blocks
    }
}

fn check_quantize(dtype: DType, x: &[f32]) {
    let want = encode(dtype, x);
    let mut want_w = vec![0u8; want.len()];
    reference()
        .quantize_weights_row(dtype, x, &mut want_w)
        .unwrap();
    for k in levels() {
        let mut got = vec![0u8; want.len()];
        k.quantize_weights_row(dtype, x, &mut got).unwrap();
        assert!(
            got == want_w,
            "{dtype} weight encoder at {}: bytes differ",
            k.level()
        );
        let mut got = vec![0u8; want.len()];
        k.quantize_row(dtype, x, &mut got).unwrap();
        if let Some(i) = want.iter().zip(&got).position(|(a, b)| a != b) {
            panic!(
                "{dtype} at {}: byte {i} differs ({} vs ref {})",
                k.level(),
                got[i],
                want[i]
            );
        }
    }
}

fn check_dequantize(dtype: DType, bytes: &[u8], n: usize) {
    let want = decode(dtype, bytes, n);
    for k in levels() {
        let mut got = vec![0f32; n];
        k.dequantize_row(dtype, bytes, &mut got).unwrap();
        if let Some(i) = same_bits(&want, &got) {
            panic!(
                "{dtype} at {}: value {i} is {} vs ref {}",
                k.level(),
                got[i],
                want[i]
            );
        }
    }
}

/// Σ|xᵢ·yᵢ|, in f64.
fn abs_dot(x: &[f32], y: &[f32]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs())
        .sum()
}

/// Σ|wᵢ·aᵢ| over the decoded rows, in f64.
fn magnitude(dtype: DType, wq: &[u8], aq: &[u8], n: usize) -> f64 {
    abs_dot(&decode(dtype, wq, n), &decode(vec_dot_type(dtype), aq, n))
}

/// The row decoded with the f16 at byte `at` of every block set to 0 (a block's scale or
/// minimum: what the row is without that part).
fn decode_without(dtype: DType, wq: &[u8], n: usize, at: usize) -> Vec<f32> {
    let mut b = wq.to_vec();
    for blk in b.chunks_exact_mut(dtype.block_bytes()) {
        blk[at..at + 2].fill(0);
    }
    decode(dtype, &b, n)
}

/// For weights with a minimum (q4_1, q5_1, dotted with q8_1): `(Σ|(wᵢ − m)·aᵢ| + Σ|m·s|,
/// Σ|m·aᵢ|, Σ|m|·|s − Σaᵢ|)` over the blocks, with `wᵢ − m` decoded from the block with `m`
/// zeroed. The dots compute `(dx·dy)·Σq·a + m·s`: the first is the magnitude of their terms, the
/// last the reference's distance from the exact dot that the f16 rounding of `s` makes.
fn min_terms(dtype: DType, wq: &[u8], aq: &[u8], n: usize) -> Option<(f64, f64, f64)> {
    if vec_dot_type(dtype) != DType::Q8_1 || !dtype.is_storable() {
        return None;
    }
    // q4_1 and q5_1 keep `m` at the same offset.
    const M_AT: usize = offset_of!(BlockQ4_1, m);
    const _: () = assert!(M_AT == offset_of!(BlockQ5_1, m));
    const S_AT: usize = offset_of!(BlockQ8_1, s);
    let (wb, ab) = (dtype.block_bytes(), vec_dot_type(dtype).block_bytes());
    let f16_at = |b: &[u8], at: usize| f64::from(f16::from_le_bytes([b[at], b[at + 1]]).to_f32());
    let (wd, a) = (
        decode_without(dtype, wq, n, M_AT),
        decode(vec_dot_type(dtype), aq, n),
    );
    let (mut mag, mut ma, mut dev) = (0.0, 0.0, 0.0);
    for (i, (w, y)) in wq.chunks_exact(wb).zip(aq.chunks_exact(ab)).enumerate() {
        let (m, s) = (f16_at(w, M_AT), f16_at(y, S_AT));
        let r = 32 * i..32 * (i + 1);
        let sa: f64 = a[r.clone()].iter().map(|&v| f64::from(v)).sum();
        mag += (m * s).abs() + abs_dot(&wd[r.clone()], &a[r.clone()]);
        ma += a[r].iter().map(|&v| (m * f64::from(v)).abs()).sum::<f64>();
        dev += m.abs() * (s - sa).abs();
    }
    Some((mag, ma, dev))
}

/// Byte offsets of the f16 `d` and `dmin` in a block of the k-quants with minimums.
fn kquant_min_offsets(dtype: DType) -> Option<(usize, usize)> {
    match dtype {
        DType::Q2K => Some((offset_of!(BlockQ2K, d), offset_of!(BlockQ2K, dmin))),
        DType::Q4K => Some((offset_of!(BlockQ4K, d), offset_of!(BlockQ4K, dmin))),
        DType::Q5K => Some((offset_of!(BlockQ5K, d), offset_of!(BlockQ5K, dmin))),
        _ => None,
    }
}

fn check_dot(dtype: DType, w: &[f32], a: &[f32]) {
    let n = w.len();
    let wq = encode(dtype, w);
    let aq = encode(vec_dot_type(dtype), a);
    let want = reference().vec_dot(dtype, n, &wq, &aq);
    let eps = f64::from(f32::EPSILON);
    // magnitude of the terms the dots add; extra slack of the reference against the exact dot
    let (m, ref_m, ref_dev) = min_terms(dtype, &wq, &aq, n).map_or_else(
        || {
            let m = magnitude(dtype, &wq, &aq, n);
            (m, m, 0.0)
        },
        |(mag, ma, dev)| (mag, mag + ma, dev),
    );
    // The k-quants with minimums (q2_k, q4_k, q5_k) compute `Σ d·sc·(Σ q·a) − dmin·Σ m·bsum`:
    // both parts can be far larger than Σ|wᵢ·aᵢ|, so the reference's f32 sums are bounded by
    // the magnitudes of the two parts, each decoded from the block with the other's f16
    // super-block scale zeroed: Σ|(d·sc·q)ᵢ·aᵢ| + Σ|(dmin·m)ᵢ·aᵢ|.
    let ref_m = kquant_min_offsets(dtype).map_or(ref_m, |(d_at, dmin_at)| {
        let a = decode(vec_dot_type(dtype), &aq, n);
        let part = |at| abs_dot(&decode_without(dtype, &wq, n, at), &a);
        ref_m.max(part(dmin_at) + part(d_at))
    });
    let tol = match dtype {
        _ if !dtype.is_quantized() => 2.0 * eps * (n as f64 + 16.0) * m,
        _ if dtype.block_len() == 256 => 0.0,
        _ => 4.0 * eps * ((n / 32) as f64 + 8.0) * m,
    };
    // The reference itself against the exact f64 dot of the decoded rows.
    let exact: f64 = decode(dtype, &wq, n)
        .iter()
        .zip(&decode(vec_dot_type(dtype), &aq, n))
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let ref_tol = 4.0 * eps * (n as f64 + 8.0) * ref_m + ref_dev + 1e-30;
    assert!(
        (f64::from(want) - exact).abs() <= ref_tol,
        "{dtype} reference dot {want} vs exact {exact} (tol {ref_tol})"
    );
    for k in levels() {
        let got = k.vec_dot(dtype, n, &wq, &aq);
        let diff = (f64::from(got) - f64::from(want)).abs();
        assert!(
            diff <= tol || got.to_bits() == want.to_bits(),
            "{dtype} dot at {}: {got} vs ref {want} (diff {diff:e}, tol {tol:e})",
            k.level()
        );
    }
}

/// The k-quant (and iq4_xs) dots, bit-identical at every level, on weight blocks of arbitrary
/// bytes (every scale, min and quant pattern, NaN/inf super-block scales included).
const KQUANTS: [DType; 6] = [
    DType::Q2K,
    DType::Q3K,
    DType::Q4K,
    DType::Q5K,
    DType::Q6K,
    DType::IQ4XS,
];

fn check_dot_on_bytes(dtype: DType, wq: &[u8], a: &[f32]) {
    let n = a.len();
    let aq = encode(vec_dot_type(dtype), a);
    let want = reference().vec_dot(dtype, n, wq, &aq);
    for k in levels() {
        let got = k.vec_dot(dtype, n, wq, &aq);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{dtype} dot at {} on raw bytes: {got} vs ref {want}",
            k.level()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn kquant_dots_are_exact_on_any_weight_bytes(akind in 0..KINDS, blocks in 1usize..9, seed: u64) {
        let mut r = Rng::new(seed);
        for dtype in KQUANTS {
            let n = 256 * blocks;
            let wq: Vec<u8> = (0..dtype.row_bytes(n).unwrap()).map(|_| r.next_u64() as u8).collect();
            check_dot_on_bytes(dtype, &wq, &row(akind, n, seed ^ 0x77));
        }
    }

    #[test]
    fn quantize_is_byte_identical(kind in 0..KINDS, blocks in 1usize..9, extra in 0usize..40, seed: u64) {
        for dtype in DType::all() {
            let x = row(kind, len_for(dtype, blocks, extra), seed);
            check_quantize(dtype, &x);
        }
    }

    #[test]
    fn weighted_quantize_is_byte_identical(kind in 0..KINDS, blocks in 1usize..21, wkind in 0u64..3, seed: u64) {
        let mut r = Rng::new(seed ^ 0x5eed);
        for dtype in DType::all().filter(|&d| reference().has_weighted(d)) {
            let n = len_for(dtype, blocks, 0);
            let x = row(kind, n, seed);
            // importance weights: spread over decades, some zero, or all equal
            let qw: Vec<f32> = (0..n)
                .map(|_| match wkind {
                    0 => (r.normal() * 3.0).exp(),
                    1 => if r.below(4) == 0 { 0.0 } else { r.normal().abs() },
                    _ => 1.0,
                })
                .collect();
            let size = dtype.row_bytes(n).unwrap();
            let mut want = vec![0u8; size];
            reference().quantize_weighted_row(dtype, &x, &mut want, &qw).unwrap();
            for k in levels() {
                let mut got = vec![0u8; size];
                k.quantize_weighted_row(dtype, &x, &mut got, &qw).unwrap();
                prop_assert!(got == want, "{} weighted at {}: bytes differ", dtype, k.level());
            }
        }
    }

    #[test]
    fn weighted_rows_in_one_call_are_each_row_alone(kind in 0..KINDS, blocks in 1usize..21, nrows in 1usize..6, seed: u64) {
        // rows of any number of blocks: the 32-value encoders' runs of lanes then start
        // anywhere in a row and cross into the next ones
        let mut r = Rng::new(seed ^ 0x0dd);
        for dtype in DType::all().filter(|&d| reference().has_weighted(d)) {
            let n = len_for(dtype, blocks, 0);
            let x: Vec<f32> = (0..nrows).flat_map(|i| row(kind, n, seed.wrapping_add(i as u64))).collect();
            let qw: Vec<f32> = (0..n).map(|_| (r.normal() * 3.0).exp()).collect();
            let size = dtype.row_bytes(n).unwrap();
            let mut want = vec![0u8; size * nrows];
            for (xr, w) in x.chunks_exact(n).zip(want.chunks_exact_mut(size)) {
                reference().quantize_weighted_row(dtype, xr, w, &qw).unwrap();
            }
            for k in levels() {
                let mut got = vec![0u8; size * nrows];
                k.quantize_weighted_rows(dtype, &x, &mut got, &qw).unwrap();
                prop_assert!(got == want, "{} weighted rows at {}: bytes differ", dtype, k.level());
            }
        }
    }

    #[test]
    fn dequantize_is_exact_on_any_bytes(blocks in 1usize..9, extra in 0usize..40, seed: u64) {
        let mut r = Rng::new(seed);
        for dtype in DType::all() {
            let n = len_for(dtype, blocks, extra);
            let bytes: Vec<u8> = (0..dtype.row_bytes(n).unwrap()).map(|_| r.next_u64() as u8).collect();
            check_dequantize(dtype, &bytes, n);
        }
    }

    #[test]
    fn dequantize_is_exact_on_encoded_rows(kind in 0..KINDS, blocks in 1usize..5, seed: u64) {
        for dtype in DType::all() {
            let n = len_for(dtype, blocks, 3);
            let x = row(kind, n, seed);
            check_dequantize(dtype, &encode(dtype, &x), n);
        }
    }

    #[test]
    fn vec_dot_matches_reference(wkind in 0..KINDS, akind in 0..KINDS, blocks in 1usize..17, extra in 0usize..40, seed: u64) {
        // the scale-overflow kinds produce inf/NaN products: the dot is meaningless there
        prop_assume!(![5, 6].contains(&wkind) && ![5, 6].contains(&akind));
        for dtype in DType::storable() {
            let n = len_for(dtype, blocks, extra);
            check_dot(dtype, &row(wkind, n, seed), &row(akind, n, seed ^ 0x5555));
        }
    }
}

/// A case proptest found: a q2_k row with a 1e4 outlier against a sparse activation, where the
/// reference's minimum term is far larger than the dot (see `check_dot`).
#[test]
fn q2_k_outlier_row_against_sparse_activations() {
    let (n, seed) = (256, 13_869_053_396_160_276_194u64);
    for dtype in DType::storable() {
        check_dot(dtype, &row(2, n, seed), &row(11, n, seed ^ 0x5555));
    }
}

/// A case proptest found: a q5_k row whose minimum terms are far larger than its scaled quants'
/// largest values suggest (the reference sits 3.1 from the exact dot of 2456.8).
#[test]
fn q5_k_row_with_large_minimum_terms() {
    let (n, seed) = (512, 8_444_627_164_308_303_349u64);
    for dtype in DType::storable().filter(|d| d.block_len() == 256) {
        check_dot(dtype, &row(2, n, seed), &row(2, n, seed ^ 0x5555));
    }
}

#[test]
fn large_rows_every_level() {
    // 11008 = llama-7B ffn width (43 q4_k blocks), 4096 = dim.
    for n in [4096usize, 11008] {
        for dtype in DType::storable() {
            let w = row(0, n, n as u64);
            let a = row(0, n, 7);
            check_quantize(dtype, &w);
            check_dot(dtype, &w, &a);
        }
    }
}

#[test]
fn misaligned_slices_give_the_same_results() {
    for dtype in DType::all() {
        let n = len_for(dtype, 3, 5);
        let x = row(0, n, 3);
        let want = encode(dtype, &x);
        for k in levels() {
            let mut buf = vec![0u8; want.len() + 1];
            k.quantize_row(dtype, &x, &mut buf[1..]).unwrap();
            assert_eq!(&buf[1..], &want[..], "{dtype} at {}", k.level());
            let mut back = vec![0f32; n];
            k.dequantize_row(dtype, &buf[1..], &mut back).unwrap();
            assert_eq!(
                same_bits(&back, &decode(dtype, &want, n)),
                None,
                "{dtype} at {}",
                k.level()
            );
        }
        if dtype == DType::Q8K {
            continue;
        }
        let act = vec_dot_type(dtype);
        let aq = encode(act, &row(0, n, 4));
        let want_dot = reference().vec_dot(dtype, n, &want, &aq);
        let mut wbuf = vec![0u8; want.len() + 1];
        wbuf[1..].copy_from_slice(&want);
        let mut abuf = vec![0u8; aq.len() + 3];
        abuf[3..].copy_from_slice(&aq);
        assert_eq!(
            reference()
                .vec_dot(dtype, n, &wbuf[1..], &abuf[3..])
                .to_bits(),
            want_dot.to_bits(),
            "{dtype}"
        );
    }
}

#[test]
fn simd_levels_are_exercised_on_this_cpu() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        assert!(levels().len() >= 2, "AVX2 is available but not tested");
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("neon") {
        assert!(
            levels()
                .iter()
                .any(|k| k.level() == llamapack_quantize::Level::Neon),
            "NEON is available but not tested"
        );
    }
    eprintln!(
        "levels under test: {:?}",
        levels().iter().map(|k| k.level()).collect::<Vec<_>>()
    );
}
