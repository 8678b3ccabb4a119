//! Plain float rows: f32, f16 and bf16 conversions and their dot products with f32 activations.
//!
//! f32 → f16 rounds to nearest even (overflow → ±inf, as ggml's `GGML_FP32_TO_FP16`);
//! f32 → bf16 is ggml's `ggml_compute_fp32_to_bf16` (round to nearest even, NaN quieted,
//! subnormals kept). Dots multiply in f32 and accumulate in one f32 sum, element by element.

use half::{bf16, f16};

/// ggml's f32 → bf16 conversion: round to nearest even on the bit pattern, NaN forced quiet.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> bf16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return bf16::from_bits(((u >> 16) | 64) as u16);
    }
    bf16::from_bits((u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16)
}

/// bf16 → f32 (exact).
#[inline(always)]
pub fn bf16_to_f32(x: bf16) -> f32 {
    f32::from_bits(u32::from(x.to_bits()) << 16)
}

/// Converts `x` to f16, element by element.
pub fn quantize_row_f16_ref(x: &[f32], y: &mut [f16]) {
    assert_eq!(x.len(), y.len(), "f16: lengths differ");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = f16::from_f32(v);
    }
}

/// Converts `x` to bf16, element by element.
pub fn quantize_row_bf16_ref(x: &[f32], y: &mut [bf16]) {
    assert_eq!(x.len(), y.len(), "bf16: lengths differ");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = f32_to_bf16(v);
    }
}

/// Widens f16 to f32 (exact).
pub fn dequantize_row_f16_ref(x: &[f16], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "f16: lengths differ");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v.to_f32();
    }
}

/// Widens bf16 to f32 (exact).
pub fn dequantize_row_bf16_ref(x: &[bf16], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "bf16: lengths differ");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = bf16_to_f32(v);
    }
}

/// `Σ w·a` in one f32 accumulator, in order.
pub fn vec_dot_f32_ref(w: &[f32], a: &[f32]) -> f32 {
    assert_eq!(w.len(), a.len(), "f32 dot: lengths differ");
    w.iter().zip(a).fold(0.0, |s, (&x, &y)| s + x * y)
}

/// `Σ f32(w)·a` in one f32 accumulator, in order.
pub fn vec_dot_f16_f32_ref(w: &[f16], a: &[f32]) -> f32 {
    assert_eq!(w.len(), a.len(), "f16 dot: lengths differ");
    w.iter().zip(a).fold(0.0, |s, (&x, &y)| s + x.to_f32() * y)
}

/// `Σ f32(w)·a` in one f32 accumulator, in order.
pub fn vec_dot_bf16_f32_ref(w: &[bf16], a: &[f32]) -> f32 {
    assert_eq!(w.len(), a.len(), "bf16 dot: lengths differ");
    w.iter()
        .zip(a)
        .fold(0.0, |s, (&x, &y)| s + bf16_to_f32(x) * y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_matches_ggml() {
        // ties to even on the 16 dropped bits
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)).to_bits(), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)).to_bits(), 0x3f82);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)).to_bits(), 0x3f81);
        // subnormals are rounded, not flushed
        assert_eq!(f32_to_bf16(f32::from_bits(0x0000_ffff)).to_bits(), 0x0001);
        // overflow to inf, NaN stays NaN
        assert_eq!(f32_to_bf16(f32::MAX).to_bits(), 0x7f80);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
        for v in [1.0f32, -2.5, 1e-30, 3e38] {
            assert_eq!(f32_to_bf16(v), bf16::from_f32(v));
        }
    }
}
