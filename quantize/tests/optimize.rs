//! The output-error optimizer (`llamapack_quantize::optimize`) on synthetic layers with
//! correlated inputs: better than the importance-weighted encoder for every quantized type,
//! valid blocks, the same bytes at every thread count, errors for bad input, no loss when the
//! inputs are uncorrelated, and an output error that matches a plain f64 computation.

use llamapack_quantize::optimize::{
    self, InputStats, Options, Order, check_blocks, output_error, output_error_diag,
};
use llamapack_quantize::{DType, Error, WEIGHT_TYPES, dequantize_row, kernels};
use std::fmt::Write as _;

use crate::common::Rng;

/// Where a synthetic layer's heavy input columns are.
#[derive(Clone, Copy, Debug)]
pub enum Heavy {
    /// Every 37th column 8× the others (E[x²] 64×).
    Spread,
    /// Four scattered columns 30× the others, like the massive activation channels of LLMs.
    Massive,
}

/// The columns of [`Heavy::Massive`], as `c·7919 mod cols`.
const MASSIVE: [usize; 4] = [1, 2, 3, 4];

/// A synthetic layer: weights `rows × cols` (normal, a few outliers) and input vectors
/// `X = Z·A` (`tokens × cols`) with a random mixing `A = I + G/√cols·0.8`, every 37th column
/// 8× heavier and column 5 dead.
pub struct Layer {
    pub rows: usize,
    pub cols: usize,
    pub w: Vec<f32>,
    pub stats: InputStats,
}

impl Layer {
    pub fn new(rows: usize, cols: usize, tokens: usize, seed: u64) -> Layer {
        Layer::with(rows, cols, tokens, seed, Heavy::Spread)
    }

    pub fn with(rows: usize, cols: usize, tokens: usize, seed: u64, heavy: Heavy) -> Layer {
        let mut rng = Rng::new(seed);
        let mut w: Vec<f32> = (0..rows * cols).map(|_| rng.normal() * 0.02).collect();
        for _ in 0..rows * cols / 500 {
            let i = rng.below((rows * cols) as u64) as usize;
            w[i] *= 6.0;
        }
        let scale = 0.8 / (cols as f32).sqrt();
        let a: Vec<f32> = (0..cols * cols)
            .map(|i| rng.normal() * scale + if i / cols == i % cols { 1.0 } else { 0.0 })
            .collect();
        let mut x = vec![0f32; tokens * cols];
        let mut z = vec![0f32; cols];
        for t in 0..tokens {
            for v in &mut z {
                *v = rng.normal();
            }
            let xt = &mut x[t * cols..(t + 1) * cols];
            for (k, &zk) in z.iter().enumerate() {
                for (o, &ak) in xt.iter_mut().zip(&a[k * cols..(k + 1) * cols]) {
                    *o += zk * ak;
                }
            }
            for (c, o) in xt.iter_mut().enumerate() {
                match heavy {
                    Heavy::Spread if c % 37 == 0 => *o *= 8.0,
                    Heavy::Massive if MASSIVE.contains(&(c * 7919 % cols)) => *o *= 30.0,
                    _ => {}
                }
                if c == 5 {
                    *o = 0.0;
                }
            }
        }
        let stats = InputStats::from_inputs(&x, cols).expect("valid inputs");
        Layer {
            rows,
            cols,
            w,
            stats,
        }
    }

    /// The importance-weighted encoder (llama-quantize --imatrix) with the imatrix diag(H).
    pub fn weighted(&self, dtype: DType) -> Vec<u8> {
        let rb = dtype.row_bytes(self.cols).unwrap();
        let qw = self.stats.diag();
        let mut out = vec![0u8; self.rows * rb];
        for (row, dst) in self.w.chunks(self.cols).zip(out.chunks_mut(rb)) {
            kernels()
                .quantize_weighted_row(dtype, row, dst, &qw)
                .unwrap();
        }
        out
    }

