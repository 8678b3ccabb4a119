//! The scalar level: every format's `*_ref` kernels ([`BlockFormat`]) behind byte-slice adapters.
//!
//! Block structs have alignment 2 or 4. When a byte slice is aligned (always, for `.lpk` data
//! and `Vec`-backed buffers), it is viewed as blocks in place; otherwise each block is copied
//! to the stack first (a row being encoded goes through one aligned buffer). Both paths run the
//! same arithmetic in the same order.

use bytemuck::Pod;
use half::{bf16, f16};

use crate::float;
use crate::format::BlockFormat;

/// Runs `$body` with `$blocks` bound to `$dst` (row bytes) viewed as `$b` blocks: in place when
/// aligned, else through one aligned buffer for the whole row (an encoder may carry state from
/// block to block: iq4_nl). A macro rather than a function taking a closure, so the encoder
/// inlines into the SIMD levels' `#[target_feature]` copies (a closure call would stay a
/// separate function compiled without their features).
macro_rules! with_blocks {
    ($dst:expr, $b:ty, |$blocks:ident| $body:expr) => {{
        let dst: &mut [u8] = $dst;
        let nb = dst.len() / size_of::<$b>();
        if nb > 0 {
            if let Ok($blocks) = bytemuck::try_cast_slice_mut::<u8, $b>(dst) {
                $body;
            } else {
                let mut buf = vec![<$b as bytemuck::Zeroable>::zeroed(); nb];
                let $blocks = &mut buf[..];
                $body;
                dst.copy_from_slice(bytemuck::cast_slice(&buf));
            }
        }
    }};
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

/// [`BlockFormat::quantize_ref`] over row bytes.
pub(crate) fn quantize<F: BlockFormat>(src: &[f32], dst: &mut [u8]) {
    with_blocks!(dst, F::Block, |blocks| F::quantize_ref(src, blocks));
}
/// [`BlockFormat::quantize_weights`] over row bytes (inlined into the SIMD levels' copies, as
/// [`quantize_weighted`] is).
#[inline(always)]
pub(crate) fn quantize_weights<F: BlockFormat>(src: &[f32], dst: &mut [u8]) {
    with_blocks!(dst, F::Block, |blocks| F::quantize_weights(src, blocks));
}
/// [`BlockFormat::quantize_weighted`] over row bytes (`qw` has one weight per value). Inlined
/// into each SIMD level's copy (`x86::*::quantize_weighted`), which compiles the lane searches
/// of [`crate::lanes`] with that level's features.
#[inline(always)]
pub(crate) fn quantize_weighted<F: BlockFormat>(src: &[f32], dst: &mut [u8], qw: &[f32]) {
    with_blocks!(dst, F::Block, |blocks| F::quantize_weighted(
        src, blocks, qw
    ));
}
/// [`BlockFormat::dequantize_ref`] over row bytes.
pub(crate) fn dequantize<F: BlockFormat>(src: &[u8], dst: &mut [f32]) {
    dequantize_as::<F::Block>(src, dst, F::dequantize_ref);
}
/// The row dot of [`BlockFormat::block_dot`] over row bytes.
pub(crate) fn vec_dot<F: BlockFormat>(_n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_as::<F::Block, F::Act>(w, a, F::block_dot)
}

pub(crate) fn quantize_f32(src: &[f32], dst: &mut [u8]) {
    dst.copy_from_slice(bytemuck::cast_slice(src));
}
pub(crate) fn dequantize_f32(src: &[u8], dst: &mut [f32]) {
    bytemuck::cast_slice_mut::<f32, u8>(dst).copy_from_slice(src);
}
pub(crate) fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    with_blocks!(dst, f16, |blocks| float::quantize_row_f16_ref(src, blocks));
}
pub(crate) fn dequantize_f16(src: &[u8], dst: &mut [f32]) {
    dequantize_as::<f16>(src, dst, float::dequantize_row_f16_ref);
}
pub(crate) fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    with_blocks!(dst, bf16, |blocks| float::quantize_row_bf16_ref(
        src, blocks
    ));
}
pub(crate) fn dequantize_bf16(src: &[u8], dst: &mut [f32]) {
    dequantize_as::<bf16>(src, dst, float::dequantize_row_bf16_ref);
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
