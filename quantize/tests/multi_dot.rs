//! `Kernels::vec_dot4` (one weight row · 4 activation rows) at every level: bit-identical to 4
//! calls of the same level's `vec_dot`, which the runner's batched == single-token logits rely
//! on. Block counts 1..17 cover the 4-way unrolled loop and its tail; float rows of 67·k values
//! also cover the vector loops' tails and the scalar tail.

use crate::common;

use common::{KINDS, encode, levels, row};
use llamapack_quantize::q8_0::{Q8_0_X4_BLOCK_BYTES, pack_q8_0_x4};
use llamapack_quantize::{DType, vec_dot_type};
use proptest::prelude::*;

/// Every weight type of the dtype table.
fn weights() -> impl Iterator<Item = DType> {
    llamapack_quantize::WEIGHT_TYPES.into_iter()
}

fn check(dtype: DType, n: usize, wkind: u64, akinds: [u64; 4], seed: u64) {
    let wq = encode(dtype, &row(wkind, n, seed));
    let act = vec_dot_type(dtype);
    let aq: Vec<Vec<u8>> = (0..4)
        .map(|t| encode(act, &row(akinds[t], n, seed ^ (0x9e37 * (t as u64 + 1)))))
        .collect();
    let acts = [&aq[0][..], &aq[1][..], &aq[2][..], &aq[3][..]];
    let packed = (act == DType::Q8_0).then(|| {
        let mut p = vec![0u8; n / 32 * Q8_0_X4_BLOCK_BYTES];
        pack_q8_0_x4(acts, &mut p);
        p
    });
    let mut packed_levels = 0;
    for k in levels() {
        let mut results = vec![("vec_dot4", k.vec_dot4(dtype, n, &wq, acts))];
        if k.has_vec_dot4_packed(dtype) {
            let p = packed
                .as_ref()
                .expect("packed kernels exist only for q8_0 activations");
            results.push(("vec_dot4_packed", k.vec_dot4_packed(dtype, n, &wq, p)));
            packed_levels += 1;
        }
        for (what, got) in results {
            for t in 0..4 {
                let want = k.vec_dot(dtype, n, &wq, acts[t]);
                assert!(
                    got[t].to_bits() == want.to_bits() || (got[t].is_nan() && want.is_nan()),
                    "{dtype} {what} {:?} n={n} token {t}: {} vs single {}",
                    k.level(),
                    got[t],
                    want
                );
            }
        }
    }
    // On an AVX-512 VNNI machine the packed q8_0/q4_0/q5_0 kernels must have been checked.
    #[cfg(target_arch = "x86_64")]
    if matches!(dtype, DType::Q8_0 | DType::Q4_0 | DType::Q5_0)
        && llamapack_quantize::Level::Avx512.is_supported()
    {
        assert_eq!(packed_levels, 1, "{dtype}: packed kernel not exercised");
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = packed_levels; // the check above is x86-only
}

/// `vec_dot_tiled` of `rows` weight rows × `ntok` activation rows equals `vec_dot` of every
/// (row, token).
fn check_tiled(dtype: DType, n: usize, rows: usize, ntok: usize, seed: u64) {
    let wq: Vec<u8> = (0..rows)
        .flat_map(|r| {
            encode(
                dtype,
                &row(r as u64 % KINDS, n, seed.wrapping_add(r as u64)),
            )
        })
        .collect();
    check_tiled_rows(dtype, n, &wq, rows, ntok, seed);
}

/// [`check_tiled`] of the `rows` weight rows `wq` (any bytes).
fn check_tiled_rows(dtype: DType, n: usize, wq: &[u8], rows: usize, ntok: usize, seed: u64) {
    let act = vec_dot_type(dtype);
    let aq: Vec<u8> = (0..ntok)
        .flat_map(|t| {
            encode(
                act,
                &row((t as u64 + 3) % KINDS, n, seed ^ (0x51ed * (t as u64 + 1))),
            )
        })
        .collect();
    let (rb, ab) = (wq.len() / rows, aq.len() / ntok);
    // every level, the AVX-512 table AMD CPUs run and the AMX one (`kernels_tuned`)
    let mut tables = panel_tables();
    tables.extend(llamapack_quantize::kernels_avx512_halves());
    for k in tables {
        let mut out = vec![0f32; rows * ntok];
        k.vec_dot_tiled(dtype, n, wq, &aq, &mut out);
        for r in 0..rows {
            for t in 0..ntok {
                let got = out[r * ntok + t];
                let want = k.vec_dot(
                    dtype,
                    n,
                    &wq[r * rb..(r + 1) * rb],
                    &aq[t * ab..(t + 1) * ab],
                );
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{dtype} vec_dot_tiled {} n={n} row {r}/{rows} token {t}/{ntok}: {got} vs {want}",
                    table_name(k)
                );
            }
        }
    }
}

