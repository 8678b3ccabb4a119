//! q8_0, q8_1, q4_0 and q8_k encoders with NEON, byte-identical to the scalar references
//! (`vrndaq_f32` is C's `roundf`; `vcvtnq_s32_f32` is `nearest_int` in range; `vcvtq_s32_f32`
//! truncates like C's cast).

use std::arch::aarch64::*;

use half::f16;

/// Loads the 32 floats of block `i` of `x`.
///
/// # Safety
/// `x.len() >= 32·(i + 1)`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load32(x: &[f32], i: usize) -> [float32x4_t; 8] {
    debug_assert!(x.len() >= 32 * (i + 1));
    // SAFETY: guaranteed by the caller.
    unsafe {
        let p = x.as_ptr().add(32 * i);
        std::array::from_fn(|k| vld1q_f32(p.add(4 * k)))
    }
}

#[inline]
#[target_feature(enable = "neon")]
fn abs_max(v: &[float32x4_t]) -> f32 {
    let mut m = vdupq_n_f32(0.0);
    for r in v {
        m = vmaxq_f32(m, vabsq_f32(*r));
    }
    vmaxvq_f32(m)
}

/// Narrows 8 vectors of 4 i32 (already clamped to the int8 range) to 32 bytes in order.
#[inline]
#[target_feature(enable = "neon")]
fn narrow32(q: [int32x4_t; 8]) -> [int8x16_t; 2] {
    let h = |a: int32x4_t, b: int32x4_t| vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    let b = |a: int16x8_t, b: int16x8_t| vcombine_s8(vqmovn_s16(a), vqmovn_s16(b));
    [
        b(h(q[0], q[1]), h(q[2], q[3])),
        b(h(q[4], q[5]), h(q[6], q[7])),
    ]
}

/// q8_0 encoder.
#[target_feature(enable = "neon")]
pub(crate) fn quantize_q8_0(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == 34 * nb);
    for (i, out) in y.chunks_exact_mut(34).enumerate() {
        // SAFETY: i < nb.
        let v = unsafe { load32(x, i) };
        let d = abs_max(&v) / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        if id.is_infinite() {
            out[2..].fill(0); // C: (int8_t) of ±inf/NaN is 0 on x86-64
            continue;
        }
        let q = narrow32(v.map(|r| vcvtq_s32_f32(vrndaq_f32(vmulq_n_f32(r, id)))));
        // SAFETY: out is 34 bytes; the quants are at 2..34.
        unsafe {
            vst1q_s8(out.as_mut_ptr().add(2).cast(), q[0]);
            vst1q_s8(out.as_mut_ptr().add(18).cast(), q[1]);
        }
    }
}

/// q8_1 encoder: q8_0's quants, then `s = f16(f32(Σ q) · d)` with the f32 scale `d` (as
/// [`crate::q8_1::quantize_row_q8_1_ref`]).
#[target_feature(enable = "neon")]
pub(crate) fn quantize_q8_1(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == 36 * nb);
    for (i, out) in y.chunks_exact_mut(36).enumerate() {
        // SAFETY: i < nb.
        let v = unsafe { load32(x, i) };
        let d = abs_max(&v) / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        if id.is_infinite() {
            // C: (int8_t) of ±inf/NaN is 0 on x86-64; then s = f16(0 · d) = +0
            out[2..].fill(0);
            continue;
        }
        let q = narrow32(v.map(|r| vcvtq_s32_f32(vrndaq_f32(vmulq_n_f32(r, id)))));
        let sum = i32::from(vaddvq_s16(vpaddlq_s8(q[0]))) + i32::from(vaddvq_s16(vpaddlq_s8(q[1])));
        out[2..4].copy_from_slice(&f16::from_f32(sum as f32 * d).to_le_bytes());
        // SAFETY: out is 36 bytes; the quants are at 4..36.
        unsafe {
            vst1q_s8(out.as_mut_ptr().add(4).cast(), q[0]);
            vst1q_s8(out.as_mut_ptr().add(20).cast(), q[1]);
        }
    }
}

/// q4_0 encoder.
#[target_feature(enable = "neon")]
pub(crate) fn quantize_q4_0(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 32;
    assert!(x.len() == 32 * nb && y.len() == 18 * nb);
    for (i, out) in y.chunks_exact_mut(18).enumerate() {
        let xb = &x[32 * i..32 * i + 32];
        // SAFETY: i < nb.
        let v = unsafe { load32(x, i) };
        let amax = abs_max(&v);
        let max = if amax == 0.0 {
            0.0
        } else {
            *xb.iter()
                .find(|t| t.abs() == amax)
                .expect("amax is an element")
        };
        let d = max / -8.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        if id.is_infinite() {
            out[2..].fill(0);
            continue;
        }
        let (half, top) = (vdupq_n_f32(8.5), vdupq_n_s32(15));
        let q =
            narrow32(v.map(|r| vminq_s32(vcvtq_s32_f32(vaddq_f32(vmulq_n_f32(r, id), half)), top)));
        let packed = vorrq_u8(
            vreinterpretq_u8_s8(q[0]),
            vshlq_n_u8::<4>(vreinterpretq_u8_s8(q[1])),
        );
        // SAFETY: out is 18 bytes; the nibbles are at 2..18.
        unsafe { vst1q_u8(out.as_mut_ptr().add(2), packed) };
    }
}

/// q8_k encoder.
#[target_feature(enable = "neon")]
pub(crate) fn quantize_q8_k(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 256;
    assert!(x.len() == 256 * nb && y.len() == 292 * nb);
    for (xb, out) in x.chunks_exact(256).zip(y.chunks_exact_mut(292)) {
        let mut amax = 0.0f32;
        for c in 0..8 {
            // SAFETY: xb has 256 floats = 8 blocks of 32.
            amax = amax.max(abs_max(&unsafe { load32(xb, c) }));
        }
        if amax == 0.0 {
            out.fill(0);
            continue;
        }
        let max = *xb
            .iter()
            .find(|t| t.abs() == amax)
            .expect("amax is an element");
        let iscale = -127.0 / max;
        out[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
        if iscale.is_infinite() {
            out[4..].fill(0); // ggml's nearest_int(±inf/NaN) → low byte 0
            continue;
        }
        let top = vdupq_n_s32(127);
        for c in 0..8 {
            // SAFETY: c < 8.
            let v = unsafe { load32(xb, c) };
            let q = narrow32(v.map(|r| vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(r, iscale)), top)));
            for (h, qq) in q.into_iter().enumerate() {
                // SAFETY: quants of group 2c + h are at 4 + 32c + 16h .. +16 < 260.
                unsafe { vst1q_s8(out.as_mut_ptr().add(4 + 32 * c + 16 * h).cast(), qq) };
                let sum = vaddvq_s16(vpaddlq_s8(qq));
                let g = 2 * c + h;
                out[260 + 2 * g..262 + 2 * g].copy_from_slice(&sum.to_le_bytes());
            }
        }
    }
}
