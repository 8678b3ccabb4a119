//! The scalar references: known answers, ggml edge cases, round-trip error bounds, errors.

use crate::common;

use common::{Rng, decode, encode, levels, row};
use half::f16;
use llamapack_format::blocks::{BlockQ4_0, BlockQ8_0};
use llamapack_quantize::{DType, Error, q4_0, q8_0, quantize_row};

#[test]
fn q8_0_known_block() {
    // amax = 127 → d = 1 exactly; halves round away from zero (roundf), not to even.
    let mut x = [0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -2.5;
    x[3] = 0.499_999_97;
    x[4] = -126.5;
    let mut b = [BlockQ8_0 {
        d: f16::ZERO,
        qs: [0; 32],
    }];
    q8_0::quantize_row_q8_0_ref(&x, &mut b);
    assert_eq!(b[0].d, f16::ONE);
    assert_eq!(&b[0].qs[..5], &[127, 3, -3, 0, -127]);
}

#[test]
fn q4_0_known_block_and_nibble_order() {
    // max by magnitude is −16 → d = 2; q = min(15, trunc(x/2 + 8.5)).
    let x: Vec<f32> = (0..32)
        .map(|i| if i == 5 { -16.0 } else { i as f32 / 4.0 })
        .collect();
    let mut b = [BlockQ4_0 {
        d: f16::ZERO,
        qs: [0; 16],
    }];
    q4_0::quantize_row_q4_0_ref(&x, &mut b);
    assert_eq!(b[0].d.to_f32(), 2.0);
    for j in 0..16 {
        let q = |v: f32| ((v * 0.5 + 8.5) as i32).min(15) as u8;
        assert_eq!(b[0].qs[j] & 0x0f, q(x[j]), "low nibble {j}");
        assert_eq!(b[0].qs[j] >> 4, q(x[j + 16]), "high nibble {j}");
    }
    assert_eq!(b[0].qs[5] & 0x0f, 0); // −16 → −8 → q 0
}

#[test]
fn q4_0_edge_cases_follow_ggml() {
    // All zeros: d = 0/−8 = −0 (f16 bits 0x8000), every nibble 8.
    let z = encode(DType::Q4_0, &[0.0; 32]);
    assert_eq!(&z[..2], &[0x00, 0x80]);
    assert!(z[2..].iter().all(|&b| b == 0x88));
    // Ties in magnitude: the first one decides the sign of d.
    let mut x = [0f32; 32];
    x[3] = 3.0;
    x[9] = -3.0;
    assert_eq!(
        f16::from_le_bytes([encode(DType::Q4_0, &x)[0], encode(DType::Q4_0, &x)[1]]).to_f32(),
        -0.375
    );
    // |max| = 1e6: d = −125000 overflows f16 → −inf (ggml does the same); decoding gives ±inf/NaN.
    let mut x = [0.5f32; 32];
    x[0] = 1e6;
    let b = encode(DType::Q4_0, &x);
    assert_eq!(f16::from_le_bytes([b[0], b[1]]), f16::NEG_INFINITY);
    assert!(decode(DType::Q4_0, &b, 32).iter().all(|v| !v.is_finite()));
}

#[test]
fn q8_0_scale_overflow_follows_ggml() {
    // amax/127 > 65504 ⇔ amax > 8.32e6: the f16 scale is +inf, quants still use the f32 scale.
    let mut x = [1.0f32; 32];
    x[0] = 1e7;
    let b = encode(DType::Q8_0, &x);
    assert_eq!(f16::from_le_bytes([b[0], b[1]]), f16::INFINITY);
    assert_eq!(b[2] as i8, 127);
    // 1e6 still fits (d = 7874).
    x[0] = 1e6;
    let b = encode(DType::Q8_0, &x);
    assert_eq!(f16::from_le_bytes([b[0], b[1]]).to_f32(), 7876.0);
}

#[test]
fn tiny_blocks_quantize_to_zero() {
    // 1/d overflows f32: ggml's (int8_t)(±inf) is 0 on x86-64.
    let x = [1e-38f32; 32];
    let b = encode(DType::Q8_0, &x);
    assert!(b.iter().all(|&v| v == 0));
    let b = encode(DType::Q8K, &[-1e-38f32; 256]);
    assert!(b[4..].iter().all(|&v| v == 0));
}

#[test]
fn q8_k_known_block() {
    let mut x = vec![0f32; 256];
    x[0] = -2.0; // max by magnitude, negative: iscale = 63.5, d = 1/63.5
    x[17] = 1.0;
    x[255] = 0.5;
    let b = encode(DType::Q8K, &x);
    let d = f32::from_le_bytes(b[..4].try_into().unwrap());
    assert_eq!(d, 1.0 / (-127.0f32 / -2.0));
    assert_eq!(b[4] as i8, -127);
    assert_eq!(b[4 + 17] as i8, 64); // 63.5 rounds half to even
    assert_eq!(b[4 + 255] as i8, 32); // 31.75 → 32
    let bsum = |g: usize| i16::from_le_bytes([b[260 + 2 * g], b[261 + 2 * g]]);
    assert_eq!((bsum(0), bsum(1), bsum(15)), (-127, 64, 32));
}

/// Relative RMS error of a round trip on normal-ish rows.
fn rel_rms(dtype: DType, x: &[f32]) -> f64 {
    let back = decode(dtype, &encode(dtype, x), x.len());
    let num: f64 = x
        .iter()
        .zip(&back)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let den: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
    (num / den).sqrt()
}

#[test]
fn round_trip_error_bounds() {
    let x = row(0, 256 * 64, 42);
    // Measured: q8_0 0.0051, q4_0 0.082, q4_k 0.069, q6_k 0.017, q8_k 0.0062, f16 2.1e-4, bf16 1.7e-3,
    // q2_k 0.288, q3_k 0.146, q5_k 0.035, iq4_nl 0.077, iq4_xs 0.075.
    for (dtype, bound) in [
        (DType::Q8_0, 0.007),
        (DType::Q4_0, 0.10),
        (DType::Q4K, 0.08),
        (DType::Q6K, 0.02),
        (DType::Q8K, 0.008),
        (DType::IQ4NL, 0.09),
        (DType::IQ4XS, 0.085),
        (DType::F16, 5e-4),
        (DType::BF16, 4e-3),
        (DType::F32, 0.0),
        (DType::Q2K, 0.31),
        (DType::Q3K, 0.16),
        (DType::Q5K, 0.04),
    ] {
        let e = rel_rms(dtype, &x);
        assert!(e <= bound, "{dtype}: relative RMS error {e} > {bound}");
    }
    // k-quants beat the 32-block formats of the same size.
    assert!(rel_rms(DType::Q4K, &x) < rel_rms(DType::Q4_0, &x));
    // and every extra bit of the k-quants lowers the error.
    let ks = [DType::Q2K, DType::Q3K, DType::Q4K, DType::Q5K, DType::Q6K].map(|d| rel_rms(d, &x));
    assert!(ks.windows(2).all(|w| w[1] < w[0]), "{ks:?}");
}

#[test]
fn per_element_bounds_for_block32_formats() {
    let mut r = Rng::new(9);
    for seed in 0..200 {
        let x = row(r.below(common::KINDS).min(4), 32, seed);
        // q8_0: |x − x̂| ≤ d/2 + 127·|d − f16(d)| (quants use the f32 scale, decoding the f16 one).
        let b = encode(DType::Q8_0, &x);
        let d16 = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let d32 = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let back = decode(DType::Q8_0, &b, 32);
        for (a, y) in x.iter().zip(&back) {
            let bound = d32 / 2.0 + 127.0 * (d16 - d32).abs() + 1e-6 * d32;
            assert!((a - y).abs() <= bound, "q8_0 {a} → {y} (bound {bound})");
        }
        // q4_0: |x − x̂| ≤ |d| + 8·|d − f16(d)| (the far side of the range is clamped at 7).
        let b = encode(DType::Q4_0, &x);
        let d16 = f16::from_le_bytes([b[0], b[1]]).to_f32().abs();
        let back = decode(DType::Q4_0, &b, 32);
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, y) in x.iter().zip(&back) {
            let bound = amax / 8.0 + 8.0 * (d16 - amax / 8.0).abs() + 1e-6 * amax;
            assert!((a - y).abs() <= bound, "q4_0 {a} → {y} (bound {bound})");
        }
    }
}