/// The shapes every run checks whatever proptest draws: one 16-row panel × one 8-token tile
/// exactly, and 2 panels plus 1 leftover row × 8 + 4 + 3 tokens (every tile width, the pairs
/// kernel for the last row), 7 tokens (below the panels' threshold) on 16 rows, and the AMX
/// k-quant tiles: 16 tokens exactly, and 2 × 16 + 4 + 1 on 2 panels plus 1 row.
#[test]
fn vec_dot_tiled_panel_shapes() {
    for dtype in weights() {
        let n = if dtype.block_len() == 1 {
            67 * 3
        } else {
            dtype.block_len() * 3
        };
        for (rows, ntok) in [(16, 8), (33, 15), (16, 7), (16, 16), (33, 37)] {
            check_tiled(dtype, n, rows, ntok, 0x5eed + rows as u64);
        }
    }
}

/// Wide k-quant rows (64 super-blocks: 18.7 KB of q8_k activations per token), so that the
/// tiled dots take their tokens in several cache blocks (AVX2's: 192 KiB, 8 tokens here):
/// 21 tokens are two whole blocks and one of 5 (a group of 4 and a single), on 3 rows.
#[test]
fn vec_dot_tiled_crosses_token_blocks() {
    for dtype in weights().filter(|d| d.block_len() == 256) {
        check_tiled(dtype, 256 * 64, 3, 21, 0xb10c);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn vec_dot4_is_four_single_dots(
        wkind in 0..KINDS,
        akinds in [0..KINDS, 0..KINDS, 0..KINDS, 0..KINDS],
        blocks in 1usize..17,
        seed: u64,
    ) {
        for dtype in weights() {
            let n = if dtype.block_len() == 1 { 67 * blocks } else { dtype.block_len() * blocks };
            check(dtype, n, wkind, akinds, seed);
        }
    }

    /// 1 to 40 rows × 1 to 40 tokens: whole tiles (float 4 × 4, k-quant pairs × 4 tokens, the
    /// k-quant panels of 16 rows × 8 tokens, and × 16 on AMX) and every kind of leftover;
    /// float rows of 67·k values cover the vector loop's tail.
    #[test]
    fn vec_dot_tiled_is_single_dots(
        rows in 1usize..=40,
        ntok in 1usize..=40,
        blocks in 1usize..8,
        seed: u64,
    ) {
        for dtype in weights() {
            let n = if dtype.block_len() == 1 { 67 * blocks } else { dtype.block_len() * blocks };
            check_tiled(dtype, n, rows, ntok, seed);
        }
    }
}

/// The AVX-512 level may take AVX2's one-token dots for every quantized weight (on CPUs that
/// run 512-bit operations as two halves, `kernels_tuned`): legal because they give the same
/// bits, which this checks on every block count 1..17 and every row kind. (The float dots sum
/// in other lanes and differ.)
#[test]
fn avx2_and_avx512_one_token_dots_agree_on_every_quantized_weight() {
    use llamapack_quantize::{Level, kernels_for};
    let (Some(a2), Some(a5)) = (kernels_for(Level::Avx2), kernels_for(Level::Avx512)) else {
        eprintln!("skipped: this CPU has no AVX-512 VNNI (or no AVX2)");
        return;
    };
    for dtype in weights().filter(|d| d.block_len() > 1) {
        for seed in 0..120u64 {
            let n = dtype.block_len() * (1 + seed as usize % 17);
            let wq = encode(dtype, &row(seed % KINDS, n, seed));
            let aq = encode(
                vec_dot_type(dtype),
                &row((seed + 3) % KINDS, n, seed ^ 0x77),
            );
            let (x, y) = (
                a2.vec_dot(dtype, n, &wq, &aq),
                a5.vec_dot(dtype, n, &wq, &aq),
            );
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{dtype} n={n} seed {seed}: avx2 {x} vs avx512 {y}"
            );
        }
    }
}

/// A table's name in a failure: its level, or which of the two extra AVX-512 tables it is.
fn table_name(k: &llamapack_quantize::Kernels) -> String {
    let is =
        |t: Option<&'static llamapack_quantize::Kernels>| t.is_some_and(|t| std::ptr::eq(t, k));
    if is(llamapack_quantize::kernels_amx()) {
        "Avx512 + AMX".into()
    } else if is(llamapack_quantize::kernels_avx512_halves()) {
        "Avx512 (AMD halves table)".into()
    } else {
        format!("{:?}", k.level())
    }
}

/// Every table with panel kernels: the levels, and where this process may use AMX the table
/// whose panels take 16-token tiles on it (`kernels_amx`, what `kernels_tuned` runs there).
fn panel_tables() -> Vec<&'static llamapack_quantize::Kernels> {
    let mut t = levels();
    if let Some(k) = llamapack_quantize::kernels_amx() {
        t.push(k);
    } else {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            eprintln!(
                "panel16: AMX kernels not checked (no AMX-INT8 here, or the OS refused the tile state, or LLAMAPACK_AMX=0)"
            );
        });
    }
    t
}

