//! Kernel throughput per format and dispatch level.
//!
//! - `quantize/<type>/<level>`: one 4096-value row per iteration; throughput counts the f32
//!   input bytes (16 KiB) — what a quantizer reads.
//! - `vec_dot/<type>/<level>`: 64 rows × 4096 values against one activation row (the weights
//!   stay in L2, so this measures the kernel, not DRAM); throughput counts the bytes of the
//!   weight rows.
//! - `vec_dot4/<type>/<level>`: the batched path's inner loop — 16 rows × 512 values, each
//!   dotted with the same 4 activation rows (all in L1), one `vec_dot4` call per row; the
//!   `<level>-single` twin makes 4 `vec_dot` calls instead; the kernels the runner's batched
//!   path uses where the level has them: `<level>-packed` (q8_0, q4_0: the 4 rows interleaved
//!   by `pack_q8_0_x4`), `<level>-tiled` (float weights and k-quants: all 16 rows × 4 tokens,
//!   several dots per loaded vector).
//!   Throughput counts multiply-adds.
//! - `prompt/<type>/<level>`: the prompt matmul's kernel call — 64 rows × 4096 values against
//!   128 activation rows (`vec_dot_tiled`, or `panel16_dot` on rows repacked by
//!   `panel::repack_x16` where the level has it), for each level and, where this process may
//!   use AMX, the `amx` table `kernels_tuned` runs there. Throughput counts multiply-adds.
//!
//! Run: `cargo bench -p llamapack-quantize -- --warm-up-time 1 --measurement-time 2`.

mod common;
use common::data;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llamapack_quantize::q8_0::{Q8_0_X4_BLOCK_BYTES, pack_q8_0_x4};
use llamapack_quantize::{DType, Level, WEIGHT_TYPES, kernels_for, vec_dot_type};

const N: usize = 4096;
const ROWS: usize = 64;

fn quantize(c: &mut Criterion) {
    let x = data(N, 1);
    for dtype in [
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4K,
        DType::Q6K,
        DType::Q8K,
        DType::F16,
        DType::BF16,
    ] {
        let mut g = c.benchmark_group(format!("quantize/{dtype}"));
        g.throughput(Throughput::Bytes((4 * N) as u64));
        let mut out = vec![0u8; dtype.row_bytes(N).unwrap()];
        for level in Level::ALL {
            let Some(k) = kernels_for(level) else {
                continue;
            };
            g.bench_function(level.name(), |b| {
                b.iter(|| k.quantize_row(dtype, black_box(&x), &mut out).unwrap());
            });
        }
        g.finish();
    }
}

/// `x` (rows of `cols` values) encoded as `dtype` by the scalar reference; with the row bytes.
fn encode_rows(dtype: DType, x: &[f32], cols: usize) -> (Vec<u8>, usize) {
    let scalar = kernels_for(Level::Scalar).unwrap();
    let rb = dtype.row_bytes(cols).unwrap();
    let mut out = vec![0u8; rb * (x.len() / cols)];
    for (r, o) in x.chunks_exact(cols).zip(out.chunks_exact_mut(rb)) {
        scalar.quantize_row(dtype, r, o).unwrap();
    }
    (out, rb)
}

fn vec_dot(c: &mut Criterion) {
    let w = data(N * ROWS, 2);
    let a = data(N, 3);
    for dtype in WEIGHT_TYPES {
        let (wq, rb) = encode_rows(dtype, &w, N);
        let (aq, _) = encode_rows(vec_dot_type(dtype), &a, N);
        let mut g = c.benchmark_group(format!("vec_dot/{dtype}"));
        g.throughput(Throughput::Bytes((rb * ROWS) as u64));
        for level in Level::ALL {
            let Some(k) = kernels_for(level) else {
                continue;
            };
            g.bench_function(level.name(), |b| {
                b.iter(|| {
                    let mut s = 0.0f32;
                    for row in wq.chunks_exact(rb) {
                        s += k.vec_dot(dtype, N, black_box(row), &aq);
                    }
                    s
                });
            });
        }
        g.finish();
    }
}