#[test]
fn non_finite_input_is_rejected_with_its_index() {
    for dtype in DType::all() {
        for (i, bad) in [
            (0usize, f32::NAN),
            (200, f32::INFINITY),
            (255, f32::NEG_INFINITY),
        ] {
            let mut x = row(0, 256, 1);
            x[i] = bad;
            x[(i + 1) % 256] = f32::NAN; // only the first one is reported
            let i_first = i.min((i + 1) % 256);
            let mut out = vec![0u8; dtype.row_bytes(256).unwrap()];
            for k in levels() {
                let err = k.quantize_row(dtype, &x, &mut out).unwrap_err();
                match err {
                    Error::NonFinite { index, .. } => assert_eq!(index, i_first, "{dtype}"),
                    other => panic!("{dtype}: unexpected {other}"),
                }
            }
            assert!(
                quantize_row(dtype, &x, &mut out)
                    .unwrap_err()
                    .to_string()
                    .starts_with("non-finite value")
            );
        }
    }
}

#[test]
fn non_finite_index_is_exact_in_long_rows() {
    let mut x = row(0, 4096, 5);
    x[2900] = f32::NEG_INFINITY;
    x[700] = f32::NAN;
    for k in levels() {
        let mut out = vec![0u8; DType::Q8K.row_bytes(4096).unwrap()];
        let e = k.quantize_row(DType::Q8K, &x, &mut out).unwrap_err();
        assert!(matches!(e, Error::NonFinite { index: 700, .. }), "{e}");
    }
}

