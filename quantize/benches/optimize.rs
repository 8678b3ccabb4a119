//! Wall time of the output-error optimizer on Llama-2-7B-shaped layers: the factorization of
//! the input statistics, the quantization of one tensor at q4_k (and the other types with
//! `-- all`), and the output-error measure.
//!
//! Run: `cargo bench -p llamapack-quantize --bench optimize [-- 4096x4096 4096x11008 all]`.
//! Each figure is one run (a run takes seconds); the statistics are synthetic (a rank-64
//! correlation plus a diagonal), the weights pseudo-random.

mod common;
use common::data;

use std::time::Instant;

use llamapack_quantize::optimize::{
    self, InputStats, Options, Order, factor, output_error, quantize_tensor_factored,
};
use llamapack_quantize::{DType, WEIGHT_TYPES};

/// CPU seconds of this process so far (user + system, from /proc; 0 elsewhere): with other
/// work on the machine, CPU time divided by the thread count estimates the wall time of an
/// idle machine.
fn cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, String) {
    let (t, c) = (Instant::now(), cpu());
    let out = f();
    let s = format!(
        "{:.2} s (cpu {:.2} s)",
        t.elapsed().as_secs_f64(),
        cpu() - c
    );
    (out, s)
}

/// `H = B·Bᵀ/k + diag` with `B` random `cols × k`: correlated, positive definite.
fn stats(cols: usize) -> InputStats {
    const K: usize = 64;
    let b = data(cols * K, 7);
    let d = data(cols, 9);
    let mut h = vec![0f32; cols * cols];
    use rayon::prelude::*;
    h.par_chunks_mut(cols).enumerate().for_each(|(i, row)| {
        let bi = &b[i * K..(i + 1) * K];
        for (j, o) in row.iter_mut().enumerate() {
            let bj = &b[j * K..(j + 1) * K];
            *o = bi.iter().zip(bj).map(|(x, y)| x * y).sum::<f32>() / K as f32;
        }
        row[i] += 0.05 + d[i].abs();
    });
    InputStats::from_f32(cols, h, 4096).expect("valid")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = args.iter().any(|a| a == "all");
    let mut shapes: Vec<(usize, usize)> = args
        .iter()
        .filter_map(|a| {
            let (r, c) = a.split_once('x')?;
            Some((r.parse().ok()?, c.parse().ok()?))
        })
        .collect();
    if shapes.is_empty() {
        shapes = vec![(4096, 4096), (4096, 11008)];
    }
    println!(
        "{} threads, SIMD {:?}",
        rayon::current_num_threads(),
        llamapack_quantize::simd_level()
    );
    for (rows, cols) in shapes {
        let t = Instant::now();
        let st = stats(cols);
        let w = data(rows * cols, 3);
        println!(
            "{rows}x{cols}: synthetic data {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let opts = Options::default();
        let (fac, tf) = timed(|| factor(&st, &opts).expect("factor"));
        println!("{rows}x{cols}: factor {tf}");
        let types: Vec<DType> = if all {
            WEIGHT_TYPES
                .into_iter()
                .filter(|d| d.is_quantized())
                .collect()
        } else {
            vec![DType::Q4K]
        };
        for dtype in types {
            let (bytes, tq) = timed(|| {
                quantize_tensor_factored(dtype, &w, rows, cols, &fac, &opts).expect("quantize")
            });
            let (e, te) =
                timed(|| output_error(dtype, &w, rows, cols, &bytes, &st).expect("error"));
            println!("{rows}x{cols} {dtype}: quantize {tq}, output_error {te} (error {e:.4e})");
        }
        let _ = (Order::Natural, optimize::check_blocks);
    }
}
