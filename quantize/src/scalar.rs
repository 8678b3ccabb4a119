//! The scalar level: the `*_ref` kernels behind byte-slice adapters.
//!
//! Block structs have alignment 2 or 4. When a byte slice is aligned (always, for `.lpk` data
//! and `Vec`-backed buffers), it is viewed as blocks in place; otherwise each block is copied
//! to the stack first. Both paths run the same arithmetic in the same order.

use bytemuck::Pod;
use half::{bf16, f16};
use llamapack_format::blocks::{BlockQ4_0, BlockQ4K, BlockQ6K, BlockQ8_0, BlockQ8K};

use crate::{float, q4_0, q4_k, q6_k, q8_0, q8_k};

fn quantize_as<B: Pod>(src: &[f32], dst: &mut [u8], f: fn(&[f32], &mut [B])) {
    let nb = dst.len() / size_of::<B>();
    if nb == 0 {
        return;
    }
    if let Ok(blocks) = bytemuck::try_cast_slice_mut::<u8, B>(dst) {
        f(src, blocks);
    } else {
        let per = src.len() / nb;
        for (x, out) in src
            .chunks_exact(per)
            .zip(dst.chunks_exact_mut(size_of::<B>()))
        {
            let mut b = B::zeroed();
            f(x, std::slice::from_mut(&mut b));
            out.copy_from_slice(bytemuck::bytes_of(&b));
        }
    }
}

fn dequantize_as<B: Pod>(src: &[u8], dst: &mut [f32], f: fn(&[B], &mut [f32])) {
    let nb = src.len() / size_of::<B>();
    if nb == 0 {
        return;
    }
    if let Ok(blocks) = bytemuck::try_cast_slice::<u8, B>(src) {
        f(blocks, dst);
    } else {
        let per = dst.len() / nb;
        for (x, out) in src
            .chunks_exact(size_of::<B>())
            .zip(dst.chunks_exact_mut(per))
        {
            let b: B = bytemuck::pod_read_unaligned(x);
            f(std::slice::from_ref(&b), out);
        }
    }
}

/// Folds `s + term(w_i, a_i)` over block pairs, in order, from 0.
fn dot_as<W: Pod, A: Pod>(w: &[u8], a: &[u8], term: fn(&W, &A) -> f32) -> f32 {
    match (
        bytemuck::try_cast_slice::<u8, W>(w),
        bytemuck::try_cast_slice::<u8, A>(a),
    ) {
        (Ok(w), Ok(a)) => w.iter().zip(a).fold(0.0, |s, (x, y)| s + term(x, y)),
        _ => w
            .chunks_exact(size_of::<W>())
            .zip(a.chunks_exact(size_of::<A>()))
            .fold(0.0, |s, (x, y)| {
                s + term(
                    &bytemuck::pod_read_unaligned(x),
                    &bytemuck::pod_read_unaligned(y),
                )
            }),
    }
}

pub(crate) fn quantize_f32(src: &[f32], dst: &mut [u8]) {
    dst.copy_from_slice(bytemuck::cast_slice(src));
}
pub(crate) fn dequantize_f32(src: &[u8], dst: &mut [f32]) {
    bytemuck::cast_slice_mut::<f32, u8>(dst).copy_from_slice(src);
}
pub(crate) fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    quantize_as::<f16>(src, dst, float::quantize_row_f16_ref);
}
pub(crate) fn dequantize_f16(src: &[u8], dst: &mut [f32]) {
    dequantize_as::<f16>(src, dst, float::dequantize_row_f16_ref);
}
pub(crate) fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    quantize_as::<bf16>(src, dst, float::quantize_row_bf16_ref);
}
pub(crate) fn dequantize_bf16(src: &[u8], dst: &mut [f32]) {
    dequantize_as::<bf16>(src, dst, float::dequantize_row_bf16_ref);
}
pub(crate) fn quantize_q8_0(src: &[f32], dst: &mut [u8]) {
    quantize_as::<BlockQ8_0>(src, dst, q8_0::quantize_row_q8_0_ref);
}
pub(crate) fn dequantize_q8_0(src: &[u8], dst: &mut [f32]) {
    dequantize_as::<BlockQ8_0>(src, dst, q8_0::dequantize_row_q8_0_ref);
}
pub(crate) fn quantize_q4_0(src: &[f32], dst: &mut [u8]) {
    quantize_as::<BlockQ4_0>(src, dst, q4_0::quantize_row_q4_0_ref);
}
pub(crate) fn dequantize_q4_0(src: &[u8], dst: &mut [f32]) {
    dequantize_as::<BlockQ4_0>(src, dst, q4_0::dequantize_row_q4_0_ref);
}
pub(crate) fn quantize_q4_k(src: &[f32], dst: &mut [u8]) {
    quantize_as::<BlockQ4K>(src, dst, q4_k::quantize_row_q4_k_ref);
}
pub(crate) fn dequantize_q4_k(src: &[u8], dst: &mut [f32]) {
    dequantize_as::<BlockQ4K>(src, dst, q4_k::dequantize_row_q4_k_ref);
}
pub(crate) fn quantize_q6_k(src: &[f32], dst: &mut [u8]) {
    quantize_as::<BlockQ6K>(src, dst, q6_k::quantize_row_q6_k_ref);
}
pub(crate) fn dequantize_q6_k(src: &[u8], dst: &mut [f32]) {
    dequantize_as::<BlockQ6K>(src, dst, q6_k::dequantize_row_q6_k_ref);
}
pub(crate) fn quantize_q8_k(src: &[f32], dst: &mut [u8]) {
    quantize_as::<BlockQ8K>(src, dst, q8_k::quantize_row_q8_k_ref);
}
pub(crate) fn dequantize_q8_k(src: &[u8], dst: &mut [f32]) {
    dequantize_as::<BlockQ8K>(src, dst, q8_k::dequantize_row_q8_k_ref);
}

pub(crate) fn vec_dot_f32(_n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_as::<f32, f32>(w, a, |x, y| x * y)
}
pub(crate) fn vec_dot_f16(_n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_as::<f16, f32>(w, a, |x, y| x.to_f32() * y)
}
pub(crate) fn vec_dot_bf16(_n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_as::<bf16, f32>(w, a, |x, y| float::bf16_to_f32(*x) * y)
}
pub(crate) fn vec_dot_q8_0(_n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_as::<BlockQ8_0, BlockQ8_0>(w, a, q8_0::block_dot)
}
pub(crate) fn vec_dot_q4_0(_n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_as::<BlockQ4_0, BlockQ8_0>(w, a, q4_0::block_dot)
}
pub(crate) fn vec_dot_q4_k(_n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_as::<BlockQ4K, BlockQ8K>(w, a, q4_k::block_dot)
}
pub(crate) fn vec_dot_q6_k(_n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_as::<BlockQ6K, BlockQ8K>(w, a, q6_k::block_dot)
}
pub(crate) fn vec_dot_q8_k(_n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_as::<BlockQ8K, BlockQ8K>(w, a, q8_k::block_dot)
}
