//! The attention of one query head (f32): scores, softmax, the weighted sum of values: the
//! runner's only non-matmul work that grows with the context, compiled here (the crate with the
//! SIMD targets) so that it gets the AVX2 build where the CPU has one. Every level performs the
//! same f32 operations in the same order — the products added as fused multiply-adds
//! (`f32::mul_add`, one rounding), the exponentials by [`exp_f32`] — so the results have the
//! same bits everywhere.

/// One query head's attention over the positions `0..att.len()`: `att[p] = scale · q·k_p`
/// (key `p` at `keys[p·stride..][..q.len()]`), softmax, then `out = Σ att[p] · v_p`. The same
/// operations in the same order at every CPU level; with AVX2 and FMA (where the CPU has them)
/// the 8 partial sums of [`dot`] sit in one register and the weighted sum takes 8 lanes at a
/// time, in registers.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    out: &mut [f32],
    att: &mut [f32],
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scale: f32,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 was detected (the function enables nothing more).
        unsafe { attend_avx2(out, att, q, keys, values, stride, scale) };
        return;
    }
    attend_body(out, att, q, keys, values, stride, scale);
}

/// Whether this CPU has AVX2 and FMA (detected once).
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// [`attend`] at AVX2 with FMA, with the reference's operations in its order (so the same
/// bits): the scores four positions at a time ([`scores`]), the weighted sum 64 outputs at a
/// time in registers ([`weighted_sum`]). Head sizes that are not a multiple of 8 take the
/// reference loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn attend_avx2(
    out: &mut [f32],
    att: &mut [f32],
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scale: f32,
) {
    let (hd, n) = (q.len(), att.len());
    if !hd.is_multiple_of(8) || out.len() != hd || n == 0 {
        attend_body(out, att, q, keys, values, stride, scale);
        return;
    }
    // every key and value row the loops read lies inside its slice
    let last = (n - 1) * stride + hd;
    assert!(
        last <= keys.len() && last <= values.len(),
        "attend: {n} positions of stride {stride} need {last} floats"
    );
    let kp = keys.as_ptr();
    let mut quads = att.chunks_exact_mut(4);
    for (i, a4) in (&mut quads).enumerate() {
        // SAFETY: AVX2 and FMA are on; keys 4i..4i + 4 < n each end by last ≤ keys.len()
        // (asserted above), q is hd floats.
        unsafe { scores::<4>(a4, q, kp.add(4 * i * stride), stride, scale) };
    }
    let p0 = n / 4 * 4;
    for (i, a1) in quads.into_remainder().chunks_exact_mut(1).enumerate() {
        // SAFETY: as above, for the one key p0 + i < n.
        unsafe { scores::<1>(a1, q, kp.add((p0 + i) * stride), stride, scale) };
    }
    softmax(att);
    let vp = values.as_ptr();
    let mut c0 = 0;
    while c0 + 64 <= hd {
        // SAFETY: AVX2 is on; c0 + 64 ≤ hd, so value p's floats c0..c0 + 64 end by
        // (n - 1)·stride + hd = last ≤ values.len() (asserted above).
        unsafe { weighted_sum::<8>(&mut out[c0..c0 + 64], att, vp.add(c0), stride) };
        c0 += 64;
    }
    while c0 < hd {
        // SAFETY: as above with c0 + 8 ≤ hd (hd is a multiple of 8).
        unsafe { weighted_sum::<1>(&mut out[c0..c0 + 8], att, vp.add(c0), stride) };
        c0 += 8;
    }
}

