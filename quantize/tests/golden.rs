//! Byte-for-byte agreement with ggml's own C reference quantizers.
//!
//! `tests/golden/` holds rows of adversarial and ordinary inputs and what libggml-base's
//! `quantize_row_{q8_0,q4_0,q4_K,q6_K,q8_K}_ref` and `dequantize_row_*` made of them
//! (`make_golden.c` says how they were made; `make_golden_kquant.c` adds q2_K, q3_K and q5_K
//! from the same input). Every level must reproduce them exactly.

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

#[test]
fn encoders_match_ggml_bytes() {
    let x = floats("input.f32");
    for (dtype, file) in [
        (DType::Q8_0, "q8_0.bin"),
        (DType::Q4_0, "q4_0.bin"),
        (DType::Q4K, "q4_k.bin"),
        (DType::Q6K, "q6_k.bin"),
        (DType::Q8K, "q8_k.bin"),
        (DType::Q2K, "q2_k.bin"),
        (DType::Q3K, "q3_k.bin"),
        (DType::Q5K, "q5_k.bin"),
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
        (DType::Q2K, "q2_k.bin", "q2_k.deq.f32"),
        (DType::Q3K, "q3_k.bin", "q3_k.deq.f32"),
        (DType::Q5K, "q5_k.bin", "q5_k.deq.f32"),
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
