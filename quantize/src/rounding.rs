//! The exact integer conversions ggml's reference encoders use.
//!
//! ggml is C; its float→int steps are not Rust's `as` casts. These helpers reproduce them bit for
//! bit so the encoders match `ggml-quants.c` on every input, including the degenerate ones.

/// ggml's `nearest_int`: adds 1.5·2²³ and reads the low mantissa bits.
///
/// For |x| ≤ 4194303 this is round-half-to-even (the FPU's default mode). Outside that range
/// ggml asserts in debug builds and returns garbage in release builds; this function returns the
/// same garbage (e.g. ±∞ → −4194304, NaN → 0), so callers that clamp afterwards behave like ggml.
#[inline(always)]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// C's `(int8_t)f` for a float `f`, as compiled for x86-64 (and by numpy on x86-64): truncate
/// toward zero to `int32` with `cvttss2si` — which yields `0x8000_0000` for NaN, ±∞ and
/// out-of-range values — then keep the low byte. In-range values truncate as expected.
#[inline(always)]
pub(crate) fn c_f32_to_i8(f: f32) -> i8 {
    if f.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&f) {
        0
    } else {
        (f as i32) as i8
    }
}

/// C's `roundf`: round half away from zero (what Rust's [`f32::round`] does).
#[inline(always)]
pub(crate) fn roundf(x: f32) -> f32 {
    x.round()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_is_round_half_even_in_range() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-127.4), -127);
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
        assert_eq!(nearest_int(f32::INFINITY), -4_194_304);
        assert_eq!(nearest_int(f32::NEG_INFINITY), -4_194_304);
        assert_eq!(nearest_int(f32::NAN), 0);
    }

    #[test]
    fn c_cast_matches_x86() {
        assert_eq!(c_f32_to_i8(15.9), 15);
        assert_eq!(c_f32_to_i8(-0.9), 0);
        assert_eq!(c_f32_to_i8(300.0), 44);
        assert_eq!(c_f32_to_i8(f32::INFINITY), 0);
        assert_eq!(c_f32_to_i8(f32::NAN), 0);
        assert_eq!(roundf(2.5), 3.0);
        assert_eq!(roundf(-2.5), -3.0);
    }
}