fn vec_dot4(c: &mut Criterion) {
    const COLS: usize = 512;
    const R: usize = 16;
    let w = data(COLS * R, 4);
    for dtype in WEIGHT_TYPES {
        let (wq, rb) = encode_rows(dtype, &w, COLS);
        let (aq, ab) = encode_rows(vec_dot_type(dtype), &data(4 * COLS, 5), COLS);
        let acts: Vec<&[u8]> = aq.chunks_exact(ab).collect();
        let acts = [acts[0], acts[1], acts[2], acts[3]];
        let mut g = c.benchmark_group(format!("vec_dot4/{dtype}"));
        g.throughput(Throughput::Elements((4 * COLS * R) as u64));
        for level in Level::ALL {
            let Some(k) = kernels_for(level) else {
                continue;
            };
            g.bench_function(level.name(), |b| {
                b.iter(|| {
                    let mut s = 0.0f32;
                    for row in wq.chunks_exact(rb) {
                        s += k
                            .vec_dot4(dtype, COLS, black_box(row), acts)
                            .iter()
                            .sum::<f32>();
                    }
                    s
                });
            });
            if k.has_vec_dot4_packed(dtype) {
                let mut packed = vec![0u8; COLS / 32 * Q8_0_X4_BLOCK_BYTES];
                pack_q8_0_x4(acts, &mut packed);
                g.bench_function(format!("{}-packed", level.name()), |b| {
                    b.iter(|| {
                        let mut s = 0.0f32;
                        for row in wq.chunks_exact(rb) {
                            s += k
                                .vec_dot4_packed(dtype, COLS, black_box(row), &packed)
                                .iter()
                                .sum::<f32>();
                        }
                        s
                    });
                });
            }
            if k.has_vec_dot_tiled(dtype) {
                let mut out = vec![0f32; R * 4];
                g.bench_function(format!("{}-tiled", level.name()), |b| {
                    b.iter(|| {
                        k.vec_dot_tiled(dtype, COLS, black_box(&wq), &aq, &mut out);
                        out[0]
                    });
                });
            }
            g.bench_function(format!("{}-single", level.name()), |b| {
                b.iter(|| {
                    let mut s = 0.0f32;
                    for row in wq.chunks_exact(rb) {
                        for a in acts {
                            s += k.vec_dot(dtype, COLS, black_box(row), a);
                        }
                    }
                    s
                });
            });
        }
        g.finish();
    }
}

fn prompt(c: &mut Criterion) {
    const TOKENS: usize = 128;
    let w = data(N * ROWS, 6);
    let a = data(N * TOKENS, 7);
    let mut tables: Vec<(String, &'static llamapack_quantize::Kernels)> = Level::ALL
        .into_iter()
        .filter_map(|l| kernels_for(l).map(|k| (l.name().to_string(), k)))
        .collect();
    tables.extend(llamapack_quantize::kernels_amx().map(|k| ("amx".to_string(), k)));
    for dtype in [
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_1,
        DType::Q4K,
        DType::Q6K,
        DType::Q5K,
    ] {
        let (wq, rb) = encode_rows(dtype, &w, N);
        let (aq, _) = encode_rows(vec_dot_type(dtype), &a, N);
        let mut g = c.benchmark_group(format!("prompt/{dtype}"));
        g.throughput(Throughput::Elements((N * ROWS * TOKENS) as u64));
        for (name, k) in &tables {
            let mut out = vec![0f32; ROWS * TOKENS];
            if k.has_panel16(dtype) {
                let mut panel = vec![0u8; wq.len()];
                for (o, i) in panel
                    .chunks_exact_mut(16 * rb)
                    .zip(wq.chunks_exact(16 * rb))
                {
                    llamapack_quantize::panel::repack_x16(dtype, N / 32, i, o);
                }
                // each q8_0 block's quant sum (bytes 2..34); q8_1 blocks carry theirs
                let sums: Vec<i32> = if vec_dot_type(dtype) == DType::Q8_0 {
                    aq.chunks_exact(34)
                        .map(|b| b[2..].iter().map(|&q| i32::from(q as i8)).sum())
                        .collect()
                } else {
                    Vec::new()
                };
                g.bench_function(name.as_str(), |b| {
                    b.iter(|| {
                        k.panel16_dot(dtype, N, black_box(&panel), &aq, &sums, &mut out);
                        out[0]
                    });
                });
            } else if k.has_vec_dot_tiled(dtype) {
                g.bench_function(name.as_str(), |b| {
                    b.iter(|| {
                        k.vec_dot_tiled(dtype, N, black_box(&wq), &aq, &mut out);
                        out[0]
                    });
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, quantize, vec_dot, vec_dot4, prompt);
criterion_main!(benches);