/// `att[j] = scale · q·k_j` for `j < J` (key `j` at `k.add(j·stride)`), `J` independent
/// chains: each [`dot`]'s eight partial sums in one register (`acc = fma(q, k, acc)` by chunks
/// of 8, in order), reduced as `dot` combines them, then its empty tail added.
///
/// # Safety
/// AVX2 and FMA are available; `att` holds `J` floats, `q.len()` is a multiple of 8 and
/// `k.add(j·stride)` is valid for `q.len()` floats for every `j < J`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn scores<const J: usize>(
    att: &mut [f32],
    q: &[f32],
    k: *const f32,
    stride: usize,
    scale: f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); J];
    for c in (0..q.len()).step_by(8) {
        // SAFETY: c + 8 ≤ q.len(); the keys are the caller's guarantee.
        unsafe {
            let qc = _mm256_loadu_ps(q.as_ptr().add(c));
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(qc, _mm256_loadu_ps(k.add(j * stride + c)), *a);
            }
        }
    }
    // `dot`'s empty tail (its sign of zero included)
    let tail: f32 = std::iter::empty::<f32>().sum();
    for (s, a) in att.iter_mut().zip(acc) {
        let lanes = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let h = _mm_hadd_ps(lanes, lanes);
        *s = ((_mm_cvtss_f32(h) + _mm_cvtss_f32(_mm_movehdup_ps(h))) + tail) * scale;
    }
}

