//! Byte-for-byte agreement with ggml's own C reference quantizers.
//!
//! `tests/golden/` holds rows of adversarial and ordinary inputs and what libggml-base's
//! `quantize_row_*_ref` and `dequantize_row_*` made of them, for every block type of the dtype
//! table (`make_golden.c` says how the first ones were made; `make_golden_fmt32.c` adds q4_1,
//! q5_0, q5_1 and q8_1 from the same input, plus edge rows of its own; `make_golden_kquant.c`
//! q2_K, q3_K and q5_K; `make_golden_iq4.c` iq4_nl and iq4_xs). Every level must reproduce them
//! exactly.

use crate::common;

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

/// Every level encodes `x` as `want` (ggml's bytes), as one long row and row by row.
fn encoder_matches(dtype: DType, x: &[f32], want: &[u8]) {
    let row = 256;
    let rb = dtype.row_bytes(row).unwrap();
    for k in levels() {
        // all rows as one long row (multi-block kernels, pairs of blocks, tails)
        let mut all = vec![0u8; want.len()];
        k.quantize_row(dtype, x, &mut all).unwrap();
        assert!(
            common::first_difference(&all, want).is_none(),
            "{dtype} at {}: long row differs from ggml",
            k.level()
        );
        for (r, (xr, wr)) in x.chunks_exact(row).zip(want.chunks_exact(rb)).enumerate() {
            let wr = &encoded_alone(dtype, xr, wr);
            let mut got = vec![0u8; rb];
            k.quantize_row(dtype, xr, &mut got).unwrap();
            if let Some(i) = common::first_difference(&got, wr) {
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

/// Every level decodes `bytes` to `want` (ggml's values) bit for bit.
fn decoder_matches(dtype: DType, bytes: &[u8], want: &[f32]) {
    for k in levels() {
        let mut got = vec![0f32; want.len()];
        k.dequantize_row(dtype, bytes, &mut got).unwrap();
        if let Some(i) = same_bits(&got, want) {
            panic!(
                "{dtype} at {}: value {i} is {} vs ggml {}",
                k.level(),
                got[i],
                want[i]
            );
        }
    }
}

/// Every block type of the dtype table (activation formats included) must have ggml's golden
/// bytes: a new format without them fails here.
fn quantized() -> impl Iterator<Item = DType> {
    DType::all().filter(|d| d.is_quantized())
}

#[test]
fn encoders_match_ggml_bytes() {
    let x = floats("input.f32");
    for dtype in quantized() {
        encoder_matches(dtype, &x, &read(&format!("{dtype}.bin")));
    }
}

#[test]
fn decoders_match_ggml_values() {
    // ggml has no decoder for the activation-only formats (q8_k, q8_1).
    for dtype in quantized().filter(|d| d.is_storable()) {
        decoder_matches(
            dtype,
            &read(&format!("{dtype}.bin")),
            &floats(&format!("{dtype}.deq.f32")),
        );
    }
}

/// The weight encoders (`quantize_weights_row`, what the pipeline writes) give the bytes of
/// ggml's `quantize_<type>` without an importance matrix — what `llama-quantize` writes — at
/// every level: `<type>_q.bin` where ggml's weight quantizer differs from its `_ref` (iq4_nl's
/// 15-trial search), else `<type>.bin`.
#[test]
fn weight_encoders_match_llama_quantize_bytes() {
    let x = floats("input.f32");
    let dir = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
    for dtype in quantized().filter(|d| d.is_storable()) {
        let q = format!("{dtype}_q.bin");
        let want = if std::path::Path::new(&dir).join(&q).exists() {
            read(&q)
        } else {
            read(&format!("{dtype}.bin"))
        };
        for k in levels() {
            let mut got = vec![0u8; want.len()];
            k.quantize_weights_row(dtype, &x, &mut got).unwrap();
            if let Some(i) = common::first_difference(&got, &want) {
                panic!(
                    "{dtype} weights at {}: byte {i} (block {}): {} vs ggml {}",
                    k.level(),
                    i / dtype.block_bytes(),
                    got[i],
                    want[i]
                );
            }
        }
    }
}

/// The edge-case rows of `make_golden_fmt32.c` (`fmt32_extra.f32`: max − min overflowing f32,
/// constant and ±0 blocks, subnormal scales, f16 overflow of scales and sums, ties).
#[test]
fn fmt32_edge_rows_match_ggml() {
    let x = floats("fmt32_extra.f32");
    for (dtype, name) in [
        (DType::Q4_1, "q4_1"),
        (DType::Q5_0, "q5_0"),
        (DType::Q5_1, "q5_1"),
        (DType::Q8_1, "q8_1"),
    ] {
        let bytes = read(&format!("{name}.extra.bin"));
        encoder_matches(dtype, &x, &bytes);
        if dtype != DType::Q8_1 {
            decoder_matches(dtype, &bytes, &floats(&format!("{name}.extra.deq.f32")));
        }
    }
}

/// Types whose weighted encoder uses a statistic of the whole row (σ² of q4_0, q4_1, q5_0,
/// q5_1): their rows cannot be encoded as one long row; the others take σ² per block or
/// super-block and give the same bytes either way.
fn weighted_row_statistic(dtype: DType) -> bool {
    matches!(dtype, DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1)
}

/// Every level encodes `x` with the importance weights `qw` (one row's worth) as `want` (ggml's
/// bytes): row by row, all rows in one call (`quantize_weighted_rows`) and, where the encoder has
/// no row statistic, as one long row with the weights repeated.
fn weighted_matches(dtype: DType, x: &[f32], qw: &[f32], want: &[u8], what: &str) {
    let row = qw.len();
    let rb = dtype.row_bytes(row).unwrap();
    assert_eq!(
        want.len(),
        rb * x.len() / row,
        "{dtype} {what}: golden length"
    );
    let long_qw: Vec<f32> = qw.iter().copied().cycle().take(x.len()).collect();
    for k in levels() {
        assert!(
            k.has_weighted(dtype),
            "{dtype} at {}: no weighted encoder",
            k.level()
        );
        for (r, (xr, wr)) in x.chunks_exact(row).zip(want.chunks_exact(rb)).enumerate() {
            let mut got = vec![0u8; rb];
            k.quantize_weighted_row(dtype, xr, &mut got, qw).unwrap();
            if let Some(i) = common::first_difference(&got, wr) {
                panic!(
                    "{dtype} {what} at {}: row {r}, byte {i} (block {}): {} vs ggml {}",
                    k.level(),
                    i / dtype.block_bytes(),
                    got[i],
                    wr[i]
                );
            }
        }
        // every row in one call (the 32-value encoders' lanes then cross rows), and the rows
        // from the second on
        let mut all = vec![0u8; want.len()];
        k.quantize_weighted_rows(dtype, x, &mut all, qw).unwrap();
        assert!(
            common::first_difference(&all, want).is_none(),
            "{dtype} {what} at {}: rows in one call differ from ggml",
            k.level()
        );
        if x.len() > row {
            let mut rest = vec![0u8; want.len() - rb];
            k.quantize_weighted_rows(dtype, &x[row..], &mut rest, qw)
                .unwrap();
            assert!(
                common::first_difference(&rest, &want[rb..]).is_none(),
                "{dtype} {what} at {}: rows 1.. in one call differ from ggml",
                k.level()
            );
        }
        if !weighted_row_statistic(dtype) {
            let mut all = vec![0u8; want.len()];
            k.quantize_weighted_row(dtype, x, &mut all, &long_qw)
                .unwrap();
            assert!(
                common::first_difference(&all, want).is_none(),
                "{dtype} {what} at {}: long row differs from ggml",
                k.level()
            );
        }
    }
}

/// The types with an importance-weighted encoder at the scalar level.
fn weighted_types() -> Vec<DType> {
    DType::all()
        .filter(|&d| common::reference().has_weighted(d))
        .collect()
}

/// The importance-weighted encoders (`quantize_weighted_row`) give the bytes of ggml's
/// `quantize_<type>(x, y, nrow, 256, imatrix)` at every level (`make_golden_imatrix.c`):
/// `<type>.imatrix.bin` of input.f32 with `imatrix.f32` as every row's weights, and
/// `<type>.imatrix.extra.bin` of input.f32, fmt32_extra.f32 and iq4_extreme.f32 (huge values,
/// overflowing squares, ±0, subnormals, ties) with `imatrix_extra.f32` (zero, huge and
/// subnormal weights, a whole zero block).
#[test]
fn weighted_encoders_match_ggml_imatrix_bytes() {
    let x = floats("input.f32");
    let qw = floats("imatrix.f32");
    let mut xx = x.clone();
    xx.extend(floats("fmt32_extra.f32"));
    xx.extend(floats("iq4_extreme.f32"));
    let qx = floats("imatrix_extra.f32");
    let types = weighted_types();
    assert!(!types.is_empty(), "no weighted encoder");
    for dtype in types {
        weighted_matches(
            dtype,
            &x,
            &qw,
            &read(&format!("{dtype}.imatrix.bin")),
            "weighted",
        );
        weighted_matches(
            dtype,
            &xx,
            &qx,
            &read(&format!("{dtype}.imatrix.extra.bin")),
            "weighted extra",
        );
    }
}

/// The types with a weighted encoder are exactly those with a `<type>.imatrix.bin`: a new
/// weighted encoder cannot go untested, and a golden file cannot go unchecked.
#[test]
fn weighted_encoders_have_golden_files() {
    let dir = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
    let with_golden: Vec<DType> = DType::all()
        .filter(|d| {
            std::path::Path::new(&dir)
                .join(format!("{d}.imatrix.bin"))
                .exists()
        })
        .collect();
    let with_weighted: Vec<DType> = DType::all()
        .filter(|&d| common::reference().has_weighted(d))
        .collect();
    assert_eq!(with_weighted, with_golden);
}
