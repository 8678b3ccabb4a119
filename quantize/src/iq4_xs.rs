//! iq4_xs: super-blocks of 256 values in 8 sub-blocks of 32 indices into the iq4_nl grid, with
//! 6-bit sub-block scales and one f16 super-block scale (4.25 bits per weight):
//! `x = d · (ls − 32) · kvalues[q]`.
//!
//! The encoder is ggml's `quantize_row_iq4_xs_ref` (= `quantize_iq4_xs` without an importance
//! matrix, what `llama-quantize` writes): each sub-block runs the iq4_nl search with the 15
//! trial scales ([`crate::iq4_nl`]'s `search_block`, `ntry = 7`), then
//! `d = −max_scale / 32` over the sub-block scales, `ls = nearest_int(scale / d)` clamped to
//! −32..=31, and every index is recomputed from `d · ls`. Byte-identical on every input.

use half::f16;
use llamapack_format::blocks::{BlockIq4Xs, BlockQ8K, KVALUES_IQ4NL, QK_K};

use crate::iq4_nl::{GRID, search_block};
use crate::rounding::nearest_int;

crate::format::block_format!(
    Iq4Xs,
    IQ4XS,
    BlockIq4Xs,
    BlockQ8K,
    quantize_row_iq4_xs_ref,
    dequantize_row_iq4_xs_ref,
    block_dot,
    weighted: crate::weighted::quantize_iq4_xs
);

/// The super-block step of ggml's `quantize_row_iq4_nl_impl`, from the 8 sub-block scales.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SuperScales {
    /// `−max_scale / 32` (f32; stored as f16).
    pub(crate) d: f32,
    /// The 6-bit stored scales `l + 32`, `l` in −32..=31.
    pub(crate) ls: [u8; 8],
    /// `1 / (d · l)` per sub-block (0 where `d · l = 0`): indices are `best_index(idl · x)`.
    pub(crate) idl: [f32; 8],
}

/// See [`SuperScales`]. `max_scale` is the sub-block scale of largest magnitude (the first on
/// ties; zero scales of near-zero sub-blocks never win).
pub(crate) fn super_scales(scales: &[f32; 8]) -> SuperScales {
    let (mut max_scale, mut amax_scale) = (0f32, 0f32);
    for &s in scales {
        if s.abs() > amax_scale {
            amax_scale = s.abs();
            max_scale = s;
        }
    }
    let d = -max_scale / 32.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut out = SuperScales {
        d,
        ls: [0; 8],
        idl: [0.0; 8],
    };
    for (ib, &s) in scales.iter().enumerate() {
        let l = nearest_int(id * s).clamp(-32, 31);
        let dl = d * l as f32;
        out.idl[ib] = if dl == 0.0 { 0.0 } else { 1.0 / dl };
        out.ls[ib] = (l + 32) as u8;
    }
    out
}

/// Writes the scale fields of `y`: `d`, the low nibbles of the 6-bit scales in `scales_l`
/// (sub-block `2k` low, `2k + 1` high) and their top 2 bits in `scales_h` (bits `2ib..2ib+2`).
pub(crate) fn write_scales(s: &SuperScales, y: &mut BlockIq4Xs) {
    y.d = f16::from_f32(s.d);
    y.scales_h = 0;
    for (ib, &ls) in s.ls.iter().enumerate() {
        if ib % 2 == 0 {
            y.scales_l[ib / 2] = ls & 0x0f;
        } else {
            y.scales_l[ib / 2] |= (ls & 0x0f) << 4;
        }
        y.scales_h |= u16::from(ls >> 4) << (2 * ib);
    }
}

