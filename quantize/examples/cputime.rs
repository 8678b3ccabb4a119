//! Kernel throughput measured in on-CPU time of this thread (Linux `schedstat`), so the figures
//! hold on a busy machine where wall-clock benches (criterion) are inflated by time slicing.
//!
//! `cargo run --release -p llamapack-quantize --example cputime`

#[path = "../benches/common/mod.rs"]
mod common;
use common::data;

use std::hint::black_box;

use llamapack_quantize::{DType, Level, WEIGHT_TYPES, kernels_for, vec_dot_type};

const N: usize = 4096;
const ROWS: usize = 64;

/// Nanoseconds this thread has spent on a CPU.
fn cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    s.split_whitespace().next().unwrap().parse().unwrap()
}

/// Runs `f` until ~0.3 s of CPU time has passed; returns bytes per CPU-second.
///
/// Reading the CPU time is a file read (several µs), longer than one call of a fast encoder on
/// a 4096-value row, and the kernel updates it at scheduler ticks, so `f` runs in batches of at
/// least ~1 ms (sized by the wall clock, which has the resolution) between readings.
fn rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut batch = 1u64;
    loop {
        let t = std::time::Instant::now();
        for _ in 0..batch {
            f();
        }
        if t.elapsed() >= std::time::Duration::from_millis(1) {
            break;
        }
        batch *= 2;
    }
    let (t0, mut iters) = (cpu_ns(), 0u64);
    while cpu_ns() - t0 < 300_000_000 {
        for _ in 0..batch {
            f();
        }
        iters += batch;
    }
    (bytes as f64 * iters as f64) / ((cpu_ns() - t0) as f64 * 1e-9)
}

fn main() {
    let levels: Vec<_> = Level::ALL.iter().filter_map(|&l| kernels_for(l)).collect();
    let header: Vec<_> = levels
        .iter()
        .map(|k| format!("{:>9}", k.level().name()))
        .collect();
    println!(
        "quantize (GB/s of f32 input, 4096-value rows)\n{:<8}{}",
        "type",
        header.join("")
    );
    let x = data(N, 1);
    for dtype in [
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q4K,
        DType::Q6K,
        DType::Q8K,
        DType::Q8_1,
        DType::F16,
        DType::BF16,
    ] {
        let mut out = vec![0u8; dtype.row_bytes(N).unwrap()];
        let cells: Vec<_> = levels
            .iter()
            .map(|k| {
                let r = rate(4 * N, || {
                    k.quantize_row(dtype, black_box(&x), &mut out).unwrap();
                });
                format!("{:>9.2}", r / 1e9)
            })
            .collect();
        println!("{:<8}{}", dtype.name(), cells.join(""));
    }
    println!(
        "\nvec_dot (GB/s of weight bytes, {ROWS}×{N} matrix · vector, L2-resident)\n{:<8}{}",
        "type",
        header.join("")
    );
    let scalar = kernels_for(Level::Scalar).unwrap();
    let (w, a) = (data(N * ROWS, 2), data(N, 3));
    for dtype in WEIGHT_TYPES
        .into_iter()
        .chain([DType::Q4_1, DType::Q5_0, DType::Q5_1])
    {
        let rb = dtype.row_bytes(N).unwrap();
        let mut wq = vec![0u8; rb * ROWS];
        for (x, out) in w.chunks_exact(N).zip(wq.chunks_exact_mut(rb)) {
            scalar.quantize_row(dtype, x, out).unwrap();
        }
        let act = vec_dot_type(dtype);
        let mut aq = vec![0u8; act.row_bytes(N).unwrap()];
        scalar.quantize_row(act, &a, &mut aq).unwrap();
        let cells: Vec<_> = levels
            .iter()
            .map(|k| {
                let r = rate(rb * ROWS, || {
                    let mut s = 0.0f32;
                    for row in wq.chunks_exact(rb) {
                        s += k.vec_dot(dtype, N, black_box(row), &aq);
                    }
                    black_box(s);
                });
                format!("{:>9.2}", r / 1e9)
            })
            .collect();
        println!("{:<8}{}", dtype.name(), cells.join(""));
    }
}