    pub fn error(&self, dtype: DType, bytes: &[u8]) -> f64 {
        output_error(dtype, &self.w, self.rows, self.cols, bytes, &self.stats).unwrap()
    }

    pub fn optimized(&self, dtype: DType, opts: &Options) -> Vec<u8> {
        optimize::quantize_tensor_optimized(dtype, &self.w, self.rows, self.cols, &self.stats, opts)
            .unwrap()
    }
}

fn quantized() -> impl Iterator<Item = DType> {
    WEIGHT_TYPES.into_iter().filter(|d| d.is_quantized())
}

#[test]
fn optimized_beats_the_weighted_encoder_for_every_type() {
    let layer = Layer::new(48, 512, 1024, 1);
    let fac = optimize::factor(&layer.stats, &Options::default()).unwrap();
    let mut report = String::new();
    for dtype in quantized() {
        let theirs = layer.error(dtype, &layer.weighted(dtype));
        let bytes = optimize::quantize_tensor_factored(
            dtype,
            &layer.w,
            layer.rows,
            layer.cols,
            &fac,
            &Options::default(),
        )
        .unwrap();
        let ours = layer.error(dtype, &bytes);
        let ratio = ours / theirs;
        let _ = write!(report, "{dtype}: {ratio:.3}  ");
        assert!(
            ratio < 0.8,
            "{dtype}: optimized {ours} vs weighted {theirs}"
        );
    }
    eprintln!("output error, optimized / weighted: {report}");
}

#[test]
fn optimized_blocks_are_valid() {
    let layer = Layer::new(8, 512, 600, 2);
    for dtype in WEIGHT_TYPES {
        let bytes = layer.optimized(dtype, &Options::default());
        assert_eq!(
            bytes.len(),
            layer.rows * dtype.row_bytes(layer.cols).unwrap()
        );
        check_blocks(dtype, &bytes).unwrap_or_else(|e| panic!("{dtype}: {e}"));
        let rb = dtype.row_bytes(layer.cols).unwrap();
        let mut back = vec![0f32; layer.cols];
        for (row, src) in bytes.chunks(rb).enumerate() {
            dequantize_row(dtype, src, &mut back).unwrap();
            let w = &layer.w[row * layer.cols..(row + 1) * layer.cols];
            // Every value near its weight: the feedback moves targets, not by whole ranges.
            let amax = w.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (a, b) in w.iter().zip(&back) {
                assert!(
                    b.is_finite() && (a - b).abs() <= amax,
                    "{dtype} row {row}: {a} → {b}"
                );
            }
        }
    }
    // The check sees a broken block.
    let mut bytes = layer.optimized(DType::Q8_0, &Options::default());
    bytes[5] = 0x80; // a quant of −128
    assert!(matches!(
        check_blocks(DType::Q8_0, &bytes),
        Err(Error::InvalidBlock { block: 0, .. })
    ));
    let mut bytes = layer.optimized(DType::Q4K, &Options::default());
    bytes[1] = 0x7c; // d = inf
    assert!(check_blocks(DType::Q4K, &bytes).is_err());
}

#[test]
fn same_bytes_at_every_thread_count() {
    let layer = Layer::new(20, 512, 600, 3);
    for order in [Order::Natural, Order::Grouped, Order::ActOrder] {
        let opts = Options {
            order,
            ..Options::default()
        };
        for dtype in [DType::Q4K, DType::Q4_0, DType::IQ4NL, DType::Q6K] {
            let run = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| layer.optimized(dtype, &opts))
            };
            assert!(run(1) == run(2), "{dtype} {order:?}: 1 vs 2 threads");
            let e = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| layer.error(dtype, &run(2)))
            };
            assert_eq!(e(1).to_bits(), e(3).to_bits(), "{dtype}: output error");
        }
    }
}

