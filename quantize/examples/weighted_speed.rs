//! CPU time of the importance-weighted encoders (`quantize_<type>(…, imatrix)`) per row, at the
//! best SIMD level, for the row lengths of SmolLM2-135M (576, 1536) and Llama-2-7B (4096,
//! 11008): the fastest of 40 runs over ~36,864 values, so the figures hold on a busy machine.
//!
//! `cargo run --release -p llamapack-quantize --example weighted_speed [TYPE ...]`

#[path = "../benches/common/mod.rs"]
mod common;
use common::data;

use std::fmt::Write as _;
use std::hint::black_box;

use llamapack_quantize::{DType, Level, kernels_for};

fn main() {
    let level = Level::ALL
        .into_iter()
        .rev()
        .find(|l| kernels_for(*l).is_some())
        .expect("scalar level");
    let k = kernels_for(level).expect("level");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let types: Vec<DType> = if args.is_empty() {
        [
            DType::Q4_0,
            DType::Q4_1,
            DType::Q5_0,
            DType::Q5_1,
            DType::Q2K,
            DType::Q3K,
            DType::Q4K,
            DType::Q5K,
            DType::Q6K,
            DType::IQ4NL,
            DType::IQ4XS,
        ]
        .to_vec()
    } else {
        args.iter()
            .map(|a| DType::from_name(a).unwrap_or_else(|| panic!("unknown type {a}")))
            .collect()
    };
    println!(
        "level {}: µs per row (fastest of 40 runs over ~36,864 values)",
        level.name()
    );
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>9}",
        "type", 576, 1536, 4096, 11008
    );
    for dtype in types {
        let mut line = format!("{:<8}", dtype.name());
        for n in [576usize, 1536, 4096, 11008] {
            let Some(rb) = dtype.row_bytes(n) else {
                let _ = write!(line, " {:>9}", "-");
                continue;
            };
            let rows = (36_864 / n).max(4);
            let x = data(n * rows, 7);
            let qw: Vec<f32> = data(n, 11).iter().map(|v| v * v + 1e-3).collect();
            let mut out = vec![0u8; rb * rows];
            // all the rows in one call, as the pipeline hands a batch of rows over
            let mut run = || {
                k.quantize_weighted_rows(dtype, black_box(&x), &mut out, &qw)
                    .expect("encodes");
            };
            run();
            // The fastest of 40 timings (a time slice lost to another process only lengthens
            // the slow ones).
            let mut best = f64::INFINITY;
            for _ in 0..40 {
                let t = std::time::Instant::now();
                run();
                best = best.min(t.elapsed().as_secs_f64());
            }
            let us = best * 1e6 / rows as f64;
            let _ = write!(line, " {us:>9.2}");
        }
        println!("{line}");
    }
}