/// `out = Σ_p att[p] · v_p` for `8·REGS` output values kept in registers across every
/// position (`y = fma(a, v, y)` per element, in position order, as the reference).
///
/// # Safety
/// AVX2 is available; `out` holds `8·REGS` floats and `v.add(p·stride)` is valid for
/// `8·REGS` floats for every `p < att.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn weighted_sum<const REGS: usize>(
    out: &mut [f32],
    att: &[f32],
    v: *const f32,
    stride: usize,
) {
    use std::arch::x86_64::*;
    let mut y = [_mm256_setzero_ps(); REGS];
    for (p, &a) in att.iter().enumerate() {
        let a = _mm256_set1_ps(a);
        for (r, y) in y.iter_mut().enumerate() {
            // SAFETY: the caller's guarantee for position p and register r < REGS.
            let x = unsafe { _mm256_loadu_ps(v.add(p * stride + 8 * r)) };
            *y = _mm256_fmadd_ps(a, x, *y);
        }
    }
    for (o, y) in out.chunks_exact_mut(8).zip(y) {
        // SAFETY: `o` is 8 floats.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), y) };
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_body(
    out: &mut [f32],
    att: &mut [f32],
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scale: f32,
) {
    let hd = q.len();
    for (p, a) in att.iter_mut().enumerate() {
        *a = dot(q, &keys[p * stride..][..hd]) * scale;
    }
    softmax(att);
    out.fill(0.0);
    for (p, &a) in att.iter().enumerate() {
        for (y, &x) in out.iter_mut().zip(&values[p * stride..][..hd]) {
            *y = a.mul_add(x, *y);
        }
    }
}

/// In-place softmax in f32 (max subtracted first): `exp` is [`exp_f32`] (plain f32 multiplies
/// and adds, which LLVM vectorizes with the same bits in every lane and at every level) and
/// the normalizing sum takes eight partial sums, as [`dot`] does.
#[inline(always)]
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in x.iter_mut() {
        *v = exp_f32(*v - max);
    }
    let inv = 1.0 / sum8(x);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `Σ x` with eight partial sums (lane `i` adds `x[i], x[i + 8], …`), combined as [`dot`]
/// combines its own, then the tail in order.
#[inline(always)]
fn sum8(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut c = x.chunks_exact(8);
    for x8 in &mut c {
        for i in 0..8 {
            acc[i] += x8[i];
        }
    }
    let tail: f32 = c.remainder().iter().sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `e^x` in f32 from separate f32 multiplies and adds only (no libm call, no fused
/// multiply-add, no branch), so that a loop over it vectorizes and every CPU level gives the
/// same bits: `x = n·ln 2 + r` with `n` rounded to nearest (the 1.5·2²³ trick) and `r` reduced
/// in two steps (Cody–Waite: `ln 2` split into a part exact in 16 bits and the rest), `e^r` by
/// its Taylor series to `r⁷/7!` (`|r| ≤ ln 2 / 2`: truncation below 2⁻²⁷), scaled by `2ⁿ`
/// built in the exponent bits. Within 2 ulp of `e^x` for `x` in [-87, 88]; below −87 (and
/// −∞) it is 0, above 88 it saturates at `e^88`; NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_145_75; // ln 2 to 16 significant bits: n · LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6; // ln 2 − LN2_HI
    let xc = x.clamp(-87.0, 88.0);
    let t = xc * std::f32::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // Horner: 1 + r(1 + r(1/2 + r(1/6 + r(1/24 + r(1/120 + r(1/720 + r/5040))))))
    let mut p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2^n: n + 127 in the exponent field (n ∈ [-126, 127] after the clamp)
    let ni = (t.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    let y = p * scale;
    if x < -87.0 {
        0.0
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// f32 dot product with eight partial sums, each a chain of fused multiply-adds.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (a8, b8) in (&mut ac).zip(&mut bc) {
        for i in 0..8 {
            acc[i] = a8[i].mul_add(b8[i], acc[i]);
        }
    }
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avx2_attention_has_the_reference_bits() {
        #[cfg(not(target_arch = "x86_64"))]
        eprintln!("skipped: the AVX2 attention exists on x86_64 only");
        #[cfg(target_arch = "x86_64")]
        {
            if !avx2() {
                eprintln!("skipped: this CPU has no AVX2");
                return;
            }
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let mut rnd = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            };
            for hd in [8, 16, 24, 64, 72, 128, 136, 12] {
                for n in [1, 2, 3, 4, 5, 7, 8, 9, 33, 70] {
                    let stride = hd + 8 * (n % 3);
                    let kv: Vec<f32> = (0..(n - 1) * stride + hd + 8)
                        .map(|_| rnd() * 3.0)
                        .collect();
                    let q: Vec<f32> = (0..hd).map(|_| rnd()).collect();
                    let (mut a, mut b) = (vec![0f32; hd], vec![0f32; hd]);
                    let (mut att_a, mut att_b) = (vec![0f32; n], vec![0f32; n]);
                    // SAFETY: AVX2 was detected.
                    unsafe { attend_avx2(&mut a, &mut att_a, &q, &kv, &kv[8..], stride, 0.3) };
                    attend_body(&mut b, &mut att_b, &q, &kv, &kv[8..], stride, 0.3);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&att_a), bits(&att_b), "scores, hd {hd} n {n}");
                    assert_eq!(bits(&a), bits(&b), "output, hd {hd} n {n}");
                }
            }
        }
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let ulp = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp_f32(x), (x as f64).exp() as f32);
            worst = worst.max(ulp(got, want));
            x += 0.000_37;
        }
        assert!(worst <= 2, "{worst} ulp");
        for x in [0.0f32, -0.0, 1.0, -1.0, 1e-8, -1e-8] {
            assert!(ulp(exp_f32(x), (x as f64).exp() as f32) <= 1, "{x}");
        }
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(89.0).is_finite());
    }

    #[test]
    fn softmax_sums_in_eight_lanes() {
        let mut x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.61).cos() * 9.0).collect();
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = x.iter().map(|&v| exp_f32(v - max)).collect();
        let mut acc = [0f32; 8];
        for (i, v) in e[..32].iter().enumerate() {
            acc[i % 8] += v;
        }
        let tail = e[32..].iter().sum::<f32>();
        let sum = ((acc[0] + acc[4]) + (acc[1] + acc[5]))
            + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
            + tail;
        softmax(&mut x);
        let want: Vec<f32> = e.iter().map(|v| v * (1.0 / sum)).collect();
        assert_eq!(x, want);
        assert!((x.iter().map(|&v| f64::from(v)).sum::<f64>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn attend_is_the_same_at_every_level() {
        // 3 positions of 2 dims, keys and values interleaved with stride 4
        let kv: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        let q = [0.5f32, -1.25];
        let (mut a, mut b) = ([0f32; 2], [0f32; 2]);
        let (mut att_a, mut att_b) = ([0f32; 3], [0f32; 3]);
        attend(&mut a, &mut att_a, &q, &kv, &kv[2..], 4, 0.7);
        attend_body(&mut b, &mut att_b, &q, &kv, &kv[2..], 4, 0.7);
        assert_eq!((a, att_a), (b, att_b));
        let want: Vec<f32> = (0..3)
            .map(|p| dot(&q, &kv[4 * p..4 * p + 2]) * 0.7)
            .collect();
        let mut w = want.clone();
        softmax(&mut w);
        assert_eq!(att_b.to_vec(), w);
    }
}