#[test]
fn bad_input_is_an_error() {
    let layer = Layer::new(4, 256, 300, 4);
    let opts = Options::default();
    let q = |w: &[f32], rows, cols, stats: &InputStats| {
        optimize::quantize_tensor_optimized(DType::Q4K, w, rows, cols, stats, &opts)
    };
    // H of the wrong size.
    assert!(matches!(
        InputStats::from_f32(4, vec![1.0; 15], 10),
        Err(Error::Shape {
            expected: 16,
            found: 15,
            ..
        })
    ));
    let other = InputStats::from_f64(512, identity(512), 10).unwrap();
    assert!(matches!(
        q(&layer.w, 4, 256, &other),
        Err(Error::Shape {
            expected: 256,
            found: 512,
            ..
        })
    ));
    // Non-finite and negative entries.
    let mut h = identity(4);
    h[6] = f64::NAN;
    assert!(matches!(
        InputStats::from_f64(4, h, 10),
        Err(Error::InputStats { .. })
    ));
    let mut h = identity(4);
    h[0] = -1.0;
    assert!(matches!(
        InputStats::from_f64(4, h, 10),
        Err(Error::InputStats { .. })
    ));
    // Not positive semi-definite beyond what damping covers.
    let mut h = identity(256);
    h[1] = 5.0;
    h[256] = 5.0;
    let bad = InputStats::from_f64(256, h, 10).unwrap();
    let e = q(&layer.w, 4, 256, &bad).unwrap_err();
    assert!(e.to_string().contains("not positive definite"), "{e}");
    // rows × cols mismatch, a bad row length, non-finite weights.
    assert!(matches!(
        q(&layer.w[..1000], 4, 256, &layer.stats),
        Err(Error::Shape {
            expected: 1024,
            found: 1000,
            ..
        })
    ));
    let s100 = InputStats::from_f64(100, identity(100), 1).unwrap();
    assert!(matches!(
        q(&vec![0.0; 400], 4, 100, &s100),
        Err(Error::RowLength { len: 100, .. })
    ));
    let mut w = layer.w.clone();
    w[300] = f32::INFINITY;
    assert!(matches!(
        q(&w, 4, 256, &layer.stats),
        Err(Error::NonFiniteAt {
            row: 1,
            column: 44,
            ..
        })
    ));
    // A bad damping, a type without kernels to optimize into.
    let nan = Options {
        damp: f64::NAN,
        ..opts
    };
    assert!(optimize::factor(&layer.stats, &nan).is_err());
    assert!(matches!(
        optimize::quantize_tensor_optimized(DType::Q8K, &layer.w, 4, 256, &layer.stats, &opts),
        Err(Error::Unsupported(DType::Q8K))
    ));
    // The measures check their shapes too.
    let bytes = layer.weighted(DType::Q4K);
    assert!(output_error(DType::Q4K, &layer.w, 4, 256, &bytes[1..], &layer.stats).is_err());
    assert!(output_error(DType::Q4K, &layer.w, 4, 256, &bytes, &other).is_err());
    assert!(output_error(DType::Q4K, &layer.w, 3, 256, &bytes, &layer.stats).is_err());
    assert!(output_error_diag(DType::Q4K, &layer.w, 4, 256, &bytes, &[1.0; 255]).is_err());
    assert!(InputStats::from_inputs(&[1.0; 10], 3).is_err());
}

fn identity(n: usize) -> Vec<f64> {
    (0..n * n)
        .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
        .collect()
}

