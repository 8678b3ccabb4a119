//! Byte-for-byte agreement with ggml's own C reference quantizers.
//!
//! `tests/golden/` holds rows of adversarial and ordinary inputs and what libggml-base's
//! `quantize_row_{q8_0,q4_0,q4_K,q6_K,q8_K}_ref` and `dequantize_row_*` made of them
//! (`make_golden.c` says how they were made; `make_golden_iq4.c` the iq4_nl / iq4_xs ones).
//! Every level must reproduce them exactly.

mod common;

use common::{levels, same_bits};
use llamapack_quantize::DType;

fn read(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn floats(name: &str) -> Vec<f32> {
    read(name)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// What ggml's bytes `want` of one row become when the row is encoded on its own.
///
/// Only iq4_nl differs: ggml leaves the indices of a near-zero block (|x| < 1e-15) as the
/// previous block of the same call left them, so the leading near-zero blocks of a row carry
/// the last indices of the row before it in the long-row call; alone, they get index 8.
fn encoded_alone(dtype: DType, x: &[f32], want: &[u8]) -> Vec<u8> {
    let mut w = want.to_vec();
    if dtype == DType::IQ4NL {
        for (xb, wb) in x.chunks_exact(32).zip(w.chunks_exact_mut(18)) {
            if xb.iter().any(|v| v.abs() >= 1e-15) {
                break;
            }
            wb[2..].fill(0x88);
        }
    }
    w
}

/// ggml's `quantize_iq4_nl` without an importance matrix (the search `llama-quantize` runs).
#[test]
fn iq4_nl_search_matches_ggml_bytes() {
    use llamapack_quantize::iq4_nl::quantize_iq4_nl;
    let x = floats("input.f32");
    let want = read("iq4_nl_q.bin");
    let mut got = vec![bytemuck::Zeroable::zeroed(); x.len() / 32];
    quantize_iq4_nl(&x, &mut got);
    let got: &[u8] = bytemuck::cast_slice(&got);
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "iq4_nl search: byte {i} (block {}): {} vs ggml {}",
            i / 18,
            got[i],
            want[i]
        );
    }
    assert_eq!(got.len(), want.len());
}

#[test]
fn encoders_match_ggml_bytes() {
    let x = floats("input.f32");
    for (dtype, file) in [
        (DType::Q8_0, "q8_0.bin"),
        (DType::Q4_0, "q4_0.bin"),
        (DType::Q4K, "q4_k.bin"),
        (DType::Q6K, "q6_k.bin"),
        (DType::Q8K, "q8_k.bin"),
        (DType::IQ4NL, "iq4_nl.bin"),
        (DType::IQ4XS, "iq4_xs.bin"),
    ] {
        let want = read(file);
        let row = 256;
        let rb = dtype.row_bytes(row).unwrap();
        for k in levels() {
            // all rows as one long row (multi-block kernels, pairs of blocks, tails)
            let mut all = vec![0u8; want.len()];
            k.quantize_row(dtype, &x, &mut all).unwrap();
            assert!(
                all == want,
                "{dtype} at {}: long row differs from ggml",
                k.level()
            );
            for (r, (xr, wr)) in x.chunks_exact(row).zip(want.chunks_exact(rb)).enumerate() {
                let wr = &encoded_alone(dtype, xr, wr);
                let mut got = vec![0u8; rb];
                k.quantize_row(dtype, xr, &mut got).unwrap();
                if let Some(i) = got.iter().zip(wr).position(|(a, b)| a != b) {
                    panic!(
                        "{dtype} at {}: row {r} (kind {}), byte {i}: {} vs ggml {}",
                        k.level(),
                        r % 12,
                        got[i],
                        wr[i]
                    );
                }
            }
        }
    }
}

#[test]
fn decoders_match_ggml_values() {
    for (dtype, bin, deq) in [
        (DType::Q8_0, "q8_0.bin", "q8_0.deq.f32"),
        (DType::Q4_0, "q4_0.bin", "q4_0.deq.f32"),
        (DType::Q4K, "q4_k.bin", "q4_k.deq.f32"),
        (DType::Q6K, "q6_k.bin", "q6_k.deq.f32"),
        (DType::IQ4NL, "iq4_nl.bin", "iq4_nl.deq.f32"),
        (DType::IQ4XS, "iq4_xs.bin", "iq4_xs.deq.f32"),
    ] {
        let (bytes, want) = (read(bin), floats(deq));
        for k in levels() {
            let mut got = vec![0f32; want.len()];
            k.dequantize_row(dtype, &bytes, &mut got).unwrap();
            if let Some(i) = same_bits(&got, &want) {
                panic!(
                    "{dtype} at {}: value {i} is {} vs ggml {}",
                    k.level(),
                    got[i],
                    want[i]
                );
            }
        }
    }
}
