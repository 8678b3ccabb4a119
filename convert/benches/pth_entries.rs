//! Reading a `.pth` with many tensors and as many zip entries (one storage each), as
//! `llamapack inspect` and the start of `convert` do: the zip's central directory is indexed
//! once, so the cost is linear in the entries (a lookup per tensor used to scan the whole
//! list: ~60 s for a checkpoint of this size).
//!
//! Prints the best of a few runs per size and fails (exit 1) when the largest takes more
//! than [`BOUND`]: the time bound lives here, not in a timed test.
//!
//! Run: `cargo bench -p llamapack-convert --bench pth_entries` (about ten seconds).

use std::hint::black_box;
use std::time::{Duration, Instant};

use llamapack_convert::testing::state_dict_pth;

/// Tensors in the largest file measured.
const MAX_TENSORS: usize = 100_000;
/// Best-of time allowed for listing the largest file.
const BOUND: Duration = Duration::from_secs(2);

fn best_of(runs: usize, f: impl Fn()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("at least one run")
}

fn main() {
    let mut worst = Duration::ZERO;
    for n in [MAX_TENSORS / 10, MAX_TENSORS / 2, MAX_TENSORS] {
        let tensors: Vec<(String, Vec<u64>)> = (0..n)
            .map(|i| (format!("layers.{}.t{}.weight", i / 16, i % 16), vec![2, 2]))
            .collect();
        let pth = state_dict_pth("many", &tensors);
        let zip = llamapack_convert::zip::ZipArchive::parse(&pth, "many.pth").unwrap();
        let entries = zip.entries().len();
        let load = best_of(3, || {
            let t = llamapack_convert::pth::load(black_box(&pth), "many.pth").unwrap();
            assert_eq!(t.len(), n);
        });
        let read = best_of(3, || {
            for t in llamapack_convert::pth::load(&pth, "many.pth").unwrap() {
                black_box(t.bytes().unwrap());
            }
        });
        println!(
            "pth_entries/{n}: {n} tensors, {entries} zip entries, {} bytes: list {:.1} ms ({:.2} µs/tensor), list + read with crc-32 checks {:.1} ms",
            pth.len(),
            load.as_secs_f64() * 1e3,
            load.as_secs_f64() * 1e6 / n as f64,
            read.as_secs_f64() * 1e3,
        );
        worst = load;
    }
    if worst > BOUND {
        eprintln!(
            "pth_entries: listing {MAX_TENSORS} tensors took {worst:?}, over the bound of {BOUND:?}"
        );
        std::process::exit(1);
    }
    println!("pth_entries: within the bound of {BOUND:?}");
}