#[test]
fn uncorrelated_inputs_lose_nothing() {
    // H = I: the output error is the plain squared weight error, the feedback has nothing to
    // pass on, and the refit only moves scales when that lowers the error.
    let layer = Layer::new(32, 512, 16, 5);
    let stats = InputStats::from_f64(512, identity(512), 1000).unwrap();
    let mut report = String::new();
    for dtype in quantized() {
        let rb = dtype.row_bytes(512).unwrap();
        let mut theirs = vec![0u8; layer.rows * rb];
        for (row, dst) in layer.w.chunks(512).zip(theirs.chunks_mut(rb)) {
            kernels()
                .quantize_weighted_row(dtype, row, dst, &[1.0; 512])
                .unwrap();
        }
        let ours = optimize::quantize_tensor_optimized(
            dtype,
            &layer.w,
            layer.rows,
            512,
            &stats,
            &Options::default(),
        )
        .unwrap();
        let (a, b) = (
            output_error(dtype, &layer.w, layer.rows, 512, &ours, &stats).unwrap(),
            output_error(dtype, &layer.w, layer.rows, 512, &theirs, &stats).unwrap(),
        );
        let _ = write!(report, "{dtype}: {:.3}  ", a / b);
        assert!(a <= 1.02 * b, "{dtype}: {a} vs {b}");
    }
    eprintln!("H = I, optimized / weighted: {report}");
}

#[test]
fn output_error_matches_plain_f64() {
    let layer = Layer::new(6, 256, 400, 6);
    for dtype in [DType::Q4K, DType::Q8_0, DType::F16, DType::IQ4XS] {
        let bytes = layer.weighted(dtype);
        let (rows, cols) = (layer.rows, layer.cols);
        let rb = dtype.row_bytes(cols).unwrap();
        let mut back = vec![0f32; cols];
        let (mut want, mut want_diag) = (0f64, 0f64);
        for r in 0..rows {
            dequantize_row(dtype, &bytes[r * rb..(r + 1) * rb], &mut back).unwrap();
            let d: Vec<f64> = (0..cols)
                .map(|i| f64::from(layer.w[r * cols + i]) - f64::from(back[i]))
                .collect();
            for i in 0..cols {
                for j in 0..cols {
                    want += d[i] * layer.stats.get(i, j) * d[j];
                }
                want_diag += d[i] * d[i] * layer.stats.get(i, i);
            }
        }
        let got = layer.error(dtype, &bytes);
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "{dtype}: {got} vs {want}"
        );
        // f32 statistics give the same number up to their rounding.
        let h32: Vec<f32> = (0..cols * cols)
            .map(|i| layer.stats.get(i / cols, i % cols) as f32)
            .collect();
        let s32 = InputStats::from_f32(cols, h32, 400).unwrap();
        let got32 = output_error(dtype, &layer.w, rows, cols, &bytes, &s32).unwrap();
        assert!(
            (got32 - want).abs() <= 1e-5 * want,
            "{dtype}: {got32} vs {want}"
        );
        let diag = layer.stats.diag();
        let gd = output_error_diag(dtype, &layer.w, rows, cols, &bytes, &diag).unwrap();
        assert!(
            (gd - want_diag).abs() <= 1e-6 * want_diag,
            "{dtype}: {gd} vs {want_diag}"
        );
    }
}

/// The variants side by side (`cargo test --release -p llamapack-quantize optimize::variants
/// -- --ignored --nocapture`): output error / the weighted encoder's, per type.
#[test]
#[ignore = "a report, not a check"]
fn variants() {
    let variants = [
        ("natural, no refit", Order::Natural, 0),
        ("natural, refit 2", Order::Natural, 2),
        ("grouped, refit 2", Order::Grouped, 2),
        ("act order, static", Order::ActOrder, 0),
        ("act order, 2 re-choices", Order::ActOrder, 2),
    ];
    for heavy in [Heavy::Spread, Heavy::Massive] {
        eprintln!("{heavy:?} heavy columns:");
        let layer = Layer::with(64, 1024, 2048, 7, heavy);
        for dtype in quantized() {
            let theirs = layer.error(dtype, &layer.weighted(dtype));
            let mut line = format!("{:7}", dtype.name());
            for (name, order, refit_rounds) in variants {
                let opts = Options {
                    order,
                    refit_rounds,
                    ..Options::default()
                };
                let ours = layer.error(dtype, &layer.optimized(dtype, &opts));
                let _ = write!(line, " | {name}: {:.4}", ours / theirs);
            }
            eprintln!("{line}");
        }
    }
}
