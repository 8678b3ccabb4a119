//! Converts a checkpoint and prints throughput: the benchmark driver (see `bench/README.md`).
//!
//! `cargo run --release -p llamapack-convert --example convert -- SRC OUT.lpk [keep|f16|bf16|f32]`

use std::path::Path;
use std::time::Instant;

use llamapack_convert::{ConvertOptions, convert};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, out, rest @ ..] = args.as_slice() else {
        return Err("usage: convert SRC OUT.lpk [keep|f16|bf16|f32]".into());
    };
    let mut opts = ConvertOptions::default();
    if let Some(d) = rest.first() {
        opts.dtype = d.parse()?;
    }
    let t = Instant::now();
    let s = convert(Path::new(src), Path::new(out), &opts, &|_, _| {})?;
    let secs = t.elapsed().as_secs_f64();
    let gb = s.bytes_read as f64 / 1e9;
    println!(
        "{} tensors, {:.2} GB read, {:.2} GB written in {secs:.2} s: {:.2} GB/s (incl. sha256 of {} files)",
        s.tensors,
        gb,
        s.bytes_written as f64 / 1e9,
        gb / secs,
        s.sources.len()
    );
    for w in &s.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