/// `panel16_dot` on 16 rows repacked by `panel::repack_x16` equals the scalar reference dot of
/// every (row, token) bit for bit, for 1..40 tokens (the 16-token AMX tiles, the 8-token tiles
/// and the single ones).
fn check_panel16(dtype: DType, n: usize, ntok: usize, seed: u64) {
    // one panel, and three in one call
    for g in [1u64, 3] {
        let rows: Vec<u8> = (0..16 * g)
            .flat_map(|r| encode(dtype, &row(r % KINDS, n, seed.wrapping_add(r))))
            .collect();
        check_panel16_rows(dtype, n, &rows, ntok, seed);
    }
}

/// [`check_panel16`] of the weight rows `rows` (any bytes; whole panels of 16 rows, all in
/// one call).
fn check_panel16_rows(dtype: DType, n: usize, rows: &[u8], ntok: usize, seed: u64) {
    use llamapack_quantize::{Level, kernels_for};
    let scalar = kernels_for(Level::Scalar).expect("scalar");
    let act = vec_dot_type(dtype);
    let aq: Vec<u8> = (0..ntok as u64)
        .flat_map(|t| encode(act, &row((t + 3) % KINDS, n, seed ^ (0x9e37 * (t + 1)))))
        .collect();
    let rb = dtype.row_bytes(n).unwrap();
    let (g, ab) = (rows.len() / (16 * rb), aq.len() / ntok);
    // q8_0 activations come with their block sums; q8_1 blocks carry theirs
    let sums: Vec<i32> = if act == DType::Q8_0 {
        aq.chunks_exact(34)
            .map(|b| b[2..].iter().map(|&q| i32::from(q as i8)).sum())
            .collect()
    } else {
        Vec::new()
    };
    let mut panel = vec![0u8; rows.len()];
    for (o, i) in panel
        .chunks_exact_mut(16 * rb)
        .zip(rows.chunks_exact(16 * rb))
    {
        llamapack_quantize::panel::repack_x16(dtype, n / 32, i, o);
    }
    for k in panel_tables().into_iter().filter(|k| k.has_panel16(dtype)) {
        let mut out = vec![0f32; 16 * ntok * g];
        k.panel16_dot(dtype, n, &panel, &aq, &sums, &mut out);
        for p in 0..g {
            for t in 0..ntok {
                for i in 0..16 {
                    let r = 16 * p + i;
                    let want = scalar.vec_dot(dtype, n, &rows[r * rb..][..rb], &aq[t * ab..][..ab]);
                    let got = out[16 * ntok * p + 16 * t + i];
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "{dtype} panel16 {} n={n} panel {p}/{g} row {i} token {t}/{ntok}: {got} vs reference {want}",
                        table_name(k)
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any k-quant weight bytes (every scale byte: q6_k's -128 and q3_k's -32, the AMX
    /// digits' extremes; every value; any f16 scale), 15..34 rows (a panel or two and
    /// leftovers) and any token count: every table's tiled dots (the AMX ones too, where they
    /// run) are the one-token dot.
    #[test]
    fn vec_dot_tiled_is_single_dots_on_any_k_quant_bytes(blocks in 1usize..4, ntok in 1usize..41, rows in 15usize..34, seed: u64) {
        let mut r = common::Rng::new(seed);
        for dtype in weights().filter(|d| d.block_len() == 256) {
            let n = 256 * blocks;
            let wq: Vec<u8> = (0..rows * dtype.row_bytes(n).unwrap()).map(|_| r.next_u64() as u8).collect();
            check_tiled_rows(dtype, n, &wq, rows, ntok, seed);
        }
    }

    /// Any weight bytes (every int8 quant, -128 included; any f16 scale) and any token count:
    /// every table's panel kernels (the AMX one too, where it runs) are the reference dot.
    #[test]
    fn panel16_is_the_reference_dot_on_any_weight_bytes(blocks in 1usize..12, ntok in 1usize..41, panels in 1usize..3, seed: u64) {
        let mut r = common::Rng::new(seed);
        for dtype in weights().filter(|&d| panel_tables().iter().any(|k| k.has_panel16(d))) {
            let n = 32 * blocks;
            let rows: Vec<u8> = (0..16 * panels * dtype.row_bytes(n).unwrap()).map(|_| r.next_u64() as u8).collect();
            check_panel16_rows(dtype, n, &rows, ntok, seed);
        }
    }
}

#[test]
fn panel16_dot_is_the_reference_dot() {
    let with_panels: Vec<DType> = weights()
        .filter(|&d| panel_tables().iter().any(|k| k.has_panel16(d)))
        .collect();
    #[cfg(target_arch = "x86_64")]
    if llamapack_quantize::Level::Avx512.is_supported() {
        // one of each kind: nibbles, with a minimum (q8_1 activations), 5 bits with one
        for d in [DType::Q4_0, DType::Q4_1, DType::Q5_1] {
            assert!(
                with_panels.contains(&d),
                "the {d} panel kernel was not exercised"
            );
        }
    }
    for dtype in with_panels {
        for (blocks, ntok, seed) in [
            (1, 1, 1),
            (3, 8, 2),
            (8, 19, 3),
            (17, 5, 4),
            (128, 9, 5),
            (1, 16, 6),
            (17, 37, 7),
            (128, 48, 8),
        ] {
            check_panel16(dtype, 32 * blocks, ntok, seed);
        }
    }
}