/// The 6-bit scale of sub-block `ib`.
#[inline(always)]
pub(crate) fn sub_scale(x: &BlockIq4Xs, ib: usize) -> u8 {
    ((x.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) | ((((x.scales_h >> (2 * ib)) & 3) as u8) << 4)
}

/// Quantizes `x` (a multiple of 256 values) into `y`, byte for byte as ggml's
/// `quantize_row_iq4_xs_ref`.
///
/// A super-block of near-zero values (|x| < 1e-15 everywhere) gets `d = −0`, scales 32
/// (`l = 0`) and index 8 everywhere; a near-zero sub-block in an otherwise normal super-block
/// gets scale 32 and index 8.
pub fn quantize_row_iq4_xs_ref(x: &[f32], y: &mut [BlockIq4Xs]) {
    assert_eq!(
        x.len(),
        y.len() * QK_K,
        "iq4_xs: row length must be 256 × blocks"
    );
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 8];
        for (ib, s) in scales.iter_mut().enumerate() {
            let r = 32 * ib..32 * ib + 32;
            *s = search_block(&xb[r.clone()], 7, &mut l[r]).unwrap_or(0.0);
        }
        finish_block(xb, &scales, yb);
    }
}

/// The super-block step of ggml's iq4_xs encoder from the 8 sub-block scales: the 6-bit
/// scales ([`super_scales`], [`write_scales`]) and every index recomputed against its decoded
/// sub-block scale.
#[inline(always)]
pub(crate) fn finish_block(xb: &[f32], scales: &[f32; 8], yb: &mut BlockIq4Xs) {
    let s = super_scales(scales);
    write_scales(&s, yb);
    for (ib, (xs, qs)) in xb
        .chunks_exact(32)
        .zip(yb.qs.chunks_exact_mut(16))
        .enumerate()
    {
        let mut v = [0f32; 32];
        for (o, &x) in v.iter_mut().zip(xs) {
            *o = s.idl[ib] * x;
        }
        let k = crate::lanes::iq4_grid_index(&v);
        for (j, o) in qs.iter_mut().enumerate() {
            *o = k[j] | (k[j + 16] << 4);
        }
    }
}

/// Dequantizes `x` into `y`: `y = (f32(d) · f32(ls − 32)) · kvalues[q]`.
pub fn dequantize_row_iq4_xs_ref(x: &[BlockIq4Xs], y: &mut [f32]) {
    assert_eq!(
        y.len(),
        x.len() * QK_K,
        "iq4_xs: output length must be 256 × blocks"
    );
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = xb.d.to_f32();
        for (ib, (qs, out)) in xb
            .qs
            .chunks_exact(16)
            .zip(yb.chunks_exact_mut(32))
            .enumerate()
        {
            let dl = d * (i32::from(sub_scale(xb, ib)) - 32) as f32;
            for (j, &b) in qs.iter().enumerate() {
                out[j] = dl * GRID[usize::from(b & 0x0f)];
                out[j + 16] = dl * GRID[usize::from(b >> 4)];
            }
        }
    }
}

/// The exact integer `Σ q8 · kvalues[q]` of sub-block `ib`.
#[inline(always)]
pub(crate) fn sub_dot(x: &BlockIq4Xs, y: &BlockQ8K, ib: usize) -> i32 {
    let (qs, q8) = (&x.qs[16 * ib..16 * ib + 16], &y.qs[32 * ib..32 * ib + 32]);
    let (mut sumi1, mut sumi2) = (0i32, 0i32);
    for (j, &b) in qs.iter().enumerate() {
        sumi1 += i32::from(q8[j]) * i32::from(KVALUES_IQ4NL[usize::from(b & 0x0f)]);
        sumi2 += i32::from(q8[j + 16]) * i32::from(KVALUES_IQ4NL[usize::from(b >> 4)]);
    }
    sumi1 + sumi2
}

/// One super-block's term of ggml's `ggml_vec_dot_iq4_xs_q8_K_generic`: with
/// `d4d8 = f32(d) · d8`, the sub-block terms `(d4d8 · f32(ls − 32)) · f32(sumi)` (exact integer
/// sums) added in order from 0.
///
/// ggml adds those 8 terms straight into the row's running sum; here they are summed per
/// super-block first and the row adds the super-block terms ([`crate::BlockFormat`]'s one
/// term per block), so the row result can differ from ggml's generic kernel in the last bits
/// (every level of this crate returns these bits).
#[inline(always)]
pub(crate) fn block_dot(x: &BlockIq4Xs, y: &BlockQ8K) -> f32 {
    let d4d8 = x.d.to_f32() * y.d;
    let mut sumf = 0f32;
    for ib in 0..QK_K / 32 {
        let dl = d4d8 * (i32::from(sub_scale(x, ib)) - 32) as f32;
        sumf += dl * sub_dot(x, y, ib) as f32;
    }
    sumf
}

