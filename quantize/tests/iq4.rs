//! iq4_nl / iq4_xs at every level beyond the shared proptests of `levels.rs`: rows whose
//! weights `x²` overflow (inf/NaN sums and scales in ggml's search), sub-blocks of wildly
//! different magnitudes, blocks at the 1e-15 threshold, exact grid ties. Encoders
//! byte-identical to the reference, decoders bit-identical, iq4_xs dots bit-identical; and
//! ggml's own bytes for such rows (`golden/iq4_*extreme*`, made by `make_golden_iq4.c`).

use crate::common;

use common::{Rng, decode, encode, levels, reference, row, same_bits};
use llamapack_quantize::{DType, vec_dot_type};
use proptest::prelude::*;

const TYPES: [DType; 2] = [DType::IQ4NL, DType::IQ4XS];

fn check(dtype: DType, x: &[f32]) {
    let want = encode(dtype, x);
    let back = decode(dtype, &want, x.len());
    for k in levels() {
        let mut got = vec![0u8; want.len()];
        k.quantize_row(dtype, x, &mut got).unwrap();
        if let Some(i) = want.iter().zip(&got).position(|(a, b)| a != b) {
            let b = i / (want.len() / (x.len() / dtype.block_len()));
            panic!(
                "{dtype} at {}: byte {i} (block {b}) is {} vs ref {}; block values {:?}",
                k.level(),
                got[i],
                want[i],
                &x[b * dtype.block_len()..(b + 1) * dtype.block_len()]
            );
        }
        let mut out = vec![0f32; x.len()];
        k.dequantize_row(dtype, &want, &mut out).unwrap();
        assert_eq!(same_bits(&out, &back), None, "{dtype} at {}", k.level());
    }
}

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// ggml's bytes for the extreme rows: every level, all rows as one long row (as they were
/// made), and iq4_xs row by row.
#[test]
fn extreme_rows_match_ggml_bytes() {
    let x: Vec<f32> = golden("iq4_extreme.f32")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    for (dtype, file) in [
        (DType::IQ4NL, "iq4_nl_extreme.bin"),
        (DType::IQ4XS, "iq4_xs_extreme.bin"),
    ] {
        let want = golden(file);
        for k in levels() {
            let mut got = vec![0u8; want.len()];
            k.quantize_row(dtype, &x, &mut got).unwrap();
            if let Some(i) = common::first_difference(&got, &want) {
                panic!(
                    "{dtype} at {}: byte {i} is {} vs ggml {}",
                    k.level(),
                    got[i],
                    want[i]
                );
            }
        }
        check(dtype, &x);
    }
    let want = golden("iq4_xs_extreme.bin");
    for (xr, wr) in x.chunks_exact(256).zip(want.chunks_exact(136)) {
        assert_eq!(
            common::first_difference(&encode(DType::IQ4XS, xr), wr),
            None
        );
    }
    let want = golden("iq4_nl_q_extreme.bin");
    let mut got = vec![bytemuck::Zeroable::zeroed(); x.len() / 32];
    llamapack_quantize::iq4_nl::quantize_iq4_nl(&x, &mut got);
    assert_eq!(
        common::first_difference(bytemuck::cast_slice::<_, u8>(&got), &want),
        None
    );
}

/// Every sub-block of 32 values scaled by its own factor.
fn scaled(seed: u64, factors: &[f32]) -> Vec<f32> {
    let mut x = row(0, 32 * factors.len(), seed);
    for (b, f) in x.chunks_exact_mut(32).zip(factors) {
        for v in b.iter_mut() {
            *v = (*v * f).clamp(-f32::MAX, f32::MAX);
        }
    }
    x
}

#[test]
fn overflowing_weights() {
    for (s, f) in [1e17f32, 1e19, 2e19, 1e20, 1e25, 1e30, 1e36, 1e38, f32::MAX]
        .into_iter()
        .enumerate()
    {
        let x = scaled(s as u64, &[f; 16]);
        for dtype in TYPES {
            check(dtype, &x);
        }
    }
    // huge and ordinary sub-blocks in one super-block
    let x = scaled(3, &[1.0, 1e30, 1.0, 3e38, 1e-3, 1e20, 1.0, 1e-30]);
    for dtype in TYPES {
        check(dtype, &x);
    }
}

#[test]
fn near_zero_threshold() {
    let eps = 1e-15f32;
    for amax in [eps, eps.next_down(), eps.next_up(), 1e-38, 1e-45] {
        let mut x = vec![0f32; 512];
        for (i, v) in x.iter_mut().enumerate() {
            *v = amax * ((i % 7) as f32 - 3.0) / 3.0;
        }
        // a normal block in the middle, so later near-zero blocks borrow its indices
        x[256..288].copy_from_slice(&row(0, 32, 5));
        for dtype in TYPES {
            check(dtype, &x);
        }
    }
}

#[test]
fn grid_ties() {
    // max = −127: iq4_nl's first pass has id = 1 exactly, so midpoints are exact ties
    let grid = llamapack_format::blocks::KVALUES_IQ4NL.map(f32::from);
    let mut x = vec![-127.0f32; 256];
    let mids: Vec<f32> = grid.windows(2).map(|w| f32::midpoint(w[0], w[1])).collect();
    for (i, v) in x.iter_mut().enumerate().skip(1) {
        let m = mids[i % mids.len()];
        *v = match i % 3 {
            0 => m,
            1 => m.next_down(),
            _ => m.next_up(),
        };
    }
    for dtype in TYPES {
        check(dtype, &x);
    }
}

/// A misaligned output row gets the same bytes, near-zero blocks included (they borrow the
/// previous block's indices, so no level may encode a row block by block).
#[test]
fn misaligned_rows_keep_the_borrowed_indices() {
    let mut x = row(0, 256 * 3, 9);
    x[32..96].fill(0.0);
    x[300..320].fill(-0.0);
    x[320..352].fill(1e-20);
    for dtype in TYPES {
        let want = encode(dtype, &x);
        for k in levels() {
            let mut buf = vec![0u8; want.len() + 1];
            k.quantize_row(dtype, &x, &mut buf[1..]).unwrap();
            assert_eq!(&buf[1..], &want[..], "{dtype} at {}", k.level());
        }
    }
}

fn check_dot(w: &[f32], a: &[f32]) {
    let dtype = DType::IQ4XS;
    let n = w.len();
    let (wq, aq) = (encode(dtype, w), encode(vec_dot_type(dtype), a));
    let want = reference().vec_dot(dtype, n, &wq, &aq);
    for k in levels() {
        let got = k.vec_dot(dtype, n, &wq, &aq);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{dtype} dot at {}: {got} vs ref {want}",
            k.level()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Sub-blocks with magnitudes from 1e-40 to 1e38.
    #[test]
    fn wild_magnitudes(exps in proptest::collection::vec(-40i32..38, 8..=24), seed: u64) {
        let factors: Vec<f32> = exps.iter().map(|&e| 10f32.powi(e)).collect();
        let blocks = factors.len() / 8 * 8;
        let x = scaled(seed, &factors[..blocks]);
        for dtype in TYPES {
            check(dtype, &x);
        }
    }

    /// iq4_xs dots stay bit-identical on ordinary weights and any activation kind.
    #[test]
    fn iq4_xs_dot_bits(akind in 0..common::KINDS, blocks in 1usize..12, seed: u64) {
        let mut r = Rng::new(seed);
        let n = 256 * blocks;
        let w: Vec<f32> = (0..n).map(|_| r.normal()).collect();
        check_dot(&w, &row(akind, n, seed ^ 1));
    }
}