#[test]
fn wrong_lengths_are_errors() {
    let x = vec![0.5f32; 48];
    let mut out = vec![0u8; 64];
    let e = quantize_row(DType::Q4_0, &x, &mut out).unwrap_err();
    assert!(
        matches!(
            e,
            Error::RowLength {
                len: 48,
                block_len: 32,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "q4_0: a row of 48 values is not a multiple of the block length 32"
    );
    let e = quantize_row(DType::Q4_0, &x[..32], &mut out).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ByteLength {
                expected: 18,
                found: 64,
                ..
            }
        ),
        "{e}"
    );
    let mut back = vec![0f32; 32];
    assert!(llamapack_quantize::dequantize_row(DType::Q8_0, &out, &mut back).is_err());
    // weighted rows: the values must be whole rows of the weights' length, each whole blocks
    let k = llamapack_quantize::kernels();
    let qw = vec![1.0f32; 32];
    let e = k
        .quantize_weighted_rows(DType::Q4_0, &x, &mut out, &qw)
        .unwrap_err();
    assert!(matches!(e, Error::ByteLength { len: 48, .. }), "{e}");
    let e = k
        .quantize_weighted_rows(DType::Q4_0, &x, &mut out, &x[..24])
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::RowLength {
                len: 24,
                block_len: 32,
                ..
            }
        ),
        "{e}"
    );
    let e = k
        .quantize_weighted_rows(DType::Q4_0, &[0.5; 64], &mut out, &qw)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ByteLength {
                expected: 36,
                found: 64,
                ..
            }
        ),
        "{e}"
    );
    let mut two = vec![0u8; 36];
    k.quantize_weighted_rows(DType::Q4_0, &[0.5; 64], &mut two, &qw)
        .unwrap();
}

#[test]
#[should_panic(expected = "vec_dot")]
fn vec_dot_checks_lengths() {
    let w = encode(DType::Q8_0, &[1.0; 64]);
    let a = encode(DType::Q8_0, &[1.0; 32]);
    let _ = llamapack_quantize::vec_dot(DType::Q8_0, 64, &w, &a);
}

#[test]
fn dispatch_reports_a_supported_level() {
    let level = llamapack_quantize::simd_level();
    assert!(level.is_supported());
    assert_eq!(
        llamapack_quantize::Level::from_name(level.name()),
        Some(level)
    );
    #[cfg(target_arch = "x86_64")]
    if std::env::var_os("LLAMAPACK_SIMD").is_none() && std::is_x86_feature_detected!("avx2") {
        assert_ne!(level, llamapack_quantize::Level::Scalar);
    }
}

/// `LLAMAPACK_SIMD` lowers the level (re-runs this test binary with the variable set).
#[test]
fn env_var_forces_a_lower_level_never_a_higher_one() {
    use llamapack_quantize::Level;
    if let Ok(want) = std::env::var("LLAMAPACK_SIMD_EXPECT") {
        assert_eq!(llamapack_quantize::simd_level().name(), want);
        return;
    }
    let best = [Level::Avx512, Level::Avx2, Level::Neon]
        .into_iter()
        .find(|l| l.is_supported())
        .unwrap_or(Level::Scalar);
    for (asked, expect) in [
        ("scalar", Level::Scalar),
        (
            "avx2",
            if Level::Avx2.is_supported() {
                Level::Avx2
            } else {
                best
            },
        ),
        (
            "avx512",
            if Level::Avx512.is_supported() {
                Level::Avx512
            } else {
                best
            },
        ),
        ("bogus", best),
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "env_var_forces_a_lower_level_never_a_higher_one",
                "--test-threads=1",
            ])
            .env("LLAMAPACK_SIMD", asked)
            .env("LLAMAPACK_SIMD_EXPECT", expect.name())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() && !stdout.contains("running 1 test") {
            // The binary could not be re-executed (e.g. under a user-mode emulator).
            eprintln!("skipped: cannot re-run {:?}", std::env::current_exe());
            return;
        }
        assert!(out.status.success(), "LLAMAPACK_SIMD={asked}: {stdout}");
    }
}