/// Dot product of an iq4_xs row with a q8_k row: super-blocks in order, accumulated in f32.
pub fn vec_dot_iq4_xs_q8_k_ref(x: &[BlockIq4Xs], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len(), "iq4_xs dot: block counts differ");
    x.iter().zip(y).fold(0.0, |s, (a, b)| s + block_dot(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    fn encode(x: &[f32; 256]) -> BlockIq4Xs {
        let mut b = [BlockIq4Xs::zeroed()];
        quantize_row_iq4_xs_ref(x, &mut b);
        b[0]
    }

    #[test]
    fn zero_super_block() {
        let b = encode(&[0.0; 256]);
        assert_eq!(b.d.to_bits(), 0x8000); // −0 / 32
        assert_eq!(b.scales_h, 0xaaaa); // every scale 32: high bits 0b10
        assert_eq!(b.scales_l, [0; 4]);
        assert_eq!(b.qs, [0x88; 128]);
        let mut back = [1f32; 256];
        dequantize_row_iq4_xs_ref(&[b], &mut back);
        assert!(back.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn scale_fields_round_trip() {
        let mut b = BlockIq4Xs::zeroed();
        let s = SuperScales {
            d: 1.0,
            ls: [0, 63, 32, 17, 48, 1, 62, 31],
            idl: [0.0; 8],
        };
        write_scales(&s, &mut b);
        for ib in 0..8 {
            assert_eq!(sub_scale(&b, ib), s.ls[ib], "sub-block {ib}");
        }
    }

    #[test]
    fn grid_multiples_are_reproduced_exactly() {
        // sub-block ib holds the grid times s·(ib + 1)·k for powers of two: every step exact
        let mut x = [0f32; 256];
        for (i, v) in x.iter_mut().enumerate() {
            let ib = i / 32;
            *v = GRID[(i * 7) % 16] * 0.125 * [1.0, 2.0, 4.0, 8.0, 1.0, 2.0, 4.0, 8.0][ib];
        }
        let b = encode(&x);
        let mut back = [0f32; 256];
        dequantize_row_iq4_xs_ref(&[b], &mut back);
        let err: f32 = x.iter().zip(&back).map(|(a, b)| (a - b).abs()).sum();
        let norm: f32 = x.iter().map(|a| a.abs()).sum();
        assert!(err / norm < 0.02, "relative error {}", err / norm);
    }

    #[test]
    fn block_dot_sums_sub_blocks_in_order() {
        let mut x = [0f32; 256];
        for (i, v) in x.iter_mut().enumerate() {
            *v = ((i * 37 % 101) as f32 - 50.0) / 17.0;
        }
        let w = encode(&x);
        let mut a = BlockQ8K::zeroed();
        a.d = 0.01;
        for (j, q) in a.qs.iter_mut().enumerate() {
            *q = ((j * 13 % 255) as i32 - 127) as i8;
        }
        let d4d8 = w.d.to_f32() * a.d;
        let want = (0..8).fold(0f32, |s, ib| {
            s + d4d8 * (f32::from(sub_scale(&w, ib)) - 32.0) * sub_dot(&w, &a, ib) as f32
        });
        assert_eq!(block_dot(&w, &a).to_bits(), want.to_bits());
        let mut wv = [0f32; 256];
        dequantize_row_iq4_xs_ref(&[w], &mut wv);
        let exact: f64 = wv
            .iter()
            .zip(&a.qs)
            .map(|(x, &q)| f64::from(*x) * f64::from(q) * f64::from(a.d))
            .sum();
        assert!((f64::from(block_dot(&w, &a)) - exact).abs() < 1e-4 * exact.abs().max(1.0));
    }
}
